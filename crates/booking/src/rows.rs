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
    /// When the slot's seats become bookable, if a release wave covers it
    /// (`slots.opens_at`, migration 0013); before then no hold, booking, reschedule or
    /// waitlist offer takes one (for `opens_for`'s service only when it names one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<UnixSeconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_for: Option<String>,
}

impl SlotRow {
    /// The opening of the wave that still keeps this slot's seats from `service` at `now`.
    pub fn unreleased_for(&self, service: &str, now: UnixSeconds) -> Option<UnixSeconds> {
        let opens_at = self.opens_at.filter(|&t| t > now)?;
        match &self.opens_for {
            Some(s) if s != service => None,
            _ => Some(opens_at),
        }
    }
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

/// Which part of the day a waiter accepts (Iran time: morning is before 12:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartOfDay {
    Morning,
    Afternoon,
    Any,
}

impl PartOfDay {
    pub fn as_str(self) -> &'static str {
        match self {
            PartOfDay::Morning => "morning",
            PartOfDay::Afternoon => "afternoon",
            PartOfDay::Any => "any",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [PartOfDay::Morning, PartOfDay::Afternoon, PartOfDay::Any]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// Whether a slot starting at `start` (Unix seconds) is in this part of the day.
    pub fn fits(self, start: UnixSeconds) -> bool {
        use chrono::Timelike;
        let morning = || {
            let at = chrono::DateTime::from_timestamp(start, 0).unwrap_or_default();
            nobat_domain::time::to_iran(at).hour() < 12
        };
        match self {
            PartOfDay::Any => true,
            PartOfDay::Morning => morning(),
            PartOfDay::Afternoon => !morning(),
        }
    }
}

/// Where a waitlist entry is in its life. `Waiting` and `Offered` are *active* (one per citizen
/// and service, `waitlist_one_active`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitStatus {
    Waiting,
    /// A seat is held for the waiter (`offer_hold_id`) until they accept or decline it.
    Offered,
    /// The waiter got an appointment through the waitlist (`tracking_code`).
    Booked,
    /// The waiter left.
    Left,
    /// An offer expired unanswered: the entry ends.
    Lapsed,
}

impl WaitStatus {
    pub const ALL: [WaitStatus; 5] = [
        WaitStatus::Waiting,
        WaitStatus::Offered,
        WaitStatus::Booked,
        WaitStatus::Left,
        WaitStatus::Lapsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WaitStatus::Waiting => "waiting",
            WaitStatus::Offered => "offered",
            WaitStatus::Booked => "booked",
            WaitStatus::Left => "left",
            WaitStatus::Lapsed => "lapsed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == s)
    }

    pub fn is_active(self) -> bool {
        matches!(self, WaitStatus::Waiting | WaitStatus::Offered)
    }
}

/// The seats a waiter accepts, besides the offices (stored apart, `waitlist_offices`): slots
/// starting in `[earliest_at, latest_at)` in `part_of_day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitLimits {
    pub earliest_at: UnixSeconds,
    pub latest_at: UnixSeconds,
    pub part_of_day: PartOfDay,
}

impl WaitLimits {
    pub fn fits(&self, start: UnixSeconds) -> bool {
        start >= self.earliest_at && start < self.latest_at && self.part_of_day.fits(start)
    }
}

/// A waitlist entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitRow {
    pub id: String,
    pub national_code: String,
    pub service: String,
    pub application_id: String,
    /// The paid payment the waitlist books with (checked at join; a paid payment stays paid).
    pub payment_id: String,
    pub auto_accept: bool,
    pub limits: WaitLimits,
    /// The limits as the applicant gave them (JSON), shown back and compared on a repeated join.
    pub limits_json: String,
    pub status: WaitStatus,
    pub offer_hold_id: Option<String>,
    pub tracking_code: Option<String>,
    pub joined_at: UnixSeconds,
    pub updated_at: UnixSeconds,
}

/// An office a waiting entry accepts (the freeing path finds waiters by office).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryOffice {
    pub entry_id: String,
    pub office_id: String,
    pub joined_at: UnixSeconds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseStatus {
    /// The seat is still taken, until `release_at`.
    Pending,
    /// Handed to a waiter or back to first-come booking.
    Done,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ReleaseStatus::Pending, ReleaseStatus::Done]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// A freed seat kept taken until `release_at` (the anti-trading delay), then offered to the
/// waiters and otherwise freed. New rows have id 0; the database numbers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeatReleaseRow {
    pub id: i64,
    pub slot_id: i64,
    pub release_at: UnixSeconds,
    /// Who gave the seat up, so it is not handed straight back to them.
    pub freed_by: Option<String>,
    pub status: ReleaseStatus,
    pub created_at: UnixSeconds,
}

/// When a slot starts, as the notices say it: the Jalali date with its weekday and the Iran
/// time in Persian digits ("…، ساعت ۰۹:۳۰").
pub fn persian_when(start_at: UnixSeconds) -> String {
    let local = nobat_domain::time::to_iran(
        chrono::DateTime::from_timestamp(start_at, 0).unwrap_or_default(),
    );
    let date = nobat_domain::JalaliDate::from_gregorian(local.date_naive());
    let time = nobat_domain::jalali::to_persian_digits(&local.format("%H:%M").to_string());
    format!("{}، ساعت {time}", date.persian_display_with_weekday())
}

/// The Persian SMS of a waitlist offer or booking.
pub fn waitlist_sms(start_at: UnixSeconds, office_id: &str, booked: Option<&str>) -> String {
    let when = persian_when(start_at);
    match booked {
        Some(code) => format!(
            "از فهرست انتظار برای شما نوبت گرفته شد: {when} در دفتر {office_id}، کد رهگیری {code}."
        ),
        None => format!(
            "یک نوبت خالی برای شما نگه داشته شده است: {when} در دفتر {office_id}. لطفاً آن را بپذیرید یا رد کنید."
        ),
    }
}
