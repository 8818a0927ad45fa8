//! Upload-time validation: what is refused, with a message naming the reason, and the
//! compiled-module caches.

use std::sync::Arc;
use std::time::Duration;

use wasmq_host::runtime::{
    Limits, ModuleKind, Outcome, RunError, RunRequest, Runtime, RuntimeConfig, ValidateError,
};
use wasmq_tests::{guest_bytes, guests};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        slots: 2,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

async fn refused(rt: &Runtime, bytes: Vec<u8>) -> ValidateError {
    match rt.validate(Arc::new(bytes)).await {
        Err(RunError::Invalid(e)) => e,
        Err(other) => panic!("expected a validation error, got {other}"),
        Ok((kind, _)) => panic!("expected refusal, module accepted as {kind:?}"),
    }
}

#[tokio::test]
async fn accepts_both_kinds_and_reports_the_digest() {
    let rt = runtime();
    let (kind, digest) = rt
        .validate(Arc::new(guest_bytes(guests::ECHO)))
        .await
        .unwrap();
    assert_eq!(kind, ModuleKind::Component);
    assert_eq!(digest.len(), 64);
    let (kind, _) = rt
        .validate(Arc::new(guest_bytes(guests::WASI_COMMAND)))
        .await
        .unwrap();
    assert_eq!(kind, ModuleKind::Command);
}

#[tokio::test]
async fn rejects_bytes_that_are_not_wasm() {
    let e = refused(&runtime(), b"#!/bin/sh\nrm -rf /".to_vec()).await;
    assert!(matches!(e, ValidateError::NotWasm(_)), "{e}");
}

#[tokio::test]
async fn rejects_a_truncated_module_with_the_compilers_message() {
    let mut bytes = guest_bytes(guests::ECHO);
    bytes.truncate(bytes.len() / 2);
    let e = refused(&runtime(), bytes).await;
    assert!(matches!(e, ValidateError::Compile(_)), "{e}");
}

#[tokio::test]
async fn rejects_a_module_over_the_size_limit() {
    let rt = Runtime::new(RuntimeConfig {
        max_module_bytes: 1024,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let e = refused(&rt, guest_bytes(guests::ECHO)).await;
    assert!(
        matches!(e, ValidateError::TooLarge { max: 1024, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn rejects_a_component_importing_something_else_naming_it() {
    let wat = r#"(component
        (import "acme:evil/backdoor" (instance))
    )"#;
    let e = refused(&runtime(), wat::parse_str(wat).unwrap()).await;
    assert!(e.to_string().contains("acme:evil/backdoor"), "{e}");
    assert!(matches!(e, ValidateError::DisallowedImport(_)));
}

#[tokio::test]
async fn rejects_a_core_module_importing_outside_wasi_naming_it() {
    let wat = r#"(module
        (import "env" "launch_missiles" (func))
        (memory (export "memory") 1)
        (func (export "_start")))"#;
    let e = refused(&runtime(), wat::parse_str(wat).unwrap()).await;
    assert!(e.to_string().contains("env::launch_missiles"), "{e}");
}

#[tokio::test]
async fn rejects_a_core_module_without_start() {
    let wat = r#"(module (memory (export "memory") 1) (func (export "main")))"#;
    let e = refused(&runtime(), wat::parse_str(wat).unwrap()).await;
    assert!(matches!(e, ValidateError::MissingExport(_)), "{e}");
}

#[tokio::test]
async fn rejects_a_component_that_does_not_export_run() {
    let e = refused(&runtime(), wat::parse_str("(component)").unwrap()).await;
    assert!(matches!(e, ValidateError::MissingExport(_)), "{e}");
}

#[tokio::test]
async fn rejects_a_precompiled_artifact() {
    let engine = wasmtime::Engine::default();
    let artifact = engine
        .precompile_module(&wat::parse_str("(module)").unwrap())
        .unwrap();
    let e = refused(&runtime(), artifact).await;
    assert!(e.to_string().contains("precompiled"), "{e}");
}

#[tokio::test]
async fn a_compile_that_overruns_its_time_bound_is_refused() {
    let rt = Runtime::new(RuntimeConfig {
        compile_timeout: Duration::from_millis(1),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let e = refused(&rt, guest_bytes(guests::THUMBNAIL)).await;
    assert!(matches!(e, ValidateError::CompileTimeout(_)), "{e}");
}

#[tokio::test]
async fn compiled_artifacts_survive_a_restart_and_damaged_ones_are_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig {
        artifact_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    };
    let bytes = Arc::new(guest_bytes(guests::ECHO));
    let first = Runtime::new(config()).unwrap();
    first.load_bytes(bytes.clone()).await.unwrap();
    let artifacts: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(artifacts.len(), 1, "one artifact written: {artifacts:?}");
    drop(first);

    // A new process (runtime) loads the artifact and runs it.
    let second = Runtime::new(config()).unwrap();
    let p = second.load_bytes(bytes.clone()).await.unwrap();
    let r = second
        .run(
            &p,
            RunRequest {
                input: b"again".to_vec(),
                limits: Limits::default_max(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        r.outcome,
        Outcome::Success {
            result: b"again".to_vec()
        }
    );
    drop(second);

    // A damaged artifact is discarded and the module recompiled.
    std::fs::write(&artifacts[0], b"garbage").unwrap();
    let third = Runtime::new(config()).unwrap();
    let p = third.load_bytes(bytes).await.unwrap();
    let r = third
        .run(
            &p,
            RunRequest {
                input: b"x".to_vec(),
                limits: Limits::default_max(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        r.outcome,
        Outcome::Success {
            result: b"x".to_vec()
        }
    );
    assert_ne!(
        std::fs::read(&artifacts[0]).unwrap(),
        b"garbage",
        "the artifact was rewritten"
    );
}
