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
use wasmq_host::runtime::{Limits, Outcome, RunRequest, Runtime, RuntimeConfig};
use wasmq_tests::{guest_bytes, guests};

fn request(input: &[u8]) -> RunRequest {
    RunRequest {
        input: input.to_vec(),
        limits: Limits::default_max(),
        ..RunRequest::default()
    }
}

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
mod floor {
    use wasmtime::component::{Component, Linker, ResourceTable, Val};
    use wasmtime::{Config, Engine, Store};
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

    pub struct State {
        wasi: WasiCtx,
        table: ResourceTable,
    }

    impl WasiView for State {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.wasi,
                table: &mut self.table,
            }
        }
    }

    pub struct Floor {
        engine: Engine,
        pre: wasmtime::component::InstancePre<State>,
    }

    impl Floor {
        pub fn new(bytes: &[u8]) -> Self {
            let mut config = Config::new();
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::pooling());
            let engine = Engine::new(&config).unwrap();
            let component = Component::from_binary(&engine, bytes).unwrap();
            let mut linker = Linker::<State>::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
            let mut host = linker.instance("wasmq:task/host@0.1.0").unwrap();
            for f in ["log", "progress", "job"] {
                host.func_new(f, |_, _, _, _| Ok(())).unwrap();
            }
            host.func_new("set-result", |_, _, _, results| {
                results[0] = Val::Result(Ok(None));
                Ok(())
            })
            .unwrap();
            let pre = linker.instantiate_pre(&component).unwrap();
            Self { engine, pre }
        }

        pub fn call(&self, input: &[u8]) -> Val {
            let mut store = Store::new(
                &self.engine,
                State {
                    wasi: WasiCtx::builder().build(),
                    table: ResourceTable::new(),
                },
            );
            let instance = self.pre.instantiate(&mut store).unwrap();
            let run = instance.get_func(&mut store, "run").unwrap();
            let mut results = [Val::Bool(false)];
            let arg = Val::List(input.iter().map(|b| Val::U8(*b)).collect());
            run.call(&mut store, &[arg], &mut results).unwrap();
            results[0].clone()
        }
    }
}

criterion_group!(benches, echo, thumbnail, compile);
criterion_main!(benches);
