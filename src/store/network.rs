//! The office network, service catalogue, tariffs and slots in storage.

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{on_pool, Store, StoreError};
use crate::domain::calendar::{
    Closure, DayHours, ExtraOpening, OfficeCalendar, ThursdayOverride, ThursdayRule, WeeklyHours,
};
use crate::domain::{
    AreaCode, FeeSchedule, GeoPoint, Office, OfficeId, OfficeKind, Service, ServiceCode,
};

/// How an office's calendar is stored (JSON in `offices.calendar_json`). A storage format of its
/// own, so that the domain types can change without breaking stored rows unnoticed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalendarRecord {
    /// Saturday..Friday; `null` is closed. Times as `HH:MM`.
    pub weekly: [Option<(String, String)>; 7],
    pub thursday: String,
    #[serde(default)]
    pub thursday_overrides: Vec<(NaiveDate, NaiveDate, String)>,
    #[serde(default)]
    pub closures: Vec<(NaiveDate, NaiveDate, String)>,
    #[serde(default)]
    pub extra_openings: Vec<(NaiveDate, String, String)>,
    pub slot_minutes: u16,
}

fn hhmm(t: NaiveTime) -> String {
    t.format("%H:%M").to_string()
}

fn parse_hhmm(s: &str) -> Result<NaiveTime, StoreError> {
    NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|e| StoreError::corrupt(format!("time {s:?}: {e}")))
}

fn thursday_str(rule: ThursdayRule) -> &'static str {
    match rule {
        ThursdayRule::Closed => "closed",
        ThursdayRule::HalfDay => "half_day",
        ThursdayRule::Open => "open",
    }
}

fn parse_thursday(s: &str) -> Result<ThursdayRule, StoreError> {
    match s {
        "closed" => Ok(ThursdayRule::Closed),
        "half_day" => Ok(ThursdayRule::HalfDay),
        "open" => Ok(ThursdayRule::Open),
        other => Err(StoreError::corrupt(format!("thursday rule {other:?}"))),
    }
}

impl CalendarRecord {
    pub fn from_domain(c: &OfficeCalendar) -> Self {
        Self {
            weekly: c
                .weekly
                .days
                .map(|d| d.map(|h| (hhmm(h.open), hhmm(h.close)))),
            thursday: thursday_str(c.thursday).to_string(),
            thursday_overrides: c
                .thursday_overrides
                .iter()
                .map(|o| (o.from, o.to, thursday_str(o.rule).to_string()))
                .collect(),
            closures: c
                .closures
                .iter()
                .map(|x| (x.from, x.to, x.reason.clone()))
                .collect(),
            extra_openings: c
                .extra_openings
                .iter()
                .map(|x| (x.date, hhmm(x.hours.open), hhmm(x.hours.close)))
                .collect(),
            slot_minutes: c.slot_minutes,
        }
    }

