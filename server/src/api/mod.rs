//! The REST API generated from the registry: `/xos/<plural>/` and `/xos/<plural>/<id>/` for every
//! model, following the XOS contract (see DESIGN.md): plain JSON arrays for lists, an optional
//! trailing slash, `Accept: application/json; indent=4`, DRF-style errors, hyperlinked foreign
//! keys unless `?no_hyperlinks=1`, and `?field=`, `?ordering=`, `?search=`, `?limit=&offset=`
//! queries (the total goes in `X-Total-Count`). Every write goes through the store.

/// The response cache (in `crate::cache`, which the shared state holds), under its old path.
pub use crate::cache;
/// The HTTP error type (in `crate::error`, below every HTTP layer), under its old path.
pub use crate::error;
pub mod json;
pub mod openapi;
pub mod services;
pub mod stream;

use crate::auth::AuthContext;
use crate::state::AppState;
use crate::store::ListQuery;
use app::registry::Model;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use error::ApiError;
use json::Links;
use serde_json::{Map, Value as Json};

/// The `/xos/…` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi::openapi))
        .route("/docs/", get(openapi::docs_page))
        .route(
            "/docs",
            get(|| async { axum::response::Redirect::permanent("/docs/") }),
        )
        .route("/docs/init.js", get(openapi::docs_init))
        .route("/xos/events", get(stream::stream))
        .route("/xos/events/", get(stream::stream))
        .route("/xos/changes", get(changes))
        .route("/xos/changes/", get(changes))
        .route("/xos", get(api_root))
        .route("/xos/", get(api_root))
        .route("/xos/{plural}", get(list).post(create))
        .route("/xos/{plural}/", get(list).post(create))
        .route(
            "/xos/{plural}/{id}",
            get(retrieve).put(replace).patch(patch).delete(destroy),
        )
        .route(
            "/xos/{plural}/{id}/",
            get(retrieve).put(replace).patch(patch).delete(destroy),
        )
}

/// How the response body is formatted (`Accept: application/json; indent=N`).
fn indent(headers: &HeaderMap) -> Option<usize> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    accept
        .split(';')
        .find_map(|p| p.trim().strip_prefix("indent=")?.trim().parse().ok())
        .map(|n: usize| n.min(16))
}

/// JSON bytes, pretty-printed when the client asked for an indent.
pub fn json_bytes(body: &Json, headers: &HeaderMap) -> Result<Vec<u8>, ApiError> {
    match indent(headers) {
        Some(n) => {
            let pad = " ".repeat(n);
            let mut out = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(pad.as_bytes());
            let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
            serde::Serialize::serialize(body, &mut ser).map_err(ApiError::internal)?;
            Ok(out)
        }
        None => serde_json::to_vec(body).map_err(ApiError::internal),
    }
}

/// Compact JSON bytes, re-indented when the client asked for `indent=N`.
fn reformat(compact: Vec<u8>, headers: &HeaderMap) -> Result<Vec<u8>, ApiError> {
    if indent(headers).is_none() {
        return Ok(compact);
    }
    let value: Json = serde_json::from_slice(&compact).map_err(ApiError::internal)?;
    json_bytes(&value, headers)
}

/// A response of JSON bytes.
pub fn bytes_response(status: StatusCode, bytes: impl Into<axum::body::Body>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        bytes.into(),
    )
        .into_response()
}

/// A JSON response, pretty-printed when the client asked for an indent.
pub fn json_response(status: StatusCode, body: &Json, headers: &HeaderMap) -> Response {
    match json_bytes(body, headers) {
        Ok(bytes) => bytes_response(status, bytes),
        Err(e) => e.into_response(),
    }
}

/// The response cache key of a GET: who asks, how it is formatted, what is asked (`path` is
/// the URL's parts after `/xos/`). Written in one string: it is made on every cached read.
fn cache_key(
    actor: &crate::store::Actor,
    headers: &HeaderMap,
    path: &[&str],
    raw: &Option<String>,
) -> String {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(96);
    let _ = write!(
        key,
        "{}|{}|{:?}|",
        actor.user_id().unwrap_or(0),
        BaseUrl(headers),
        indent(headers)
    );
    for part in path {
        key.push_str(part);
    }
    key.push('?');
    key.push_str(raw.as_deref().unwrap_or(""));
    key
}

