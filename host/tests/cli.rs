//! The `wasmq` binary as a user runs it: `wasmq run`, and a `wasmq worker` process
//! killed with SIGKILL mid-job.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use wasmq_host::queue::{ErrorKind, JobState, Limits};
use wasmq_tests::guests;
use wasmq_tests::harness::{
    finished, fresh_store_with_url, in_state, job, put_module, start_worker,
};

mod common;

/// The binary with none of the caller's `WASMQ_*` settings.
fn wasmq() -> Command {
    common::command(&[])
}

#[test]
fn run_prints_the_result_and_a_summary() {
    let out = wasmq()
        .args(["run", guests::WORDCOUNT, "--input", r#"{"text": "a b a"}"#])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["words"], 3);
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("outcome: success"), "{summary}");
    assert!(summary.contains("usage: fuel"), "{summary}");
}

#[test]
fn run_reads_input_from_a_file_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(&input, r#"{"numbers": [2, 3]}"#).unwrap();
    let out = wasmq()
        .args(["run", guests::WASI_COMMAND, "--json", "--input"])
        .arg(format!("@{}", input.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "success");
    assert_eq!(report["result"], json!({"sum": 5, "count": 2}));
    assert!(report["usage"]["fuel"].as_u64().unwrap() > 0);
}

/// `wasmq run` gives a Python or JavaScript task an interpreter's fuel, as a worker does:
/// work the compiled maximum would stop completes, and `--fuel` still caps it.
#[test]
fn run_gives_interpreted_tasks_an_interpreters_fuel() {
    let artifacts = wasmq_tests::interpreter_artifact_dir();
    for path in [guests::PY_HOSTILE, guests::JS_HOSTILE] {
        let run = |extra: &[&str]| {
            let out = wasmq()
                .args(["run", path, "--json", "--artifact-dir"])
                .arg(&artifacts)
                .args(["--input", r#"{"attack": "count", "n": 3000000}"#])
                .args(extra)
                .output()
                .unwrap();
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
            });
            report
        };
        let done = run(&[]);
        assert_eq!(done["outcome"], "success", "{path}: {done}");
        assert!(
            done["usage"]["fuel"].as_u64().unwrap() > wasmq_host::runtime::DEFAULT_FUEL,
            "{path}: {done}"
        );
        let capped = run(&["--fuel", "1000000000"]);
        assert_eq!(capped["error"]["kind"], "out_of_fuel", "{path}: {capped}");
    }
}

/// A fan-out tried locally: its children are listed with their ids and inputs (none is
/// enqueued: there is no store), in JSON and in the human summary.
#[test]
fn run_lists_the_children_a_task_would_enqueue() {
    let input = r#"{"page": 7, "locales": ["en", "de"]}"#;
    let out = wasmq()
        .args(["run", guests::FANOUT, "--json", "--input", input])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["result"], json!({"page": 7, "children": [1, 2]}));
    let children = report["children"].as_array().unwrap();
    assert_eq!(children.len(), 2, "{report}");
    assert_eq!(children[1]["id"], 2);
    assert_eq!(children[1]["module"], "reindex");
    assert_eq!(children[1]["input"], json!({"page": 7, "locale": "de"}));
    let out = wasmq()
        .args(["run", guests::FANOUT, "--input", input])
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("children: 2 (listed, not enqueued"),
        "{summary}"
    );
    assert!(
        summary.contains(r#"#2 reindex {"locale":"de","page":7}"#),
        "{summary}"
    );
}

#[test]
fn run_reports_a_limit_violation_with_its_kind_and_fails() {
    let out = wasmq()
        .args([
            "run",
            guests::HOSTILE,
            "--json",
            "--fuel",
            "100000",
            "--input",
            r#"{"op": "spin"}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["kind"], "out_of_fuel");
    assert_eq!(report["usage"]["fuel"], 100_000);
}

#[test]
fn run_refuses_a_file_that_is_not_wasm_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, "not wasm at all").unwrap();
    let out = wasmq().arg("run").arg(&bogus).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a WebAssembly binary"), "{err}");
}

#[tokio::test]
async fn a_worker_process_killed_mid_job_loses_nothing() {
    let (store, url) = fresh_store_with_url().await;
    put_module(&store, "hostile", guests::HOSTILE).await;
    let mut j = job("hostile", json!({"op": "spin_first_attempt"}));
    j.limits = Limits {
        timeout_ms: Some(60_000),
        ..Default::default()
    };
    let id = store.enqueue(vec![j]).await.unwrap()[0].job.id;

    let mut child = wasmq()
        .args([
            "worker",
            "--database-url",
            &url,
            "--lease",
            "1s",
            "--max-fuel",
            "18446744073709551615",
            "--max-timeout",
            "60s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    in_state(&store, id, JobState::Running, Duration::from_secs(30)).await;
    child.kill().unwrap(); // SIGKILL: no goodbye, the lease is all that is left
    child.wait().unwrap();

    let w = start_worker(store.clone(), Default::default(), 2);
    let j = finished(&store, id, Duration::from_secs(30)).await;
    w.stop().await;
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.result.as_deref(), Some(&br#"{"attempt":2}"#[..]));
    assert_eq!(j.history.len(), 1);
    assert_eq!(
        j.history[0].kind,
        ErrorKind::Lost,
        "the killed attempt shows as lost"
    );
}
