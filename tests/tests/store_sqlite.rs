//! The store conformance suite against the embedded SQLite store (a fresh file per test).

wasmq_tests::store_conformance_tests!(std::sync::Arc::new(
    wasmq_host::queue::sqlite::SqliteStore::open(&wasmq_tests::sqlite::fresh_path())
        .await
        .expect("open a fresh SQLite store"),
));
