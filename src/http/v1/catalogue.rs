//! Read-only catalogue: services, offices, slots. Served from memory (the office directory and
//! the availability view), never from the writer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{Duration, NaiveDate, NaiveTime};
use serde::Deserialize;
use utoipa::IntoParams;

use super::answers;
use super::dto::{OfficeDto, ServiceDto, SlotDto};
use super::{iran_rfc3339, JalaliDays};
use crate::booking::UnixSeconds;
use crate::domain::jalali::JalaliDate;
use crate::domain::time::{iran_date, iran_instant};
use crate::domain::{AreaCode, GeoPoint, Office, OfficeId, Province, Service, ServiceCode};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};
use crate::reserve::availability::Rendered;

/// Most offices in one listing.
const OFFICES_LIMIT_MAX: usize = 100;
/// Longest slot listing, in days.
const SLOT_RANGE_DAYS_MAX: i64 = 31;
/// Earliest free slots shown per office.
const EARLIEST_FREE_PER_OFFICE: usize = 3;

/// The service catalogue with this year's fees.
#[utoipa::path(get, path = "/v1/services", tag = "applicant", responses((status = 200, body = [ServiceDto])))]
pub async fn list_services(State(state): State<AppState>) -> Json<Vec<ServiceDto>> {
    let today = iran_date(state.engine.clock().now());
    let year = JalaliDate::from_gregorian(today).year();
    Json(
        Service::catalogue()
            .iter()
            .map(|s| ServiceDto {
                code: s.code.to_string(),
                name_fa: s.name_fa.clone(),
                name_en: s.name_en.clone(),
                duration_minutes: s.duration_minutes,
                fee_rials: state.fees.fee_rials(s.code, year),
                jalali_year: year,
                office_kinds: s.office_kinds.iter().map(|k| k.to_string()).collect(),
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OfficesQuery {
    /// Landline area code, e.g. `021`.
    pub area_code: Option<String>,
    /// Province slug, English or Persian name.
    pub province: Option<String>,
    /// `lat,lon`: sort nearest first and report `distance_km`.
    pub near: Option<String>,
    pub service: Option<String>,
    /// At most 100; default 20.
    pub limit: Option<usize>,
}

fn parse_near(s: &str) -> Result<GeoPoint, Problem> {
    let bad = || {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidNear,
            "near is `lat,lon` in degrees, e.g. 35.69,51.39",
        )
    };
    let (lat, lon) = s.split_once(',').ok_or_else(bad)?;
    let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
    let lon: f64 = lon.trim().parse().map_err(|_| bad())?;
    GeoPoint::new(lat, lon).map_err(|_| bad())
}

/// Offices by area code, province or proximity, with their earliest free slots. Without `near`
/// they are listed by free capacity, most first.
#[utoipa::path(get, path = "/v1/offices", tag = "applicant", params(OfficesQuery),
    responses((status = 200, body = [OfficeDto]), (status = 422, body = Problem)))]
pub async fn list_offices(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    ApiQuery(q): ApiQuery<OfficesQuery>,
) -> Result<Response, Problem> {
    let now = state.engine.clock().now().timestamp();
    let directory = state.directory();
    let availability = state.engine.availability();
    // Only answers to valid queries are kept: a kept one needs no checking again.
    let key = format!("offices?{}", raw.as_deref().unwrap_or_default());
    if let Some(body) = state.answers.get(&key, &directory, availability, now) {
        return Ok(answers::json(body));
    }
    let area_code = q.area_code.as_deref().map(AreaCode::parse).transpose()?;
    let province = match q.province.as_deref() {
        Some(p) => Some(
            Province::find(p)
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        ProblemCode::UnknownProvince,
                        format!("no province {p:?}"),
                    )
                })?
                .slug
                .clone(),
        ),
        None => None,
    };
    let near = q.near.as_deref().map(parse_near).transpose()?;
    let service = q.service.as_deref().map(ServiceCode::parse).transpose()?;
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > OFFICES_LIMIT_MAX {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidLimit,
            format!("limit is 1 to {OFFICES_LIMIT_MAX}"),
        ));
    }
    let before = availability.epoch();
    let matches = |o: &Office| {
        area_code.is_none_or(|a| o.area_code == a)
            && province.as_deref().is_none_or(|p| o.province == p)
            && service.is_none_or(|s| o.offers(s))
    };
    // Only the offices returned are described and totalled: a national search matches
    // thousands. By free capacity they are read off the view's ranking, nearest first off the
    // directory's partial sort; neither visits a slot of an office it does not return.
    let picked: Vec<(&Office, Option<f64>, i64)> = match near {
        Some(point) => directory
            .nearest(point, limit, matches)
            .into_iter()
            .map(|(o, d)| (o, Some(d), availability.free_seats(o.id.as_str(), now)))
            .collect(),
        None => {
            let top =
                availability.top_offices(now, limit, |id| directory.get(id).is_some_and(matches));
            // The ranking holds the offices with slots; with fewer than `limit` of them, or
            // ties at zero, offices without slots (zero seats) may belong in the answer too.
            if top.len() == limit && top.last().is_some_and(|(_, free)| *free > 0) {
                top.iter()
                    .filter_map(|(id, free)| directory.get(id).map(|o| (o, None, *free)))
                    .collect()
            } else {
                let mut rows: Vec<_> = directory
                    .all()
                    .iter()
                    .filter(|o| matches(o))
                    .map(|o| (o, None, availability.free_seats(o.id.as_str(), now)))
                    .collect();
                rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.id.cmp(&b.0.id)));
                rows.truncate(limit);
                rows
            }
        }
    };
    // The answer is `[OfficeDto]`, written in two parts per office that listings share: the
    // office's own fields (rendered once per directory) and its seats (re-rendered only when
    // its free seats or earliest free slots changed); the distance goes between them.
    // Ranked by free seats, the answer also holds while no office outside it gains seats.
    let stamp = availability.stamp(
        before,
        now,
        near.is_none(),
        picked.iter().map(|(o, _, _)| o.id.as_str()),
    );
    let mut days = JalaliDays::default();
    let mut body = String::with_capacity(1_024 * picked.len().max(1));
    body.push('[');
    for (o, distance_km, free_seats) in picked {
        let Some((_, memo)) = directory.get_with_memo(o.id.as_str()) else {
            continue;
        };
        if body.len() > 1 {
            body.push(',');
        }
        body.push_str(memo.head.get_or_init(|| office_head(o)));
        body.push_str(",\"distance_km\":");
        let distance_km = distance_km.map(|d| (d * 100.0).round() / 100.0);
        body.push_str(&serde_json::to_string(&distance_km).expect("a number or null"));
        let earliest = availability.earliest_free_for(
            o.id.as_str(),
            now,
            EARLIEST_FREE_PER_OFFICE,
            service.map(ServiceCode::as_str),
        );
        let key: Vec<i64> = std::iter::once(free_seats)
            .chain(earliest.iter().flat_map(|s| [s.id, s.capacity, s.free()]))
            .collect();
        let mut seats = memo.seats.lock().unwrap_or_else(|p| p.into_inner());
        match &*seats {
            Some((k, rendered)) if *k == key => body.push_str(rendered),
            _ => {
                let slots: Vec<SlotDto> = earliest.iter().map(|s| days.slot_dto(s)).collect();
                let rendered = format!(
                    ",\"free_seats\":{free_seats},\"earliest_free\":{}}}",
                    serde_json::to_string(&slots).expect("SlotDto serialises")
                );
                body.push_str(&rendered);
                *seats = Some((key, rendered));
            }
        }
    }
    body.push(']');
    let body = Bytes::from(body);
    state.answers.keep(&key, &directory, stamp, body.clone());
    Ok(answers::json(body))
}

