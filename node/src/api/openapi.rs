//! `GET /openapi.json`: the OpenAPI 3 document of every route, written by hand in
//! `openapi.json` beside this file. The tests check that it parses and that it lists exactly the
//! routes the router serves, with their methods.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The OpenAPI 3 document describing the API.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub(super) async fn openapi() -> Response {
    let mut response = OPENAPI_JSON.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
