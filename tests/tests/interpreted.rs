//! Python and JavaScript tasks in the sandbox: the examples give the Rust example's
//! answers, failures are classified as for Rust (Retry, Fatal, an exception with its
//! traceback in the log, fuel, wall clock, memory and output caps), no state of one
//! job reaches the next, and the webhook examples reach only what their grants allow
//! (a local server on 127.0.0.1), read config and keep secrets out of the log; their
//! child jobs reach the host with every option.
//!
//! The components are tens of MiB; they are compiled once into a shared artifact
//! directory under `target/`, so later runs load them from disk.

use std::sync::Arc;

use serde_json::{Value, json};
use wasmq_host::runtime::{
    Admitted, AttemptReport, ChildRequest, FailureKind, Grants, JobInfo, Limits, Outcome, Prepared,
    RunRequest, Runtime, RuntimeConfig, Spawner,
};
use wasmq_tests::upstream::Upstream;
use wasmq_tests::{guest_bytes, guests};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        slots: 4,
        max_limits: Limits {
            fuel: u64::MAX,
            ..Limits::default_max()
        },
        artifact_dir: Some(wasmq_tests::interpreter_artifact_dir()),
        // An interpreter is tens of MiB of Wasm; on a busy 2-core machine its first
        // compile can outlast the upload default.
        compile_timeout: std::time::Duration::from_secs(600),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

async fn load(rt: &Runtime, path: &str) -> Prepared {
    rt.load_bytes(Arc::new(guest_bytes(path)))
        .await
        .unwrap_or_else(|e| panic!("{path} loads: {e}"))
}

fn request(input: &Value, limits: Limits) -> RunRequest {
    RunRequest {
        input: input.to_string().into_bytes(),
        limits,
        job: JobInfo {
            id: "7".into(),
            module: "interpreted".into(),
            attempt: 1,
            max_attempts: 3,
        },
        ..RunRequest::default()
    }
}

async fn run(rt: &Runtime, p: &Prepared, input: Value) -> AttemptReport {
    rt.run(p, request(&input, Limits::default())).await
}

fn result_json(report: &AttemptReport) -> Value {
    match &report.outcome {
        Outcome::Success { result } => serde_json::from_slice(result).expect("JSON result"),
        Outcome::Failure(f) => panic!("expected success, got {f:?}; log: {}", log(report)),
    }
}

fn log(report: &AttemptReport) -> String {
    String::from_utf8_lossy(&report.log).into_owned()
}

fn failure(report: &AttemptReport) -> (FailureKind, String) {
    match &report.outcome {
        Outcome::Failure(f) => (f.kind, f.message.clone()),
        Outcome::Success { result } => panic!(
            "expected a failure, got success: {}",
            String::from_utf8_lossy(result)
        ),
    }
}

const TEXT: &str = "The cat and the hat.\nThe end, the END!";

#[tokio::test]
async fn python_and_js_wordcount_answer_as_the_rust_one_does() {
    let rt = runtime();
    let input = json!({ "text": TEXT });
    let rust = result_json(&run(&rt, &load(&rt, guests::WORDCOUNT).await, input.clone()).await);
    for path in [guests::PY_WORDCOUNT, guests::JS_WORDCOUNT] {
        let report = run(&rt, &load(&rt, path).await, input.clone()).await;
        assert_eq!(result_json(&report), rust, "{path}");
        assert!(
            log(&report).contains("counting 38 bytes of text"),
            "{}",
            log(&report)
        );
        let progress = report.progress.expect("progress reported");
        assert_eq!(
            (progress.percent, progress.note.as_deref()),
            (80, Some("counted"))
        );
        assert!(report.usage.fuel > 0);
    }
}

#[tokio::test]
async fn python_reindex_makes_a_search_document() {
    let rt = runtime();
    let p = load(&rt, guests::PY_REINDEX).await;
    let page = json!({
        "id": 12, "locale": "fr", "title": "Bird watching",
        "body": "The birds and the bird song.", "tags": ["Nature"]
    });
    let doc = result_json(&run(&rt, &p, page).await);
    assert_eq!(
        doc,
        json!({
            "id": 12, "locale": "fr", "length": 3, "title_terms": ["bird", "watching"],
            "terms": {"bird": 4, "watching": 3, "birds": 1, "nature": 1, "song": 1}
        })
    );
    let (kind, message) = failure(&run(&rt, &p, json!({"title": "no id"})).await);
    assert_eq!(kind, FailureKind::TaskError { fatal: true });
    assert!(message.contains("input must be a page"), "{message}");
}

