//! `kill -9` of the real server binary while it is confirming bookings, then a restart on the
//! same database: every confirmation answered 2xx is still there, nothing is over capacity,
//! and holds that expired while it was down are freed.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::{scalar, TestDb};
use crate::on_both_backends;
use crate::races::assert_seats_consistent;
use nobat::planning::scenario::Scenario;
use nobat::store::{Store, StoreConfig};

struct Server {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(config: &StoreConfig, port: u16) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nobat"));
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("NOBAT_LOG", "warn");
    match &config.database_url {
        Some(url) => cmd.arg("--database-url").arg(url),
        None => cmd.arg("--sqlite-path").arg(&config.sqlite_path),
    };
    let child = cmd
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nobat");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server { child, base }
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Result<(u16, Value), reqwest::Error> {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

async fn kill_nine_while_confirming(db: &TestDb) {
    let config = db.config();
    let port = free_port();
    let mut server = start(&config, port).await;
    let client = reqwest::Client::new();
    // Real clock here: the citizens must be eligible today.
    let scenario = Scenario::from_toml_str(nobat::store::seed::BUNDLED_SCENARIO, "small").unwrap();
    let generator = scenario.citizen_generator();
    let today = chrono::Utc::now().date_naive();
    let citizens: Vec<_> = (0..generator.count())
        .filter_map(|i| generator.citizen(i))
        .filter(|c| c.eligibility(today).is_eligible())
        .take(120)
        .collect();
    let (_, offices) = {
        let r = client
            .get(format!(
                "{}/v1/offices?province=tehran&service=first_issuance&limit=20",
                server.base
            ))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    let targets: Vec<(String, String)> = offices
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| {
            o["earliest_free"].as_array().unwrap().iter().map(move |s| {
                (
                    o["office_id"].as_str().unwrap().to_string(),
                    s["start"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    assert!(!targets.is_empty());

    // Each applicant: log in, apply, pay, hold, confirm. Kill the server while they run.
    let base = server.base.clone();
    let confirmed_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flows = citizens.iter().enumerate().map(|(i, c)| {
        let client = client.clone();
        let base = base.clone();
        let (office_id, start) = targets[i % targets.len()].clone();
        let login = json!({ "national_code": c.national_code.to_string(), "birth_certificate_serial": c.birth_certificate_serial.to_string() });
        let form = crate::applicant::form(c);
        let counter = confirmed_so_far.clone();
        tokio::spawn(async move {
            let (_, s) = post(&client, format!("{base}/v1/sessions"), None, login).await.ok()?;
            let token = s["token"].as_str()?.to_string();
            let (_, a) = post(&client, format!("{base}/v1/applications"), Some(&token), json!({ "service": "first_issuance", "form": form })).await.ok()?;
            let app_id = a["application_id"].as_str()?.to_string();
            let (_, p) = post(&client, format!("{base}/v1/payments"), Some(&token), json!({ "application_id": app_id })).await.ok()?;
            let (status, h) = post(&client, format!("{base}/v1/holds"), Some(&token), json!({ "application_id": app_id, "office_id": office_id, "start": start })).await.ok()?;
            if status != 201 {
                return None;
            }
            let hold_id = h["hold_id"].as_str()?.to_string();
            let (status, appt) = post(&client, format!("{base}/v1/holds/{hold_id}/confirm"), Some(&token), json!({ "payment_id": p["payment_id"] })).await.ok()?;
            let code = (status == 201).then(|| appt["tracking_code"].as_str().map(str::to_string)).flatten();
            if code.is_some() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            code
        })
    });
    let handles: Vec<_> = flows.collect();
    // Kill once some bookings are acknowledged and the rest are still in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while confirmed_so_far.load(std::sync::atomic::Ordering::SeqCst) < 25 {
        assert!(Instant::now() < deadline, "no confirmations came back");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
    server.child.wait().unwrap();
    let confirmed: Vec<String> = join_all(handles)
        .await
        .into_iter()
        .filter_map(|r| r.ok().flatten())
        .collect();
    eprintln!(
        "confirmations answered 2xx before the kill: {} of {}",
        confirmed.len(),
        citizens.len()
    );
    assert!(
        confirmed.len() >= 25 && confirmed.len() < citizens.len(),
        "the kill came mid-surge"
    );

    // Holds left live by the crash are overdue by the time the server is back.
    let store = Store::connect(&config).await.unwrap();
    match &store {
        Store::Sqlite(pool) => sqlx::query("UPDATE holds SET expires_at = 0 WHERE status = 'live'")
            .execute(pool)
            .await
            .map(|_| ()),
        Store::Postgres(pool) => {
            sqlx::query("UPDATE holds SET expires_at = 0 WHERE status = 'live'")
                .execute(pool)
                .await
                .map(|_| ())
        }
    }
    .unwrap();
    let live_before = scalar(&store, "SELECT COUNT(*) FROM holds WHERE status = 'live'").await;

    let mut server = start(&config, port).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while scalar(&store, "SELECT COUNT(*) FROM holds WHERE status = 'live'").await > 0 {
        assert!(
            Instant::now() < deadline,
            "expired holds were not freed after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("live holds freed after restart: {live_before}");
    for code in &confirmed {
        let n = scalar(&store, &format!("SELECT COUNT(*) FROM appointments WHERE tracking_code = '{code}' AND status = 'booked'")).await;
        assert_eq!(n, 1, "acknowledged booking {code} was lost");
    }
    assert_seats_consistent(&store).await;
    // The restarted server still books.
    let r = client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    store.close().await;
}
on_both_backends!(
    kill_nine_while_confirming_loses_nothing,
    super::kill_nine_while_confirming
);
