//! Workers against a real PostgreSQL and real guests: the worker suite
//! (`wasmq_tests::worker_suite`, the same cases as on SQLite, and those of a job run
//! before it is stored), each case on a fresh database.

wasmq_tests::worker_tests!(wasmq_tests::harness::fresh_store().await, many = 10_000);
wasmq_tests::worker_tests!(run_ahead: wasmq_tests::harness::fresh_store().await);
