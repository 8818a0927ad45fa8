//! The one `wasmtime::Engine` per process and the thread that advances its epoch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::Limits;
use super::limits::INTERPRETED_FUEL;

/// How often the epoch advances. Timeouts and cancellation are noticed within one tick.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// Core instances a single component may contain (a Rust wasip2 component has 3–5).
const CORE_INSTANCES_PER_COMPONENT: u32 = 16;
/// Linear memories a single component may define.
const MEMORIES_PER_COMPONENT: u32 = 2;
/// Tables a single component may define.
const TABLES_PER_COMPONENT: u32 = 8;
/// Bytes of a linear memory reset in place (and kept resident) between jobs.
const KEEP_RESIDENT: usize = 32 << 20;
/// Elements a table may hold (function pointers of a large program fit easily).
pub(crate) const TABLE_ELEMENTS: usize = 100_000;

/// Settings of the sandbox. Every field has a production default ([`Default`]).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instance slots: attempts that may run at once. Default 16.
    pub slots: u32,
    /// Server-wide maximum limits; per-job limits are clamped to these, and a limit that
    /// neither the module nor the job sets is the maximum. Default: [`Limits::default_max`].
    pub max_limits: Limits,
    /// The maximum (and default) fuel of a Python or JavaScript task in place of
    /// `max_limits.fuel` when larger ([`Language`](super::Language)). A module names its
    /// own language, so this bounds any tenant's attempt; the timeout still applies.
    /// Default [`INTERPRETED_FUEL`].
    pub max_fuel_interpreted: u64,
    /// Largest module accepted, in bytes. Default 64 MiB.
    pub max_module_bytes: usize,
    /// Longest a compile may take before the upload is refused (wall clock; in a
    /// compile process also its CPU time). Default 120 s: a compile uses one core, and a
    /// ~35 MiB Python component needs well over the half minute it takes on two.
    pub compile_timeout: Duration,
    /// Address space a compile process may use, in bytes; a compile needing more is
    /// refused. Applies in [`CompileMode::Subprocess`]. Default 3 GiB (a ~35 MiB Python
    /// component compiles well within it).
    pub compile_memory_bytes: u64,
    /// Compiles that may run at once (each uses one core: compilation is not parallel).
    /// A compile holds its place until it has really ended. Default 1.
    pub concurrent_compiles: usize,
    /// Where compiles run. Default [`CompileMode::Auto`].
    pub compile_mode: CompileMode,
    /// Where precompiled artifacts are cached across restarts. Default none.
    pub artifact_dir: Option<PathBuf>,
    /// Most bytes of artifacts kept in `artifact_dir`; past it the least recently used
    /// files are deleted. Default 2 GiB.
    pub artifact_dir_max_bytes: u64,
    /// Compiled modules kept in memory. Default 256.
    pub cache_capacity: usize,
    /// Most bytes of compiled code kept in memory; past it the least recently used
    /// modules are dropped (the next load reads the artifact or recompiles). Default 1 GiB.
    pub cache_max_bytes: u64,
    /// Wasm stack available to a guest, in bytes. Default 512 KiB.
    pub max_wasm_stack: usize,
    /// Threads that run guests. Default: one per CPU.
    pub guest_threads: Option<usize>,
    /// Outbound HTTP: deny ranges and per-attempt caps. Default [`OutboundConfig::default`].
    pub outbound: super::OutboundConfig,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            slots: 16,
            max_limits: Limits::default_max(),
            max_fuel_interpreted: INTERPRETED_FUEL,
            max_module_bytes: 64 << 20,
            compile_timeout: Duration::from_secs(120),
            compile_memory_bytes: 3 << 30,
            concurrent_compiles: 1,
            compile_mode: CompileMode::Auto,
            artifact_dir: None,
            artifact_dir_max_bytes: 2 << 30,
            cache_capacity: 256,
            cache_max_bytes: 1 << 30,
            max_wasm_stack: 512 << 10,
            guest_threads: None,
            outbound: super::OutboundConfig::default(),
        }
    }
}