/// An office's own fields of its `OfficeDto`, in their order, without the closing brace.
fn office_head(o: &Office) -> String {
    #[derive(serde::Serialize)]
    struct Head<'a> {
        office_id: &'a str,
        name: &'a str,
        kind: String,
        province: &'a str,
        city: &'a str,
        area_code: String,
        lat: f64,
        lon: f64,
        stations: u16,
        services: Vec<String>,
    }
    let mut head = serde_json::to_string(&Head {
        office_id: o.id.as_str(),
        name: &o.name,
        kind: o.kind.to_string(),
        province: &o.province,
        city: &o.city,
        area_code: o.area_code.to_string(),
        lat: o.location.lat,
        lon: o.location.lon,
        stations: o.stations,
        services: o.services.iter().map(|s| s.to_string()).collect(),
    })
    .expect("strings and numbers serialise");
    head.pop();
    head
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlotsQuery {
    /// `YYYY-MM-DD` (Gregorian, Iran date); default today.
    pub from: Option<String>,
    /// `YYYY-MM-DD` inclusive; default `from` + 6 days; at most 31 days after `from`.
    pub to: Option<String>,
    pub service: Option<String>,
}

fn parse_date(s: &str, field: &str) -> Result<NaiveDate, Problem> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidDate,
            format!("{field} is YYYY-MM-DD"),
        )
    })
}

