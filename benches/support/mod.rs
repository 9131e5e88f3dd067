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

/// The PostgreSQL server's admin URL (`BENCH_DATABASE_URL`, else `TEST_DATABASE_URL`);
/// `None`, with a note that `what` is skipped, when neither is set.
fn admin_url(what: &str) -> Option<String> {
    let url = std::env::var("BENCH_DATABASE_URL")
        .ok()
        .or_else(|| std::env::var("TEST_DATABASE_URL").ok());
    if url.is_none() {
        eprintln!("{what} skipped: set BENCH_DATABASE_URL or TEST_DATABASE_URL");
    }
    url
}

impl ScratchDatabase {
    /// `None` (with a note that `what` is skipped) when no PostgreSQL is configured.
    pub async fn create(what: &str, prefix: &str) -> Option<Self> {
        let admin = admin_url(what)?;
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

/// A PostgreSQL database set up once and copied for each run (`CREATE DATABASE .. TEMPLATE`),
/// on the server of `BENCH_DATABASE_URL` (else `TEST_DATABASE_URL`). A kept template stays
/// for the next run (the bench's setup is minutes); another is dropped at the end.
pub struct TemplateDatabase {
    admin: String,
    name: String,
    keep: bool,
}

impl TemplateDatabase {
    /// `None` (with a note that `what` is skipped) when no PostgreSQL is configured.
    pub async fn open(what: &str, name: &str, keep: bool) -> Option<Self> {
        let admin = admin_url(what)?;
        let name = if keep {
            name.to_string()
        } else {
            format!("{name}_{}", std::process::id())
        };
        Some(TemplateDatabase { admin, name, keep })
    }

    fn url_of(&self, name: &str) -> String {
        format!("{}/{name}", self.admin.rsplit_once('/').unwrap().0)
    }

    async fn admin(&self, sql: &str) -> Result<(), sqlx::Error> {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await?;
        sqlx::query(sql).execute(&mut conn).await.map(|_| ())
    }

    /// Whether the template was set up by an earlier run (a half-built one is not renamed).
    pub async fn exists(&self) -> bool {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.unwrap();
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
            .bind(&self.name)
            .fetch_one(&mut conn)
            .await
            .unwrap()
            == 1
    }

    /// Creates the database to set up under a building name; [`Self::copy`] renames it.
    pub async fn create(&self) -> String {
        let building = format!("{}_building", self.name);
        self.admin(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .await
            .unwrap();
        self.admin(&format!("CREATE DATABASE {building}"))
            .await
            .unwrap();
        self.url_of(&building)
    }

    /// A fresh database for one run, copied from the template (renamed from its building
    /// name when this run set it up).
    pub async fn copy(&self, prefix: &str) -> ScratchDatabase {
        if !self.exists().await {
            let building = format!("{}_building", self.name);
            self.alone(
                &building,
                &format!("ALTER DATABASE {building} RENAME TO {}", self.name),
            )
            .await;
        }
        let name = format!("nobat_{prefix}_{}", std::process::id());
        self.alone(
            &self.name,
            &format!("CREATE DATABASE {name} TEMPLATE {}", self.name),
        )
        .await;
        ScratchDatabase {
            admin: self.admin.clone(),
            url: self.url_of(&name),
            name,
        }
    }

    /// Runs `sql`, which needs no other session on `db`: the setup's pool may leave some.
    async fn alone(&self, db: &str, sql: &str) {
        for _ in 0..30 {
            let _ = self
                .admin(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
                ))
                .await;
            match self.admin(sql).await {
                Ok(()) => return,
                Err(e) => eprintln!("{sql}: {e}; again in a second"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        panic!("{sql}: other sessions stay on {db}");
    }

    pub async fn drop_unless_kept(self) {
        if !self.keep {
            let _ = self
                .admin(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }
}
