//! Test support for SQLite: a fresh database file per test.
//!
//! Files live in `<temp dir>/wasmq-tests/sqlite_<unix seconds>_<pid>_<n>/wasmq.db`; the
//! first call of a process removes those left behind more than an hour ago by earlier runs
//! (a test's store outlives the test function, so nothing can delete them on drop).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Older test directories than this (seconds) are removed.
const STALE_AFTER_SECS: u64 = 3600;

/// The path of a database file that does not exist yet, in a directory that does not
/// exist yet either (the store creates both).
pub fn fresh_path() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static CLEANED: AtomicBool = AtomicBool::new(false);

    let root = std::env::temp_dir().join("wasmq-tests");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    if !CLEANED.swap(true, Ordering::SeqCst) {
        remove_stale(&root, now);
    }
    root.join(format!(
        "sqlite_{now}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ))
    .join("wasmq.db")
}

/// Removes test directories created more than [`STALE_AFTER_SECS`] ago (best effort).
fn remove_stale(root: &std::path::Path, now: u64) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let created = name
            .to_str()
            .and_then(|n| n.strip_prefix("sqlite_"))
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|c| c + STALE_AFTER_SECS < now) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
