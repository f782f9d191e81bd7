//! User views (the guide's "Adding Views to XOS"): DashboardView rows whose url is
//! `template:NAME` (the template `dashboards/NAME.html`, rendered on the server with a
//! Jinja-compatible engine, auto-escaped) or `http(s)://…` (shown in a sandboxed iframe).
//!
//! - `/admin/dashboard/<name>/` shows one view alone, inside the navigation (the guide's
//!   debugging path); `?embed=1` leaves the navigation out (the home page's tabs frame it).
//! - Templates get the guide's context variables: `user`, `dashboards`, `unusedDashboards`,
//!   `userSliceInfo`, `STATIC_URL`, `cdnData`, `cdnContentProviders`, plus the providers registered in [`providers`] (the guide's
//!   `foobar`).
//! - `/xoslib/dashboards/` tells the home page the caller's tabs and saves the Customize tab.
//! - `/static/js/xoslib/xos-backbone.js` is the xoslib client (Backbone collections for every
//!   model of the registry, fed by the REST API and the event stream).

use crate::auth::AuthContext;
use crate::csp::{self, CspNonce};
use crate::db::{Sql, Value};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Actor, Principal, StoreError};
use crate::xoslib::escape_html;
use app::registry::SqlType;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

/// The dashboard view the home page shows when the user chose none (XOS fell back to "Tenant").
pub const DEFAULT_DASHBOARD: &str = "Tenant";
/// The view that lets users choose their dashboards; always the last tab.
pub const CUSTOMIZE: &str = "Customize";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/dashboard/{name}", get(standalone))
        .route("/admin/dashboard/{name}/", get(standalone))
        .route("/xoslib/dashboards", get(mine).post(customize))
        .route("/xoslib/dashboards/", get(mine).post(customize))
        .route("/static/js/xoslib/xos-backbone.js", get(xoslib_js))
}

/// Extra template context, registered in one place: name → value for a user. Add yours here
/// (see docs/adding-a-view.md).
pub fn providers() -> Vec<(&'static str, ContextProvider)> {
    vec![("foobar", |_| Json::String("value_of_foobar".into()))]
}

/// A template context variable computed for the logged-in user.
pub type ContextProvider = fn(&Principal) -> Json;

/// A DashboardView row.
#[derive(Clone, Debug)]
struct View {
    name: String,
    url: String,
    enabled: bool,
}

async fn views(state: &AppState, sql: Sql) -> Result<Vec<View>, StoreError> {
    let rows = state
        .store
        .db()
        .fetch(&sql, &[SqlType::Text, SqlType::Text, SqlType::Bool])
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| View {
            name: r[0].as_str().unwrap_or_default().to_string(),
            url: r[1].as_str().unwrap_or_default().to_string(),
            enabled: r[2].as_bool().unwrap_or(false),
        })
        .collect())
}

/// The user's chosen dashboards in order, and the enabled ones they did not choose.
async fn user_dashboards(state: &AppState, me: i64) -> Result<(Vec<View>, Vec<View>), StoreError> {
    let mut sql = Sql::new(
        "SELECT v.name, v.url, v.enabled FROM core_userdashboardview u JOIN core_dashboardview v \
         ON v.id = u.\"dashboardView_id\" WHERE NOT u.deleted AND NOT v.deleted AND u.user_id = ",
    );
    sql.bind(Value::Int(me));
    sql.push(" ORDER BY u.\"order\", u.id");
    let chosen = views(state, sql).await?;
    let all = views(
        state,
        Sql::new("SELECT name, url, enabled FROM core_dashboardview WHERE NOT deleted ORDER BY id"),
    )
    .await?;
    let unused = all
        .into_iter()
        .filter(|v| v.enabled && v.name != CUSTOMIZE && !chosen.iter().any(|c| c.name == v.name))
        .collect();
    Ok((chosen, unused))
}

/// `GET /xoslib/dashboards/`: the caller's home tabs (chosen, or the default), Customize last,
/// and what they could add.
async fn mine(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let Actor::User(p) = &actor else {
        return Err(ApiError::NotFound);
    };
    Ok(axum::Json(home_tabs(&state, p).await?).into_response())
}

