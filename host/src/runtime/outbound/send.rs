//! The `send_request` hook: every outgoing request of a guest goes through here.
//!
//! Checked in order: the attempt's request budget, the module's allow-list (scheme,
//! host, port), then every address the name resolves to against the server's deny
//! ranges; the connection goes to a checked address, so a name cannot be re-resolved
//! elsewhere between check and connect (no DNS rebinding). A redirect is a new request
//! from the guest and passes the same checks. Nothing here waits on its own clock: the
//! attempt's deadline drops the whole attempt (a silent server makes it fail `timeout`,
//! never hangs a worker), and the response body counts against the attempt's byte cap.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::policy::{AllowedHost, DenyRanges, Host, Scheme};
use crate::runtime::output::SharedSink;

/// Server-wide settings of outbound HTTP, shared by every attempt.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Addresses no request may connect to unless an allow-list entry names the
    /// address itself. Default [`super::DEFAULT_DENY`].
    pub deny: DenyRanges,
    /// Most requests one attempt may make. Default 100.
    pub max_requests: u64,
    /// Most response body bytes one attempt may read, over all its requests.
    /// Default 16 MiB.
    pub max_response_bytes: u64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            deny: DenyRanges::default(),
            max_requests: 100,
            max_response_bytes: 16 << 20,
        }
    }
}

/// Requests and bytes of one attempt.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    /// Set once the response cap was hit, so it is logged once.
    capped: AtomicBool,
}

/// What one attempt's requests share.
struct Shared {
    allowed: Vec<AllowedHost>,
    config: Arc<OutboundConfig>,
    log: SharedSink,
    counters: Arc<Counters>,
}

impl Shared {
    /// A line in the job's log; the guest sees only the error code.
    fn warn(&self, line: String) {
        self.log.push(format!("WARN {line}\n").as_bytes());
    }

    fn refuse(&self, target: &str, why: &str) -> Error {
        self.warn(format!("outbound request to {target} refused: {why}"));
        Error::HttpRequestDenied
    }
}

/// The hooks of one attempt (the store's `WasiHttpHooks`).
pub(crate) struct Hooks(Arc<Shared>);

impl Hooks {
    pub(crate) fn new(
        allowed: Vec<AllowedHost>,
        config: Arc<OutboundConfig>,
        log: SharedSink,
        counters: Arc<Counters>,
    ) -> Self {
        Self(Arc::new(Shared {
            allowed,
            config,
            log,
            counters,
        }))
    }
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
)>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let shared = self.0.clone();
        Box::new(async move { send(&shared, request, options).await })
    }
}

/// The system's root certificates, read on the first https request of this process.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG.get_or_init(build_tls_config).clone()
}

fn build_tls_config() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no system root certificates found: outbound https requests will fail");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

