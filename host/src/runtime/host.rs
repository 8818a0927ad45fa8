//! The per-attempt store data and the host side of the WIT contract.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::Progress;
use super::children::{Admitted, Child, ChildRequest, Children};
use super::engine::TABLE_ELEMENTS;
use super::output::SharedSink;
use super::run::{JobInfo, ProgressSink};

// The current contract (`wit/task.wit`): `enqueue` awaits the worker's spawner.
wasmtime::component::bindgen!({
    path: "../wit/task.wit",
    world: "task",
    imports: { "wasmq:task/host.enqueue": async },
    exports: { default: async },
});

/// The frozen 0.1.0 contract: its components link against the same host functions.
/// Its export has the same shape, so both run through [`TaskPre`].
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0/task.wit",
        world: "task",
        exports: { default: async },
    });
}

pub(crate) use wasmq::task::types::{EnqueueRequest, JobInfo as WitJobInfo, Level};

/// Why the epoch callback stopped the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    Timeout,
    Cancelled,
}

/// The error the epoch callback raises; the cause is also recorded in the store.
#[derive(Debug, thiserror::Error)]
#[error("attempt interrupted: {0:?}")]
pub(crate) struct Interrupted(pub(crate) Interrupt);

/// WASI state: a component gets WASI p2, a command module WASI p1. One per store,
/// built in place and never moved afterwards, so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Wasi {
    P2(WasiCtx),
    P1(WasiP1Ctx),
}

/// Everything one attempt's store holds. Dropped with the store.
pub(crate) struct AttemptState {
    pub(crate) wasi: Wasi,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: Limiter,
    pub(crate) log: SharedSink,
    pub(crate) result: Option<Vec<u8>>,
    pub(crate) output_cap: usize,
    pub(crate) output_refused: bool,
    pub(crate) progress: Option<Progress>,
    pub(crate) progress_sink: Option<ProgressSink>,
    pub(crate) job: JobInfo,
    pub(crate) deadline: Instant,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) interrupted: Option<Interrupt>,
    /// Outbound HTTP: the context, and the hooks that enforce the allow-list.
    pub(crate) http: wasmtime_wasi_http::WasiHttpCtx,
    pub(crate) hooks: super::outbound::Hooks,
    /// What `wasi:config/store` answers.
    pub(crate) config: wasmtime_wasi_config::WasiConfigVariables,
    /// The children admitted so far.
    pub(crate) children: Children,
}

impl AttemptState {
    pub(crate) fn p1(&mut self) -> &mut WasiP1Ctx {
        match &mut self.wasi {
            Wasi::P1(ctx) => ctx,
            Wasi::P2(_) => unreachable!("the WASI p1 linker is only used for command modules"),
        }
    }

    /// Called by the epoch callback every tick while the guest runs.
    pub(crate) fn check_interrupt(&mut self) -> Option<Interrupt> {
        let why = if self.cancel.load(Ordering::Relaxed) {
            Some(Interrupt::Cancelled)
        } else if Instant::now() >= self.deadline {
            Some(Interrupt::Timeout)
        } else {
            None
        };
        if why.is_some() {
            self.interrupted = why;
        }
        why
    }

    fn log_line(&mut self, level: &str, message: &str) {
        let mut line = Vec::with_capacity(level.len() + message.len() + 2);
        line.extend_from_slice(level.as_bytes());
        line.push(b' ');
        line.extend_from_slice(message.as_bytes());
        line.push(b'\n');
        self.log.push(&line);
    }
}

impl WasiView for AttemptState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        match &mut self.wasi {
            Wasi::P2(ctx) => WasiCtxView {
                ctx,
                table: &mut self.table,
            },
            Wasi::P1(_) => unreachable!("the WASI p2 linker is only used for components"),
        }
    }
}

impl wasmq::task::types::Host for AttemptState {}

