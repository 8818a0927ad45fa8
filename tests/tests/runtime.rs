//! The sandbox against real compiled guests: examples, limits in pairs (obeyed and
//! violated), denied WASI access, isolation between jobs, fairness and cancellation.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wasmq_host::runtime::{
    AttemptReport, CancelHandle, FailureKind, JobInfo, Limits, Outcome, Prepared, Progress,
    RunRequest, Runtime, RuntimeConfig,
};
use wasmq_tests::{guest_bytes, guests};

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        slots: 4,
        max_limits: unlimited_fuel(),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// Server maxima with fuel out of the way, so wall-clock and cancel tests can spin.
fn unlimited_fuel() -> Limits {
    Limits {
        fuel: u64::MAX,
        ..Limits::default_max()
    }
}

async fn load(rt: &Runtime, path: &str) -> Prepared {
    rt.load_bytes(Arc::new(guest_bytes(path)))
        .await
        .expect("guest compiles")
}

fn request(input: impl Into<Vec<u8>>, limits: Limits) -> RunRequest {
    RunRequest {
        input: input.into(),
        limits,
        job: JobInfo {
            id: "42".into(),
            module: "test".into(),
            attempt: 2,
            max_attempts: 5,
        },
        ..RunRequest::default()
    }
}

async fn run_with(rt: &Runtime, path: &str, input: Value, limits: Limits) -> AttemptReport {
    let p = load(rt, path).await;
    rt.run(&p, request(input.to_string(), limits)).await
}

async fn hostile(rt: &Runtime, input: Value, limits: Limits) -> AttemptReport {
    run_with(rt, guests::HOSTILE, input, limits).await
}

fn result_json(report: &AttemptReport) -> Value {
    match &report.outcome {
        Outcome::Success { result } => serde_json::from_slice(result).expect("JSON result"),
        Outcome::Failure(f) => panic!(
            "expected success, got {:?}: {}\nlog: {}",
            f.kind,
            f.message,
            report.log_text()
        ),
    }
}

fn kind(report: &AttemptReport) -> FailureKind {
    report.outcome.failure_kind().unwrap_or_else(|| {
        panic!(
            "expected a failure, got success; log: {}",
            report.log_text()
        )
    })
}

fn limits() -> Limits {
    Limits::default_max()
}

// ---- examples -------------------------------------------------------------------------

#[tokio::test]
async fn echo_returns_its_input_and_reports_usage() {
    let rt = runtime();
    let p = load(&rt, guests::ECHO).await;
    let r = rt
        .run(&p, request(b"hello \xff bytes".to_vec(), limits()))
        .await;
    assert_eq!(
        r.outcome,
        Outcome::Success {
            result: b"hello \xff bytes".to_vec()
        }
    );
    assert!(r.usage.fuel > 0, "fuel is counted");
    assert!(r.usage.memory_peak_bytes > 0, "memory peak is measured");
}

#[tokio::test]
async fn wordcount_counts_words() {
    let rt = runtime();
    let r = run_with(
        &rt,
        guests::WORDCOUNT,
        json!({"text": "the cat and the hat\nthe end"}),
        limits(),
    )
    .await;
    let v = result_json(&r);
    assert_eq!(v["words"], 7);
    assert_eq!(v["lines"], 2);
    assert_eq!(v["top"][0], json!(["the", 3]));
}

#[tokio::test]
async fn thumbnail_resizes_an_image_to_png() {
    use base64::Engine as _;
    let rt = runtime();
    let r = run_with(
        &rt,
        guests::THUMBNAIL,
        json!({"width": 640, "height": 480, "max": 64}),
        limits(),
    )
    .await;
    let v = result_json(&r);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(64), Some(48))
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(v["png_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a real PNG comes back");
}

#[tokio::test]
async fn render_email_escapes_user_values() {
    let rt = runtime();
    let input = json!({
        "user": {"name": "Ann", "email": "ann@example.com"},
        "page": {"title": "<script>alert(1)</script>", "url": "https://example.com/p", "author": "Bob"},
        "event": "published"
    });
    let v = result_json(&run_with(&rt, guests::RENDER_EMAIL, input, limits()).await);
    assert_eq!(v["to"], "ann@example.com");
    let html = v["html"].as_str().unwrap();
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    let bad = run_with(&rt, guests::RENDER_EMAIL, json!({"user": {"name": "a", "email": "b"}, "page": {"title": "t", "url": "u", "author": "x"}, "event": "exploded"}), limits()).await;
    assert_eq!(kind(&bad), FailureKind::TaskError { fatal: true });
}

