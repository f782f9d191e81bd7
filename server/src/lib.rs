//! The XOS server: REST API generated from the model registry, authentication, the one write
//! path (store), the web UI, and the `xos` command line.

pub mod api;
pub mod auth;
pub mod cache;
pub mod config;
pub mod csp;
pub mod dashboards;
pub mod error;
pub mod events;
pub mod metrics;
pub mod ops;
pub mod seed;
pub mod services;
pub mod state;
pub mod sync;
pub mod tosca;
pub mod web;
pub mod xoslib;

// The store crate (database, schema, the one write path) under the paths the server always used.
pub use store::{self, db, ddl, migrations};

use auth::session_store::DbSessionStore;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use leptos::config::LeptosOptions;
use state::{AppState, Config, SESSION_COOKIE};
use std::sync::Arc;
use store::Store;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("session store: {0}")]
    Sessions(#[from] sqlx::Error),
    #[error("{0}")]
    Config(String),
}

/// Largest request body accepted (a 1 MB text field still fits once JSON-escaped).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Connect to the configured database and bring its schema up to date.
pub async fn open_store(config: &Config) -> Result<Store, ServerError> {
    let db = db::Db::connect(&config.database_url).await?;
    db.migrate().await?;
    let store = Store::open(db, app::registry::registry()).await?;
    store.set_services(
        &config
            .loaded_services()
            .map_err(|e| ServerError::Config(e.to_string()))?,
    );
    Ok(store)
}

