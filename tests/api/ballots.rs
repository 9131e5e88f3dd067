//! Ballot windows in the running server (issue 20): the whole journey (open, enter, edit,
//! withdraw, close, results, status, notices), one entry per citizen and ballot in the
//! database, entries refused after the close, two processes closing once, a close whose
//! process died holding the lease, and the export that `ballot verify` audits.

use chrono::Duration;
use serde_json::{json, Value};

use crate::applicant::{eligible_citizens, Ready};
use crate::helpers::{scalar, test_clock, try_exec, TestApp, TestDb};
use crate::on_both_backends;
use crate::races::assert_seats_consistent;
use crate::staff::ADMIN_TOKEN;
use nobat::domain::lottery::LotterySeed;
use nobat::domain::time::Clock;
use nobat::store::CLOSE_LEASE_SECS;

/// Monday 2 Mehr 1403 and the day after: the ballot's seat days.
const FROM: &str = "2024-09-23";
const TO: &str = "2024-09-24";

async fn app_on(db: &TestDb) -> TestApp {
    TestApp::spawn_with(db, test_clock(), |s| {
        s.admin_token = Some(ADMIN_TOKEN.to_string());
        s.outbox_interval = None;
        s.ballot_interval = None;
        // Two nodes of one deployment accept each other's session tokens.
        s.token_secret = Some("ballot-tests-token-secret-0123456789abcdef".to_string());
    })
    .await
}

fn at(app: &TestApp, seconds_from_now: i64) -> String {
    nobat::http::v1::iran_rfc3339(
        (app.clock.now() + Duration::seconds(seconds_from_now)).timestamp(),
    )
}

