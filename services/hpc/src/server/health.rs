//! Health checks (`HpcHealthCheck`), run on their interval against their targets:
//! - `http`: every cache of the check's HPC service (every service's without one) is asked for
//!   `resource_name` (a path, sent with the service's first prefix as `Host`, or a whole URL
//!   whose host is sent) and must answer 2xx/3xx, with `result_contains` in the body and its
//!   size within `result_min_size`..`result_max_size` when set;
//! - `dns`: every Request Router's DNS server must answer `resource_name` with an address
//!   (`result_contains`, when set, among them);
//! - `nameserver`: every Request Router's DNS server must answer the SOA of `resource_name`.
//!
//! Each run's outcome per target is written to the check's `results` (JSON) and its status
//! (`1 - 2 of 2 healthy`, or which target failed and why), only when it changed. The Request
//! Router reads the `http` results: a cache an http check finds unhealthy leaves its answers.

use super::{all, caches_of, sites_of};
use crate::fields::{hpc_health_check, request_router_service};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use store::db::Value;
use store::{Record, Store};
use synchronizer::{Enacted, Step, StepContext, SyncError, default_fetch_pending};

/// How long one target may take to answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// One target's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub target: String,
    /// The cache's instance (http checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<i64>,
    pub ok: bool,
    pub detail: String,
}

/// Runs the health checks.
pub struct HealthChecks {
    http: reqwest::Client,
    /// Per check: when it last ran, and what it found then (not yet written).
    runs: Mutex<HashMap<i64, (Instant, Vec<Outcome>)>>,
}

impl HealthChecks {
    pub fn new(_ctx: &StepContext) -> HealthChecks {
        HealthChecks {
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            runs: Mutex::new(HashMap::new()),
        }
    }

    fn due(&self, check: &Record) -> bool {
        let interval = Duration::from_secs(check.opt(hpc_health_check::INTERVAL).unwrap_or(5).max(1) as u64);
        self.runs
            .lock()
            .expect("runs lock")
            .get(&check.id())
            .is_none_or(|(at, _)| at.elapsed() >= interval)
    }

    async fn run(&self, store: &Store, check: &Record) -> Result<Vec<Outcome>, SyncError> {
        let mut out = match check.req(hpc_health_check::KIND)? {
            "http" => self.run_http(store, check).await?,
            kind => run_dns(store, check, kind == "nameserver").await?,
        };
        out.sort_by(|a, b| a.target.cmp(&b.target));
        self.runs
            .lock()
            .expect("runs lock")
            .insert(check.id(), (Instant::now(), out.clone()));
        Ok(out)
    }

    async fn run_http(&self, store: &Store, check: &Record) -> Result<Vec<Outcome>, SyncError> {
        let resource = check.req(hpc_health_check::RESOURCE_NAME)?.to_string();
        let mut out = Vec::new();
        for service in all(store, "HpcService").await? {
            if check
                .opt(hpc_health_check::HPC_SERVICE)
                .is_some_and(|s| s != service.id())
            {
                continue;
            }
            let (sites, _) = sites_of(store, service.id()).await?;
            let (host, path) = match url::Url::parse(&resource) {
                Ok(u) if u.host_str().is_some() => (
                    u.host_str().unwrap_or_default().to_string(),
                    match u.query() {
                        Some(q) => format!("{}?{q}", u.path()),
                        None => u.path().to_string(),
                    },
                ),
                _ => (
                    sites
                        .first()
                        .map(|s| s.prefix.clone())
                        .unwrap_or_else(|| "localhost".into()),
                    if resource.starts_with('/') {
                        resource.clone()
                    } else {
                        format!("/{resource}")
                    },
                ),
            };
            for cache in caches_of(store, &service).await? {
                let target = format!("{} ({}:{})", cache.name, cache.addr, cache.port);
                let url = format!("http://{}:{}{path}", cache.addr, cache.port);
                let (ok, detail) = match self.http.get(&url).header("Host", &host).send().await {
                    Err(e) => (false, short_error(e)),
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Err(e) => (false, short_error(e)),
                            Ok(body) => judge(check, status.as_u16(), &body),
                        }
                    }
                };
                out.push(Outcome {
                    target,
                    instance: Some(cache.instance),
                    ok,
                    detail,
                });
            }
        }
        Ok(out)
    }
}

/// An HTTP error without the URL (the target names it already).
fn short_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused".into()
    } else {
        e.without_url().to_string()
    }
}

/// Whether an HTTP answer passes the check.
fn judge(check: &Record, status: u16, body: &[u8]) -> (bool, String) {
    let size = body.len() as i64;
    if !(200..400).contains(&status) {
        return (false, format!("HTTP {status}"));
    }
    if let Some(want) = check
        .opt(hpc_health_check::RESULT_CONTAINS)
        .filter(|s| !s.is_empty())
        && !String::from_utf8_lossy(body).contains(want)
    {
        return (false, format!("HTTP {status}, {size} bytes without {want:?}"));
    }
    if let Some(min) = check.opt(hpc_health_check::RESULT_MIN_SIZE)
        && size < min
    {
        return (false, format!("HTTP {status}, {size} bytes (fewer than {min})"));
    }
    if let Some(max) = check.opt(hpc_health_check::RESULT_MAX_SIZE)
        && size > max
    {
        return (false, format!("HTTP {status}, {size} bytes (more than {max})"));
    }
    (true, format!("HTTP {status}, {size} bytes"))
}

