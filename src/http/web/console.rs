//! The planner's console at `/planner`: pick a bundled scenario, or paste or upload one (the
//! upload reads the file into the text box, with JavaScript), run a simulation
//! or a capacity plan as a job (its page reloads itself with the days simulated so far), open
//! the HTML report, and compare two runs side by side (key figures and both reports' charts).
//! Every step is the planner API's (`/v1/planner/…`), called in process with the planner token;
//! without `--planner-token` the console says it is off.

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{html, Markup};
use serde_json::Value;

use super::api::{read_answer, Api};
use super::{CheckedForm, Ctx, Fields, Lang};
use crate::http::extract::ApiPath;
use crate::http::planner::PlannerState;
use crate::http::AppState;

const PLANNER_COOKIE: &str = "nobat_planner";
const JOBS_COOKIE: &str = "nobat_planner_jobs";
/// Jobs remembered for the console's list (the server keeps 16).
const JOBS_LISTED: usize = 10;

/// The scenarios shipped with nobat, compiled in.
const BUNDLED: &[(&str, &str)] = &[
    ("small", include_str!("../../../scenarios/small.toml")),
    (
        "thin-province",
        include_str!("../../../scenarios/thin-province.toml"),
    ),
    (
        "normal-month",
        include_str!("../../../scenarios/normal-month.toml"),
    ),
    (
        "deadline-rush",
        include_str!("../../../scenarios/deadline-rush.toml"),
    ),
    (
        "cohort-surge",
        include_str!("../../../scenarios/cohort-surge.toml"),
    ),
    (
        "national-surge",
        include_str!("../../../scenarios/national-surge.toml"),
    ),
];

/// The planner API, when the planner token is configured.
#[derive(Clone)]
struct PlannerApi(Option<Api>);

pub fn routes(planner: Option<PlannerState>) -> Router<AppState> {
    let api = PlannerApi(planner.map(|p| Api::from_router(crate::http::planner::router(p))));
    Router::new()
        .route("/planner", get(home))
        .route("/planner/login", post(login))
        .route("/planner/run", post(run))
        .route("/planner/jobs/{id}", get(job))
        .route("/planner/jobs/{id}/report", get(report))
        .route("/planner/compare", get(compare))
        .layer(Extension(api))
}

fn token(ctx: &Ctx) -> Option<String> {
    ctx.cookie(PLANNER_COOKIE)
        .filter(|t| !t.is_empty() && t.len() <= 256 && t.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
}

fn title(l: Lang) -> &'static str {
    l.t("میز برنامه‌ریزی", "Planner console")
}

fn off(ctx: &Ctx) -> Response {
    let l = ctx.lang;
    ctx.page(
        StatusCode::NOT_FOUND,
        title(l),
        html! { p { (l.t("میز برنامه‌ریزی خاموش است: سرور را با --planner-token راه‌اندازی کنید.",
        "The planner console is off: start the server with --planner-token.")) } },
    )
}

fn login_page(ctx: &Ctx, status: StatusCode, error: bool) -> Response {
    let l = ctx.lang;
    ctx.page(
        status,
        title(l),
        html! {
            @if error { p.alert role="alert" { (l.t("رمز درست نیست.", "The token is not valid.")) } }
            form.card method="post" action="/planner/login" {
                (ctx.csrf_field())
                label for="planner_token" { (l.t("رمز برنامه‌ریز", "Planner token")) }
                input #planner_token .ltr type="password" name="token" required autocomplete="current-password";
                div.actions { button type="submit" { (l.t("ورود", "Log in")) } }
            }
        },
    )
}

/// The jobs this browser started, newest first.
fn jobs(ctx: &Ctx) -> Vec<u64> {
    ctx.cookie(JOBS_COOKIE)
        .unwrap_or("")
        .split('.')
        .filter_map(|s| s.parse().ok())
        .take(JOBS_LISTED)
        .collect()
}

