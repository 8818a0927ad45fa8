//! Module secrets at rest: sealed with XChaCha20-Poly1305 under the server's key.
//!
//! The key (`--secret-key`, `WASMQ_SECRET_KEY`) is 32 random bytes as 64 hex digits or
//! base64. A sealed value is `v1:` + base64(nonce ‖ ciphertext); the tenant, module and
//! key name are its associated data, so a sealed value copied to another module or name
//! does not open. Only the API (to seal) and the worker (to open) hold the key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const PREFIX: &str = "v1:";
const NONCE_BYTES: usize = 24;

/// The server's key for module secrets.
#[derive(Clone)]
pub struct SecretKey(XChaCha20Poly1305, [u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// A sealed value that does not open: another key, or altered.
#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be decrypted with this server's secret key (was the key changed?)")]
pub struct OpenError;

impl std::str::FromStr for SecretKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(s).ok()
        } else {
            BASE64.decode(s).ok()
        };
        match bytes {
            Some(b) if b.len() == 32 => {
                let raw: [u8; 32] = b.as_slice().try_into().expect("32 bytes");
                Ok(Self(XChaCha20Poly1305::new(&raw.into()), raw))
            }
            _ => Err(
                "the secret key must be 32 bytes as 64 hex digits or base64 (e.g. `openssl rand -hex 32`)"
                    .into(),
            ),
        }
    }
}

fn aad(tenant: &str, module: &str, name: &str) -> Vec<u8> {
    [tenant, module, name].join("\0").into_bytes()
}

impl SecretKey {
    /// A key for another `purpose` (the dashboard's sessions), independent of this one:
    /// SHA-256 of the purpose and the key, so knowing one derived key tells nothing of
    /// the key or of the keys of other purposes.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"wasmq derived key\0");
        h.update(purpose.as_bytes());
        h.update(b"\0");
        h.update(self.1);
        h.finalize().into()
    }

    /// Seals `value` for secret `name` of module `module` of `tenant`.
    pub fn seal(&self, tenant: &str, module: &str, name: &str, value: &str) -> String {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let aad = aad(tenant, module, name);
        let sealed = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("encrypting into memory cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", BASE64.encode(out))
    }

    /// Opens what [`SecretKey::seal`] made for the same tenant, module and name.
    pub fn open(
        &self,
        tenant: &str,
        module: &str,
        name: &str,
        sealed: &str,
    ) -> Result<String, OpenError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| BASE64.decode(b).ok())
            .filter(|raw| raw.len() > NONCE_BYTES)
            .ok_or(OpenError)?;
        let (nonce, ciphertext) = raw.split_at(NONCE_BYTES);
        let aad = aad(tenant, module, name);
        let plain = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError)?;
        String::from_utf8(plain).map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::SecretKey;

    fn key(byte: u8) -> SecretKey {
        hex::encode([byte; 32]).parse().unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_where_it_was_sealed() {
        let k = key(7);
        let sealed = k.seal("t", "mail", "token", "hunter22");
        assert!(!sealed.contains("hunter22"));
        assert_eq!(k.open("t", "mail", "token", &sealed).unwrap(), "hunter22");
        assert!(k.open("t", "other", "token", &sealed).is_err());
        assert!(k.open("t", "mail", "password", &sealed).is_err());
        assert!(key(8).open("t", "mail", "token", &sealed).is_err());
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(sealed, k.seal("t", "mail", "token", "hunter22"));
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_key() {
        assert_eq!(key(1).derive("ui"), key(1).derive("ui"));
        assert_ne!(key(1).derive("ui"), key(1).derive("other"));
        assert_ne!(key(1).derive("ui"), key(2).derive("ui"));
        assert_ne!(key(1).derive("ui"), [1u8; 32]);
    }

    #[test]
    fn keys_parse_from_hex_or_base64_of_32_bytes() {
        assert!(hex::encode([1u8; 32]).parse::<SecretKey>().is_ok());
        assert!(
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
                .parse::<SecretKey>()
                .is_ok()
        );
        let err = "too-short".parse::<SecretKey>().unwrap_err();
        assert!(err.contains("32 bytes"), "{err}");
    }
}
