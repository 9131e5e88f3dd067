//! `GET /docs`: the interactive API reference, Swagger UI over `/openapi.json`, served from the
//! embedded assets.

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = r#"<!doctype html>
<html lang="en" dir="ltr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nobat API reference</title>
<link rel="stylesheet" href="/assets/swagger-ui.css">
<link rel="stylesheet" href="/assets/docs.css">
</head>
<body>
<main id="swagger-ui"><h1>nobat API reference</h1><p>The reference needs JavaScript; the document itself is <a href="/openapi.json">/openapi.json</a>.</p></main>
<script src="/assets/swagger-ui-bundle.js"></script>
<script src="/assets/docs.js"></script>
</body>
</html>
"#;

pub async fn page() -> Response {
    let mut response = Html(PAGE).into_response();
    // Swagger UI sets inline styles and draws data: images; scripts stay this origin's only.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             object-src 'none'; frame-ancestors 'none'",
        ),
    );
    response
}