/// `GET /xos/changes/`: the change log, newest first (`?model=&object=&user=&kind=&since=&until=`,
/// `?limit=` up to 1000, 100 by default, `?offset=`); the total in `X-Total-Count`.
async fn changes(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use crate::store::changelog;
    let actor = auth.require()?;
    let q = changelog::ChangeQuery::parse(&state.store, &params(&raw)).map_err(ApiError::Invalid)?;
    let (entries, total) = changelog::list(&state.store, &actor, &q).await?;
    let body = json_bytes(&Json::Array(entries), &headers)?;
    Ok(with_total(bytes_response(StatusCode::OK, body), Some(total)))
}

fn with_total(mut resp: Response, total: Option<i64>) -> Response {
    if let Some(t) = total
        && let Ok(v) = HeaderValue::from_str(&t.to_string())
    {
        resp.headers_mut().insert("x-total-count", v);
    }
    resp
}

/// The base of hyperlinks: scheme and host of this request (honours a proxy's `X-Forwarded-Proto`).
pub fn base_url(headers: &HeaderMap) -> String {
    BaseUrl(headers).to_string()
}

/// [`base_url`], written where it is needed.
struct BaseUrl<'a>(&'a HeaderMap);

impl std::fmt::Display for BaseUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = self
            .0
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let scheme = self
            .0
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .filter(|s| *s == "https" || *s == "http")
            .unwrap_or("http");
        write!(f, "{scheme}://{host}")
    }
}

/// The first `limit` objects of `model` as `actor` sees them: the query, permission filter and
/// JSON of `GET /xos/<plural>/?no_hyperlinks=1&limit=<limit>`, with the total. An admin list
/// page is rendered with it, so its rows are in the page before any script runs.
pub async fn first_page(
    state: &AppState,
    actor: &crate::store::Actor,
    model: &'static Model,
    limit: usize,
) -> Result<(Vec<Map<String, Json>>, Option<i64>), ApiError> {
    let params = vec![
        ("no_hyperlinks".to_string(), "1".to_string()),
        ("limit".to_string(), limit.to_string()),
    ];
    let q = ListQuery::parse(model, &params).map_err(ApiError::Invalid)?;
    let (records, total) = state.store.list(actor, model, &q).await?;
    let reg = state.store.registry();
    let ids: Vec<i64> = records.iter().map(|r| r.id()).collect();
    let m2m = state.store.m2m_values(actor, model, &ids).await?;
    let mut rows = Vec::with_capacity(records.len());
    for r in &records {
        let mut out = Vec::with_capacity(800);
        json::write_record(&mut out, reg, r, &Links::Ids, &m2m);
        if let Ok(Json::Object(o)) = serde_json::from_slice(&out) {
            rows.push(o);
        }
    }
    Ok((rows, total))
}

fn params(raw: &Option<String>) -> Vec<(String, String)> {
    raw.as_deref()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn links(params: &[(String, String)], headers: &HeaderMap) -> Links {
    let no_links = params
        .iter()
        .any(|(k, v)| k == "no_hyperlinks" && !matches!(v.as_str(), "" | "0" | "false"));
    if no_links {
        Links::Ids
    } else {
        Links::Hyperlinks(base_url(headers))
    }
}

fn model_for(state: &AppState, plural: &str) -> Result<&'static Model, ApiError> {
    state
        .store
        .registry()
        .by_plural(plural)
        .filter(|m| state.store.is_loaded(m))
        .ok_or(ApiError::NotFound)
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().map_err(|_| ApiError::NotFound)
}

/// Decode a request body: a JSON object, or a DRF-shaped 400/415.
pub fn body_object(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Json>, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !(mime == "application/json" || mime.ends_with("+json")) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Unsupported media type \"{mime}\" in request."
            )));
        }
    }
    let value: Json =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("JSON parse error - {e}")))?;
    match value {
        Json::Object(m) => Ok(m),
        other => {
            let kind = match other {
                Json::Array(_) => "list",
                Json::String(_) => "str",
                Json::Number(_) => "number",
                Json::Bool(_) => "bool",
                _ => "null",
            };
            let mut e = crate::store::FieldErrors::new();
            e.insert(
                "non_field_errors".into(),
                vec![format!("Invalid data. Expected a dictionary, but got {kind}.")],
            );
            Err(ApiError::Invalid(e))
        }
    }
}

