//! Compiling untrusted modules under real bounds on time, memory and concurrency.
//!
//! A compile holds a permit from the runtime's compile semaphore for as long as it
//! really runs. In a child process (the `wasmq` binary re-run with [`COMPILE_COMMAND`])
//! it also runs under an address-space and a CPU-time rlimit and is killed at the
//! deadline, so a refused compile is gone before its permit is given back. On a thread
//! (library use) the thread cannot be stopped: the caller stops waiting at the
//! deadline, and the thread keeps its permit until it ends, so compiles never pile up.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::cache::{Compiled, deserialize};
use super::validate::{ModuleKind, ValidateError};
use super::{RunError, engine};

/// The hidden first argument that makes the `wasmq` binary a compile process.
pub const COMPILE_COMMAND: &str = "__compile-module";

/// Exit code of a compile process whose module the compiler rejected (message on stderr).
const EXIT_INVALID: u8 = 3;
/// Exit code of a compile process that ran out of its address space.
const EXIT_NO_MEMORY: u8 = 4;

/// Compiles in this process; no time or memory bound, for callers that own the process.
pub(crate) fn compile(
    engine: &Engine,
    kind: ModuleKind,
    bytes: &[u8],
) -> Result<Compiled, ValidateError> {
    let err =
        |e: wasmtime::Error| ValidateError::Compile(crate::text::cap_message(format!("{e:#}")));
    Ok(match kind {
        ModuleKind::Component => {
            Compiled::Component(Component::from_binary(engine, bytes).map_err(err)?)
        }
        ModuleKind::Command => {
            Compiled::Command(wasmtime::Module::from_binary(engine, bytes).map_err(err)?)
        }
    })
}

/// Compiles on a dedicated thread that owns `permit` until it ends; gives up waiting
/// after `timeout`.
pub(crate) async fn on_thread(
    engine: Engine,
    kind: ModuleKind,
    bytes: Arc<Vec<u8>>,
    permit: OwnedSemaphorePermit,
    timeout: Duration,
) -> Result<Compiled, RunError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A dedicated thread, not the blocking pool: an abandoned compile must not hold a
    // pool thread that the executor counts on.
    std::thread::Builder::new()
        .name("wasmq-compile".into())
        .spawn(move || {
            let _permit = permit;
            let _ = tx.send(compile(&engine, kind, &bytes));
        })
        .map_err(|e| RunError::Internal(format!("spawning compile thread: {e}")))?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(r)) => Ok(r?),
        Ok(Err(_)) => Err(RunError::Internal("compile thread panicked".into())),
        Err(_) => Err(ValidateError::CompileTimeout(timeout).into()),
    }
}

/// Bounds of one compile process.
pub(crate) struct ChildLimits {
    pub(crate) timeout: Duration,
    pub(crate) memory_bytes: u64,
    pub(crate) max_wasm_stack: usize,
}

/// Compiles in a child process running `program` and loads its artifact into `engine`.
/// Returns the compiled module and the artifact bytes (for the artifact cache). The
/// child is killed at the deadline and waited for before this returns.
pub(crate) async fn in_child(
    program: &Path,
    engine: &Engine,
    kind: ModuleKind,
    bytes: Arc<Vec<u8>>,
    limits: &ChildLimits,
) -> Result<(Compiled, Vec<u8>), RunError> {
    let cpu_secs = limits.timeout.as_secs().saturating_add(1);
    let mut child = tokio::process::Command::new(program)
        .arg(COMPILE_COMMAND)
        .arg(kind.as_str())
        .arg(limits.memory_bytes.to_string())
        .arg(cpu_secs.to_string())
        .arg(limits.max_wasm_stack.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            RunError::Internal(format!(
                "starting the compile process {}: {e}",
                program.display()
            ))
        })?;
    let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(RunError::Internal("compile process without pipes".into()));
    };
    let work = async {
        let write = async move {
            // The child may exit before reading everything (a limit hit): not an error here.
            let _ = stdin.write_all(&bytes).await;
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (_, out_read, _) = tokio::join!(
            write,
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err)
        );
        (child.wait().await, out_read.map(|_| out), err)
    };
    let finished = tokio::time::timeout(limits.timeout, work).await;
    let (status, out, err) = match finished {
        Ok(done) => done,
        Err(_) => {
            let _ = child.kill().await;
            return Err(ValidateError::CompileTimeout(limits.timeout).into());
        }
    };
    let status = status.map_err(|e| RunError::Internal(format!("compile process: {e}")))?;
    if status.success() {
        let artifact =
            out.map_err(|e| RunError::Internal(format!("reading the compile process: {e}")))?;
        let compiled = deserialize(engine, kind, &artifact).map_err(|e| {
            RunError::Internal(format!(
                "the compile process's artifact does not load: {e:#}"
            ))
        })?;
        return Ok((compiled, artifact));
    }
    use std::os::unix::process::ExitStatusExt;
    let message = crate::text::cap_message(String::from_utf8_lossy(&err).trim().to_owned());
    Err(match (status.code(), status.signal()) {
        (Some(c), _) if c == i32::from(EXIT_INVALID) => ValidateError::Compile(message).into(),
        (Some(c), _) if c == i32::from(EXIT_NO_MEMORY) => {
            ValidateError::CompileMemory(limits.memory_bytes).into()
        }
        // SIGXCPU at the CPU-time soft limit, SIGKILL at the hard one.
        (_, Some(signal::XCPU | signal::KILL)) => {
            ValidateError::CompileTimeout(limits.timeout).into()
        }
        // An allocation refused by the address-space limit aborts; a mapping refused
        // while the stack grows faults.
        (_, Some(signal::ABRT | signal::SEGV | signal::BUS)) => {
            ValidateError::CompileMemory(limits.memory_bytes).into()
        }
        _ => RunError::Internal(format!("compile process ended with {status}: {message}")),
    })
}

