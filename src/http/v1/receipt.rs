//! The receipt: `GET /v1/appointments/{tracking_code}` as JSON, or with `Accept: text/html` a
//! printable Persian (right-to-left) page.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use super::dto::{AppointmentDto, OfficeRefDto};
use super::{iran_rfc3339, jalali};
use crate::booking::AppointmentRow;
use crate::domain::jalali::to_persian_digits;
use crate::domain::{NationalCode, ServiceCode};
use crate::http::auth::Applicant;
use crate::http::extract::ApiPath;
use crate::http::problem::ProblemCode;
use crate::http::{AppState, Problem};
use crate::reserve::ids::{display_tracking_code, normalise_tracking_code};

pub fn appointment_dto(state: &AppState, a: &AppointmentRow) -> AppointmentDto {
    let directory = state.directory();
    let office = directory.get(&a.office_id);
    let (jalali_date, jalali_display) = jalali(a.start_at);
    AppointmentDto {
        tracking_code: a.tracking_code.clone(),
        tracking_code_display: display_tracking_code(&a.tracking_code),
        status: a.status.as_str().to_string(),
        service: a.service.clone(),
        service_name_fa: ServiceCode::parse(&a.service)
            .map(|s| s.info().name_fa.clone())
            .unwrap_or_default(),
        office: OfficeRefDto {
            office_id: a.office_id.clone(),
            name: office.map(|o| o.name.clone()).unwrap_or_default(),
            city: office.map(|o| o.city.clone()).unwrap_or_default(),
            province: office.map(|o| o.province.clone()).unwrap_or_default(),
        },
        start: iran_rfc3339(a.start_at),
        jalali_date,
        jalali_display,
        application_id: a.application_id.clone(),
        payment_id: a.payment_id.clone(),
        national_code_masked: NationalCode::parse(&a.national_code)
            .map(|c| c.masked())
            .unwrap_or_default(),
        pick: None,
    }
}

/// The appointment's receipt (the applicant's own only).
#[utoipa::path(get, path = "/v1/appointments/{tracking_code}", tag = "applicant", security(("applicant" = [])),
    params(("tracking_code" = String, Path)),
    responses(
        (status = 200, description = "JSON, or a printable Persian page with Accept: text/html",
            content((AppointmentDto = "application/json"), (String = "text/html")))))]
pub async fn get_appointment(
    State(state): State<AppState>,
    applicant: Applicant,
    ApiPath(tracking_code): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::AppointmentNotFound,
            "no such appointment",
        )
    };
    let code = normalise_tracking_code(&tracking_code).ok_or_else(not_found)?;
    let appointment = state
        .store
        .appointment(&code)
        .await?
        .filter(|a| a.national_code == applicant.national_code.to_string())
        .ok_or_else(not_found)?;
    let dto = appointment_dto(&state, &appointment);
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        Ok(Html(receipt_html(&dto)).into_response())
    } else {
        Ok(Json(dto).into_response())
    }
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn status_fa(status: &str) -> &'static str {
    match status {
        "booked" => "نوبت ثبت شده",
        "checked_in" => "حاضر در دفتر",
        "enrolled" => "ثبت‌نام انجام شد",
        "no_show" => "عدم حضور",
        "cancelled" => "لغو شده",
        "rescheduled" => "جابه‌جا شده",
        "card_ready" => "کارت آماده تحویل",
        "delivered" => "تحویل شده",
        _ => "نامشخص",
    }
}

pub fn receipt_html(a: &AppointmentDto) -> String {
    format!(
        r#"<!doctype html>
<html lang="fa" dir="rtl">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>رسید نوبت کارت ملی هوشمند — {code}</title>
<style>
  body {{ font-family: Vazirmatn, Tahoma, "Noto Sans Arabic", sans-serif; margin: 2rem; color: #111; }}
  .receipt {{ max-width: 36rem; margin: auto; border: 2px solid #333; padding: 1.5rem; }}
  h1 {{ font-size: 1.3rem; margin-top: 0; }}
  table {{ width: 100%; border-collapse: collapse; }}
  th {{ text-align: right; width: 40%; padding: .4rem; background: #f2f2f2; }}
  td {{ padding: .4rem; }}
  tr + tr th, tr + tr td {{ border-top: 1px solid #ddd; }}
  .code {{ font-family: monospace; font-size: 1.4rem; letter-spacing: .1rem; direction: ltr; unicode-bidi: embed; }}
  .note {{ font-size: .9rem; margin-top: 1rem; }}
  @media print {{ button {{ display: none; }} body {{ margin: 0; }} }}
</style>
</head>
<body>
<div class="receipt">
<h1>رسید نوبت ثبت‌نام کارت ملی هوشمند</h1>
<table>
<tr><th>کد رهگیری</th><td class="code">{code}</td></tr>
<tr><th>وضعیت</th><td>{status}</td></tr>
<tr><th>خدمت</th><td>{service}</td></tr>
<tr><th>دفتر</th><td>{office} ({city})</td></tr>
<tr><th>زمان مراجعه</th><td>{when}</td></tr>
<tr><th>کد ملی</th><td class="code">{national}</td></tr>
</table>
<p class="note">در زمان مراجعه اصل شناسنامه، نشانی و کد پستی محل سکونت و این رسید را همراه داشته باشید.</p>
<button onclick="window.print()">چاپ رسید</button>
</div>
</body>
</html>
"#,
        code = escape(&a.tracking_code_display),
        status = status_fa(&a.status),
        service = escape(&a.service_name_fa),
        office = escape(&a.office.name),
        city = escape(&a.office.city),
        when = escape(&a.jalali_display),
        national = escape(&to_persian_digits(&a.national_code_masked)),
    )
}
