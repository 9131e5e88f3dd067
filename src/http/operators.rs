//! Staff and admin tokens: opaque random strings of which only the SHA-256 is kept (in
//! `operator_tokens`, or in memory for the configured admin token). A staff token is scoped to
//! one office; the admin token reaches every `/v1/admin/…` endpoint. Applicant session tokens
//! are never accepted here (their hash matches nothing), and operator tokens are never accepted
//! by applicant endpoints (they are not sealed session tokens).

// `Problem` is the one error type of the HTTP layer; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::live::AuditActor;
use super::problem::ProblemCode;
use super::{AppState, Problem};
use crate::store::OperatorRecord;

/// Longest operator token looked at; issued ones are 47 characters.
const TOKEN_CHARS_MAX: usize = 128;

/// SHA-256 of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn token_hash_hex(token: &str) -> String {
    token_hash(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares two hashes in constant time, so timing says nothing about how much matched. The
/// one comparison of presented tokens with known ones (admin, planner); applicant sessions are
/// checked by the AEAD tag of their sealed token.
pub fn hashes_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// A new token: a prefix naming its role and 256 random bits.
pub fn new_token(role: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("nb{}_{}", &role[..1], URL_SAFE_NO_PAD.encode(bytes))
}

/// The configured admin token, kept only as its hash.
pub struct OperatorKeys {
    admin_hash: Option<[u8; 32]>,
}

impl OperatorKeys {
    pub fn new(admin_token: Option<&str>) -> Self {
        Self {
            admin_hash: admin_token.map(token_hash),
        }
    }

    fn is_admin(&self, token: &str) -> bool {
        self.admin_hash
            .as_ref()
            .is_some_and(|h| hashes_equal(h, &token_hash(token)))
    }
}

fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let unauthorized =
        |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized, detail);
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("an operator bearer token is required"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if token.is_empty() || token.len() > TOKEN_CHARS_MAX {
        return Err(unauthorized("the token is not an operator token"));
    }
    Ok(token)
}

async fn operator(state: &AppState, token: &str) -> Result<Option<OperatorRecord>, Problem> {
    Ok(state.store.operator_by_hash(&token_hash_hex(token)).await?)
}

/// Staff of one office.
#[derive(Debug, Clone)]
pub struct Staff {
    pub office_id: String,
    pub name: String,
}

impl Staff {
    /// How the staff member appears in the event log.
    pub fn actor(&self) -> String {
        format!("staff:{}:{}", self.office_id, self.name)
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        match operator(state, token).await? {
            Some(OperatorRecord {
                role,
                office_id: Some(office_id),
                name,
            }) if role == "staff" => Ok(Staff { office_id, name }),
            _ => Err(Problem::new(
                StatusCode::UNAUTHORIZED,
                ProblemCode::Unauthorized,
                "the token is not a staff token",
            )),
        }
    }
}

/// An administrator.
#[derive(Debug, Clone)]
pub struct Admin {
    pub name: String,
}

impl Admin {
    pub fn actor(&self) -> String {
        format!("admin:{}", self.name)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let admin = if state.operators.is_admin(token) {
            Admin {
                name: "configured".to_string(),
            }
        } else {
            match operator(state, token).await? {
                Some(OperatorRecord { role, name, .. }) if role == "admin" => Admin { name },
                Some(_) => {
                    return Err(Problem::new(
                        StatusCode::FORBIDDEN,
                        ProblemCode::Forbidden,
                        "this endpoint is for administrators",
                    ))
                }
                None => {
                    return Err(Problem::new(
                        StatusCode::UNAUTHORIZED,
                        ProblemCode::Unauthorized,
                        "the token is not an admin token",
                    ))
                }
            }
        };
        // The audit log names who made the change (`live::audit`).
        AuditActor::set(parts, admin.actor());
        Ok(admin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_by_hash() {
        let a = new_token("staff");
        let b = new_token("staff");
        assert_ne!(a, b);
        assert!(a.starts_with("nbs_") && a.len() == 47, "{a}");
        assert!(hashes_equal(&token_hash(&a), &token_hash(&a)));
        assert!(!hashes_equal(&token_hash(&a), &token_hash(&b)));
        let keys = OperatorKeys::new(Some("secret-admin-token"));
        assert!(keys.is_admin("secret-admin-token"));
        assert!(!keys.is_admin("secret-admin-tokeN"));
        assert!(!OperatorKeys::new(None).is_admin(""));
        assert_eq!(token_hash_hex("abc").len(), 64);
    }
}