/// Read the user's home-page tabs before `/` is rendered (rendering is not async, and the tabs
/// then need no request from the browser): the page finds them in the request's extensions.
pub async fn with_home_tabs(
    State(state): State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.uri().path() == "/"
        && let Some(p) = req
            .extensions()
            .get::<AuthContext>()
            .and_then(|a| a.principal.clone())
    {
        let tabs = home_tabs(&state, &p).await.map_err(|e| {
            tracing::error!(error = %e, "the home page's dashboards could not be read");
            "The dashboards could not be loaded.".to_string()
        });
        req.extensions_mut().insert(tabs);
    }
    next.run(req).await
}

/// The user's home-page tabs: their chosen dashboards (or the default one), Customize last
/// (not for app users), with what they chose and could add. The home page is rendered with it
/// (no request waits for the browser); `/xoslib/dashboards/` answers it.
pub async fn home_tabs(state: &AppState, p: &Principal) -> Result<app::pages::home::Dashboards, StoreError> {
    use app::pages::home::{Dashboards, ViewInfo};
    let (chosen, unused) = user_dashboards(state, p.id).await?;
    let appuser = user_context(state, p).await?["is_appuser"]
        .as_bool()
        .unwrap_or(false);
    let mut tabs: Vec<&View> = chosen
        .iter()
        .filter(|v| v.enabled && v.name != CUSTOMIZE)
        .collect();
    let all = views(
        state,
        Sql::new("SELECT name, url, enabled FROM core_dashboardview WHERE NOT deleted ORDER BY id"),
    )
    .await?;
    if tabs.is_empty()
        && !appuser
        && let Some(d) = all.iter().find(|v| v.name == DEFAULT_DASHBOARD && v.enabled)
    {
        tabs.push(d);
    }
    if !appuser && let Some(c) = all.iter().find(|v| v.name == CUSTOMIZE) {
        tabs.push(c);
    }
    let out = |v: &View| ViewInfo {
        name: v.name.clone(),
        url: v.url.clone(),
    };
    Ok(Dashboards {
        tabs: tabs.iter().map(|v| out(v)).collect(),
        chosen: chosen.iter().filter(|v| v.name != CUSTOMIZE).map(out).collect(),
        available: unused.iter().map(out).collect(),
    })
}

#[derive(Deserialize)]
struct Choice {
    dashboards: Vec<String>,
}

/// The most dashboards one user may choose.
const MAX_CHOSEN: usize = 100;

/// `POST /xoslib/dashboards/` `{"dashboards": ["Developer", "Hello World"]}`: the Customize
/// tab's save. Replaces the caller's UserDashboardView rows, in order (one unit of work).
async fn customize(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let Actor::User(p) = actor.clone() else {
        return Err(ApiError::NotFound);
    };
    if p.is_readonly {
        return Err(ApiError::Forbidden(
            "Read-only users cannot customize their dashboards.".into(),
        ));
    }
    let input = crate::api::body_object(&headers, &body)?;
    let choice: Choice = serde_json::from_value(Json::Object(input))
        .map_err(|e| StoreError::field("dashboards", format!("Expected a list of view names: {e}")))?;
    // Bounded work per request, and no NUL text on its way to a query.
    if choice.dashboards.len() > MAX_CHOSEN {
        return Err(StoreError::field("dashboards", format!("At most {MAX_CHOSEN} dashboards.")).into());
    }
    if choice.dashboards.iter().any(|n| n.contains('\0')) {
        return Err(StoreError::field("dashboards", crate::store::validate::NUL_MESSAGE).into());
    }
    let view_model = state.store.model("DashboardView");
    let udv = state.store.model("UserDashboardView");
    let mut unit = state.store.begin(actor).await?;
    let mut ids = Vec::new();
    for name in &choice.dashboards {
        let mut sql = Sql::new("SELECT id FROM core_dashboardview WHERE NOT deleted AND enabled AND name = ");
        sql.bind(Value::Text(name.clone()));
        match unit
            .fetch(&sql, &[SqlType::Int])
            .await?
            .first()
            .and_then(|r| r[0].as_int())
        {
            Some(id) if name != CUSTOMIZE => ids.push(id),
            _ => {
                return Err(StoreError::field(
                    "dashboards",
                    format!("There is no dashboard view named {name:?}."),
                )
                .into());
            }
        }
    }
    let mut sql = Sql::new("SELECT id FROM core_userdashboardview WHERE NOT deleted AND user_id = ");
    sql.bind(Value::Int(p.id));
    for r in unit.fetch(&sql, &[SqlType::Int]).await? {
        unit.delete(udv, r[0].as_int().unwrap_or(0)).await?;
    }
    for (order, id) in ids.iter().enumerate() {
        let row = json!({"user": p.id, "dashboardView": id, "order": order});
        unit.create(udv, row.as_object().expect("object")).await?;
    }
    unit.commit().await?;
    let _ = view_model;
    Ok(axum::Json(json!("Success")).into_response())
}

