//! Hostile modules at upload: shapes crafted to cost the host at compile or instantiation
//! time are refused with a reason, or compiled within the compile bound and run like any
//! other; the runtime takes the next upload either way.

use std::sync::Arc;
use std::time::Duration;

use wasmq_host::runtime::{Limits, Outcome, RunError, RunRequest, Runtime, RuntimeConfig};
use wasmq_tests::{guest_bytes, guests};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        slots: 2,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// The refusal of `wat` at upload, as the API would word it.
async fn refusal(rt: &Runtime, wat: &str) -> String {
    match rt.validate(Arc::new(wat::parse_str(wat).unwrap())).await {
        Err(RunError::Invalid(e)) => e.to_string(),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok((kind, _)) => panic!("expected a refusal, accepted as {kind:?}"),
    }
}

/// The echo guest still uploads and runs after `rt` met a hostile module.
async fn echo_still_runs(rt: &Runtime) {
    let p = rt
        .load_bytes(Arc::new(guest_bytes(guests::ECHO)))
        .await
        .unwrap();
    let request = RunRequest {
        input: b"still here".to_vec(),
        limits: Limits::default_max(),
        ..Default::default()
    };
    let r = rt.run(&p, request).await;
    assert_eq!(
        r.outcome,
        Outcome::Success {
            result: b"still here".to_vec()
        }
    );
}

#[tokio::test]
async fn a_table_of_a_hundred_million_entries_is_refused_naming_the_limit() {
    let rt = runtime();
    let wat = r#"(module (memory (export "memory") 1) (table 100000000 funcref)
                  (func (export "_start")))"#;
    let e = refusal(&rt, wat).await;
    assert!(e.contains("table") && e.contains("limit"), "{e}");
    echo_still_runs(&rt).await;
}

#[tokio::test]
async fn more_tables_than_allowed_are_refused() {
    let rt = runtime();
    let wat = format!(
        r#"(module (memory (export "memory") 1) {} (func (export "_start")))"#,
        "(table 10 funcref) ".repeat(200)
    );
    let e = refusal(&rt, &wat).await;
    assert!(e.contains("tables count exceeds limit"), "{e}");
    echo_still_runs(&rt).await;
}

#[tokio::test]
async fn fifty_thousand_nested_blocks_compile_within_the_bound_and_run() {
    let rt = Runtime::new(RuntimeConfig {
        slots: 2,
        compile_timeout: Duration::from_secs(120),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let depth = 50_000;
    let wat = format!(
        r#"(module (memory (export "memory") 1) (func (export "_start") {}{}))"#,
        "(block ".repeat(depth),
        ")".repeat(depth)
    );
    let p = rt
        .load_bytes(Arc::new(wat::parse_str(&wat).unwrap()))
        .await
        .unwrap();
    let request = RunRequest {
        limits: Limits::default_max(),
        ..Default::default()
    };
    let r = rt.run(&p, request).await;
    assert!(
        matches!(r.outcome, Outcome::Success { .. }),
        "{:?}",
        r.outcome
    );
    echo_still_runs(&rt).await;
}