/// A ballot over every office, opening in a minute and closing in an hour.
async fn create(app: &TestApp) -> Value {
    let (status, body) = app
        .post(
            Some(ADMIN_TOKEN),
            "/v1/admin/ballots",
            &json!({
                "service": "first_issuance",
                "opens_at": at(app, 60),
                "closes_at": at(app, 3600),
                "seats": { "from_date": FROM, "to_date": TO },
                "priority_rules": [{ "when": { "age_at_least": 70 }, "class": 2 }],
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

fn entry(me: &Ready, preferences: Value) -> Value {
    json!({ "application_id": me.application_id, "payment_id": me.payment_id, "preferences": preferences })
}

async fn tick(app: &TestApp, owner: &str) -> Vec<String> {
    app.state
        .engine
        .ballot_tick(owner)
        .await
        .expect("ballot tick")
}

async fn ready(app: &TestApp, skip: usize, n: usize) -> Vec<Ready> {
    let mut out = Vec::new();
    for c in eligible_citizens(skip, n) {
        out.push(app.ready(&c).await);
    }
    out
}

/// The first Tehran office (every ballot here withholds its seats).
fn tehran_office(app: &TestApp) -> String {
    let directory = app.state.directory();
    let office = directory.all().iter().find(|o| o.province == "tehran");
    office.unwrap().id.to_string()
}

/// The journey: open, enter, edit, withdraw, close, results, entry outcomes, status, notices.
async fn journey(db: &TestDb) {
    let app = app_on(db).await;
    let people = ready(&app, 0, 4).await;
    let ballot = create(&app).await;
    let id = ballot["ballot_id"].as_str().unwrap().to_string();
    let commitment = ballot["commitment"].as_str().unwrap().to_string();
    assert_eq!(commitment.len(), 64);
    assert_eq!(ballot["status"], "scheduled");
    assert!(
        ballot.get("seed").is_none(),
        "the seed is secret until the results"
    );
    let path = format!("/v1/ballots/{id}/entry");

    // Before the opening.
    let (status, body) = app
        .put(&people[0].token, &path, &entry(&people[0], json!({})))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ballot_not_open")),
        "{body}"
    );

    app.clock.advance(Duration::seconds(120));
    tick(&app, "node-a").await;
    // The seats are withheld: listed in the ballot, refused to first-come booking.
    let office = tehran_office(&app);
    let (status, slots) = app
        .get(
            None,
            &format!("/v1/offices/{office}/slots?from={FROM}&to={FROM}"),
        )
        .await;
    assert_eq!(status, 200, "{slots}");
    let first = &slots.as_array().unwrap()[0];
    assert_eq!(first["in_ballot"]["ballot_id"], id.as_str(), "{first}");
    let (status, body) = app
        .post(
            Some(&people[3].token),
            "/v1/holds",
            &json!({ "application_id": people[3].application_id, "office_id": office, "start": first["start"] }),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("not_yet_released")),
        "{body}"
    );
    assert_eq!(body["extra"]["in_ballot"], true, "{body}");

    // Enter, then edit: 201 then 200.
    let (status, body) = app
        .put(&people[0].token, &path, &entry(&people[0], json!({})))
        .await;
    assert_eq!(status, 201, "{body}");
    let key = body["entry_key"].as_str().unwrap().to_string();
    let (status, body) = app
        .put(
            &people[0].token,
            &path,
            &entry(&people[0], json!({ "part_of_day": "morning" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["preferences"]["part_of_day"], "morning");
    assert_eq!(body["entry_key"], key.as_str());

    // Bad preferences: 422 naming the field, nothing stored.
    let (status, body) = app
        .put(
            &people[1].token,
            &path,
            &entry(
                &people[1],
                json!({ "max_km": 1000.0, "earliest_date": "2024-10-30" }),
            ),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_preferences")),
        "{body}"
    );
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["preferences.max_km", "preferences.earliest_date"]);
    let (status, _) = app.get(Some(&people[1].token), &path).await;
    assert_eq!(status, 404);
    let (status, body) = app
        .put(&people[1].token, &path, &entry(&people[1], json!({})))
        .await;
    assert_eq!(status, 201, "{body}");

    // Withdraw.
    let (status, body) = app
        .put(&people[2].token, &path, &entry(&people[2], json!({})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = app.delete(&people[2].token, &path).await;
    assert_eq!(status, 204);
    let (status, _) = app.get(Some(&people[2].token), &path).await;
    assert_eq!(status, 404);

    let (_, public) = app.get(None, &format!("/v1/ballots/{id}")).await;
    assert_eq!(
        (public["entries"].as_i64(), public["status"].as_str()),
        (Some(2), Some("open"))
    );
    let (status, body) = app.get(None, &format!("/v1/ballots/{id}/results")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ballot_not_published"))
    );

    // The close: entries refused from then on, published once.
    app.clock.advance(Duration::seconds(3600));
    let (status, body) = app
        .put(&people[2].token, &path, &entry(&people[2], json!({})))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ballot_closed")),
        "{body}"
    );
    let (status, body) = app.delete(&people[0].token, &path).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ballot_closed")),
        "{body}"
    );
    assert_eq!(tick(&app, "node-a").await, vec![id.clone()]);
    assert!(tick(&app, "node-a").await.is_empty(), "published once");

    let (status, results) = app.get(None, &format!("/v1/ballots/{id}/results")).await;
    assert_eq!(status, 200, "{results}");
    let seed = LotterySeed::from_hex(results["seed"].as_str().unwrap()).unwrap();
    assert!(
        seed.matches(&commitment),
        "the revealed seed matches its commitment"
    );
    assert_eq!(results["results"]["entries"], 2);
    assert_eq!(results["results"]["placed"], 2, "{results}");
    assert!(results
        .to_string()
        .find(&people[0].citizen.national_code.to_string())
        .is_none());

    // Each entrant's outcome, their appointment in /v1/status, one notice each.
    for me in &people[..2] {
        let (status, mine) = app.get(Some(&me.token), &path).await;
        assert_eq!(status, 200, "{mine}");
        assert_eq!(mine["outcome"]["status"], "placed", "{mine}");
        let code = mine["outcome"]["tracking_code"].as_str().unwrap();
        let (status, st) = app
            .get(
                None,
                &format!(
                    "/v1/status?national_code={}&tracking_code={code}",
                    me.citizen.national_code
                ),
            )
            .await;
        assert_eq!(
            (status, st["status"].as_str()),
            (200, Some("booked")),
            "{st}"
        );
        assert!(
            st["history"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["kind"] == "booked_by_ballot"),
            "{st}"
        );
    }
    let (_, mine) = app.get(Some(&people[0].token), &path).await;
    assert!(
        mine["outcome"]["start"].as_str().unwrap().contains("T0"),
        "a morning seat: {mine}"
    );
    assert_eq!(
        scalar(
            &app.store,
            &format!("SELECT COUNT(*) FROM outbox WHERE notice_key = 'ballot:{id}'")
        )
        .await,
        2
    );
    // Leftover seats are back to first-come booking; seats are backed one to one.
    let (_, slots) = app
        .get(
            None,
            &format!("/v1/offices/{office}/slots?from={FROM}&to={FROM}"),
        )
        .await;
    assert!(slots
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s.get("in_ballot").is_none()));
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM slots WHERE ballot_id IS NOT NULL"
        )
        .await,
        0
    );
    let (status, body) = app
        .post(
            Some(&people[3].token),
            "/v1/holds",
            &json!({ "application_id": people[3].application_id, "office_id": office, "start": slots[1]["start"] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_seats_consistent(&app.store).await;

    // The export verifies; a tampered assignment and a wrong seed do not.
    let dir = tempfile::tempdir().unwrap();
    let file = nobat::cli::ballot::export(&app.store, &id, dir.path())
        .await
        .unwrap();
    let record: nobat::planning::ballot::BallotRecord =
        serde_json::from_reader(std::fs::File::open(&file).unwrap()).unwrap();
    assert_eq!(record.input.entries.len(), 2);
    let verified = nobat::planning::ballot::verify(&record).expect("the export verifies");
    assert_eq!(verified.placed, 2);
    let mut tampered = record.clone();
    let other = tampered
        .input
        .seats
        .iter()
        .find(|s| {
            (s.office_id.as_str(), s.date, s.start)
                != (
                    tampered.placements[0].office_id.as_str(),
                    tampered.placements[0].date,
                    tampered.placements[0].start,
                )
        })
        .unwrap()
        .clone();
    tampered.placements[0].office_id = other.office_id;
    tampered.placements[0].date = other.date;
    tampered.placements[0].start = other.start;
    assert!(nobat::planning::ballot::verify(&tampered).is_err());
    let mut wrong_seed = record.clone();
    wrong_seed.seed = "00".repeat(32);
    assert!(nobat::planning::ballot::verify(&wrong_seed).is_err());
    // The close's outcome equals the pure close re-run on the exported input.
    let again = nobat::planning::ballot::close(&record.input, &seed).unwrap();
    // (distance_km went through JSON text, which rounds its last digit on parsing.)
    let seat = |p: &nobat::planning::ballot::Placement| {
        (
            p.key.clone(),
            p.office_id.clone(),
            p.date,
            p.start,
            p.cost_m,
            p.part_of_day_kept,
        )
    };
    assert_eq!(
        again.placements.iter().map(seat).collect::<Vec<_>>(),
        record.placements.iter().map(seat).collect::<Vec<_>>()
    );
    assert_eq!(again.unplaced, record.unplaced);
    app.stop().await;
}
on_both_backends!(ballot_journey, super::journey);

/// The database keeps one entry per citizen and ballot, whatever the code does.
async fn one_entry_per_citizen(db: &TestDb) {
    let app = app_on(db).await;
    let me = ready(&app, 4, 1).await.remove(0);
    let id = create(&app).await["ballot_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(Duration::seconds(120));
    let path = format!("/v1/ballots/{id}/entry");
    let (status, body) = app.put(&me.token, &path, &entry(&me, json!({}))).await;
    assert_eq!(status, 201, "{body}");
    let second = format!(
        "INSERT INTO ballot_entries (ballot_id, national_code, entry_key, application_id, payment_id, home_lat, home_lon, priority, preferences_json, created_at, updated_at) \
         VALUES ('{id}', '{}', 'another-key', 'a', 'p', 35.0, 51.0, 0, '{{}}', 0, 0)",
        me.citizen.national_code
    );
    assert!(
        try_exec(&app.store, &second).await.is_err(),
        "a second entry is refused"
    );
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM ballot_entries").await,
        1
    );
    app.stop().await;
}
on_both_backends!(ballot_one_entry_per_citizen, super::one_entry_per_citizen);

/// A process that took the close's lease and died (kill -9 before its one transaction
/// committed leaves exactly this) holds the close until the lease expires; then another
/// process closes it, once.
async fn dead_closer(db: &TestDb) {
    let app = app_on(db).await;
    let people = ready(&app, 5, 2).await;
    let id = create(&app).await["ballot_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(Duration::seconds(120));
    tick(&app, "node-a").await;
    for me in &people {
        let (status, body) = app
            .put(
                &me.token,
                &format!("/v1/ballots/{id}/entry"),
                &entry(me, json!({})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    app.clock.advance(Duration::seconds(3600));
    let now = app.clock.now().timestamp();
    assert!(app
        .store
        .claim_ballot_close(&id, "dead", now)
        .await
        .unwrap());
    assert!(
        tick(&app, "node-b").await.is_empty(),
        "the lease is the dead process's"
    );
    let (_, public) = app.get(None, &format!("/v1/ballots/{id}")).await;
    assert_eq!(public["status"], "closing");
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM appointments").await,
        0
    );
    app.clock.advance(Duration::seconds(CLOSE_LEASE_SECS + 1));
    assert_eq!(tick(&app, "node-b").await, vec![id.clone()]);
    assert!(tick(&app, "node-c").await.is_empty());
    assert_eq!(
        scalar(&app.store, "SELECT COUNT(*) FROM appointments").await,
        2
    );
    assert_eq!(scalar(&app.store, "SELECT COUNT(*) FROM outbox").await, 2);
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(ballot_dead_closer, super::dead_closer);

/// Two server processes on one database tick at once: the ballot is closed once.
async fn two_nodes(db: &TestDb) {
    let a = app_on(db).await;
    let b = app_on(db).await;
    let people = ready(&a, 7, 3).await;
    let id = create(&a).await["ballot_id"].as_str().unwrap().to_string();
    for app in [&a, &b] {
        app.clock.advance(Duration::seconds(120));
    }
    tick(&a, "node-a").await;
    for me in &people {
        let (status, body) = b
            .put(
                &me.token,
                &format!("/v1/ballots/{id}/entry"),
                &entry(me, json!({})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    for app in [&a, &b] {
        app.clock.advance(Duration::seconds(3600));
    }
    let (one, two) = tokio::join!(
        a.state.engine.ballot_tick("node-a"),
        b.state.engine.ballot_tick("node-b")
    );
    let published = one.unwrap().len() + two.unwrap().len();
    assert_eq!(published, 1, "closed exactly once");
    assert_eq!(
        scalar(&a.store, "SELECT COUNT(*) FROM appointments").await,
        3
    );
    assert_eq!(
        scalar(
            &a.store,
            "SELECT COUNT(*) FROM ballot_entries WHERE tracking_code IS NOT NULL"
        )
        .await,
        3
    );
    assert_seats_consistent(&a.store).await;
    a.stop().await;
    b.stop().await;
}
on_both_backends!(ballot_two_nodes, super::two_nodes);

/// Bad terms are refused with each field named, and nothing is written.
async fn bad_terms(db: &TestDb) {
    let app = app_on(db).await;
    let cases = [
        (
            json!({ "seats": { "from_date": TO, "to_date": FROM } }),
            "invalid_ballot",
            "seats.to_date",
        ),
        (json!({ "max_km": -1.0 }), "invalid_ballot", "max_km"),
        (
            json!({ "priority_rules": [{ "when": { "age_at_least": 70 }, "class": 0 }] }),
            "invalid_ballot",
            "priority_rules[0].class",
        ),
        (
            json!({ "closes_at": at(&app, 30) }),
            "invalid_range",
            "closes_at",
        ),
        (
            json!({ "closes_at": at(&app, 86_400 * 3) }),
            "invalid_range",
            "closes_at",
        ),
        (json!({ "service": "nope" }), "unknown_service", "service"),
        (
            json!({ "provinces": ["atlantis"] }),
            "unknown_province",
            "provinces",
        ),
        (
            json!({ "opens_at": "tomorrow" }),
            "invalid_time",
            "opens_at",
        ),
    ];
    for (change, code, field) in cases {
        let mut body = json!({
            "service": "first_issuance",
            "opens_at": at(&app, 60),
            "closes_at": at(&app, 3600),
            "seats": { "from_date": FROM, "to_date": TO },
        });
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, problem) = app
            .post(Some(ADMIN_TOKEN), "/v1/admin/ballots", &body)
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some(code)),
            "{body}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    assert_eq!(scalar(&app.store, "SELECT COUNT(*) FROM ballots").await, 0);
    app.stop().await;
}
on_both_backends!(ballot_bad_terms, super::bad_terms);

/// A close gives its leftover seats to the waitlist first (issue 21): a waiting entry whose
/// limits fit a leftover seat gets it (auto-accept: an appointment; otherwise an offer in its
/// part of the day), an entrant the ballot placed has their waiting entry fulfilled rather than
/// a second seat, and every other leftover seat is free for first-come booking at once.
async fn leftovers_go_to_waiters_first(db: &TestDb) {
    let app = app_on(db).await;
    let people = ready(&app, 0, 4).await;
    let ballot = create(&app).await;
    let id = ballot["ballot_id"].as_str().unwrap().to_string();
    app.clock.advance(Duration::seconds(120));
    tick(&app, "node-a").await;
    let office = tehran_office(&app);
    let path = format!("/v1/ballots/{id}/entry");
    let (status, body) = app
        .put(&people[0].token, &path, &entry(&people[0], json!({})))
        .await;
    assert_eq!(status, 201, "{body}");
    // Waiting while the ballot withholds every seat: the entrant too, and two who did not enter.
    let join = |who: &Ready, auto_accept: bool, part_of_day: &str| {
        json!({
            "application_id": who.application_id,
            "payment_id": who.payment_id,
            "pick": { "office_ids": [office], "part_of_day": part_of_day,
                      "earliest_date": FROM, "latest_date": TO },
            "auto_accept": auto_accept,
        })
    };
    for (who, auto_accept, part) in [
        (&people[0], true, "any"),
        (&people[1], true, "any"),
        (&people[2], false, "afternoon"),
    ] {
        let (status, body) = app
            .post(
                Some(&who.token),
                "/v1/waitlist",
                &join(who, auto_accept, part),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    app.clock.advance(Duration::seconds(3600));
    assert_eq!(tick(&app, "node-a").await, vec![id.clone()]);
    let waitlist = |who: &Ready| {
        let token = who.token.clone();
        let app = &app;
        async move {
            let (status, list) = app.get(Some(&token), "/v1/waitlist").await;
            assert_eq!(status, 200, "{list}");
            list[0].clone()
        }
    };
    // The entrant: placed by the ballot, their entry fulfilled with that appointment.
    let (_, mine) = app.get(Some(&people[0].token), &path).await;
    assert_eq!(mine["outcome"]["status"], "placed", "{mine}");
    let w0 = waitlist(&people[0]).await;
    assert_eq!(w0["status"], "booked", "{w0}");
    assert_eq!(
        w0["tracking_code"], mine["outcome"]["tracking_code"],
        "{w0}"
    );
    // The auto-accepting waiter: an appointment at the office on a ballot day.
    let w1 = waitlist(&people[1]).await;
    assert_eq!(w1["status"], "booked", "{w1}");
    let code = w1["tracking_code"].as_str().unwrap();
    let (status, appt) = app
        .get(
            None,
            &format!(
                "/v1/status?national_code={}&tracking_code={code}",
                people[1].citizen.national_code
            ),
        )
        .await;
    assert_eq!(
        (status, appt["status"].as_str()),
        (200, Some("booked")),
        "{appt}"
    );
    assert_eq!(
        scalar(
            &app.store,
            &format!(
                "SELECT COUNT(*) FROM appointments a JOIN slots s ON s.id = a.slot_id \
                 WHERE a.tracking_code = '{code}' AND a.office_id = '{office}' AND s.ballot_id IS NULL"
            )
        )
        .await,
        1
    );
    // The other waiter: an offer, held in an afternoon seat of the office.
    let w2 = waitlist(&people[2]).await;
    assert_eq!(w2["status"], "offered", "{w2}");
    let afternoon = scalar(
        &app.store,
        &format!(
            "SELECT COUNT(*) FROM holds h JOIN slots s ON s.id = h.slot_id \
             WHERE h.national_code = '{}' AND h.status = 'live' AND s.office_id = '{office}' \
             AND ((s.start_at + 12600) % 86400) >= 43200",
            people[2].citizen.national_code
        ),
    )
    .await;
    assert_eq!(afternoon, 1, "{w2}");
    // Nothing kept back any longer, seats backed one to one, and the rest is first come.
    assert_eq!(
        scalar(
            &app.store,
            "SELECT COUNT(*) FROM seat_releases WHERE status = 'pending'"
        )
        .await,
        0
    );
    assert!(
        scalar(
            &app.store,
            &format!(
                "SELECT COUNT(*) FROM events WHERE kind = 'ballot_leftovers_to_waitlist' AND subject = '{id}'"
            )
        )
        .await
            == 1
    );
    assert_seats_consistent(&app.store).await;
    let (_, slots) = app
        .get(
            None,
            &format!("/v1/offices/{office}/slots?from={FROM}&to={FROM}"),
        )
        .await;
    let free = slots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["free"].as_i64().unwrap() > 0)
        .expect("a free seat left")
        .clone();
    let (status, body) = app
        .post(
            Some(&people[3].token),
            "/v1/holds",
            &json!({ "application_id": people[3].application_id, "office_id": office, "start": free["start"] }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
}
on_both_backends!(
    ballot_leftovers_go_to_waiters_first,
    super::leftovers_go_to_waiters_first
);

/// Entries arrive together (one batch of the entry writer, or a few) while the close takes its
/// lease: each entry is either acknowledged (201) and then in the close's input, or refused
/// with `ballot_closed` and stored nowhere. Two changes of one citizen's entry sent at once
/// leave one entry.
async fn entries_race_the_close(db: &TestDb) {
    let app = app_on(db).await;
    let people = ready(&app, 20, 40).await;
    let ballot = create(&app).await;
    let id = ballot["ballot_id"].as_str().unwrap().to_string();
    let closes_at = chrono::DateTime::parse_from_rfc3339(ballot["closes_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    app.clock.advance(Duration::seconds(120));
    tick(&app, "node-a").await;
    let path = format!("/v1/ballots/{id}/entry");
    // One citizen changes its entry twice at once, before the race.
    let edits: Vec<Value> = (0..2)
        .map(|k| entry(&people[0], json!({ "max_km": 40 + k })))
        .collect();
    let twice = futures_util::future::join_all(
        edits
            .iter()
            .map(|body| app.put(&people[0].token, &path, body)),
    )
    .await;
    let mut statuses: Vec<u16> = twice.iter().map(|(s, _)| *s).collect();
    statuses.sort();
    assert_eq!(statuses, vec![200, 201], "{twice:?}");
    let bodies: Vec<Value> = people[1..].iter().map(|me| entry(me, json!({}))).collect();
    let puts = futures_util::future::join_all(
        people[1..]
            .iter()
            .zip(&bodies)
            .map(|(me, body)| app.put(&me.token, &path, body)),
    );
    let claim = async {
        tokio::task::yield_now().await;
        app.store
            .claim_ballot_close(&id, "racer", closes_at)
            .await
            .unwrap()
    };
    let (answers, claimed) = tokio::join!(puts, claim);
    assert!(claimed);
    let mut acked = vec![people[0].citizen.national_code.to_string()];
    for (me, (status, body)) in people[1..].iter().zip(&answers) {
        match status {
            201 => acked.push(me.citizen.national_code.to_string()),
            409 => assert_eq!(body["code"], "ballot_closed", "{body}"),
            _ => panic!("{status}: {body}"),
        }
    }
    // After the claim, nothing more is taken.
    let (status, body) = app
        .put(&people[1].token, &path, &entry(&people[1], json!({})))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("ballot_closed"))
    );
    let mut stored: Vec<String> = app
        .store
        .ballot_entries(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.national_code)
        .collect();
    stored.sort();
    acked.sort();
    assert_eq!(stored, acked, "stored exactly the acknowledged entries");
    // The racer's lease expires; the close's input is exactly the acknowledged entries.
    app.clock.advance(Duration::seconds(
        closes_at - app.clock.now().timestamp() + CLOSE_LEASE_SECS + 1,
    ));
    assert_eq!(tick(&app, "node-b").await, vec![id.clone()]);
    let record = nobat::reserve::ballot::export_record(&app.store, &id)
        .await
        .unwrap()
        .expect("published");
    assert_eq!(record.input.entries.len(), acked.len());
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(ballot_entries_race_the_close, super::entries_race_the_close);

/// Each notice of a ballot as (body, start, office, tracking code), and each `booked_by_ballot`
/// event's payload beside its appointment's (slot, office, application) and the subject.
async fn notices_and_events(
    store: &nobat::store::Store,
    id: &str,
) -> (
    Vec<(String, i64, String, String)>,
    Vec<(String, i64, String, String, String)>,
) {
    let notices = format!(
        "SELECT o.body, a.start_at, a.office_id, a.tracking_code FROM outbox o JOIN appointments a ON a.tracking_code = o.tracking_code \
         WHERE o.notice_key = 'ballot:{id}' ORDER BY a.tracking_code"
    );
    let events = "SELECT e.payload_json, a.slot_id, a.office_id, a.application_id, e.subject FROM events e \
         JOIN appointments a ON a.tracking_code = e.subject WHERE e.kind = 'booked_by_ballot' ORDER BY e.subject";
    match store {
        nobat::store::Store::Sqlite(pool) => (
            sqlx::query_as(&notices).fetch_all(pool).await.unwrap(),
            sqlx::query_as(events).fetch_all(pool).await.unwrap(),
        ),
        nobat::store::Store::Postgres(pool) => (
            sqlx::query_as(&notices).fetch_all(pool).await.unwrap(),
            sqlx::query_as(events).fetch_all(pool).await.unwrap(),
        ),
    }
}

/// `(entry_key, office_id, start_at)` of the placed entries, by key.
async fn placed_entries(store: &nobat::store::Store, id: &str) -> Vec<(String, String, i64)> {
    let sql = format!(
        "SELECT entry_key, office_id, start_at FROM ballot_entries WHERE ballot_id = '{id}' AND tracking_code IS NOT NULL ORDER BY entry_key"
    );
    match store {
        nobat::store::Store::Sqlite(pool) => sqlx::query_as(&sql).fetch_all(pool).await,
        nobat::store::Store::Postgres(pool) => sqlx::query_as(&sql).fetch_all(pool).await,
    }
    .unwrap()
}

async fn count(store: &nobat::store::Store, sql: String) -> i64 {
    scalar(store, &sql).await
}

/// A close with more entries than seats, written in bulk (many statements' worth of rows on
/// each table), writes exactly what the pure close decides: one appointment, one notice and
/// one `booked_by_ballot` event per placed entry, each slot's seats taken equal to its
/// appointments and within capacity, every other entry a reason and a distinct waitlist rank,
/// and the placements those of the pure close re-run on the exported input.
async fn bulk_close(db: &TestDb) {
    let app = app_on(db).await;
    // Two small provinces: hundreds of seats, several statements' worth of rows (a debug
    // build's pure close of the whole network's thousands takes minutes).
    let (status, ballot) = app
        .post(
            Some(ADMIN_TOKEN),
            "/v1/admin/ballots",
            &json!({
                "service": "first_issuance",
                "provinces": ["semnan", "ilam"],
                "opens_at": at(&app, 60),
                "closes_at": at(&app, 3600),
                "seats": { "from_date": FROM, "to_date": TO },
            }),
        )
        .await;
    assert_eq!(status, 201, "{ballot}");
    let id = ballot["ballot_id"].as_str().unwrap().to_string();
    app.clock.advance(Duration::seconds(120));
    tick(&app, "node-a").await;
    let seats = scalar(
        &app.store,
        &format!(
            "SELECT CAST(SUM(capacity - taken) AS BIGINT) FROM slots WHERE ballot_id = '{id}'"
        ),
    )
    .await;
    assert!((300..5_000).contains(&seats), "{seats} seats withheld");
    // A quarter more entrants than seats, homes spread around the offices.
    let entrants = (seats + seats / 4) as usize;
    let offices: Vec<(f64, f64)> = app
        .state
        .directory()
        .all()
        .iter()
        .map(|o| (o.location.lat, o.location.lon))
        .collect();
    let now = app.clock.now().timestamp();
    let rows: Vec<String> = (0..entrants)
        .map(|i| {
            let (lat, lon) = offices[i % offices.len()];
            let wobble = (i % 17) as f64 * 0.01;
            let preferences = match i % 4 {
                0 => json!({ "part_of_day": "morning" }),
                1 => json!({ "part_of_day": "afternoon" }),
                2 => json!({ "earliest_date": TO }),
                _ => json!({}),
            };
            format!(
                "('{id}', 'nc{i:06}', 'key{i:06}', 'ap{i}', 'pp{i}', {}, {}, NULL, {}, '{preferences}', {now}, {now})",
                lat + wobble,
                lon - wobble,
                i32::from(i % 9 == 0),
            )
        })
        .collect();
    for chunk in rows.chunks(500) {
        crate::helpers::exec(
            &app.store,
            &format!(
                "INSERT INTO ballot_entries (ballot_id, national_code, entry_key, application_id, payment_id, home_lat, home_lon, province, priority, preferences_json, created_at, updated_at) VALUES {}",
                chunk.join(", ")
            ),
        )
        .await;
    }
    app.clock.advance(Duration::seconds(3600));
    assert_eq!(tick(&app, "node-a").await, vec![id.clone()]);

    let record = nobat::reserve::ballot::export_record(&app.store, &id)
        .await
        .unwrap()
        .expect("published");
    assert_eq!(record.input.entries.len(), entrants);
    let seed = LotterySeed::from_hex(&record.seed).unwrap();
    let pure = nobat::planning::ballot::close(&record.input, &seed).unwrap();
    let placed = pure.placements.len() as i64;
    assert!(
        placed > 0 && (pure.unplaced.len() as i64) >= (entrants as i64 - seats),
        "{placed} placed of {entrants} for {seats} seats"
    );
    // The stored placements are the pure close's, entry by entry.
    let mut decided: Vec<(String, String, i64)> = pure
        .placements
        .iter()
        .map(|p| {
            let at = nobat::domain::time::iran_instant(p.date, p.start).unwrap();
            (p.key.clone(), p.office_id.clone(), at.timestamp())
        })
        .collect();
    decided.sort();
    assert_eq!(placed_entries(&app.store, &id).await, decided);
    // One booked appointment per placed entry, its own tracking code, slot and citizen.
    assert_eq!(
        count(
            &app.store,
            "SELECT COUNT(*) FROM appointments WHERE status = 'booked'".into()
        )
        .await,
        placed
    );
    assert_eq!(
        count(&app.store, format!(
            "SELECT COUNT(*) FROM ballot_entries e JOIN appointments a ON a.tracking_code = e.tracking_code \
             AND a.national_code = e.national_code AND a.slot_id = e.slot_id AND a.application_id = e.application_id \
             WHERE e.ballot_id = '{id}'"
        ))
        .await,
        placed
    );
    // One notice and one event per appointment.
    assert_eq!(
        count(&app.store, format!(
            "SELECT COUNT(*) FROM outbox o JOIN appointments a ON a.tracking_code = o.tracking_code \
             WHERE o.notice_key = 'ballot:{id}' AND o.national_code = a.national_code AND o.body LIKE '%' || a.tracking_code || '%'"
        ))
        .await,
        placed
    );
    assert_eq!(
        count(&app.store, "SELECT COUNT(*) FROM outbox".into()).await,
        placed
    );
    // The notices and events the close assembles in SQL are the server's texts, each one.
    let (notices, events) = notices_and_events(&app.store, &id).await;
    assert_eq!(notices.len() as i64, placed);
    for (body, start_at, office_id, tracking_code) in &notices {
        assert_eq!(
            body,
            &nobat::reserve::ballot::ballot_sms(*start_at, office_id, tracking_code)
        );
    }
    assert_eq!(events.len() as i64, placed);
    for (payload, slot_id, office_id, application_id, _) in &events {
        let payload: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert_eq!(
            payload,
            json!({ "ballot_id": id, "slot_id": slot_id, "office_id": office_id, "application_id": application_id })
        );
    }
    assert_eq!(
        count(
            &app.store,
            "SELECT COUNT(DISTINCT subject) FROM events WHERE kind = 'booked_by_ballot'".into()
        )
        .await,
        placed
    );
    assert_eq!(
        count(
            &app.store,
            "SELECT COUNT(*) FROM events WHERE kind = 'booked_by_ballot'".into()
        )
        .await,
        placed
    );
    // Each slot's seats taken are its appointments, within capacity; seats were free before.
    assert_eq!(
        count(&app.store,
            "SELECT COUNT(*) FROM slots s WHERE s.taken <> (SELECT COUNT(*) FROM appointments a WHERE a.slot_id = s.id)"
                .into()
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app.store,
            "SELECT COUNT(*) FROM slots WHERE taken > capacity".into()
        )
        .await,
        0
    );
    // Every other entry has a reason and a distinct waitlist rank from 1.
    let unplaced = entrants as i64 - placed;
    assert_eq!(
        count(&app.store, format!(
            "SELECT COUNT(DISTINCT waitlist_rank) FROM ballot_entries WHERE ballot_id = '{id}' AND tracking_code IS NULL \
             AND reason IS NOT NULL AND waitlist_rank BETWEEN 1 AND {unplaced}"
        ))
        .await,
        unplaced
    );
    assert_eq!(
        count(
            &app.store,
            "SELECT COUNT(*) FROM slots WHERE ballot_id IS NOT NULL".into()
        )
        .await,
        0,
        "leftover seats are back to first-come booking"
    );
    assert_seats_consistent(&app.store).await;
    app.stop().await;
}
on_both_backends!(ballot_bulk_close, super::bulk_close);
