//! The floor: plain synchronous wasmtime, the pooling allocator, no wasmq layer.

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
        // Both contracts, as the host links them; `enqueue` (0.2.0 only) is never called.
        for (version, funcs) in [
            ("0.1.0", &["log", "progress", "job"][..]),
            ("0.2.0", &["log", "progress", "job", "enqueue"][..]),
        ] {
            let mut host = linker
                .instance(&format!("wasmq:task/host@{version}"))
                .unwrap();
            for f in funcs {
                host.func_new(f, |_, _, _, _| Ok(())).unwrap();
            }
            host.func_new("set-result", |_, _, _, results| {
                results[0] = Val::Result(Ok(None));
                Ok(())
            })
            .unwrap();
        }
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
