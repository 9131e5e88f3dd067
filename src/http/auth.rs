//! Applicant sessions: a bearer token bound to one national code, signed with HMAC-SHA256.
//!
//! The token is stateless so that logins on a surge day cost no database write and any nobat
//! process that shares the secret (`NOBAT_TOKEN_SECRET`) accepts it. It carries the national
//! code; tokens are never logged.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::problem::ProblemCode;
use super::{AppState, Problem};
use crate::domain::NationalCode;

type HmacSha256 = Hmac<Sha256>;

/// Longest token we bother to verify; anything longer is garbage.
const TOKEN_CHARS_MAX: usize = 256;

pub struct TokenKeys {
    secret: Vec<u8>,
}

impl TokenKeys {
    /// `secret` of at least 32 bytes; `None` draws a random one (tokens then work on this
    /// process only, which is right for a single node and for tests).
    pub fn new(secret: Option<&[u8]>) -> Self {
        let secret = match secret {
            Some(s) => s.to_vec(),
            None => {
                let mut s = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut s);
                s
            }
        };
        Self { secret }
    }

    pub fn issue(&self, national_code: &NationalCode, expires_at_unix: i64) -> String {
        let payload = format!("v1|{national_code}|{expires_at_unix}");
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("any key length works");
        mac.update(payload.as_bytes());
        let sig = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// The national code of a valid, unexpired token.
    pub fn verify(&self, token: &str, now_unix: i64) -> Option<NationalCode> {
        if token.len() > TOKEN_CHARS_MAX {
            return None;
        }
        let (payload_b64, sig_b64) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).ok()?;
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("any key length works");
        mac.update(&payload);
        mac.verify_slice(&sig).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut parts = payload.split('|');
        if parts.next()? != "v1" {
            return None;
        }
        let code = NationalCode::parse(parts.next()?).ok()?;
        let expires: i64 = parts.next()?.parse().ok()?;
        (expires > now_unix).then_some(code)
    }
}

/// Requests per second one applicant may make, and the burst allowed: generous for a person
/// clicking through the journey, a wall for a bot hammering with one identity (per-IP limits
/// are defeated by brokers; per-identity limits are not).
pub const APPLICANT_REQUESTS_PER_SECOND: u32 = 10;
pub const APPLICANT_BURST: u32 = 30;

/// Uses the standard monotonic clock: the TSC-based default can jump on virtual machines.
pub type ApplicantLimiter = governor::RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    governor::clock::MonotonicClock,
    governor::middleware::NoOpMiddleware<std::time::Instant>,
>;

pub fn applicant_limiter() -> ApplicantLimiter {
    let quota = governor::Quota::per_second(
        std::num::NonZeroU32::new(APPLICANT_REQUESTS_PER_SECOND).expect("non-zero"),
    )
    .allow_burst(std::num::NonZeroU32::new(APPLICANT_BURST).expect("non-zero"));
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

    #[test]
    fn tokens_verify_expire_and_resist_tampering() {
        let keys = TokenKeys::new(Some(b"0123456789abcdef0123456789abcdef"));
        let code = NationalCode::parse("0499370899").unwrap();
        let token = keys.issue(&code, 1_000);
        assert_eq!(keys.verify(&token, 999), Some(code));
        assert_eq!(keys.verify(&token, 1_000), None, "expired");
        let other = TokenKeys::new(None);
        assert_eq!(other.verify(&token, 0), None, "another secret");
        let forged_payload = URL_SAFE_NO_PAD.encode("v1|0790419904|99999");
        let forged = format!("{forged_payload}.{}", token.split_once('.').unwrap().1);
        assert_eq!(keys.verify(&forged, 0), None, "payload swapped");
        assert_eq!(keys.verify("garbage", 0), None);
    }
}

#[cfg(test)]
mod limiter_tests {
    use super::*;

    #[test]
    fn a_burst_beyond_the_quota_is_refused_per_identity() {
        let limiter = applicant_limiter();
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
