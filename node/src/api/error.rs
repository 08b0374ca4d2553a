//! The API's one error shape: `{"error": {"code": "<stable code>", "message": "..."}}` with the
//! HTTP status that fits.

use super::RETRY_AFTER_SECS;
use crate::admission::AdmitError;
use crate::store::StoreError;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::BoxError;
use serde_json::json;

/// An error answer: status, stable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_parameter`: a path or query parameter does not parse.
    pub fn invalid_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal_error`, logged.
    pub fn internal(message: impl Into<String>) -> ApiError {
        let message = message.into();
        tracing::error!(%message, "API internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// 500 `storage_error`, logged with the store's full message. The client is told only that
    /// storage failed, not what the store holds.
    pub fn storage(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "API request failed on storage");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "the node's storage failed; its operator will find the cause in the node's log",
        )
    }

    /// 503 `busy`: retry shortly.
    pub fn busy(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::storage(error)
    }
}

impl From<AdmitError> for ApiError {
    fn from(error: AdmitError) -> Self {
        let status = match &error {
            AdmitError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdmitError::Malformed(_) => StatusCode::BAD_REQUEST,
            AdmitError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AdmitError::MempoolFull => StatusCode::SERVICE_UNAVAILABLE,
            AdmitError::Duplicate(_) => StatusCode::CONFLICT,
            AdmitError::Storage(_) => return ApiError::storage(error),
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

/// Answers for errors of the tower layers: load shed (503 `busy`) and time limit (503
/// `timeout`).
pub(super) async fn layer_error(error: BoxError) -> ApiError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::busy("the node is serving as many requests as it allows; retry shortly")
    } else if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took longer than the node allows",
        )
    } else {
        ApiError::internal(format!("request failed: {error}"))
    }
}

/// 404 for a path no route serves.
pub(super) async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route serves {}; see /openapi.json", uri.path()))
}

/// 405 for a method a route does not serve.
pub(super) async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not serve {method}; see /openapi.json"),
    )
}

/// A route's one path parameter, as text. It replaces axum's `Path<String>` because axum answers
/// a segment it cannot decode (percent-encoding that is not UTF-8, as in `/v1/transactions/%ce`)
/// with its own plain-text 400; every API error must be the JSON error object, so the refusal
/// becomes `invalid_parameter` here.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathParam, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParam(value)),
            Err(rejection) => Err(ApiError::invalid_parameter(rejection.body_text())),
        }
    }
}
