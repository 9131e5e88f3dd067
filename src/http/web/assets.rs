//! Static assets, compiled into the binary (`include_bytes!`): the pages' stylesheet and
//! script, the Vazirmatn font (SIL Open Font License, `assets/web/Vazirmatn-OFL.txt`) and the
//! API reference's Swagger UI (Apache-2.0, `assets/docs/LICENSE`). Nothing comes from a CDN, so
//! every page works offline.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::extract::ApiPath;

/// (name, content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/web/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/web/app.js"),
    ),
    (
        "vazirmatn.woff2",
        "font/woff2",
        include_bytes!("../../../assets/web/vazirmatn.woff2"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/docs/swagger-ui.css"),
    ),
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/docs/swagger-ui-bundle.js"),
    ),
    (
        "docs.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/docs/docs.css"),
    ),
    (
        "docs.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/docs/docs.js"),
    ),
];

/// The asset's bytes, by name.
pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ty, bytes)| (*ty, *bytes))
}

/// `GET /assets/{name}`. Cached for a day: the names do not change within a release.
pub async fn serve(ApiPath(name): ApiPath<String>) -> Response {
    match asset(&name) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
