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
//!
//! The tap also holds the body's deadline: a body still arriving when it passes ends in an
//! error for its reader, and [`Rest::timed_out`] tells the middleware to answer 408.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;

/// At most this many unread bytes are discarded after an error; beyond it the connection
/// is closed.
pub const DRAIN_MAX: u64 = 16 << 20;

/// Draining gives up (and closes) after this long: a slow sender cannot hold a task.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The body, whether anyone has read from it, and its deadline.
struct Shared {
    body: Mutex<Body>,
    read: AtomicBool,
    deadline: Mutex<Pin<Box<tokio::time::Sleep>>>,
    timed_out: AtomicBool,
}

/// A request body the handler reads while the middleware keeps a handle on the rest.
pub struct Tap(Arc<Shared>);

/// The middleware's handle on a [`Tap`]ped body.
pub struct Rest {
    shared: Arc<Shared>,
    /// The declared `Content-Length`, if any.
    declared: Option<u64>,
    /// Whether the client waits for `100 Continue` before it sends the body.
    expects: bool,
}

/// For a request with a body, the same request reading through a [`Tap`] that must end
/// within `timeout`, and the handle that can drain what it leaves; a request without a
/// body comes back as it was.
pub fn tap(request: Request, timeout: Duration) -> (Request, Option<Rest>) {
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let has_body =
        declared.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return (request, None);
    }
    let expects = headers.contains_key(header::EXPECT);
    let (parts, body) = request.into_parts();
    let shared = Arc::new(Shared {
        body: Mutex::new(body),
        read: AtomicBool::new(false),
        deadline: Mutex::new(Box::pin(tokio::time::sleep(timeout))),
        timed_out: AtomicBool::new(false),
    });
    let rest = Rest {
        shared: shared.clone(),
        declared,
        expects,
    };
    (
        Request::from_parts(parts, Body::new(Tap(shared))),
        Some(rest),
    )
}

impl http_body::Body for Tap {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.0.read.store(true, Ordering::Relaxed);
        // Checked before each read, so a body that trickles in (always a little data
        // ready) is cut off as surely as one that stalls.
        let mut deadline = self
            .0
            .deadline
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.0.timed_out.load(Ordering::Relaxed) || deadline.as_mut().poll(cx).is_ready() {
            self.0.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new("the request body timed out"))));
        }
        drop(deadline);
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
    /// Whether the body's deadline passed while it was being read.
    pub fn timed_out(&self) -> bool {
        self.shared.timed_out.load(Ordering::Relaxed)
    }

    /// Discards the unread rest of the body. True when it ended within the bounds (the
    /// connection can carry the answer and another request); false when it must close:
    /// the body is, or is declared, too big, or its client is waiting for `100 Continue`
    /// and nobody asked for it.
    pub async fn drain(self) -> bool {
        let unasked = self.expects && !self.shared.read.load(Ordering::Relaxed);
        if unasked || self.declared.is_some_and(|n| n > DRAIN_MAX) {
            return false;
        }
        let mut body = std::mem::take(
            &mut *self
                .shared
                .body
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
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
