//! The one error type of the HTTP layer, in Django REST Framework's shapes: 400 with
//! `{"field": ["message"]}`, other errors with `{"detail": "…"}`. A 500 shows nothing internal and
//! is logged once.

use crate::store::{FieldErrors, StoreError};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error("{0}")]
    BadRequest(String),
    #[error("{detail}")]
    Unauthorized { detail: String, basic: bool },
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// An unexpected failure: logged here, answered as a bare 500.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Invalid(errors) => ApiError::Invalid(errors),
            StoreError::PermissionDenied(m) => ApiError::Forbidden(m),
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict(m) => ApiError::Conflict(m),
            // Text with a NUL that some lookup passed on to Postgres (the write path refuses it
            // per field before that): the client's input, not our failure.
            StoreError::Db(ref d) if crate::db::is_nul_in_text(d) => {
                ApiError::BadRequest(crate::store::validate::NUL_MESSAGE.into())
            }
            e @ (StoreError::Hash | StoreError::Db(_)) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::Invalid(errors) => (StatusCode::BAD_REQUEST, json!(errors)),
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, json!({ "detail": d })),
            ApiError::Unauthorized { detail, .. } => (StatusCode::UNAUTHORIZED, json!({ "detail": detail })),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, json!({ "detail": d })),
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({ "detail": "Not found." })),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({ "detail": "Method not allowed." }),
            ),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, json!({ "detail": d })),
            ApiError::UnsupportedMediaType(d) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, json!({ "detail": d })),
            ApiError::TooManyRequests(d) => (StatusCode::TOO_MANY_REQUESTS, json!({ "detail": d })),
            ApiError::Internal(msg) => {
                tracing::error!(error = %msg, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "detail": "Internal server error." }),
                )
            }
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if let ApiError::Unauthorized { basic: true, .. } = self {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"api\""),
            );
        }
        resp
    }
}
