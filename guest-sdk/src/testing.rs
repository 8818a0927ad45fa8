//! Run a task function natively, as a test would: no wasmq, no Wasm.
//!
//! [`run_json`] and [`run_bytes`] do what [`json_task!`](crate::json_task) and
//! [`task!`](crate::task) do inside a component (parse the input, call the function,
//! serialise and set the result), with a fake [`Context`] that records the log lines,
//! progress and result. [`Fake`] also sets the job the task sees and an output cap.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use wasmq_guest::{Context, TaskError, testing};
//!
//! #[derive(Deserialize)] struct Input { text: String }
//! #[derive(Serialize, Deserialize, Debug, PartialEq)] struct Output { words: usize }
//!
//! fn run(input: Input, cx: &Context) -> Result<Output, TaskError> {
//!     if input.text.is_empty() {
//!         return Err(TaskError::fatal("no text"));
//!     }
//!     cx.info(format!("attempt {}", cx.job().attempt));
//!     cx.progress(50, Some("half"));
//!     Ok(Output { words: input.text.split_whitespace().count() })
//! }
//!
//! let report = testing::Fake::new().attempt(2).run_json(run, r#"{"text": "a b c"}"#);
//! assert_eq!(report.json::<Output>().unwrap(), Output { words: 3 });
//! assert_eq!(report.log, vec![(testing::Level::Info, "attempt 2".to_string())]);
//! assert_eq!(report.progress, vec![(50, Some("half".to_string()))]);
//!
//! assert!(report.children.is_empty());
//!
//! let failed = testing::run_json(run, r#"{"text": ""}"#);
//! assert_eq!(failed.outcome, Err(TaskError::fatal("no text")));
//! assert!(testing::run_json(run, "not json").outcome.unwrap_err().message().contains("not valid JSON"));
//! ```

use std::cell::RefCell;
use std::rc::Rc;

pub use crate::bindings::wasmq::task::types::Level;
use crate::{Child, Context, JobInfo, TaskError};

/// What one run of a task left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `Ok` when the task completed; its error as the job would record it otherwise.
    pub outcome: Result<(), TaskError>,
    /// The result the task set (the last call wins), if any.
    pub result: Option<Vec<u8>>,
    /// The log lines, in order.
    pub log: Vec<(Level, String)>,
    /// The progress reports, in order.
    pub progress: Vec<(u8, Option<String>)>,
    /// The child jobs the task enqueued, in order, with the ids the fake gave them (the
    /// host would store them only if the outcome is `Ok`).
    pub children: Vec<(u64, Child)>,
}

impl Report {
    /// The result parsed as JSON into `T`; `None` when there is no result or it does not
    /// parse as `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(self.result.as_deref()?).ok()
    }
}

/// The fake host: the job a task sees, an optional output cap, and what it recorded.
#[derive(Debug)]
pub struct Fake {
    job: JobInfo,
    output_limit: Option<usize>,
    recorded: RefCell<Recorded>,
}

#[derive(Debug, Default)]
struct Recorded {
    result: Option<Vec<u8>>,
    log: Vec<(Level, String)>,
    progress: Vec<(u8, Option<String>)>,
    children: Vec<(u64, Child)>,
}

impl Default for Fake {
    fn default() -> Self {
        Self::new()
    }
}

impl Fake {
    /// Job `1` of module `test`, attempt 1 of 3, no output cap.
    pub fn new() -> Self {
        Self {
            job: JobInfo {
                id: "1".into(),
                module: "test".into(),
                attempt: 1,
                max_attempts: 3,
            },
            output_limit: None,
            recorded: RefCell::default(),
        }
    }

    /// The job `Context::job` reports.
    pub fn job(mut self, job: JobInfo) -> Self {
        self.job = job;
        self
    }

    /// The attempt number `Context::job` reports.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.job.attempt = attempt;
        self
    }

    /// Refuses results over `bytes`, as the host does past the job's output cap.
    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = Some(bytes);
        self
    }

    /// Runs a [`json_task!`](crate::json_task) function on `input`.
    pub fn run_json<I, O, F>(self, run: F, input: impl AsRef<[u8]>) -> Report
    where
        I: serde::de::DeserializeOwned,
        O: serde::Serialize,
        F: FnOnce(I, &Context) -> Result<O, TaskError>,
    {
        self.run_with(|cx| crate::__private::run_json_in(cx, input.as_ref().to_vec(), run))
    }

    /// Runs a [`task!`](crate::task) function on `input`.
    pub fn run_bytes<F>(self, run: F, input: impl AsRef<[u8]>) -> Report
    where
        F: FnOnce(Vec<u8>, &Context) -> Result<Vec<u8>, TaskError>,
    {
        self.run_with(|cx| crate::__private::run_bytes_in(cx, input.as_ref().to_vec(), run))
    }

    fn run_with(self, body: impl FnOnce(&Context) -> Result<(), TaskError>) -> Report {
        let fake = Rc::new(self);
        let outcome = body(&Context {
            fake: Some(fake.clone()),
        });
        let recorded = fake.recorded.take();
        Report {
            outcome,
            result: recorded.result,
            log: recorded.log,
            progress: recorded.progress,
            children: recorded.children,
        }
    }

    pub(crate) fn log(&self, level: Level, msg: &str) {
        self.recorded.borrow_mut().log.push((level, msg.to_owned()));
    }

    pub(crate) fn progress(&self, percent: u8, note: Option<&str>) {
        let note = note.map(str::to_owned);
        self.recorded.borrow_mut().progress.push((percent, note));
    }

    /// Records `child` with the next id after the job's own (or 1, 2, …).
    pub(crate) fn enqueue(&self, child: Child) -> Result<u64, String> {
        let mut recorded = self.recorded.borrow_mut();
        let base = self.job.id.parse::<u64>().unwrap_or(0);
        let id = base + recorded.children.len() as u64 + 1;
        recorded.children.push((id, child));
        Ok(id)
    }

    pub(crate) fn job_info(&self) -> JobInfo {
        self.job.clone()
    }

    pub(crate) fn set_result(&self, bytes: &[u8]) -> Result<(), String> {
        if let Some(limit) = self.output_limit.filter(|&l| bytes.len() > l) {
            return Err(format!(
                "result of {} bytes is over the output limit of {limit} bytes",
                bytes.len()
            ));
        }
        self.recorded.borrow_mut().result = Some(bytes.to_vec());
        Ok(())
    }
}

/// [`Fake::run_json`] with the default fake job.
pub fn run_json<I, O, F>(run: F, input: impl AsRef<[u8]>) -> Report
where
    I: serde::de::DeserializeOwned,
    O: serde::Serialize,
    F: FnOnce(I, &Context) -> Result<O, TaskError>,
{
    Fake::new().run_json(run, input)
}

/// [`Fake::run_bytes`] with the default fake job.
pub fn run_bytes<F>(run: F, input: impl AsRef<[u8]>) -> Report
where
    F: FnOnce(Vec<u8>, &Context) -> Result<Vec<u8>, TaskError>,
{
    Fake::new().run_bytes(run, input)
}