async fn home(Extension(api): Extension<PlannerApi>, ctx: Ctx) -> Response {
    if api.0.is_none() {
        return off(&ctx);
    }
    if token(&ctx).is_none() {
        return login_page(&ctx, StatusCode::OK, false);
    }
    let l = ctx.lang;
    let jobs = jobs(&ctx);
    ctx.page(
        StatusCode::OK,
        title(l),
        html! {
            form.card method="post" action="/planner/run" {
                (ctx.csrf_field())
                label for="scenario" { (l.t("سناریوی آماده", "Bundled scenario")) }
                select #scenario name="scenario" {
                    @for (name, _) in BUNDLED { option value=(name) { (name) } }
                }
                label for="toml" { (l.t("یا متن سناریو (TOML)", "or a scenario of your own (TOML)")) }
                textarea #toml .ltr name="toml" rows="6" aria-describedby="toml_hint" {}
                div.js-only hidden data-scenario-file {
                    label for="toml_file" { (l.t("یا بارگذاری فایل سناریو", "or upload a scenario file")) }
                    input #toml_file type="file" accept=".toml,text/plain";
                }
                p.hint #toml_hint { (l.t("اگر پر باشد، به جای سناریوی آماده اجرا می‌شود.", "When filled, it runs instead of the bundled one.")) }
                div.actions {
                    button type="submit" name="kind" value="simulations" { (l.t("شبیه‌سازی", "Simulate")) }
                    button.secondary type="submit" name="kind" value="plans" { (l.t("برنامه ظرفیت", "Plan capacity")) }
                }
            }
            @if !jobs.is_empty() {
                h2 { (l.t("اجراها", "Runs")) }
                ul { @for id in &jobs { li { a href={ "/planner/jobs/" (id) } { (l.t("اجرای ", "Run ")) (l.digits(&id.to_string())) } } } }
                @if jobs.len() >= 2 {
                    form.card method="get" action="/planner/compare" {
                        h2 { (l.t("مقایسه دو اجرا", "Compare two runs")) }
                        label for="a" { (l.t("اجرای اول", "First run")) }
                        select #a name="a" { @for id in &jobs { option value=(id) { (l.digits(&id.to_string())) } } }
                        label for="b" { (l.t("اجرای دوم", "Second run")) }
                        select #b name="b" { @for (i, id) in jobs.iter().enumerate() { option value=(id) selected[i == 1] { (l.digits(&id.to_string())) } } }
                        div.actions { button type="submit" { (l.t("مقایسه", "Compare")) } }
                    }
                }
            }
        },
    )
}

async fn login(
    Extension(api): Extension<PlannerApi>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let Some(api) = api.0 else { return off(&ctx) };
    let token = fields.text("token");
    let caller = api.caller(&ctx.headers, ctx.peer, Some(token.clone()));
    // A job that does not exist: 404 with a valid token, 401 without.
    let (status, _) = match api
        .send(
            &caller,
            Method::GET,
            "/v1/planner/jobs/0",
            None,
            Body::empty(),
        )
        .await
    {
        Ok(answer) => answer,
        Err(_) => return login_page(&ctx, StatusCode::SERVICE_UNAVAILABLE, true),
    };
    if status == StatusCode::UNAUTHORIZED {
        return login_page(&ctx, StatusCode::UNAUTHORIZED, true);
    }
    ctx.set_cookie(PLANNER_COOKIE, &token, 12 * 3600);
    ctx.redirect("/planner")
}

