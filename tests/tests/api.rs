//! The HTTP API over a real loopback socket, a real PostgreSQL and real guests: upload,
//! enqueue, wait, result; every error path; tenants; malformed requests.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmq_host::queue::{JobFilter, Scope, Store};
use wasmq_tests::guests;

use support::{MAX_MODULE, Server, problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_runs_from_upload_to_result() {
    let s = Server::start().await;
    let cases = [
        ("echo", guests::ECHO, json!({"hello": "world"})),
        (
            "wordcount",
            guests::WORDCOUNT,
            json!({"text": "the cat and the hat\nthe end"}),
        ),
        (
            "thumbnail",
            guests::THUMBNAIL,
            json!({"width": 640, "height": 480, "max": 64}),
        ),
        (
            "render-email",
            guests::RENDER_EMAIL,
            json!({
                "user": {"name": "Ann", "email": "ann@example.com"},
                "page": {"title": "<b>x</b>", "url": "https://example.com/p", "author": "Bob"},
                "event": "published"
            }),
        ),
        (
            "wasi-command",
            guests::WASI_COMMAND,
            json!({"numbers": [1, 2, 3]}),
        ),
    ];
    for (name, path, input) in cases {
        let (status, module) = s.push(&s.admin, name, path).await;
        assert_eq!(status, StatusCode::CREATED, "{module}");
        assert_eq!(module["version"], 1);
        let (status, job) = s
            .enqueue(&s.admin, json!({"module": name, "input": input}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        assert_eq!(job["digest"], module["digest"], "the digest is pinned");
        assert_eq!(job["input"], input);
        let done = s.wait(&s.admin, job["id"].as_i64().unwrap()).await;
        assert_eq!(done["state"], "completed", "{name}: {done}");
        assert!(done["usage"]["fuel"].as_u64().unwrap() > 0);
        match name {
            "echo" => assert_eq!(done["result"], input),
            "wordcount" => assert_eq!(done["result"]["words"], 7),
            "thumbnail" => assert_eq!(done["result"]["width"], 64),
            "render-email" => {
                assert_eq!(done["result"]["to"], "ann@example.com");
                assert!(
                    done["result"]["html"]
                        .as_str()
                        .unwrap()
                        .contains("&lt;b&gt;")
                );
            }
            "wasi-command" => assert_eq!(done["result"], json!({"sum": 6, "count": 3})),
            _ => unreachable!(),
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_validated_versioned_and_limited() {
    let s = Server::start().await;
    let (status, _) = s.push(&s.admin, "echo", guests::ECHO).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, same) = s.push(&s.admin, "echo", guests::ECHO).await;
    assert_eq!(status, StatusCode::OK, "same bytes again changes nothing");
    assert_eq!(same["version"], 1);
    let (status, v2) = s.push(&s.admin, "echo", guests::WORDCOUNT).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(v2["version"], 2);

    let bad = s
        .req(Method::PUT, "/v1/modules/broken", &s.admin)
        .body(b"\0asm\x01\0\0\0garbage".to_vec())
        .send()
        .await
        .unwrap();
    problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid-module").await;

    let big = s
        .req(Method::PUT, "/v1/modules/big", &s.admin)
        .body(vec![0u8; MAX_MODULE + 1])
        .send()
        .await
        .unwrap();
    problem(big, StatusCode::PAYLOAD_TOO_LARGE, "module-too-large").await;

    let name = s
        .req(Method::PUT, "/v1/modules/Bad%20Name", &s.admin)
        .body(wasmq_tests::guest_bytes(guests::ECHO))
        .send()
        .await
        .unwrap();
    problem(name, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;

    let over = s
        .req(
            Method::PUT,
            "/v1/modules/echo?fuel=99999999999999999",
            &s.admin,
        )
        .body(wasmq_tests::guest_bytes(guests::ECHO))
        .send()
        .await
        .unwrap();
    problem(over, StatusCode::UNPROCESSABLE_ENTITY, "limit-too-high").await;

    // Module defaults are merged into a job's limits; the job's own override wins.
    let r = s
        .req(
            Method::PUT,
            "/v1/modules/small?fuel=5000000&timeout_ms=2000",
            &s.admin,
        )
        .body(wasmq_tests::guest_bytes(guests::ECHO))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let (_, job) = s
        .enqueue(
            &s.admin,
            json!({"module": "small", "input": 1, "limits": {"timeout_ms": 1000}}),
        )
        .await;
    assert_eq!(job["limits"], json!({"fuel": 5000000, "timeout_ms": 1000}));

    let list: Value = s.call(Method::GET, "/v1/modules", &s.admin).await;
    assert_eq!(list["modules"].as_array().unwrap().len(), 2);
    let versions: Value = s.call(Method::GET, "/v1/modules/echo", &s.admin).await;
    assert_eq!(versions["modules"][0]["version"], 2, "newest first");
    let deleted = s
        .req(Method::DELETE, "/v1/modules/echo", &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = s
        .req(Method::GET, "/v1/modules/echo", &s.admin)
        .send()
        .await
        .unwrap();
    problem(gone, StatusCode::NOT_FOUND, "module-not-found").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_errors_are_problems() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let send = |body: &'static str| {
        s.req(Method::POST, "/v1/jobs", &s.admin)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    problem(
        send("{not json").await.unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed-json",
    )
    .await;
    problem(
        send(r#"{"module": 5}"#).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    )
    .await;
    problem(
        send(r#"{"module": "echo", "surprise": 1}"#).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    )
    .await;
    problem(
        send(r#"{"module": "nope"}"#).await.unwrap(),
        StatusCode::NOT_FOUND,
        "module-not-found",
    )
    .await;
    problem(
        send(r#"{"module": "echo", "input": 1, "input_base64": "AA=="}"#)
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    )
    .await;
    problem(
        send(r#"{"module": "echo", "limits": {"memory_bytes": 99999999999999}}"#)
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit-too-high",
    )
    .await;
    problem(
        send(r#"{"module": "echo", "limits": {"fule": 5}}"#)
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    )
    .await;
    let no_type = s
        .req(Method::POST, "/v1/jobs", &s.admin)
        .body(r#"{"module": "echo"}"#)
        .send()
        .await
        .unwrap();
    problem(
        no_type,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;

    let big = "x".repeat((1 << 20) + 1);
    let (status, body) = s
        .enqueue(&s.admin, json!({"module": "echo", "input": big}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["type"], "https://wasmq.dev/problems/input-too-large");
    let huge = "x".repeat(4 << 20);
    let (status, _) = s
        .enqueue(&s.admin, json!({"module": "echo", "input": huge}))
        .await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "a huge body is refused"
    );

    let missing = s
        .req(Method::GET, "/v1/jobs/123456", &s.admin)
        .send()
        .await
        .unwrap();
    problem(missing, StatusCode::NOT_FOUND, "job-not-found").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_scopes_are_enforced() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let none = s
        .http
        .get(format!("{}/v1/jobs", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    problem(none, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let junk = s
        .req(Method::GET, "/v1/jobs", "wq_junk")
        .send()
        .await
        .unwrap();
    problem(junk, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let last = if s.admin.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &s.admin[..s.admin.len() - 1]);
    let forged = s
        .req(Method::GET, "/v1/jobs", &forged)
        .send()
        .await
        .unwrap();
    problem(forged, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let reader = s.key("default", &[Scope::JobsRead]).await;
    let (status, _) = s.enqueue(&reader, json!({"module": "echo"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s.push(&reader, "echo2", guests::ECHO).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let ok = s
        .req(Method::GET, "/v1/jobs", &reader)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    let writer = s.key("default", &[Scope::JobsWrite]).await;
    let (status, job) = s.enqueue(&writer, json!({"module": "echo"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let read = s
        .req(Method::GET, &format!("/v1/jobs/{}", job["id"]), &writer)
        .send()
        .await
        .unwrap();
    problem(read, StatusCode::FORBIDDEN, "forbidden").await;

    let id = writer.split('_').nth(1).unwrap().to_owned();
    assert!(s.store.revoke_key("default", &id).await.unwrap());
    let (status, _) = s.enqueue(&writer, json!({"module": "echo"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked key is refused");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_cannot_see_run_or_cancel_each_others_things() {
    let s = Server::start().await;
    let a = s.key("acme", &[Scope::Admin]).await;
    let b = s.key("globex", &[Scope::Admin]).await;
    s.push(&a, "echo", guests::ECHO).await;
    let (status, job) = s
        .enqueue(
            &a,
            json!({"module": "echo", "input": "a", "delay_ms": 3_600_000}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(job["state"], "scheduled");
    let id = job["id"].as_i64().unwrap();

    for (method, path) in [
        (Method::GET, format!("/v1/jobs/{id}")),
        (Method::GET, format!("/v1/jobs/{id}/log")),
        (Method::POST, format!("/v1/jobs/{id}/cancel")),
        (Method::GET, "/v1/modules/echo".to_owned()),
        (Method::DELETE, "/v1/modules/echo".to_owned()),
    ] {
        let r = s.req(method.clone(), &path, &b).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (status, _) = s.enqueue(&b, json!({"module": "echo"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "b cannot run a's module");
    let list: Value = s.call(Method::GET, "/v1/jobs", &b).await;
    assert_eq!(list["jobs"], json!([]));
    let modules: Value = s.call(Method::GET, "/v1/modules", &b).await;
    assert_eq!(modules["modules"], json!([]));

    // Still intact for its owner, who can cancel it.
    let cancelled: Value = s
        .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), &a)
        .await;
    assert_eq!(cancelled["state"], "cancelled");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_answers_on_finish_or_when_time_is_up() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let (_, job) = s
        .enqueue(&s.admin, json!({"module": "echo", "input": 7}))
        .await;
    let started = Instant::now();
    let done: Value = s
        .call(
            Method::GET,
            &format!("/v1/jobs/{}?wait=30s", job["id"]),
            &s.admin,
        )
        .await;
    assert_eq!(done["state"], "completed");
    assert_eq!(done["result"], 7);
    assert!(started.elapsed() < Duration::from_secs(20));

    let (_, later) = s
        .enqueue(&s.admin, json!({"module": "echo", "delay_ms": 3_600_000}))
        .await;
    let started = Instant::now();
    let still: Value = s
        .call(
            Method::GET,
            &format!("/v1/jobs/{}?wait=1s", later["id"]),
            &s.admin,
        )
        .await;
    assert_eq!(still["state"], "scheduled");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let bad = s
        .req(
            Method::GET,
            &format!("/v1/jobs/{}?wait=forever", later["id"]),
            &s.admin,
        )
        .send()
        .await
        .unwrap();
    problem(bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_batches_listing_log_and_cancel() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let body = json!({"module": "echo", "input": 1, "idempotency_key": "order-1"});
    let (first, a) = s.enqueue(&s.admin, body.clone()).await;
    let (again, b) = s.enqueue(&s.admin, body).await;
    assert_eq!((first, again), (StatusCode::ACCEPTED, StatusCode::OK));
    assert_eq!(a["id"], b["id"]);

    let jobs: Vec<Value> = (0..250)
        .map(|i| json!({"module": "echo", "input": i, "delay_ms": 3_600_000}))
        .collect();
    let r = s
        .req(Method::POST, "/v1/jobs/batch", &s.admin)
        .json(&json!({ "jobs": jobs }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let batch: Value = r.json().await.unwrap();
    assert_eq!(batch["jobs"].as_array().unwrap().len(), 250);

    let too_many: Vec<Value> = (0..10_001).map(|_| json!({"module": "echo"})).collect();
    let r = s
        .req(Method::POST, "/v1/jobs/batch", &s.admin)
        .json(&json!({ "jobs": too_many }))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::PAYLOAD_TOO_LARGE, "batch-too-large").await;
    let r = s
        .req(Method::POST, "/v1/jobs/batch", &s.admin)
        .json(&json!({ "jobs": [{"module": "echo"}, {"module": "missing"}] }))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND, "module-not-found").await;
    let r = s
        .req(Method::POST, "/v1/jobs/batch", &s.admin)
        .json(&json!({ "jobs": [{"module": "echo"}, {"module": "echo", "max_attempts": 0}] }))
        .send()
        .await
        .unwrap();
    let body = problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
    assert!(
        body["detail"].as_str().unwrap().starts_with("jobs[1]: "),
        "{body}"
    );

    // Pages of 100, newest first, through every scheduled job.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?state=scheduled&limit=100&cursor={c}"),
            None => "/v1/jobs?state=scheduled&limit=100".to_owned(),
        };
        let page: Value = s.call(Method::GET, &path, &s.admin).await;
        seen.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 250);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
    // A filter no module or queue can be named (a NUL, which PostgreSQL's text refuses;
    // found by the API fuzzer) matches nothing: an empty page, not a 500.
    for filter in ["module=%0A%14%C3%A8+%00%066", "queue=a%00b", "module=Echo"] {
        let page: Value = s
            .call(Method::GET, &format!("/v1/jobs?{filter}"), &s.admin)
            .await;
        assert_eq!(page["jobs"], serde_json::json!([]), "{filter}");
    }

    let id = seen[0];
    let cancelled: Value = s
        .call(Method::POST, &format!("/v1/jobs/{id}/cancel"), &s.admin)
        .await;
    assert_eq!(cancelled["state"], "cancelled");
    assert_eq!(cancelled["error"]["kind"], "cancelled");

    let done = s.wait(&s.admin, a["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "completed");
    let log = s
        .req(Method::GET, &format!("/v1/jobs/{}/log", a["id"]), &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), StatusCode::OK);
    assert!(log.headers().contains_key("wasmq-log-dropped"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_openapi_need_no_key_and_metrics_needs_its_scope() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    // Two jobs one after the other: the worker compiles echo for the first and finds it
    // compiled for the second.
    for input in [1, 2] {
        let (_, job) = s
            .enqueue(&s.admin, json!({"module": "echo", "input": input}))
            .await;
        s.wait(&s.admin, job["id"].as_i64().unwrap()).await;
    }
    let get = |path: &str| s.http.get(format!("{}{path}", s.base)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.unwrap().status(), StatusCode::OK);

    // /metrics shows every tenant's counts: no key is 401, a tenant's key 403.
    problem(
        get("/metrics").await.unwrap(),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let reader = s.key("default", &[Scope::JobsRead, Scope::JobsWrite]).await;
    let refused = s
        .req(Method::GET, "/metrics", &reader)
        .send()
        .await
        .unwrap();
    let body = problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    assert!(
        body["detail"].as_str().unwrap().contains("`metrics`"),
        "{body}"
    );
    let operator = s.key("ops", &[Scope::Metrics]).await;
    for key in [&operator, &s.admin] {
        let answer = s.req(Method::GET, "/metrics", key).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let metrics = answer.text().await.unwrap();
        for series in [
            "wasmq_jobs_enqueued_total{tenant=\"default\",module=\"echo\"}",
            "wasmq_jobs_completed_total{tenant=\"default\",module=\"echo\"}",
            "wasmq_jobs{queue=\"default\",state=\"completed\"}",
            "wasmq_attempt_duration_seconds_bucket",
            "wasmq_attempt_fuel_count",
            "wasmq_http_requests_total{method=\"POST\",route=\"/v1/jobs\",status=\"202\"}",
            "wasmq_http_request_duration_seconds_bucket",
            "wasmq_module_loads_total{from=\"compile\"}",
            "wasmq_module_loads_total{from=\"memory\"}",
        ] {
            assert!(
                metrics.contains(series),
                "{series} missing from:\n{metrics}"
            );
        }
    }
    // A metrics key is an operator's: it reads no tenant's jobs.
    let jobs = s
        .req(Method::GET, "/v1/jobs", &operator)
        .send()
        .await
        .unwrap();
    problem(jobs, StatusCode::FORBIDDEN, "forbidden").await;

    let doc: Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    for path in [
        "/v1/modules/{name}",
        "/v1/modules",
        "/v1/jobs",
        "/v1/jobs/batch",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/log",
        "/v1/jobs/{id}/cancel",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI"
        );
    }
    assert_eq!(
        doc["paths"]["/metrics"]["get"]["security"],
        json!([{"bearer": []}]),
        "the OpenAPI document says /metrics needs a key"
    );
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([{}]));
    s.stop().await;
}

/// Sends raw bytes and returns the status code of the answer. The answer is read while
/// the request is still being written: a server that refuses a request before reading
/// all of it answers first, and the answer is in hand before the connection is reset.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let request = request.to_vec();
    let sender = tokio::spawn(async move {
        // A refusal may reset the connection mid-write: that is the server's answer.
        let _ = writer.write_all(&request).await;
        let _ = writer.shutdown().await;
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buf[..n]),
            other => panic!(
                "no status line (read {other:?}): {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    sender.abort();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_and_the_server_stays_up() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let routes = [
        "/v1/modules/fuzz",
        "/v1/modules",
        "/v1/jobs",
        "/v1/jobs/batch",
        "/v1/jobs/1",
        "/v1/jobs/1/log",
        "/v1/jobs/1/cancel",
        "/v1/jobs/notanumber",
        "/v1/jobs/99999999999999999999999",
        "/v1/nowhere",
    ];
    let bodies: [&[u8]; 7] = [
        b"",
        b"{",
        b"null",
        b"[1,2,3]",
        br#"{"module": ["echo"], "priority": "high"}"#,
        br#"{"module": "echo", "priority": 99999999}"#,
        b"\xff\xfe\x00garbage",
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
    ];
    for route in routes {
        for method in &methods {
            if *method == Method::GET && route == "/v1/modules" {
                continue; // a listing ignores the junk query and answers 200
            }
            for body in bodies {
                let r = s
                    .req(
                        method.clone(),
                        &format!("{route}?limit=-1&wait=x"),
                        &s.admin,
                    )
                    .header("content-type", "application/json")
                    .body(body.to_vec())
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                assert!(
                    status.is_client_error(),
                    "{method} {route} {:?} answered {status}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
    // Raw abuse: a truncated body, huge headers, garbage instead of HTTP.
    let truncated = format!(
        "POST /v1/jobs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"module\":",
        s.admin
    );
    let code = raw(s.addr, truncated.as_bytes()).await;
    assert!((400..500).contains(&code), "truncated body answered {code}");
    let huge = format!(
        "GET /v1/jobs HTTP/1.1\r\nhost: x\r\nx-junk: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let code = raw(s.addr, huge.as_bytes()).await;
    assert!((400..500).contains(&code), "huge header answered {code}");
    let code = raw(s.addr, b"\x16\x03\x01garbage\r\n\r\n").await;
    assert!((400..500).contains(&code), "garbage answered {code}");
    // Still serving.
    let (status, job) = s
        .enqueue(&s.admin, json!({"module": "echo", "input": "ok"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        s.wait(&s.admin, job["id"].as_i64().unwrap()).await["result"],
        "ok"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_chunked_upload_is_cut_off_and_not_stored() {
    let s = Server::start().await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "PUT /v1/modules/chunky HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ntransfer-encoding: chunked\r\n\r\n",
        s.admin
    );
    // No Content-Length: the server must stop reading at its limit, not buffer it all.
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 64 << 10];
        for _ in 0..(4 * MAX_MODULE / chunk.len()) {
            writer.write_all(b"10000\r\n").await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let _ = sender.await;
    let text = String::from_utf8_lossy(&answer);
    // The 413 comes after the server has drained the rest of the body, and reaches a
    // client that has shut its write side by then (the server supports half-close).
    assert_eq!(text.split_whitespace().nth(1), Some("413"), "{text}");
    let gone = s
        .req(Method::GET, "/v1/modules/chunky", &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND, "nothing was stored");
    s.stop().await;
}

/// A client that waits for `100 Continue` before uploading, and is refused (here: no
/// key), gets the refusal at once and is never asked for the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_expect_continue_upload_is_not_asked_for_its_body() {
    let s = Server::start().await;
    let stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(
            b"PUT /v1/modules/later HTTP/1.1\r\nhost: x\r\ncontent-length: 1048576\r\nexpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf))
            .await
            .expect("an answer without the body")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(text.split_whitespace().nth(1), Some("401"), "{text}");
    s.stop().await;
}

/// The input reaches the guest as the JSON text the caller sent (key order, spacing and
/// a number too long for a float intact); the content type may carry parameters; a body
/// that does not fit the request names the place that is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_input_is_kept_as_sent_and_errors_name_their_place() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let text = r#"{"zebra": 1,  "apple": 123456789012345678901234567890, "x": 1.50}"#;
    let sent = s
        .req(Method::POST, "/v1/jobs", &s.admin)
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(format!(r#"{{"module": "echo", "input": {text}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let id = sent.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let done = s.wait(&s.admin, id).await;
    assert_eq!(done["state"], "completed", "{done}");
    let stored = s.store.get("default", id).await.unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&stored.input), text);
    // The echo guest returns what it was given.
    assert_eq!(
        String::from_utf8_lossy(stored.result.as_deref().unwrap()),
        text
    );

    let batch = |content_type: &'static str, body: &'static str| {
        s.req(Method::POST, "/v1/jobs/batch", &s.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let wrong = problem(
        batch(
            "application/json",
            r#"{"jobs": [{"module": "echo"}, {"module": "echo", "priority": "high"}]}"#,
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-request",
    )
    .await;
    let detail = wrong["detail"].as_str().unwrap();
    assert!(detail.contains("jobs[1].priority"), "{detail}");
    for (content_type, body, status, kind) in [
        (
            "application/json",
            r#"{"jobs": [{"module": "echo"}"#,
            StatusCode::BAD_REQUEST,
            "malformed-json",
        ),
        (
            "text/plain",
            r#"{"jobs": [{"module": "echo"}]}"#,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
        ),
    ] {
        problem(batch(content_type, body).await.unwrap(), status, kind).await;
    }
    let vendor = batch(
        "application/vnd.example+json",
        r#"{"jobs": [{"module": "echo", "input": [1, 2]}]}"#,
    )
    .await
    .unwrap();
    assert_eq!(vendor.status(), StatusCode::ACCEPTED);
    // Nothing of the refused batches was stored: the first job, and the vendor batch's.
    let all = s
        .store
        .list("default", &JobFilter::default())
        .await
        .unwrap();
    assert_eq!(all.jobs.len(), 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_input_and_result_travel_as_base64() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let bytes = [0xffu8, 0x00, 0x80, 0x7f];
    let (status, job) = s
        .enqueue(
            &s.admin,
            json!({"module": "echo", "input_base64": b64.encode(bytes)}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["input_base64"], b64.encode(bytes));
    assert!(job.get("input").is_none());
    let done = s.wait(&s.admin, job["id"].as_i64().unwrap()).await;
    let (status, bad) = s
        .enqueue(&s.admin, json!({"module": "echo", "input_base64": "%%%"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    // The echo guest returns its input; a non-JSON result comes back as base64.
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["result_base64"], b64.encode(bytes), "{done}");
    assert!(done.get("result").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_hold_no_database_connection_while_waiting() {
    // Two connections in the pool; eight long-polls waiting at once must not starve a
    // plain request (nor the worker pool sharing the store).
    let url = wasmq_tests::pg::fresh_database().await;
    let store: Arc<dyn Store> = Arc::new(
        wasmq_host::queue::postgres::PgStore::connect(&url, 2)
            .await
            .unwrap(),
    );
    let s = Arc::new(Server::start_on(store).await);
    s.push(&s.admin, "echo", guests::ECHO).await;
    let (_, later) = s
        .enqueue(&s.admin, json!({"module": "echo", "delay_ms": 3_600_000}))
        .await;
    let id = later["id"].as_i64().unwrap();
    let polls: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.req(Method::GET, &format!("/v1/jobs/{id}?wait=3s"), &s.admin)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    // Every poll is waiting (it has read the job once and holds no connection now).
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.state.long_polls_waiting() < 8 {
        assert!(
            Instant::now() < deadline,
            "only {} long-polls waiting",
            s.state.long_polls_waiting()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let (status, job) = s
        .enqueue(&s.admin, json!({"module": "echo", "input": 2}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "an enqueue waited {:?} behind long-polls",
        started.elapsed()
    );
    for poll in polls {
        assert_eq!(poll.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(
        s.wait(&s.admin, job["id"].as_i64().unwrap()).await["result"],
        2
    );
    match Arc::try_unwrap(s) {
        Ok(s) => s.stop().await,
        Err(_) => panic!("the server is still shared"),
    }
}

/// Durations and dates out of range are 422s that name the field, not a panic (an empty
/// reply) or a job scheduled in year −262143.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_durations_and_dates_are_422s_naming_their_field() {
    let s = Server::start().await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let (_, job) = s.enqueue(&s.admin, json!({"module": "echo"})).await;
    let path = format!("/v1/jobs/{}", job["id"]);
    for wait in [
        "999999999999999999999s",
        "99999999999999999999999999h",
        "-1s",
        "NaN",
        "nans",
        "infs",
        "",
        "30",
        "1e3s",
        "soon",
    ] {
        let answer = s
            .req(Method::GET, &path, &s.admin)
            .query(&[("wait", wait)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("wait={wait:?}: no answer: {e}"));
        let body = problem(answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid-request").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("`wait`"), "wait={wait:?}: {detail}");
    }
    for (field, value) in [
        ("delay_ms", json!(u64::MAX)),
        ("delay_ms", json!(i64::MAX)),
        // About 31,700 years: past what a job may be scheduled for.
        ("delay_ms", json!(1_000_000_000_000_000u64)),
        ("run_at", json!("-262143-01-01T00:00:00Z")),
        ("run_at", json!("+262142-12-31T23:59:59Z")),
        ("run_at", json!("1969-12-31T23:59:59Z")),
        ("run_at", json!("10000-01-01T00:00:00Z")),
        ("run_at", json!("yesterday")),
    ] {
        let (status, body) = s
            .enqueue(&s.admin, json!({"module": "echo", field: value}))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value}: {body}"
        );
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{field}={value}: {detail}");
    }
    // The edges are accepted: the epoch runs now, the last second of 9999 waits.
    for (run_at, scheduled) in [
        ("1970-01-01T00:00:00Z", false),
        ("9999-12-31T23:59:59Z", true),
    ] {
        let (status, job) = s
            .enqueue(&s.admin, json!({"module": "echo", "run_at": run_at}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{run_at}: {job}");
        assert_eq!(job["state"] == "scheduled", scheduled, "{job}");
    }
    // Nothing refused was stored: the first job and the two edges.
    let all = s
        .store
        .list("default", &JobFilter::default())
        .await
        .unwrap();
    assert_eq!(all.jobs.len(), 3);
    s.stop().await;
}
