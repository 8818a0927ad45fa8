//! Shared helpers for wasmq's integration tests.
//!
//! `build.rs` compiles every guest (the examples and `tests/fixtures/*`) for wasm before
//! this crate compiles, so [`guests`] always points at fresh `.wasm` files.

pub mod conformance;
pub mod harness;
pub mod pg;
pub mod pg_server;
pub mod sqlite;
pub mod upstream;
pub mod worker_suite;

/// Absolute paths of the freshly built guest `.wasm` files.
///
/// `ECHO`, `WORDCOUNT`, `THUMBNAIL`, `RENDER_EMAIL` and `HOSTILE` are components
/// (`wasm32-wasip2`); `WASI_COMMAND` is a core WASI command module (`wasm32-wasip1`).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Reads a guest's `.wasm` bytes, e.g. `guest_bytes(guests::ECHO)`.
///
/// # Panics
///
/// If the file cannot be read: build.rs should have just built it.
pub fn guest_bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read guest {path}: {e}"))
}

/// Where tests and benches keep compiled interpreters (tens of MiB of Wasm each): beside
/// the built guests, so they are compiled once per build directory, not once per test.
pub fn interpreter_artifact_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(guests::PY_ECHO)
        .parent()
        .and_then(|p| p.parent())
        .expect("guests live in target/guests/<lang>/")
        .join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifact dir");
    dir
}
