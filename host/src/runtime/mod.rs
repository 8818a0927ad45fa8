//! The sandbox: runs one attempt of one job in a fresh wasmtime instance.
//!
//! Nothing here knows SQL or HTTP. The worker hands [`Runtime::run`] a compiled
//! [`Prepared`] module (from [`Runtime::load`], cached by digest), an input and the
//! attempt's [`Limits`]; it gets back an [`AttemptReport`]: a typed [`Outcome`],
//! [`Usage`], and the captured log.
//!
//! Every guest is assumed hostile. Per attempt there is a fresh `Store` with fuel, an
//! epoch deadline (wall clock and cancellation), a `ResourceLimiter` on memory and
//! tables, and WASI p2 with nothing granted (no files, environment, arguments, sockets
//! or name lookup; clocks and random only). Instances come from a bounded pool; more
//! concurrent attempts than slots wait for a permit instead of failing.
//!
//! Uploads are just as hostile: a compile runs in a child process under memory and
//! CPU-time rlimits (see `compile`), one core each, a bounded number at once, and only
//! modules that pass every check reach the byte-bounded caches.

mod cache;
mod children;
mod compile;
mod engine;
mod host;
mod language;
mod limits;
mod outbound;
mod outcome;
mod output;
mod run;
mod validate;

pub use cache::{CacheStats, ModuleCache};
pub use children::{Admitted, Child, ChildRequest, DryRun, Spawner};
pub use compile::{COMPILE_COMMAND, child_main as compile_child_main};
pub use engine::{CompileMode, EpochTicker, RuntimeConfig};
pub use language::Language;
pub use limits::{DEFAULT_FUEL, INTERPRETED_FUEL, Limits};
pub use outbound::{
    AllowedHost, DEFAULT_DENY, DenyRanges, Grants, MAX_ALLOWED_HOSTS, OutboundConfig, REDACTED,
    parse_allowed_hosts,
};
pub use outcome::{AttemptReport, Failure, FailureKind, Outcome, Progress, Usage};
pub use run::{CancelHandle, JobInfo, ProgressSink, RunRequest};
pub use validate::{ModuleKind, ValidateError, digest};

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime::Engine;

/// Errors from loading a module (the guest's own failures are [`Outcome`]s, not errors).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The module is not acceptable; the message names the reason and is safe to show.
    #[error(transparent)]
    Invalid(#[from] ValidateError),
    /// A host-side failure (I/O on the artifact cache, a panicked compile thread).
    #[error("{0}")]
    Internal(String),
}

/// A module compiled for this engine and pre-linked, so running it is instantiate + call.
#[derive(Clone)]
pub struct Prepared {
    inner: Arc<run::PreparedInner>,
    language: Language,
}

impl Prepared {
    /// SHA-256 digest (lower-case hex) of the module's bytes.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Whether this is a component or a WASI command module.
    pub fn kind(&self) -> ModuleKind {
        self.inner.kind()
    }

    /// Whether it imports outbound HTTP or config, so that its attempts need the
    /// module's [`Grants`] (the others run without reading them).
    pub fn wants_grants(&self) -> bool {
        self.inner.wants_grants
    }

    /// The language its task is written in, which sets its maximum fuel.
    pub fn language(&self) -> Language {
        self.language
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("digest", &self.inner.digest)
            .field("kind", &self.kind())
            .finish()
    }
}

/// What was found of a module's bytes before compiling them.
struct Checked {
    digest: String,
    kind: ModuleKind,
    initial_memory: u64,
    language: Language,
}

/// What to write to the artifact directory once a module is accepted.
enum Artifact {
    /// Nothing: it was loaded from there.
    OnDisk,
    /// These bytes, from a compile process.
    Bytes(Vec<u8>),
    /// The module, serialized (if there is an artifact directory).
    Serialize,
}

