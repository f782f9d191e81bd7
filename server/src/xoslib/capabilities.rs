//! `/xoslib/capabilities/<plural>/?ids=1,2`: what the caller may do with a model and with some
//! of its objects, so the admin pages show no button for what the user may not do. The answers
//! come from the same permission rules the write path enforces (a dry run in a transaction that
//! is rolled back and takes no write lock). Ids the caller cannot see are left out, as missing
//! ones are.

use crate::auth::AuthContext;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Actor, Op, permissions};
use app::registry::Model;
use axum::Router;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/xoslib/capabilities/{plural}", get(capabilities))
        .route("/xoslib/capabilities/{plural}/", get(capabilities))
}

#[derive(Deserialize)]
struct Ids {
    #[serde(default)]
    ids: String,
}

/// At most this many objects per request.
const MAX_IDS: usize = 200;

async fn capabilities(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(plural): Path<String>,
    Query(q): Query<Ids>,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let model = state
        .store
        .registry()
        .by_plural(&plural)
        .ok_or(ApiError::NotFound)?;
    let ids: Vec<i64> = q
        .ids
        .split(',')
        .filter_map(|s| s.trim().parse::<i64>().ok())
        .take(MAX_IDS)
        .collect();
    let (create, each) = of(&state, actor, model, &ids).await?;
    let objects: Map<String, Json> = each
        .into_iter()
        .map(|(id, change, delete)| (id.to_string(), json!({"change": change, "delete": delete})))
        .collect();
    Ok(axum::Json(json!({"create": create, "objects": Json::Object(objects)})).into_response())
}

/// Whether `actor` may create objects of `model`, and for each of `ids` it can see, whether it
/// may change and delete it: (create, [(id, change, delete)]).
pub async fn of(
    state: &AppState,
    actor: Actor,
    model: &'static Model,
    ids: &[i64],
) -> Result<(bool, Vec<(i64, bool, bool)>), ApiError> {
    // A dry run that only reads: it takes no write lock (on SQLite a writer's lock would queue
    // every other write behind an admin page's button check).
    let mut unit = state.store.begin_read(actor).await?;
    let create = permissions::may_create(&mut unit, model).await?;
    let mut objects = Vec::new();
    for &id in ids {
        // An object the caller cannot see is left out exactly like one that does not exist.
        if !permissions::is_visible(&mut unit, model, id).await? {
            continue;
        }
        let Ok(rec) = unit.load(model, id).await else {
            continue;
        };
        let change = permissions::check_write(&mut unit, Op::Update, Some(&rec), &rec, &[])
            .await
            .is_ok();
        let delete = permissions::check_write(&mut unit, Op::Delete, Some(&rec), &rec, &[])
            .await
            .is_ok();
        objects.push((id, change, delete));
    }
    unit.rollback().await?;
    Ok((create, objects))
}