#[tokio::test]
async fn wasi_command_reads_stdin_and_writes_its_result_to_stdout() {
    let rt = runtime();
    let p = load(&rt, guests::WASI_COMMAND).await;
    assert_eq!(p.kind(), wasmq_host::runtime::ModuleKind::Command);
    let ok = rt
        .run(&p, request(r#"{"numbers":[1,2,3]}"#, limits()))
        .await;
    assert_eq!(result_json(&ok), json!({"sum": 6, "count": 3}));
    assert!(
        ok.log_text().contains("summing 3 numbers"),
        "stderr goes to the log: {}",
        ok.log_text()
    );
    let bad = rt.run(&p, request("not json", limits())).await;
    let Outcome::Failure(f) = &bad.outcome else {
        panic!("bad input must fail")
    };
    assert_eq!(f.kind, FailureKind::TaskError { fatal: false });
    assert!(f.message.contains("code 2"), "{}", f.message);
    assert!(f.is_retryable());
}

#[tokio::test]
async fn wasi_command_stdout_past_the_output_limit_is_output_limit() {
    let rt = runtime();
    let p = load(&rt, guests::WASI_COMMAND).await;
    let numbers: Vec<u32> = (0..100).collect();
    let input = json!({ "numbers": numbers }).to_string();
    let r = rt
        .run(
            &p,
            request(
                input,
                Limits {
                    output_bytes: 4,
                    ..limits()
                },
            ),
        )
        .await;
    assert_eq!(kind(&r), FailureKind::OutputLimit);
}

// ---- limits, in pairs -----------------------------------------------------------------

#[tokio::test]
async fn fuel_limit_obeyed() {
    let rt = runtime();
    let r = hostile(
        &rt,
        json!({"op": "loop", "n": 10_000}),
        Limits {
            fuel: 50_000_000,
            ..limits()
        },
    )
    .await;
    assert_eq!(result_json(&r), json!({"done": 10_000}));
    assert!(r.usage.fuel < 50_000_000);
}

#[tokio::test]
async fn fuel_limit_violated() {
    let rt = runtime();
    let r = hostile(
        &rt,
        json!({"op": "spin"}),
        Limits {
            fuel: 5_000_000,
            ..limits()
        },
    )
    .await;
    assert_eq!(kind(&r), FailureKind::OutOfFuel);
    assert_eq!(r.usage.fuel, 5_000_000, "all the fuel was used");
}

#[tokio::test]
async fn timeout_obeyed() {
    let rt = runtime();
    let r = hostile(
        &rt,
        json!({"op": "loop", "n": 1000}),
        Limits {
            timeout_ms: 2_000,
            ..limits()
        },
    )
    .await;
    assert_eq!(result_json(&r), json!({"done": 1000}));
}

#[tokio::test]
async fn timeout_violated() {
    let rt = runtime();
    let started = Instant::now();
    let r = hostile(
        &rt,
        json!({"op": "spin"}),
        Limits {
            fuel: u64::MAX,
            timeout_ms: 300,
            ..limits()
        },
    )
    .await;
    assert_eq!(kind(&r), FailureKind::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped near its deadline, took {:?}",
        started.elapsed()
    );
    assert!(r.usage.duration_ms >= 300);
}

#[tokio::test]
async fn memory_limit_obeyed() {
    let rt = runtime();
    let r = hostile(
        &rt,
        json!({"op": "alloc", "n": 8}),
        Limits {
            memory_bytes: 32 << 20,
            ..limits()
        },
    )
    .await;
    assert_eq!(result_json(&r), json!({"allocated_mib": 8}));
    assert!(r.usage.memory_peak_bytes >= 8 << 20);
    assert!(r.usage.memory_peak_bytes <= 32 << 20);
}

#[tokio::test]
async fn memory_limit_violated_by_a_large_allocation() {
    let rt = runtime();
    let r = hostile(
        &rt,
        json!({"op": "alloc", "n": 48}),
        Limits {
            memory_bytes: 32 << 20,
            ..limits()
        },
    )
    .await;
    assert_eq!(
        kind(&r),
        FailureKind::MemoryLimit,
        "the refused growth is the cause, though the guest then aborted"
    );
    assert!(r.usage.memory_peak_bytes <= 32 << 20);
}

#[tokio::test]
async fn memory_limit_violated_by_growing_without_end() {
    let rt = runtime();
    let r = hostile(
        &rt,
        json!({"op": "grow"}),
        Limits {
            memory_bytes: 16 << 20,
            ..limits()
        },
    )
    .await;
    assert_eq!(kind(&r), FailureKind::MemoryLimit);
}

#[tokio::test]
async fn output_limit_obeyed() {
    let rt = runtime();
    let p = load(&rt, guests::HOSTILE).await;
    let r = rt
        .run(
            &p,
            request(
                json!({"op": "result", "n": 1000}).to_string(),
                Limits {
                    output_bytes: 1000,
                    ..limits()
                },
            ),
        )
        .await;
    assert_eq!(
        r.outcome,
        Outcome::Success {
            result: vec![b'x'; 1000]
        }
    );
}

#[tokio::test]
async fn output_limit_violated() {
    let rt = runtime();
    let r = hostile(
        &rt,
        json!({"op": "result", "n": 1001}),
        Limits {
            output_bytes: 1000,
            ..limits()
        },
    )
    .await;
    assert_eq!(
        kind(&r),
        FailureKind::OutputLimit,
        "refused set-result is the cause, though the guest returned an error"
    );
}

#[tokio::test]
async fn log_limit_obeyed() {
    let rt = runtime();
    let r = hostile(
        &rt,
        json!({"op": "log_flood", "n": 10}),
        Limits {
            log_bytes: 64 << 10,
            ..limits()
        },
    )
    .await;
    result_json(&r);
    assert_eq!(r.log_dropped, 0);
    assert_eq!(r.log_text().lines().count(), 10);
    assert!(r.log_text().starts_with("INFO "));
}

#[tokio::test]
async fn log_limit_truncates_and_counts_without_failing_the_job() {
    let rt = runtime();
    let cap = 4096u64;
    let r = hostile(
        &rt,
        json!({"op": "log_flood", "n": 1000}),
        Limits {
            log_bytes: cap,
            ..limits()
        },
    )
    .await;
    assert_eq!(
        result_json(&r),
        json!({"logged": 1000}),
        "flooding the log never fails a job"
    );
    assert_eq!(r.log.len() as u64, cap);
    let line = r.log_text().lines().next().unwrap().len() as u64 + 1;
    assert_eq!(
        r.log.len() as u64 + r.log_dropped,
        1000 * line,
        "every byte is kept or counted"
    );

    let r = hostile(
        &rt,
        json!({"op": "stdout_flood", "n": 1000}),
        Limits {
            log_bytes: cap,
            ..limits()
        },
    )
    .await;
    assert_eq!(
        result_json(&r),
        json!({"printed": 1000}),
        "stdout past the cap does not fail the job"
    );
    assert_eq!(r.log.len() as u64, cap);
    assert!(r.log_dropped >= 100_000 - cap);
}

// ---- hostile guests -------------------------------------------------------------------

#[tokio::test]
async fn unbounded_recursion_is_a_trap() {
    let rt = runtime();
    let r = hostile(&rt, json!({"op": "recurse"}), limits()).await;
    assert_eq!(kind(&r), FailureKind::Trap);
}

#[tokio::test]
async fn panic_is_a_retryable_trap_with_the_message_in_the_log() {
    let rt = runtime();
    let r = hostile(&rt, json!({"op": "panic"}), limits()).await;
    let Outcome::Failure(f) = &r.outcome else {
        panic!("panic must fail")
    };
    assert_eq!(f.kind, FailureKind::Trap);
    assert!(f.is_retryable());
    assert!(
        r.log_text().contains("boom: hostile panic"),
        "log: {}",
        r.log_text()
    );
}

#[tokio::test]
async fn task_errors_are_typed() {
    let rt = runtime();
    let r = hostile(&rt, json!({"op": "retry"}), limits()).await;
    assert_eq!(kind(&r), FailureKind::TaskError { fatal: false });
    let r = hostile(&rt, json!({"op": "fatal"}), limits()).await;
    assert_eq!(kind(&r), FailureKind::TaskError { fatal: true });
    let Outcome::Failure(f) = &r.outcome else {
        unreachable!()
    };
    assert_eq!(f.message, "do not retry");
    assert!(!f.is_retryable());
}

#[tokio::test]
async fn files_are_denied_inside_the_guest() {
    let rt = runtime();
    let _ = std::fs::remove_file("/tmp/wasmq-pwned");
    let v = result_json(&hostile(&rt, json!({"op": "open_file"}), limits()).await);
    // No directory is preopened, so no path resolves to anything (WASI ENOENT, 44).
    let no_such_file = "No such file or directory (os error 44)";
    assert_eq!(v, json!({"read": no_such_file, "create": no_such_file}));
    assert!(
        !std::path::Path::new("/tmp/wasmq-pwned").exists(),
        "nothing was written on the host"
    );
}

#[tokio::test]
async fn environment_and_arguments_are_empty() {
    let rt = runtime();
    let v = result_json(&hostile(&rt, json!({"op": "read_env"}), limits()).await);
    assert_eq!(v["vars"], 0);
    assert_eq!(v["args"], 0);
    assert_eq!(v["home"], Value::Null);
}

#[tokio::test]
async fn sockets_and_name_lookup_are_denied_inside_the_guest() {
    let rt = runtime();
    let v = result_json(&hostile(&rt, json!({"op": "open_socket"}), limits()).await);
    // TCP is refused by the host (WASI EACCES, 2); name lookup is not offered at all.
    assert_eq!(
        v,
        json!({
            "connect": "Permission denied (os error 2)",
            "resolve": "failed to lookup address information: Non-recoverable error",
        })
    );
}

#[tokio::test]
async fn clocks_and_random_are_allowed() {
    let rt = runtime();
    let v = result_json(&hostile(&rt, json!({"op": "clock_random"}), limits()).await);
    assert!(v["now_secs"].as_u64().unwrap() > 1_700_000_000, "{v}");
}

#[tokio::test]
async fn the_guest_sees_its_job_and_reports_progress() {
    let rt = runtime();
    let p = load(&rt, guests::HOSTILE).await;
    let v = result_json(
        &rt.run(&p, request(json!({"op": "job"}).to_string(), limits()))
            .await,
    );
    assert_eq!(
        v,
        json!({"id": "42", "module": "test", "attempt": 2, "max_attempts": 5})
    );

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut req = request(json!({"op": "progress"}).to_string(), limits());
    req.progress = Some(Arc::new(move |p: Progress| {
        sink.lock().unwrap().push(p.percent)
    }));
    let r = rt.run(&p, req).await;
    result_json(&r);
    assert_eq!(*seen.lock().unwrap(), vec![10, 50, 100]);
    assert_eq!(r.progress.unwrap().percent, 100);
}

// ---- isolation, fairness, cancellation ------------------------------------------------

/// Writes `secret` in one job (`scattered`: also over that many separate pages), then
/// returns what the next job on the same slot finds of it, having grown its memory past
/// all the first one wrote. One slot, so the second job reuses the first one's slot.
async fn secret_after_reuse(rt: &Runtime, secret: &str, scattered: u64) -> Value {
    let w = hostile(
        rt,
        json!({"op": "write_secret", "secret": secret, "n": scattered}),
        limits(),
    )
    .await;
    result_json(&w);
    // Pages of 64 KiB: the 1 MiB block, the scattered pages (every other one of 4 KiB),
    // and room for the allocator's own.
    let grow = 16 + (2 * scattered * 4096).div_ceil(65536) + 16;
    let read = json!({"op": "read_secret", "secret": secret, "n": grow});
    let r = hostile(rt, read, limits()).await;
    result_json(&r)
}

fn one_slot() -> Runtime {
    Runtime::new(RuntimeConfig {
        slots: 1,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_reused_slot_never_shows_the_previous_jobs_memory() {
    let v = secret_after_reuse(&one_slot(), "correct-horse-battery-staple-4242", 0).await;
    assert_eq!(v["found_in_memory"], false, "{v}");
    assert!(!v["static"].as_str().unwrap().contains("horse"), "{v}");
}

#[tokio::test]
async fn a_reused_slot_is_clean_after_a_write_to_hundreds_of_scattered_pages() {
    // 300 dirty regions apart: the reset scans them in batches (vendor/README.md), and
    // every one must be reset or decommitted before the slot's next job.
    let rt = one_slot();
    for _ in 0..3 {
        let v = secret_after_reuse(&rt, "scattered-secret-over-three-hundred-pages", 300).await;
        assert_eq!(v["found_in_memory"], false, "{v}");
    }
}

#[tokio::test]
async fn a_spinning_guest_does_not_delay_a_normal_job() {
    // One guest thread: the spinning guest must yield for the echo to run at all.
    let rt = Runtime::new(RuntimeConfig {
        slots: 4,
        guest_threads: Some(1),
        max_limits: unlimited_fuel(),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let spin = load(&rt, guests::HOSTILE).await;
    let echo = load(&rt, guests::ECHO).await;
    let (req, spinning_now) = announced_spin(Limits {
        fuel: u64::MAX,
        timeout_ms: 3_000,
        ..limits()
    });
    let spinning = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.run(&spin, req).await })
    };
    spinning_now.await.expect("the guest reports that it spins");
    let started = Instant::now();
    let r = rt.run(&echo, request("ping", limits())).await;
    let took = started.elapsed();
    assert_eq!(
        r.outcome,
        Outcome::Success {
            result: b"ping".to_vec()
        }
    );
    assert!(
        took < Duration::from_secs(1),
        "echo waited {took:?} behind a spinning guest"
    );
    assert!(!spinning.is_finished(), "the spinner was still running");
    assert_eq!(kind(&spinning.await.unwrap()), FailureKind::Timeout);
}

#[tokio::test]
async fn cancelling_interrupts_a_running_guest_within_a_second() {
    let rt = runtime();
    let p = load(&rt, guests::HOSTILE).await;
    let cancel = CancelHandle::new();
    let (mut req, spinning_now) = announced_spin(Limits {
        fuel: u64::MAX,
        ..limits()
    });
    req.cancel = cancel.clone();
    let running = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.run(&p, req).await })
    };
    spinning_now.await.expect("the guest reports that it spins");
    assert!(!running.is_finished(), "still spinning when cancelled");
    let asked = Instant::now();
    cancel.cancel();
    let r = running.await.unwrap();
    assert_eq!(kind(&r), FailureKind::Cancelled);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "took {:?}",
        asked.elapsed()
    );
}