/// One object as the API shows it, with its many-to-many ids.
pub async fn render_one(
    state: &AppState,
    actor: &crate::store::Actor,
    rec: &crate::store::Record,
    links: &Links,
) -> Result<Json, ApiError> {
    let m2m = state.store.m2m_values(actor, rec.model, &[rec.id()]).await?;
    Ok(json::render(state.store.registry(), rec, links, &m2m))
}

async fn api_root(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth.require()?;
    let base = base_url(&headers);
    let mut m = Map::new();
    for model in state
        .store
        .registry()
        .models
        .iter()
        .filter(|m| state.store.is_loaded(m))
    {
        m.insert(
            model.plural.clone(),
            Json::String(format!("{base}/xos/{}/", model.plural)),
        );
    }
    Ok(json_response(StatusCode::OK, &Json::Object(m), &headers))
}

async fn list(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(plural): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let model = model_for(&state, &plural)?;
    let key = cache_key(&actor, &headers, &[&plural], &raw);
    let read_at = state.store.generation();
    if let Some(hit) = state.responses.get(&key, read_at) {
        return Ok(with_total(bytes_response(StatusCode::OK, hit.body), hit.total));
    }
    let params = params(&raw);
    let q = ListQuery::parse(model, &params).map_err(ApiError::Invalid)?;
    let (records, total) = state.store.list(&actor, model, &q).await?;
    let links = links(&params, &headers);
    let reg = state.store.registry();
    let ids: Vec<i64> = records.iter().map(|r| r.id()).collect();
    let m2m = state.store.m2m_values(&actor, model, &ids).await?;
    let mut out = Vec::with_capacity(records.len() * 800 + 2);
    out.push(b'[');
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_record(&mut out, reg, r, &links, &m2m);
    }
    out.push(b']');
    let bytes = Bytes::from(reformat(out, &headers)?);
    let cached = cache::Cached {
        body: bytes.clone(),
        total,
    };
    state
        .responses
        .put(key, read_at, state.store.generation(), cached);
    Ok(with_total(bytes_response(StatusCode::OK, bytes), total))
}

async fn retrieve(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path((plural, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let model = model_for(&state, &plural)?;
    let key = cache_key(&actor, &headers, &[&plural, "/", &id], &raw);
    let read_at = state.store.generation();
    if let Some(hit) = state.responses.get(&key, read_at) {
        return Ok(bytes_response(StatusCode::OK, hit.body));
    }
    let rec = state.store.get(&actor, model, parse_id(&id)?).await?;
    let m2m = state.store.m2m_values(&actor, model, &[rec.id()]).await?;
    let mut out = Vec::with_capacity(1024);
    json::write_record(
        &mut out,
        state.store.registry(),
        &rec,
        &links(&params(&raw), &headers),
        &m2m,
    );
    let bytes = Bytes::from(reformat(out, &headers)?);
    state.responses.put(
        key,
        read_at,
        state.store.generation(),
        cache::Cached {
            body: bytes.clone(),
            total: None,
        },
    );
    Ok(bytes_response(StatusCode::OK, bytes))
}

async fn create(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(plural): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let model = model_for(&state, &plural)?;
    let input = body_object(&headers, &body)?;
    let rec = state.store.create(actor.clone(), model, &input).await?;
    let body = render_one(&state, &actor, &rec, &links(&params(&raw), &headers)).await?;
    Ok(json_response(StatusCode::CREATED, &body, &headers))
}

/// What PUT and PATCH share.
struct WriteRequest {
    plural: String,
    id: String,
    raw: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

async fn write(
    state: AppState,
    auth: AuthContext,
    r: WriteRequest,
    partial: bool,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let model = model_for(&state, &r.plural)?;
    let id = parse_id(&r.id)?;
    let input = body_object(&r.headers, &r.body)?;
    let rec = state
        .store
        .update(actor.clone(), model, id, &input, partial)
        .await?;
    let body = render_one(&state, &actor, &rec, &links(&params(&r.raw), &r.headers)).await?;
    Ok(json_response(StatusCode::OK, &body, &r.headers))
}

async fn replace(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path((plural, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write(
        state,
        auth,
        WriteRequest {
            plural,
            id,
            raw,
            headers,
            body,
        },
        false,
    )
    .await
}

async fn patch(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path((plural, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write(
        state,
        auth,
        WriteRequest {
            plural,
            id,
            raw,
            headers,
            body,
        },
        true,
    )
    .await
}

async fn destroy(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path((plural, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let model = model_for(&state, &plural)?;
    state.store.delete(actor, model, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