async fn run(
    Extension(api): Extension<PlannerApi>,
    mut ctx: Ctx,
    CheckedForm(fields): CheckedForm,
) -> Response {
    let Some(api) = api.0 else { return off(&ctx) };
    let Some(token) = token(&ctx) else {
        return ctx.redirect("/planner");
    };
    let l = ctx.lang;
    let own = fields.get("toml").unwrap_or("").trim().to_string();
    let scenario = if own.is_empty() {
        let name = fields.text("scenario");
        match BUNDLED.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => text.to_string(),
            None => return ctx.redirect("/planner"),
        }
    } else {
        own
    };
    let kind = if fields.get("kind") == Some("plans") {
        "plans"
    } else {
        "simulations"
    };
    let caller = api.caller(&ctx.headers, ctx.peer, Some(token));
    let answer = api
        .send(
            &caller,
            Method::POST,
            &format!("/v1/planner/{kind}"),
            Some("text/plain"),
            Body::from(scenario),
        )
        .await
        .and_then(|(status, bytes)| read_answer(status, &bytes));
    match answer {
        Ok(accepted) => {
            let id: u64 = accepted["job_id"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
            let mut list = vec![id];
            list.extend(jobs(&ctx).into_iter().filter(|j| *j != id).take(JOBS_LISTED - 1));
            let value: Vec<String> = list.iter().map(u64::to_string).collect();
            ctx.set_cookie(JOBS_COOKIE, &value.join("."), 12 * 3600);
            ctx.redirect(&format!("/planner/jobs/{id}"))
        }
        Err(p) => ctx.page(
            StatusCode::from_u16(p.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            title(l),
            html! {
                div.alert role="alert" {
                    p { (p.detail) }
                    @if !p.errors.is_empty() { ul { @for (field, _, detail) in &p.errors { li { span.code { (field) } ": " (detail) } } } }
                }
                p { a href="/planner" { (l.t("بازگشت", "Back")) } }
            },
        ),
    }
}

async fn job_json(api: &Api, ctx: &Ctx, token: String, id: &str) -> Result<Value, String> {
    let caller = api.caller(&ctx.headers, ctx.peer, Some(token));
    api.call(
        &caller,
        Method::GET,
        &format!("/v1/planner/jobs/{id}"),
        None,
    )
    .await
    .map_err(|p| p.detail)
}

/// The figures a planner compares first, from a simulation's summary or a plan's result.
fn key_figures(l: Lang, result: &Value) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let mut add = |label: &str, v: &Value| {
        let text = match v {
            Value::Number(n) => n
                .as_f64()
                .map(|x| {
                    if x.fract() == 0.0 {
                        format!("{x:.0}")
                    } else {
                        format!("{x:.3}")
                    }
                })
                .unwrap_or_default(),
            Value::String(s) => s.clone(),
            Value::Null => return,
            other => other.to_string(),
        };
        rows.push((label.to_string(), l.digits(&text)));
    };
    add(l.t("سناریو", "Scenario"), &result["scenario"]["name"]);
    add(
        l.t("انتظار میانه (روز)", "Median wait (days)"),
        &result["wait_days"]["p50"],
    );
    add(
        l.t("انتظار صدک ۹۵ (روز)", "95th percentile wait (days)"),
        &result["wait_days"]["p95"],
    );
    add(
        l.t("هدف صدک ۹۵ (روز)", "95th percentile target (days)"),
        &result["wait_days"]["target_p95"],
    );
    add(
        l.t("ثبت‌نام‌شده", "Registered"),
        &result["totals"]["registered"],
    );
    add(
        l.t("ثبت‌نام انجام‌شده", "Enrolled"),
        &result["totals"]["enrolled"],
    );
    add(
        l.t("بهره‌وری", "Utilisation"),
        &result["totals"]["utilisation"],
    );
    add(
        l.t("عقب‌ماندگی پایان دوره", "Backlog at the end"),
        &result["totals"]["backlog_end"],
    );
    add(
        l.t("شاخص انصاف جین", "Jain fairness index"),
        &result["fairness"]["jain_index_mean_wait"],
    );
    add(
        l.t("بدترین استان", "Worst province"),
        &result["fairness"]["worst_province"],
    );
    add(
        l.t("تا ۲۵ کیلومتر", "Within 25 km"),
        &result["distance_shares"]["within_25_km"],
    );
    for (key, value) in result.as_object().into_iter().flatten() {
        // A plan's own figures (its totals and costs) are its top-level numbers.
        if value.is_number() {
            add(key, value);
        }
    }
    rows
}

fn figures_table(l: Lang, id: &str, result: &Value) -> Markup {
    html! {
        table {
            caption { (l.t("اجرای ", "Run ")) (l.digits(id)) }
            @for (label, value) in key_figures(l, result) {
                tr { th scope="row" { (label) } td.ltr { (value) } }
            }
        }
    }
}