/// The sandbox runtime: one per process. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    config: Arc<RuntimeConfig>,
    compile_mode: Arc<CompileMode>,
    linkers: Arc<run::Linkers>,
    cache: Arc<ModuleCache>,
    slots: Arc<Semaphore>,
    compiles: Arc<Semaphore>,
    guests: Arc<GuestExecutor>,
    outbound: Arc<OutboundConfig>,
    _ticker: Arc<EpochTicker>,
}

/// The thread pool guests run on, apart from the caller's runtime.
struct GuestExecutor(Option<tokio::runtime::Runtime>);

impl GuestExecutor {
    fn new(threads: usize) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("wasmq-guest")
            .enable_time()
            // Guests' outbound HTTP connects from here (runtime/outbound/send.rs).
            .enable_io()
            .build()?;
        Ok(Self(Some(rt)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until drop").handle()
    }
}

impl Drop for GuestExecutor {
    fn drop(&mut self) {
        // May be dropped inside another runtime, where a blocking shutdown panics.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Runtime {
    /// Builds the engine (pooling allocator, fuel, epochs, copy-on-write images) and
    /// starts the epoch ticker thread.
    pub fn new(config: RuntimeConfig) -> Result<Self, RunError> {
        let engine =
            engine::build_engine(&config).map_err(|e| RunError::Internal(format!("{e:#}")))?;
        let linkers =
            run::Linkers::new(&engine).map_err(|e| RunError::Internal(format!("{e:#}")))?;
        let ticker = EpochTicker::start(engine.clone(), engine::TICK);
        let cache = ModuleCache::new(
            cache::CacheBounds {
                dir: config.artifact_dir.clone(),
                dir_max_bytes: config.artifact_dir_max_bytes,
                count: config.cache_capacity,
                max_bytes: config.cache_max_bytes,
            },
            &engine,
        );
        let threads = config.guest_threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        });
        let guests = GuestExecutor::new(threads)
            .map_err(|e| RunError::Internal(format!("starting guest threads: {e}")))?;
        Ok(Self {
            guests: Arc::new(guests),
            outbound: Arc::new(config.outbound.clone()),
            slots: Arc::new(Semaphore::new(config.slots as usize)),
            compiles: Arc::new(Semaphore::new(config.concurrent_compiles.max(1))),
            compile_mode: Arc::new(config.compile_mode.resolve()),
            engine,
            linkers: Arc::new(linkers),
            cache: Arc::new(cache),
            config: Arc::new(config),
            _ticker: Arc::new(ticker),
        })
    }

    /// The configuration this runtime was built with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The maximum limits of a task in `language` (a job's limits are clamped to these,
    /// and a limit it leaves unset is the maximum): an interpreter's fuel is
    /// `max_fuel_interpreted`, never less than a compiled task's.
    pub fn max_limits_for(&self, language: Language) -> Limits {
        match language {
            Language::Compiled => self.config.max_limits,
            Language::Python | Language::JavaScript => self.max_limits_any(),
        }
    }

    /// The highest limits any module may have: what an enqueue is checked against, the
    /// module's language being unknown there.
    pub fn max_limits_any(&self) -> Limits {
        let max = self.config.max_limits;
        Limits {
            fuel: max.fuel.max(self.config.max_fuel_interpreted),
            ..max
        }
    }

    /// Validates untrusted bytes as an upload would: size, kind, initial memory, compile
    /// (bounded in time, memory and concurrency), allowed imports. Returns the module kind and its digest.
    pub async fn validate(&self, bytes: Arc<Vec<u8>>) -> Result<(ModuleKind, String), RunError> {
        let prepared = self.load_bytes(bytes).await?;
        Ok((prepared.kind(), prepared.digest().to_owned()))
    }

    /// Returns the prepared module for `digest` from the in-memory cache, the on-disk
    /// artifact cache, or by compiling `bytes` (fetched only when needed).
    pub async fn load<F, Fut, E>(&self, digest: &str, fetch: F) -> Result<Prepared, RunError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, E>>,
        E: std::fmt::Display,
    {
        if let Some(p) = self.cache.get(digest) {
            return Ok(p);
        }
        let bytes = fetch()
            .await
            .map_err(|e| RunError::Internal(format!("fetching module {digest}: {e}")))?;
        let prepared = self.load_bytes(Arc::new(bytes)).await?;
        if prepared.digest() != digest {
            return Err(RunError::Internal(format!(
                "module bytes for {digest} hash to {}",
                prepared.digest()
            )));
        }
        Ok(prepared)
    }

