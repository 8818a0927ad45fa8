//! Workers against a real PostgreSQL and real guests: the worker suite
//! (`wasmq_tests::worker_suite`, the same cases as on SQLite), each case on a fresh
//! database.

wasmq_tests::worker_tests!(wasmq_tests::harness::fresh_store().await, many = 10_000);
