//! One attempt: a fresh store, instantiate, call, classify.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use wasmtime::component::{HasSelf, ResourceTable};
use wasmtime::{Engine, InstancePre, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx};

use super::cache::Compiled;
use super::host::{AttemptState, Interrupt, Interrupted, Limiter, Task, TaskError, TaskPre, Wasi};
use super::outbound::{Counters, Grants, Hooks, OutboundConfig, redact};
use super::output::SharedSink;
use super::validate::{self, ModuleKind, ValidateError};
use super::{AttemptReport, Failure, FailureKind, Limits, Outcome, Progress, RunError, Usage};

/// Who the guest is running for; returned by the host function `job`.
#[derive(Debug, Clone, Default)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Module name.
    pub module: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
}

/// Receives progress reports while the guest runs.
pub type ProgressSink = Arc<dyn Fn(Progress) + Send + Sync>;

/// Cancels a running attempt: the guest is interrupted within one epoch tick (10 ms),
/// or at once if it is waiting in a host call.
#[derive(Debug, Clone, Default)]
pub struct CancelHandle {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    flag: Arc<AtomicBool>,
    released: AtomicBool,
    notify: Notify,
}

impl CancelHandle {
    /// A handle that has not been cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Interrupts the attempt.
    pub fn cancel(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
        self.inner.notify.notify_one();
    }

    /// Interrupts the attempt because the worker is shutting down: the job is to be
    /// given back unrun, not cancelled. The attempt's outcome is `Cancelled` either way;
    /// [`CancelHandle::is_released`] tells the two apart.
    pub fn release(&self) {
        self.inner.released.store(true, Ordering::SeqCst);
        self.cancel();
    }

    /// Whether [`CancelHandle::release`] was called.
    pub fn is_released(&self) -> bool {
        self.inner.released.load(Ordering::SeqCst)
    }

    /// Whether [`CancelHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }
}

/// One attempt to run.
#[derive(Clone, Default)]
pub struct RunRequest {
    /// The job's input bytes.
    pub input: Vec<u8>,
    /// Limits (clamped to the server maximum before use).
    pub limits: Limits,
    /// What `job()` returns to the guest.
    pub job: JobInfo,
    /// Interrupts the attempt when cancelled.
    pub cancel: CancelHandle,
    /// Called on every progress report.
    pub progress: Option<ProgressSink>,
    /// Outbound hosts and config granted to the module (default: none).
    pub grants: Grants,
    /// Admits the attempt's child jobs (default: none may be enqueued).
    pub spawner: Option<Arc<dyn super::Spawner>>,
}

/// The two linkers, built once per runtime.
pub(crate) struct Linkers {
    component: wasmtime::component::Linker<AttemptState>,
    core: wasmtime::Linker<AttemptState>,
}

impl Linkers {
    pub(crate) fn new(engine: &Engine) -> wasmtime::Result<Self> {
        let mut component = wasmtime::component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component)?;
        wasmtime_wasi_config::add_to_linker(&mut component, config_view)?;
        Task::add_to_linker::<_, HasSelf<AttemptState>>(&mut component, |s| s)?;
        super::host::v1::Task::add_to_linker::<_, HasSelf<AttemptState>>(&mut component, |s| s)?;
        let mut core = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut core, |s: &mut AttemptState| s.p1())?;
        Ok(Self { component, core })
    }
}

fn config_view(state: &mut AttemptState) -> wasmtime_wasi_config::WasiConfig<'_> {
    wasmtime_wasi_config::WasiConfig::from(&state.config)
}

/// A compiled, pre-linked module.
pub(crate) struct PreparedInner {
    pub(crate) digest: String,
    /// Initial bytes of the linear memories the module defines.
    initial_memory: u64,
    /// Whether it imports `wasi:http/outgoing-handler` or `wasi:config/store`: only then
    /// does an attempt need the module's [`Grants`].
    pub(crate) wants_grants: bool,
    pre: Pre,
}

enum Pre {
    Component(TaskPre<AttemptState>),
    Command(InstancePre<AttemptState>),
}

