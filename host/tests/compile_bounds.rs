//! Compiles in a child process through the real `wasmq` binary: bounded in time (killed
//! at the deadline, its place free once it is gone) and in memory, and its artifacts
//! load in the serving engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmq_host::runtime::{
    CompileMode, Limits, Outcome, RunError, RunRequest, Runtime, RuntimeConfig, ValidateError,
};
use wasmq_tests::{guest_bytes, guests};

fn config() -> RuntimeConfig {
    RuntimeConfig {
        slots: 2,
        compile_mode: CompileMode::Subprocess {
            program: env!("CARGO_BIN_EXE_wasmq").into(),
        },
        ..RuntimeConfig::default()
    }
}

async fn refused(rt: &Runtime, bytes: Vec<u8>) -> ValidateError {
    match rt.validate(Arc::new(bytes)).await {
        Err(RunError::Invalid(e)) => e,
        Err(other) => panic!("expected a validation error, got {other}"),
        Ok((kind, _)) => panic!("expected refusal, module accepted as {kind:?}"),
    }
}

/// A valid command module with `n` functions of straight-line arithmetic: slow to
/// compile, in proportion to `n`.
fn slow_to_compile(n: usize) -> Vec<u8> {
    let body = "local.get 0 i32.const 7 i32.mul i32.const 3 i32.xor local.set 0 ".repeat(200);
    let mut wat = String::from("(module (memory (export \"memory\") 1) (func (export \"_start\"))");
    for _ in 0..n {
        wat.push_str(&format!(
            "(func (param i32) (result i32) {body} local.get 0)"
        ));
    }
    wat.push(')');
    wat::parse_str(&wat).unwrap()
}

#[tokio::test]
async fn a_module_compiled_in_a_compile_process_runs() {
    let rt = Runtime::new(config()).unwrap();
    let p = rt
        .load_bytes(Arc::new(guest_bytes(guests::ECHO)))
        .await
        .unwrap();
    let r = rt
        .run(
            &p,
            RunRequest {
                input: b"from a child".to_vec(),
                limits: Limits::default_max(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        r.outcome,
        Outcome::Success {
            result: b"from a child".to_vec()
        }
    );
    assert_eq!(rt.cache_stats().compiles, 1);
    // The compiler's refusal comes back with its words.
    let mut bytes = guest_bytes(guests::ECHO);
    bytes.truncate(bytes.len() / 2);
    let e = refused(&rt, bytes).await;
    assert!(matches!(e, ValidateError::Compile(_)), "{e}");
}

#[tokio::test]
async fn a_compile_past_its_time_bound_is_killed_and_frees_its_place_at_once() {
    let rt = Runtime::new(RuntimeConfig {
        compile_timeout: Duration::from_millis(500),
        ..config()
    })
    .unwrap();
    let started = Instant::now();
    let e = refused(&rt, slow_to_compile(20_000)).await;
    assert!(matches!(e, ValidateError::CompileTimeout(_)), "{e}");
    assert!(e.to_string().contains("500ms"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        rt.compiles_in_progress(),
        0,
        "the compile process is gone before the refusal is answered"
    );
    // The next upload gets the compile slot straight away.
    let rt = Runtime::new(RuntimeConfig {
        compile_timeout: Duration::from_secs(60),
        ..config()
    })
    .unwrap();
    let next = Instant::now();
    rt.load_bytes(Arc::new(guest_bytes(guests::ECHO)))
        .await
        .unwrap();
    let took = next.elapsed();
    assert!(took < Duration::from_secs(20), "echo took {took:?}");
}

#[tokio::test]
async fn a_compile_needing_more_than_the_memory_cap_is_refused() {
    let rt = Runtime::new(RuntimeConfig {
        compile_memory_bytes: 32 << 20,
        ..config()
    })
    .unwrap();
    let e = refused(&rt, guest_bytes(guests::THUMBNAIL)).await;
    assert!(matches!(e, ValidateError::CompileMemory(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "module could not be compiled within the compile memory limit of 32 MiB; make it smaller, or raise the limit"
    );
    // The same module compiles under the default cap.
    let rt = Runtime::new(config()).unwrap();
    rt.load_bytes(Arc::new(guest_bytes(guests::THUMBNAIL)))
        .await
        .unwrap();
}
