//! Reading what is left of a refused request's body, so its answer reaches the client.
//!
//! An error may be answered before the body is read (a bad name, a missing key, a body
//! over its limit). If the server then closed the connection with bytes still unread, the
//! kernel would reset it, and a client still writing (most HTTP clients write the whole
//! body before they read) would see a broken pipe instead of the 413 or 401. So the
//! request body is read through a [`Tap`] that the middleware keeps a handle on; after an
//! error it discards what is left, up to [`DRAIN_MAX`] bytes within [`DRAIN_TIME`] (the
//! "lingering close" of nginx and Apache). Nothing drained is kept. A body larger than
//! that, or one declared larger, gets `Connection: close` and is cut off, as does a
//! request with `Expect: 100-continue` whose body was never read (its client has not sent
//! it and should not).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// At most this many unread bytes are discarded after an error; beyond it the connection
/// is closed.
pub const DRAIN_MAX: u64 = 16 << 20;

/// Draining gives up (and closes) after this long: a slow sender cannot hold a task.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The body, and whether anyone has read from it.
struct Shared {
    body: Mutex<Body>,
    read: AtomicBool,
}

/// A request body the handler reads while the middleware keeps a handle on the rest.
pub struct Tap(Arc<Shared>);

/// The middleware's handle on a [`Tap`]ped body.
pub struct Rest(Arc<Shared>);

/// Splits `body` into the body a handler reads and the handle that can drain it later.
pub fn tap(body: Body) -> (Body, Rest) {
    let shared = Arc::new(Shared {
        body: Mutex::new(body),
        read: AtomicBool::new(false),
    });
    (Body::new(Tap(shared.clone())), Rest(shared))
}

impl http_body::Body for Tap {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.0.read.store(true, Ordering::Relaxed);
        let mut inner = self.0.body.lock().unwrap_or_else(PoisonError::into_inner);
        Pin::new(&mut *inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .body
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .body
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .size_hint()
    }
}

impl Rest {
    /// Whether the handler read from the body at all.
    pub fn was_read(&self) -> bool {
        self.0.read.load(Ordering::Relaxed)
    }

    /// Discards the unread rest of the body. True when it ended within the bounds (the
    /// connection can carry the answer and another request); false when it must close.
    pub async fn drain(self, declared: Option<u64>) -> bool {
        if declared.is_some_and(|n| n > DRAIN_MAX) {
            return false;
        }
        let mut body =
            std::mem::take(&mut *self.0.body.lock().unwrap_or_else(PoisonError::into_inner));
        let read = async {
            let mut seen = 0u64;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { return false };
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                    if seen > DRAIN_MAX {
                        return false;
                    }
                }
            }
            true
        };
        tokio::time::timeout(DRAIN_TIME, read)
            .await
            .unwrap_or(false)
    }
}