impl PreparedInner {
    pub(crate) fn new(
        linkers: &Linkers,
        digest: String,
        compiled: Compiled,
        initial_memory: u64,
    ) -> Result<Self, RunError> {
        let link_err = |e: wasmtime::Error| ValidateError::Compile(format!("{e:#}"));
        let mut wants_grants = false;
        let pre = match compiled {
            Compiled::Component(c) => {
                wants_grants = validate::wants_grants(&c);
                let ipre = linkers.component.instantiate_pre(&c).map_err(link_err)?;
                let pre = TaskPre::new(ipre).map_err(|e| {
                    ValidateError::MissingExport(format!(
                        "component does not implement world wasmq:task/task (it must export `run: func(input: list<u8>) -> result<_, task-error>`): {e:#}"
                    ))
                })?;
                Pre::Component(pre)
            }
            Compiled::Command(m) => {
                Pre::Command(linkers.core.instantiate_pre(&m).map_err(link_err)?)
            }
        };
        Ok(Self {
            digest,
            initial_memory,
            wants_grants,
            pre,
        })
    }

    pub(crate) fn kind(&self) -> ModuleKind {
        match self.pre {
            Pre::Component(_) => ModuleKind::Component,
            Pre::Command(_) => ModuleKind::Command,
        }
    }
}

/// Extra time past the deadline before a guest stuck in a host call (a long sleep) is
/// abandoned; a guest running Wasm is stopped by the epoch callback on the deadline.
const HOST_CALL_GRACE: Duration = Duration::from_millis(100);

/// Most entries (streams, pollables, …) a guest may hold in its resource table at once.
/// wasmtime allows 1,000,000, each host memory outside the guest's memory limit.
pub(crate) const MAX_RESOURCES: usize = 10_000;

/// Most bytes one `get-random-bytes` call may ask for (wasmtime allows 64 MiB, allocated
/// on the host before being copied into the guest).
pub(crate) const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// What the call itself came to, before classification.
enum CallResult {
    Component(wasmtime::Result<Result<(), TaskError>>),
    Command(wasmtime::Result<()>),
    /// Abandoned while blocked in a host call.
    Abandoned(Interrupt),
}

