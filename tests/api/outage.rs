//! PostgreSQL going away: answers are 503 with `Retry-After`, quickly, never a hang or a 500;
//! service resumes by itself when the database is back. A TCP proxy between the app and the
//! database plays the network cable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

use crate::applicant::{eligible_citizens, nearest_offices};
use crate::helpers::{test_clock, TestApp, TestDb};

struct Cable {
    up: Arc<AtomicBool>,
    port: u16,
    connections: Arc<tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cable {
    async fn start(target: String) -> Cable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let (up2, conns) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused by closing at once
                }
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().await.push(handle);
            }
        });
        Cable {
            up,
            port,
            connections,
        }
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.connections.lock().await.drain(..) {
            c.abort();
        }
    }

    fn mend(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_answers_503_then_recovers() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut config = db.config();
    let url = config.database_url.clone().unwrap();
    // postgres://user@host:port/db → route host:port through the cable.
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let (host_port, dbname) = rest.split_once('/').unwrap();
    let cable = Cable::start(host_port.to_string()).await;
    config.database_url = Some(format!("{scheme_user}@127.0.0.1:{}/{dbname}", cable.port));
    config.acquire_timeout = Duration::from_secs(2);
    let proxied = TestDb::Sqlite {
        _dir: tempfile::tempdir().unwrap(),
        config,
    };
    let app = TestApp::spawn_with(&proxied, test_clock(), |_| {}).await;
    let me = app.ready(&eligible_citizens(0, 1)[0]).await;
    let office = nearest_offices(&app, &me.citizen).await[0].clone();
    let hold = json!({ "application_id": me.application_id, "office_id": office["office_id"], "start": office["earliest_free"][0]["start"] });

    cable.cut().await;
    let started = Instant::now();
    let r = app
        .client
        .post(app.url("/v1/holds"))
        .bearer_auth(&me.token)
        .json(&hold)
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert!(
        waited < Duration::from_secs(8),
        "answered in {waited:?}, not left hanging"
    );
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    // Reads served from memory keep working.
    let r = app
        .client
        .get(app.url("/v1/offices?limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    cable.mend();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let r = app
            .client
            .post(app.url("/v1/holds"))
            .bearer_auth(&me.token)
            .json(&hold)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        if s != 503 || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        status, 201,
        "service resumes by itself once the database is back"
    );
    app.stop().await;
    db.cleanup().await;
}