/// A request for the `announce_spin` op and a receiver that fires once the guest has
/// reported that it is about to spin (its progress call), so a test waits on the event
/// rather than a guess of how long starting takes.
fn announced_spin(limits: Limits) -> (RunRequest, tokio::sync::oneshot::Receiver<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let mut req = request(json!({"op": "announce_spin"}).to_string(), limits);
    req.progress = Some(Arc::new(move |_: Progress| {
        if let Some(tx) = tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }));
    (req, rx)
}

#[tokio::test]
async fn more_attempts_than_slots_wait_their_turn() {
    let rt = Runtime::new(RuntimeConfig {
        slots: 2,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let p = load(&rt, guests::HOSTILE).await;
    let runs: Vec<_> = (0..12)
        .map(|i| {
            let (rt, p) = (rt.clone(), p.clone());
            tokio::spawn(async move {
                rt.run(
                    &p,
                    request(
                        json!({"op": "loop", "n": 100_000 + i}).to_string(),
                        limits(),
                    ),
                )
                .await
            })
        })
        .collect();
    for (i, h) in runs.into_iter().enumerate() {
        assert_eq!(result_json(&h.await.unwrap()), json!({"done": 100_000 + i}));
    }
}

// ---- bounded failure text and host resources -------------------------------------------

fn failure(report: &AttemptReport) -> &wasmq_host::runtime::Failure {
    match &report.outcome {
        Outcome::Failure(f) => f,
        Outcome::Success { .. } => panic!("expected a failure; log: {}", report.log_text()),
    }
}

fn assert_capped(message: &str) {
    assert!(
        message.len() <= wasmq_host::text::MAX_MESSAGE_BYTES,
        "{} bytes",
        message.len()
    );
    assert!(
        message.ends_with("bytes cut]"),
        "says it was cut: …{}",
        &message[message.len().saturating_sub(80)..]
    );
}

#[tokio::test]
async fn a_trap_inside_a_function_with_a_huge_name_has_a_capped_message() {
    // Twenty frames named with 50,000 `A`s each: a megabyte of backtrace uncapped.
    let name = "A".repeat(50_000);
    let wat = format!(
        r#"(module
            (memory (export "memory") 1)
            (func ${name} (param i32)
                local.get 0
                if
                    local.get 0
                    i32.const 1
                    i32.sub
                    call ${name}
                else
                    unreachable
                end)
            (func (export "_start") i32.const 40 call ${name}))"#
    );
    let rt = runtime();
    let p = rt
        .load_bytes(Arc::new(wat::parse_str(&wat).unwrap()))
        .await
        .unwrap();
    let r = rt.run(&p, request("", limits())).await;
    let f = failure(&r);
    assert_eq!(f.kind, FailureKind::Trap);
    assert_capped(&f.message);
    assert!(
        f.message
            .starts_with("wasm trap: wasm `unreachable` instruction executed"),
        "the cause comes first: {}",
        &f.message[..200]
    );
    assert!(f.message.contains("AAAA"), "then the backtrace");
}

#[tokio::test]
async fn a_megabyte_task_error_is_capped_either_way() {
    let rt = runtime();
    for (secret, fatal) in [("fatal", true), ("retry", false)] {
        let r = hostile(
            &rt,
            json!({"op": "long_error", "n": 1_000_000, "secret": secret}),
            limits(),
        )
        .await;
        let f = failure(&r);
        assert_eq!(f.kind, FailureKind::TaskError { fatal });
        assert_capped(&f.message);
        assert!(f.message.starts_with("EEEE"), "{}", &f.message[..20]);
    }
}

#[tokio::test]
async fn random_bytes_within_the_bound_are_served() {
    let rt = runtime();
    let v = result_json(&hostile(&rt, json!({"op": "random_bytes", "n": 4096}), limits()).await);
    assert_eq!(v, json!({"random_bytes": 4096}));
}

#[tokio::test]
async fn asking_for_64_mib_of_random_in_one_call_is_a_trap() {
    let rt = runtime();
    let r = hostile(&rt, json!({"op": "random_bytes", "n": 64 << 20}), limits()).await;
    let f = failure(&r);
    assert_eq!(f.kind, FailureKind::Trap);
    assert!(f.is_retryable());
    assert!(
        f.message.contains("exceeds limit 1048576"),
        "names the bound: {}",
        f.message
    );
}

#[tokio::test]
async fn holding_some_resources_is_fine() {
    let rt = runtime();
    let v = result_json(&hostile(&rt, json!({"op": "hold_resources", "n": 1000}), limits()).await);
    assert_eq!(v, json!({"held": 1000}));
}

#[tokio::test]
async fn holding_resources_without_end_is_stopped() {
    let rt = runtime();
    let r = hostile(
        &rt,
        json!({"op": "hold_resources", "n": 1_000_000}),
        Limits {
            fuel: u64::MAX,
            ..limits()
        },
    )
    .await;
    let f = failure(&r);
    assert_eq!(f.kind, FailureKind::Trap, "{}", f.message);
    assert!(
        f.message.contains("resource table has no free keys"),
        "{}",
        f.message
    );
}

/// A WASI command whose only memory starts at `pages` × 64 KiB.
fn command_with_initial_memory(pages: u32) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (memory (export "memory") {pages}) (func (export "_start")))"#
    ))
    .unwrap()
}

/// Runs a command declaring 32 MiB of initial memory under a job memory limit.
async fn run_32_mib_module_under(memory_bytes: u64) -> AttemptReport {
    let rt = runtime();
    let p = rt
        .load_bytes(Arc::new(command_with_initial_memory(512)))
        .await
        .unwrap();
    let limits = Limits {
        memory_bytes,
        ..limits()
    };
    rt.run(&p, request("", limits)).await
}

#[tokio::test]
async fn initial_memory_within_the_jobs_limit_runs() {
    let r = run_32_mib_module_under(32 << 20).await;
    assert_eq!(r.outcome, Outcome::Success { result: Vec::new() });
}

#[tokio::test]
async fn initial_memory_over_the_jobs_limit_is_memory_limit_in_our_words() {
    let r = run_32_mib_module_under(16 << 20).await;
    let f = failure(&r);
    assert_eq!(f.kind, FailureKind::MemoryLimit);
    assert_eq!(
        f.message,
        "module declares 32 MiB of initial memory; the limit is 16 MiB"
    );
}