/// The slots of an office between two dates, with free seats.
#[utoipa::path(get, path = "/v1/offices/{office_id}/slots", tag = "applicant",
    params(("office_id" = String, Path), SlotsQuery),
    responses((status = 200, body = [SlotDto]), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_slots(
    State(state): State<AppState>,
    ApiPath(office_id): ApiPath<String>,
    RawQuery(raw): RawQuery,
    ApiQuery(q): ApiQuery<SlotsQuery>,
) -> Result<Response, Problem> {
    let clock_now = state.engine.clock().now();
    let now = clock_now.timestamp();
    let directory = state.directory();
    let availability = state.engine.availability();
    // Only answers to valid requests are kept: a kept one needs no checking again.
    let key = format!("slots/{office_id}?{}", raw.as_deref().unwrap_or_default());
    if let Some(body) = state.answers.get(&key, &directory, availability, now) {
        return Ok(answers::json(body));
    }
    let id = OfficeId::parse(&office_id)?;
    let office = directory.get(id.as_str()).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::OfficeNotFound,
            format!("no office {id}"),
        )
    })?;
    let service = q.service.as_deref().map(ServiceCode::parse).transpose()?;
    if let Some(service) = service {
        if !office.offers(service) {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::ServiceNotOffered,
                format!("office {id} does not offer {service}"),
            ));
        }
    }
    let today = iran_date(clock_now);
    let from = q
        .from
        .as_deref()
        .map(|s| parse_date(s, "from"))
        .transpose()?
        .unwrap_or(today);
    let to =
        q.to.as_deref()
            .map(|s| parse_date(s, "to"))
            .transpose()?
            .unwrap_or(from + Duration::days(6));
    if to < from || (to - from).num_days() > SLOT_RANGE_DAYS_MAX {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::InvalidRange,
            format!("to must be on or after from, at most {SLOT_RANGE_DAYS_MAX} days later"),
        ));
    }
    let start = iran_instant(from, NaiveTime::MIN)?.timestamp();
    let end = iran_instant(to + Duration::days(1), NaiveTime::MIN)?.timestamp();
    let before = availability.epoch();
    // The dates default to today's: the answer holds until midnight at most.
    let midnight = iran_instant(today + Duration::days(1), NaiveTime::MIN)?.timestamp();
    let stamp = availability
        .stamp(before, now, false, [id.as_str()])
        .map(|mut s| {
            s.until = s.until.min(midnight);
            s
        });
    // Each office-day is rendered once and its JSON reused until the day's seats change (the
    // view hands out a fresh cell then) or until the next of its slots starts: a started slot
    // shows no free seat whatever it has left, so a day that has begun is rendered again at
    // each slot's start, not per request.
    let mut days = JalaliDays::default();
    let mut render = |first: UnixSeconds, last: UnixSeconds| {
        let mut out = Vec::new();
        let mut next_start = UnixSeconds::MAX;
        for s in availability.range(id.as_str(), first, last + 1, usize::MAX) {
            let free = if s.start_at <= now {
                0
            } else {
                next_start = next_start.min(s.start_at);
                s.free()
            };
            if !out.is_empty() {
                out.push(b',');
            }
            write_listed_slot(&state, &mut out, &mut days, &s, free, now, service);
        }
        (
            String::from_utf8(out).expect("serde_json writes UTF-8"),
            next_start,
        )
    };
    // The days' texts first, then the body in one allocation: grown by appending, a week's
    // 30 KB was copied again at each doubling.
    let mut fragments: Vec<DayText> = Vec::with_capacity(8);
    for page in availability.day_pages(id.as_str(), start, end, now) {
        let (first, last) = (page.first_start.max(start), page.last_start.min(end - 1));
        // A day's shared rendering is for any service; a listing for one service renders a
        // day that has a one-service wave itself.
        let whole = (first, last) == (page.first_start, page.last_start)
            && !(service.is_some() && page.service_bound);
        let fragment = match whole.then(|| page.rendering.get(now)).flatten() {
            Some(kept) => DayText::Kept(kept),
            None => {
                let (fresh, valid_before) = render(first, last);
                // Kept for the next reader while the process keeps few enough (a rendering
                // set by another reader meanwhile is as good).
                if let Some(kept) = whole
                    .then(|| Rendered::keep(fresh.clone(), valid_before))
                    .flatten()
                {
                    page.rendering.set(kept);
                }
                DayText::Fresh(fresh)
            }
        };
        if !fragment.as_str().is_empty() {
            fragments.push(fragment);
        }
    }
    let texts = fragments.iter().map(DayText::as_str);
    let mut body = String::with_capacity(2 + texts.clone().map(|t| t.len() + 1).sum::<usize>());
    body.push('[');
    for (i, text) in texts.enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(text);
    }
    body.push(']');
    let body = Bytes::from(body);
    state.answers.keep(&key, &directory, stamp, body.clone());
    Ok(answers::json(body))
}

