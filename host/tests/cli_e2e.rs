//! The `wasmq` binary as an operator drives it: JSON logs, settings from `wasmq.toml` <
//! environment < flags, the client commands (`module list|delete`, `job wait|cancel`,
//! `key revoke`) against a real server, and `wasmq bench` on both stores.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Proc, command, free_listen, readyz_is, run, text};
use serde_json::{Value, json};
use wasmq_tests::guests;

/// `wasmq key create` on the embedded store in `data_dir`: the key.
fn create_key(data_dir: &str, name: &str) -> String {
    let out = run(
        &["key", "create", "--data-dir", data_dir, "--name", name],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// `wasmq serve` on the embedded store in `data_dir`, up and ready.
async fn serve(data_dir: &str, extra: &[&str]) -> (Proc, String) {
    let listen = free_listen();
    let mut args = vec!["serve", "--data-dir", data_dir, "--listen", &listen];
    args.extend(extra);
    let proc = Proc::spawn(command(&args));
    let base = format!("http://{listen}");
    readyz_is(&base, 200, Duration::from_secs(60)).await;
    (proc, base)
}

async fn stop(mut proc: Proc) -> Vec<String> {
    proc.terminate();
    let status = proc.exited(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}\n{}", proc.lines().join("\n"));
    proc.lines()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_make_every_line_an_object_with_level_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let key = create_key(data_dir, "logs");
    let (proc, base) = serve(data_dir, &["--log-format", "json"]).await;
    // Some work, so the log has more than start-up lines: a job and a refused request.
    let client = [("WASMQ_URL", base.as_str()), ("WASMQ_KEY", key.as_str())];
    assert!(
        run(&["module", "push", "echo", guests::ECHO], &client)
            .status
            .success()
    );
    let done = run(
        &["job", "enqueue", "echo", "--input", "7", "--wait"],
        &client,
    );
    assert!(done.status.success(), "{}", text(&done.stderr));
    let lines = stop(proc).await;

    assert!(lines.len() >= 3, "{lines:?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        let level = v["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line}"
        );
        assert!(v["message"].is_string(), "no message: {line}");
    }
    let said = |message: &str| {
        lines
            .iter()
            .any(|l| serde_json::from_str::<Value>(l).unwrap()["message"] == message)
    };
    assert!(said("API listening") && said("stopped"), "{lines:?}");
}