    /// Compiles (or fetches from a cache) `bytes` and returns the prepared module.
    /// The compile is bounded in time, memory (in a compile process) and concurrency.
    pub async fn load_bytes(&self, bytes: Arc<Vec<u8>>) -> Result<Prepared, RunError> {
        let digest = validate::digest(&bytes);
        if let Some(p) = self.cache.get(&digest) {
            return Ok(p);
        }
        let (kind, initial_memory) = self.precheck(&bytes)?;
        let scan = bytes.clone();
        // A pass over every section, off the async threads like the compile.
        let language = tokio::task::spawn_blocking(move || Language::of(&scan))
            .await
            .map_err(|e| RunError::Internal(format!("reading a module's language: {e}")))?;
        let permit = self
            .compiles
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        if let Some(p) = self.cache.get(&digest) {
            return Ok(p);
        }
        let this = self.clone();
        let d = digest.clone();
        let from_disk =
            tokio::task::spawn_blocking(move || this.cache.load_artifact(&this.engine, &d, kind))
                .await
                .map_err(|e| RunError::Internal(format!("loading an artifact: {e}")))?;
        let checked = Checked {
            digest,
            kind,
            initial_memory,
            language,
        };
        if let Some(compiled) = from_disk {
            return self.accept(checked, compiled, Artifact::OnDisk);
        }
        self.cache.count_compile();
        let (compiled, artifact) = match &*self.compile_mode {
            CompileMode::Subprocess { program } => {
                let limits = compile::ChildLimits {
                    timeout: self.config.compile_timeout,
                    memory_bytes: self.config.compile_memory_bytes,
                    max_wasm_stack: self.config.max_wasm_stack,
                };
                let r = compile::in_child(program, &self.engine, kind, bytes, &limits).await;
                // Only now, with the compile process gone, may another compile start.
                drop(permit);
                let (compiled, artifact) = r?;
                (compiled, Artifact::Bytes(artifact))
            }
            _ => {
                let c = compile::on_thread(
                    self.engine.clone(),
                    kind,
                    bytes,
                    permit,
                    self.config.compile_timeout,
                )
                .await?;
                (c, Artifact::Serialize)
            }
        };
        self.accept(checked, compiled, artifact)
    }

    /// Blocking variant of [`Runtime::load_bytes`] for callers outside an async
    /// runtime (the `wasmq run` command, benchmarks). Compiles in this process with no
    /// time bound.
    pub fn load_bytes_blocking(&self, bytes: &[u8]) -> Result<Prepared, RunError> {
        let digest = validate::digest(bytes);
        if let Some(p) = self.cache.get(&digest) {
            return Ok(p);
        }
        let (kind, initial_memory) = self.precheck(bytes)?;
        let checked = Checked {
            digest,
            kind,
            initial_memory,
            language: Language::of(bytes),
        };
        let loaded = self
            .cache
            .load_artifact(&self.engine, &checked.digest, kind);
        let (compiled, artifact) = match loaded {
            Some(c) => (c, Artifact::OnDisk),
            None => {
                self.cache.count_compile();
                (
                    compile::compile(&self.engine, kind, bytes)?,
                    Artifact::Serialize,
                )
            }
        };
        self.accept(checked, compiled, artifact)
    }

    /// The checks that need no compiler: size, kind, initial memory (returned too).
    fn precheck(&self, bytes: &[u8]) -> Result<(ModuleKind, u64), RunError> {
        validate::check_size(bytes, self.config.max_module_bytes)?;
        let kind = validate::detect_kind(bytes)?;
        let initial_memory = validate::initial_memory_bytes(bytes);
        validate::check_initial_memory(initial_memory, self.config.max_limits.memory_bytes)?;
        Ok((kind, initial_memory))
    }