/// The logged-in user for pages (session or basic), or where to log in first.
fn page_user(auth: &AuthContext, next: &str) -> Result<Principal, Redirect> {
    auth.principal.clone().ok_or_else(|| {
        let enc = percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC);
        Redirect::to(&format!("/login?next={enc}"))
    })
}

/// The user's own row as template context (readable fields).
async fn user_context(state: &AppState, p: &Principal) -> Result<Json, StoreError> {
    let rec = state
        .store
        .get(&Actor::User(p.clone()), state.store.model("User"), p.id)
        .await?;
    Ok(Json::Object(crate::api::json::plain_map(&rec)))
}

/// The guide's `userSliceInfo`: one entry per slice privilege the user holds.
async fn user_slice_info(state: &AppState, me: i64) -> Result<Json, StoreError> {
    let mut sql = Sql::new(
        "SELECT s.name, s.id, r.role, \
         (SELECT COUNT(*) FROM core_instance i WHERE NOT i.deleted AND i.slice_id = s.id) \
         FROM core_sliceprivilege sp JOIN core_slice s ON s.id = sp.slice_id JOIN core_slicerole r ON r.id = sp.role_id \
         WHERE NOT sp.deleted AND NOT s.deleted AND sp.user_id = ",
    );
    sql.bind(Value::Int(me));
    sql.push(" ORDER BY s.name");
    let rows = state
        .store
        .db()
        .fetch(&sql, &[SqlType::Text, SqlType::Int, SqlType::Text, SqlType::Int])
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let slice = r[1].as_int().unwrap_or(0);
        let mut q = Sql::new(
            "SELECT st.name, COUNT(*) FROM core_instance i JOIN core_node n ON n.id = i.node_id \
             JOIN core_sitedeployment sd ON sd.id = n.site_deployment_id JOIN core_site st ON st.id = sd.site_id \
             WHERE NOT i.deleted AND i.slice_id = ",
        );
        q.bind(Value::Int(slice));
        q.push(" GROUP BY st.name ORDER BY st.name");
        let sites: Map<String, Json> = state
            .store
            .db()
            .fetch(&q, &[SqlType::Text, SqlType::Int])
            .await?
            .into_iter()
            .map(|s| {
                (
                    s[0].as_str().unwrap_or_default().to_string(),
                    Json::from(s[1].as_int().unwrap_or(0)),
                )
            })
            .collect();
        out.push(json!({
            "slicename": r[0].as_str(),
            "sliceid": slice,
            "sitesUsed": sites,
            "role": r[2].as_str(),
            "instancecount": r[3].as_int().unwrap_or(0),
            "sitecount": sites.len(),
        }));
    }
    Ok(Json::Array(out))
}

