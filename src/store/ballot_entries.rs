//! Ballot entries in batches: the entry writer (`reserve::entries`) hands a batch of changes
//! (make or replace an entry, withdraw one) to [`Store::write_ballot_entries`], which decides
//! and writes all of them in ONE transaction and answers each after its commit.
//!
//! What the batch reads decides each change, in the same transaction: the ballot's status and
//! times (under a share lock on PostgreSQL; on SQLite the writer thread's immediate
//! transaction holds the one write lock), the application (the citizen's, for the ballot's
//! service) and its payment (paid). The close moves the ballot to `closing` under the row's
//! write lock before it reads the entries (`claim_ballot_close`), so an entry committed before
//! that read is in the close's input and a batch after it finds the status moved and stores
//! nothing. One entry per citizen and ballot is the table's primary key.
//!
//! The decision is one pure function ([`decide`]); the backends are executors: on SQLite the
//! writer thread (`lite_writer`, the connection every write of the applicant's path shares)
//! with cached statements one row at a time, on PostgreSQL a handful of set-based statements
//! over `UNNEST` arrays whatever the batch size.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::applicants::lite_write;
use super::booking::PG_BATCH_BEGIN;
use super::{sqlite_sql, EntryRow, Store, StoreError};

/// One change to an entry, in the order its request arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryChange {
    /// Make or replace the citizen's entry (its `created_at`/`updated_at` are the batch's).
    Put(Box<EntryRow>),
    Withdraw {
        ballot_id: String,
        national_code: String,
    },
}

impl EntryChange {
    /// The entry it changes: (ballot, national code), the table's primary key.
    pub fn key(&self) -> (&str, &str) {
        match self {
            EntryChange::Put(e) => (&e.ballot_id, &e.national_code),
            EntryChange::Withdraw {
                ballot_id,
                national_code,
            } => (ballot_id, national_code),
        }
    }

    fn ballot_id(&self) -> &str {
        self.key().0
    }
}

/// Why a change was refused by what the batch read (nothing stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryRefusal {
    /// No such application, or another citizen's.
    ApplicationNotFound,
    /// The application is for another service than the ballot's.
    WrongService {
        ballot_service: String,
    },
    PaymentNotFound,
    /// The payment is for another application.
    PaymentMismatch,
    /// The payment is not paid (its status).
    PaymentNotPaid {
        status: String,
    },
}

/// What a change did, known after the commit.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryWrite {
    Created(Box<EntryRow>),
    Updated(Box<EntryRow>),
    Withdrawn,
    /// A withdrawal found no entry.
    NoEntry,
    /// The ballot does not take changes (its status: scheduled before `opens_at`, or
    /// closing, published, or past `closes_at`).
    NotOpen(String),
    NoBallot,
    Refused(EntryRefusal),
}

/// A ballot as an entry batch reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BallotGate {
    pub status: String,
    pub opens_at: i64,
    pub closes_at: i64,
    pub service: String,
}

impl BallotGate {
    /// Whether the ballot takes entries and withdrawals at `now`.
    fn takes_changes(&self, now: i64) -> bool {
        (self.status == "scheduled" || self.status == "open")
            && self.opens_at <= now
            && now < self.closes_at
    }
}

/// What an entry batch read, by key.
#[derive(Debug, Default)]
pub struct EntryFacts {
    pub ballots: HashMap<String, BallotGate>,
    /// Application id → (national code, service).
    pub applications: HashMap<String, (String, String)>,
    /// Payment id → (application id, status).
    pub payments: HashMap<String, (String, String)>,
}

/// The decision on one change: answered as it is, or a row to write.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryStep {
    Done(EntryWrite),
    Upsert,
    Delete,
}

