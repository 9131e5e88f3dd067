//! The office directory: every office, in memory, with lookups by id, province and area code
//! and a nearest-first search. Loaded from storage at start; offices change rarely (admin
//! edits reload it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::{AreaCode, GeoPoint, Office, ServiceCode};

/// Nearest offices kept per office and service (`Directory::nearest_offering`): enough for the
/// alternatives of a `slot_full` answer, which usually come from the first three.
const NEAREST_KEPT: usize = 8;

pub struct Directory {
    offices: Vec<Office>,
    /// Each office's location as a unit vector (same order), for `nearest`.
    units: Vec<[f64; 3]>,
    /// Each office's listing entry as readers rendered it (same order); a new directory (an
    /// office changed) starts with none.
    memos: Vec<ListingMemo>,
    by_id: HashMap<String, usize>,
    /// (office, service) → the `NEAREST_KEPT` other offices nearest to it that offer the
    /// service (indices, distances in km), nearest first; filled on first use. Bounded by the
    /// offices times the services.
    nearest: Mutex<HashMap<(usize, ServiceCode), Nearest>>,
}

/// A point on the unit sphere: the squared chord between two of them orders pairs of points
/// as their great-circle distance does.
fn unit_vector(p: GeoPoint) -> [f64; 3] {
    let (lat, lon) = (p.lat.to_radians(), p.lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// What a listing renders of an office, kept for the next listing: the part that only changes
/// with the office (`head`), and the part that changes with its seats (`seats`), with the key
/// the reader checks before reusing it. What is rendered is the reader's business (the HTTP
/// layer keeps JSON).
#[derive(Debug, Default)]
pub struct ListingMemo {
    pub head: std::sync::OnceLock<String>,
    pub seats: Mutex<Option<(Vec<i64>, String)>>,
}

/// Offices (their indices) with their distances in km, nearest first.
type Nearest = Arc<[(usize, f64)]>;

impl Directory {
    pub fn new(offices: Vec<Office>) -> Self {
        let by_id = offices
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id.to_string(), i))
            .collect();
        Self {
            units: offices.iter().map(|o| unit_vector(o.location)).collect(),
            memos: offices.iter().map(|_| ListingMemo::default()).collect(),
            offices,
            by_id,
            nearest: Mutex::default(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Office> {
        self.by_id.get(id).map(|&i| &self.offices[i])
    }

    /// An office with the rendering of its listing entry that readers share.
    pub fn get_with_memo(&self, id: &str) -> Option<(&Office, &ListingMemo)> {
        self.by_id
            .get(id)
            .map(|&i| (&self.offices[i], &self.memos[i]))
    }

    pub fn all(&self) -> &[Office] {
        &self.offices
    }

    pub fn len(&self) -> usize {
        self.offices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offices.is_empty()
    }

    /// Offices matching the filters; with `near`, sorted nearest first with their distances.
    pub fn search(
        &self,
        area_code: Option<AreaCode>,
        province: Option<&str>,
        near: Option<GeoPoint>,
        service: Option<ServiceCode>,
    ) -> Vec<(&Office, Option<f64>)> {
        let mut found: Vec<(&Office, Option<f64>)> = self
            .offices
            .iter()
            .filter(|o| area_code.is_none_or(|a| o.area_code == a))
            .filter(|o| province.is_none_or(|p| o.province == p))
            .filter(|o| service.is_none_or(|s| o.offers(s)))
            .map(|o| (o, near.map(|p| p.distance_km(o.location))))
            .collect();
        if near.is_some() {
            found.sort_by(|a, b| {
                a.1.unwrap_or(f64::MAX)
                    .total_cmp(&b.1.unwrap_or(f64::MAX))
                    .then_with(|| a.0.id.cmp(&b.0.id))
            });
        }
        found
    }

    /// The `limit` offices that `keep` accepts nearest to `point`, nearest first (ties by id),
    /// with their distances in km: the head of `search` near `point`, by a partial sort of the
    /// matches instead of a full one.
    pub fn nearest(
        &self,
        point: GeoPoint,
        limit: usize,
        keep: impl Fn(&Office) -> bool,
    ) -> Vec<(&Office, f64)> {
        if limit == 0 {
            return Vec::new();
        }
        // Ranked first by the chord between unit vectors (no trigonometry per office; the
        // haversine is a monotonic function of it), then the few nearest by the haversine
        // itself. The cut keeps every office within rounding of the limit-th, so ties and
        // near-ties are settled by the exact distance and the id as `search` settles them.
        let u = unit_vector(point);
        let mut found: Vec<(usize, f64)> = self
            .offices
            .iter()
            .enumerate()
            .filter(|(_, o)| keep(o))
            .map(|(i, _)| {
                let v = self.units[i];
                let d = [v[0] - u[0], v[1] - u[1], v[2] - u[2]];
                (i, d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            })
            .collect();
        if found.len() > limit {
            found.select_nth_unstable_by(limit - 1, |a, b| a.1.total_cmp(&b.1));
            let cut = found[limit - 1].1 * (1.0 + 1e-6) + 1e-12;
            found.retain(|(_, chord)| *chord <= cut);
        }
        let mut exact: Vec<(&Office, f64)> = found
            .into_iter()
            .map(|(i, _)| {
                (
                    &self.offices[i],
                    point.distance_km(self.offices[i].location),
                )
            })
            .collect();
        exact.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.id.cmp(&b.0.id)));
        exact.truncate(limit);
        exact
    }

    /// The other offices offering `service`, nearest to `from` first (ties by id), with their
    /// distances in km: the order of `search` near `from`, without `from`. A `slot_full` answer
    /// takes the first few with a free seat, and with an Idempotency-Key it is rendered on the
    /// booking writer's thread, where a search of every office (a sort of 2,200 on the
    /// national network) would hold up every booking: the first `NEAREST_KEPT` are kept per
    /// office and service, and only a caller that goes past them pays for a full search.
    pub fn nearest_offering<'d>(
        &'d self,
        from: &'d Office,
        service: ServiceCode,
    ) -> impl Iterator<Item = (&'d Office, f64)> + 'd {
        let kept: Nearest = match self.by_id.get(from.id.as_str()) {
            Some(&i) => {
                let mut nearest = self.nearest.lock().unwrap_or_else(|p| p.into_inner());
                nearest
                    .entry((i, service))
                    .or_insert_with(|| {
                        let mut all = self.sorted_offering(from, service);
                        all.truncate(NEAREST_KEPT);
                        all.into()
                    })
                    .clone()
            }
            None => Arc::from([]),
        };
        let head = kept.len();
        // A short list is every office there is; a full one may go on.
        let more = head == NEAREST_KEPT || !self.by_id.contains_key(from.id.as_str());
        (0..head)
            .map(move |k| (&self.offices[kept[k].0], kept[k].1))
            .chain(
                std::iter::once(more)
                    .filter(|more| *more)
                    .flat_map(move |_| self.sorted_offering(from, service).into_iter().skip(head))
                    .map(|(i, d)| (&self.offices[i], d)),
            )
    }

    /// Every office but `from` offering `service`, nearest to `from` first, ties by id.
    fn sorted_offering(&self, from: &Office, service: ServiceCode) -> Vec<(usize, f64)> {
        let mut found: Vec<(usize, f64)> = self
            .offices
            .iter()
            .enumerate()
            .filter(|(_, o)| o.id != from.id && o.offers(service))
            .map(|(i, o)| (i, from.location.distance_km(o.location)))
            .collect();
        found.sort_by(|a, b| {
            a.1.total_cmp(&b.1)
                .then_with(|| self.offices[a.0].id.cmp(&self.offices[b.0].id))
        });
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_offering_is_the_search_order_without_the_office_itself() {
        let offices = crate::planning::scenario::Scenario::from_toml_str(
            crate::store::seed::BUNDLED_SCENARIO,
            "small.toml",
        )
        .unwrap()
        .generate_network();
        let directory = Directory::new(offices);
        let mut longer_than_kept = 0;
        for from in directory.all() {
            for service in ServiceCode::ALL {
                let searched: Vec<(String, f64)> = directory
                    .search(None, None, Some(from.location), Some(service))
                    .into_iter()
                    .filter(|(o, _)| o.id != from.id)
                    .map(|(o, d)| (o.id.to_string(), d.unwrap()))
                    .collect();
                longer_than_kept += usize::from(searched.len() > NEAREST_KEPT);
                // Twice: computed, then from the memo.
                for _ in 0..2 {
                    let nearest: Vec<(String, f64)> = directory
                        .nearest_offering(from, service)
                        .map(|(o, d)| (o.id.to_string(), d))
                        .collect();
                    assert_eq!(nearest, searched, "from {} for {service:?}", from.id);
                }
            }
        }
        assert!(longer_than_kept > 0, "some lists go past the kept ones");
    }

    #[test]
    fn nearest_is_the_head_of_the_search() {
        let offices = crate::planning::scenario::Scenario::from_toml_str(
            crate::store::seed::BUNDLED_SCENARIO,
            "small.toml",
        )
        .unwrap()
        .generate_network();
        let directory = Directory::new(offices);
        let mut points: Vec<GeoPoint> = directory.all().iter().map(|o| o.location).collect();
        points.extend([
            GeoPoint::new(35.7, 51.4).unwrap(),
            GeoPoint::new(-33.9, 151.2).unwrap(),
            GeoPoint::new(0.0, 179.9).unwrap(),
        ]);
        for point in points {
            for service in [
                None,
                Some(ServiceCode::FirstIssuance),
                Some(ServiceCode::CardPickup),
            ] {
                for limit in [1, 3, 5, 20, 100] {
                    let searched: Vec<(String, f64)> = directory
                        .search(None, None, Some(point), service)
                        .into_iter()
                        .take(limit)
                        .map(|(o, d)| (o.id.to_string(), d.unwrap()))
                        .collect();
                    let nearest: Vec<(String, f64)> = directory
                        .nearest(point, limit, |o| service.is_none_or(|s| o.offers(s)))
                        .into_iter()
                        .map(|(o, d)| (o.id.to_string(), d))
                        .collect();
                    assert_eq!(nearest, searched, "{point:?} {service:?} {limit}");
                }
            }
        }
    }
}
