//! What a guest may reach outside its sandbox: outbound HTTP (`wasi:http`) to the hosts
//! its module's allow-list names, and the module's config (`wasi:config/store`).
//!
//! Nothing here is granted by default: a module with no allow-list gets every request
//! refused (`HttpRequestDenied`) and no config. Secrets arrive decrypted (the worker
//! decrypts them) and are cut out of the job's log and error messages ([`redact`]).

mod policy;
mod send;

pub use policy::{AllowedHost, DEFAULT_DENY, DenyRanges, MAX_ALLOWED_HOSTS, parse_allowed_hosts};
pub use send::OutboundConfig;
pub(crate) use send::{Counters, Hooks};

use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use super::host::AttemptState;

/// What a module's operator granted its jobs beyond the sandbox. Default: nothing.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Hosts outbound requests may go to; empty: no network at all.
    pub allowed_hosts: Vec<AllowedHost>,
    /// What `wasi:config/store` answers: the module's values and its secrets, decrypted.
    pub config: Vec<(String, String)>,
    /// The secrets' values, cut out of the log and error messages.
    pub secrets: Vec<String>,
}

/// What a guest's secrets are replaced with in its log and messages.
pub const REDACTED: &str = "[redacted]";

/// Replaces every occurrence of a secret in `text`, and a secret's start cut off at the
/// end of `text` (the log cap may cut one in half).
pub(crate) fn redact(text: &mut Vec<u8>, secrets: &[String]) {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let needle = secret.as_bytes();
        let mut out = Vec::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            if text[i..].starts_with(needle) {
                out.extend_from_slice(REDACTED.as_bytes());
                i += needle.len();
            } else if needle.starts_with(&text[i..]) && text.len() - i >= needle.len().min(4) {
                out.extend_from_slice(REDACTED.as_bytes());
                i = text.len();
            } else {
                out.push(text[i]);
                i += 1;
            }
        }
        *text = out;
    }
}

impl WasiHttpView for AttemptState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    fn redacted(text: &str, secrets: &[&str]) -> String {
        let mut bytes = text.as_bytes().to_vec();
        let secrets: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
        redact(&mut bytes, &secrets);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn secrets_are_cut_wherever_they_appear() {
        assert_eq!(
            redacted("key=hunter22 and hunter22.", &["hunter22"]),
            "key=[redacted] and [redacted]."
        );
        assert_eq!(redacted("nothing here", &["hunter22", ""]), "nothing here");
        // The log cap cut the secret: its start is still cut.
        assert_eq!(redacted("token: hunt", &["hunter22"]), "token: [redacted]");
        assert_eq!(redacted("a h", &["hunter22"]), "a h");
    }
}