async fn job(
    Extension(api): Extension<PlannerApi>,
    ApiPath(id): ApiPath<String>,
    mut ctx: Ctx,
) -> Response {
    let Some(api) = api.0 else { return off(&ctx) };
    let Some(token) = token(&ctx) else {
        return ctx.redirect("/planner");
    };
    let l = ctx.lang;
    let job = match job_json(&api, &ctx, token, &id).await {
        Ok(j) => j,
        Err(detail) => {
            return ctx.page(
                StatusCode::NOT_FOUND,
                title(l),
                html! { p.alert role="alert" { (detail) } },
            )
        }
    };
    let status = job["status"].as_str().unwrap_or("");
    if status == "running" {
        ctx.refresh_secs = Some(1);
    }
    let done = job["progress"]["done"].as_u64();
    let total = job["progress"]["total"].as_u64();
    let planning = job["progress"]["unit"] == "areas";
    ctx.page(
        StatusCode::OK,
        &format!("{}{}", l.t("اجرای ", "Run "), l.digits(&id)),
        html! {
            p #job-status { (match status {
                "running" => l.t("در حال اجرا…", "Running…"),
                "done" => l.t("تمام شد", "Done"),
                _ => l.t("ناموفق", "Failed"),
            }) }
            @if let (Some(done), Some(total)) = (done, total) {
                @if status == "running" {
                    label for="progress" { (if planning {
                        l.t("استان‌ها و شهرهای برنامه‌ریزی‌شده", "Areas planned")
                    } else {
                        l.t("روزهای شبیه‌سازی‌شده", "Days simulated")
                    }) }
                    progress #progress max=(total) value=(done) { (l.digits(&format!("{done}/{total}"))) }
                }
            }
            @if let Some(error) = job["error"].as_str() { p.alert role="alert" { (error) } }
            @if status == "done" {
                (figures_table(l, &id, &job["result"]))
                div.actions {
                    a.button #report href={ "/planner/jobs/" (id) "/report" } { (l.t("گزارش کامل", "Open the report")) }
                    a.button.secondary href="/planner" { (l.t("اجرای دیگر", "Another run")) }
                }
            }
        },
    )
}

/// The job's HTML report as the planner API gives it. Framed by this site only (the compare
/// page); the report is self-contained and scripts stay off.
async fn report(
    Extension(api): Extension<PlannerApi>,
    ApiPath(id): ApiPath<String>,
    ctx: Ctx,
) -> Response {
    let Some(api) = api.0 else { return off(&ctx) };
    let Some(token) = token(&ctx) else {
        return ctx.redirect("/planner");
    };
    let caller = api.caller(&ctx.headers, ctx.peer, Some(token));
    let uri = format!("/v1/planner/jobs/{}/report", super::api::encode(&id));
    match api
        .send(&caller, Method::GET, &uri, None, Body::empty())
        .await
    {
        Ok((status, bytes)) if status.is_success() => {
            let mut response = (StatusCode::OK, bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'",
                ),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        _ => ctx.redirect(&format!("/planner/jobs/{}", super::api::encode(&id))),
    }
}

async fn compare(Extension(api): Extension<PlannerApi>, ctx: Ctx, query: Fields) -> Response {
    let Some(api) = api.0 else { return off(&ctx) };
    let Some(token) = token(&ctx) else {
        return ctx.redirect("/planner");
    };
    let l = ctx.lang;
    let ids: Vec<String> = ["a", "b"]
        .iter()
        .map(|k| query.text(k))
        .filter(|id| !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    if ids.len() != 2 {
        return ctx.redirect("/planner");
    }
    let mut runs = Vec::new();
    for id in &ids {
        match job_json(&api, &ctx, token.clone(), id).await {
            Ok(j) if j["status"] == "done" => runs.push((id.clone(), j)),
            _ => return ctx.redirect(&format!("/planner/jobs/{id}")),
        }
    }
    let a = key_figures(l, &runs[0].1["result"]);
    let b = key_figures(l, &runs[1].1["result"]);
    ctx.page(
        StatusCode::OK,
        l.t("مقایسه دو اجرا", "Two runs side by side"),
        html! {
            table #compare {
                tr { th scope="col" { "" } th scope="col" { (l.t("اجرای ", "Run ")) (l.digits(&runs[0].0)) } th scope="col" { (l.t("اجرای ", "Run ")) (l.digits(&runs[1].0)) } }
                @for (label, value) in &a {
                    tr { th scope="row" { (label) } td.ltr { (value) }
                         td.ltr { (b.iter().find(|(k, _)| k == label).map(|(_, v)| v.as_str()).unwrap_or("—")) } }
                }
            }
            div.week {
                @for (id, _) in &runs {
                    iframe.report src={ "/planner/jobs/" (id) "/report" } title={ (l.t("گزارش اجرای ", "Report of run ")) (id) } loading="lazy" {}
                }
            }
        },
    )
}
