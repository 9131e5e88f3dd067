//! Points on the Earth and great-circle distance.

/// Mean Earth radius used for every distance in nobat (the allocator's contract fixes it).
pub const EARTH_RADIUS_KM: f64 = 6371.0;

/// A WGS-84 latitude/longitude in degrees.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

impl GeoPoint {
    /// Refuses coordinates outside [-90, 90] × [-180, 180] and non-finite numbers.
    pub fn new(lat: f64, lon: f64) -> Result<Self, super::ValidationError> {
        if !(lat.is_finite()
            && lon.is_finite()
            && (-90.0..=90.0).contains(&lat)
            && (-180.0..=180.0).contains(&lon))
        {
            return Err(super::ValidationError::new(
                "location",
                "invalid_coordinates",
                format!(
                    "({lat}, {lon}) is not a latitude in [-90, 90] and a longitude in [-180, 180]"
                ),
            ));
        }
        Ok(Self { lat, lon })
    }

    /// Great-circle (haversine) distance in kilometres.
    pub fn distance_km(self, other: GeoPoint) -> f64 {
        haversine_km(self.lat, self.lon, other.lat, other.lon)
    }
}

/// Haversine distance in kilometres between two (lat, lon) pairs in degrees.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tehran_to_mashhad_is_about_740_km() {
        let tehran = GeoPoint::new(35.69, 51.39).unwrap();
        let mashhad = GeoPoint::new(36.30, 59.60).unwrap();
        let d = tehran.distance_km(mashhad);
        assert!((d - 740.0).abs() < 10.0, "{d}");
        assert_eq!(tehran.distance_km(tehran), 0.0);
    }

    #[test]
    fn bad_coordinates_are_refused() {
        assert!(GeoPoint::new(91.0, 0.0).is_err());
        assert!(GeoPoint::new(0.0, f64::NAN).is_err());
    }
}
