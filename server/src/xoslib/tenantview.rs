//! `/xoslib/tenantview/`: XOS's TenantView, the miscellany the Tenant dashboard needs in one call.
//! "Blessed" deployments are those attached to the Tenant dashboard view (`template:xosTenant`);
//! blessed sites have a node in one of them; blessed images and flavors are offered in one.

use crate::api::json_response;
use crate::auth::AuthContext;
use crate::db::{Sql, Value};
use crate::error::ApiError;
use crate::state::AppState;
use app::registry::SqlType;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use registry::fields;
use serde_json::{Value as Json, json};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/xoslib/tenantview", get(list))
        .route("/xoslib/tenantview/", get(list))
        .route("/xoslib/tenantview/{id}", get(detail))
        .route("/xoslib/tenantview/{id}/", get(detail))
}

/// (ids, names) of the rows `sql` selects (`id, name`).
async fn pairs(state: &AppState, sql: &str, bind: Option<i64>) -> Result<(Vec<i64>, Vec<String>), ApiError> {
    // `sql` already holds its `$1`; only the value is added.
    let mut q = Sql::new(sql);
    q.args.extend(bind.map(Value::Int));
    let rows = state
        .store
        .db()
        .fetch(&q, &[SqlType::Int, SqlType::Text])
        .await
        .map_err(ApiError::internal)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r[0].as_int().unwrap_or_default(),
                r[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .unzip())
}

const BLESSED_DEPLOYMENTS: &str = "SELECT dvd.deployment_id FROM core_dashboardviewdeployment dvd \
     JOIN core_dashboardview v ON v.id = dvd.\"dashboardView_id\" WHERE NOT dvd.deleted AND NOT v.deleted AND v.url = 'template:xosTenant'";

async fn tenant_view(state: &AppState, auth: &AuthContext) -> Result<Json, ApiError> {
    let actor = auth.require()?;
    let me = actor.user_id().unwrap_or_default();
    let (dep_ids, dep_names) = pairs(
        state,
        &format!("SELECT id, name FROM core_deployment WHERE NOT deleted AND id IN ({BLESSED_DEPLOYMENTS}) ORDER BY id"),
        None,
    )
    .await?;
    let (site_ids, site_names) = pairs(
        state,
        &format!(
            "SELECT s.id, s.name FROM core_site s WHERE NOT s.deleted AND EXISTS (SELECT 1 FROM core_sitedeployment sd \
             JOIN core_node n ON n.site_deployment_id = sd.id WHERE NOT sd.deleted AND NOT n.deleted AND sd.site_id = s.id \
             AND sd.deployment_id IN ({BLESSED_DEPLOYMENTS})) ORDER BY s.id"
        ),
        None,
    )
    .await?;
    let (image_ids, image_names) = pairs(
        state,
        &format!(
            "SELECT i.id, i.name FROM core_image i WHERE NOT i.deleted AND EXISTS (SELECT 1 FROM core_imagedeployments d \
             WHERE NOT d.deleted AND d.image_id = i.id AND d.deployment_id IN ({BLESSED_DEPLOYMENTS})) ORDER BY i.id"
        ),
        None,
    )
    .await?;
    let (flavor_ids, flavor_names) = pairs(
        state,
        &format!(
            "SELECT f.id, f.name FROM core_flavor f WHERE NOT f.deleted AND EXISTS (SELECT 1 FROM core_flavordeployment d \
             WHERE NOT d.deleted AND d.flavor_id = f.id AND d.deployment_id IN ({BLESSED_DEPLOYMENTS})) ORDER BY f.\"order\", f.name"
        ),
        None,
    )
    .await?;
    let mut q = Sql::new(
        "SELECT s.id, s.login_base FROM core_user u JOIN core_site s ON s.id = u.site_id WHERE u.id = ",
    );
    q.bind(Value::Int(me));
    let site = state
        .store
        .db()
        .fetch(&q, &[SqlType::Int, SqlType::Text])
        .await
        .map_err(ApiError::internal)?;
    let (site_id, login_base) = site
        .first()
        .map(|r| (r[0].as_int(), r[1].as_str().map(str::to_string)))
        .unwrap_or((None, None));
    // The site's users the caller may see (emails are shown only to those who may see the
    // user: a PI sees its site's, a plain user itself and the members of its slices).
    let (user_ids, user_names) = match site_id {
        Some(s) => state
            .store
            .find(&actor, state.store.model("User"), "site", Value::Int(s))
            .await?
            .iter()
            .map(|u| (u.id(), u.opt(fields::user::EMAIL).unwrap_or_default().to_string()))
            .unzip(),
        None => (Vec::new(), Vec::new()),
    };
    let mut q = Sql::new(
        "SELECT r.role FROM core_siteprivilege sp JOIN core_siterole r ON r.id = sp.role_id \
         WHERE NOT sp.deleted AND sp.user_id = ",
    );
    q.bind(Value::Int(me));
    q.push(" AND sp.site_id = ")
        .bind(Value::Int(site_id.unwrap_or_default()));
    let roles = state
        .store
        .db()
        .fetch(&q, &[SqlType::Text])
        .await
        .map_err(ApiError::internal)?;
    let can_create = actor.is_root()
        || roles
            .iter()
            .any(|r| matches!(r[0].as_str(), Some("pi") | Some("admin")));
    let mut view = json!({
        "id": 0,
        "blessed_deployment_names": dep_names,
        "blessed_deployments": dep_ids,
        "blessed_site_names": site_names,
        "blessed_sites": site_ids,
        "blessed_image_names": image_names,
        "blessed_images": image_ids,
        "blessed_flavor_names": flavor_names,
        "blessed_flavors": flavor_ids,
        "blessed_service_class_names": [],
        "blessed_service_classes": [],
        "public_volume_names": [],
        "public_volumes": [],
        "current_user_site_id": site_id,
        "current_user_login_base": login_base,
        "current_user_site_users": user_ids,
        "current_user_site_user_names": user_names,
        "current_user_can_create_slice": can_create,
        "current_user_id": me,
    });
    // What the loaded services add (Syndicate's public volumes: the view's "Data Sets").
    let loaded = state.store.services();
    for service in crate::services::catalog() {
        if loaded.iter().any(|s| s == service.name()) {
            for (name, value) in service.tenant_view(&state.store, &actor).await {
                view[name] = value;
            }
        }
    }
    Ok(view)
}

async fn list(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &tenant_view(&state, &auth).await?,
        &headers,
    ))
}

async fn detail(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let view = tenant_view(&state, &auth).await?;
    Ok(json_response(StatusCode::OK, &Json::Array(vec![view]), &headers))
}