/// Everything a template sees.
async fn context(state: &AppState, p: &Principal) -> Result<Map<String, Json>, StoreError> {
    let (chosen, unused) = user_dashboards(state, p.id).await?;
    let mut ctx = Map::new();
    ctx.insert("user".into(), user_context(state, p).await?);
    ctx.insert(
        "dashboards".into(),
        json!(chosen.iter().map(|v| v.name.clone()).collect::<Vec<_>>()),
    );
    ctx.insert(
        "unusedDashboards".into(),
        json!(unused.iter().map(|v| v.name.clone()).collect::<Vec<_>>()),
    );
    ctx.insert("userSliceInfo".into(), user_slice_info(state, p.id).await?);
    ctx.insert("STATIC_URL".into(), Json::String("/static".into()));
    // What the services give every view (the CDN's `cdnData`), empty where not loaded.
    let reader = Actor::User(p.clone());
    let loaded = state.store.services();
    for service in crate::services::catalog() {
        let on = loaded.iter().any(|s| s == service.name());
        for (name, value) in service
            .view_context(&state.store, &state.config.state_dir, &reader, on)
            .await
        {
            ctx.insert(name.to_string(), value);
        }
    }
    for (name, provide) in providers() {
        ctx.insert(name.to_string(), provide(p));
    }
    Ok(ctx)
}

/// Render `dashboards/<template>.html` with the context (auto-escaped). The `<script>` tags of
/// the template files (the view's own and any it includes) get the answer's nonce in their
/// source, before the data is filled in, so only the template's own scripts run.
fn render_template(
    dir: &std::path::Path,
    template: &str,
    ctx: &Map<String, Json>,
    nonce: &CspNonce,
) -> Result<String, String> {
    if template.is_empty()
        || !template
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "{template:?} is not a template name (letters, digits, _ and - only)"
        ));
    }
    let mut env = minijinja::Environment::new();
    let files = minijinja::path_loader(dir);
    let nonce = nonce.clone();
    // The directory's file first (an operator's own wins), then the services' compiled-in ones.
    env.set_loader(move |name| {
        let src = match files(name)? {
            Some(src) => Some(src),
            None => service_template(name).map(str::to_string),
        };
        Ok(src.map(|src| csp::nonce_scripts(&src, &nonce)))
    });
    let tmpl = env
        .get_template(&format!("{template}.html"))
        .map_err(|e| e.to_string())?;
    tmpl.render(minijinja::Value::from_serialize(ctx)).map_err(|e| {
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(&format!(": {s}"));
            src = s.source();
        }
        msg
    })
}

/// The template file `name` (`helloworld.html`) a service ships.
fn service_template(name: &str) -> Option<&'static str> {
    let name = name.strip_suffix(".html")?;
    crate::services::catalog()
        .iter()
        .flat_map(|s| s.templates())
        .find(|t| t.name == name)
        .map(|t| t.source)
}

#[derive(Deserialize)]
struct Embed {
    #[serde(default)]
    embed: Option<String>,
}

/// The view `/admin/dashboard/<name>/` shows: the registered view of that name; else the
/// registered view whose template file is `<name>` (`/admin/dashboard/helloworld/`, as the
/// guide's preview step has it); else, for admins only, the unregistered template
/// `dashboards/<name>.html` (a preview before registering it). Disabled views are for admins.
async fn find_view(state: &AppState, p: &Principal, name: &str) -> Result<Option<View>, StoreError> {
    // Names are short, and Postgres cannot compare text with a NUL in it.
    if name.is_empty() || name.len() > 200 || name.contains('\0') {
        return Ok(None);
    }
    for (column, value) in [("name", name.to_string()), ("url", format!("template:{name}"))] {
        let mut sql = Sql::new(format!(
            "SELECT name, url, enabled FROM core_dashboardview WHERE NOT deleted AND {column} = "
        ));
        sql.bind(Value::Text(value));
        sql.push(" ORDER BY id");
        let found = views(state, sql)
            .await?
            .into_iter()
            .find(|v| v.enabled || p.is_admin);
        if found.is_some() {
            return Ok(found);
        }
    }
    let is_template_name = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let file = format!("{name}.html");
    let exists = state.config.dashboards_dir.join(&file).is_file() || service_template(&file).is_some();
    if p.is_admin && is_template_name && exists {
        return Ok(Some(View {
            name: name.to_string(),
            url: format!("template:{name}"),
            enabled: true,
        }));
    }
    Ok(None)
}

