//! Upload-time validation: what is refused, with a message naming the reason, and the
//! compiled-module caches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmq_host::runtime::{
    CacheStats, CompileMode, Limits, ModuleKind, Outcome, RunError, RunRequest, Runtime,
    RuntimeConfig, ValidateError,
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

/// A resource the host does not have, in an interface it does: refused at upload by the
/// link check, naming it, never found missing at run time.
#[tokio::test]
async fn rejects_a_component_importing_a_host_resource_that_does_not_exist() {
    let wat = r#"(component
        (import "wasmq:task/host@0.2.0" (instance
            (export "vault" (type (sub resource)))
        ))
    )"#;
    let e = refused(&runtime(), wat::parse_str(wat).unwrap()).await;
    assert!(e.to_string().contains("vault"), "{e}");
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
    assert_eq!(first.cache_stats().compiles, 1);
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
    assert_eq!(
        second.cache_stats(),
        CacheStats {
            memory_hits: 0,
            compiles: 0,
            artifact_loads: 1
        },
        "the artifact was reused, nothing compiled"
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
    assert_eq!(
        third.cache_stats(),
        CacheStats {
            memory_hits: 0,
            compiles: 1,
            artifact_loads: 0
        },
        "the damaged artifact was not used"
    );
    assert_ne!(
        std::fs::read(&artifacts[0]).unwrap(),
        b"garbage",
        "the artifact was rewritten"
    );
}

fn artifacts_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn a_refused_upload_leaves_no_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeConfig {
        artifact_dir: Some(dir.path().join("artifacts")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let bad_component = r#"(component (import "acme:evil/backdoor" (instance)))"#;
    let bad_command =
        r#"(module (import "env" "launch_missiles" (func)) (func (export "_start")))"#;
    for wat in [bad_component, bad_command, "(component)"] {
        refused(&rt, wat::parse_str(wat).unwrap()).await;
    }
    assert_eq!(
        rt.cache_stats().compiles,
        3,
        "each was compiled, then refused"
    );
    assert_eq!(
        artifacts_in(&dir.path().join("artifacts")),
        Vec::<std::path::PathBuf>::new()
    );
}

/// The artifact file of each guest, by path, and its size, compiled into `dir`.
async fn artifact_sizes(guests: &[&str]) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeConfig {
        artifact_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let mut sizes = Vec::new();
    for g in guests {
        let before = artifacts_in(dir.path());
        rt.load_bytes(Arc::new(guest_bytes(g))).await.unwrap();
        let new: Vec<_> = artifacts_in(dir.path())
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert_eq!(new.len(), 1);
        sizes.push(std::fs::metadata(&new[0]).unwrap().len());
    }
    sizes
}

fn artifact_of(dir: &std::path::Path, bytes: &[u8]) -> Option<std::path::PathBuf> {
    let digest = wasmq_host::runtime::digest(bytes);
    artifacts_in(dir).into_iter().find(|p| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&digest)
    })
}

#[tokio::test]
async fn the_artifact_directory_drops_the_least_recently_used_past_its_byte_cap() {
    let [a, b, c] = [guests::ECHO, guests::WORDCOUNT, guests::WASI_COMMAND];
    let sizes = artifact_sizes(&[a, b, c]).await;
    let dir = tempfile::tempdir().unwrap();
    // Room for all three but one byte.
    let cap = sizes.iter().sum::<u64>() - 1;
    let config = || RuntimeConfig {
        artifact_dir: Some(dir.path().to_path_buf()),
        artifact_dir_max_bytes: cap,
        ..RuntimeConfig::default()
    };
    let first = Runtime::new(config()).unwrap();
    first.load_bytes(Arc::new(guest_bytes(a))).await.unwrap();
    first.load_bytes(Arc::new(guest_bytes(b))).await.unwrap();
    drop(first);
    // A new runtime uses `a`'s artifact, which makes `b` the least recently used.
    let second = Runtime::new(config()).unwrap();
    second.load_bytes(Arc::new(guest_bytes(a))).await.unwrap();
    assert_eq!(second.cache_stats().artifact_loads, 1);
    second.load_bytes(Arc::new(guest_bytes(c))).await.unwrap();
    let (a, b, c) = (guest_bytes(a), guest_bytes(b), guest_bytes(c));
    assert!(artifact_of(dir.path(), &a).is_some(), "recently used, kept");
    assert!(
        artifact_of(dir.path(), &b).is_none(),
        "least recently used, deleted"
    );
    assert!(artifact_of(dir.path(), &c).is_some(), "just written, kept");
    let total: u64 = artifacts_in(dir.path())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(total <= cap, "{total} bytes kept, cap {cap}");
}

