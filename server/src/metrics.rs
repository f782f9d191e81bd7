//! The process's Prometheus metrics (HTTP requests by route and status, database pools, the
//! synchronizer's passes and backlog): held in the shared state, served by `ops`.

use crate::store::Store;
use crate::sync::engine::Engine;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

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
pub(crate) fn method_label(m: &axum::http::Method) -> &'static str {
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

    pub(crate) fn observe(&self, method: &'static str, route: &'static str, status: u16, seconds: f64) {
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
pub(crate) fn route_label(route: &str) -> &'static str {
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