/// The address `wasmq serve` says it listens on, run in `dir` with only `env`.
async fn listen_address(dir: &Path, env: &[(&str, &str)], flags: &[&str]) -> String {
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.arg("serve")
        .args(flags)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(dir);
    let mut proc = Proc::spawn(cmd);
    let line = proc
        .line_containing("API listening", Duration::from_secs(60))
        .await;
    let v: Value = serde_json::from_str(&line).expect("wasmq.toml asks for JSON logs");
    proc.terminate();
    assert!(proc.exited(Duration::from_secs(30)).await.success());
    v["address"].as_str().expect("an address field").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_the_file_then_the_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (file, env, flag) = (free_listen(), free_listen(), free_listen());
    let data = dir.path().join("data");
    // Found as ./wasmq.toml in the working directory.
    std::fs::write(
        dir.path().join("wasmq.toml"),
        format!(
            "listen = \"{file}\"\nlog_format = \"json\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .unwrap();
    let from_env = [("WASMQ_LISTEN", env.as_str())];

    assert_eq!(listen_address(dir.path(), &[], &[]).await, file);
    assert_eq!(listen_address(dir.path(), &from_env, &[]).await, env);
    assert_eq!(
        listen_address(dir.path(), &from_env, &["--listen", &flag]).await,
        flag
    );
    assert!(
        data.join("wasmq.db").exists(),
        "data_dir came from the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_list_delete_job_wait_cancel_and_key_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let key = create_key(data_dir, "main");
    let doomed = create_key(data_dir, "doomed");
    let (proc, base) = serve(data_dir, &[]).await;
    let client = [("WASMQ_URL", base.as_str()), ("WASMQ_KEY", key.as_str())];
    let ok = |args: &[&str]| {
        let out = run(args, &client);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        out
    };
    let names = |out: &std::process::Output| -> Vec<String> {
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut names: Vec<String> = v["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };

    ok(&["module", "push", "echo", guests::ECHO]);
    ok(&["module", "push", "wordcount", guests::WORDCOUNT]);
    assert_eq!(names(&ok(&["module", "list"])), ["echo", "wordcount"]);
    ok(&["module", "delete", "wordcount"]);
    assert_eq!(names(&ok(&["module", "list"])), ["echo"]);
    let gone = run(&["module", "delete", "wordcount"], &client);
    assert_eq!(gone.status.code(), Some(2));
    assert!(text(&gone.stderr).contains("404"), "{}", text(&gone.stderr));

    // `job wait` prints the result of a job enqueued earlier and exits 0.
    let queued: Value =
        serde_json::from_slice(&ok(&["job", "enqueue", "echo", "--input", r#"{"n": 5}"#]).stdout)
            .unwrap();
    let id = queued["id"].to_string();
    let waited: Value = serde_json::from_slice(&ok(&["job", "wait", &id]).stdout).unwrap();
    assert_eq!(waited, json!({"n": 5}));

    // A job on a queue no worker serves waits until `job cancel`; `job wait` then
    // reports it cancelled and exits 1.
    let idle = ok(&[
        "job", "enqueue", "echo", "--queue", "nobody", "--input", "1",
    ]);
    let id = serde_json::from_slice::<Value>(&idle.stdout).unwrap()["id"].to_string();
    let cancelled: Value = serde_json::from_slice(&ok(&["job", "cancel", &id]).stdout).unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    let waited = run(&["job", "wait", &id], &client);
    assert_eq!(waited.status.code(), Some(1));
    assert!(
        text(&waited.stderr).contains("cancelled"),
        "{}",
        text(&waited.stderr)
    );

    // `--coalesce-key`: a second enqueue of the key updates the job still waiting.
    let coalesce = |input: &str| -> Value {
        let out = ok(&[
            "job",
            "enqueue",
            "echo",
            "--queue",
            "nobody",
            "--input",
            input,
            "--coalesce-key",
            "page:1",
            "--coalesce-ms",
            "60000",
            "--coalesce-max-ms",
            "120000",
        ]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let (first, second) = (coalesce("1"), coalesce("2"));
    assert_eq!(
        (&first["coalesced"], &first["state"]),
        (&json!(false), &json!("scheduled"))
    );
    assert_eq!(
        (&second["coalesced"], &second["id"]),
        (&json!(true), &first["id"])
    );
    assert_eq!(second["input"], 2);

    // `--depends-on`: a job on one that waits in an idle queue waits too, and is
    // cancelled with it.
    let held = serde_json::from_slice::<Value>(
        &ok(&[
            "job", "enqueue", "echo", "--queue", "nobody", "--input", "1",
        ])
        .stdout,
    )
    .unwrap()["id"]
        .to_string();
    let dependent: Value = serde_json::from_slice(
        &ok(&[
            "job",
            "enqueue",
            "echo",
            "--depends-on",
            &held,
            "--depends-on",
            &queued["id"].to_string(),
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(dependent["state"], "waiting", "{dependent}");
    let on: Vec<String> = dependent["depends_on"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(on, [queued["id"].to_string(), held.clone()]);
    ok(&["job", "cancel", &held]);
    let cancelled: Value =
        serde_json::from_slice(&ok(&["job", "get", &dependent["id"].to_string()]).stdout).unwrap();
    assert_eq!(
        cancelled["error"]["kind"], "dependency_failed",
        "{cancelled}"
    );

    // `key revoke` (on the store, while the server runs): the key gets 401 at once.
    let doomed_client = [("WASMQ_URL", base.as_str()), ("WASMQ_KEY", doomed.as_str())];
    assert!(run(&["module", "list"], &doomed_client).status.success());
    let doomed_id = doomed.split('_').nth(1).unwrap();
    let revoked = run(&["key", "revoke", doomed_id, "--data-dir", data_dir], &[]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let refused = reqwest::Client::new()
        .get(format!("{base}/v1/modules"))
        .bearer_auth(&doomed)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let refused = run(&["module", "list"], &doomed_client);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("401"),
        "{}",
        text(&refused.stderr)
    );
    ok(&["module", "list"]); // the other key still works
    let again = run(&["key", "revoke", doomed_id, "--data-dir", data_dir], &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("no active key"),
        "{}",
        text(&again.stderr)
    );
    stop(proc).await;
}

/// Small numbers: a bench that runs, not a measurement.
const BENCH: &[&str] = &[
    "bench",
    "--module",
    guests::ECHO,
    "--jobs",
    "200",
    "--latency-jobs",
    "10",
    "--rate",
    "200",
    "--concurrency",
    "4",
    "--fan-in",
    "100",
    "--fan-out",
    "100",
    "--fan-out-module",
    guests::FANOUT,
];

#[test]
fn bench_on_the_embedded_store_prints_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = BENCH.to_vec();
    args.extend(["--data-dir", dir.path().to_str().unwrap(), "--json"]);
    let out = run(&args, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        report["store"]
            .as_str()
            .unwrap()
            .contains("embedded SQLite"),
        "{report}"
    );
    assert_eq!(report["jobs"], 200);
    for figure in [
        "enqueue_jobs_per_sec",
        "w1_jobs_per_sec",
        "w2_p50_ms",
        "w2_p95_ms",
        "w2_p99_ms",
        "w3_fan_in_ms",
        "w3_fan_out_ms",
    ] {
        let v = report[figure].as_f64().unwrap_or(0.0);
        assert!(v.is_finite() && v > 0.0, "{figure}: {report}");
    }
    let p = |k: &str| report[k].as_f64().unwrap();
    assert!(p("w2_p50_ms") <= p("w2_p95_ms") && p("w2_p95_ms") <= p("w2_p99_ms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_on_postgres_prints_its_table() {
    let url = wasmq_tests::pg::fresh_database().await;
    let mut args = BENCH.to_vec();
    args.extend(["--database-url", &url]);
    let out = run(&args, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("store:") && table.contains("PostgreSQL at"),
        "{table}"
    );
    // Each figure is a positive number after its label.
    for label in [
        "W1 bulk enqueue:",
        "W1 throughput:",
        "W2 latency:           p50",
        "W3 fan-in:",
        "W3 fan-out:",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line: {table}"));
        let figure: f64 = line[label.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no figure after `{label}`: {line}"));
        assert!(figure > 0.0, "{line}");
    }
}
