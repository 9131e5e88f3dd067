//! Wire types of the applicant API. They live at the edge so the wire format does not freeze
//! the domain's internals; each converts into domain types with `TryFrom`/parse at the handler.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// Ten digits; Persian or Arabic-Indic digits are accepted.
    pub national_code: String,
    /// e.g. `ج12/345678`.
    pub birth_certificate_serial: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionResponse {
    pub token: String,
    /// RFC 3339, Iran time.
    pub expires_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceDto {
    pub code: String,
    pub name_fa: String,
    pub name_en: String,
    pub duration_minutes: u16,
    /// Fee in rials for the current Jalali year (`None` before the first published table).
    pub fee_rials: Option<u64>,
    pub jalali_year: i32,
    pub office_kinds: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonalDto {
    pub national_code: String,
    pub birth_certificate_serial: String,
    pub first_name: String,
    pub last_name: String,
    /// `female` or `male`.
    pub gender: String,
    #[serde(default)]
    pub religion: Option<String>,
    /// `YYYY-MM-DD` (Gregorian).
    pub birth_date: String,
    /// ISO 3166-1 alpha-2, `IR` for Iranian nationals.
    pub nationality: String,
    pub birth_certificate_has_photo: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonDto {
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub national_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChildDto {
    pub first_name: String,
    #[serde(default)]
    pub national_code: Option<String>,
    pub birth_date: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormDto {
    pub personal: PersonalDto,
    pub father: PersonDto,
    pub mother: PersonDto,
    #[serde(default)]
    pub spouse: Option<PersonDto>,
    #[serde(default)]
    pub children: Vec<ChildDto>,
    pub mobile: String,
    pub postal_code: String,
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    pub service: String,
    pub form: FormDto,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EligibilityDto {
    pub eligible: bool,
    pub failed: Vec<RuleDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RuleDto {
    pub code: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplicationResponse {
    pub application_id: String,
    pub service: String,
    pub eligibility: EligibilityDto,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub application_id: String,
    /// Sandbox gateway only: `approve` (default) or `decline`.
    #[serde(default)]
    pub sandbox_outcome: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PaymentResponse {
    pub payment_id: String,
    pub application_id: String,
    pub amount_rials: i64,
    /// `paid` or `declined`.
    pub status: String,
    pub gateway: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SlotDto {
    /// RFC 3339, Iran time (`+03:30`).
    pub start: String,
    pub duration_minutes: i64,
    /// Jalali date `YYYY-MM-DD`.
    pub jalali_date: String,
    /// What a person reads, e.g. `شنبه ۱ مهر ۱۴۰۳، ۰۸:۰۰`.
    pub jalali_display: String,
    pub capacity: i64,
    pub free: i64,
    /// RFC 3339: when the slot's seats open for booking (a release wave not open yet); its
    /// free seats cannot be held or booked before. Absent once they are open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
    /// With `opens_at`: the one service the wave holds the seats back from (they are open to
    /// the others); absent: every service. A listing for a service shows only the waves
    /// that hold its seats back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_for: Option<String>,
    /// The slot's seats are in a ballot: not bookable first come; assigned at its close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_ballot: Option<InBallotDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InBallotDto {
    pub ballot_id: String,
    /// RFC 3339: the close, when the seats are assigned.
    pub closes_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfficeDto {
    pub office_id: String,
    pub name: String,
    pub kind: String,
    pub province: String,
    pub city: String,
    pub area_code: String,
    pub lat: f64,
    pub lon: f64,
    pub stations: u16,
    pub services: Vec<String>,
    pub distance_km: Option<f64>,
    /// Free seats from now to the end of the booking window (seats of a release wave not
    /// yet open included).
    pub free_seats: i64,
    /// The first slots with a seat bookable now: slots of a release wave not yet open are
    /// left out (the office's slot listing shows them with their `opens_at`).
    pub earliest_free: Vec<SlotDto>,
}

/// A hold in a slot the client names (`office_id` and `start`), or in the seat the engine
/// picks (`pick`): exactly one of the two forms.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub application_id: String,
    /// With `start`; not with `pick`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_id: Option<String>,
    /// RFC 3339 start of a slot, e.g. `2024-09-22T08:00:00+03:30`. With `office_id`; not with
    /// `pick`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Let the engine choose the seat; instead of `office_id` and `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<PickDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HoldResponse {
    pub hold_id: String,
    pub office_id: String,
    pub start: String,
    pub jalali_date: String,
    pub expires_at: String,
    /// The auto-pick's figures, when the engine chose the seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<PickedDto>,
}

/// Which seat the engine may pick: near a point (`near`, within `max_km`) or at one of a few
/// offices (`office_ids`), exactly one of the two; between two dates; in a part of the day. The
/// engine gives the free seat of least cost: distance in km plus the wait (a number of km per
/// day from today, 5 by default), ties by start, then office id.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PickDto {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub near: Option<NearDto>,
    /// With `near`: how far the office may be, in km (default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 300)]
    pub max_km: Option<f64>,
    /// Up to 5 office ids, instead of `near`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 5)]
    pub office_ids: Option<Vec<String>>,
    /// `YYYY-MM-DD` (Gregorian, Iran's calendar day); default today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub earliest_date: Option<String>,
    /// `YYYY-MM-DD`, the last day accepted; default the end of the booking window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub latest_date: Option<String>,
    /// `morning` (a start before 12:00 Iran time), `afternoon` or `any` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part_of_day: Option<PartOfDayDto>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PartOfDayDto {
    Morning,
    Afternoon,
    Any,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NearDto {
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
}

/// Why the engine chose this seat.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PickedDto {
    /// From the point asked for; `null` when offices were named without one.
    pub distance_km: Option<f64>,
    /// distance + wait per day × days from today, in km.
    pub cost_km: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub payment_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookRequest {
    pub application_id: String,
    /// With `start`; not with `pick`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_id: Option<String>,
    /// With `office_id`; not with `pick`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Let the engine choose the seat; instead of `office_id` and `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<PickDto>,
    pub payment_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    pub office_id: String,
    pub start: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OfficeRefDto {
    pub office_id: String,
    pub name: String,
    pub city: String,
    pub province: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppointmentDto {
    pub tracking_code: String,
    /// The tracking code grouped for reading aloud, e.g. `ABCD-EFGH-JKMN-PQRS`.
    pub tracking_code_display: String,
    pub status: String,
    pub service: String,
    pub service_name_fa: String,
    pub office: OfficeRefDto,
    pub start: String,
    pub jalali_date: String,
    pub jalali_display: String,
    pub application_id: String,
    pub payment_id: Option<String>,
    /// The national code, masked.
    pub national_code_masked: String,
    /// The auto-pick's figures, when the engine chose the seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<PickedDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntryDto {
    pub at: String,
    pub jalali_date: String,
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    pub tracking_code: String,
    pub status: String,
    pub office_id: String,
    pub start: String,
    pub jalali_date: String,
    /// The card's ready date (ISO), once biometrics are taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_date: Option<String>,
    /// The card-pickup visit booked at enrolment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup: Option<PickupDto>,
    pub history: Vec<HistoryEntryDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PickupDto {
    pub tracking_code: String,
    pub status: String,
    pub start: String,
    pub jalali_date: String,
}
