//! The pages' client of the JSON API, in process: a request goes through the API's own router
//! (handlers, extractors, limits, the booking engine), not over a socket. What the page gets
//! back is what the registration frontend would get: a JSON body or a problem.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, HeaderName, Method, Request};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use crate::http::AppState;

/// Largest API answer a page reads (a week of slots is tens of kilobytes).
const ANSWER_BYTES_MAX: usize = 4 << 20;

/// The API's routes with their state, called in process.
#[derive(Clone)]
pub struct Api {
    router: Router,
    client_ip_header: Option<HeaderName>,
}

impl Caller {
    /// The same caller, carrying a waiting room's pass.
    pub fn with_pass(mut self, pass: Option<String>) -> Self {
        self.pass = pass;
        self
    }
}

/// A refusal from the API: its problem, as the client reads it.
#[derive(Debug, Clone, Default)]
pub struct ApiProblem {
    pub status: u16,
    pub code: String,
    pub detail: String,
    /// Failed fields: (field, code, detail).
    pub errors: Vec<(String, String, String)>,
    /// The rest of the problem (e.g. `failed` eligibility rules, `alternatives`).
    pub body: Value,
}

/// Who a page acts for: the session token, and the client's address (failed logins are
/// counted per address).
#[derive(Clone, Default)]
pub struct Caller {
    pub token: Option<String>,
    /// A waiting room's pass, sent as `Booking-Pass`.
    pass: Option<String>,
    peer: Option<ConnectInfo<SocketAddr>>,
    forwarded: Option<(HeaderName, axum::http::HeaderValue)>,
}

impl Api {
    pub fn new(state: AppState) -> Self {
        let client_ip_header = state
            .config
            .client_ip_header
            .as_deref()
            .and_then(|h| HeaderName::try_from(h).ok());
        let router = crate::http::applicant_routes(&state)
            .merge(crate::http::staff::routes())
            .with_state(state);
        Self {
            router,
            client_ip_header,
        }
    }

    /// The caller of a page request: its peer address (or the proxy's header) and `token`.
    pub fn caller(
        &self,
        headers: &HeaderMap,
        peer: Option<ConnectInfo<SocketAddr>>,
        token: Option<String>,
    ) -> Caller {
        let forwarded = self
            .client_ip_header
            .as_ref()
            .and_then(|name| headers.get(name).map(|v| (name.clone(), v.clone())));
        Caller {
            token,
            pass: None,
            peer,
            forwarded,
        }
    }

    /// The API's routes of another router (the planner's, which has its own state).
    pub fn from_router(router: Router) -> Self {
        Self {
            router,
            client_ip_header: None,
        }
    }

    /// Sends a request; gives the status and the body's bytes.
    pub async fn send(
        &self,
        caller: &Caller,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> Result<(axum::http::StatusCode, axum::body::Bytes), ApiProblem> {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = &caller.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(pass) = &caller.pass {
            request = request.header(crate::http::room::PASS_HEADER, pass);
        }
        if let Some((name, value)) = &caller.forwarded {
            request = request.header(name, value);
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let mut request = request.body(body).map_err(|_| internal())?;
        if let Some(peer) = caller.peer {
            request.extensions_mut().insert(peer);
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .map_err(|_| internal())?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), ANSWER_BYTES_MAX)
            .await
            .map_err(|_| internal())?;
        Ok((status, bytes))
    }

    /// Calls the API; 2xx gives the JSON body (`Null` when there is none), anything else the
    /// problem.
    pub async fn call(
        &self,
        caller: &Caller,
        method: Method,
        uri: &str,
        body: Option<&Value>,
    ) -> Result<Value, ApiProblem> {
        let (content_type, body) = match body {
            Some(v) => (
                Some("application/json"),
                Body::from(serde_json::to_vec(v).unwrap_or_default()),
            ),
            None => (None, Body::empty()),
        };
        let (status, bytes) = self.send(caller, method, uri, content_type, body).await?;
        read_answer(status, &bytes)
    }

    /// `call`, with the body read as `T`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        uri: &str,
    ) -> Result<T, ApiProblem> {
        let value = self.call(caller, Method::GET, uri, None).await?;
        serde_json::from_value(value).map_err(|_| internal())
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        caller: &Caller,
        uri: &str,
        body: &Value,
    ) -> Result<T, ApiProblem> {
        let value = self.call(caller, Method::POST, uri, Some(body)).await?;
        serde_json::from_value(value).map_err(|_| internal())
    }
}

/// A JSON answer: its body when 2xx, else its problem.
pub fn read_answer(status: axum::http::StatusCode, bytes: &[u8]) -> Result<Value, ApiProblem> {
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(bytes).unwrap_or(Value::Null)
    };
    if status.is_success() {
        return Ok(value);
    }
    let text = |k: &str| value[k].as_str().unwrap_or_default().to_string();
    let errors = value["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let f = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                    (f("field"), f("code"), f("detail"))
                })
                .collect()
        })
        .unwrap_or_default();
    Err(ApiProblem {
        status: status.as_u16(),
        code: text("code"),
        detail: text("detail"),
        errors,
        body: value,
    })
}

fn internal() -> ApiProblem {
    ApiProblem {
        status: 500,
        code: "internal".into(),
        detail: "an internal error occurred".into(),
        ..ApiProblem::default()
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