/// Where a module is compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CompileMode {
    /// [`CompileMode::Subprocess`] with this executable when it is the `wasmq` binary
    /// (which has the hidden compile command), else [`CompileMode::InProcess`].
    #[default]
    Auto,
    /// On a thread of this process: bounded in time (the caller stops waiting) and in
    /// concurrency (the thread keeps its permit until it ends), but not in memory.
    InProcess,
    /// In a child process, `program` run with the hidden compile command
    /// ([`super::COMPILE_COMMAND`]), under address-space and CPU-time limits and killed
    /// at the deadline.
    Subprocess {
        /// The `wasmq` executable.
        program: PathBuf,
    },
}

impl CompileMode {
    /// Resolves [`CompileMode::Auto`] for this process.
    pub(crate) fn resolve(&self) -> CompileMode {
        match self {
            CompileMode::Auto => match std::env::current_exe() {
                Ok(exe) if exe.file_stem().is_some_and(|s| s == "wasmq") => {
                    CompileMode::Subprocess { program: exe }
                }
                _ => CompileMode::InProcess,
            },
            other => other.clone(),
        }
    }
}

/// The settings that decide what compiled code looks like, shared by the serving
/// engine and a compile process's engine so an artifact from one loads in the other
/// (the allocation strategy does not enter `precompile_compatibility_hash`).
pub(crate) fn code_config(max_wasm_stack: usize) -> Config {
    let mut c = Config::new();
    c.consume_fuel(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .max_wasm_stack(max_wasm_stack)
        .wasm_component_model(true)
        // One core per compile: concurrency is bounded by compile permits.
        .parallel_compilation(false)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    c
}

pub(crate) fn build_engine(config: &RuntimeConfig) -> wasmtime::Result<Engine> {
    let slots = config.slots.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MEMORIES_PER_COMPONENT)
        .total_tables(slots * TABLES_PER_COMPONENT)
        .total_stacks(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .table_elements(TABLE_ELEMENTS)
        .max_memory_size(config.max_limits.memory_bytes as usize)
        // Reset what a job dirtied by memset rather than madvise, so the next job of the
        // slot takes no page faults on an interpreter's heap image; PAGEMAP_SCAN (Linux
        // 6.7+) finds the dirty pages, so an untouched image costs nothing to reset.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(16 << 10)
        .pagemap_scan(pagemap_scan_setting(
            std::fs::read_to_string("/proc/swaps").ok().as_deref(),
        ));

    let mut c = code_config(config.max_wasm_stack);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&c)
}

/// Whether slots are reset through `PAGEMAP_SCAN`, given `/proc/swaps` (read at start).
/// The scan resets only *present* dirty pages: one swapped out would be neither reset nor
/// decommitted and the slot's next job could read it, so with swap on, or when
/// `/proc/swaps` cannot be read, memset/madvise.
fn pagemap_scan_setting(proc_swaps: Option<&str>) -> wasmtime::Enabled {
    let swap_on = proc_swaps.is_none_or(|s| s.lines().skip(1).any(|l| !l.trim().is_empty()));
    if swap_on {
        tracing::warn!(
            "swap is on, or /proc/swaps unreadable: sandboxes are reset without PAGEMAP_SCAN (slower)"
        );
        wasmtime::Enabled::No
    } else {
        wasmtime::Enabled::Auto
    }
}

/// Advances the engine's epoch every [`TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread for `engine`.
    pub fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasmq-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_with_swap_resets_slots_without_the_scan() {
        let none = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(matches!(
            pagemap_scan_setting(Some(none)),
            wasmtime::Enabled::Auto
        ));
        assert!(matches!(
            pagemap_scan_setting(Some("")),
            wasmtime::Enabled::Auto
        ));
        let swap =
            format!("{none}/swapfile                               file\t\t4194300\t\t0\t\t-2\n");
        assert!(matches!(
            pagemap_scan_setting(Some(&swap)),
            wasmtime::Enabled::No
        ));
        assert!(matches!(pagemap_scan_setting(None), wasmtime::Enabled::No));
    }
}
