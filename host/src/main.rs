//! The `wasmq` binary.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // A compile process started by the runtime (a hidden command, run before anything
    // else so it reads no configuration).
    let mut args = std::env::args_os().skip(1);
    if args
        .next()
        .is_some_and(|a| a == wasmq_host::runtime::COMPILE_COMMAND)
    {
        let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        return wasmq_host::runtime::compile_child_main(&rest);
    }
    // wasmq.toml fills in environment variables that are unset (flags > env > file).
    if let Err(e) = wasmq_host::cli::config::load() {
        eprintln!("error: {e:#}");
        return std::process::ExitCode::from(2);
    }
    let cli = wasmq_host::cli::Cli::parse();
    wasmq_host::cli::init_tracing(&cli.log_format);
    match wasmq_host::cli::main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