/// The state every handler shares.
pub fn app_state(store: Store, config: Config) -> Result<AppState, ServerError> {
    let addr = format!("{}:{}", config.bind, config.port)
        .parse::<std::net::SocketAddr>()
        .map_err(|e| ServerError::Config(format!("bad bind address {}:{}: {e}", config.bind, config.port)))?;
    let leptos = LeptosOptions::builder()
        .output_name("frontend")
        .site_root(config.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build();
    let credentials = Arc::new(auth::CredentialCache::default());
    auth::CredentialCache::watch(credentials.clone(), &store);
    let responses = Arc::new(cache::ResponseCache::new(config.response_cache));
    let events = Arc::new(events::EventHub::default());
    events::start(&store, events.clone());
    Ok(AppState::new(state::Shared {
        store,
        config: Arc::new(config),
        leptos,
        credentials,
        responses,
        events,
        metrics: Arc::new(metrics::Metrics::default()),
        throttle: Arc::new(auth::throttle::Throttle::default()),
        sessions: Arc::new(std::sync::OnceLock::new()),
    }))
}

/// The synchronizer of a configuration: the core's steps (the local, EC2 and OpenStack
/// backends, model policies as configured) and each loaded service's. Marks the observed models
/// (their deletes become soft) even when the engine runs elsewhere (`external`).
pub async fn synchronizer(store: &Store, config: &Config) -> Result<Arc<sync::engine::Engine>, ServerError> {
    synchronizer_for(store, config, None).await
}

/// [`synchronizer`] for one service alone (`xos sync --service NAME`; `core` is the core's
/// steps and model policies). Every loaded service's observed models are still marked, so this
/// process deletes softly what any synchronizer enacts.
pub async fn synchronizer_for(
    store: &Store,
    config: &Config,
    only: Option<&str>,
) -> Result<Arc<sync::engine::Engine>, ServerError> {
    let ctx = sync::StepContext::new(
        store.clone(),
        std::path::absolute(&config.state_dir).unwrap_or_else(|_| config.state_dir.clone()),
    );
    synchronizer_in(ctx, config, only).await
}

/// [`synchronizer_for`] in a given step context (its store, state directory and `xos` binary);
/// the configuration's local backend limits apply.
pub async fn synchronizer_in(
    mut ctx: sync::StepContext,
    config: &Config,
    only: Option<&str>,
) -> Result<Arc<sync::engine::Engine>, ServerError> {
    ctx.set(config.local_backend.clone());
    ctx.set(config.images.clone());
    let store = &ctx.store.clone();
    let loaded = store.services();
    if let Some(name) = only
        && name != "core"
        && !loaded.iter().any(|s| s == name)
    {
        return Err(ServerError::Config(format!(
            "service {name:?} is not loaded by this configuration (loaded: core, {})",
            loaded.join(", ")
        )));
    }
    let mut all = Vec::new();
    all.push(("core", core_steps(&ctx)));
    for s in &loaded {
        all.push((s.as_str(), services::steps(s, &ctx)));
    }
    let mut steps = Vec::new();
    for (service, service_steps) in all {
        for s in &service_steps {
            store.set_observed(s.observes(), true);
        }
        if only.is_none_or(|o| o == service) {
            steps.extend(service_steps);
        }
    }
    // Model policies: the core's and each loaded service's, run by the synchronizer of their owner.
    let mut policies = Vec::new();
    if config.model_policies {
        if only.is_none_or(|o| o == "core") {
            policies.extend(core_policies());
        }
        for name in loaded.iter().filter(|s| only.is_none_or(|o| o == s.as_str())) {
            policies.extend(services::find(name).map(|s| s.policies()).unwrap_or_default());
        }
    }
    let opts = sync::engine::EngineOptions {
        policies,
        services: only.map(|o| vec![o.to_string()]),
        ..Default::default()
    };
    let engine = sync::engine::Engine::new(ctx, steps, opts)
        .await
        .map_err(|e| ServerError::Config(e.to_string()))?;
    Ok(Arc::new(engine))
}

/// The core's model policies: XOS's controller links, then the OpenStack backend's.
pub fn core_policies() -> Vec<Arc<dyn sync::ModelPolicy>> {
    let mut policies = sync::policies::core();
    policies.push(Arc::new(sync::openstack::Policies));
    policies
}

/// The core's steps: the local, EC2 and OpenStack backends.
fn core_steps(ctx: &sync::StepContext) -> Vec<Arc<dyn sync::Step>> {
    let mut steps = sync::local::steps(ctx, std::time::Duration::from_secs(2));
    steps.extend(sync::ec2::steps(
        Arc::new(sync::ec2::Ec2Backend::default()),
        std::time::Duration::from_secs(300),
        std::time::Duration::from_secs(30),
    ));
    steps.extend(sync::openstack::steps(
        Arc::new(sync::openstack::OsBackend::default()),
        std::time::Duration::from_secs(30),
    ));
    steps
}

/// Refuse a request whose `Host` (or HTTP/2 authority) is not an allowed host, as Django's
/// `ALLOWED_HOSTS` does: the 400 to answer, or None. The probes answer any host (an
/// orchestrator's health check uses the pod's address).
fn refuse_host(state: &AppState, req: &axum::extract::Request) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
    let allowed = match host {
        Some(h) => probe || state.config.host_allowed(h),
        None => req
            .uri()
            .authority()
            .is_some_and(|a| probe || state.config.host_allowed(a.as_str())),
    };
    if allowed {
        return None;
    }
    // The value is the client's: logged abbreviated, never trusted.
    let shown: String = host
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect();
    tracing::warn!(host = %shown, "request for a host that is not allowed");
    Some(
        api::error::ApiError::BadRequest(
            "Invalid Host header: add the name to allowed_hosts in xos.toml.".into(),
        )
        .into_response(),
    )
}

