//! The store conformance suite against a real PostgreSQL (a fresh database per test).

wasmq_tests::store_conformance_tests!(std::sync::Arc::new(
    wasmq_host::queue::postgres::PgStore::connect(&wasmq_tests::pg::fresh_database().await, 8)
        .await
        .expect("connect to the test database"),
));
