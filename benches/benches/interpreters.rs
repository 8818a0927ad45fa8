//! Per-attempt cost of an echo task in Rust, Python and JavaScript (criterion).
//!
//! ```text
//! cargo bench -p wasmq-benches --bench interpreters
//! ```
//!
//! Each iteration is one attempt as a worker runs it: a fresh instance from the pooling
//! allocator (the interpreter's heap snapshot restored from the artifact's copy-on-write
//! image), the call, the teardown. `*_floor` is bare synchronous wasmtime on the same
//! component (pooling allocator, copy-on-write images; no fuel, limiter or sinks).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmq_host::runtime::{Outcome, Runtime, RuntimeConfig};
use wasmq_tests::{guest_bytes, guests};

#[path = "common/request.rs"]
mod request;
use request::request;

fn echo(c: &mut Criterion) {
    let rt = Runtime::new(RuntimeConfig {
        artifact_dir: Some(wasmq_tests::interpreter_artifact_dir()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let input = br#"{"n": 1}"#;
    let mut g = c.benchmark_group("echo");
    for (name, path) in [
        ("rust", guests::ECHO),
        ("python", guests::PY_ECHO),
        ("js", guests::JS_ECHO),
    ] {
        let p = rt.load_bytes_blocking(&guest_bytes(path)).unwrap();
        // The first attempt faults the image in; measure the steady state.
        let warm = rt.run_blocking(&p, request(input));
        assert!(
            matches!(warm.outcome, Outcome::Success { .. }),
            "{name}: {:?}",
            warm.outcome
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = rt.run_blocking(&p, request(input));
                assert!(matches!(r.outcome, Outcome::Success { .. }));
            })
        });
        let floor = floor::Floor::new(&guest_bytes(path));
        g.bench_function(format!("{name}_floor"), |b| {
            b.iter(|| black_box(floor.call(input)))
        });
    }
    g.finish();
}

#[path = "common/floor.rs"]
mod floor;

criterion_group!(benches, echo);
criterion_main!(benches);