pub(crate) async fn run_attempt(
    engine: &Engine,
    prepared: &PreparedInner,
    req: RunRequest,
    limits: Limits,
    outbound: &Arc<OutboundConfig>,
) -> AttemptReport {
    let started = Instant::now();
    if let Err(e) = validate::check_initial_memory(prepared.initial_memory, limits.memory_bytes) {
        // Refused before instantiating, in our words rather than the allocator's.
        return AttemptReport::failed(fail(FailureKind::MemoryLimit, e.to_string()));
    }
    let log = SharedSink::new(limits.log_bytes as usize);
    let stdout_result = SharedSink::new(limits.output_bytes as usize);
    let wasi = match prepared.pre {
        Pre::Component(_) => {
            let mut b = WasiCtx::builder();
            b.stdout(log.clone())
                .stderr(log.clone())
                .max_random_size(MAX_RANDOM_BYTES)
                .allow_tcp(false)
                .allow_udp(false);
            Wasi::P2(b.build())
        }
        Pre::Command(_) => {
            let mut b = WasiCtx::builder();
            b.stdin(MemoryInputPipe::new(req.input.clone()))
                .stdout(stdout_result.clone())
                .stderr(log.clone())
                .max_random_size(MAX_RANDOM_BYTES)
                .allow_tcp(false)
                .allow_udp(false);
            Wasi::P1(b.build_p1())
        }
    };
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let deadline = started + limits.timeout();
    let counters = Arc::new(Counters::default());
    let Grants {
        allowed_hosts,
        config,
        secrets,
    } = req.grants.clone();
    let state = AttemptState {
        wasi,
        table,
        limiter: Limiter::new(limits.memory_bytes as usize),
        log: log.clone(),
        result: None,
        output_cap: limits.output_bytes as usize,
        output_refused: false,
        progress: None,
        progress_sink: req.progress.clone(),
        job: req.job.clone(),
        deadline,
        cancel: req.cancel.inner.flag.clone(),
        interrupted: None,
        http: wasmtime_wasi_http::WasiHttpCtx::new(),
        hooks: Hooks::new(
            allowed_hosts,
            outbound.clone(),
            log.clone(),
            counters.clone(),
        ),
        config: config.into_iter().collect(),
        children: super::children::Children::new(req.spawner.clone()),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_fuel(limits.fuel).expect("fuel is enabled");
    store.epoch_deadline_callback(|mut ctx| match ctx.data_mut().check_interrupt() {
        Some(why) => Err(wasmtime::Error::new(Interrupted(why))),
        // Yield to the executor at every tick, so spinning guests share threads fairly.
        // tokio's `yield_now` defers the wake-up, so the yielding guest goes behind the
        // tasks already waiting instead of straight back into the worker's LIFO slot.
        None => Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        )),
    });
    store.set_epoch_deadline(1);

    let call = async {
        match &prepared.pre {
            Pre::Component(pre) => CallResult::Component(
                async {
                    let task = pre.instantiate_async(&mut store).await?;
                    task.call_run(&mut store, &req.input).await
                }
                .await,
            ),
            Pre::Command(pre) => CallResult::Command(
                async {
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                }
                .await,
            ),
        }
    };
    let backstop = limits.timeout() + HOST_CALL_GRACE;
    let result = tokio::select! {
        r = tokio::time::timeout(backstop, call) => r.unwrap_or(CallResult::Abandoned(Interrupt::Timeout)),
        _ = wait_cancelled(&req.cancel) => CallResult::Abandoned(Interrupt::Cancelled),
    };

    let elapsed = started.elapsed();
    let fuel_left = store.get_fuel().unwrap_or(0);
    let state = store.data();
    let usage = Usage {
        fuel: limits.fuel.saturating_sub(fuel_left),
        memory_peak_bytes: state.limiter.memory_peak as u64,
        duration_ms: elapsed.as_millis() as u64,
        duration_us: elapsed.as_micros() as u64,
        http_requests: counters.requests.load(Ordering::Relaxed),
        http_bytes_in: counters.bytes_in.load(Ordering::Relaxed),
        http_bytes_out: counters.bytes_out.load(Ordering::Relaxed),
        children: 0,
    };
    let mut outcome = classify(result, state, &stdout_result, &limits);
    if let Outcome::Failure(f) = &mut outcome
        && !secrets.is_empty()
    {
        let mut message = std::mem::take(&mut f.message).into_bytes();
        redact(&mut message, &secrets);
        f.message = String::from_utf8_lossy(&message).into_owned();
    }
    let progress = state.progress.clone();
    // Children are kept only for a completed attempt: a failed one leaves none.
    let children = match &outcome {
        Outcome::Success { .. } => std::mem::take(&mut store.data_mut().children.made),
        Outcome::Failure(_) => Vec::new(),
    };
    let usage = Usage {
        children: children.len() as u64,
        ..usage
    };
    let result_for_success = match &outcome {
        Outcome::Success { .. } => match prepared.pre {
            Pre::Component(_) => store.data_mut().result.take().unwrap_or_default(),
            Pre::Command(_) => stdout_result.take().bytes,
        },
        Outcome::Failure(_) => Vec::new(),
    };
    drop(store);
    let mut log = log.take();
    redact(&mut log.bytes, &secrets);
    AttemptReport {
        outcome: match outcome {
            Outcome::Success { .. } => Outcome::Success {
                result: result_for_success,
            },
            f => f,
        },
        usage,
        log: log.bytes,
        log_dropped: log.dropped,
        progress,
        children,
    }
}

async fn wait_cancelled(cancel: &CancelHandle) {
    loop {
        let notified = cancel.inner.notify.notified();
        if cancel.is_cancelled() {
            return;
        }
        notified.await;
    }
}

/// Most bytes of a trap's text formatted at all; [`fail`] then cuts it to the message cap.
/// Frame names come from the module's name section, so unbounded formatting would let a
/// guest make the host build a string of (frames × module size).
const TRAP_TEXT_BOUND: usize = 64 << 10;

