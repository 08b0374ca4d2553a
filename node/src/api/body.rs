//! Request bodies are read whole, within a time limit, before a request takes a request slot.
//!
//! A client that sends its body slowly (a byte at a time) then holds one of the
//! `body_reads` permits for at most the body read timeout, never one of the request slots
//! that reads and waiting submissions need; when every permit is taken, a request with a body
//! is refused at once with 503 `busy`. A body declared or found larger than [`BODY_BYTES_MAX`]
//! is refused with 413 `too_large` without reading it; one that does not arrive in time with 408
//! `body_timeout`. Both close the connection, since its unread rest would otherwise be parsed as
//! the next request.

use super::error::ApiError;
use super::{ApiState, BODY_BYTES_MAX};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use std::pin::Pin;

/// The routes whose refusals [`super::metrics`] counts by code: the submissions.
const SUBMIT_PATHS: [&str; 2] = ["/v1/transactions", "/v1/transactions/batch"];

/// Middleware: reads the request body into memory (see the module documentation), then runs
/// the rest of the stack with it.
pub(super) async fn read_body(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if body.size_hint().exact() == Some(0) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let submission = parts.method == Method::POST && SUBMIT_PATHS.contains(&parts.uri.path());
    let refuse = |error: ApiError| {
        if submission {
            state.inner.metrics.refused(error.code);
        }
        closing(error)
    };
    if body.size_hint().lower() > BODY_BYTES_MAX as u64 {
        return refuse(too_large());
    }
    let Ok(permit) = state.inner.body_reads.clone().try_acquire_owned() else {
        return ApiError::busy(
            "the node is reading as many request bodies as it allows; retry shortly",
        )
        .into_response();
    };
    let timeout = state.inner.connection_limits.body_read_timeout;
    let bytes = match tokio::time::timeout(timeout, collect(body)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => return refuse(error),
        Err(_elapsed) => {
            return refuse(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms of its head",
                    timeout.as_millis()
                ),
            ))
        }
    };
    drop(permit);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Reads `body` whole, refusing it as soon as it passes [`BODY_BYTES_MAX`].
async fn collect(mut body: Body) -> Result<Bytes, ApiError> {
    let mut bytes = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|error| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                format!("the request body could not be read: {error}"),
            )
        })?;
        // Trailers, the only other kind of frame, are ignored.
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > BODY_BYTES_MAX {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes.freeze())
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body exceeds {BODY_BYTES_MAX} bytes"),
    )
}

/// `error`'s answer with `Connection: close`: the body was not read to its end.
fn closing(error: ApiError) -> Response {
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
