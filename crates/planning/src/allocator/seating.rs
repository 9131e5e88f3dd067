//! Seat order inside an office-day and the auditable lottery that breaks ties.
//!
//! The lottery number of an applicant is `SHA-256(seed ‖ applicant_id)` over the UTF-8 bytes,
//! compared as a 32-byte big-endian number (lower goes first). Anyone holding the published
//! seed and the list of ids can recompute every tie-break, e.g. with
//! `printf '%s%s' "$SEED" "$ID" | sha256sum`.

use std::cmp::Ordering;

use sha2::{Digest, Sha256};

use super::model::Applicant;

pub fn lottery_digest(seed: &str, applicant_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update(applicant_id.as_bytes());
    h.finalize().into()
}

/// Lottery digests for every applicant, computed on up to `threads` threads (it is the one
/// per-applicant cryptographic step, so it is worth splitting on big cohorts).
pub fn lottery_digests(seed: &str, applicants: &[Applicant], threads: usize) -> Vec<[u8; 32]> {
    let mut out = vec![[0u8; 32]; applicants.len()];
    let threads = threads.clamp(1, 8);
    let chunk = applicants.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for (dst, src) in out.chunks_mut(chunk).zip(applicants.chunks(chunk)) {
            s.spawn(move || {
                for (d, a) in dst.iter_mut().zip(src) {
                    *d = lottery_digest(seed, &a.id);
                }
            });
        }
    });
    out
}

/// Order of applicants competing for seats: higher priority, then earlier registration
/// (unknown registration last), then the lower lottery digest, then input order (only equal
/// ids could tie, and the loaders refuse duplicate ids).
pub fn seat_order(
    a: (&Applicant, &[u8; 32], usize),
    b: (&Applicant, &[u8; 32], usize),
) -> Ordering {
    b.0.priority
        .cmp(&a.0.priority)
        .then_with(|| {
            a.0.registered_at
                .unwrap_or(i64::MAX)
                .cmp(&b.0.registered_at.unwrap_or(i64::MAX))
        })
        .then_with(|| a.1.cmp(b.1))
        .then_with(|| a.2.cmp(&b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_of_seed_then_id() {
        // printf '%s%s' 2026 A1 | sha256sum
        let d = lottery_digest("2026", "A1");
        let direct: [u8; 32] = Sha256::digest(b"2026A1").into();
        assert_eq!(d, direct);
        assert_ne!(d, lottery_digest("2027", "A1"));
    }

    #[test]
    fn order_is_priority_then_registration_then_lottery() {
        let mk = |id: &str, priority, registered_at| Applicant {
            id: id.into(),
            lat: 0.0,
            lon: 0.0,
            priority,
            max_km: None,
            service: None,
            registered_at,
            province: None,
            earliest_day: None,
            preferred_offices: None,
        };
        let (a, b, c) = (mk("a", 0, Some(5)), mk("b", 1, Some(9)), mk("c", 0, None));
        let (da, db, dc) = ([9u8; 32], [5u8; 32], [0u8; 32]);
        assert_eq!(seat_order((&b, &db, 1), (&a, &da, 0)), Ordering::Less);
        assert_eq!(seat_order((&a, &da, 0), (&c, &dc, 2)), Ordering::Less);
        let a2 = mk("a2", 0, Some(5));
        assert_eq!(seat_order((&a2, &db, 3), (&a, &da, 0)), Ordering::Less);
    }
}
