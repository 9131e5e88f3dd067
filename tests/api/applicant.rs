//! Drives the applicant journey over HTTP, as the frontend does.

use chrono::NaiveDate;
use nobat::domain::registry::CitizenRecord;
use nobat::planning::scenario::Scenario;
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// Eligible citizens of the bundled scenario on the test date, from index `skip` on.
pub fn eligible_citizens(skip: usize, n: usize) -> Vec<CitizenRecord> {
    let scenario = Scenario::from_toml_str(nobat::store::seed::BUNDLED_SCENARIO, "small").unwrap();
    let generator = scenario.citizen_generator();
    let today = NaiveDate::from_ymd_opt(2024, 9, 22).unwrap();
    (0..generator.count())
        .filter_map(|i| generator.citizen(i))
        .filter(|c| c.eligibility(today).is_eligible())
        .skip(skip)
        .take(n)
        .collect()
}

pub fn form(c: &CitizenRecord) -> Value {
    json!({
        "personal": {
            "national_code": c.national_code.to_string(),
            "birth_certificate_serial": c.birth_certificate_serial.to_string(),
            "first_name": c.first_name,
            "last_name": c.last_name,
            "gender": c.gender.as_str(),
            "birth_date": c.birth_date.to_string(),
            "nationality": c.nationality,
            "birth_certificate_has_photo": c.birth_certificate_has_photo,
        },
        "father": { "first_name": "علی", "last_name": c.last_name },
        "mother": { "first_name": "مریم", "last_name": "کریمی" },
        "mobile": c.mobile.to_string(),
        "postal_code": c.postal_code.to_string(),
        "address": format!("{}، خیابان اصلی، پلاک ۱۲", c.city),
    })
}

pub struct Ready {
    pub citizen: CitizenRecord,
    pub token: String,
    pub application_id: String,
    pub payment_id: String,
}

impl TestApp {
    pub async fn post(&self, token: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn login(&self, c: &CitizenRecord) -> String {
        let (status, body) = self
            .post(None, "/v1/sessions", &json!({ "national_code": c.national_code.to_string(), "birth_certificate_serial": c.birth_certificate_serial.to_string() }))
            .await;
        assert_eq!(status, 201, "login: {body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Logs in, applies for first issuance and pays (sandbox approves).
    pub async fn ready(&self, c: &CitizenRecord) -> Ready {
        let token = self.login(c).await;
        let (status, body) = self
            .post(
                Some(&token),
                "/v1/applications",
                &json!({ "service": "first_issuance", "form": form(c) }),
            )
            .await;
        assert_eq!(status, 201, "application: {body}");
        let application_id = body["application_id"].as_str().unwrap().to_string();
        let (status, body) = self
            .post(
                Some(&token),
                "/v1/payments",
                &json!({ "application_id": application_id }),
            )
            .await;
        assert_eq!(status, 201, "payment: {body}");
        assert_eq!(body["status"], "paid");
        Ready {
            citizen: c.clone(),
            token,
            application_id,
            payment_id: body["payment_id"].as_str().unwrap().to_string(),
        }
    }
}

/// Offices offering first issuance nearest to a point, with their earliest free slots.
pub async fn nearest_offices(app: &TestApp, c: &CitizenRecord) -> Vec<Value> {
    let (status, body) = app
        .get(
            None,
            &format!(
                "/v1/offices?near={},{}&service=first_issuance&limit=5",
                c.location.lat, c.location.lon
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}