/// One office-day's part of a slot listing: the day's kept rendering, or one made for this
/// request.
enum DayText {
    Kept(Arc<Rendered>),
    Fresh(String),
}

impl DayText {
    fn as_str(&self) -> &str {
        match self {
            DayText::Kept(kept) => kept.as_str(),
            DayText::Fresh(fresh) => fresh,
        }
    }
}

/// Appends one slot of a listing at `now` with `free` seats shown, for `service` if given.
fn write_listed_slot(
    state: &AppState,
    out: &mut Vec<u8>,
    days: &mut JalaliDays,
    s: &crate::reserve::SlotView,
    free: i64,
    now: UnixSeconds,
    service: Option<ServiceCode>,
) {
    // For a service, only a wave that holds the seats back from it (a wave for another
    // service leaves them open to this one); for any service, every pending wave, with the
    // one service it is for, if so.
    let service = service.map(ServiceCode::as_str);
    let opens = s.opens_after_for(now, service);
    let withheld = crate::reserve::ballot::withheld(s.opens_at);
    if opens.is_none() && !withheld {
        super::write_plain_slot_json(out, s, free);
        return;
    }
    let mut dto = days.slot_dto(s);
    dto.free = free;
    if let Some(opens) = opens {
        dto.opens_at = Some(iran_rfc3339(opens));
        dto.opens_for = s.opens_for.as_deref().map(str::to_string);
    }
    if withheld {
        dto.opens_at = None;
        dto.opens_for = None;
        dto.in_ballot = state
            .engine
            .ballot_of_slot(&s.office_id, s.start_at)
            .map(|m| super::dto::InBallotDto {
                ballot_id: m.ballot_id,
                closes_at: iran_rfc3339(m.closes_at),
            });
    }
    // A struct of strings and integers always serialises.
    serde_json::to_writer(out, &dto).expect("SlotDto serialises");
}