/// Decides each change of a batch from what it read at `now`. Pure.
pub fn decide(changes: &[EntryChange], facts: &EntryFacts, now: i64) -> Vec<EntryStep> {
    changes
        .iter()
        .map(|change| {
            let Some(ballot) = facts.ballots.get(change.ballot_id()) else {
                return EntryStep::Done(EntryWrite::NoBallot);
            };
            if !ballot.takes_changes(now) {
                return EntryStep::Done(EntryWrite::NotOpen(ballot.status.clone()));
            }
            match change {
                EntryChange::Withdraw { .. } => EntryStep::Delete,
                EntryChange::Put(e) => match refusal(e, ballot, facts) {
                    Some(r) => EntryStep::Done(EntryWrite::Refused(r)),
                    None => EntryStep::Upsert,
                },
            }
        })
        .collect()
}

/// Why an entry's application or payment does not qualify it, if it does not.
fn refusal(e: &EntryRow, ballot: &BallotGate, facts: &EntryFacts) -> Option<EntryRefusal> {
    let Some((citizen, service)) = facts.applications.get(&e.application_id) else {
        return Some(EntryRefusal::ApplicationNotFound);
    };
    if *citizen != e.national_code {
        return Some(EntryRefusal::ApplicationNotFound);
    }
    if *service != ballot.service {
        return Some(EntryRefusal::WrongService {
            ballot_service: ballot.service.clone(),
        });
    }
    let Some((application, status)) = facts.payments.get(&e.payment_id) else {
        return Some(EntryRefusal::PaymentNotFound);
    };
    if *application != e.application_id {
        return Some(EntryRefusal::PaymentMismatch);
    }
    if status != "paid" {
        return Some(EntryRefusal::PaymentNotPaid {
            status: status.clone(),
        });
    }
    None
}

/// The row an upsert stores: the entry as asked, stamped `now`, created when it first was.
fn stored(e: &EntryRow, created_at: Option<i64>, now: i64) -> EntryWrite {
    let mut row = e.clone();
    row.updated_at = now;
    row.created_at = created_at.unwrap_or(now);
    row.outcome = None;
    match created_at {
        Some(_) => EntryWrite::Updated(Box::new(row)),
        None => EntryWrite::Created(Box::new(row)),
    }
}

const UPSERT_SET: &str = "ON CONFLICT (ballot_id, national_code) DO UPDATE SET application_id = excluded.application_id, payment_id = excluded.payment_id, \
     home_lat = excluded.home_lat, home_lon = excluded.home_lon, province = excluded.province, priority = excluded.priority, \
     preferences_json = excluded.preferences_json, updated_at = excluded.updated_at";

const ENTRY_INSERT: &str = "INSERT INTO ballot_entries (ballot_id, national_code, entry_key, application_id, payment_id, home_lat, home_lon, province, priority, preferences_json, created_at, updated_at)";

fn distinct<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    keys.filter(|k| seen.insert(*k))
        .map(str::to_string)
        .collect()
}

impl Store {
    /// Decides and writes a batch of entry changes in one transaction; each change's answer,
    /// in order, after the commit. The changes name distinct entries (the entry writer
    /// defers a second change of one entry to the next batch); a repeated entry is an error.
    pub async fn write_ballot_entries(
        &self,
        changes: Vec<EntryChange>,
        now: i64,
    ) -> Result<Vec<EntryWrite>, StoreError> {
        let mut keys = HashSet::with_capacity(changes.len());
        if !changes.iter().all(|c| keys.insert(c.key())) {
            return Err(StoreError::corrupt("an entry batch names one entry twice"));
        }
        drop(keys);
        match self {
            Store::Sqlite(pool) => {
                lite_write(pool, move |conn| lite_entries(conn, &changes, now)).await
            }
            Store::Postgres(pool) => pg_entries(pool, &changes, now).await,
        }
    }
}

