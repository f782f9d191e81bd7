//! `POST /api/utility/tosca/run/`: run a TOSCA recipe over HTTP (admins only).
//!
//! The body is JSON, `{"recipe": "<yaml>", "action": "apply" | "delete", "dry_run": false}`, or
//! the recipe itself as `application/x-yaml` / `text/yaml` with `?action=` and `?dry_run=1`.
//! A good recipe answers 200 with the plan; a bad one 400 with every problem
//! (`{"detail": …, "errors": [{"file", "line", "node", "message"}]}`) and nothing written.

use crate::api::{body_object, json_response};
use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Actor;
use crate::tosca::{self, Mode, Source, ToscaError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value as Json, json};
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/utility/tosca/run", post(run))
        .route("/api/utility/tosca/run/", post(run))
}

fn flag(v: Option<&Json>) -> bool {
    match v {
        Some(Json::Bool(b)) => *b,
        Some(Json::String(s)) => matches!(s.as_str(), "1" | "true" | "yes"),
        Some(Json::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

async fn run(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    if let Actor::User(p) = &actor
        && (!p.is_admin || p.is_readonly)
    {
        return Err(ApiError::Forbidden("Only admins may run TOSCA recipes.".into()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (recipe, action, dry_run) = if content_type.ends_with("yaml") {
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::BadRequest("The recipe is not UTF-8 text.".into()))?;
        let action = query.get("action").cloned().unwrap_or_else(|| "apply".into());
        let dry = flag(query.get("dry_run").map(|s| Json::String(s.clone())).as_ref());
        (text, action, dry)
    } else {
        let mut input = body_object(&headers, &body)?;
        let Some(Json::String(recipe)) = input.remove("recipe") else {
            return Err(
                crate::store::StoreError::field("recipe", "The recipe (YAML text) is required.").into(),
            );
        };
        let action = match input.remove("action") {
            None => "apply".to_string(),
            Some(Json::String(a)) => a,
            Some(_) => {
                return Err(crate::store::StoreError::field("action", "Use \"apply\" or \"delete\".").into());
            }
        };
        let dry = flag(input.remove("dry_run").as_ref());
        if let Some(k) = input.keys().next() {
            return Err(crate::store::StoreError::field(k, "Unknown field.").into());
        }
        (recipe, action, dry)
    };
    let mode = match action.as_str() {
        "apply" => Mode::Apply,
        "delete" => Mode::Delete,
        _ => return Err(crate::store::StoreError::field("action", "Use \"apply\" or \"delete\".").into()),
    };
    let sources = [Source {
        name: "recipe".into(),
        text: recipe,
    }];
    let result = match tosca::parse(app::registry::registry(), &sources) {
        Ok(parsed) => tosca::run(&state.store, actor, &parsed, mode, dry_run).await,
        Err(problems) => Err(ToscaError::Problems(problems)),
    };
    match result {
        Ok(entries) => Ok(json_response(
            StatusCode::OK,
            &json!({
                "dry_run": dry_run,
                "entries": entries,
                "summary": tosca::format_plan(&entries, dry_run).lines().last().unwrap_or(""),
            }),
            &headers,
        )),
        Err(ToscaError::Problems(problems)) => Ok(json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "detail": format!("{} problem(s) in the recipe; nothing was written.", problems.len()),
                "errors": problems,
            }),
            &headers,
        )),
        Err(ToscaError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::internal(e)),
    }
}