impl wasmq::task::host::Host for AttemptState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        };
        self.log_line(level, &message);
    }

    fn progress(&mut self, percent: u8, note: Option<String>) {
        let note = note.map(|mut n| {
            truncate_utf8(&mut n, MAX_PROGRESS_NOTE);
            n
        });
        let p = Progress {
            percent: percent.min(100),
            note,
        };
        if let Some(sink) = &self.progress_sink {
            sink(p.clone());
        }
        self.progress = Some(p);
    }

    fn set_result(&mut self, data: Vec<u8>) -> Result<(), String> {
        if data.len() > self.output_cap {
            self.output_refused = true;
            return Err(format!(
                "result of {} bytes exceeds the output limit of {} bytes",
                data.len(),
                self.output_cap
            ));
        }
        self.result = Some(data);
        Ok(())
    }

    fn job(&mut self) -> WitJobInfo {
        WitJobInfo {
            id: self.job.id.clone(),
            module: self.job.module.clone(),
            attempt: self.job.attempt,
            max_attempts: self.job.max_attempts,
        }
    }

    async fn enqueue(&mut self, req: EnqueueRequest) -> Result<u64, String> {
        let request = ChildRequest {
            module: req.module,
            input: req.input,
            queue: req.queue,
            priority: req.priority,
            delay_ms: req.delay_ms,
            idempotency_key: req.idempotency_key,
        };
        let spawner = self.children.spawner.clone();
        match spawner.admit(&request).await? {
            Admitted::New { id, digest } => {
                self.children.made.push(Child {
                    id,
                    digest,
                    request,
                });
                Ok(id as u64)
            }
            Admitted::Existing(id) => Ok(id as u64),
        }
    }
}

impl v1::wasmq::task::types::Host for AttemptState {}

impl v1::wasmq::task::host::Host for AttemptState {
    fn log(&mut self, level: v1::wasmq::task::types::Level, message: String) {
        use v1::wasmq::task::types::Level as V1;
        let level = match level {
            V1::Debug => Level::Debug,
            V1::Info => Level::Info,
            V1::Warn => Level::Warn,
            V1::Error => Level::Error,
        };
        wasmq::task::host::Host::log(self, level, message);
    }

    fn progress(&mut self, percent: u8, note: Option<String>) {
        wasmq::task::host::Host::progress(self, percent, note);
    }

    fn set_result(&mut self, data: Vec<u8>) -> Result<(), String> {
        wasmq::task::host::Host::set_result(self, data)
    }

    fn job(&mut self) -> v1::wasmq::task::types::JobInfo {
        let WitJobInfo {
            id,
            module,
            attempt,
            max_attempts,
        } = wasmq::task::host::Host::job(self);
        v1::wasmq::task::types::JobInfo {
            id,
            module,
            attempt,
            max_attempts,
        }
    }
}

/// Longest progress note kept, in bytes; the rest is cut (at a character boundary).
const MAX_PROGRESS_NOTE: usize = 1024;

fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Caps linear memory (summed over the instance's memories) and tables, and records
/// the peak and whether a growth was refused.
pub(crate) struct Limiter {
    pub(crate) memory_cap: usize,
    pub(crate) memory_now: usize,
    pub(crate) memory_peak: usize,
    pub(crate) memory_refused: bool,
}

impl Limiter {
    pub(crate) fn new(memory_cap: usize) -> Self {
        Self {
            memory_cap,
            memory_now: 0,
            memory_peak: 0,
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_now - current.min(self.memory_now) + desired;
        if total > self.memory_cap {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_now = total;
        self.memory_peak = self.memory_peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        8
    }

    fn memories(&self) -> usize {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_utf8;

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        let mut s = "ééé".to_string(); // 2 bytes each
        truncate_utf8(&mut s, 5);
        assert_eq!(s, "éé");
        let mut short = "ok".to_string();
        truncate_utf8(&mut short, 5);
        assert_eq!(short, "ok");
    }
}
