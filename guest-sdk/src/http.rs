//! Outbound HTTP from a task, over `wasi:http/outgoing-handler` (feature `http`).
//!
//! The host sends a request only to the hosts the module's allow-list names; anything
//! else fails with [`HttpError::Denied`] (and a line in the job's log naming the host).
//! Calls block the task until the whole response has arrived. Redirects are followed
//! (at most [`MAX_REDIRECTS`]); each hop is checked by the host like a new request.
//!
//! ```no_run
//! use wasmq_guest::{Context, TaskError};
//! fn run(_input: Vec<u8>, cx: &Context) -> Result<Vec<u8>, TaskError> {
//!     let response = cx.http().post_json("https://hooks.example.com/in", &serde_json::json!({"ok": true}))?;
//!     cx.info(format!("status {}", response.status));
//!     Ok(response.body)
//! }
//! # fn main() {}
//! ```

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;

use crate::TaskError;

/// Most redirects followed before [`HttpError::Failed`].
pub const MAX_REDIRECTS: usize = 5;

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// `http://` or `https://` URL.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body (empty: none).
    pub body: Vec<u8>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused it: not on the module's allow-list, a denied address, or the
    /// attempt's request budget spent. Retrying will not help.
    Denied(String),
    /// The request itself is malformed (a bad URL, method or header).
    Invalid(String),
    /// It was sent but failed: connection, TLS, timeout, a response over the cap, too
    /// many redirects.
    Failed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Denied(m) => write!(f, "request denied: {m}"),
            Self::Invalid(m) => write!(f, "invalid request: {m}"),
            Self::Failed(m) => write!(f, "request failed: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A denied or invalid request fails the job at once; a failed one is retried.
impl From<HttpError> for TaskError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(_) | HttpError::Invalid(_) => TaskError::Fatal(e.to_string()),
            HttpError::Failed(_) => TaskError::Retry(e.to_string()),
        }
    }
}

fn code_error(code: ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(
            "the module's allow-list or the server's policy refused it (see the job's log)".into(),
        ),
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            HttpError::Invalid(format!("{code:?}"))
        }
        other => HttpError::Failed(format!("{other:?}")),
    }
}

/// The task's HTTP client: [`crate::Context::http`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Http;

impl Http {
    /// `GET url`.
    pub fn get(&self, url: &str) -> Result<Response, HttpError> {
        self.send(Request::new("GET", url))
    }

    /// `POST url` with `value` as a JSON body.
    pub fn post_json<T: serde::Serialize>(
        &self,
        url: &str,
        value: &T,
    ) -> Result<Response, HttpError> {
        let body = serde_json::to_vec(value).map_err(|e| HttpError::Invalid(e.to_string()))?;
        self.send(
            Request::new("POST", url)
                .header("content-type", "application/json")
                .body(body),
        )
    }

    /// Sends `request`, following redirects (a 303, or a 301/302 of a `POST`, turns into
    /// a `GET` without a body, as browsers do).
    pub fn send(&self, mut request: Request) -> Result<Response, HttpError> {
        for _ in 0..=MAX_REDIRECTS {
            let response = send_once(&request)?;
            let location = match response.status {
                301 | 302 | 303 | 307 | 308 => response.header("location").map(str::to_owned),
                _ => None,
            };
            let Some(location) = location else {
                return Ok(response);
            };
            request.url = resolve(&request.url, &location)?;
            let to_get = response.status == 303
                || (matches!(response.status, 301 | 302) && request.method == "POST");
            if to_get {
                request.method = "GET".into();
                request.body.clear();
                request
                    .headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
            }
        }
        Err(HttpError::Failed(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

/// The parts of a URL the request needs.
struct Url<'a> {
    scheme: Scheme,
    authority: &'a str,
    path: &'a str,
}

fn parse(url: &str) -> Result<Url<'_>, HttpError> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => {
            return Err(HttpError::Invalid(format!(
                "`{url}` is not an http:// or https:// URL"
            )));
        }
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(HttpError::Invalid(format!("`{url}` names no host")));
    }
    Ok(Url {
        scheme,
        authority,
        path: if path.is_empty() { "/" } else { path },
    })
}

