//! The allocator's cost model, in whole metres: what the solver minimises and what the
//! independent check (`crate::certificate`) recomputes. One definition, so the two cannot
//! drift apart on rounding.
//!
//! An applicant seated at office `o` on day `d` costs `metres(haversine_km(applicant, o)) +
//! wait_m_per_day × d`, where `wait_m_per_day = metres(wait_km_per_day)`; an office is within
//! reach when `haversine_km(applicant, o) <= max_km` (in kilometres, before rounding).

use nobat_domain::geo::haversine_km;

use super::model::OfficeSite;

/// Kilometres to whole metres, rounded: the solver's unit of cost.
pub fn metres(km: f64) -> i64 {
    (km * 1000.0).round() as i64
}

/// Great-circle distance from (lat, lon) to the office, in kilometres.
pub fn distance_km(lat: f64, lon: f64, office: &OfficeSite) -> f64 {
    haversine_km(lat, lon, office.lat, office.lon)
}
