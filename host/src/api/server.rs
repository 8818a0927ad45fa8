//! Accepting connections: hyper's HTTP/1 connection builder with a timer, so a client
//! that sends its request head slowly, or keeps an idle connection open, is cut off
//! (axum's `serve` has no timer and waits forever), plus a graceful shutdown that lets
//! requests in flight finish.

use std::future::Future;
use std::io;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{AppState, router};

/// Serves the API on `listener` until `shutdown` resolves, then lets requests in flight
/// finish (long-polls answer at once with the job as it is) and returns when every
/// connection is closed.
///
/// Each connection's head must arrive within [`super::ApiConfig::header_read_timeout`].
/// hyper starts that clock whenever the connection waits for a request head, after a
/// response as well as after the accept, so it is also the keep-alive idle timeout.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = router(state.clone());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout)
        .keep_alive(true)
        // A client that shuts its write side once it has sent the request (many do, to
        // say "that is all") still gets the answer, instead of a close without one.
        .half_close(true);
    // Every connection holds a receiver: `closed()` on the sender is "all connections done".
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are written whole; Nagle would only delay their last segment.
        let _ = stream.set_nodelay(true);
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            let finished = tokio::select! {
                finished = conn.as_mut() => finished,
                // (The guard `wait_for` returns is not `Send`: drop it here.)
                _ = async { stop.wait_for(|stop| *stop).await.is_ok() } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = finished {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(stop_rx);
    state.close();
    stop_tx.send_replace(true);
    stop_tx.closed().await;
    Ok(())
}

/// An accept that failed: a connection reset before it was accepted is the client's
/// business; anything else (out of file descriptors) is logged, then retried after a
/// pause so the loop does not spin.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
