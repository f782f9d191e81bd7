//! HPC's synchronizer: the High-Performance Caches of the CDN, enacted as real nginx caches.
//!
//! The caches of an HPC service are the instances of its slices (`Slice.service`). For each the
//! synchronizer renders one nginx configuration (`nginx.rs`): every enabled CDN prefix of the
//! service's enabled content providers, proxied to the provider's enabled origin servers (the
//! prefix's default origin first, the others as backups) through `proxy_cache`, with the
//! provider's access maps as `allow`/`deny` rules. On this host each cache is an nginx process
//! listening on its own loopback address (`cache_address`) and the service's `cache_port`; the
//! configuration is the same a cache VM would get.
//!
//! Steps: a change to a CDN prefix, origin server, access map, content provider or service
//! provider re-renders the caches of its service (`hpc_<model>` steps, internal); the service's
//! own step (`hpc_services`) also runs on an interval and repairs drift: a cache instance that
//! appeared or went, a cache process that died, a configuration edited by hand. A configuration
//! is written to a temporary file, checked with `nginx -t`, then renamed over the old one and
//! the cache reloaded (SIGHUP: graceful, no request dropped), so a synchronizer killed at any
//! point leaves each cache with a whole configuration, old or new. Health checks: `health.rs`.

pub mod dns;
mod health;
pub mod nginx;
pub mod origin;
pub mod stats;

use crate::fields::{access_map, cdn_prefix, content_provider, hpc_service, origin_server, service_provider};
use crate::maps::{AccessRule, parse_access_map};
use registry::fields::{common, instance, slice};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use store::db::Value;
use store::{Actor, ListQuery, Record, Store};
use synchronizer::{Enacted, Step, StepContext, SyncError, default_fetch_pending};

pub use health::cache_health;

/// How often the service step looks for drift.
const DRIFT_INTERVAL: Duration = Duration::from_secs(1);

/// The steps of the HPC service, sharing one set of caches.
pub fn steps(ctx: &StepContext) -> Vec<Arc<dyn Step>> {
    let caches = Arc::new(nginx::Caches::new(ctx));
    let mut steps: Vec<Arc<dyn Step>> = vec![Arc::new(Services {
        caches: caches.clone(),
    })];
    for (model, name) in [
        ("ServiceProvider", "hpc_serviceproviders"),
        ("ContentProvider", "hpc_contentproviders"),
        ("OriginServer", "hpc_originservers"),
        ("CDNPrefix", "hpc_cdnprefixes"),
        ("AccessMap", "hpc_accessmaps"),
    ] {
        steps.push(Arc::new(Changes {
            caches: caches.clone(),
            model,
            name,
        }));
    }
    steps.push(Arc::new(health::HealthChecks::new(ctx)));
    steps
}

/// One cache: an instance of the service's slices.
#[derive(Clone, Debug, PartialEq)]
pub struct Cache {
    pub instance: i64,
    pub name: String,
    pub addr: Ipv4Addr,
    pub port: u16,
}

/// One prefix as the caches serve it.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    pub id: i64,
    pub prefix: String,
    pub provider: String,
    /// Origin URLs, the default first.
    pub origins: Vec<url::Url>,
    /// The content provider's access rules, then "deny all": `None` when it has no access map
    /// (everyone may fetch). A map with no rule denies everyone.
    pub access: Option<Vec<AccessRule>>,
}

/// What an HPC service's caches should be.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub service: i64,
    pub caches: Vec<Cache>,
    pub sites: Vec<Site>,
    /// What could not be served (a prefix without an origin).
    pub problems: Vec<Problem>,
}

/// A prefix or origin left out of the caches' configuration: why, and the rows it concerns
/// (their own status says so, not only the service's).
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The rows at fault, by model name and id.
    pub rows: Vec<(&'static str, i64)>,
    pub text: String,
}

impl Problem {
    fn new(rows: &[(&'static str, i64)], text: String) -> Problem {
        Problem {
            rows: rows.to_vec(),
            text,
        }
    }

    /// Whether it concerns this row.
    pub fn names(&self, model: &str, id: i64) -> bool {
        self.rows.iter().any(|&(m, i)| m == model && i == id)
    }
}

impl Plan {
    /// The status of the service when its caches serve this plan.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} cache{} serving {} prefix{}",
            self.caches.len(),
            if self.caches.len() == 1 { "" } else { "s" },
            self.sites.len(),
            if self.sites.len() == 1 { "" } else { "es" },
        );
        for p in &self.problems {
            s.push_str("; ");
            s.push_str(&p.text);
        }
        s
    }
}

