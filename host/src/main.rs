//! The `wasmq` binary.

use clap::Parser;

fn main() -> std::process::ExitCode {
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