/// A dns or nameserver check against every Request Router's DNS server.
async fn run_dns(store: &Store, check: &Record, soa: bool) -> Result<Vec<Outcome>, SyncError> {
    let name = check.req(hpc_health_check::RESOURCE_NAME)?.to_string();
    let mut out = Vec::new();
    for rr in all(store, "RequestRouterService").await.unwrap_or_default() {
        let Some(server) = dns_server(&rr) else { continue };
        let target = format!("dns {server}");
        let (ok, detail) = match super::dns::query(server, &name, soa, TIMEOUT).await {
            Err(e) => (false, e),
            Ok(a) if a.rcode != 0 => (false, format!("rcode {}", a.rcode)),
            Ok(a) if soa => (a.answers > 0, format!("{} answer(s)", a.answers)),
            Ok(a) => {
                let addrs: Vec<String> = a.a.iter().map(Ipv4Addr::to_string).collect();
                let want = check
                    .opt(hpc_health_check::RESULT_CONTAINS)
                    .filter(|s| !s.is_empty());
                let ok = !addrs.is_empty() && want.is_none_or(|w| addrs.iter().any(|x| x.contains(w)));
                (
                    ok,
                    if addrs.is_empty() {
                        "no address".into()
                    } else {
                        addrs.join(" ")
                    },
                )
            }
        };
        out.push(Outcome {
            target,
            instance: None,
            ok,
            detail,
        });
    }
    Ok(out)
}

/// Where a Request Router service's DNS server listens.
pub fn dns_server(rr: &Record) -> Option<SocketAddr> {
    let addr = rr
        .opt(request_router_service::DNS_ADDRESS)
        .unwrap_or("127.0.0.1")
        .parse()
        .ok()?;
    let port = u16::try_from(rr.opt(request_router_service::DNS_PORT).unwrap_or(5353)).ok()?;
    Some(SocketAddr::new(addr, port))
}

/// The outcomes stored in a check's `results`.
fn stored(check: &Record) -> Vec<Outcome> {
    check
        .opt(hpc_health_check::RESULTS)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// The status line of a check's outcomes.
fn summary(outcomes: &[Outcome]) -> String {
    let healthy = outcomes.iter().filter(|o| o.ok).count();
    let mut s = format!("{healthy} of {} healthy", outcomes.len());
    for o in outcomes.iter().filter(|o| !o.ok) {
        s.push_str(&format!("; {}: {}", o.target, o.detail));
    }
    s
}

/// Whether each cache is healthy, by instance id, as the http checks last found it (a cache no
/// check has judged counts as healthy).
pub async fn cache_health(store: &Store) -> Result<HashMap<i64, bool>, SyncError> {
    let mut health: HashMap<i64, bool> = HashMap::new();
    for check in all(store, "HpcHealthCheck").await? {
        if check.req(hpc_health_check::KIND)? != "http" {
            continue;
        }
        for o in stored(&check) {
            if let Some(i) = o.instance {
                *health.entry(i).or_insert(true) &= o.ok;
            }
        }
    }
    Ok(health)
}

#[async_trait::async_trait]
impl Step for HealthChecks {
    fn name(&self) -> &'static str {
        "hpc_health_checks"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["HpcHealthCheck"]
    }
    fn observes(&self) -> &'static str {
        "HpcHealthCheck"
    }
    fn requested_interval(&self) -> Duration {
        // Each check keeps its own interval; this is how often they are looked at.
        Duration::from_millis(500)
    }
    fn concurrency(&self) -> usize {
        4
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        let mut pending = default_fetch_pending(&ctx.store, "HpcHealthCheck", deletion, None).await?;
        if deletion {
            return Ok(pending);
        }
        for check in all(&ctx.store, "HpcHealthCheck").await? {
            if pending.iter().any(|p| p.id() == check.id()) || !self.due(&check) {
                continue;
            }
            // Written only when the outcome changed: no status churn while all is well.
            if self.run(&ctx.store, &check).await? != stored(&check) {
                pending.push(check);
            }
        }
        Ok(pending)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let fresh = self
            .runs
            .lock()
            .expect("runs lock")
            .get(&obj.id())
            .filter(|(at, _)| at.elapsed() < TIMEOUT)
            .map(|(_, o)| o.clone());
        let outcomes = match fresh {
            Some(o) => o,
            None => self.run(&ctx.store, obj).await?,
        };
        let json = serde_json::to_string(&outcomes).unwrap_or_default();
        Ok(Enacted::with_status(summary(&outcomes)).field("results", Value::Text(json)))
    }
    async fn delete_record(&self, _: &StepContext, obj: &Record) -> Result<(), SyncError> {
        self.runs.lock().expect("runs lock").remove(&obj.id());
        Ok(())
    }
}