/// The outermost layer: every request is counted and timed ([`ops::Track`]), a foreign `Host`
/// is refused before authentication (a DNS-rebinding page), and every answer gets the security
/// headers ([`security_headers`]). One hand-written service rather than three `from_fn`
/// middlewares: it calls what is inside it directly, so a request pays neither a clone of the
/// whole stack within nor a boxed `Next` per layer.
#[derive(Clone)]
struct EdgeLayer {
    state: AppState,
    /// The configured policy without a nonce source, made once (see [`csp::without_nonce`]).
    without_nonce: Option<axum::http::HeaderValue>,
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = Edge<S>;
    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
struct Edge<S> {
    inner: S,
    layer: EdgeLayer,
}

impl<S> tower::Service<axum::extract::Request> for Edge<S>
where
    S: tower::Service<axum::extract::Request>,
    S::Response: axum::response::IntoResponse,
    S::Error: Into<std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<axum::response::Response, std::convert::Infallible>>
                + Send,
        >,
    >;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: axum::extract::Request) -> Self::Future {
        use axum::response::IntoResponse;
        let track = ops::Track::start(&req);
        let EdgeLayer { state, without_nonce } = self.layer.clone();
        if let Some(mut refused) = refuse_host(&state, &req) {
            track.finish(&state.metrics, &mut refused);
            return Box::pin(std::future::ready(Ok(refused)));
        }
        let nonce = csp::CspNonce::new();
        req.extensions_mut().insert(nonce.clone());
        let answer = self.inner.call(req);
        Box::pin(async move {
            let resp = answer.await.map_err(Into::into)?.into_response();
            let mut resp = security_headers(&state, without_nonce, &nonce, resp);
            track.finish(&state.metrics, &mut resp);
            Ok(resp)
        })
    }
}

/// The headers every answer carries unless a handler set its own: no MIME sniffing, the
/// referrer only to this site, frames only by this site's pages (a view's same-origin iframe on
/// the home page still works), and the configured Content-Security-Policy with this answer's
/// script nonce (made by [`Edge`], handed to the handlers in the request's extensions).
fn security_headers(
    state: &AppState,
    without_nonce: Option<axum::http::HeaderValue>,
    nonce: &csp::CspNonce,
    mut resp: axum::response::Response,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    let h = resp.headers_mut();
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
    ];
    for (name, value) in fixed {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    let configured = &state.config.content_security_policy;
    if configured.is_empty() {
        return resp;
    }
    // A page (or anything given the nonce) gets its own; other answers the same policy without
    // a nonce source, made once.
    let value = if html || nonce.used() {
        HeaderValue::from_str(&csp::policy(configured, nonce)).ok()
    } else {
        without_nonce
    };
    if let Some(v) = value {
        h.entry(header::CONTENT_SECURITY_POLICY).or_insert(v);
    }
    resp
}

/// The whole HTTP application.
pub async fn router(state: AppState) -> Result<Router, ServerError> {
    let sessions = DbSessionStore::open(state.store.db()).await?;
    let _ = state.sessions.set(sessions.clone());
    let cleanup = sessions.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = cleanup.delete_expired().await {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
        }
    });
    let session_layer = SessionManagerLayer::new(sessions)
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.secure_cookies)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::weeks(2),
        ));
    // The routes carry one layer of their own: it hands the matched route to the metrics on
    // the way out. Everything else wraps the router once, so a request passes each middleware
    // once instead of through a stack cloned per route (`Router::layer` wraps every route).
    let routes = Router::new()
        .merge(api::router())
        .merge(tosca::http::router())
        .merge(xoslib::router())
        .merge(dashboards::router())
        .merge(ops::router())
        .merge(api::services::router())
        // The home page is rendered with the user's tabs, an admin list with its first page,
        // each read by a layer above the pages.
        .merge(
            web::router(&state)
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    dashboards::with_home_tabs,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    xoslib::admin_list::with_first_page,
                )),
        )
        .route_layer(axum::middleware::from_fn(ops::mark_route))
        .with_state(state.clone());
    let normalized = tower::ServiceBuilder::new()
        .layer(EdgeLayer {
            state: state.clone(),
            without_nonce: axum::http::HeaderValue::from_str(&csp::without_nonce(
                &state.config.content_security_policy,
            ))
            .ok(),
        })
        // A handler that has not answered by then gets 503 (the events stream answers at once
        // and streams afterwards, so it is not cut).
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            std::time::Duration::from_secs(state.config.request_timeout_secs.max(1)),
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(auth::session_store::SessionsWhereNeeded::new(session_layer))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // Admin pages answer with or without the trailing slash XOS's URLs had
        // (`/admin/core/dashboardview/`); the path is normalized before routing.
        .map_request(web::trim_admin_slash)
        .service(routes);
    Ok(Router::new().fallback_service(normalized))
}
