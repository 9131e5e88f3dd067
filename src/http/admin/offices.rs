//! Offices (create, read, edit: stations, weekly hours, Thursday rule, services) and the fee
//! table per year. A cut in stations moves the appointments that no longer fit, like a
//! closure; more stations open more seats at once. Changed hours and Thursday rules shape the
//! days not yet materialised (close a day to take it away now).

// `Problem` is the one error type of the HTTP layer; boxing it would only add noise here.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::closures::{relocate_all, save_offices, MoveDto};
use super::{invalid, office_not_found};
use crate::booking::{RelocationReason, Request, SetCapacity};
use crate::domain::time::iran_date;
use crate::domain::{AreaCode, GeoPoint, Office, OfficeId, OfficeKind, Province, ServiceCode};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::operators::Admin;
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};
use crate::store::CalendarRecord;

/// Most stations an office may have.
pub const STATIONS_MAX: u16 = 200;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfficeCreate {
    pub id: String,
    pub name: String,
    /// `pishkhan`, `civil_registry`, `post` or `mobile_station`.
    pub kind: String,
    /// Province slug, e.g. `tehran`.
    pub province: String,
    pub city: String,
    pub area_code: String,
    pub lat: f64,
    pub lon: f64,
    pub stations: u16,
    /// Service codes; the kind's defaults when absent.
    pub services: Option<Vec<String>>,
    /// Saturday..Friday, each `["08:00", "16:00"]` or `null` (closed); the standard week when absent.
    pub weekly: Option<[Option<(String, String)>; 7]>,
    /// `closed`, `half_day` or `open`.
    pub thursday: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfficeUpdate {
    pub name: Option<String>,
    pub stations: Option<u16>,
    pub services: Option<Vec<String>>,
    pub weekly: Option<[Option<(String, String)>; 7]>,
    pub thursday: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdminOfficeDto {
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
    /// The calendar as stored: weekly hours, Thursday rule, closures, extra openings.
    #[schema(value_type = Object)]
    pub calendar: serde_json::Value,
    /// Appointments moved or cancelled by this change (a cut in stations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<MoveDto>,
}

fn office_dto(o: &Office, moves: Vec<MoveDto>) -> AdminOfficeDto {
    AdminOfficeDto {
        office_id: o.id.to_string(),
        name: o.name.clone(),
        kind: o.kind.as_str().to_string(),
        province: o.province.clone(),
        city: o.city.clone(),
        area_code: o.area_code.to_string(),
        lat: o.location.lat,
        lon: o.location.lon,
        stations: o.stations,
        services: o.services.iter().map(|s| s.as_str().to_string()).collect(),
        calendar: serde_json::to_value(CalendarRecord::from_domain(&o.calendar))
            .unwrap_or_default(),
        moves,
    }
}

fn check_name(name: &str) -> Result<String, Problem> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 200 {
        return Err(invalid(
            "name",
            ProblemCode::InvalidName,
            "a name is 1 to 200 characters",
        ));
    }
    Ok(n.to_string())
}

fn check_stations(n: u16) -> Result<u16, Problem> {
    if n > STATIONS_MAX {
        return Err(invalid(
            "stations",
            ProblemCode::InvalidStations,
            format!("0 to {STATIONS_MAX} stations"),
        ));
    }
    Ok(n)
}

fn parse_services(list: &[String], kind: OfficeKind) -> Result<BTreeSet<ServiceCode>, Problem> {
    let mut out = BTreeSet::new();
    for s in list.iter().take(ServiceCode::ALL.len() + 1) {
        let code = ServiceCode::parse(s)?;
        if !code.info().offered_at(kind) {
            return Err(invalid(
                "services",
                ProblemCode::ServiceNotForKind,
                format!("{code} is not offered at {} offices", kind.as_str()),
            ));
        }
        out.insert(code);
    }
    Ok(out)
}

/// Applies weekly hours and a Thursday rule to an office's calendar, validated.
fn apply_calendar(
    office: &mut Office,
    weekly: Option<[Option<(String, String)>; 7]>,
    thursday: Option<String>,
) -> Result<(), Problem> {
    if weekly.is_none() && thursday.is_none() {
        return Ok(());
    }
    let mut record = CalendarRecord::from_domain(&office.calendar);
    if let Some(w) = weekly {
        record.weekly = w;
    }
    if let Some(t) = thursday {
        record.thursday = t;
    }
    let calendar = record.to_domain().map_err(|e| {
        invalid(
            "weekly",
            ProblemCode::InvalidCalendar,
            e.to_string().replace("corrupt stored data: ", ""),
        )
    })?;
    calendar.validate()?;
    office.calendar = calendar;
    Ok(())
}

/// Creates an office and opens its slots for the booking window.
#[utoipa::path(post, path = "/v1/admin/offices", tag = "admin", security(("admin" = [])),
    request_body = OfficeCreate,
    responses((status = 201, body = AdminOfficeDto), (status = 401, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_office(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<OfficeCreate>,
) -> Result<(StatusCode, Json<AdminOfficeDto>), Problem> {
    let id = OfficeId::parse(&req.id)?;
    let kind = OfficeKind::parse(&req.kind)?;
    if !Province::all().iter().any(|p| p.slug == req.province) {
        return Err(invalid(
            "province",
            ProblemCode::UnknownProvince,
            format!("no province {:?}", req.province),
        ));
    }
    let mut office = Office {
        id: id.clone(),
        name: check_name(&req.name)?,
        kind,
        province: req.province.clone(),
        city: check_name(&req.city).map_err(|_| {
            invalid(
                "city",
                ProblemCode::InvalidCity,
                "a city is 1 to 200 characters",
            )
        })?,
        area_code: AreaCode::parse(&req.area_code)?,
        location: GeoPoint::new(req.lat, req.lon)?,
        stations: check_stations(req.stations)?,
        services: match &req.services {
            Some(list) => parse_services(list, kind)?,
            None => kind.default_services(),
        },
        calendar: crate::domain::calendar::OfficeCalendar::standard(),
    };
    apply_calendar(&mut office, req.weekly.clone(), req.thursday.clone())?;
    if state.directory().get(id.as_str()).is_some() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            ProblemCode::OfficeExists,
            format!("office {id} exists"),
        ));
    }
    save_offices(&state, std::slice::from_ref(&office)).await?;
    let now = state.engine.clock().now();
    crate::store::seed::materialise_slots(
        &state.store,
        std::slice::from_ref(&office),
        &state.holidays.current(),
        iran_date(now),
        state.config.booking_horizon_days,
    )
    .await?;
    state.engine.refresh().await?;
    state
        .store
        .append_event(
            now.timestamp(),
            &admin.actor(),
            "office_created",
            id.as_str(),
            &serde_json::to_value(&req).unwrap_or_default(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(office_dto(&office, Vec::new()))))
}