/// A redirect's `Location` against the URL it answered.
fn resolve(base: &str, location: &str) -> Result<String, HttpError> {
    if location.contains("://") {
        return Ok(location.to_owned());
    }
    let url = parse(base)?;
    let scheme = match url.scheme {
        Scheme::Http => "http",
        _ => "https",
    };
    if location.starts_with('/') {
        Ok(format!("{scheme}://{}{location}", url.authority))
    } else {
        let dir = &url.path[..url.path.rfind('/').map_or(0, |i| i + 1)];
        Ok(format!("{scheme}://{}{dir}{location}", url.authority))
    }
}

fn method(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    }
}

fn send_once(request: &Request) -> Result<Response, HttpError> {
    let url = parse(&request.url)?;
    let mut entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone().into_bytes()))
        .collect();
    // A length rather than a chunked body: what most webhook receivers expect.
    if !request.body.is_empty() && !entries.iter().any(|(n, _)| n == "content-length") {
        entries.push((
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    let headers =
        Fields::from_list(&entries).map_err(|e| HttpError::Invalid(format!("headers: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let invalid = |what: &str| HttpError::Invalid(format!("{what} of `{}`", request.url));
    outgoing
        .set_method(&method(&request.method))
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&url.scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(url.authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(url.path))
        .map_err(|()| invalid("path"))?;
    let body = outgoing.body().map_err(|()| invalid("body"))?;
    let future = outgoing_handler::handle(outgoing, None).map_err(code_error)?;
    let wait = || loop {
        match future.get() {
            Some(result) => break result,
            None => future.subscribe().block(),
        }
    };
    let sent = (|| {
        let stream = body.write().map_err(|()| invalid("body"))?;
        for chunk in request.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| stream_error(e, "sending the body"))?;
        }
        drop(stream);
        OutgoingBody::finish(body, None).map_err(code_error)
    })();
    // A refused or failed request also closes the body's stream; the response says why,
    // so that reason wins over "the connection closed", whichever the guest saw first.
    if let Err(body_error) = sent {
        return Err(match wait() {
            Ok(Err(code)) => code_error(code),
            _ => body_error,
        });
    }
    let incoming = wait()
        .map_err(|()| HttpError::Failed("the response was taken twice".into()))?
        .map_err(code_error)?;
    let status = incoming.status();
    let headers = incoming.headers().entries();
    let body = incoming
        .consume()
        .map_err(|()| HttpError::Failed("the response has no body".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|()| HttpError::Failed("the response body cannot be read".into()))?;
        loop {
            match stream.blocking_read(64 << 10) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(stream_error(e, "reading the response")),
            }
        }
    }
    let _ = IncomingBody::finish(body);
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

fn stream_error(e: StreamError, doing: &str) -> HttpError {
    match e {
        StreamError::Closed => HttpError::Failed(format!("{doing}: the connection closed")),
        StreamError::LastOperationFailed(err) => match wasip2::http::types::http_error_code(&err) {
            Some(code) => match code_error(code) {
                HttpError::Failed(m) => HttpError::Failed(format!("{doing}: {m}")),
                other => other,
            },
            None => HttpError::Failed(format!("{doing}: {}", err.to_debug_string())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_url_they_answered() {
        let base = "http://127.0.0.1:9/a/b?x=1";
        assert_eq!(resolve(base, "/c").unwrap(), "http://127.0.0.1:9/c");
        assert_eq!(resolve(base, "c").unwrap(), "http://127.0.0.1:9/a/c");
        assert_eq!(
            resolve(base, "https://other.example/").unwrap(),
            "https://other.example/"
        );
        assert!(parse("ftp://x").is_err());
        assert_eq!(parse("https://h.example").unwrap().path, "/");
    }
}
