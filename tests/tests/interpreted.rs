//! Python and JavaScript tasks in the sandbox: the examples give the Rust example's
//! answers, failures are classified as for Rust (Retry, Fatal, an exception with its
//! traceback in the log, fuel, wall clock, memory and output caps), and no state of one
//! job reaches the next.
//!
//! The components are tens of MiB; they are compiled once into a shared artifact
//! directory under `target/`, so later runs load them from disk.

use std::sync::Arc;

use serde_json::{Value, json};
use wasmq_host::runtime::{
    AttemptReport, FailureKind, JobInfo, Limits, Outcome, Prepared, RunRequest, Runtime,
    RuntimeConfig,
};
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
