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
    start_with(config, port, &[]).await
}

async fn start_with(config: &StoreConfig, port: u16, flags: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nobat"));
    cmd.arg("serve")
        .args(flags)
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

/// Logs in, applies and pays on a real server: (token, application id, payment id).
async fn ready_on(
    client: &reqwest::Client,
    base: &str,
    c: &nobat::domain::registry::CitizenRecord,
) -> (String, String, String) {
    let login = json!({ "national_code": c.national_code.to_string(), "birth_certificate_serial": c.birth_certificate_serial.to_string() });
    let (_, s) = post(client, format!("{base}/v1/sessions"), None, login)
        .await
        .unwrap();
    let token = s["token"].as_str().unwrap().to_string();
    let form = crate::applicant::form(c);
    let (_, a) = post(
        client,
        format!("{base}/v1/applications"),
        Some(&token),
        json!({ "service": "first_issuance", "form": form }),
    )
    .await
    .unwrap();
    let app_id = a["application_id"].as_str().unwrap().to_string();
    let (_, p) = post(
        client,
        format!("{base}/v1/payments"),
        Some(&token),
        json!({ "application_id": app_id }),
    )
    .await
    .unwrap();
    (token, app_id, p["payment_id"].as_str().unwrap().to_string())
}

async fn status_of(store: &Store, national_code: &str) -> String {
    let sql =
        format!("SELECT status FROM waitlist_entries WHERE national_code = '{national_code}'");
    match store {
        Store::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
    }
}

/// `kill -9` of the real server between a waitlist offer and its expiry: after the restart the
/// offer is still there, expires on time and moves on to the next waiter.
async fn kill_nine_between_an_offer_and_its_expiry(db: &TestDb) {
    let config = db.config();
    let port = free_port();
    let flags = ["--offer-seconds", "6", "--release-delay-max-minutes", "0"];
    let mut server = start_with(&config, port, &flags).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let scenario = Scenario::from_toml_str(nobat::store::seed::BUNDLED_SCENARIO, "small").unwrap();
    let generator = scenario.citizen_generator();
    let today = chrono::Utc::now().date_naive();
    let citizens: Vec<_> = (0..generator.count())
        .filter_map(|i| generator.citizen(i))
        .filter(|c| c.eligibility(today).is_eligible())
        .take(3)
        .collect();
    let offices: Value = client
        .get(format!(
            "{base}/v1/offices?province=tehran&service=first_issuance&limit=1"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let office_id = offices[0]["office_id"].as_str().unwrap().to_string();
    // A slot a day or more ahead, so it does not start during the test.
    let mut start = None;
    for days in 1..8 {
        let day = today + chrono::Duration::days(days);
        let slots: Value = client
            .get(format!(
                "{base}/v1/offices/{office_id}/slots?from={day}&to={day}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        start = slots
            .as_array()
            .and_then(|s| s.iter().find(|s| s["free"].as_i64() > Some(0)))
            .map(|s| s["start"].as_str().unwrap().to_string());
        if start.is_some() {
            break;
        }
    }
    let start = start.expect("a free slot this week");
    let a = ready_on(&client, &base, &citizens[0]).await;
    let b = ready_on(&client, &base, &citizens[1]).await;
    let c = ready_on(&client, &base, &citizens[2]).await;
    let (status, appt) = post(
        &client,
        format!("{base}/v1/appointments"),
        Some(&a.0),
        json!({ "application_id": a.1, "office_id": office_id, "start": start, "payment_id": a.2 }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{appt}");
    for w in [&b, &c] {
        let body = json!({ "application_id": w.1, "payment_id": w.2, "pick": { "office_ids": [office_id] } });
        let (status, entry) = post(&client, format!("{base}/v1/waitlist"), Some(&w.0), body)
            .await
            .unwrap();
        assert_eq!(status, 201, "{entry}");
        // Join order is by the second: C joins a second after B.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let code = appt["tracking_code"].as_str().unwrap();
    let (status, _) = post(
        &client,
        format!("{base}/v1/appointments/{code}/cancel"),
        Some(&a.0),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();

    let store = Store::connect(&config).await.unwrap();
    let (b_code, c_code) = (
        citizens[1].national_code.to_string(),
        citizens[2].national_code.to_string(),
    );
    assert_eq!(
        status_of(&store, &b_code).await,
        "offered",
        "the offer survived the kill"
    );
    assert_eq!(
        scalar(&store, &format!("SELECT COUNT(*) FROM holds h JOIN waitlist_entries e ON e.offer_hold_id = h.id WHERE e.national_code = '{b_code}' AND h.status = 'live'")).await,
        1
    );
    assert_seats_consistent(&store).await;

    let mut server = start_with(&config, port, &flags).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_of(&store, &c_code).await != "offered" {
        assert!(
            Instant::now() < deadline,
            "the expired offer did not move on"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status_of(&store, &b_code).await, "lapsed");
    assert_seats_consistent(&store).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    store.close().await;
}
on_both_backends!(
    kill_nine_between_an_offer_and_its_expiry_loses_nothing,
    super::kill_nine_between_an_offer_and_its_expiry
);

/// `kill -9` of the real server while it closes a ballot (killed as soon as the close's lease
/// is seen taken), then a restart: the close completes once, nothing duplicated, nothing lost.
async fn kill_nine_while_closing_a_ballot(db: &TestDb) {
    const ADMIN: &str = "crash-test-admin-token-0123456789";
    const ENTRIES: usize = 400;
    let config = db.config();
    let port = free_port();
    let mut server = start_with(&config, port, &["--admin-token", ADMIN]).await;
    let client = reqwest::Client::new();
    let now = chrono::Utc::now();
    let iran = |t: chrono::DateTime<chrono::Utc>| nobat::http::v1::iran_rfc3339(t.timestamp());
    let tomorrow = nobat::domain::time::iran_date(now) + chrono::Days::new(1);
    let (status, ballot) = post(
        &client,
        format!("{}/v1/admin/ballots", server.base),
        Some(ADMIN),
        json!({
            "service": "first_issuance",
            "provinces": ["tehran"],
            "opens_at": iran(now),
            "closes_at": iran(now + chrono::Duration::seconds(6)),
            "seats": { "from_date": tomorrow.to_string(), "to_date": (tomorrow + chrono::Days::new(3)).to_string() },
        }),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{ballot}");
    let id = ballot["ballot_id"].as_str().unwrap().to_string();
    // The entries go in as rows (the API's path is tested elsewhere): fast enough to be in
    // before the close.
    let store = Store::connect(&config).await.unwrap();
    let apps: Vec<String> = (0..ENTRIES)
        .map(|i| format!("('app{i}', 'nc{i:08}', 'first_issuance', '{{}}', TRUE, 0)"))
        .collect();
    let pays: Vec<String> = (0..ENTRIES)
        .map(|i| format!("('pay{i}', 'app{i}', 1000, 'paid', 'sandbox', 0)"))
        .collect();
    crate::helpers::exec(
        &store,
        &format!(
            "INSERT INTO applications (id, national_code, service, form_json, eligible, created_at) VALUES {}",
            apps.join(", ")
        ),
    )
    .await;
    crate::helpers::exec(
        &store,
        &format!(
            "INSERT INTO payments (id, application_id, amount_rials, status, gateway, created_at) VALUES {}",
            pays.join(", ")
        ),
    )
    .await;
    let rows: Vec<String> = (0..ENTRIES)
        .map(|i| {
            format!(
                "('{id}', 'nc{i:08}', 'key{i:08}', 'app{i}', 'pay{i}', {}, {}, 'tehran', 0, '{{}}', 0, 0)",
                35.5 + (i % 40) as f64 * 0.01,
                51.2 + (i / 40) as f64 * 0.02
            )
        })
        .collect();
    crate::helpers::exec(
        &store,
        &format!(
            "INSERT INTO ballot_entries (ballot_id, national_code, entry_key, application_id, payment_id, home_lat, home_lon, province, priority, preferences_json, created_at, updated_at) VALUES {}",
            rows.join(", ")
        ),
    )
    .await;
    let status_of = |store: Store, id: String| async move {
        match &store {
            Store::Sqlite(p) => {
                sqlx::query_scalar::<_, String>("SELECT status FROM ballots WHERE id = ?1")
                    .bind(&id)
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
            Store::Postgres(p) => {
                sqlx::query_scalar::<_, String>("SELECT status FROM ballots WHERE id = $1")
                    .bind(&id)
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status_of(store.clone(), id.clone()).await;
        if s == "closing" || s == "published" {
            break;
        }
        assert!(Instant::now() < deadline, "the close did not start");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    let at_kill = status_of(store.clone(), id.clone()).await;
    eprintln!("ballot status after kill -9: {at_kill}");
    if at_kill == "closing" {
        // Nothing of the close was written, and its lease is the dead process's: let it
        // expire (what CLOSE_LEASE_SECS of waiting does).
        assert_eq!(scalar(&store, "SELECT COUNT(*) FROM appointments").await, 0);
        crate::helpers::exec(&store, "UPDATE ballots SET lease_until = 0").await;
    }
    let mut server = start_with(&config, port, &["--admin-token", ADMIN]).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while status_of(store.clone(), id.clone()).await != "published" {
        assert!(
            Instant::now() < deadline,
            "the close did not complete after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let placed = scalar(
        &store,
        "SELECT COUNT(*) FROM ballot_entries WHERE tracking_code IS NOT NULL",
    )
    .await;
    assert!(placed > 0);
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM ballot_entries WHERE tracking_code IS NULL AND reason IS NULL"
        )
        .await,
        0,
        "every entry has an outcome"
    );
    assert_eq!(
        scalar(&store, "SELECT COUNT(*) FROM appointments").await,
        placed
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(DISTINCT national_code) FROM appointments"
        )
        .await,
        placed
    );
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM outbox").await, placed);
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM slots WHERE ballot_id IS NOT NULL"
        )
        .await,
        0
    );
    assert_seats_consistent(&store).await;
    server.child.kill().ok();
    server.child.wait().unwrap();
    store.close().await;
}
on_both_backends!(
    kill_nine_while_closing_a_ballot_t,
    super::kill_nine_while_closing_a_ballot
);
