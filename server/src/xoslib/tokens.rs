//! `/xoslib/tokens/`: API tokens for scripts (`Authorization: Token <key>`).
//!
//! `POST` creates a token for the caller and returns its key, once; only a SHA-256 of the key is
//! stored. `GET` lists the caller's tokens (admins: everyone's) without keys; `DELETE …/<id>/`
//! revokes one. Tokens may expire (`expires`, RFC 3339, or `expires_in_days`).

use crate::api::{body_object, json_response, render_one};
use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Actor, ListQuery, StoreError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use rand::RngCore;
use serde_json::{Map, Value as Json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/xoslib/tokens", get(list).post(create))
        .route("/xoslib/tokens/", get(list).post(create))
        .route("/xoslib/tokens/{id}", delete(revoke))
        .route("/xoslib/tokens/{id}/", delete(revoke))
}

/// The stored form of a key (kept with authentication, which checks it).
pub use crate::auth::key_hash;

async fn list(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let model = state.store.model("ApiToken");
    let (records, _) = state.store.list(&actor, model, &ListQuery::default()).await?;
    let links = crate::api::json::Links::Ids;
    let mut items = Vec::new();
    for r in &records {
        items.push(render_one(&state, &actor, r, &links).await?);
    }
    Ok(json_response(StatusCode::OK, &Json::Array(items), &headers))
}

async fn create(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let Actor::User(me) = &actor else {
        return Err(ApiError::Forbidden("no user".into()));
    };
    // A token does not mint tokens: a leaked short-lived key must not become a permanent one.
    if auth.method == crate::auth::AuthMethod::Token {
        return Err(ApiError::Forbidden(
            "Create API tokens with your password or browser session, not with a token.".into(),
        ));
    }
    // A token acts as its user: a read-only user writes nothing, tokens included.
    if me.is_readonly {
        return Err(ApiError::Forbidden(
            "You do not have permission to create API tokens (your account is read-only).".into(),
        ));
    }
    let mut input = body_object(&headers, &body)?;
    let mut out = Map::new();
    if let Some(days) = input.remove("expires_in_days") {
        let Some(days) = days.as_i64().filter(|d| (1..=36_500).contains(d)) else {
            return Err(StoreError::field(
                "expires_in_days",
                "A number of days from 1 to 36500 is required.",
            )
            .into());
        };
        let at = chrono::Utc::now() + chrono::Duration::days(days);
        input.insert("expires".into(), Json::String(crate::db::format_time(&at)));
    }
    for k in ["name", "expires"] {
        if let Some(v) = input.remove(k) {
            out.insert(k.into(), v);
        }
    }
    if let Some(k) = input.keys().next() {
        return Err(StoreError::field(k, "Unknown field.").into());
    }
    let mut raw = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut raw);
    let key: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    out.insert("user".into(), Json::from(me.id));
    // Written by the caller (its own token, in its name in the change log); the key's hash and
    // prefix are the server's, not writable by anyone.
    let computed = [
        ("key_hash", crate::db::Value::Text(key_hash(&key))),
        ("key_prefix", crate::db::Value::Text(key[..8].to_string())),
    ];
    let mut unit = state.store.begin(actor.clone()).await?;
    let rec = unit
        .create_with(state.store.model("ApiToken"), &out, &computed)
        .await?;
    unit.commit().await?;
    let mut body = render_one(&state, &actor, &rec, &crate::api::json::Links::Ids).await?;
    body["key"] = Json::String(key);
    Ok(json_response(StatusCode::CREATED, &body, &headers))
}

async fn revoke(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let id = id.parse().map_err(|_| ApiError::NotFound)?;
    state
        .store
        .delete(actor, state.store.model("ApiToken"), id)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
