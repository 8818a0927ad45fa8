//! The store conformance suite against the embedded SQLite store (a fresh file per test).

macro_rules! fresh_store {
    () => {
        std::sync::Arc::new(
            wasmq_host::queue::sqlite::SqliteStore::open(&wasmq_tests::sqlite::fresh_path())
                .await
                .expect("open a fresh SQLite store"),
        )
    };
}

wasmq_tests::store_conformance_tests!(fresh_store!());

/// SQLite hands lone jobs to idle workers of its process.
mod handoff {
    wasmq_tests::store_handoff_tests!(fresh_store!());
}
