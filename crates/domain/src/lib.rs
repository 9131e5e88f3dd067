//! nobat's pure domain types: identifiers, provinces, offices, services and fees, applicants,
//! the Jalali calendar, slots, and the civil-registry port. No I/O beyond the data tables
//! compiled into the binary (`data/`), no wall clock (time comes in through [`time::Clock`]).

pub mod applicant;
pub mod calendar;
pub mod error;
pub mod geo;
pub mod ids;
pub mod jalali;
pub mod lottery;
pub mod office;
pub mod province;
pub mod registry;
pub mod service;
pub mod slots;
pub mod time;

pub use error::ValidationError;
pub use geo::GeoPoint;
pub use ids::{AreaCode, BirthCertificateSerial, Mobile, NationalCode, PostalCode};
pub use jalali::JalaliDate;
pub use office::{Office, OfficeId, OfficeKind};
pub use province::Province;
pub use service::{FeeSchedule, Service, ServiceCode};