#[tokio::test]
async fn task_errors_and_exceptions_fail_as_in_rust() {
    let rt = runtime();
    for path in [guests::PY_HOSTILE, guests::JS_HOSTILE] {
        let p = load(&rt, path).await;
        let (kind, message) = failure(&run(&rt, &p, json!({"attack": "retry"})).await);
        assert_eq!(
            (kind, message.as_str()),
            (FailureKind::TaskError { fatal: false }, "try again later")
        );
        let (kind, message) = failure(&run(&rt, &p, json!({"attack": "fatal"})).await);
        assert_eq!(
            (kind, message.as_str()),
            (
                FailureKind::TaskError { fatal: true },
                "this input can never work"
            )
        );
        // Any other exception is retryable, named in the message, its traceback logged.
        let report = run(&rt, &p, json!({"attack": "raise"})).await;
        let (kind, message) = failure(&report);
        assert_eq!(kind, FailureKind::TaskError { fatal: false }, "{path}");
        let log = log(&report);
        assert!(log.contains("about to fail"), "{log}");
        if path == guests::PY_HOSTILE {
            assert_eq!(message, "ZeroDivisionError: division by zero");
            assert!(log.contains("Traceback (most recent call last)"), "{log}");
            assert!(log.contains("hostile.py"), "{log}");
        } else {
            assert!(message.starts_with("TypeError: "), "{message}");
            assert!(log.contains("TypeError"), "{log}");
        }
    }
}

#[tokio::test]
async fn limits_hold_for_interpreters() {
    let rt = runtime();
    for path in [guests::PY_HOSTILE, guests::JS_HOSTILE] {
        let p = load(&rt, path).await;
        let spin = json!({"attack": "spin"});
        let fuel = Limits {
            fuel: 200_000_000,
            ..Limits::default()
        };
        let (kind, _) = failure(&rt.run(&p, request(&spin, fuel)).await);
        assert_eq!(kind, FailureKind::OutOfFuel, "{path}");

        let clock = Limits {
            fuel: u64::MAX,
            timeout_ms: 500,
            ..Limits::default()
        };
        let (kind, _) = failure(&rt.run(&p, request(&spin, clock)).await);
        assert_eq!(kind, FailureKind::Timeout, "{path}");

        let memory = Limits {
            memory_bytes: 64 << 20,
            ..Limits::default()
        };
        let report = rt
            .run(&p, request(&json!({"attack": "grow"}), memory))
            .await;
        let (kind, _) = failure(&report);
        assert_eq!(kind, FailureKind::MemoryLimit, "{path}");
        assert!(report.usage.memory_peak_bytes <= 64 << 20);
    }
    let p = load(&rt, guests::PY_HOSTILE).await;
    let output = Limits {
        output_bytes: 1 << 20,
        ..Limits::default()
    };
    let report = rt
        .run(&p, request(&json!({"attack": "huge_result"}), output))
        .await;
    assert_eq!(failure(&report).0, FailureKind::OutputLimit);
}

#[tokio::test]
async fn no_state_of_one_job_reaches_the_next() {
    let rt = runtime();
    for path in [guests::PY_HOSTILE, guests::JS_HOSTILE] {
        let p = load(&rt, path).await;
        for round in 0..3 {
            let secret = format!("hunter2-{round}");
            let wrote = run(&rt, &p, json!({"attack": "write_secret", "secret": secret})).await;
            assert_eq!(result_json(&wrote), json!({"wrote": true}));
            let read = result_json(&run(&rt, &p, json!({"attack": "read_secret"})).await);
            assert!(
                !read.to_string().contains("hunter2"),
                "{path} leaked: {read}"
            );
            assert_eq!(read["secret"], Value::Null, "{path}");
        }
    }
}

#[tokio::test]
async fn bytes_that_are_not_json_reach_the_handler_as_bytes() {
    let rt = runtime();
    let p = load(&rt, guests::PY_ECHO).await;
    let mut req = request(&json!(null), Limits::default());
    req.input = vec![0xff, 0x00, 0x41];
    match rt.run(&p, req).await.outcome {
        Outcome::Success { result } => assert_eq!(result, vec![0xff, 0x00, 0x41]),
        Outcome::Failure(f) => panic!("{f:?}"),
    }
    let echoed = result_json(&run(&rt, &p, json!({"a": [1, 2.5, "three"]})).await);
    assert_eq!(echoed, json!({"a": [1, 2.5, "three"]}));
}

const SECRET: &str = "s3cr3t-t0ken-9f2c";