    /// Checks a compiled module's imports and exports, links it, and only then caches
    /// it: in memory, and on disk when it was just compiled (`artifact`, or serialized
    /// here), so a refused module leaves nothing behind.
    fn accept(
        &self,
        checked: Checked,
        compiled: cache::Compiled,
        artifact: Artifact,
    ) -> Result<Prepared, RunError> {
        let Checked {
            digest,
            kind,
            initial_memory,
            language,
        } = checked;
        match &compiled {
            cache::Compiled::Component(c) => validate::check_component_imports(&self.engine, c)?,
            cache::Compiled::Command(m) => validate::check_command_module(m)?,
        }
        let size = compiled.image_bytes();
        let artifact = match artifact {
            Artifact::Bytes(a) => Some(a),
            Artifact::Serialize if self.cache.has_dir() => compiled.serialize().ok(),
            Artifact::Serialize | Artifact::OnDisk => None,
        };
        let inner =
            run::PreparedInner::new(&self.linkers, digest.clone(), compiled, initial_memory)?;
        if let Some(a) = artifact {
            self.cache.store_artifact(&digest, kind, &a);
        }
        let prepared = Prepared {
            inner: Arc::new(inner),
            language,
        };
        self.cache.insert(digest, prepared.clone(), size);
        Ok(prepared)
    }

    /// Runs one attempt. Waits for a free instance slot first (never fails for lack
    /// of one), then runs on the guest executor: a dedicated thread pool apart from the
    /// caller's, where guests yield at every epoch tick, so a spinning guest can stall
    /// neither other jobs nor the HTTP server.
    pub async fn run(&self, prepared: &Prepared, request: RunRequest) -> AttemptReport {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let this = self.clone();
        let prepared = prepared.clone();
        let handle = self.guests.handle().spawn(async move {
            let _permit = permit;
            this.run_unpermitted(&prepared, request).await
        });
        match handle.await {
            Ok(report) => report,
            Err(e) => AttemptReport::host_failure(format!("attempt task failed: {e}")),
        }
    }

    /// Runs one attempt on the current thread (outside any async runtime), waiting for
    /// a slot. For the `wasmq run` command and benchmarks.
    pub fn run_blocking(&self, prepared: &Prepared, request: RunRequest) -> AttemptReport {
        self.guests.handle().block_on(async {
            let _permit = self.slots.acquire().await.expect("semaphore never closed");
            self.run_unpermitted(prepared, request).await
        })
    }

    async fn run_unpermitted(&self, prepared: &Prepared, request: RunRequest) -> AttemptReport {
        let limits = request
            .limits
            .clamp_to(&self.max_limits_for(prepared.language));
        run::run_attempt(
            &self.engine,
            &prepared.inner,
            request,
            limits,
            &self.outbound,
        )
        .await
    }

    /// Drops a module from the in-memory cache (the next load reads the artifact on
    /// disk, or compiles).
    pub fn evict(&self, digest: &str) {
        self.cache.remove(digest);
    }

    /// Deletes a module's precompiled artifacts from disk, if any.
    pub fn remove_artifact(&self, digest: &str) {
        self.cache.remove_artifacts(digest);
    }

    /// Number of modules held compiled in memory.
    pub fn cached_modules(&self) -> usize {
        self.cache.len()
    }

    /// Bytes of compiled code held in memory (bounded by `cache_max_bytes`).
    pub fn cached_bytes(&self) -> u64 {
        self.cache.bytes()
    }

    /// Compiles running now, an abandoned in-process one included.
    pub fn compiles_in_progress(&self) -> usize {
        self.config.concurrent_compiles.max(1) - self.compiles.available_permits()
    }

    /// How often modules were compiled and loaded from artifacts on disk.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Where precompiled artifacts are kept across restarts, if anywhere.
    pub fn artifact_dir(&self) -> Option<&PathBuf> {
        self.config.artifact_dir.as_ref()
    }
}
