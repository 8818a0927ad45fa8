//! Dashboard sessions: the API key sealed in a cookie, and the checks a form post passes.
//!
//! The cookie is stateless: XChaCha20-Poly1305 under a key derived from the server's
//! `--secret-key` (or drawn at start when there is none) over the expiry, a per-session
//! CSRF token and the API key itself. Sealing (not only signing) keeps the key secret
//! from whoever reads the cookie jar; carrying the key lets every request re-check it
//! with `Store::authenticate`, so a revoked key stops a session at its next request.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "wasmq_session";
/// Every dashboard path starts with this, and the cookie is sent only there.
pub const PATH: &str = "/ui";
/// The form field (and the upload's header) that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

const NONCE_BYTES: usize = 24;
const TOKEN_BYTES: usize = 16;
/// Binds a sealed value to this use: a value sealed for anything else does not open.
const AAD: &[u8] = b"wasmq dashboard session v1";

/// Seals and opens session cookies.
pub struct Sessions {
    cipher: XChaCha20Poly1305,
    ttl_secs: i64,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// An open session: whose key, until when, and the token its forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The API key, `wq_<id>_<secret>`, checked again on every request.
    pub key: String,
    /// Unix seconds after which the cookie no longer opens.
    pub expires: i64,
    /// The CSRF token (hex) every form of this session carries.
    pub csrf: String,
}

impl Sessions {
    /// Sessions sealed under `key`, each valid for `ttl`.
    pub fn new(key: [u8; 32], ttl: std::time::Duration) -> Self {
        Sessions {
            cipher: XChaCha20Poly1305::new(&key.into()),
            ttl_secs: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1),
        }
    }

    /// How long a session lasts, in seconds (the cookie's `Max-Age`).
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// A new session for `api_key` starting at `now` (unix seconds): the cookie value and
    /// the session it opens to.
    pub fn seal(&self, api_key: &str, now: i64) -> (String, Session) {
        let expires = now.saturating_add(self.ttl_secs);
        let token: [u8; TOKEN_BYTES] = rand::random();
        let mut plain = Vec::with_capacity(8 + TOKEN_BYTES + api_key.len());
        plain.extend_from_slice(&expires.to_be_bytes());
        plain.extend_from_slice(&token);
        plain.extend_from_slice(api_key.as_bytes());
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .expect("encrypting into memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        let session = Session {
            key: api_key.to_owned(),
            expires,
            csrf: hex::encode(token),
        };
        (B64.encode(out), session)
    }

    /// The session `value` seals, if it was sealed here, is unaltered and has not expired
    /// at `now`.
    pub fn open(&self, value: &str, now: i64) -> Option<Session> {
        let raw = B64.decode(value).ok()?;
        if raw.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .ok()?;
        if plain.len() < 8 + TOKEN_BYTES {
            return None;
        }
        let (expires, rest) = plain.split_at(8);
        let expires = i64::from_be_bytes(expires.try_into().ok()?);
        if now >= expires {
            return None;
        }
        let (token, key) = rest.split_at(TOKEN_BYTES);
        Some(Session {
            key: String::from_utf8(key.to_vec()).ok()?,
            expires,
            csrf: hex::encode(token),
        })
    }
}

impl Session {
    /// Whether `submitted` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        self.csrf.len() == submitted.len()
            && bool::from(self.csrf.as_bytes().ct_eq(submitted.as_bytes()))
    }
}

/// The session cookie's value in `headers`, if any.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Whether the request reached us over TLS (at a proxy in front): only then may the
/// cookie be `Secure`, which a browser would not send back over plain HTTP.
pub fn over_tls(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    value("x-forwarded-proto").is_some_and(|p| {
        p.split(',')
            .next()
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }) || value(header::ORIGIN.as_str()).is_some_and(|o| o.starts_with("https://"))
}

/// `Set-Cookie` for a new session: sent to `/ui` only, never to scripts, never from
/// another site, expiring with the session.
pub fn set_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path={PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("base64 and fixed text are a valid header value")
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    set_cookie("", 0, secure)
}

/// Whether a state-changing request comes from the dashboard's own pages: a browser's
/// `Sec-Fetch-Site` says same-origin (or a person typed it), and its `Origin`, when sent,
/// names the host the request was sent to. Checked before the session and the token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let value = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = value(header::ORIGIN) else {
        return true;
    };
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        // `null` (a sandboxed frame, a redirect across sites) or anything odd.
        return false;
    };
    value(header::HOST).is_some_and(|host| host.eq_ignore_ascii_case(authority))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "wq_0123456789abcdef_0000000000000000000000000000000000000000000000000000000000000000";

    fn sessions(byte: u8) -> Sessions {
        Sessions::new([byte; 32], std::time::Duration::from_secs(3600))
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let s = sessions(1);
        let (value, session) = s.seal(KEY, 1_000);
        assert!(
            !value.contains("0123456789abcdef"),
            "the key is not readable"
        );
        assert_eq!(session.expires, 4_600);
        assert_eq!(s.open(&value, 1_000), Some(session.clone()));
        assert_eq!(s.open(&value, 4_599), Some(session));
        assert_eq!(s.open(&value, 4_600), None, "expired");
    }

    #[test]
    fn an_altered_or_foreign_session_does_not_open() {
        let (value, _) = sessions(1).seal(KEY, 0);
        assert_eq!(sessions(2).open(&value, 0), None, "another server's key");
        let mut raw = B64.decode(&value).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(
            sessions(1).open(&B64.encode(&raw), 0),
            None,
            "one bit flipped"
        );
        assert_eq!(sessions(1).open("", 0), None);
        assert_eq!(sessions(1).open("not base64!", 0), None);
        assert_eq!(sessions(1).open(&B64.encode([0u8; 30]), 0), None);
    }

    #[test]
    fn each_session_has_its_own_csrf_token() {
        let s = sessions(1);
        let (_, a) = s.seal(KEY, 0);
        let (_, b) = s.seal(KEY, 0);
        assert_ne!(a.csrf, b.csrf);
        assert_eq!(a.csrf.len(), 32);
        assert!(a.csrf_matches(&a.csrf.clone()));
        assert!(!a.csrf_matches(&b.csrf));
        assert!(!a.csrf_matches(""));
        assert!(!a.csrf_matches(&a.csrf[..31]));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_same_origin_posts_pass() {
        let host = ("host", "127.0.0.1:8080");
        assert!(
            same_origin(&headers(&[host])),
            "no Origin: the token decides"
        );
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8081")
        ])));
        assert!(!same_origin(&headers(&[host, ("origin", "null")])));
        assert!(!same_origin(&headers(&[(
            "origin",
            "http://127.0.0.1:8080"
        )])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-site")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://127.0.0.1:8080"),
        ])));
    }

    #[test]
    fn the_cookie_is_found_among_others_and_set_strictly() {
        let h = headers(&[("cookie", "a=1; wasmq_session=abc_-; b=2")]);
        assert_eq!(cookie(&h), Some("abc_-"));
        assert_eq!(cookie(&headers(&[("cookie", "a=1")])), None);
        let set = set_cookie("v", 60, false);
        let set = set.to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(
            set.contains("Path=/ui") && set.contains("Max-Age=60"),
            "{set}"
        );
        assert!(!set.contains("Secure"));
        assert!(
            set_cookie("v", 60, true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(clear_cookie(false).to_str().unwrap().contains("Max-Age=0"));
        assert!(over_tls(&headers(&[("x-forwarded-proto", "https")])));
        assert!(!over_tls(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!over_tls(&HeaderMap::new()));
    }
}