/// The webhook's grants: `hosts` allowed, an `agent` value and a `token` secret.
fn webhook_grants(hosts: &[String]) -> Grants {
    Grants {
        allowed_hosts: hosts.iter().map(|h| h.parse().unwrap()).collect(),
        config: vec![
            ("agent".into(), "wasmq-test/1".into()),
            ("token".into(), SECRET.into()),
        ],
        secrets: vec![SECRET.into()],
    }
}

async fn run_granted(rt: &Runtime, p: &Prepared, input: Value, grants: Grants) -> AttemptReport {
    let mut req = request(&input, Limits::default());
    req.grants = grants;
    rt.run(p, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_webhooks_post_to_an_allowed_host_with_config() {
    let rt = runtime();
    let up = Upstream::start().await;
    let allowed = vec![format!("http://127.0.0.1:{}", up.port)];
    for (i, path) in [guests::PY_WEBHOOK, guests::JS_WEBHOOK]
        .into_iter()
        .enumerate()
    {
        let p = load(&rt, path).await;
        assert!(p.wants_grants(), "{path}");
        let input = json!({"url": up.url("/ok"), "json": {"n": i}, "debug": true});
        let report = run_granted(&rt, &p, input, webhook_grants(&allowed)).await;
        assert_eq!(
            result_json(&report),
            json!({"status": 200, "bytes": 5}),
            "{path}"
        );
        let seen = up.seen().pop().expect("the request reached the server");
        assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/ok"));
        assert_eq!(seen.body, format!(r#"{{"n":{i}}}"#).into_bytes(), "{path}");
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
        assert_eq!(seen.header("user-agent"), Some("wasmq-test/1"), "{path}");
        assert_eq!(report.usage.http_requests, 1, "{path}");
        assert_eq!(report.usage.http_bytes_in, 5, "{path}");
        // The guest logged the headers it sent: the secret is cut out, the value is not.
        let log = log(&report);
        assert!(!log.contains(SECRET), "{path}: {log}");
        assert!(
            log.contains("Bearer [redacted]") && log.contains("wasmq-test/1"),
            "{path}: {log}"
        );
    }
    assert_eq!(up.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_requests_the_grants_refuse_fail_saying_why() {
    let rt = runtime();
    let up = Upstream::start().await;
    let target = format!("http://127.0.0.1:{}", up.port);
    for path in [guests::PY_WEBHOOK, guests::JS_WEBHOOK] {
        let p = load(&rt, path).await;
        // No allow-list: nothing leaves, the job fails at once saying why.
        let input = json!({"url": up.url("/ok"), "json": 1});
        let report = run_granted(&rt, &p, input, webhook_grants(&[])).await;
        let (kind, message) = failure(&report);
        assert_eq!(kind, FailureKind::TaskError { fatal: true }, "{path}");
        assert!(message.contains("request denied"), "{path}: {message}");
        let log = log(&report);
        assert!(
            log.contains(&format!(
                "outbound request to {target} refused: not on the module's allow-list"
            )),
            "{path}: {log}"
        );
        assert!(up.seen().is_empty(), "{path}: nothing reached the server");
    }
    // A redirect is a new request to the host: the hop to a refused host is refused.
    let before = up.seen().len();
    for path in [guests::PY_WEBHOOK, guests::JS_WEBHOOK] {
        let p = load(&rt, path).await;
        let to = "http://metadata.invalid/latest";
        let input = json!({"url": up.url(&format!("/redirect?to={to}")), "json": 1});
        let report = run_granted(
            &rt,
            &p,
            input,
            webhook_grants(std::slice::from_ref(&target)),
        )
        .await;
        let (kind, message) = failure(&report);
        assert_eq!(kind, FailureKind::TaskError { fatal: true }, "{path}");
        assert!(message.contains("request denied"), "{path}: {message}");
        assert!(
            log(&report).contains("request to http://metadata.invalid:80 refused"),
            "{path}: {}",
            log(&report)
        );
    }
    assert_eq!(up.seen().len(), before + 2, "each first hop arrived");
    // A response over the attempt's cap (16 MiB) fails the attempt, retryable, saying why.
    for path in [guests::PY_WEBHOOK, guests::JS_WEBHOOK] {
        let p = load(&rt, path).await;
        let input = json!({"url": up.url("/big?n=17000000"), "json": 1});
        let report = run_granted(
            &rt,
            &p,
            input,
            webhook_grants(std::slice::from_ref(&target)),
        )
        .await;
        let (kind, message) = failure(&report);
        assert_eq!(kind, FailureKind::TaskError { fatal: false }, "{path}");
        assert!(
            message.contains("request failed: reading the response: ")
                && message.contains("exceeds limit: 16777216 bytes"),
            "{path}: {message}"
        );
    }
}

/// Every top-level import of a component, by name.
fn imports(path: &str) -> Vec<String> {
    let bytes = guest_bytes(path);
    let mut names = Vec::new();
    // Nested modules and components are parsed in line; only depth 0 is the component's.
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.expect("a valid component") {
            wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    names.push(import.expect("an import").name.name.to_owned());
                }
            }
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth -= 1,
            _ => {}
        }
    }
    names
}

#[tokio::test]
async fn a_task_built_without_the_opt_in_imports_no_network_or_config() {
    let rt = runtime();
    for (with, without) in [
        (guests::PY_WEBHOOK, guests::PY_HOSTILE),
        (guests::JS_WEBHOOK, guests::JS_HOSTILE),
    ] {
        let opted = imports(with);
        for name in [
            "wasi:http/outgoing-handler@0.2.12",
            "wasi:config/store@0.2.0-rc.1",
        ] {
            assert!(opted.iter().any(|i| i == name), "{with}: {opted:?}");
        }
        let plain = imports(without);
        assert!(
            plain.iter().any(|i| i.starts_with("wasmq:task/host")),
            "{plain:?}"
        );
        assert!(
            !plain
                .iter()
                .any(|i| i.starts_with("wasi:http/") || i.starts_with("wasi:config/")),
            "{without}: {plain:?}"
        );
        // The host agrees: its attempts need no grants, so it keeps the fast path.
        let p = load(&rt, without).await;
        assert!(!p.wants_grants(), "{without}");
        // Asking anyway fails the job, naming the build option.
        for (attack, option) in [("network", "--http"), ("config", "--config")] {
            let (kind, message) = failure(&run(&rt, &p, json!({"attack": attack})).await);
            assert_eq!(kind, FailureKind::TaskError { fatal: true }, "{without}");
            assert!(
                message.contains(&format!("rebuild it with `wasmq-task build {option}`")),
                "{without}: {message}"
            );
        }
    }
}

/// Admits every child but of module `nope`, numbering them from 100.
#[derive(Default)]
struct Recorder(std::sync::Mutex<i64>);

#[async_trait::async_trait]
impl Spawner for Recorder {
    async fn admit(&self, request: &ChildRequest) -> Result<Admitted, String> {
        if request.module == "nope" {
            return Err("no module `nope` is uploaded".into());
        }
        let mut next = self.0.lock().unwrap();
        *next += 1;
        Ok(Admitted::New {
            id: 99 + *next,
            digest: format!("digest-of-{}", request.module),
        })
    }
}

/// `cx.enqueue` from Python and JavaScript reaches the host with every option, the ids
/// come back, a refusal is `Fatal` with the host's words, and an attempt that fails
/// after enqueueing reports no children.
#[tokio::test]
async fn python_and_js_enqueue_children_with_their_options() {
    let rt = runtime();
    for path in [guests::PY_HOSTILE, guests::JS_HOSTILE] {
        let p = load(&rt, path).await;
        let spawned = |then: &str| RunRequest {
            spawner: Some(Arc::new(Recorder::default())),
            ..request(&json!({"attack": "spawn", "then": then}), Limits::default())
        };
        let report = rt.run(&p, spawned("")).await;
        assert_eq!(
            result_json(&report),
            json!({"ids": [100, 101, 102], "refused": "no module `nope` is uploaded"}),
            "{path}"
        );
        let made: Vec<(i64, &str, &[u8])> = report
            .children
            .iter()
            .map(|c| (c.id, c.request.module.as_str(), c.request.input.as_slice()))
            .collect();
        assert_eq!(
            made,
            [
                (100, "echo", &br#"{"i":0}"#[..]),
                (101, "echo", br#"{"i":1}"#),
                (102, "mail", b"raw")
            ],
            "{path}"
        );
        let mail = &report.children[2];
        assert_eq!(mail.digest, "digest-of-mail");
        assert_eq!(
            (
                mail.request.queue.as_deref(),
                mail.request.priority,
                mail.request.delay_ms,
                mail.request.idempotency_key.as_deref()
            ),
            (Some("mail"), Some(-3), Some(1500), Some("k-1")),
            "{path}"
        );
        assert_eq!(report.usage.children, 3);
        let failed = rt.run(&p, spawned("raise")).await;
        assert_eq!(failure(&failed).1, "after enqueueing", "{path}");
        assert!(
            failed.children.is_empty(),
            "{path}: a failed attempt has no children"
        );
        assert_eq!(failed.usage.children, 0);
    }
}
