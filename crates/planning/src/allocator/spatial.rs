//! A static k-d tree over office locations as 3-D unit vectors.
//!
//! Straight-line (chord) distance between unit vectors grows with great-circle distance, so
//! nearest-k and radius queries in 3-D are exact on the sphere, with no special cases at the
//! date line or the poles. Callers re-check every hit with the haversine distance, which is the
//! cost the allocator uses; the queries pad their radius so float noise cannot drop a hit.

use nobat_domain::geo::EARTH_RADIUS_KM;

/// Relative padding on query radii, far above f64 noise and far below a metre.
const RADIUS_PAD: f64 = 1e-9;

pub fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (phi, lambda) = (lat.to_radians(), lon.to_radians());
    [
        phi.cos() * lambda.cos(),
        phi.cos() * lambda.sin(),
        phi.sin(),
    ]
}

/// Chord length on the unit sphere for a great-circle distance.
pub fn chord_for_km(distance_km: f64) -> f64 {
    let angle = (distance_km / EARTH_RADIUS_KM).min(std::f64::consts::PI);
    2.0 * (angle / 2.0).sin()
}

/// Squared chord length between two unit vectors.
pub fn dist2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let (x, y, z) = (a[0] - b[0], a[1] - b[1], a[2] - b[2]);
    x * x + y * y + z * z
}

/// Offices (by index into the caller's list) in an implicit k-d tree: the median of every
/// sub-slice is the node, its split axis stored alongside.
#[derive(Debug, Clone)]
pub struct OfficeIndex {
    points: Vec<[f64; 3]>,
    items: Vec<u32>,
    axis: Vec<u8>,
    /// Per node, the bounding box (min, max corner) of its subtree's points.
    boxes: Vec<([f64; 3], [f64; 3])>,
}

