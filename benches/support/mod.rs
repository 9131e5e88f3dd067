//! What the benches that drive a store share: a count from the environment, raw SQL on either
//! backend, and a scratch PostgreSQL database for one run. Each bench is a crate of its own, so
//! each includes this file (`#[path = "support/mod.rs"] mod support;`) and uses a part of it.
#![allow(dead_code)]

use nobat::store::Store;
use sqlx::Connection;

/// A count from the environment variable `name` (at least 1), or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).map_or(default, |v| {
        v.parse::<usize>()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count"))
            .max(1)
    })
}

/// Runs `sql` on the store; a failure ends the bench with the statement's start.
pub async fn exec(store: &Store, sql: &str) {
    match store {
        Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{e}: {}", &sql[..sql.len().min(200)]));
}

/// A fresh PostgreSQL database for one run, on the server of `BENCH_DATABASE_URL` (else
/// `TEST_DATABASE_URL`); dropped by [`ScratchDatabase::drop_now`].
pub struct ScratchDatabase {
    admin: String,
    name: String,
    pub url: String,
}

impl ScratchDatabase {
    /// `None` (with a note that `what` is skipped) when no PostgreSQL is configured.
    pub async fn create(what: &str, prefix: &str) -> Option<Self> {
        let Some(admin) = std::env::var("BENCH_DATABASE_URL")
            .ok()
            .or_else(|| std::env::var("TEST_DATABASE_URL").ok())
        else {
            eprintln!("{what} skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL");
            return None;
        };
        let name = format!("nobat_{prefix}_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        Some(ScratchDatabase { admin, name, url })
    }

    pub async fn drop_now(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await;
    }
}
