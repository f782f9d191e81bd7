//! The web UI: Leptos pages (server-rendered, hydrated by the wasm bundle), the built assets,
//! static files, and the login/logout form handlers. Pages other than the login page need a
//! signed-in user and redirect to `/login?next=…` otherwise.

use crate::auth::{self, AuthContext};
use crate::csp::CspNonce;
use crate::state::AppState;
use app::UserInfo;
use axum::Router;
use axum::extract::Request;
use axum::handler::HandlerWithoutStateExt;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};

/// The UI routes.
pub fn router(state: &AppState) -> Router<AppState> {
    let routes = generate_route_list(app::App);
    let options = state.leptos.clone();
    let pages = Router::new()
        .leptos_routes_with_context(state, routes, provide_csp_nonce, move || {
            app::shell(options.clone())
        })
        .layer(middleware::from_fn_with_state(state.clone(), require_login));
    let site = &state.config.site_root;
    Router::new()
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        // Static files are compressed on the way out (the wasm bundle shrinks to a third).
        .nest_service(
            "/pkg",
            ServiceBuilder::new()
                .layer(CompressionLayer::new())
                .service(ServeDir::new(site.join("pkg"))),
        )
        .nest_service(
            "/vendor",
            ServiceBuilder::new()
                .layer(CompressionLayer::new())
                .service(ServeDir::new(site.join("vendor"))),
        )
        .nest_service(
            "/static",
            ServiceBuilder::new().layer(CompressionLayer::new()).service(
                ServeDir::new(&state.config.static_dir)
                    .fallback(ServeDir::new(site.join("static")).fallback(service_static.into_service())),
            ),
        )
        .route_service("/favicon.ico", ServeFile::new(site.join("favicon.ico")))
        .merge(pages)
}

/// `/static/<path>` from the services' own files (`Service::static_files`), after the
/// configuration's `static_dir` and the site's `static/`.
async fn service_static(uri: http::Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let Some(file) = crate::services::catalog()
        .iter()
        .flat_map(|s| s.static_files())
        .find(|f| f.path == path)
    else {
        return http::StatusCode::NOT_FOUND.into_response();
    };
    let kind = match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    };
    ([(http::header::CONTENT_TYPE, kind)], file.source).into_response()
}

/// The answer's script nonce (`crate::csp`) for Leptos's own inline scripts (hydration and
/// streamed resources), in place of the one leptos_axum would make, which the policy does not
/// name.
fn provide_csp_nonce() {
    if let Some(n) = leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CspNonce>().cloned())
    {
        leptos::prelude::provide_context(leptos::nonce::Nonce::from_value(n.value()));
    }
}

/// Send visitors without a session to the login page; hand the user to the pages.
async fn require_login(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let principal = req
        .extensions()
        .get::<AuthContext>()
        .and_then(|a| a.principal.clone());
    let public = path == "/login" || path.starts_with("/api/");
    match principal {
        Some(p) => {
            req.extensions_mut().insert(UserInfo {
                id: p.id,
                email: p.email,
                is_admin: p.is_admin,
                services: state.store.services(),
            });
            next.run(req).await
        }
        None if public => next.run(req).await,
        None => {
            let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let enc = percent_encoding::utf8_percent_encode(target, percent_encoding::NON_ALPHANUMERIC);
            Redirect::to(&format!("/login?next={enc}")).into_response()
        }
    }
}

/// `/admin/…/` → `/admin/…` (the UI's routes have no trailing slash; XOS's URLs had one).
pub fn trim_admin_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.starts_with("/admin/") && path.len() > "/admin/".len() && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/').to_string();
        let pq = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed,
        };
        if let Ok(uri) = pq.parse() {
            *req.uri_mut() = uri;
        }
    } else if path == "/admin/" {
        *req.uri_mut() = axum::http::Uri::from_static("/admin");
    }
    req
}
