//! Child jobs: [`Context::enqueue`] and [`Child`].

use crate::{Context, TaskError};

/// A child job for [`Context::enqueue_child`]: a module of the same tenant and its input,
/// with the queue (default: this job's), priority, delay and idempotency key optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Child {
    /// The module name.
    pub module: String,
    /// The input bytes.
    pub input: Vec<u8>,
    /// The queue; `None`: this job's.
    pub queue: Option<String>,
    /// The priority; `None`: 0.
    pub priority: Option<i32>,
    /// Milliseconds after this job completes that it may run; `None`: at once.
    pub delay_ms: Option<u64>,
    /// A stored job of the tenant with this key is answered instead of a new one.
    pub idempotency_key: Option<String>,
}

impl Child {
    /// A child running `module` on `input` bytes.
    pub fn new(module: impl Into<String>, input: impl Into<Vec<u8>>) -> Self {
        Self {
            module: module.into(),
            input: input.into(),
            ..Self::default()
        }
    }

    /// A child running `module` on `input` as JSON.
    pub fn json(
        module: impl Into<String>,
        input: &impl serde::Serialize,
    ) -> Result<Self, TaskError> {
        Ok(Self::new(module, serde_json::to_vec(input)?))
    }

    /// In queue `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// With priority `priority` (higher runs first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Runs `ms` milliseconds after this job completes.
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = Some(ms);
        self
    }

    /// With idempotency key `key`.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// The host's refusal as a task error: `Retry` when the store was unavailable (the host
/// says "try again"), `Fatal` for what another attempt would not change (a cap, an
/// unknown module, a bad name).
fn refusal(message: String) -> TaskError {
    if message.ends_with("try again") {
        TaskError::Retry(message)
    } else {
        TaskError::Fatal(message)
    }
}

impl Context {
    /// Enqueues a job of `module` with `input` as JSON, as a child of this one: it is
    /// created if, and only if, this attempt completes (a failed attempt leaves none, so
    /// a retry does not double them). Returns the id it will have.
    ///
    /// `Err` if the host refused it: over the server's caps (1,000 children an attempt and
    /// 16 levels deep by default), an unknown module, or the store unavailable (then
    /// [`TaskError::Retry`]). `?` fails the attempt; a task may handle it instead.
    ///
    /// ```
    /// use wasmq_guest::{Context, TaskError, testing};
    /// fn publish(locales: Vec<String>, cx: &Context) -> Result<usize, TaskError> {
    ///     for locale in &locales {
    ///         cx.enqueue("reindex", &serde_json::json!({ "locale": locale }))?;
    ///     }
    ///     Ok(locales.len())
    /// }
    /// let report = testing::run_json(publish, r#"["en", "de"]"#);
    /// assert_eq!(report.json::<usize>(), Some(2));
    /// let (id, child) = &report.children[1];
    /// assert_eq!((*id, child.module.as_str()), (3, "reindex"));
    /// assert_eq!(child.input, br#"{"locale":"de"}"#);
    /// ```
    pub fn enqueue(&self, module: &str, input: &impl serde::Serialize) -> Result<u64, TaskError> {
        self.enqueue_child(Child::json(module, input)?)
    }

    /// [`Context::enqueue`] with every option of [`Child`].
    pub fn enqueue_child(&self, child: Child) -> Result<u64, TaskError> {
        match &self.fake {
            Some(fake) => fake.enqueue(child),
            None => crate::bindings::wasmq::task::host::enqueue(
                &crate::bindings::wasmq::task::types::EnqueueRequest {
                    module: child.module,
                    input: child.input,
                    queue: child.queue,
                    priority: child.priority,
                    delay_ms: child.delay_ms,
                    idempotency_key: child.idempotency_key,
                },
            ),
        }
        .map_err(refusal)
    }
}
