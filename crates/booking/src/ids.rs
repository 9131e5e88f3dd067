//! The identifiers a request names, each its own type, so that a hold id cannot be passed
//! where a tracking code or a payment id is expected. They are strings inside: the rows the
//! store decodes keep `String` fields, and the JSON of a request is the same as with plain
//! strings (`#[serde(transparent)]`).
//!
//! ```compile_fail
//! use nobat_booking::{HoldId, TrackingCode};
//! let tracking_code = TrackingCode::from("T1");
//! // A tracking code is not a hold id.
//! let hold_id: HoldId = tracking_code;
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A hold's id (generated before the request is queued).
    HoldId
);
string_id!(
    /// An appointment's tracking code (generated before the request is queued).
    TrackingCode
);
string_id!(
    /// A payment's id.
    PaymentId
);
string_id!(
    /// An application's id.
    ApplicationId
);
