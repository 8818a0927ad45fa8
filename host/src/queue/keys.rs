//! API keys, tenants and scopes: the parts every store backend shares.
//!
//! A key is `wq_<id>_<secret>`: `id` (16 hex digits) is stored in the clear and finds the
//! key's row; `secret` (64 hex digits, 256 random bits) is stored only as its SHA-256
//! ([`hash_secret`]) and checked with a constant-time comparison ([`verify_secret`]).
//! A plain hash suffices because the secret is random, not a password a person chose.
//! Backends store and look up rows; they call [`generate`], [`parse`] and
//! [`verify_secret`] so every backend treats keys the same way.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::StoreError;

/// What a key may do. `admin` may do everything within its tenant, and holds `metrics`;
/// only `operator` crosses tenants (their quotas), and nothing else implies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Everything below.
    #[serde(rename = "admin")]
    Admin,
    /// Upload and delete modules.
    #[serde(rename = "modules:write")]
    ModulesWrite,
    /// Enqueue and cancel jobs.
    #[serde(rename = "jobs:write")]
    JobsWrite,
    /// Read jobs, their logs, and modules.
    #[serde(rename = "jobs:read")]
    JobsRead,
    /// Read `/metrics`: an operator's scope, since the metrics are the whole process's
    /// (every tenant's counts), not one tenant's.
    #[serde(rename = "metrics")]
    Metrics,
    /// Set and read any tenant's quotas: the platform operator's scope. A tenant's own
    /// `admin` does not hold it, so no tenant can raise its own quotas.
    #[serde(rename = "operator")]
    Operator,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 6] = [
        Scope::Admin,
        Scope::ModulesWrite,
        Scope::JobsWrite,
        Scope::JobsRead,
        Scope::Metrics,
        Scope::Operator,
    ];

    /// What `wasmq key create` grants when no scope is named: all but `operator`, which
    /// is only ever granted by name.
    pub const DEFAULT: [Scope; 5] = [
        Scope::Admin,
        Scope::ModulesWrite,
        Scope::JobsWrite,
        Scope::JobsRead,
        Scope::Metrics,
    ];

    /// The stored name: `admin`, `modules:write`, `jobs:write`, `jobs:read`, `metrics`,
    /// `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::ModulesWrite => "modules:write",
            Scope::JobsWrite => "jobs:write",
            Scope::JobsRead => "jobs:read",
            Scope::Metrics => "metrics",
            Scope::Operator => "operator",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "`{s}` is not a scope (use admin, modules:write, jobs:write, jobs:read, metrics or operator)"
                ))
            })
    }
}

/// Who is calling: the tenant and scopes of an authenticated key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every module and job of the call belongs to.
    pub tenant: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// The key's id (the public part), for logs.
    pub key_id: String,
}

impl Principal {
    /// Whether the key holds `scope` (or `admin`, which holds every scope but `operator`).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
            || (scope != Scope::Operator && self.scopes.contains(&Scope::Admin))
    }
}

/// A key just created: the only time its secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The public id (`revoke_key` takes it).
    pub id: String,
    /// The whole key, `wq_<id>_<secret>`, to give to the client. Not stored.
    pub key: String,
}

/// A fresh key: its id, the whole key to hand out, and the hash to store.
pub fn generate() -> (String, String, String) {
    let id = hex::encode(rand::random::<[u8; 8]>());
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let hash = hash_secret(&secret);
    (id.clone(), format!("wq_{id}_{secret}"), hash)
}

/// Splits `wq_<id>_<secret>` into id and secret; `None` if it is not shaped like a key.
pub fn parse(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("wq_")?;
    let (id, secret) = rest.split_once('_')?;
    let hexy = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexy(id, 16) && hexy(secret, 64)).then_some((id, secret))
}