/// The signal numbers a compile process can end with (Linux numbering, which these
/// share with every other Unix wasmq builds on).
mod signal {
    pub(super) const KILL: i32 = 9;
    pub(super) const XCPU: i32 = 24;
    pub(super) const ABRT: i32 = 6;
    pub(super) const SEGV: i32 = 11;
    pub(super) const BUS: i32 = 7;
}

/// The compile process: `wasmq __compile-module KIND MEMORY_BYTES CPU_SECS MAX_WASM_STACK`.
/// Reads the module on stdin, limits itself, and writes the artifact on stdout.
pub fn child_main(args: &[String]) -> ExitCode {
    match child(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("{message}");
            ExitCode::from(code)
        }
    }
}

fn child(args: &[String]) -> Result<(), (u8, String)> {
    use std::io::{Read, Write};
    let usage = || {
        (
            2,
            format!("usage: wasmq {COMPILE_COMMAND} KIND MEMORY_BYTES CPU_SECS MAX_WASM_STACK"),
        )
    };
    let [kind, memory, cpu, stack] = args else {
        return Err(usage());
    };
    let kind = match kind.as_str() {
        "component" => ModuleKind::Component,
        "command" => ModuleKind::Command,
        _ => return Err(usage()),
    };
    let (Ok(memory), Ok(cpu), Ok(stack)) =
        (memory.parse::<u64>(), cpu.parse::<u64>(), stack.parse())
    else {
        return Err(usage());
    };
    let limit = |e: std::io::Error| (2, format!("setting compile limits: {e}"));
    rlimit::setrlimit(rlimit::Resource::AS, memory, memory).map_err(limit)?;
    rlimit::setrlimit(rlimit::Resource::CPU, cpu, cpu.saturating_add(1)).map_err(limit)?;
    let mut bytes = Vec::new();
    std::io::stdin().read_to_end(&mut bytes).map_err(|e| {
        if e.kind() == std::io::ErrorKind::OutOfMemory {
            (EXIT_NO_MEMORY, "out of memory".into())
        } else {
            (2, format!("reading the module: {e}"))
        }
    })?;
    let engine = Engine::new(&engine::code_config(stack)).map_err(|e| classify(&e))?;
    let artifact = match kind {
        ModuleKind::Component => engine.precompile_component(&bytes),
        ModuleKind::Command => engine.precompile_module(&bytes),
    }
    .map_err(|e| classify(&e))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&artifact)
        .and_then(|()| out.flush())
        .map_err(|e| (2, format!("writing the artifact: {e}")))
}

/// A compile error, or running out of memory if any cause in the chain is `ENOMEM`.
fn classify(e: &wasmtime::Error) -> (u8, String) {
    let enomem = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::OutOfMemory)
    });
    if enomem {
        (EXIT_NO_MEMORY, "out of memory".into())
    } else {
        (EXIT_INVALID, crate::text::cap_message(format!("{e:#}")))
    }
}