    pub fn to_domain(&self) -> Result<OfficeCalendar, StoreError> {
        let mut days = [None; 7];
        for (slot, day) in days.iter_mut().zip(&self.weekly) {
            if let Some((open, close)) = day {
                *slot = Some(DayHours {
                    open: parse_hhmm(open)?,
                    close: parse_hhmm(close)?,
                });
            }
        }
        Ok(OfficeCalendar {
            weekly: WeeklyHours { days },
            thursday: parse_thursday(&self.thursday)?,
            thursday_overrides: self
                .thursday_overrides
                .iter()
                .map(|(from, to, rule)| {
                    Ok(ThursdayOverride {
                        from: *from,
                        to: *to,
                        rule: parse_thursday(rule)?,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            closures: self
                .closures
                .iter()
                .map(|(from, to, reason)| Closure {
                    from: *from,
                    to: *to,
                    reason: reason.clone(),
                })
                .collect(),
            extra_openings: self
                .extra_openings
                .iter()
                .map(|(date, open, close)| {
                    Ok(ExtraOpening {
                        date: *date,
                        hours: DayHours {
                            open: parse_hhmm(open)?,
                            close: parse_hhmm(close)?,
                        },
                    })
                })
                .collect::<Result<_, StoreError>>()?,
            slot_minutes: self.slot_minutes,
        })
    }
}

/// One row of `offices`, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct OfficeRecord {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub province: String,
    pub city: String,
    pub area_code: String,
    pub lat: f64,
    pub lon: f64,
    pub stations: i64,
    pub services: String,
    pub calendar_json: String,
}

impl OfficeRecord {
    pub fn from_domain(o: &Office) -> Self {
        Self {
            id: o.id.to_string(),
            name: o.name.clone(),
            kind: o.kind.as_str().to_string(),
            province: o.province.clone(),
            city: o.city.clone(),
            area_code: o.area_code.to_string(),
            lat: o.location.lat,
            lon: o.location.lon,
            stations: i64::from(o.stations),
            services: o
                .services
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(";"),
            calendar_json: serde_json::to_string(&CalendarRecord::from_domain(&o.calendar))
                .expect("a calendar record always serialises"),
        }
    }

    /// Decodes a stored row; a failure means the row was edited by hand or a defect wrote it.
    pub fn to_domain(&self) -> Result<Office, StoreError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::corrupt(format!("office {}: {what}: {e}", self.id))
        };
        let services = self
            .services
            .split(';')
            .filter(|s| !s.is_empty())
            .map(ServiceCode::parse)
            .collect::<Result<BTreeSet<_>, _>>()
            .map_err(|e| corrupt("services", &e))?;
        let calendar: CalendarRecord =
            serde_json::from_str(&self.calendar_json).map_err(|e| corrupt("calendar", &e))?;
        Ok(Office {
            id: OfficeId::parse(&self.id).map_err(|e| corrupt("id", &e))?,
            name: self.name.clone(),
            kind: OfficeKind::parse(&self.kind).map_err(|e| corrupt("kind", &e))?,
            province: self.province.clone(),
            city: self.city.clone(),
            area_code: AreaCode::parse(&self.area_code).map_err(|e| corrupt("area code", &e))?,
            location: GeoPoint::new(self.lat, self.lon).map_err(|e| corrupt("location", &e))?,
            stations: u16::try_from(self.stations).map_err(|e| corrupt("stations", &e))?,
            services,
            calendar: calendar.to_domain()?,
        })
    }
}

/// Rows per multi-row INSERT: keeps statements under both backends' parameter limits
/// (SQLite 32,766, PostgreSQL 65,535) with room to spare.
const INSERT_CHUNK_ROWS: usize = 500;

impl Store {
    /// Inserts or replaces offices, in one transaction.
    pub async fn upsert_offices(
        &self,
        offices: &[Office],
        now_unix: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO offices (id, name, kind, province, city, area_code, lat, lon, stations, services, calendar_json, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, province = excluded.province, \
             city = excluded.city, area_code = excluded.area_code, lat = excluded.lat, lon = excluded.lon, \
             stations = excluded.stations, services = excluded.services, calendar_json = excluded.calendar_json, \
             updated_at = excluded.updated_at";
        on_pool!(self, pool, q = SQL => {
            let mut tx = pool.begin().await?;
            for o in offices {
                let r = OfficeRecord::from_domain(o);
                sqlx::query(q)
                    .bind(&r.id).bind(&r.name).bind(&r.kind).bind(&r.province).bind(&r.city)
                    .bind(&r.area_code).bind(r.lat).bind(r.lon).bind(r.stations).bind(&r.services)
                    .bind(&r.calendar_json).bind(now_unix)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn office_count(&self) -> Result<i64, StoreError> {
        on_pool!(self, pool, q = "SELECT COUNT(*) FROM offices" => {
            Ok(sqlx::query_scalar::<_, i64>(q).fetch_one(pool).await?)
        })
    }

    pub async fn offices(&self) -> Result<Vec<Office>, StoreError> {
        const SQL: &str = "SELECT id, name, kind, province, city, area_code, lat, lon, stations, services, calendar_json FROM offices ORDER BY id";
        let records: Vec<OfficeRecord> = on_pool!(self, pool, q = SQL => {
            sqlx::query(q).fetch_all(pool).await?.iter().map(|row| OfficeRecord {
                id: row.get(0), name: row.get(1), kind: row.get(2), province: row.get(3), city: row.get(4),
                area_code: row.get(5), lat: row.get(6), lon: row.get(7), stations: row.get(8),
                services: row.get(9), calendar_json: row.get(10),
            }).collect()
        });
        records.iter().map(OfficeRecord::to_domain).collect()
    }

    /// Writes the service catalogue and every year of the fee schedule (idempotent).
    pub async fn sync_catalogue(
        &self,
        services: &[Service],
        fees: &FeeSchedule,
    ) -> Result<(), StoreError> {
        const SERVICE_SQL: &str = "INSERT INTO services (code, name_en, name_fa, duration_minutes, office_kinds) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (code) DO UPDATE SET name_en = excluded.name_en, name_fa = excluded.name_fa, \
             duration_minutes = excluded.duration_minutes, office_kinds = excluded.office_kinds";
        const TARIFF_SQL: &str =
            "INSERT INTO tariffs (jalali_year, service, fee_rials) VALUES ($1, $2, $3) \
             ON CONFLICT (jalali_year, service) DO UPDATE SET fee_rials = excluded.fee_rials";
        on_pool!(self, pool, q = SERVICE_SQL => {
            let tariff_sql = match self { Store::Sqlite(_) => super::sqlite_sql(TARIFF_SQL), Store::Postgres(_) => TARIFF_SQL.to_string() };
            let mut tx = pool.begin().await?;
            for s in services {
                let kinds = s.office_kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(";");
                sqlx::query(q).bind(s.code.as_str()).bind(&s.name_en).bind(&s.name_fa)
                    .bind(i64::from(s.duration_minutes)).bind(kinds).execute(&mut *tx).await?;
            }
            for (year, table) in fees.years() {
                for (service, fee) in table {
                    let fee = i64::try_from(*fee).map_err(|e| StoreError::corrupt(format!("fee {fee}: {e}")))?;
                    sqlx::query(&tariff_sql).bind(i64::from(year)).bind(service.as_str()).bind(fee).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Inserts slots `(office_id, start_unix, duration_minutes, capacity)`; existing ones
    /// (same office and start) are left alone, so re-running a horizon is harmless.
    /// Returns how many were new.
    pub async fn insert_slots(&self, slots: &[(String, i64, i64, i64)]) -> Result<u64, StoreError> {
        let mut inserted = 0;
        // One commit per group of statements, not per statement: a commit is an fsync
        // (SQLite `synchronous=FULL`), and the rolling window adds whole days of slots. The
        // group stays small enough that SQLite's booking writer, which waits for the write
        // lock meanwhile, is held up for a moment only.
        // The same steps on either pool; only the placeholders differ.
        macro_rules! insert_group {
            ($pool:expr, $group:expr, $placeholder:expr) => {{
                let mut tx = $pool.begin().await?;
                for chunk in $group.chunks(INSERT_CHUNK_ROWS) {
                    let sql = slot_insert_sql(chunk.len(), $placeholder);
                    inserted += bind_slots(sqlx::query(&sql), chunk)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
            }};
        }
        for group in slots.chunks(INSERT_CHUNK_ROWS * STATEMENTS_PER_COMMIT) {
            match self {
                Store::Sqlite(pool) => insert_group!(pool, group, |_| "?".to_string()),
                Store::Postgres(pool) => insert_group!(pool, group, |n| format!("${n}")),
            }
        }
        Ok(inserted)
    }
}

/// Binds `(office_id, start_unix, duration_minutes, capacity)` rows in order.
fn bind_slots<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    rows: &'q [(String, i64, i64, i64)],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for (office, start, minutes, capacity) in rows {
        query = query
            .bind(office)
            .bind(*start)
            .bind(*minutes)
            .bind(*capacity);
    }
    query
}

/// Multi-row statements per transaction of [`Store::insert_slots`].
const STATEMENTS_PER_COMMIT: usize = 8;

/// `INSERT INTO slots … VALUES (p1, p2, p3, p4), …` for `rows` rows, existing slots left
/// alone; `placeholder(n)` writes the n-th parameter (1-based). SQLite gets anonymous `?`:
/// sqlx looks up each numbered parameter's name, a linear search in SQLite, so 2,000 numbered
/// parameters cost a quadratic lookup per statement (a third of a test's CPU went there).
fn slot_insert_sql(rows: usize, placeholder: impl Fn(usize) -> String) -> String {
    let mut sql =
        String::from("INSERT INTO slots (office_id, start_at, duration_minutes, capacity) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        let b = i * 4;
        let p: Vec<String> = (1..=4).map(|k| placeholder(b + k)).collect();
        sql.push_str(&format!("({})", p.join(", ")));
    }
    sql.push_str(" ON CONFLICT (office_id, start_at) DO NOTHING");
    sql
}

impl Store {
    /// Every slot starting at or after `from_unix`, for the availability view.
    pub async fn bookable_slots(
        &self,
        from_unix: i64,
    ) -> Result<Vec<crate::booking::SlotRow>, StoreError> {
        const SQL: &str = "SELECT id, office_id, start_at, duration_minutes, capacity, taken, opens_at, opens_for FROM slots WHERE start_at >= $1";
        // Streamed: the national network has 1.5 M slots; a million raw rows held at once
        // (`fetch_all`) were the process's peak at every load of the availability view.
        let mut slots = Vec::new();
        match self {
            Store::Sqlite(pool) => {
                super::lite_read::lite_for_each(
                    pool,
                    super::sqlite_sql(SQL),
                    vec![rusqlite::types::Value::Integer(from_unix)],
                    super::lite_writer::slot,
                    |s| {
                        slots.push(s);
                        Ok(())
                    },
                )
                .await?;
            }
            Store::Postgres(pool) => {
                use futures_util::TryStreamExt;
                let mut rows = sqlx::query(SQL).bind(from_unix).fetch(pool);
                while let Some(r) = rows.try_next().await? {
                    slots.push(super::booking::pg::slot(&r)?);
                }
            }
        }
        Ok(slots)
    }
}

impl Store {
    /// Each office's latest slot date (Iran date of its last slot start).
    pub async fn latest_slot_dates(
        &self,
    ) -> Result<std::collections::HashMap<String, NaiveDate>, StoreError> {
        const SQL: &str = "SELECT office_id, MAX(start_at) FROM slots GROUP BY office_id";
        let rows: Vec<(String, i64)> = on_pool!(self, pool, q = SQL => {
            sqlx::query_as(q).fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(office, start)| {
                chrono::DateTime::from_timestamp(start, 0)
                    .map(|t| (office, crate::domain::time::iran_date(t)))
            })
            .collect())
    }
}