/// The address a cache serves on. An instance on this host (the local backend reports
/// 127.0.0.1) gets a loopback address of its own, `127.1.<id / 256>.<id % 256>`, so several
/// caches share one port and DNS can answer with plain addresses; an instance with an address
/// of its own keeps it.
pub fn cache_address(instance: &Record) -> Ipv4Addr {
    match instance
        .opt(instance::IP)
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
    {
        Some(ip) if !ip.is_loopback() && !ip.is_unspecified() => ip,
        _ => {
            let id = instance.id().clamp(0, 0xffff) as u16;
            Ipv4Addr::new(127, 1, (id >> 8) as u8, (id & 0xff) as u8)
        }
    }
}

/// Text from a row shown in a status: printable characters only, at most 200.
fn plain_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Every live row of `model`, as the system sees it.
pub async fn all(store: &Store, model: &str) -> Result<Vec<Record>, SyncError> {
    let model = store.model(model);
    Ok(store.list(&Actor::System, model, &ListQuery::default()).await?.0)
}

/// Whether an instance has been enacted by its backend (its VM, here its process, runs).
pub fn is_up(instance: &Record) -> bool {
    instance
        .opt(common::BACKEND_STATUS)
        .is_some_and(|s| registry::BackendStatus::parse(s).is_ok())
}

/// The caches of HPC service `service`: the enacted instances of its slices.
pub async fn caches_of(store: &Store, service: &Record) -> Result<Vec<Cache>, SyncError> {
    let (slices, instances) = (all(store, "Slice").await?, all(store, "Instance").await?);
    Ok(caches_in(service, &slices, &instances))
}

/// The caches of `service` among these slices and instances.
fn caches_in(service: &Record, slices: &[Record], instances: &[Record]) -> Vec<Cache> {
    let port = service
        .opt(hpc_service::CACHE_PORT)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(8880);
    let mine: Vec<i64> = slices
        .iter()
        .filter(|s| s.opt(slice::SERVICE) == Some(service.id()))
        .map(Record::id)
        .collect();
    instances
        .iter()
        .filter(|i| i.opt(instance::SLICE).is_some_and(|s| mine.contains(&s)) && is_up(i))
        .map(|i| Cache {
            instance: i.id(),
            name: i.opt(instance::NAME).unwrap_or_default().to_string(),
            addr: cache_address(i),
            port,
        })
        .collect()
}

