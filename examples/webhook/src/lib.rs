//! A webhook: POSTs a JSON document to a URL, through outbound HTTP.
//!
//! Input `{"url": "https://…", "json": <any>, "debug": <bool, optional>}`; result
//! `{"status": <int>, "bytes": <bytes of the response body>}`. The module's config may
//! set `token` (sent as `Authorization: Bearer …`; make it a secret) and `agent` (the
//! `User-Agent`). `debug` logs the headers sent: a secret among them comes out as
//! `[redacted]` in the job's log.
//!
//! The host sends the request only if the module's allow-list names the URL's host:
//!
//! ```text
//! cargo build --profile guest --target wasm32-wasip2 -p webhook
//! wasmq module push webhook target/wasm32-wasip2/guest/webhook.wasm --allow-host https://hooks.example.com
//! wasmq job enqueue webhook --input '{"url": "https://hooks.example.com/in", "json": {"ok": true}}' --wait
//! ```

use serde::{Deserialize, Serialize};
use wasmq_guest::http::Request;
use wasmq_guest::{Context, TaskError};

#[derive(Deserialize)]
struct Input {
    url: String,
    json: serde_json::Value,
    #[serde(default)]
    debug: bool,
}

#[derive(Serialize)]
struct Output {
    status: u16,
    bytes: usize,
}

fn run(input: Input, cx: &Context) -> Result<Output, TaskError> {
    let body = serde_json::to_vec(&input.json)?;
    let mut request = Request::new("POST", &input.url).header("content-type", "application/json");
    if let Some(token) = cx.config("token") {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(agent) = cx.config("agent") {
        request = request.header("user-agent", agent);
    }
    if input.debug {
        cx.debug(format!("headers: {:?}", request.headers));
    }
    cx.info(format!("POST {} ({} bytes)", input.url, body.len()));
    let response = cx.http().send(request.body(body))?;
    if response.status >= 500 {
        return Err(TaskError::retry(format!(
            "the webhook answered {}",
            response.status
        )));
    }
    Ok(Output {
        status: response.status,
        bytes: response.body.len(),
    })
}

wasmq_guest::json_task!(run);