/// SHA-256 of `secret`, lower-case hex: what a backend stores.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
pub fn verify_secret(stored_hash: &str, secret: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// Checks a new key's tenant and scopes and makes the key: `(id, whole key, hash,
/// scope names)`, ready for a backend to store. Shared by the backends.
pub fn new_key(
    tenant: &str,
    scopes: &[Scope],
) -> Result<(String, String, String, Vec<&'static str>), StoreError> {
    validate_tenant(tenant)?;
    if scopes.is_empty() {
        return Err(StoreError::Invalid("a key needs at least one scope".into()));
    }
    let (id, key, hash) = generate();
    Ok((id, key, hash, scopes.iter().map(|s| s.as_str()).collect()))
}

/// The principal of a stored key, if `secret` matches its hash. Scopes this version
/// does not know are ignored rather than failing the key. Shared by the backends.
pub fn principal(
    id: &str,
    secret: &str,
    tenant: String,
    stored_hash: &str,
    scopes: &[String],
) -> Option<Principal> {
    verify_secret(stored_hash, secret).then(|| Principal {
        tenant,
        scopes: scopes.iter().filter_map(|s| s.parse().ok()).collect(),
        key_id: id.to_owned(),
    })
}

/// Checks a tenant name: 1–63 of `a-z 0-9 _ -`, starting with a letter or digit.
pub fn validate_tenant(tenant: &str) -> Result<(), StoreError> {
    if is_slug(tenant) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "tenant `{tenant}` must be 1–63 of a-z, 0-9, `_` and `-`, starting with a letter or digit"
        )))
    }
}

/// Why `key` cannot be a job's idempotency or coalesce key, if it cannot: 1–255 bytes,
/// and not the scheduler's prefix. `field` names it in the message.
pub fn job_key_problem(field: &str, key: &str) -> Option<String> {
    if key.is_empty() || key.len() > 255 {
        return Some(format!("`{field}` must be 1–255 bytes"));
    }
    let prefix = crate::schedule::KEY_PREFIX;
    key.starts_with(prefix)
        .then(|| format!("`{field}` may not begin with `{prefix}`: those are the scheduler's"))
}

/// Whether `s` matches `^[a-z0-9][a-z0-9_-]{0,62}$` (module, queue and tenant names).
pub fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let (id, key, hash) = generate();
        let (pid, secret) = parse(&key).unwrap();
        assert_eq!(pid, id);
        assert!(verify_secret(&hash, secret));
        assert!(!verify_secret(&hash, &"0".repeat(64)));
        assert!(parse("wq_nothex_x").is_none());
        assert!(parse("Bearer").is_none());
    }

    #[test]
    fn slugs() {
        assert!(is_slug("echo"));
        assert!(is_slug("render-email_2"));
        assert!(!is_slug(""));
        assert!(!is_slug("-x"));
        assert!(!is_slug("Echo"));
        assert!(!is_slug(&"a".repeat(64)));
    }

    #[test]
    fn scopes_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
        assert!("jobs:delete".parse::<Scope>().is_err());
        // `wasmq key create --scope metrics` parses through here.
        assert_eq!("metrics".parse::<Scope>().unwrap(), Scope::Metrics);
    }

    #[test]
    fn admin_implies_metrics_and_tenant_scopes_do_not() {
        let key = |scopes: Vec<Scope>| Principal {
            tenant: "t".into(),
            scopes,
            key_id: "0".into(),
        };
        assert!(key(vec![Scope::Admin]).allows(Scope::Metrics));
        assert!(key(vec![Scope::Metrics]).allows(Scope::Metrics));
        assert!(!key(vec![Scope::Metrics]).allows(Scope::JobsRead));
        let tenant = key(vec![Scope::JobsRead, Scope::JobsWrite, Scope::ModulesWrite]);
        assert!(!tenant.allows(Scope::Metrics));
    }

    #[test]
    fn only_an_operator_key_is_an_operator() {
        let key = |scopes: Vec<Scope>| Principal {
            tenant: "t".into(),
            scopes,
            key_id: "0".into(),
        };
        assert!(!key(Scope::DEFAULT.to_vec()).allows(Scope::Operator));
        assert!(key(vec![Scope::Operator]).allows(Scope::Operator));
        assert!(!key(vec![Scope::Operator]).allows(Scope::JobsWrite));
        assert_eq!("operator".parse::<Scope>().unwrap(), Scope::Operator);
    }
}