/// The enabled prefixes of HPC service `service`, with their origins and access rules.
pub async fn sites_of(store: &Store, service: i64) -> Result<(Vec<Site>, Vec<Problem>), SyncError> {
    let providers: HashMap<i64, Record> = all(store, "ServiceProvider")
        .await?
        .into_iter()
        .filter(|p| {
            p.opt(service_provider::HPC_SERVICE) == Some(service)
                && p.opt(service_provider::ENABLED) == Some(true)
        })
        .map(|p| (p.id(), p))
        .collect();
    let content: HashMap<i64, Record> = all(store, "ContentProvider")
        .await?
        .into_iter()
        .filter(|c| {
            c.opt(content_provider::ENABLED) == Some(true)
                && c.opt(content_provider::SERVICE_PROVIDER)
                    .is_some_and(|p| providers.contains_key(&p))
        })
        .map(|c| (c.id(), c))
        .collect();
    let origins = all(store, "OriginServer").await?;
    let maps = all(store, "AccessMap").await?;
    let mut sites = Vec::new();
    let mut problems = Vec::new();
    for p in all(store, "CDNPrefix").await? {
        // Prefixes of providers not served (disabled, or of another service) are left out.
        let Some(cp) = content.get(&p.req(cdn_prefix::CONTENT_PROVIDER)?) else {
            continue;
        };
        if !p.req(cdn_prefix::ENABLED)? {
            continue;
        }
        let prefix = p.req(cdn_prefix::PREFIX)?.to_string();
        let at = ("CDNPrefix", p.id());
        let mut mine: Vec<&Record> = origins
            .iter()
            .filter(|o| {
                o.opt(origin_server::CONTENT_PROVIDER) == Some(cp.id())
                    && o.opt(origin_server::ENABLED) == Some(true)
            })
            .collect();
        // The default origin first, the others in the order they were made.
        let default = p.opt(cdn_prefix::DEFAULT_ORIGIN_SERVER);
        mine.sort_by_key(|o| (Some(o.id()) != default, o.id()));
        // A prefix whose configuration cannot be written safely is left out on its own (the
        // service's status says why); the others keep being served and changed. Stored values
        // were checked when written, and are checked again here, before they reach nginx.
        if let Some(e) = registry::domain_name_error(&prefix) {
            problems.push(Problem::new(
                &[at],
                format!("prefix {:?} is not served: {e}", plain_text(&prefix)),
            ));
            continue;
        }
        let mut urls: Vec<url::Url> = Vec::new();
        let mut bad = Vec::new();
        for o in &mine {
            let text = o.req(origin_server::URL)?;
            match crate::maps::origin_url_error(text)
                .map_or_else(|| url::Url::parse(text).map_err(|e| e.to_string()), Err)
            {
                Ok(u) => urls.push(u),
                Err(e) => bad.push((o.id(), e)),
            }
        }
        if urls.is_empty() {
            // Not served at all: the prefix and its origins say why.
            let mut rows = vec![at];
            rows.extend(bad.iter().map(|(o, _)| ("OriginServer", *o)));
            let why = match bad.first() {
                Some((o, e)) => format!("origin server {o} cannot be used: {e}"),
                None => "no enabled origin server".to_string(),
            };
            problems.push(Problem::new(&rows, format!("{prefix} is not served: {why}")));
            continue;
        }
        for (o, e) in bad {
            problems.push(Problem::new(
                &[("OriginServer", o)],
                format!("origin server {o} of {prefix} is left out: {e}"),
            ));
        }
        // Access maps fail closed: a provider with maps allows only what they allow, and a map
        // that no longer parses stops its prefixes from being served at all.
        let mut access: Option<Vec<AccessRule>> = None;
        let mut unreadable = None;
        for m in maps
            .iter()
            .filter(|m| m.opt(access_map::CONTENT_PROVIDER) == Some(cp.id()))
        {
            match parse_access_map(m.req(access_map::MAP)?) {
                Ok(rules) => access.get_or_insert_with(Vec::new).extend(rules),
                Err(e) => unreadable = Some((m.id(), format!("access map {} does not parse ({e})", m.id()))),
            }
        }
        if let Some((m, e)) = unreadable {
            problems.push(Problem::new(
                &[at, ("AccessMap", m)],
                format!("{prefix} is not served: its {e}"),
            ));
            continue;
        }
        sites.push(Site {
            id: p.id(),
            prefix,
            provider: cp.req(content_provider::NAME)?.to_string(),
            origins: urls,
            access,
        });
    }
    Ok((sites, problems))
}

/// The plans of every HPC service (or of `only`), each with its service row; slices and
/// instances are read once for all of them.
pub async fn plans(store: &Store, only: Option<i64>) -> Result<Vec<(Record, Plan)>, SyncError> {
    let (slices, instances) = (all(store, "Slice").await?, all(store, "Instance").await?);
    let mut out = Vec::new();
    for s in all(store, "HpcService").await? {
        if only.is_some_and(|o| o != s.id()) {
            continue;
        }
        let (sites, problems) = sites_of(store, s.id()).await?;
        let plan = Plan {
            service: s.id(),
            caches: caches_in(&s, &slices, &instances),
            sites,
            problems,
        };
        out.push((s, plan));
    }
    Ok(out)
}

/// The caches every plan keeps (those of no plan are stopped).
fn kept(plans: &[(Record, Plan)]) -> Vec<i64> {
    plans
        .iter()
        .flat_map(|(_, p)| p.caches.iter().map(|c| c.instance))
        .collect()
}

