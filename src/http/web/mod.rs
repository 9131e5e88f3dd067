//! The human fronts, server-rendered: the applicant portal (`/`, Persian right-to-left with an
//! English toggle), the office counter (`/staff`), the API reference (`/docs`) and their embedded assets. USSD lives in
//! `http::ussd`.
//!
//! The pages are a client of the JSON API, in process ([`api::Api`]): every step a page takes
//! is the request the registration frontend would send, through the same handlers, checks,
//! limits and booking engine, so the pages cannot drift from the API or book differently.
//!
//! Security as in the API: the session token lives in an HttpOnly, SameSite=Lax cookie; every
//! form carries a CSRF token that must equal the `nobat_csrf` cookie (double submit); nothing
//! personal goes in a URL (national codes and tracking codes travel in POST bodies and
//! cookies). Every page works without JavaScript (forms, POST-redirect-GET); `app.js` only adds
//! the hold countdown, "near me" and the print button.

pub mod api;
pub mod assets;
pub mod console;
pub mod counter;
pub mod docs;
pub mod portal;
pub mod queue;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};

use super::AppState;
use crate::domain::jalali::to_persian_digits;

/// Name/value pairs of a submitted form (or a GET form's query) are at most this many.
const FORM_FIELDS_MAX: usize = 200;

/// Routes of the pages and their assets.
pub fn routes(state: &AppState) -> Router<AppState> {
    let api = api::Api::new(state.clone());
    Router::new()
        .merge(portal::routes())
        .merge(queue::routes())
        .merge(counter::routes())
        .route("/docs", get(docs::page))
        .route("/lang", get(switch_language))
        .route("/assets/{name}", get(assets::serve))
        .layer(axum::Extension(api))
}

/// The page's language: Persian (the default) or English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fa,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fa => "fa",
            Lang::En => "en",
        }
    }

    pub fn dir(self) -> &'static str {
        match self {
            Lang::Fa => "rtl",
            Lang::En => "ltr",
        }
    }

    /// The Persian or the English text.
    pub fn t<'a>(self, fa: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Fa => fa,
            Lang::En => en,
        }
    }

    /// Digits as the reader writes them: Persian digits in Persian.
    pub fn digits(self, text: &str) -> String {
        match self {
            Lang::Fa => to_persian_digits(text),
            Lang::En => text.to_string(),
        }
    }

    /// A Jalali `YYYY-MM-DD` as the reader reads it: `۱ مهر ۱۴۰۳` in Persian (digits and
    /// dashes would be reordered right to left), as written in English.
    pub fn jalali(self, date: &str) -> String {
        match (self, crate::domain::JalaliDate::parse(date)) {
            (Lang::Fa, Ok(d)) => d.persian_display(),
            _ => date.to_string(),
        }
    }

    /// A whole number with thousands separators (`١٬٤٥٠٬٠٠٠` in Persian).
    pub fn number(self, n: i64) -> String {
        let raw = n.unsigned_abs().to_string();
        let mut grouped = String::new();
        for (i, c) in raw.chars().enumerate() {
            if i > 0 && (raw.len() - i) % 3 == 0 {
                grouped.push_str(self.t("٬", ","));
            }
            grouped.push(c);
        }
        let sign = if n < 0 { "-" } else { "" };
        self.digits(&format!("{sign}{grouped}"))
    }
}

/// What every page needs about its request: language, CSRF token, cookies.
pub struct Ctx {
    pub lang: Lang,
    pub csrf: String,
    cookies: Vec<(String, String)>,
    /// Cookies to set with the response.
    pub set_cookies: Vec<String>,
    /// The path of this page (for the language toggle to come back to).
    pub path: String,
    /// The request's headers and peer address, for the API calls made on its behalf.
    pub headers: HeaderMap,
    pub peer: Option<axum::extract::ConnectInfo<std::net::SocketAddr>>,
    /// Reload the page after this many seconds (a running job's page; no script needed).
    pub refresh_secs: Option<u32>,
}

pub const CSRF_COOKIE: &str = "nobat_csrf";
const LANG_COOKIE: &str = "nobat_lang";

impl Ctx {
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a cookie for the whole site: HttpOnly, SameSite=Lax; `max_age_secs` 0 deletes it.
    pub fn set_cookie(&mut self, name: &str, value: &str, max_age_secs: i64) {
        self.set_cookies.push(format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}"
        ));
    }

    /// The hidden CSRF field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.csrf); }
    }

    /// A page in the site's layout, with its cookies and headers.
    pub fn page(&self, status: StatusCode, title: &str, body: Markup) -> Response {
        let lang = self.lang;
        let other = match lang {
            Lang::Fa => ("en", "English"),
            Lang::En => ("fa", "فارسی"),
        };
        let markup = html! {
            (DOCTYPE)
            html lang=(lang.code()) dir=(lang.dir()) {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    @if let Some(secs) = self.refresh_secs { meta http-equiv="refresh" content=(secs); }
                    title { (title) " · " (lang.t("نوبت کارت ملی هوشمند", "Smart ID card appointments")) }
                    link rel="stylesheet" href="/assets/app.css";
                    script src="/assets/app.js" defer {}
                }
                body {
                    a.skip href="#main" { (lang.t("پرش به محتوا", "Skip to content")) }
                    header.top {
                        a.brand href="/" { (lang.t("نوبت", "nobat")) }
                        nav aria-label=(lang.t("پیوندها", "Links")) {
                            a href="/status" { (lang.t("پیگیری وضعیت", "Track status")) }
                            a href={ "/lang?to=" (other.0) "&next=" (self.path) } lang=(other.0) hreflang=(other.0) { (other.1) }
                        }
                    }
                    main #main { h1 { (title) } (body) }
                    footer {
                        p { (lang.t("سامانه نوبت‌دهی ثبت‌نام کارت ملی هوشمند", "Smart national ID card appointment booking")) }
                    }
                }
            }
        };
        let mut response = (status, markup.into_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        page_headers(headers);
        self.attach_cookies(headers);
        response
    }

    /// See-other to `to` (POST-redirect-GET), with this context's cookies.
    pub fn redirect(&self, to: &str) -> Response {
        let mut response = StatusCode::SEE_OTHER.into_response();
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(to) {
            headers.insert(header::LOCATION, v);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.attach_cookies(headers);
        response
    }

    fn attach_cookies(&self, headers: &mut HeaderMap) {
        for c in &self.set_cookies {
            if let Ok(v) = HeaderValue::from_str(c) {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }
}

/// Headers of every page: never cached (they show personal data), no framing, scripts and
/// styles from this origin only (no inline script, so an injected one does not run).
fn page_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn parse_cookies(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            Some((n.to_string(), v.to_string()))
        })
        .take(64)
        .collect()
}

