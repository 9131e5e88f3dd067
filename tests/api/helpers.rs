//! Test support: a fresh database per test on each backend, and the real app on a random port.
//!
//! PostgreSQL tests run when `TEST_DATABASE_URL` is set (each test creates its own database
//! `nobat_t_<random>` there and drops it afterwards). Without it they are skipped, unless
//! `NOBAT_REQUIRE_POSTGRES=1`, which CI sets so that a missing database fails instead of
//! silently skipping.

use std::net::SocketAddr;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use nobat::app::{App, Dependencies, Settings};
use nobat::domain::time::ManualClock;
use nobat::ports::payments::SandboxGateway;
use nobat::reserve::SeededIds;
use nobat::store::{Store, StoreConfig};
use rand::Rng;
use sqlx::Connection;

pub enum TestDb {
    Sqlite {
        _dir: tempfile::TempDir,
        config: StoreConfig,
    },
    Postgres {
        admin_url: String,
        name: String,
        config: StoreConfig,
    },
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = StoreConfig::sqlite(dir.path().join("nobat.db"));
        TestDb::Sqlite { _dir: dir, config }
    }

    /// `None` when PostgreSQL tests are not configured (and not required).
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            if std::env::var("NOBAT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("NOBAT_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set");
            }
            eprintln!("skipped: TEST_DATABASE_URL is not set");
            return None;
        };
        let name = format!("nobat_t_{:016x}", rand::thread_rng().gen::<u64>());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach TEST_DATABASE_URL: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.ok();
        let url = match admin_url.rsplit_once('/') {
            Some((base, _db)) => format!("{base}/{name}"),
            None => panic!("TEST_DATABASE_URL has no database name: {admin_url}"),
        };
        Some(TestDb::Postgres {
            admin_url,
            name,
            config: StoreConfig::url(url),
        })
    }

    pub fn config(&self) -> StoreConfig {
        match self {
            TestDb::Sqlite { config, .. } | TestDb::Postgres { config, .. } => config.clone(),
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.config())
            .await
            .expect("connect test store")
    }

    /// Drops the PostgreSQL database (the SQLite one goes with its temp dir).
    pub async fn cleanup(self) {
        if let TestDb::Postgres {
            admin_url, name, ..
        } = self
        {
            if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
            }
        }
    }
}

/// Runs `$body(db)` once on SQLite and once on PostgreSQL, as `$name::sqlite` and
/// `$name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::helpers::TestDb::sqlite().await;
                $body(&db).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = $crate::helpers::TestDb::postgres().await else {
                    return;
                };
                $body(&db).await;
                db.cleanup().await;
            }
        }
    };
}

/// Sunday 1 Mehr 1403, 09:00 in Tehran: a working day (the Saturday before is a holiday).
pub const TEST_START: &str = "2024-09-22T05:30:00Z";

pub fn test_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        TEST_START.parse::<DateTime<Utc>>().unwrap(),
    ))
}

/// The real app on a random port, with its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Store,
    pub state: nobat::http::AppState,
    pub clock: Arc<ManualClock>,
    /// The app's payment gateway (the sandbox), to see what it was asked to charge.
    pub gateway: Arc<SandboxGateway>,
    pub client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// The bundled small scenario, a manual clock at [`TEST_START`], seeded ids, no sweeper
    /// (tests step it).
    pub async fn spawn(db: &TestDb) -> TestApp {
        Self::spawn_with(db, test_clock(), |_| {}).await
    }

    pub async fn spawn_with(
        db: &TestDb,
        clock: Arc<ManualClock>,
        tweak: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = Settings::new("127.0.0.1:0".parse().unwrap(), db.config());
        settings.sweep_interval = None;
        // Tests step the poll for admin changes (`nobat::http::live::poll_once`).
        settings.config_poll_interval = None;
        // Tests step the waiting rooms' ticker (`nobat::http::room::tick_once`).
        settings.room_tick_interval = None;
        tweak(&mut settings);
        let gateway = Arc::new(SandboxGateway::default());
        let deps = Dependencies {
            clock: clock.clone(),
            ids: Arc::new(SeededIds::new(rand::random())),
            payments: gateway.clone(),
        };
        let app = App::build_with(settings, deps).await.expect("build app");
        let addr = app.local_addr();
        let store = app.store().clone();
        let state = app.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            store,
            state,
            clock,
            gateway,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server ran");
        }
    }
}

/// Runs a raw statement, as a hand-written SQL session would.
pub async fn try_exec(store: &Store, sql: &str) -> Result<u64, sqlx::Error> {
    match store {
        Store::Sqlite(pool) => sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Store::Postgres(pool) => sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    }
}

/// Runs a raw statement that must succeed.
pub async fn exec(store: &Store, sql: &str) {
    try_exec(store, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The one integer a raw query returns.
pub async fn scalar(store: &Store, sql: &str) -> i64 {
    match store {
        Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}
