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

use crate::state::AppState;
use crate::store::Store;
use crate::sync::engine::Engine;
use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms … 4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The process's metrics: request families kept here, the rest read at scrape time.
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    engine: OnceLock<Arc<Engine>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            engine: OnceLock::new(),
        }
    }
}

/// A bounded method label (a client cannot grow the label set with made-up methods).
fn method_label(m: &axum::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

impl Metrics {
    /// Report on the synchronizer running in this process.
    pub fn set_engine(&self, engine: Arc<Engine>) {
        let _ = self.engine.set(engine);
    }

    fn observe(&self, method: &'static str, route: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { method, route })
            .observe(seconds);
    }

    /// The text exposition of every metric, as of now.
    pub fn render(&self, store: &Store) -> String {
        let mut reg = Registry::with_prefix("xos");
        reg.register(
            "http_requests",
            "HTTP requests by method, route and status",
            self.requests.clone(),
        );
        reg.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route",
            self.latency.clone(),
        );
        let pools = Family::<PoolLabels, Gauge>::default();
        let pool = |name: &'static str, size: u32, idle: usize| {
            let idle = idle as i64;
            pools
                .get_or_create(&PoolLabels {
                    pool: name,
                    state: "idle",
                })
                .set(idle);
            pools
                .get_or_create(&PoolLabels {
                    pool: name,
                    state: "in_use",
                })
                .set(i64::from(size) - idle);
        };
        let db = store.db();
        if let (Some(r), Some(w)) = (db.sqlite_readers(), db.sqlite_writer()) {
            pool("sqlite_readers", r.size(), r.num_idle());
            pool("sqlite_writer", w.size(), w.num_idle());
        }
        if let Some(p) = db.pg_pool() {
            pool("postgres", p.size(), p.num_idle());
        }
        reg.register(
            "db_connections",
            "Database pool connections by pool and state",
            pools,
        );
        let generation = Gauge::<i64>::default();
        generation.set(store.generation() as i64);
        reg.register(
            "store_generation",
            "Change generation of the store (moves on every commit seen)",
            generation,
        );
        if let Some(engine) = self.engine.get() {
            let passes = Counter::<u64>::default();
            passes.inc_by(engine.passes.load(Ordering::Relaxed));
            reg.register("sync_passes", "Synchronizer passes", passes);
            let enacted = Family::<StepLabels, Counter>::default();
            let failed = Family::<StepLabels, Counter>::default();
            let skips = Family::<StepLabels, Counter>::default();
            let backlog = Family::<StepLabels, Gauge>::default();
            for (step, s) in &engine.stats {
                let l = StepLabels { step };
                enacted
                    .get_or_create(&l)
                    .inc_by(s.enacted.load(Ordering::Relaxed));
                failed.get_or_create(&l).inc_by(s.failed.load(Ordering::Relaxed));
                skips
                    .get_or_create(&l)
                    .inc_by(s.backoff_skips.load(Ordering::Relaxed));
                backlog
                    .get_or_create(&l)
                    .set(s.pending.load(Ordering::Relaxed) as i64);
            }
            reg.register("sync_enacted", "Objects enacted, by step", enacted);
            reg.register("sync_failed", "Objects that failed, by step", failed);
            reg.register(
                "sync_backoff_skips",
                "Objects skipped because they are backing off, by step",
                skips,
            );
            reg.register("sync_backlog", "Objects pending at the step's last pass", backlog);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }
}

/// The route templates seen so far, each leaked once: the label set is the router's routes (a
/// fixed, small set), and a `&'static str` label costs no allocation per request.
fn route_label(route: &str) -> &'static str {
    static ROUTES: OnceLock<std::sync::RwLock<std::collections::HashSet<&'static str>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(r) = routes.read().expect("route labels lock").get(route) {
        return r;
    }
    let mut w = routes.write().expect("route labels lock");
    if let Some(r) = w.get(route) {
        return r;
    }
    let r: &'static str = Box::leak(route.to_string().into_boxed_str());
    w.insert(r);
    r
}

/// Middleware: count and time every request by its route, and log one line for it.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| route_label(p.as_str()))
        .unwrap_or("unmatched");
    let method = method_label(req.method());
    // The path only for the log line, and only when it is written.
    let path = tracing::enabled!(tracing::Level::INFO).then(|| req.uri().path().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    tracing::info!(
        method,
        route,
        path = path.as_deref().unwrap_or_default(),
        status,
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    state
        .metrics
        .observe(method, route, status, elapsed.as_secs_f64());
    resp
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
pub fn worker_router(store: Store, engine: Arc<Engine>, config: crate::state::Config) -> Router {
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