/// The trap's cause first (so the cap never cuts it off), then wasmtime's report with
/// the Wasm backtrace.
fn trap_message(e: &wasmtime::Error) -> String {
    use std::fmt::Write as _;
    struct Bounded(String);
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = TRAP_TEXT_BOUND.saturating_sub(self.0.len());
            if s.len() <= room {
                self.0.push_str(s);
                return Ok(());
            }
            let mut end = room;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            self.0.push_str(&s[..end]);
            Err(std::fmt::Error)
        }
    }
    let mut out = Bounded(String::new());
    let _ = write!(out, "{}\n\n{e:?}", e.root_cause());
    out.0
}

/// A failure outcome. Every message is capped here: traps carry a backtrace named by the
/// module's own name section, and task errors are whatever the guest sent.
fn fail(kind: FailureKind, message: impl Into<String>) -> Outcome {
    Outcome::Failure(Failure {
        kind,
        message: crate::text::cap_message(message.into()),
    })
}

/// Turns what happened into an [`Outcome`]. Limit violations are read from typed
/// traps and from flags the limiter and host functions set, never from messages; a
/// limit that was hit is the cause of a failure whatever the guest did next.
fn classify(
    result: CallResult,
    state: &AttemptState,
    stdout: &SharedSink,
    limits: &Limits,
) -> Outcome {
    let interrupted = match &result {
        CallResult::Abandoned(why) => Some(*why),
        _ => state.interrupted,
    };
    match interrupted {
        Some(Interrupt::Cancelled) => {
            return fail(FailureKind::Cancelled, "the attempt was cancelled");
        }
        Some(Interrupt::Timeout) => {
            return fail(
                FailureKind::Timeout,
                format!(
                    "the attempt ran past its {} ms time limit",
                    limits.timeout_ms
                ),
            );
        }
        None => {}
    }
    let limit_failure = |state: &AttemptState| -> Option<Outcome> {
        if state.output_refused {
            return Some(fail(
                FailureKind::OutputLimit,
                format!(
                    "the result exceeded the output limit of {} bytes",
                    limits.output_bytes
                ),
            ));
        }
        if state.limiter.memory_refused {
            return Some(fail(
                FailureKind::MemoryLimit,
                format!(
                    "linear memory would have grown past the limit of {} bytes",
                    limits.memory_bytes
                ),
            ));
        }
        None
    };
    let trap = |e: wasmtime::Error, state: &AttemptState| -> Outcome {
        if matches!(e.downcast_ref::<Trap>(), Some(Trap::OutOfFuel)) {
            return fail(
                FailureKind::OutOfFuel,
                format!("the attempt used up its fuel limit of {}", limits.fuel),
            );
        }
        limit_failure(state).unwrap_or_else(|| fail(FailureKind::Trap, trap_message(&e)))
    };
    match result {
        CallResult::Abandoned(_) => unreachable!("handled above"),
        CallResult::Component(Ok(Ok(()))) => Outcome::Success { result: Vec::new() },
        CallResult::Component(Ok(Err(task_err))) => {
            limit_failure(state).unwrap_or_else(|| match task_err {
                TaskError::Retry(m) => fail(FailureKind::TaskError { fatal: false }, m),
                TaskError::Fatal(m) => fail(FailureKind::TaskError { fatal: true }, m),
            })
        }
        CallResult::Component(Err(e)) => trap(e, state),
        CallResult::Command(r) => {
            let exit = match r {
                Ok(()) => 0,
                Err(e) => match e.downcast_ref::<I32Exit>() {
                    Some(I32Exit(code)) => *code,
                    None => return trap(e, state),
                },
            };
            let overflowed = stdout.0.lock().expect("sink lock").overflowed();
            if overflowed {
                return fail(
                    FailureKind::OutputLimit,
                    format!(
                        "stdout exceeded the output limit of {} bytes",
                        limits.output_bytes
                    ),
                );
            }
            if exit == 0 {
                Outcome::Success { result: Vec::new() }
            } else {
                limit_failure(state).unwrap_or_else(|| {
                    fail(
                        FailureKind::TaskError { fatal: false },
                        format!("the command exited with code {exit}"),
                    )
                })
            }
        }
    }
}