/// SQLite's executor, on the writer thread (in a savepoint of its transaction).
fn lite_entries(
    conn: &rusqlite::Connection,
    changes: &[EntryChange],
    now: i64,
) -> Result<Vec<EntryWrite>, StoreError> {
    use rusqlite::OptionalExtension;
    let mut facts = EntryFacts::default();
    {
        let mut ballot = conn.prepare_cached(
            "SELECT status, opens_at, closes_at, service FROM ballots WHERE id = ?1",
        )?;
        for id in distinct(changes.iter().map(EntryChange::ballot_id)) {
            let gate = ballot
                .query_row([&id], |r| {
                    Ok(BallotGate {
                        status: r.get(0)?,
                        opens_at: r.get(1)?,
                        closes_at: r.get(2)?,
                        service: r.get(3)?,
                    })
                })
                .optional()?;
            if let Some(gate) = gate {
                facts.ballots.insert(id, gate);
            }
        }
        let mut application =
            conn.prepare_cached("SELECT national_code, service FROM applications WHERE id = ?1")?;
        let mut payment =
            conn.prepare_cached("SELECT application_id, status FROM payments WHERE id = ?1")?;
        for change in changes {
            let EntryChange::Put(e) = change else {
                continue;
            };
            if let Some(a) = application
                .query_row([&e.application_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
            {
                facts.applications.insert(e.application_id.clone(), a);
            }
            if let Some(p) = payment
                .query_row([&e.payment_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
            {
                facts.payments.insert(e.payment_id.clone(), p);
            }
        }
    }
    let steps = decide(changes, &facts, now);
    let mut created = conn.prepare_cached(
        "SELECT created_at FROM ballot_entries WHERE ballot_id = ?1 AND national_code = ?2",
    )?;
    let mut upsert = conn.prepare_cached(&sqlite_sql(&format!(
        "{ENTRY_INSERT} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) {UPSERT_SET}"
    )))?;
    let mut delete = conn
        .prepare_cached("DELETE FROM ballot_entries WHERE ballot_id = ?1 AND national_code = ?2")?;
    let mut answers = Vec::with_capacity(changes.len());
    for (change, step) in changes.iter().zip(steps) {
        answers.push(match (step, change) {
            (EntryStep::Done(w), _) => w,
            (EntryStep::Upsert, EntryChange::Put(e)) => {
                let before: Option<i64> = created
                    .query_row([&e.ballot_id, &e.national_code], |r| r.get(0))
                    .optional()?;
                upsert.execute(rusqlite::params![
                    e.ballot_id,
                    e.national_code,
                    e.entry_key,
                    e.application_id,
                    e.payment_id,
                    e.home_lat,
                    e.home_lon,
                    e.province,
                    e.priority,
                    e.preferences_json,
                    now
                ])?;
                stored(e, before, now)
            }
            (_, c) => {
                let (ballot_id, national_code) = c.key();
                match delete.execute([ballot_id, national_code])? {
                    0 => EntryWrite::NoEntry,
                    _ => EntryWrite::Withdrawn,
                }
            }
        });
    }
    Ok(answers)
}

/// PostgreSQL's executor: one transaction, reads and writes set-based whatever the batch
/// size. The ballots are read `FOR SHARE` (the close's claim waits for the batch, or the
/// batch for the claim). Rows are written in key order, so two batches in flight lock the
/// entries they share in the same order and cannot deadlock.
async fn pg_entries(
    pool: &sqlx::PgPool,
    changes: &[EntryChange],
    now: i64,
) -> Result<Vec<EntryWrite>, StoreError> {
    let mut tx = pool.begin_with(PG_BATCH_BEGIN).await?;
    let mut facts = EntryFacts::default();
    let mut ballot_ids = distinct(changes.iter().map(EntryChange::ballot_id));
    ballot_ids.sort();
    for r in sqlx::query("SELECT id, status, opens_at, closes_at, service FROM ballots WHERE id = ANY($1) ORDER BY id FOR SHARE")
        .bind(&ballot_ids)
        .fetch_all(&mut *tx)
        .await?
    {
        facts.ballots.insert(
            r.try_get(0)?,
            BallotGate { status: r.try_get(1)?, opens_at: r.try_get(2)?, closes_at: r.try_get(3)?, service: r.try_get(4)? },
        );
    }
    let puts: Vec<&EntryRow> = changes
        .iter()
        .filter_map(|c| match c {
            EntryChange::Put(e) => Some(e.as_ref()),
            EntryChange::Withdraw { .. } => None,
        })
        .collect();
    if !puts.is_empty() {
        let apps = distinct(puts.iter().map(|e| e.application_id.as_str()));
        for r in
            sqlx::query("SELECT id, national_code, service FROM applications WHERE id = ANY($1)")
                .bind(&apps)
                .fetch_all(&mut *tx)
                .await?
        {
            facts
                .applications
                .insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
        }
        let pays = distinct(puts.iter().map(|e| e.payment_id.as_str()));
        for r in sqlx::query("SELECT id, application_id, status FROM payments WHERE id = ANY($1)")
            .bind(&pays)
            .fetch_all(&mut *tx)
            .await?
        {
            facts
                .payments
                .insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
        }
    }
    let steps = decide(changes, &facts, now);
    let mut upserts: Vec<&EntryRow> = changes
        .iter()
        .zip(&steps)
        .filter_map(|(c, s)| match (c, s) {
            (EntryChange::Put(e), EntryStep::Upsert) => Some(e.as_ref()),
            _ => None,
        })
        .collect();
    upserts.sort_by(|a, b| (&a.ballot_id, &a.national_code).cmp(&(&b.ballot_id, &b.national_code)));
    let mut created_at: HashMap<(String, String), (i64, bool)> = HashMap::new();
    if !upserts.is_empty() {
        let sql = format!(
            "{ENTRY_INSERT} SELECT b, n, k, a, p, lat, lon, pr, pri, pj, $11, $11 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::float8[], $7::float8[], $8::text[], $9::int4[], $10::text[]) AS u(b, n, k, a, p, lat, lon, pr, pri, pj) \
             {UPSERT_SET} RETURNING ballot_id, national_code, created_at, (xmax = 0)"
        );
        let col = |f: fn(&EntryRow) -> String| upserts.iter().map(|e| f(e)).collect::<Vec<_>>();
        let rows = sqlx::query(&sql)
            .bind(col(|e| e.ballot_id.clone()))
            .bind(col(|e| e.national_code.clone()))
            .bind(col(|e| e.entry_key.clone()))
            .bind(col(|e| e.application_id.clone()))
            .bind(col(|e| e.payment_id.clone()))
            .bind(upserts.iter().map(|e| e.home_lat).collect::<Vec<_>>())
            .bind(upserts.iter().map(|e| e.home_lon).collect::<Vec<_>>())
            .bind(
                upserts
                    .iter()
                    .map(|e| e.province.clone())
                    .collect::<Vec<_>>(),
            )
            .bind(upserts.iter().map(|e| e.priority).collect::<Vec<_>>())
            .bind(col(|e| e.preferences_json.clone()))
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        for r in rows {
            created_at.insert(
                (r.try_get(0)?, r.try_get(1)?),
                (r.try_get(2)?, r.try_get(3)?),
            );
        }
    }
    let mut deletes: Vec<(&str, &str)> = changes
        .iter()
        .zip(&steps)
        .filter(|(_, s)| **s == EntryStep::Delete)
        .map(|(c, _)| c.key())
        .collect();
    deletes.sort();
    let mut deleted: HashSet<(String, String)> = HashSet::new();
    if !deletes.is_empty() {
        let rows = sqlx::query(
            "DELETE FROM ballot_entries WHERE (ballot_id, national_code) IN (SELECT * FROM UNNEST($1::text[], $2::text[])) RETURNING ballot_id, national_code",
        )
        .bind(deletes.iter().map(|k| k.0).collect::<Vec<_>>())
        .bind(deletes.iter().map(|k| k.1).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        for r in rows {
            deleted.insert((r.try_get(0)?, r.try_get(1)?));
        }
    }
    tx.commit().await?;
    let answer = |change: &EntryChange, step: EntryStep| -> Result<EntryWrite, StoreError> {
        let (ballot_id, national_code) = change.key();
        let key = (ballot_id.to_string(), national_code.to_string());
        Ok(match (step, change) {
            (EntryStep::Done(w), _) => w,
            (EntryStep::Upsert, EntryChange::Put(e)) => {
                let (at, inserted) = created_at
                    .get(&key)
                    .ok_or_else(|| StoreError::corrupt("an upserted entry came back missing"))?;
                stored(e, (!inserted).then_some(*at), now)
            }
            _ if deleted.contains(&key) => EntryWrite::Withdrawn,
            _ => EntryWrite::NoEntry,
        })
    };
    changes
        .iter()
        .zip(steps)
        .map(|(c, s)| answer(c, s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(code: &str, app: &str, pay: &str) -> EntryRow {
        EntryRow {
            ballot_id: "b1".into(),
            national_code: code.into(),
            entry_key: format!("k{code}"),
            application_id: app.into(),
            payment_id: pay.into(),
            home_lat: 35.7,
            home_lon: 51.4,
            province: Some("tehran".into()),
            priority: 0,
            preferences_json: "{}".into(),
            created_at: 0,
            updated_at: 0,
            outcome: None,
        }
    }

    fn facts(status: &str) -> EntryFacts {
        let mut f = EntryFacts::default();
        f.ballots.insert(
            "b1".into(),
            BallotGate {
                status: status.into(),
                opens_at: 100,
                closes_at: 200,
                service: "first_issuance".into(),
            },
        );
        f.applications
            .insert("a1".into(), ("111".into(), "first_issuance".into()));
        f.applications
            .insert("a2".into(), ("222".into(), "replacement".into()));
        f.payments.insert("p1".into(), ("a1".into(), "paid".into()));
        f.payments
            .insert("p9".into(), ("a1".into(), "pending".into()));
        f
    }

    #[test]
    fn each_change_is_decided_on_what_the_batch_read() {
        let changes = vec![
            EntryChange::Put(Box::new(entry("111", "a1", "p1"))),
            EntryChange::Put(Box::new(entry("333", "a1", "p1"))),
            EntryChange::Put(Box::new(entry("222", "a2", "p1"))),
            EntryChange::Put(Box::new(entry("444", "a9", "p1"))),
            EntryChange::Withdraw {
                ballot_id: "b1".into(),
                national_code: "555".into(),
            },
            EntryChange::Withdraw {
                ballot_id: "b2".into(),
                national_code: "555".into(),
            },
        ];
        let steps = decide(&changes, &facts("open"), 150);
        assert_eq!(
            steps,
            vec![
                EntryStep::Upsert,
                EntryStep::Done(EntryWrite::Refused(EntryRefusal::ApplicationNotFound)),
                EntryStep::Done(EntryWrite::Refused(EntryRefusal::WrongService {
                    ballot_service: "first_issuance".into()
                })),
                EntryStep::Done(EntryWrite::Refused(EntryRefusal::ApplicationNotFound)),
                EntryStep::Delete,
                EntryStep::Done(EntryWrite::NoBallot),
            ]
        );
        let unpaid = decide(
            &[EntryChange::Put(Box::new(entry("111", "a1", "p9")))],
            &facts("open"),
            150,
        );
        assert_eq!(
            unpaid,
            vec![EntryStep::Done(EntryWrite::Refused(
                EntryRefusal::PaymentNotPaid {
                    status: "pending".into()
                }
            ))]
        );
    }

    #[test]
    fn nothing_is_taken_outside_the_window_or_once_closing() {
        let put = [EntryChange::Put(Box::new(entry("111", "a1", "p1")))];
        for (status, now) in [
            ("open", 200),
            ("open", 99),
            ("closing", 150),
            ("published", 150),
        ] {
            assert_eq!(
                decide(&put, &facts(status), now),
                vec![EntryStep::Done(EntryWrite::NotOpen(status.into()))],
                "{status} at {now}"
            );
        }
        assert_eq!(
            decide(&put, &facts("scheduled"), 150),
            vec![EntryStep::Upsert]
        );
    }
}
