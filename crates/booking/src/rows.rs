//! The rows a batch reads and writes, as the store decodes them, and their statuses.

use serde::{Deserialize, Serialize};

/// Unix seconds.
pub type UnixSeconds = i64;

/// The service code of the card-pickup visit booked at enrolment.
pub const PICKUP_SERVICE: &str = "card_pickup";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRow {
    pub id: i64,
    pub office_id: String,
    pub start_at: UnixSeconds,
    pub duration_minutes: i64,
    pub capacity: i64,
    pub taken: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Live,
    Confirmed,
    Released,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Live => "live",
            HoldStatus::Confirmed => "confirmed",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            HoldStatus::Live,
            HoldStatus::Confirmed,
            HoldStatus::Released,
            HoldStatus::Expired,
        ]
        .into_iter()
        .find(|h| h.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRow {
    pub id: String,
    pub slot_id: i64,
    pub application_id: String,
    pub national_code: String,
    pub service: String,
    pub status: HoldStatus,
    pub created_at: UnixSeconds,
    pub expires_at: UnixSeconds,
}

/// Where an appointment is in its life. Staff steps (check-in, enrolment, pickup) move it on;
/// only `Booked` and `CheckedIn` are *active* (hold a seat in the future and block a second
/// booking for the same service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    CheckedIn,
    Enrolled,
    NoShow,
    Cancelled,
    Rescheduled,
    CardReady,
    Delivered,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 8] = [
        AppointmentStatus::Booked,
        AppointmentStatus::CheckedIn,
        AppointmentStatus::Enrolled,
        AppointmentStatus::NoShow,
        AppointmentStatus::Cancelled,
        AppointmentStatus::Rescheduled,
        AppointmentStatus::CardReady,
        AppointmentStatus::Delivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Booked => "booked",
            AppointmentStatus::CheckedIn => "checked_in",
            AppointmentStatus::Enrolled => "enrolled",
            AppointmentStatus::NoShow => "no_show",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::Rescheduled => "rescheduled",
            AppointmentStatus::CardReady => "card_ready",
            AppointmentStatus::Delivered => "delivered",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Active appointments hold a seat and block another booking of the same service.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            AppointmentStatus::Booked | AppointmentStatus::CheckedIn
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppointmentRow {
    pub tracking_code: String,
    pub slot_id: i64,
    pub office_id: String,
    pub start_at: UnixSeconds,
    pub application_id: String,
    pub national_code: String,
    pub service: String,
    pub payment_id: Option<String>,
    pub status: AppointmentStatus,
    pub created_at: UnixSeconds,
    pub updated_at: UnixSeconds,
    /// Times its applicant moved it (`Reschedule`; staff and admin moves do not count), against
    /// `Limits::max_reschedules`. Left out of the JSON while zero, so records and pins written
    /// before the count existed read and write as they did.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reschedules: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Paid,
    Declined,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            PaymentStatus::Pending,
            PaymentStatus::Paid,
            PaymentStatus::Declined,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRow {
    pub id: String,
    pub application_id: String,
    /// The service of the application paid for (joined in when read).
    pub service: String,
    pub national_code: String,
    pub status: PaymentStatus,
}

/// Whose application it is and for which service: what a hold must agree with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationRef {
    pub id: String,
    pub national_code: String,
    pub service: String,
}

/// The card of an enrolment: written once, when biometrics are taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRow {
    /// The enrolment appointment.
    pub tracking_code: String,
    pub office_id: String,
    pub ready_date: String,
    pub pickup_tracking_code: Option<String>,
    pub created_at: UnixSeconds,
}

/// A notice to an applicant, queued in the outbox in the same transaction as the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRow {
    pub national_code: String,
    pub application_id: String,
    pub tracking_code: String,
    /// What caused it; unique with the tracking code.
    pub notice_key: String,
    pub channel: String,
    pub body: String,
    pub created_at: UnixSeconds,
}
