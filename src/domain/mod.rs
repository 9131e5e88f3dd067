//! Pure domain types: identifiers, provinces, offices, services and fees, applicants, the
//! calendar. No I/O beyond reading the data tables compiled into the binary.

pub mod applicant;
pub mod calendar;
pub mod error;
pub mod geo;
pub mod ids;
pub mod jalali;
pub mod office;
pub mod province;
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