/// Bytes of compiled code the memory cache counts for `guest`.
async fn cached_size(guest: &str) -> u64 {
    let probe = runtime();
    probe
        .load_bytes(Arc::new(guest_bytes(guest)))
        .await
        .unwrap();
    probe.cached_bytes()
}

#[tokio::test]
async fn the_memory_cache_keeps_within_its_byte_cap() {
    let (echo_size, wc_size) = (
        cached_size(guests::ECHO).await,
        cached_size(guests::WORDCOUNT).await,
    );
    assert!(echo_size > 0 && wc_size > 0);
    // Room for either module, not both.
    let cap = echo_size.max(wc_size);
    let rt = Runtime::new(RuntimeConfig {
        cache_max_bytes: cap,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let echo = Arc::new(guest_bytes(guests::ECHO));
    rt.load_bytes(echo.clone()).await.unwrap();
    assert_eq!((rt.cached_modules(), rt.cached_bytes()), (1, echo_size));
    rt.load_bytes(echo.clone()).await.unwrap();
    assert_eq!(rt.cache_stats().compiles, 1, "a hit while it fits");
    assert_eq!(rt.cache_stats().memory_hits, 1);
    rt.load_bytes(Arc::new(guest_bytes(guests::WORDCOUNT)))
        .await
        .unwrap();
    assert_eq!((rt.cached_modules(), rt.cached_bytes()), (1, wc_size));
    rt.load_bytes(echo).await.unwrap();
    assert_eq!(
        rt.cache_stats().compiles,
        3,
        "echo was dropped to make room, so compiled again"
    );
    assert_eq!((rt.cached_modules(), rt.cached_bytes()), (1, echo_size));

    // A module larger than the whole cap runs but is not kept.
    let tiny = Runtime::new(RuntimeConfig {
        cache_max_bytes: 1,
        ..RuntimeConfig::default()
    })
    .unwrap();
    tiny.load_bytes(Arc::new(guest_bytes(guests::ECHO)))
        .await
        .unwrap();
    assert_eq!((tiny.cached_modules(), tiny.cached_bytes()), (0, 0));
}

#[tokio::test]
async fn a_module_declaring_more_initial_memory_than_the_limit_is_refused_in_our_words() {
    // 40,000 pages of 64 KiB: 2,500 MiB.
    let wat = r#"(module (memory (export "memory") 40000) (func (export "_start")))"#;
    let e = refused(&runtime(), wat::parse_str(wat).unwrap()).await;
    assert!(matches!(e, ValidateError::InitialMemory { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "module declares 2,500 MiB of initial memory; the limit is 64 MiB"
    );
}

#[tokio::test]
async fn a_component_whose_inner_module_declares_too_much_memory_is_refused() {
    let wat = r#"(component (core module (memory 2000)))"#;
    let e = refused(&runtime(), wat::parse_str(wat).unwrap()).await;
    assert_eq!(
        e.to_string(),
        "module declares 125 MiB of initial memory; the limit is 64 MiB"
    );
}

#[tokio::test]
async fn a_timed_out_compile_keeps_its_place_until_it_has_really_ended() {
    let rt = Runtime::new(RuntimeConfig {
        compile_timeout: Duration::from_millis(1),
        compile_mode: CompileMode::InProcess,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let e = refused(&rt, guest_bytes(guests::THUMBNAIL)).await;
    assert!(matches!(e, ValidateError::CompileTimeout(_)), "{e}");
    assert_eq!(
        rt.compiles_in_progress(),
        1,
        "the abandoned compile still counts"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while rt.compiles_in_progress() > 0 {
        assert!(Instant::now() < deadline, "the compile thread never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