#[utoipa::path(get, path = "/v1/admin/offices/{office_id}", tag = "admin", security(("admin" = [])),
    params(("office_id" = String, Path)),
    responses((status = 200, body = AdminOfficeDto), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_office(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(office_id): ApiPath<String>,
) -> Result<Json<AdminOfficeDto>, Problem> {
    let directory = state.directory();
    let office = directory
        .get(&office_id)
        .ok_or_else(|| office_not_found(&office_id))?;
    Ok(Json(office_dto(office, Vec::new())))
}

/// Edits an office. Fewer stations: appointments beyond the new capacity of a slot (the last
/// booked first) are moved to the nearest equivalent free slot or cancelled, each applicant
/// notified; more stations: the future slots get the seats at once.
#[utoipa::path(patch, path = "/v1/admin/offices/{office_id}", tag = "admin", security(("admin" = [])),
    request_body = OfficeUpdate, params(("office_id" = String, Path)),
    responses((status = 200, body = AdminOfficeDto), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_office(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(office_id): ApiPath<String>,
    ApiJson(req): ApiJson<OfficeUpdate>,
) -> Result<Json<AdminOfficeDto>, Problem> {
    let old = state
        .directory()
        .get(&office_id)
        .cloned()
        .ok_or_else(|| office_not_found(&office_id))?;
    let mut office = old.clone();
    if let Some(n) = &req.name {
        office.name = check_name(n)?;
    }
    if let Some(s) = req.stations {
        office.stations = check_stations(s)?;
    }
    if let Some(list) = &req.services {
        office.services = parse_services(list, office.kind)?;
    }
    apply_calendar(&mut office, req.weekly.clone(), req.thursday.clone())?;
    if office == old {
        return Ok(Json(office_dto(&office, Vec::new())));
    }
    save_offices(&state, std::slice::from_ref(&office)).await?;
    let actor = admin.actor();
    let now = state.engine.clock().now().timestamp();
    state
        .store
        .append_event(
            now,
            &actor,
            "office_updated",
            &office_id,
            &serde_json::to_value(&req).unwrap_or_default(),
        )
        .await?;
    let moves = if office.stations != old.stations {
        set_stations(&state, &office, &actor).await?
    } else {
        Vec::new()
    };
    state.engine.refresh().await?;
    Ok(Json(office_dto(&office, moves)))
}

/// Gives every future open slot of the office `stations` seats, moving what no longer fits.
async fn set_stations(
    state: &AppState,
    office: &Office,
    actor: &str,
) -> Result<Vec<MoveDto>, Problem> {
    let now = state.engine.clock().now().timestamp();
    let far = i64::MAX / 2;
    let id = office.id.as_str();
    let target = i64::from(office.stations);
    let holidays = state.holidays.current();
    let open = |s: &crate::booking::SlotRow| {
        office
            .calendar
            .hours_on(iran_date(crate::http::v1::utc(s.start_at)), &holidays)
            .is_some()
    };
    let slots = state.store.office_slots_between(id, now, far).await?;
    // Seats that fit first, so the moves below land on the new capacities.
    let fitting: Vec<Request> = slots
        .iter()
        .filter(|s| open(s) && s.taken <= target && s.capacity != target)
        .map(|s| {
            Request::SetCapacity(SetCapacity {
                slot_id: s.id,
                capacity: target,
                actor: actor.to_string(),
            })
        })
        .collect();
    for a in state.engine.submit_many(fitting).await {
        a?;
    }
    state.engine.refresh().await?;
    let overfull: HashMap<i64, i64> = slots
        .iter()
        .filter(|s| open(s) && s.taken > target)
        .map(|s| (s.id, s.taken - target))
        .collect();
    if overfull.is_empty() {
        return Ok(Vec::new());
    }
    let booked = state.store.office_booked_between(id, now, far).await?;
    let mut by_slot: BTreeMap<i64, Vec<_>> = BTreeMap::new();
    for a in booked
        .into_iter()
        .filter(|a| overfull.contains_key(&a.slot_id))
    {
        by_slot.entry(a.slot_id).or_default().push(a);
    }
    let mut affected = Vec::new();
    for (slot_id, mut list) in by_slot {
        // The last to book is the first to move.
        list.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then(b.tracking_code.cmp(&a.tracking_code))
        });
        affected.extend(list.into_iter().take(overfull[&slot_id] as usize));
    }
    affected.sort_by(|a, b| {
        a.start_at
            .cmp(&b.start_at)
            .then(a.created_at.cmp(&b.created_at))
    });
    let key = format!("capacity:{id}:{}:{now}", office.stations);
    let excluded = |s: &crate::reserve::SlotView| overfull.contains_key(&s.id);
    let moves = relocate_all(
        state,
        affected,
        now,
        &excluded,
        RelocationReason::CapacityCut,
        &key,
        actor,
    )
    .await?;
    let slots = state.store.office_slots_between(id, now, far).await?;
    let rest: Vec<Request> = slots
        .iter()
        .filter(|s| overfull.contains_key(&s.id))
        .map(|s| {
            Request::SetCapacity(SetCapacity {
                slot_id: s.id,
                capacity: s.taken.max(target),
                actor: actor.to_string(),
            })
        })
        .collect();
    for a in state.engine.submit_many(rest).await {
        a?;
    }
    Ok(moves)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeeTableDto {
    pub jalali_year: i64,
    /// Service code → fee in rials.
    pub fees: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeeTableRequest {
    /// Service code → fee in rials (0 to 10^12).
    pub fees: BTreeMap<String, i64>,
}

fn check_year(year: i64) -> Result<i64, Problem> {
    if !(1390..=1500).contains(&year) {
        return Err(invalid(
            "jalali_year",
            ProblemCode::InvalidYear,
            "a Jalali year from 1390 to 1500",
        ));
    }
    Ok(year)
}

#[utoipa::path(get, path = "/v1/admin/fees/{jalali_year}", tag = "admin", security(("admin" = [])),
    params(("jalali_year" = i64, Path)),
    responses((status = 200, body = FeeTableDto), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn get_fees(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(year): ApiPath<i64>,
) -> Result<Json<FeeTableDto>, Problem> {
    let year = check_year(year)?;
    let fees = state.store.fees_of_year(year).await?.into_iter().collect();
    Ok(Json(FeeTableDto {
        jalali_year: year,
        fees,
    }))
}

/// Sets fees of a year (all validated before any is written). They apply at once, to the
/// next payment, on every node (within a poll, `NOBAT_CONFIG_POLL_MS`).
#[utoipa::path(put, path = "/v1/admin/fees/{jalali_year}", tag = "admin", security(("admin" = [])),
    request_body = FeeTableRequest, params(("jalali_year" = i64, Path)),
    responses((status = 200, body = FeeTableDto), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn put_fees(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(year): ApiPath<i64>,
    ApiJson(req): ApiJson<FeeTableRequest>,
) -> Result<Json<FeeTableDto>, Problem> {
    let year = check_year(year)?;
    if req.fees.is_empty() || req.fees.len() > ServiceCode::ALL.len() {
        return Err(invalid(
            "fees",
            ProblemCode::InvalidFees,
            "one fee per service",
        ));
    }
    let mut checked = Vec::new();
    for (service, fee) in &req.fees {
        let code = ServiceCode::parse(service)?;
        if !(0..=1_000_000_000_000).contains(fee) {
            return Err(invalid(
                "fees",
                ProblemCode::InvalidFee,
                format!("{service}: a fee is 0 to 10^12 rials"),
            ));
        }
        checked.push((code, *fee));
    }
    let now = state.engine.clock().now().timestamp();
    for (code, fee) in checked {
        state
            .store
            .set_fee(year, code.as_str(), fee, &admin.actor(), now)
            .await?;
    }
    // In force at once here; the other nodes reload on their next poll.
    crate::http::live::reload_fees(&state).await?;
    let fees = state.store.fees_of_year(year).await?.into_iter().collect();
    Ok(Json(FeeTableDto {
        jalali_year: year,
        fees,
    }))
}