/// The HPC service of a CDN row (a prefix, origin, map, content or service provider), if it
/// can still be reached (a row deleted with its parents cannot).
async fn service_of(store: &Store, row: &Record) -> Option<i64> {
    let mut rec = row.clone();
    for _ in 0..3 {
        if let Some(s) = rec.try_get("hpcService").and_then(Value::as_int) {
            return Some(s);
        }
        let (field, model) = if rec.try_get("contentProvider").is_some() {
            ("contentProvider", "ContentProvider")
        } else if rec.try_get("serviceProvider").is_some() {
            ("serviceProvider", "ServiceProvider")
        } else {
            return None;
        };
        let id = rec.get_int(field)?;
        rec = store.get(&Actor::System, store.model(model), id).await.ok()?;
    }
    None
}

/// Render and apply the caches of every HPC service (or of `only`); the status line, and what
/// was left out.
async fn reconcile(
    caches: &nginx::Caches,
    store: &Store,
    only: Option<i64>,
) -> Result<(String, Vec<Problem>), SyncError> {
    let plans = plans(store, only).await?;
    let mut lines = Vec::new();
    for (_, plan) in &plans {
        lines.push(caches.apply(plan).await?);
    }
    if only.is_none() {
        caches.stop_others(&kept(&plans)).await;
    }
    let problems = plans.into_iter().flat_map(|(_, p)| p.problems).collect();
    Ok((lines.join("; "), problems))
}

/// The service itself: its caches rendered and running (internal), and drift repaired on an
/// interval (external): caches come and go with instances, a dead cache is restarted.
struct Services {
    caches: Arc<nginx::Caches>,
}

#[async_trait::async_trait]
impl Step for Services {
    fn name(&self) -> &'static str {
        "hpc_services"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["HpcService"]
    }
    fn observes(&self) -> &'static str {
        "HpcService"
    }
    fn requested_interval(&self) -> Duration {
        DRIFT_INTERVAL
    }
    fn concurrency(&self) -> usize {
        1
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        let mut pending = default_fetch_pending(&ctx.store, "HpcService", deletion, None).await?;
        if deletion {
            return Ok(pending);
        }
        // Drift: services whose caches differ from their plan (checked without writing), or
        // served by another step's pass while this status kept an older plan.
        let plans = plans(&ctx.store, None).await?;
        for (s, plan) in &plans {
            if pending.iter().any(|p| p.id() == s.id()) {
                continue;
            }
            let status = format!("1 - {}", plan.summary());
            if self.caches.drifted(plan).await || s.opt(common::BACKEND_STATUS) != Some(status.as_str()) {
                pending.push(s.clone());
            }
        }
        // Caches of instances that are gone.
        self.caches.stop_others(&kept(&plans)).await;
        Ok(pending)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let (status, _) = reconcile(&self.caches, &ctx.store, Some(obj.id())).await?;
        Ok(Enacted::with_status(status))
    }
    async fn delete_record(&self, ctx: &StepContext, _obj: &Record) -> Result<(), SyncError> {
        // The service's slices may outlive it; its caches stop, as they serve nothing now (the
        // deleted service is hidden already, so its caches are not kept).
        reconcile(&self.caches, &ctx.store, None).await.map(|_| ())
    }
}

/// A CDN row whose change reaches the caches of its service.
struct Changes {
    caches: Arc<nginx::Caches>,
    model: &'static str,
    name: &'static str,
}

#[async_trait::async_trait]
impl Step for Changes {
    fn name(&self) -> &'static str {
        self.name
    }
    fn provides(&self) -> Vec<&'static str> {
        vec![self.model]
    }
    fn observes(&self) -> &'static str {
        self.model
    }
    fn concurrency(&self) -> usize {
        1
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let service = service_of(&ctx.store, obj).await;
        let (_, problems) = reconcile(&self.caches, &ctx.store, service).await?;
        // A row the caches could not take fails on its own, saying why (it is tried again, and
        // taken once what it lacked is mended); the others were applied all the same.
        if let Some(p) = problems.iter().find(|p| p.names(self.model, obj.id())) {
            return Err(SyncError::Failed(p.text.clone()));
        }
        // The service's status tells how many caches serve what; this row is in their
        // configuration now.
        Ok(Enacted::with_status(match service {
            Some(id) => format!("in the configuration of HPC service {id}'s caches"),
            None => "in the configuration of the caches".to_string(),
        }))
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        // The row is hidden already: rendering the service again leaves it out.
        let service = service_of(&ctx.store, obj).await;
        reconcile(&self.caches, &ctx.store, service).await.map(|_| ())
    }
}
