//! Randomness anyone can audit: a secret seed, its public commitment, and salted keys.
//!
//! A draw (a ballot's close, a waiting room's opening) starts from 32 random bytes whose
//! `SHA-256` (hex) is published first: the commitment. The seed stays secret until the draw is
//! over, so nobody, the operator included, can aim at a lottery number; once it is revealed,
//! anyone checks it against the commitment and recomputes every draw from it (a ballot's
//! tie-breaks are `SHA-256(seed_hex ‖ key)`, the allocator's lottery rule; a waiting room's
//! order is a permutation keyed by the seed).

use std::fmt;

use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

/// The 32 secret bytes of a draw.
#[derive(Clone, PartialEq, Eq)]
pub struct LotterySeed([u8; 32]);

/// A seed that is not 64 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a lottery seed is 64 hexadecimal digits")]
pub struct SeedFormatError;

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl LotterySeed {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh seed from a cryptographic generator (the server's OS generator; tests pass a
    /// seeded one).
    pub fn draw<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<Self, SeedFormatError> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return Err(SeedFormatError);
        }
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| SeedFormatError)?;
        }
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex: what is revealed, and the allocator's lottery seed string.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// `SHA-256` of the seed's 32 bytes, lowercase hex: what is published at creation.
    pub fn commitment(&self) -> String {
        to_hex(&Sha256::digest(self.0))
    }

    /// Whether this seed is the one `commitment` (hex, either case) was made from.
    pub fn matches(&self, commitment: &str) -> bool {
        self.commitment().eq_ignore_ascii_case(commitment.trim())
    }
}

/// Never prints the secret (logs and panics included).
impl fmt::Debug for LotterySeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LotterySeed(..)")
    }
}

/// The key a person is published under (a ballot's export): the first 128 bits of
/// `SHA-256(salt ‖ national code)`, hex. The salt is the draw's own secret and is never
/// revealed (ten-digit codes would fall to a brute force), so the export names nobody; the
/// server shows each applicant their own key. It is fixed at creation, before any entry, so
/// it cannot be chosen to favour one.
pub fn salted_key(salt: &[u8; 32], national_code: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(national_code.as_bytes());
    to_hex(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_commitment_is_the_hash_of_the_bytes_and_round_trips_through_hex() {
        let seed = LotterySeed::from_bytes([0u8; 32]);
        // sha256 of 32 zero bytes (printf '\0%.0s' {1..32} | sha256sum).
        assert_eq!(
            seed.commitment(),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        let drawn = LotterySeed::draw(&mut rand_chacha::ChaCha20Rng::seed_from_u64(7));
        let back = LotterySeed::from_hex(&drawn.to_hex().to_uppercase()).unwrap();
        assert_eq!(back, drawn);
        assert!(back.matches(&drawn.commitment().to_uppercase()));
        assert!(!back.matches(&seed.commitment()));
    }

    #[test]
    fn malformed_seeds_are_refused_and_debug_hides_the_secret() {
        for bad in ["", "00", &"g".repeat(64), &"0".repeat(63), &"é".repeat(32)] {
            assert_eq!(LotterySeed::from_hex(bad), Err(SeedFormatError), "{bad}");
        }
        let seed = LotterySeed::from_bytes([0xab; 32]);
        assert!(!format!("{seed:?}").contains("ab"));
    }

    #[test]
    fn salted_keys_depend_on_the_salt_and_the_code() {
        let a = salted_key(&[1; 32], "0012345678");
        assert_eq!(a.len(), 32);
        assert_ne!(a, salted_key(&[2; 32], "0012345678"));
        assert_ne!(a, salted_key(&[1; 32], "0012345679"));
        assert_eq!(a, salted_key(&[1; 32], "0012345678"));
    }
}
