//! What no client can do to the API over a real loopback socket: hold a connection with a
//! half-sent head, an idle keep-alive or a stalled body; hold more long-polls than its
//! share; make the server read a body its key may not send; read every tenant's metrics
//! without an operator's key, or make each scrape count the jobs table.

mod support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wasmq_host::api::ApiConfig;
use wasmq_host::queue::Scope;
use wasmq_tests::guests;
use wasmq_tests::harness::fresh_store;

use support::{Server, problem};

/// How long a test waits for what the server must do within its (short) timeouts.
const PATIENCE: Duration = Duration::from_secs(10);

async fn server(config: ApiConfig) -> Server {
    Server::start_with(fresh_store().await, config).await
}

/// Reads until the server closes the connection (EOF or reset) and returns what it sent;
/// panics if it is still open after [`PATIENCE`].
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the connection is still open after {PATIENCE:?}; it sent {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
}

/// Reads one whole answer (head and a `content-length` body) from `stream`.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("reading the answer");
        assert!(n > 0, "closed before a whole answer: {text:?}");
        seen.extend_from_slice(&buf[..n]);
    }
}

fn status_of(answer: &str) -> &str {
    answer.split_whitespace().nth(1).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_head_is_cut_off_after_the_header_timeout() {
    let timeout = Duration::from_millis(500);
    let s = server(ApiConfig {
        header_read_timeout: timeout,
        ..ApiConfig::default()
    })
    .await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let sent = read_until_closed(&mut slow).await;
    // The server's clock starts at accept, a hair before ours can; timers are coarse.
    assert!(
        started.elapsed() >= timeout * 9 / 10,
        "closed before the timeout ({:?}): {sent:?}",
        started.elapsed()
    );
    assert!(
        sent.is_empty() || status_of(&sent) == "408",
        "a half-sent head was answered: {sent:?}"
    );
    // A head that arrives in time is served.
    let mut quick = TcpStream::connect(s.addr).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status_of(&read_answer(&mut quick).await), "200");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let s = server(ApiConfig {
        header_read_timeout: Duration::from_millis(500),
        ..ApiConfig::default()
    })
    .await;
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    for _ in 0..2 {
        // Kept alive between requests that come promptly...
        idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_answer(&mut idle).await;
        assert_eq!(status_of(&answer), "200", "{answer}");
    }
    // ...and closed when no next request comes.
    let after = read_until_closed(&mut idle).await;
    assert!(after.is_empty() || status_of(&after) == "408", "{after:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_within_the_body_timeout() {
    let s = server(ApiConfig {
        body_timeout: Duration::from_millis(500),
        ..ApiConfig::default()
    })
    .await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    for (head, part) in [
        (
            "POST /v1/jobs/batch HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: 1000",
            &br#"{"jobs": [{"module": "echo"}"#[..],
        ),
        (
            "PUT /v1/modules/stalled HTTP/1.1\r\ncontent-length: 100000",
            &b"\0asm\x01\0\0\0"[..],
        ),
    ] {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        let request = format!(
            "{head}\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
            s.admin
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(part).await.unwrap();
        // The rest never comes; the answer must, and then the connection closes.
        let answer = read_until_closed(&mut stream).await;
        assert_eq!(status_of(&answer), "408", "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(
            answer.contains("https://wasmq.dev/problems/body-timeout"),
            "{answer}"
        );
    }
    // Nothing of either was stored.
    let jobs: Value = s.call(Method::GET, "/v1/jobs", &s.admin).await;
    assert_eq!(jobs["jobs"], json!([]), "{jobs}");
    let module = s
        .req(Method::GET, "/v1/modules/stalled", &s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(module.status(), StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_has_at_most_its_share_of_long_polls() {
    let s = server(ApiConfig {
        max_long_polls_per_key: 2,
        ..ApiConfig::default()
    })
    .await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    let (_, later) = s
        .enqueue(&s.admin, json!({"module": "echo", "delay_ms": 3_600_000}))
        .await;
    let path = format!("/v1/jobs/{}?wait=30s", later["id"]);
    let polls: Vec<_> = (0..2)
        .map(|_| tokio::spawn(s.req(Method::GET, &path, &s.admin).send()))
        .collect();
    let deadline = Instant::now() + PATIENCE;
    while s.state.long_polls_waiting() < 2 {
        assert!(Instant::now() < deadline, "the long-polls never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = s.req(Method::GET, &path, &s.admin).send().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    problem(
        refused,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-long-polls",
    )
    .await;
    // A poll that need not wait is not counted; another key is not limited by this one.
    let plain = s.req(Method::GET, &format!("/v1/jobs/{}", later["id"]), &s.admin);
    assert_eq!(plain.send().await.unwrap().status(), StatusCode::OK);
    let other = s.key("default", &[Scope::JobsRead]).await;
    let short = format!("/v1/jobs/{}?wait=200ms", later["id"]);
    let answer = s.req(Method::GET, &short, &other).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    // Shutting down answers the waiting polls at once.
    let stopping = tokio::spawn(s.stop());
    for poll in polls {
        assert_eq!(poll.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_the_scope_is_refused_before_its_body_is_read() {
    let s = Server::start().await;
    let reader = s.key("default", &[Scope::JobsRead]).await;
    for head in [
        "POST /v1/jobs/batch HTTP/1.1\r\ncontent-type: application/json",
        "POST /v1/jobs HTTP/1.1\r\ncontent-type: application/json",
        "PUT /v1/modules/big HTTP/1.1",
    ] {
        // A large body announced and never sent: only an answer before reading it comes.
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        let request = format!(
            "{head}\r\nhost: x\r\nauthorization: Bearer {reader}\r\ncontent-length: {}\r\n\r\n",
            60 << 20
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut stream))
            .await
            .unwrap_or_else(|_| panic!("{head}: no answer without the body"));
        assert_eq!(status_of(&answer), "403", "{head}: {answer}");
        assert!(answer.contains("https://wasmq.dev/problems/forbidden"));
    }
    s.stop().await;
}

fn series_value(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(s: &Server, key: &str) -> String {
    let answer = s.req(Method::GET, "/metrics", key).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    answer.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_named_modules_of_two_tenants_are_separate_series() {
    let s = Server::start().await;
    let operator = s.key("ops", &[Scope::Metrics]).await;
    for (tenant, jobs) in [("metrics-a", 1), ("metrics-b", 2)] {
        let key = s.key(tenant, &[Scope::Admin]).await;
        let (status, _) = s.push(&key, "echo", guests::ECHO).await;
        assert_eq!(status, StatusCode::CREATED);
        for _ in 0..jobs {
            let (status, _) = s.enqueue(&key, json!({"module": "echo"})).await;
            assert_eq!(status, StatusCode::ACCEPTED);
        }
    }
    let metrics = scrape(&s, &operator).await;
    for (tenant, jobs) in [("metrics-a", 1), ("metrics-b", 2)] {
        let series = format!("wasmq_jobs_enqueued_total{{tenant=\"{tenant}\",module=\"echo\"}}");
        assert_eq!(
            series_value(&metrics, &series),
            Some(jobs),
            "{series} in:\n{metrics}"
        );
    }
    assert!(metrics.contains("At most 500 label sets"), "{metrics}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_between_refreshes_share_one_depth_reading() {
    let s = server(ApiConfig {
        depth_refresh: Duration::from_secs(3600),
        ..ApiConfig::default()
    })
    .await;
    s.push(&s.admin, "echo", guests::ECHO).await;
    // A queue no worker serves: its jobs stay available.
    let job = json!({"module": "echo", "queue": "unserved"});
    s.enqueue(&s.admin, job.clone()).await;
    let series = "wasmq_jobs{queue=\"unserved\",state=\"available\"}";
    assert_eq!(series_value(&scrape(&s, &s.admin).await, series), Some(1));
    s.enqueue(&s.admin, job).await;
    for _ in 0..5 {
        assert_eq!(
            series_value(&scrape(&s, &s.admin).await, series),
            Some(1),
            "a scrape within the refresh period counted the jobs again"
        );
    }
    // The store has two: a server that refreshes on every scrape sees them.
    let fresh = Server::start_with(
        s.store.clone(),
        ApiConfig {
            depth_refresh: Duration::ZERO,
            ..ApiConfig::default()
        },
    )
    .await;
    assert_eq!(
        series_value(&scrape(&fresh, &fresh.admin).await, series),
        Some(2)
    );
    fresh.stop().await;
    s.stop().await;
}