async fn send(
    shared: &Arc<Shared>,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let uri = request.uri().clone();
    let scheme = match uri.scheme_str() {
        Some("http") => Scheme::Http,
        Some("https") => Scheme::Https,
        _ => return Err(Error::HttpProtocolError),
    };
    let host = Host::parse(uri.host().ok_or(Error::HttpRequestUriInvalid)?);
    let port = uri.port_u16().unwrap_or(match scheme {
        Scheme::Http => 80,
        Scheme::Https => 443,
    });
    let target = format!("{}://{host}:{port}", uri.scheme_str().unwrap_or_default());

    let made = shared.counters.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if made > shared.config.max_requests {
        return Err(shared.refuse(
            &target,
            &format!(
                "the attempt has made its {} requests",
                shared.config.max_requests
            ),
        ));
    }
    let Some(entry) = shared
        .allowed
        .iter()
        .find(|e| e.matches(scheme, &host, port))
    else {
        return Err(shared.refuse(&target, "not on the module's allow-list"));
    };

    let addrs: Vec<SocketAddr> = match &host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => match tokio::net::lookup_host((name.as_str(), port)).await {
            Ok(addrs) => addrs.collect(),
            Err(_) => Vec::new(),
        },
    };
    if addrs.is_empty() {
        shared.warn(format!(
            "outbound request to {target} failed: the name does not resolve"
        ));
        return Err(Error::DnsError {
            rcode: Some("NXDOMAIN".into()),
            info_code: None,
        });
    }
    // Every candidate is checked, not just the first: a name must not mix public and
    // denied addresses.
    for addr in &addrs {
        let ip: IpAddr = addr.ip();
        if let Some(range) = shared.config.deny.find(ip)
            && !entry.names_ip(ip)
        {
            return Err(shared.refuse(
                &target,
                &format!(
                    "it resolves to {ip}, in the server's denied range {range} (an allow-list entry must name that address itself)"
                ),
            ));
        }
    }

    let connect = async {
        let mut last = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one address"))
    };
    // The guest's own connect timeout, if it set one; the attempt's deadline in any case.
    let connected = match options.and_then(|o| o.connect_timeout) {
        Some(t) => tokio::time::timeout(t, connect)
            .await
            .map_err(|_| Error::ConnectionTimeout)?,
        None => connect.await,
    };
    let tcp = match connected {
        Ok(tcp) => tcp,
        Err(e) => {
            shared.warn(format!("outbound request to {target} failed: {e}"));
            return Err(Error::ConnectionRefused);
        }
    };
    let _ = tcp.set_nodelay(true);

    // Only the path goes on the request line; the host header carries the authority.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let counters = shared.counters.clone();
    let request = request.map(move |body| {
        body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counters
                    .bytes_out
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        })
        .boxed_unsync()
    });

    let (response, io) = match scheme {
        Scheme::Http => exchange(TokioIo::new(tcp), request).await?,
        Scheme::Https => {
            let name = match &host {
                Host::Ip(ip) => rustls::pki_types::ServerName::IpAddress((*ip).into()),
                Host::Name(n) => rustls::pki_types::ServerName::try_from(n.clone())
                    .map_err(|_| Error::HttpRequestUriInvalid)?,
            };
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    shared.warn(format!("outbound request to {target} failed: TLS: {e}"));
                    Error::TlsProtocolError
                })?;
            exchange(TokioIo::new(tls), request).await?
        }
    };
    let shared = shared.clone();
    let response = response.map(|incoming| {
        Capped {
            inner: incoming,
            shared,
        }
        .boxed_unsync()
    });
    Ok((response, io))
}

/// HTTP/1.1 over `io`: the response head, and the connection's driver for the body.
async fn exchange<T>(
    io: TokioIo<T>,
    request: http::Request<WasiBody>,
) -> wasmtime_wasi_http::Result<(
    http::Response<hyper::body::Incoming>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
)>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    // The connection is driven here until the head arrives, then by the returned
    // future (which wasmtime aborts with the attempt), never by a detached task.
    let mut conn = Box::pin(conn);
    let mut send = Box::pin(sender.send_request(request));
    let mut conn_done = false;
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = send.as_mut().poll(cx) {
            return Poll::Ready(r.map_err(Error::from));
        }
        if !conn_done && let Poll::Ready(r) = conn.as_mut().poll(cx) {
            conn_done = true;
            if let Err(e) = r {
                return Poll::Ready(Err(Error::from(e)));
            }
            return send.as_mut().poll(cx).map_err(Error::from);
        }
        Poll::Pending
    })
    .await?;
    let io = async move {
        if conn_done {
            Ok(())
        } else {
            conn.await.map_err(Error::from)
        }
    };
    Ok((response, Box::new(io)))
}

/// A response body that counts its bytes against the attempt's cap.
struct Capped {
    inner: hyper::body::Incoming,
    shared: Arc<Shared>,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(Error::from(e)))),
            Some(Ok(frame)) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let counters = &self.shared.counters;
            let n = data.len() as u64;
            let total = counters.bytes_in.fetch_add(n, Ordering::Relaxed) + n;
            let cap = self.shared.config.max_response_bytes;
            if total > cap {
                if !counters.capped.swap(true, Ordering::Relaxed) {
                    self.shared.warn(format!(
                        "outbound response cut off: the attempt may read at most {cap} bytes of responses"
                    ));
                }
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(cap)))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
