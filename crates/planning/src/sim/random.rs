//! Seeded draws for aggregated applicants: how many of `n` do something with probability `p`.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Above this many trials with a mean of at least [`NORMAL_MEAN_MIN`] the normal approximation
/// is used; below, an exact method.
const EXACT_TRIALS_MAX: u64 = 64;
const NORMAL_MEAN_MIN: f64 = 30.0;

/// A Binomial(n, p) draw. Exact for small n (Bernoulli trials) and small means (Devroye's
/// second waiting-time method); for large means a rounded normal approximation clamped to
/// [0, n], whose error is far below the model's own uncertainty. Always within [0, n], and
/// exactly 0 or n when p is 0 or 1 (so hand-computed tests are exact).
pub fn binomial(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if p > 0.5 {
        return n - binomial(rng, n, 1.0 - p);
    }
    if n <= EXACT_TRIALS_MAX {
        return (0..n).filter(|_| rng.gen::<f64>() < p).count() as u64;
    }
    let mean = n as f64 * p;
    if mean < NORMAL_MEAN_MIN {
        let threshold = -(1.0 - p).ln();
        let mut sum = 0.0;
        let mut x = 0;
        // Expected iterations ≈ mean + 1 < 31; the bound n keeps it finite regardless.
        while x < n {
            let u: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
            sum += -u.ln() / (n - x) as f64;
            if sum > threshold {
                return x;
            }
            x += 1;
        }
        return n;
    }
    let sd = (mean * (1.0 - p)).sqrt();
    // Box–Muller.
    let u1: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.gen();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mean + sd * z).round().clamp(0.0, n as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn draws_stay_in_range_and_have_the_right_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for &(n, p) in &[(10u64, 0.3), (1_000, 0.01), (100_000, 0.05), (500, 0.9)] {
            let trials = 2_000;
            let mut total = 0u64;
            for _ in 0..trials {
                let x = binomial(&mut rng, n, p);
                assert!(x <= n);
                total += x;
            }
            let mean = total as f64 / trials as f64;
            let expected = n as f64 * p;
            let tolerance = 4.0 * (expected * (1.0 - p) / trials as f64).sqrt() + 0.05;
            assert!(
                (mean - expected).abs() < tolerance,
                "n {n} p {p}: {mean} vs {expected}"
            );
        }
        assert_eq!(binomial(&mut rng, 50, 0.0), 0);
        assert_eq!(binomial(&mut rng, 50, 1.0), 50);
    }
}
