//! Child jobs: the host side of `enqueue` (WIT 0.2.0).
//!
//! The runtime knows no store. A [`Spawner`] (the worker's) checks each request and
//! names the id the child will have; the runtime only collects the admitted children
//! into the [`super::AttemptReport`], and the worker stores them with the attempt's
//! completion, in the same commit, or not at all.

use std::sync::Arc;

/// What a guest asked to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRequest {
    /// A module name of the parent's tenant.
    pub module: String,
    /// The child's input bytes.
    pub input: Vec<u8>,
    /// Default: the parent's queue.
    pub queue: Option<String>,
    /// Default: 0.
    pub priority: Option<i32>,
    /// Run this long after the parent completes.
    pub delay_ms: Option<u64>,
    /// A stored job of the tenant with this key is answered instead of a new one.
    pub idempotency_key: Option<String>,
}

/// A spawner's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// A new child, to be stored with this id if the attempt completes; `digest` is the
    /// module version pinned at the call.
    New {
        /// The id it will have.
        id: i64,
        /// The module version to run.
        digest: String,
    },
    /// A stored job of the tenant already has the request's idempotency key: its id.
    Existing(i64),
}

/// An admitted child, as the report carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The id it will have.
    pub id: i64,
    /// The module version pinned at the call.
    pub digest: String,
    /// What the guest asked for.
    pub request: ChildRequest,
}

/// Checks a child request and names the id the child will have. One per attempt, so
/// it can count the attempt's children against a cap. `Err` goes to the guest as is.
#[async_trait::async_trait]
pub trait Spawner: Send + Sync {
    /// Admits `request`, or says why not in words for the task's author.
    async fn admit(&self, request: &ChildRequest) -> Result<Admitted, String>;
}

/// The spawner of an attempt run without one: refuses every child.
pub(crate) struct NoSpawner;

#[async_trait::async_trait]
impl Spawner for NoSpawner {
    async fn admit(&self, _request: &ChildRequest) -> Result<Admitted, String> {
        Err("this runner cannot enqueue jobs".into())
    }
}

/// The spawner of a run with no store (`wasmq run`): admits up to `cap` children,
/// numbered 1, 2, …, so a task's fan-out can be tried locally; none is enqueued.
pub struct DryRun {
    cap: usize,
    made: std::sync::atomic::AtomicUsize,
}

impl DryRun {
    /// Admits at most `cap` children.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            made: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl Spawner for DryRun {
    async fn admit(&self, _request: &ChildRequest) -> Result<Admitted, String> {
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n >= self.cap {
            return Err(format!(
                "an attempt may enqueue at most {} child jobs",
                self.cap
            ));
        }
        Ok(Admitted::New {
            id: n as i64 + 1,
            digest: String::new(),
        })
    }
}

/// The children of one attempt, in call order.
pub(crate) struct Children {
    pub(crate) spawner: Arc<dyn Spawner>,
    pub(crate) made: Vec<Child>,
}

impl Children {
    pub(crate) fn new(spawner: Option<Arc<dyn Spawner>>) -> Self {
        Self {
            spawner: spawner.unwrap_or_else(|| Arc::new(NoSpawner)),
            made: Vec::new(),
        }
    }
}