/// A fresh CSRF token: 128 random bits, hex.
fn new_csrf() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_token_shaped(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let cookies = parse_cookies(&parts.headers);
        let find = |name: &str| {
            cookies
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let lang = match find(LANG_COOKIE).as_deref() {
            Some("en") => Lang::En,
            _ => Lang::Fa,
        };
        let mut set_cookies = Vec::new();
        let csrf = match find(CSRF_COOKIE).filter(|t| is_token_shaped(t)) {
            Some(t) => t,
            None => {
                let t = new_csrf();
                // A day; the session cookie lives less.
                set_cookies.push(format!(
                    "{CSRF_COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age=86400"
                ));
                t
            }
        };
        Ok(Ctx {
            lang,
            csrf,
            cookies,
            set_cookies,
            path: parts.uri.path().to_string(),
            headers: parts.headers.clone(),
            peer: parts.extensions.get().cloned(),
            refresh_secs: None,
        })
    }
}

/// A submitted form's fields (the body of a POST, the query of a GET), in order. A body that
/// is not a form gives no fields, and a POST without its CSRF field is refused by the handler.
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The field, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_string()
    }

    /// Whether the form's CSRF token is the cookie's (compared in constant time).
    pub fn csrf_ok(&self, ctx: &Ctx) -> bool {
        use subtle::ConstantTimeEq;
        let sent = self.get("csrf").unwrap_or("");
        let held = ctx.cookie(CSRF_COOKIE).unwrap_or("");
        is_token_shaped(held) && bool::from(sent.as_bytes().ct_eq(held.as_bytes()))
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let fields = axum::Form::<Vec<(String, String)>>::from_request(req, state)
            .await
            .map(|axum::Form(f)| f)
            .unwrap_or_default();
        Ok(Fields(fields.into_iter().take(FORM_FIELDS_MAX).collect()))
    }
}

/// A submitted form whose CSRF token matches the cookie: every page's POST handler takes its
/// fields through this, so none can forget the check. A form without a valid token is answered
/// with [`csrf_refused`] before the handler runs.
pub struct CheckedForm(pub Fields);

impl<S: Send + Sync> FromRequest<S> for CheckedForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let Ok(ctx) = Ctx::from_request_parts(&mut parts, state).await;
        let Ok(fields) = Fields::from_request(Request::from_parts(parts, body), state).await;
        if fields.csrf_ok(&ctx) {
            Ok(CheckedForm(fields))
        } else {
            Err(csrf_refused(&ctx))
        }
    }
}

/// The page a form without a valid CSRF token gets.
pub fn csrf_refused(ctx: &Ctx) -> Response {
    let l = ctx.lang;
    ctx.page(
        StatusCode::FORBIDDEN,
        l.t("فرم منقضی شده است", "The form has expired"),
        html! {
            p { (l.t("این فرم دیگر معتبر نیست. صفحه را دوباره باز کنید و دوباره بفرستید.",
                     "This form is no longer valid. Open the page again and resubmit.")) }
            p { a href="/" { (l.t("بازگشت به صفحه اصلی", "Back to the start")) } }
        },
    )
}

/// `GET /lang?to=en&next=/path`: sets the language cookie and goes back to the page.
async fn switch_language(mut ctx: Ctx, fields: Fields) -> Response {
    let to = if fields.get("to") == Some("en") {
        "en"
    } else {
        "fa"
    };
    ctx.set_cookie(LANG_COOKIE, to, 365 * 86_400);
    let next = fields.text("next");
    // Only a path of this site: never an open redirect.
    let next = if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/".to_string()
    };
    ctx.redirect(&next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_group_and_use_persian_digits() {
        assert_eq!(Lang::En.number(1_450_000), "1,450,000");
        assert_eq!(Lang::Fa.number(1_450_000), "۱٬۴۵۰٬۰۰۰");
        assert_eq!(Lang::En.number(12), "12");
        assert_eq!(Lang::En.number(-1234), "-1,234");
    }

    #[test]
    fn csrf_tokens_are_fresh_and_shaped() {
        let a = new_csrf();
        assert!(is_token_shaped(&a));
        assert_ne!(a, new_csrf());
        assert!(!is_token_shaped("../../etc"));
    }
}