/// `GET /admin/dashboard/<name>/`: one view alone.
async fn standalone(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    nonce: Option<Extension<CspNonce>>,
    Path(name): Path<String>,
    Query(q): Query<Embed>,
) -> Response {
    let nonce = nonce.map(|Extension(n)| n).unwrap_or_default();
    let p = match page_user(&auth, &format!("/admin/dashboard/{name}/")) {
        Ok(p) => p,
        Err(redirect) => return redirect.into_response(),
    };
    let embed = q.embed.is_some_and(|v| v != "0");
    let view = match find_view(&state, &p, &name).await {
        Ok(v) => v,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(view) = view else {
        let body = format!(
            "<h1>No such view</h1><p>There is no dashboard view named {}.</p>",
            escape_html(&name)
        );
        return (StatusCode::NOT_FOUND, Html(page(&p, &name, &body, embed, &nonce))).into_response();
    };
    let body = if let Some(template) = view.url.strip_prefix("template:") {
        match context(&state, &p).await {
            Ok(ctx) => match render_template(&state.config.dashboards_dir, template, &ctx, &nonce) {
                Ok(html) => html,
                Err(e) => {
                    tracing::warn!(view = %view.name, error = %e, "a dashboard template failed to render");
                    let detail = if p.is_admin {
                        format!("<pre class=\"template-error\">{}</pre>", escape_html(&e))
                    } else {
                        String::new()
                    };
                    format!(
                        "<div class=\"error\" role=\"alert\"><p>This view could not be shown.</p>{detail}</div>"
                    )
                }
            },
            Err(e) => return ApiError::from(e).into_response(),
        }
    } else if view.url.starts_with("http://") || view.url.starts_with("https://") {
        format!(
            "<iframe class=\"view-frame\" title=\"{}\" src=\"{}\" sandbox=\"allow-scripts allow-forms allow-popups\" referrerpolicy=\"no-referrer\"></iframe>",
            escape_html(&view.name),
            escape_html(&view.url)
        )
    } else {
        format!(
            "<p class=\"error\">Don't know how to load dashboard {}.</p>",
            escape_html(&view.url)
        )
    };
    Html(page(&p, &view.name, &body, embed, &nonce)).into_response()
}

/// The page around a view: jQuery (the views' scripts expect it), the CSS, and unless embedded
/// the title bar and navigation panel every page has.
fn page(p: &Principal, title: &str, body: &str, embed: bool, nonce: &CspNonce) -> String {
    let chrome_start = if embed {
        String::from("<main class=\"content view\">")
    } else {
        format!(
            "<header class=\"titlebar\"><a class=\"brand\" href=\"/\">XOS</a><span class=\"spacer\"></span>\
             <span class=\"whoami\">{}</span><form method=\"post\" action=\"/logout\" class=\"logout\">\
             <button type=\"submit\" class=\"link\">Log out</button></form></header>\
             <div class=\"layout\"><nav class=\"navpanel\" aria-label=\"Main\"><ul>{}</ul></nav>\
             <main class=\"content view\"><h1 class=\"view-title\">{}</h1>",
            escape_html(&p.email),
            app::pages::NAV
                .iter()
                .map(|(href, label)| format!("<li><a href=\"{href}\">{label}</a></li>"))
                .collect::<String>(),
            escape_html(title)
        )
    };
    let chrome_end = if embed { "</main>" } else { "</main></div>" };
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · XOS</title><link rel=\"stylesheet\" href=\"/pkg/xos.css\"><link rel=\"icon\" href=\"/favicon.ico\">\
         <script nonce=\"{}\" src=\"/static/js/vendor/jquery.min.js\"></script></head>\
         <body class=\"{}\">{chrome_start}{body}{chrome_end}</body></html>",
        escape_html(title),
        nonce.as_str(),
        if embed { "embedded" } else { "" }
    )
}

/// `GET /static/js/xoslib/xos-backbone.js`: the model list of the registry, then the library.
async fn xoslib_js(State(state): State<AppState>) -> impl IntoResponse {
    let models: Vec<Json> = state
        .store
        .registry()
        .models
        .iter()
        .map(|m| json!({"name": m.name, "plural": m.plural, "validators": m.validators()}))
        .collect();
    let body = format!(
        "/* xoslib for XOS: Backbone collections of every model, fed by the REST API and /xos/events. */\nvar XOS_MODELS = {};\n{}",
        Json::Array(models),
        include_str!("../../static/js/xoslib/xos-backbone-lib.js")
    );
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
