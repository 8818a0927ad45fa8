//! Micro-benchmarks of the sandbox (criterion).
//!
//! ```text
//! cargo bench -p wasmq-benches --bench runtime
//! ```
//!
//! - `echo/*`: instantiate + run of the `echo` example, through wasmq's runtime on the
//!   calling thread (`run_blocking`), through the worker's path (`run` from a tokio
//!   runtime onto the guest executor), and the floor: bare wasmtime, synchronous,
//!   component instantiate + call with no-op host functions.
//! - `thumbnail/run`: a real CPU-bound task (640×480 gradient → 64×48 PNG).
//! - `compile/*`: a cold compile of a module, and the load of a cached artifact from disk.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmq_host::runtime::{Outcome, Runtime, RuntimeConfig};
use wasmq_tests::{guest_bytes, guests};

#[path = "common/request.rs"]
mod request;
use request::request;

fn echo(c: &mut Criterion) {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let bytes = guest_bytes(guests::ECHO);
    let p = rt.load_bytes_blocking(&bytes).unwrap();
    let input = br#"{"n": 1}"#;
    let mut g = c.benchmark_group("echo");
    g.bench_function("run_blocking", |b| {
        b.iter(|| {
            let r = rt.run_blocking(&p, request(input));
            assert!(matches!(r.outcome, Outcome::Success { .. }));
        })
    });
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("run_from_tokio", |b| {
        b.iter(|| {
            let r = tokio_rt.block_on(rt.run(&p, request(input)));
            assert!(matches!(r.outcome, Outcome::Success { .. }));
        })
    });
    g.bench_function("bare_wasmtime_sync_floor", |b| {
        let floor = floor::Floor::new(&bytes);
        b.iter(|| black_box(floor.call(input)))
    });
    g.finish();
}

fn thumbnail(c: &mut Criterion) {
    let rt = Runtime::new(RuntimeConfig::default()).unwrap();
    let p = rt
        .load_bytes_blocking(&guest_bytes(guests::THUMBNAIL))
        .unwrap();
    let input = br#"{"width": 640, "height": 480, "max": 64}"#;
    let mut g = c.benchmark_group("thumbnail");
    g.sample_size(20);
    g.bench_function("run", |b| {
        b.iter(|| {
            let r = rt.run_blocking(&p, request(input));
            assert!(matches!(r.outcome, Outcome::Success { .. }));
        })
    });
    g.finish();
}

fn compile(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeConfig {
        artifact_dir: Some(dir.path().into()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    for (name, path) in [("echo", guests::ECHO), ("thumbnail", guests::THUMBNAIL)] {
        let bytes = Arc::new(guest_bytes(path));
        let digest = wasmq_host::runtime::digest(&bytes);
        g.bench_function(format!("cold_{name}"), |b| {
            b.iter(|| {
                rt.evict(&digest);
                rt.remove_artifact(&digest);
                black_box(rt.load_bytes_blocking(&bytes).unwrap());
            })
        });
        g.bench_function(format!("cached_artifact_{name}"), |b| {
            rt.load_bytes_blocking(&bytes).unwrap();
            b.iter(|| {
                rt.evict(&digest);
                black_box(rt.load_bytes_blocking(&bytes).unwrap());
            })
        });
    }
    g.finish();
}

/// The floor: plain synchronous wasmtime, same engine settings, no wasmq layer.
#[path = "common/floor.rs"]
mod floor;

criterion_group!(benches, echo, thumbnail, compile);
criterion_main!(benches);