impl OfficeIndex {
    pub fn build(entries: impl IntoIterator<Item = (u32, [f64; 3])>) -> Self {
        let mut pairs: Vec<(u32, [f64; 3])> = entries.into_iter().collect();
        let mut axis = vec![0u8; pairs.len()];
        build_rec(&mut pairs, &mut axis);
        let points: Vec<[f64; 3]> = pairs.iter().map(|p| p.1).collect();
        let mut boxes = vec![([0.0; 3], [0.0; 3]); points.len()];
        boxes_rec(&points, 0, points.len(), &mut boxes);
        Self {
            points,
            items: pairs.iter().map(|p| p.0).collect(),
            axis,
            boxes,
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Up to `k` nearest items within `max_km`, nearest first, as (squared chord, item).
    pub fn nearest(&self, p: &[f64; 3], k: usize, max_km: f64, out: &mut Vec<(f64, u32)>) {
        out.clear();
        if k == 0 || self.items.is_empty() {
            return;
        }
        let r = chord_for_km(max_km) * (1.0 + RADIUS_PAD) + 1e-12;
        let mut bound = r * r;
        self.nearest_rec(0, self.items.len(), p, k, &mut bound, out);
        out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    }

    fn nearest_rec(
        &self,
        lo: usize,
        hi: usize,
        p: &[f64; 3],
        k: usize,
        bound: &mut f64,
        out: &mut Vec<(f64, u32)>,
    ) {
        if lo >= hi {
            return;
        }
        let mid = lo + (hi - lo) / 2;
        let ax = self.axis[mid] as usize;
        let d = dist2(p, &self.points[mid]);
        if d <= *bound {
            // Keep `out` as a bounded max-heap by hand: k is small (tens).
            out.push((d, self.items[mid]));
            if out.len() > k {
                let (worst, _) = out
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                    .expect("non-empty");
                out.swap_remove(worst);
            }
            if out.len() == k {
                let worst = out.iter().map(|x| x.0).fold(0.0, f64::max);
                *bound = bound.min(worst);
            }
        }
        let diff = p[ax] - self.points[mid][ax];
        let (near, far) = if diff < 0.0 {
            ((lo, mid), (mid + 1, hi))
        } else {
            ((mid + 1, hi), (lo, mid))
        };
        self.nearest_rec(near.0, near.1, p, k, bound, out);
        if diff * diff <= *bound {
            self.nearest_rec(far.0, far.1, p, k, bound, out);
        }
    }

    /// Every item within `radius_km` (padded; callers re-check exactly).
    pub fn within(&self, p: &[f64; 3], radius_km: f64, out: &mut Vec<u32>) {
        out.clear();
        let r = chord_for_km(radius_km) * (1.0 + RADIUS_PAD) + 1e-12;
        self.within_rec(0, self.items.len(), p, r * r, out);
    }

    fn within_rec(&self, lo: usize, hi: usize, p: &[f64; 3], r2: f64, out: &mut Vec<u32>) {
        if lo >= hi {
            return;
        }
        let mid = lo + (hi - lo) / 2;
        let ax = self.axis[mid] as usize;
        if dist2(p, &self.points[mid]) <= r2 {
            out.push(self.items[mid]);
        }
        let diff = p[ax] - self.points[mid][ax];
        if diff < 0.0 || diff * diff <= r2 {
            self.within_rec(lo, mid, p, r2, out);
        }
        if diff >= 0.0 || diff * diff <= r2 {
            self.within_rec(mid + 1, hi, p, r2, out);
        }
    }
}

impl OfficeIndex {
    /// Per tree node (its position in the index), the largest `weight` of an item in its
    /// subtree: what [`Self::within_gaining`] prunes by.
    pub fn subtree_max(&self, weight: impl Fn(u32) -> i64) -> Vec<i64> {
        let mut out = vec![i64::MIN; self.items.len()];
        self.subtree_max_rec(0, self.items.len(), &weight, &mut out);
        out
    }

    fn subtree_max_rec(
        &self,
        lo: usize,
        hi: usize,
        weight: &impl Fn(u32) -> i64,
        out: &mut [i64],
    ) -> i64 {
        if lo >= hi {
            return i64::MIN;
        }
        let mid = lo + (hi - lo) / 2;
        let max = weight(self.items[mid])
            .max(self.subtree_max_rec(lo, mid, weight, out))
            .max(self.subtree_max_rec(mid + 1, hi, weight, out));
        out[mid] = max;
        max
    }

    /// The items within `radius_km` (padded) that may gain: those whose weight `w` beats
    /// `base` by more than their distance, `w − base > chord_m × (1 − 1e-9) − 1` with the
    /// chord (a lower bound of the great-circle distance) in metres. Subtrees whose largest
    /// weight (`sub_max`, from [`Self::subtree_max`]) cannot beat `base` by the distance to
    /// them are skipped: pricing asks this of every zone, and most offices within reach are
    /// ruled out that way without visiting them. A superset: callers re-check each item.
    pub fn within_gaining(
        &self,
        p: &[f64; 3],
        radius_km: f64,
        base: i64,
        sub_max: &[i64],
        out: &mut Vec<u32>,
    ) {
        out.clear();
        let r = chord_for_km(radius_km) * (1.0 + RADIUS_PAD) + 1e-12;
        self.within_gaining_rec(0, self.items.len(), p, r * r, base, sub_max, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn within_gaining_rec(
        &self,
        lo: usize,
        hi: usize,
        p: &[f64; 3],
        r2: f64,
        base: i64,
        sub_max: &[i64],
        out: &mut Vec<u32>,
    ) {
        if lo >= hi {
            return;
        }
        let mid = lo + (hi - lo) / 2;
        let gain = sub_max[mid].saturating_sub(base);
        if gain <= 0 {
            return;
        }
        // The chord (unit sphere) under which an item of this subtree can still gain.
        let gain_chord = (gain as f64 + 1.0) / (1.0 - 1e-9) / (EARTH_RADIUS_KM * 1000.0)
            * (1.0 + RADIUS_PAD)
            + 1e-12;
        let r2 = r2.min(gain_chord * gain_chord);
        let (low, high) = &self.boxes[mid];
        let box_d2: f64 = (0..3)
            .map(|a| {
                let d = (low[a] - p[a]).max(p[a] - high[a]).max(0.0);
                d * d
            })
            .sum();
        if box_d2 > r2 {
            return;
        }
        let ax = self.axis[mid] as usize;
        if dist2(p, &self.points[mid]) <= r2 {
            out.push(self.items[mid]);
        }
        let diff = p[ax] - self.points[mid][ax];
        if diff < 0.0 || diff * diff <= r2 {
            self.within_gaining_rec(lo, mid, p, r2, base, sub_max, out);
        }
        if diff >= 0.0 || diff * diff <= r2 {
            self.within_gaining_rec(mid + 1, hi, p, r2, base, sub_max, out);
        }
    }
}

/// The bounding box of each subtree, stored at its node; returns the box of `lo..hi`.
fn boxes_rec(
    points: &[[f64; 3]],
    lo: usize,
    hi: usize,
    boxes: &mut [([f64; 3], [f64; 3])],
) -> ([f64; 3], [f64; 3]) {
    if lo >= hi {
        return ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
    }
    let mid = lo + (hi - lo) / 2;
    let (mut low, mut high) = (points[mid], points[mid]);
    for (l, h) in [
        boxes_rec(points, lo, mid, boxes),
        boxes_rec(points, mid + 1, hi, boxes),
    ] {
        for a in 0..3 {
            low[a] = low[a].min(l[a]);
            high[a] = high[a].max(h[a]);
        }
    }
    boxes[mid] = (low, high);
    (low, high)
}

fn build_rec(pairs: &mut [(u32, [f64; 3])], axis: &mut [u8]) {
    if pairs.len() <= 1 {
        return;
    }
    let mut lo = [f64::INFINITY; 3];
    let mut hi = [f64::NEG_INFINITY; 3];
    for (_, p) in pairs.iter() {
        for a in 0..3 {
            lo[a] = lo[a].min(p[a]);
            hi[a] = hi[a].max(p[a]);
        }
    }
    let ax = (0..3)
        .max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])))
        .unwrap_or(0);
    let mid = pairs.len() / 2;
    pairs.select_nth_unstable_by(mid, |a, b| a.1[ax].total_cmp(&b.1[ax]).then(a.0.cmp(&b.0)));
    axis[mid] = ax as u8;
    let (left, right) = pairs.split_at_mut(mid);
    let (left_axis, right_axis) = axis.split_at_mut(mid);
    build_rec(left, left_axis);
    build_rec(&mut right[1..], &mut right_axis[1..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use nobat_domain::geo::haversine_km;
    use rand::{Rng, SeedableRng};

    #[test]
    fn queries_match_brute_force() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let pts: Vec<(f64, f64)> = (0..300)
            .map(|_| (rng.gen_range(25.0..40.0), rng.gen_range(44.0..63.0)))
            .collect();
        let index = OfficeIndex::build(
            pts.iter()
                .enumerate()
                .map(|(i, &(la, lo))| (i as u32, unit_vector(la, lo))),
        );
        let mut out = Vec::new();
        let mut hits = Vec::new();
        for _ in 0..200 {
            let (la, lo) = (rng.gen_range(24.0..41.0), rng.gen_range(43.0..64.0));
            let p = unit_vector(la, lo);
            let mut brute: Vec<(f64, u32)> = pts
                .iter()
                .enumerate()
                .map(|(i, &(a, b))| (haversine_km(la, lo, a, b), i as u32))
                .collect();
            brute.sort_by(|a, b| a.0.total_cmp(&b.0));
            index.nearest(&p, 5, 300.0, &mut out);
            let expect: Vec<u32> = brute
                .iter()
                .filter(|x| x.0 <= 300.0)
                .take(5)
                .map(|x| x.1)
                .collect();
            let got: Vec<u32> = out.iter().map(|x| x.1).collect();
            assert_eq!(got, expect);
            index.within(&p, 150.0, &mut hits);
            let mut got: Vec<u32> = hits.clone();
            got.sort();
            let mut expect: Vec<u32> = brute.iter().filter(|x| x.0 <= 150.0).map(|x| x.1).collect();
            expect.sort();
            assert_eq!(got, expect);
        }
    }

    /// `within_gaining` returns every item within the radius whose weight beats the base by
    /// more than its chord distance (and may return more).
    #[test]
    fn within_gaining_keeps_every_gaining_item() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let pts: Vec<[f64; 3]> = (0..400)
            .map(|_| unit_vector(rng.gen_range(25.0..40.0), rng.gen_range(44.0..63.0)))
            .collect();
        let weight: Vec<i64> = (0..400).map(|_| rng.gen_range(0..400_000)).collect();
        let index = OfficeIndex::build(pts.iter().enumerate().map(|(i, &p)| (i as u32, p)));
        let sub_max = index.subtree_max(|o| weight[o as usize]);
        let mut hits = Vec::new();
        let mut pruned = 0;
        for _ in 0..300 {
            let p = unit_vector(rng.gen_range(24.0..41.0), rng.gen_range(43.0..64.0));
            let base = rng.gen_range(-100_000..400_000);
            let radius_km = rng.gen_range(10.0..500.0);
            index.within_gaining(&p, radius_km, base, &sub_max, &mut hits);
            let mut all = Vec::new();
            index.within(&p, radius_km, &mut all);
            pruned += all.len() - hits.len();
            for &o in &all {
                let chord_m = dist2(&p, &pts[o as usize]).sqrt() * EARTH_RADIUS_KM * 1000.0;
                let gain = weight[o as usize] - base;
                if gain > 0 && chord_m * (1.0 - 1e-9) - 1.0 < gain as f64 {
                    assert!(hits.contains(&o), "item {o} gains but was pruned");
                }
            }
            assert!(hits.iter().all(|o| all.contains(o)));
        }
        assert!(pruned > 0, "the test should exercise pruning");
    }
}
