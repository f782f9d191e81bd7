//! What an operator watches: `/healthz` (the process answers), `/readyz` (the database answers
//! and its migrations are current) and `/metrics` (Prometheus text format: HTTP requests by
//! route and status with latency histograms, database pool use, and, where the synchronizer runs
//! in this process, its passes, objects enacted and failed per step, backlog and backoff skips).
//! Also the one log line per request (method, route, path without the query, status, time):
//! never a header, a body or a query string, so never a password or token.
//!
//! A synchronizer worker (`xos sync --metrics-addr ADDR`) serves the same three endpoints on a
//! port of its own ([`worker_router`]): in the production configuration the synchronizer runs
//! there, not in the API servers, and its figures would otherwise be nowhere.

pub use crate::metrics::Metrics;
use crate::metrics::{method_label, route_label};
use crate::state::AppState;
use crate::store::Store;
use crate::sync::engine::Engine;
use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
/// Route middleware: hand the matched route to [`Track`], which runs outside the router.
pub async fn mark_route(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(m) = matched {
        resp.extensions_mut().insert(m);
    }
    resp
}

/// Count and time one request by its route, and log one line for it: made when the request
/// arrives, finished with its answer (the route is the one [`mark_route`] handed over).
pub struct Track {
    method: &'static str,
    // For the log line (the path only, never the query): a shared copy, not a new string.
    uri: axum::http::Uri,
    start: Instant,
}

impl Track {
    pub fn start(req: &Request) -> Track {
        Track {
            method: method_label(req.method()),
            uri: req.uri().clone(),
            start: Instant::now(),
        }
    }

    pub fn finish(self, metrics: &Metrics, resp: &mut Response) {
        let elapsed = self.start.elapsed();
        let status = resp.status().as_u16();
        let route = resp
            .extensions()
            .get::<MatchedPath>()
            .map(|p| route_label(p.as_str()))
            .unwrap_or("unmatched");
        let (method, path, ms) = (self.method, self.uri.path(), elapsed.as_secs_f64() * 1000.0);
        if status >= 500 {
            // A server error is logged whatever the level.
            tracing::error!(method, route, path, status, ms, "request failed");
        } else {
            tracing::info!(method, route, path, status, ms, "request");
        }
        metrics.observe(method, route, status, elapsed.as_secs_f64());
    }
}

/// What the three endpoints need, in an API server or a synchronizer worker.
#[derive(Clone)]
pub struct OpsState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// A bearer token that also opens `/metrics` (see [`metrics_allowed`]).
    pub metrics_token: Option<Arc<str>>,
}

impl FromRef<AppState> for OpsState {
    fn from_ref(s: &AppState) -> OpsState {
        OpsState {
            store: s.store.clone(),
            metrics: s.metrics.clone(),
            metrics_token: s.config.metrics_token.as_deref().map(Arc::from),
        }
    }
}

/// `/metrics` is not public: it answers a client on this machine that is not behind the proxy
/// (a loopback peer without `X-Real-IP` / `X-Forwarded-For`; in-process tests have no peer),
/// or a request carrying `Authorization: Bearer <metrics_token>` when one is configured.
/// Authentication middleware does not run for it, so a throttled account's header never turns
/// a scrape into a 429.
fn metrics_allowed(req: &Request, token: Option<&str>) -> bool {
    let headers = req.headers();
    if let Some(t) = token
        && let Some(sent) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        && constant_time_eq(sent.trim().as_bytes(), t.as_bytes())
    {
        return true;
    }
    let proxied = headers.contains_key("x-real-ip") || headers.contains_key("x-forwarded-for");
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    !proxied && peer.is_none_or(|ip| ip.is_loopback())
}

/// Equal byte strings, in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    OpsState: FromRef<S>,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// `/healthz`, `/readyz` and `/metrics` (no login: probes and scrapers have none).
pub fn router() -> Router<AppState> {
    routes()
}

/// The same endpoints for a synchronizer worker, which has no API: its engine's figures and
/// its database pool.
/// `config` gives the metrics token and the hosts it answers to (its `bind` is the metrics
/// address's): like the API, another `Host` (a DNS-rebinding page) gets 400.
pub fn worker_router(store: Store, engine: Arc<Engine>, config: crate::config::Config) -> Router {
    let metrics = Arc::new(Metrics::default());
    metrics.set_engine(engine);
    let token = config.metrics_token.as_deref().map(Arc::from);
    let config = Arc::new(config);
    routes()
        .with_state(OpsState {
            store,
            metrics,
            metrics_token: token,
        })
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let config = config.clone();
            async move {
                let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
                let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
                if probe || host.is_some_and(|h| config.host_allowed(h)) {
                    next.run(req).await
                } else {
                    (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"detail": "Invalid Host header."})),
                    )
                        .into_response()
                }
            }
        }))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let db = state.store.db();
    let (status, body) = match db.migrations_current().await {
        Ok(true) => (
            StatusCode::OK,
            json!({"status": "ready", "database": "ok", "migrations": "current"}),
        ),
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not ready", "database": "ok", "migrations": "pending (run xos migrate)"}),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "not ready", "database": "unreachable"}),
            )
        }
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<OpsState>, req: Request) -> Response {
    if !metrics_allowed(&req, state.metrics_token.as_deref()) {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(
                json!({"detail": "Metrics are served to this machine only (or with the metrics token)."}),
            ),
        )
            .into_response();
    }
    let body = state.metrics.render(&state.store);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
