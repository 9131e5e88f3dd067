//! The application value: built (storage connected and migrated, network seeded on first
//! start, listener bound), then run until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;

use crate::domain::{FeeSchedule, Service};
use crate::http::{self, AppState};
use crate::store::{Store, StoreConfig};

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free one (tests).
    pub listen: SocketAddr,
    pub store: StoreConfig,
    /// Scenario whose office network seeds an empty database; `None` uses the bundled
    /// `scenarios/small.toml`.
    pub scenario: Option<PathBuf>,
}

pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Connects storage, applies migrations, seeds an empty database, binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let store = Store::connect(&settings.store).await?;
        store.sync_catalogue(Service::catalogue(), FeeSchedule::builtin()).await?;
        crate::seed::seed_if_empty(&store, settings.scenario.as_deref()).await?;
        let listener = TcpListener::bind(settings.listen).await?;
        Ok(App { listener, state: AppState { store } })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes storage.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let store = self.state.store.clone();
        let router = http::router(self.state);
        axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await?;
        store.close().await;
        Ok(())
    }
}
