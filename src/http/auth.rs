//! Applicant sessions: a bearer token bound to one national code, sealed with
//! XChaCha20-Poly1305 under a key derived from the shared secret.
//!
//! The token is stateless so that logins on a surge day cost no database write and any nobat
//! process that shares the secret (`NOBAT_TOKEN_SECRET`) accepts it. It is opaque: the national
//! code and expiry are encrypted, and the AEAD tag makes any change to it fail (a token of
//! format 1, HMAC-signed, carried the national code in readable base64). A previous secret
//! (`NOBAT_TOKEN_SECRET_PREVIOUS`) is accepted for a grace period after start, so the secret
//! can be rotated node by node without logging everyone out. Tokens are never logged.
//!
//! Format 2: `v2.` then base64url of `key id (4) ‖ nonce (24) ‖ sealed (national code 10 ‖
//! expiry 8, big-endian Unix seconds) ‖ tag (16)`; the key id and the format name are the
//! associated data. The key id only says which secret sealed the token.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

use super::problem::ProblemCode;
use super::{AppState, Problem};
use crate::domain::NationalCode;

/// Longest token we bother to verify; issued ones are 86 characters.
const TOKEN_CHARS_MAX: usize = 256;
/// What a format-2 token starts with.
const PREFIX: &str = "v2.";
const KEY_ID_BYTES: usize = 4;
const NONCE_BYTES: usize = 24;
const CODE_BYTES: usize = 10;
/// Shortest secret accepted: 256 bits.
pub const SECRET_BYTES_MIN: usize = 32;

/// One secret's derived key and its id.
struct SessionKey {
    id: [u8; KEY_ID_BYTES],
    cipher: XChaCha20Poly1305,
}

impl SessionKey {
    /// HKDF-SHA256 of the secret: a 256-bit key, and (under another label) the key's id, so
    /// the id says nothing about the key.
    fn derive(secret: &[u8]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"nobat session tokens"), secret);
        let mut key = [0u8; 32];
        hkdf.expand(b"v2 key", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        let mut id = [0u8; KEY_ID_BYTES];
        hkdf.expand(b"v2 key id", &mut id)
            .expect("4 bytes is a valid HKDF-SHA256 length");
        Self {
            id,
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    fn aad(&self) -> [u8; 2 + KEY_ID_BYTES] {
        let mut aad = [0u8; 2 + KEY_ID_BYTES];
        aad[..2].copy_from_slice(b"v2");
        aad[2..].copy_from_slice(&self.id);
        aad
    }
}

/// The session keys of this process: the current one (issues and verifies) and, during a
/// rotation, the previous one (verifies until `previous_until_unix`).
pub struct TokenKeys {
    current: SessionKey,
    previous: Option<(SessionKey, i64)>,
}

impl TokenKeys {
    /// `secret` of at least [`SECRET_BYTES_MIN`] bytes; `None` draws a random one (tokens then
    /// work on this process only, which is right for a single node and for tests).
    pub fn new(secret: Option<&[u8]>) -> Self {
        let current = match secret {
            Some(s) => SessionKey::derive(s),
            None => {
                let mut s = [0u8; SECRET_BYTES_MIN];
                rand::rngs::OsRng.fill_bytes(&mut s);
                SessionKey::derive(&s)
            }
        };
        Self {
            current,
            previous: None,
        }
    }

    /// Also accepts tokens sealed with `previous` until `until_unix` (the rotation's grace).
    pub fn with_previous(mut self, previous: &[u8], until_unix: i64) -> Self {
        self.previous = Some((SessionKey::derive(previous), until_unix));
        self
    }

    pub fn issue(&self, national_code: &NationalCode, expires_at_unix: i64) -> String {
        let key = &self.current;
        let nonce = XChaCha20Poly1305::generate_nonce(&mut rand::rngs::OsRng);
        let mut plain = [0u8; CODE_BYTES + 8];
        plain[..CODE_BYTES].copy_from_slice(national_code.as_string().as_bytes());
        plain[CODE_BYTES..].copy_from_slice(&expires_at_unix.to_be_bytes());
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: &key.aad(),
                },
            )
            .expect("sealing 18 bytes cannot fail");
        let mut raw = Vec::with_capacity(KEY_ID_BYTES + NONCE_BYTES + sealed.len());
        raw.extend_from_slice(&key.id);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
    }

    /// The national code of a valid, unexpired token sealed with a key this process accepts.
    pub fn verify(&self, token: &str, now_unix: i64) -> Option<NationalCode> {
        if token.len() > TOKEN_CHARS_MAX {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token.strip_prefix(PREFIX)?).ok()?;
        if raw.len() < KEY_ID_BYTES + NONCE_BYTES {
            return None;
        }
        let (id, rest) = raw.split_at(KEY_ID_BYTES);
        let (nonce, sealed) = rest.split_at(NONCE_BYTES);
        let key = if id == self.current.id {
            &self.current
        } else {
            match &self.previous {
                Some((key, until)) if id == key.id && now_unix < *until => key,
                _ => return None,
            }
        };
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &key.aad(),
                },
            )
            .ok()?;
        if plain.len() != CODE_BYTES + 8 {
            return None;
        }
        let code = NationalCode::parse(std::str::from_utf8(&plain[..CODE_BYTES]).ok()?).ok()?;
        let expires = i64::from_be_bytes(plain[CODE_BYTES..].try_into().ok()?);
        (expires > now_unix).then_some(code)
    }
}

