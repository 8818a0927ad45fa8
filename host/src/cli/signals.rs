//! SIGTERM / SIGINT handling shared by the long-running commands.

use crate::worker::Shutdown;

/// Triggers `shutdown` on the first SIGTERM or SIGINT.
pub async fn on_shutdown_signal(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = which,
        "shutting down: no new jobs; running jobs get the grace period"
    );
    shutdown.trigger();
}
