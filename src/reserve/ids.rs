//! Identifiers the engine hands out: tracking codes (read aloud and typed on phones) and opaque
//! ids for applications, payments and holds.
//!
//! They come from an [`IdSource`] so that tests and simulations replay from a seed, while the
//! server uses a CSPRNG seeded from the operating system: tracking codes must be unguessable.

use std::sync::Mutex;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Crockford's base32: no I, L, O, U, so a code read over the phone is not misheard.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters of a tracking code; 13 × 5 = 65 bits of randomness.
pub const TRACKING_CODE_CHARS: usize = 13;

pub trait IdSource: Send + Sync {
    /// `bits` random bits (≤ 128).
    fn random_bits(&self, bits: u32) -> u128;

    /// A tracking code: 13 Crockford base32 characters, 65 random bits.
    fn tracking_code(&self) -> String {
        encode(self.random_bits(65), TRACKING_CODE_CHARS)
    }

    /// An opaque id with a readable prefix (`hold_…`), 100 random bits.
    fn opaque(&self, prefix: &str) -> String {
        format!(
            "{prefix}_{}",
            encode(self.random_bits(100), 20).to_ascii_lowercase()
        )
    }
}

fn encode(mut value: u128, chars: usize) -> String {
    let mut out = vec![0u8; chars];
    for slot in out.iter_mut().rev() {
        *slot = CROCKFORD[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8(out).expect("ascii")
}

/// Normalises a typed tracking code: upper case, dashes and spaces dropped, the look-alikes
/// Crockford allows (O→0, I/L→1) mapped. `None` if it cannot be one of ours.
pub fn normalise_tracking_code(input: &str) -> Option<String> {
    let mut out = String::with_capacity(TRACKING_CODE_CHARS);
    for c in crate::domain::ids::normalize_digits(input).chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !CROCKFORD.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        out.push(c);
    }
    (out.len() == TRACKING_CODE_CHARS).then_some(out)
}

/// Shows a tracking code in groups for reading: `ABCDE-FGHJK-MNP`.
pub fn display_tracking_code(code: &str) -> String {
    if code.len() != TRACKING_CODE_CHARS {
        return code.to_string();
    }
    format!("{}-{}-{}", &code[..5], &code[5..10], &code[10..])
}

/// The server's source: ChaCha20 seeded from the operating system.
pub struct SecureIds(Mutex<ChaCha20Rng>);

impl SecureIds {
    pub fn new() -> Self {
        Self(Mutex::new(ChaCha20Rng::from_entropy()))
    }
}

impl Default for SecureIds {
    fn default() -> Self {
        Self::new()
    }
}

/// A seeded source for tests and simulations: same seed, same ids.
pub struct SeededIds(Mutex<ChaCha20Rng>);

impl SeededIds {
    pub fn new(seed: u64) -> Self {
        Self(Mutex::new(ChaCha20Rng::seed_from_u64(seed)))
    }
}

fn draw(rng: &Mutex<ChaCha20Rng>, bits: u32) -> u128 {
    assert!(bits <= 128);
    let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
    let v = (u128::from(rng.next_u64()) << 64) | u128::from(rng.gen::<u64>());
    if bits == 128 {
        v
    } else {
        v & ((1u128 << bits) - 1)
    }
}

impl IdSource for SecureIds {
    fn random_bits(&self, bits: u32) -> u128 {
        draw(&self.0, bits)
    }
}

impl IdSource for SeededIds {
    fn random_bits(&self, bits: u32) -> u128 {
        draw(&self.0, bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_codes_are_short_and_round_trip() {
        let ids = SeededIds::new(7);
        let code = ids.tracking_code();
        assert_eq!(code.len(), 13);
        let shown = display_tracking_code(&code);
        assert_eq!(
            normalise_tracking_code(&shown.to_lowercase()),
            Some(code.clone())
        );
        assert_eq!(normalise_tracking_code("ABC"), None);
        assert_eq!(
            normalise_tracking_code("ABCDE-FGHJK-MNU"),
            None,
            "U is not Crockford"
        );
    }

    #[test]
    fn seeded_ids_replay_and_differ() {
        let a: Vec<_> = (0..5)
            .map({
                let ids = SeededIds::new(1);
                move |_| ids.tracking_code()
            })
            .collect();
        let b: Vec<_> = (0..5)
            .map({
                let ids = SeededIds::new(1);
                move |_| ids.tracking_code()
            })
            .collect();
        assert_eq!(a, b);
        let mut dedup = a.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 5);
        assert!(SecureIds::new().opaque("hold").starts_with("hold_"));
    }
}