/// Requests per second one applicant may make, and the burst allowed, by default: generous
/// for a person clicking through the journey, a wall for a bot hammering with one identity
/// (per-IP limits are defeated by brokers; per-identity limits are not).
pub const APPLICANT_REQUESTS_PER_SECOND: u32 = 10;
pub const APPLICANT_BURST: u32 = 30;

/// Uses the standard monotonic clock: the TSC-based default can jump on virtual machines.
pub type ApplicantLimiter = governor::RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    governor::clock::MonotonicClock,
    governor::middleware::NoOpMiddleware<std::time::Instant>,
>;

/// A limiter of `per_second` requests per applicant with bursts of `burst` (each at least 1).
pub fn applicant_limiter(per_second: u32, burst: u32) -> ApplicantLimiter {
    let quota =
        governor::Quota::per_second(std::num::NonZeroU32::new(per_second.max(1)).expect("≥ 1"))
            .allow_burst(std::num::NonZeroU32::new(burst.max(1)).expect("≥ 1"));
    governor::RateLimiter::new(quota, Default::default(), governor::clock::MonotonicClock)
}

/// The applicant a request acts for, from its bearer token.
pub struct Applicant {
    pub national_code: NationalCode,
}

impl FromRequestParts<AppState> for Applicant {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |detail: &str| {
            Problem::new(StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized, detail)
        };
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("a bearer token from POST /v1/sessions is required"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let now = state.engine.clock().now().timestamp();
        let national_code = state
            .tokens
            .verify(token.trim(), now)
            .ok_or_else(|| unauthorized("the token is invalid or expired"))?;
        if let Err(not_until) = state.limiter.check_key(&national_code.to_string()) {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::MonotonicClock,
            ));
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                ProblemCode::RateLimited,
                "too many requests for this applicant; slow down",
            );
            problem.retry_after_secs = Some(wait.as_secs().max(1));
            return Err(problem);
        }
        Ok(Applicant { national_code })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn tokens_verify_expire_and_resist_tampering() {
        let keys = TokenKeys::new(Some(SECRET));
        let code = NationalCode::parse("0499370899").unwrap();
        let token = keys.issue(&code, 1_000);
        assert_eq!(keys.verify(&token, 999), Some(code));
        assert_eq!(keys.verify(&token, 1_000), None, "expired");
        let other = TokenKeys::new(None);
        assert_eq!(other.verify(&token, 0), None, "another secret");
        // Any flipped bit of the sealed part, nonce or key id fails the tag.
        let raw = URL_SAFE_NO_PAD.decode(&token[PREFIX.len()..]).unwrap();
        for at in [0, KEY_ID_BYTES + 1, raw.len() - 1, raw.len() - 20] {
            let mut bad = raw.clone();
            bad[at] ^= 1;
            let forged = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bad));
            assert_eq!(keys.verify(&forged, 0), None, "byte {at} flipped");
        }
        assert_eq!(keys.verify("garbage", 0), None);
        assert_eq!(keys.verify("v2.", 0), None);
        assert_eq!(keys.verify(&format!("v1{}", &token[2..]), 0), None);
    }

    /// Nothing of the national code or the expiry can be read from a token: two tokens for the
    /// same citizen and expiry share nothing but the key id, and neither contains the code in
    /// any encoding a client might try.
    #[test]
    fn tokens_reveal_nothing() {
        let keys = TokenKeys::new(Some(SECRET));
        let code = NationalCode::parse("0499370899").unwrap();
        let a = keys.issue(&code, 1_700_000_000);
        let b = keys.issue(&code, 1_700_000_000);
        assert_ne!(a, b, "a fresh nonce each time");
        let (ra, rb) = (
            URL_SAFE_NO_PAD.decode(&a[PREFIX.len()..]).unwrap(),
            URL_SAFE_NO_PAD.decode(&b[PREFIX.len()..]).unwrap(),
        );
        assert_eq!(ra[..KEY_ID_BYTES], rb[..KEY_ID_BYTES]);
        let same = ra[KEY_ID_BYTES..]
            .iter()
            .zip(&rb[KEY_ID_BYTES..])
            .filter(|(x, y)| x == y)
            .count();
        assert!(same < 10, "{same} bytes in common beyond the key id");
        for needle in [
            code.as_string(),
            URL_SAFE_NO_PAD.encode(code.as_string()),
            base64::engine::general_purpose::STANDARD.encode(code.as_string()),
        ] {
            assert!(!a.contains(&needle), "{needle} in {a}");
        }
        let raw = String::from_utf8_lossy(&ra).to_string();
        assert!(!raw.contains(&code.as_string()));
    }

    /// A rotation: the node holding the new secret and the old one as previous accepts both
    /// until the grace ends, issues with the new one only; the old node does not accept the
    /// new tokens.
    #[test]
    fn a_previous_secret_is_accepted_until_its_grace_ends() {
        let old = TokenKeys::new(Some(SECRET));
        let new_secret = b"fedcba9876543210fedcba9876543210";
        let rotated = TokenKeys::new(Some(new_secret)).with_previous(SECRET, 5_000);
        let code = NationalCode::parse("0499370899").unwrap();
        let old_token = old.issue(&code, 10_000);
        assert_eq!(rotated.verify(&old_token, 4_999), Some(code));
        assert_eq!(rotated.verify(&old_token, 5_000), None, "grace over");
        let new_token = rotated.issue(&code, 10_000);
        assert_eq!(rotated.verify(&new_token, 9_000), Some(code));
        assert_eq!(old.verify(&new_token, 0), None);
        assert_eq!(
            TokenKeys::new(Some(new_secret)).verify(&new_token, 0),
            Some(code),
            "any node with the secret"
        );
    }
}

#[cfg(test)]
mod limiter_tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_quota_is_refused_per_identity() {
        let limiter = applicant_limiter(APPLICANT_REQUESTS_PER_SECOND, APPLICANT_BURST);
        let key = "0499370899".to_string();
        let allowed = (0..100).filter(|_| limiter.check_key(&key).is_ok()).count();
        assert!(
            (APPLICANT_BURST as usize..APPLICANT_BURST as usize + 3).contains(&allowed),
            "{allowed}"
        );
        assert!(
            limiter.check_key(&"0790419904".to_string()).is_ok(),
            "another identity has its own bucket"
        );
    }
}
