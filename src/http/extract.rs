//! Extractors (JSON body, query string, path parameters) whose rejections are problem+json with
//! stable codes, so that no malformed request gets axum's plain-text answer.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::problem::ProblemCode;
use super::Problem;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => Problem::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProblemCode::InvalidBody,
                    e.body_text(),
                ),
                JsonRejection::JsonSyntaxError(e) => Problem::new(
                    StatusCode::BAD_REQUEST,
                    ProblemCode::MalformedJson,
                    e.body_text(),
                ),
                JsonRejection::MissingJsonContentType(_) => Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    ProblemCode::UnsupportedMediaType,
                    "send the body as application/json",
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        ProblemCode::BodyTooLarge,
                        format!("the body is larger than {} bytes", super::BODY_BYTES_MAX),
                    )
                }
                other => Problem::new(other.status(), ProblemCode::InvalidBody, other.body_text()),
            }),
        }
    }
}

/// A query-string extractor whose rejection (a missing field, a value of the wrong type) is a
/// problem with a stable code, like every other bad input.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    // The one place axum's extractor is allowed (clippy.toml): wrapped, its rejection mapped.
    #[allow(clippy::disallowed_types)]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ProblemCode::InvalidQuery,
                rejection.body_text(),
            )),
        }
    }
}

/// A path-parameter extractor whose rejection (a segment that is not valid UTF-8 once
/// decoded, or not the number the route takes) is a problem with a stable code.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    // The one place axum's extractor is allowed (clippy.toml): wrapped, its rejection mapped.
    #[allow(clippy::disallowed_types)]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            // A route matched without its parameters is a wiring fault, not the caller's.
            Err(rejection @ PathRejection::MissingPathParams(_)) => {
                tracing::error!(error = %rejection.body_text(), "a route lost its path parameters");
                Err(Problem::internal())
            }
            Err(rejection) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                ProblemCode::InvalidPath,
                rejection.body_text(),
            )),
        }
    }
}
