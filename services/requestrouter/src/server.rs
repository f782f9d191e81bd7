//! The Request Router's synchronizer: the CDN's DNS, enacted on a real authoritative server,
//! Knot DNS with its `geoip` module in subnet mode (EDNS client subnet honoured).
//!
//! The Request Router service runs one `knotd` on its `dns_address`:`dns_port`, under the local
//! backend, with its files in `<state_dir>/requestrouter/<service id>/`. Each service map is a
//! zone (`prefix`); every enabled CDN prefix of the map's owner (an HPC service) inside that
//! zone is answered, per client subnet, with up to `maxAnswers` healthy caches of the map's
//! slice:
//! - the site map (the most specific of the prefix's, its content provider's, its service
//!   provider's, its HPC service's, else the service map's own `siteMap`) lists caches per
//!   subnet, nearest first; the healthy ones among them answer;
//! - when all of a subnet's caches are unhealthy, `lastResortAction` picks among the healthy
//!   caches of the slice; clients no line covers get `defaultAction` over them;
//! - `best` keeps the caches' order (the site map's, or the slice's), `random` a pseudo-random
//!   order, fixed per subnet and name so answers do not churn; with no healthy cache at all every
//!   cache answers (an answer beats none).
//!
//! Health comes from the HPC health checks (`hpc::cache_health`). The service's step runs on an
//! interval and renders again; files that changed are replaced atomically (written aside, the
//! configuration checked by `knotc conf-check`, renamed) and Knot reloads (`knotc reload`),
//! which swaps configuration, zones and maps at once.

use crate::fields::{request_router_service as router, service_map};
use backend_local::{self as local, LocalBackend, Spec};
use ipnet::IpNet;
use registry::fields::{common, instance};
use registry::typed::{FieldName, Fk};
use service_hpc::fields::{cdn_prefix, content_provider, site_map};
use service_hpc::maps::{SiteLine, parse_site_map};
use service_hpc::server::{self as hpc, all};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use store::{Record, Store};
use synchronizer::{Enacted, Step, StepContext, SyncError, default_fetch_pending};

/// How often the service's step renders again (health and prefix changes reach DNS within it).
const INTERVAL: Duration = Duration::from_secs(1);

/// The steps of the Request Router, sharing one DNS server table.
pub fn steps(ctx: &StepContext) -> Vec<Arc<dyn Step>> {
    let dns = Arc::new(Dns {
        root: ctx.state_dir.join("requestrouter"),
        knotd: xos_service::sbin_binary("knotd", "XOS_KNOTD"),
        knotc: xos_service::sbin_binary("knotc", "XOS_KNOTC"),
        backend: Arc::new(
            LocalBackend::with_kind(&ctx.state_dir, "requestrouter")
                .limits(&ctx.setting::<local::LocalBackendConfig>()),
        ),
        lock: tokio::sync::Mutex::new(()),
    });
    vec![
        Arc::new(Routers { dns: dns.clone() }),
        Arc::new(ServiceMaps { dns }),
    ]
}

/// The files of one DNS server, by name relative to its directory.
type Files = BTreeMap<String, String>;

/// A zone's answers: per name, per subnet, the addresses.
type Answers = BTreeMap<String, Vec<(IpNet, Vec<Ipv4Addr>)>>;

/// One zone: its answers, and who may ask (`None`: everyone), from the service map's access map.
struct Zone {
    names: Answers,
    acl: Option<Vec<IpNet>>,
}

/// The zones of a DNS server, by name.
type Zones = BTreeMap<String, Zone>;

struct Dns {
    root: PathBuf,
    knotd: PathBuf,
    knotc: PathBuf,
    backend: Arc<LocalBackend>,
    lock: tokio::sync::Mutex<()>,
}

/// A cache as DNS sees it.
#[derive(Clone, Debug)]
struct Target {
    name: String,
    addr: Ipv4Addr,
    healthy: bool,
}

/// A stable pseudo-random order of `items` for `seed` (FNV-1a of the seed, then an LCG).
fn shuffled<T: Clone>(items: &[T], seed: &str) -> Vec<T> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        h = h
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        v.swap(i, (h >> 33) as usize % (i + 1));
    }
    v
}

/// Up to `max` addresses of `targets` by `action` (`best`: in order; `random`).
fn pick(targets: &[&Target], action: &str, max: usize, seed: &str) -> Vec<Ipv4Addr> {
    let ordered = if action == "random" {
        shuffled(targets, seed)
    } else {
        targets.to_vec()
    };
    ordered.iter().take(max.max(1)).map(|t| t.addr).collect()
}

/// The answers for one name: each site-map line, then the default for everyone else.
fn answers_for(
    name: &str,
    lines: &[SiteLine],
    targets: &[Target],
    rr: &Record,
) -> Vec<(IpNet, Vec<Ipv4Addr>)> {
    let max = rr.opt(router::MAX_ANSWERS).unwrap_or(3).max(1) as usize;
    let default_action = rr.opt(router::DEFAULT_ACTION).unwrap_or("best");
    let last_resort = rr.opt(router::LAST_RESORT_ACTION).unwrap_or("random");
    let healthy: Vec<&Target> = targets.iter().filter(|t| t.healthy).collect();
    // With no healthy cache every cache answers.
    let pool: Vec<&Target> = if healthy.is_empty() {
        targets.iter().collect()
    } else {
        healthy
    };
    let mut out = Vec::new();
    for line in lines {
        let mapped: Vec<&Target> = line
            .caches
            .iter()
            .filter_map(|c| targets.iter().find(|t| &t.name == c))
            .filter(|t| t.healthy)
            .collect();
        let addrs = if mapped.is_empty() {
            pick(&pool, last_resort, max, &format!("{name} {}", line.net))
        } else {
            pick(&mapped, "best", max, "")
        };
        out.push((line.net, addrs));
    }
    for net in ["0.0.0.0/0", "::/0"] {
        let net: IpNet = net.parse().expect("subnet");
        if !out.iter().any(|(n, _)| *n == net) {
            out.push((net, pick(&pool, default_action, max, &format!("{name} {net}"))));
        }
    }
    out
}

/// The site map that applies to CDN prefix `p`: the most specific owner's, else the service
/// map's own.
fn site_map_for(
    p: &Record,
    provider: Option<&Record>,
    hpc: i64,
    maps: &[Record],
    own: Option<&str>,
) -> Vec<SiteLine> {
    let cp = p.opt(cdn_prefix::CONTENT_PROVIDER);
    let sp = provider.and_then(|c| c.opt(content_provider::SERVICE_PROVIDER));
    let by = |field: FieldName<Fk>, id: Option<i64>| {
        id.and_then(|id| maps.iter().find(|m| m.opt(field) == Some(id)))
    };
    let text = by(site_map::CDN_PREFIX, Some(p.id()))
        .or_else(|| by(site_map::CONTENT_PROVIDER, cp))
        .or_else(|| by(site_map::SERVICE_PROVIDER, sp))
        .or_else(|| by(site_map::HPC_SERVICE, Some(hpc)))
        .and_then(|m| m.opt(site_map::MAP))
        .or(own)
        .unwrap_or_default();
    parse_site_map(text).unwrap_or_default()
}

/// Whether `name` lies in `zone`.
fn in_zone(name: &str, zone: &str) -> bool {
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// Everything the DNS server of Request Router `rr` should answer, zone by zone.
async fn answers(store: &Store, rr: &Record) -> Result<Zones, SyncError> {
    let health = hpc::cache_health(store).await?;
    let instances = all(store, "Instance").await?;
    let prefixes = all(store, "CDNPrefix").await?;
    let content: HashMap<i64, Record> = all(store, "ContentProvider")
        .await?
        .into_iter()
        .map(|c| (c.id(), c))
        .collect();
    let site_maps = all(store, "SiteMap").await?;
    let mut zones = BTreeMap::new();
    for map in all(store, "ServiceMap").await? {
        let zone = map.req(service_map::PREFIX)?.to_string();
        let owner = map.req(service_map::OWNER)?;
        let slice = map.req(service_map::SLICE)?;
        // The prefixes the owner's caches serve (enabled, of enabled providers).
        let served: Vec<i64> = match store
            .get(&store::Actor::System, store.model("HpcService"), owner)
            .await
        {
            Ok(_) => hpc::sites_of(store, owner)
                .await?
                .0
                .iter()
                .map(|s| s.id)
                .collect(),
            Err(_) => Vec::new(),
        };
        let targets: Vec<Target> = instances
            .iter()
            .filter(|i| i.opt(instance::SLICE) == Some(slice))
            .filter(|i| hpc::is_up(i))
            .map(|i| Target {
                name: i.opt(instance::NAME).unwrap_or_default().to_string(),
                addr: hpc::cache_address(i),
                healthy: health.get(&i.id()).copied().unwrap_or(true),
            })
            .collect();
        let mut names = Answers::new();
        if !targets.is_empty() {
            for p in prefixes.iter().filter(|p| served.contains(&p.id())) {
                let name = p.req(cdn_prefix::PREFIX)?;
                if !in_zone(name, &zone) {
                    continue;
                }
                let provider = content.get(&p.req(cdn_prefix::CONTENT_PROVIDER)?);
                let lines = site_map_for(p, provider, owner, &site_maps, map.opt(service_map::SITE_MAP));
                names.insert(name.to_string(), answers_for(name, &lines, &targets, rr));
            }
        }
        // Stored maps were checked when written; one that no longer parses allows nobody
        // (fail closed), as does one of comments only.
        let acl = service_hpc::maps::parse_allow_list(map.opt(service_map::ACCESS_MAP).unwrap_or_default())
            .unwrap_or_else(|_| Some(Vec::new()));
        zones.insert(zone, Zone { names, acl });
    }
    Ok(zones)
}

/// The status of a Request Router answering `zones`.
fn summary(rr: &Record, zones: &Zones) -> String {
    let names: usize = zones.values().map(|z| z.names.len()).sum();
    format!(
        "answering {} name{} in {} zone{} on {}@{}",
        names,
        if names == 1 { "" } else { "s" },
        zones.len(),
        if zones.len() == 1 { "" } else { "s" },
        rr.opt(router::DNS_ADDRESS).unwrap_or("127.0.0.1"),
        rr.opt(router::DNS_PORT).unwrap_or(5353)
    )
}

/// A number that changes when `text` does (the zone's serial).
fn serial(text: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

/// The files of Request Router `rr`'s server in `dir`.
fn render(rr: &Record, zones: &Zones, dir: &Path) -> Files {
    let d = dir.display();
    let addr = rr.opt(router::DNS_ADDRESS).unwrap_or("127.0.0.1");
    let port = rr.opt(router::DNS_PORT).unwrap_or(5353);
    let ttl = rr.opt(router::DEFAULT_TTL).unwrap_or(30);
    let mut files = Files::new();
    let mut conf = String::new();
    let _ = writeln!(
        conf,
        "# The Request Router's DNS server: written by its synchronizer; edits are replaced.\nserver:\n    rundir: \"{d}/run\"\n    listen: {addr}@{port}\n    edns-client-subnet: on\n    identity: \"\"\n    version: \"\"\ndatabase:\n    storage: \"{d}/storage\"\nlog:\n  - target: stderr\n    any: warning"
    );
    if !zones.is_empty() {
        conf.push_str("mod-geoip:\n");
        for (i, zone) in zones.keys().enumerate() {
            let _ = writeln!(
                conf,
                "  - id: map{i}\n    config-file: \"{d}/geo/{zone}.conf\"\n    ttl: {ttl}\n    mode: subnet"
            );
        }
        // Who may ask a zone: Knot's query ACL (others get NOTAUTH), from the access map.
        let acls: Vec<(usize, &Vec<IpNet>)> = zones
            .values()
            .enumerate()
            .filter_map(|(i, z)| z.acl.as_ref().map(|a| (i, a)))
            .collect();
        if !acls.is_empty() {
            conf.push_str("mod-queryacl:\n");
            for (i, nets) in &acls {
                let mut list: Vec<String> = nets.iter().map(IpNet::to_string).collect();
                if list.is_empty() {
                    // `deny all`: an address no query comes from (an empty list allows all).
                    list.push("255.255.255.255/32".into());
                }
                let _ = writeln!(conf, "  - id: acl{i}\n    address: [{}]", list.join(", "));
            }
        }
        conf.push_str("zone:\n");
        for (i, (zone, z)) in zones.iter().enumerate() {
            let modules = match z.acl {
                Some(_) => format!("[mod-queryacl/acl{i}, mod-geoip/map{i}]"),
                None => format!("mod-geoip/map{i}"),
            };
            let _ = writeln!(
                conf,
                "  - domain: {zone}.\n    file: \"{d}/zones/{zone}.zone\"\n    zonefile-sync: -1\n    journal-content: none\n    module: {modules}"
            );
        }
    }
    files.insert("knot.conf".into(), conf);
    for (zone, Zone { names, .. }) in zones {
        let ns_addr = addr.parse::<Ipv4Addr>().unwrap_or(Ipv4Addr::LOCALHOST);
        let body = format!("@ NS ns\nns A {ns_addr}\n");
        let text = format!(
            "$ORIGIN {zone}.\n$TTL {ttl}\n@ SOA ns hostmaster {} 3600 600 86400 {ttl}\n{body}",
            serial(&format!("{zone}{body}"))
        );
        files.insert(format!("zones/{zone}.zone"), text);
        let mut geo = String::new();
        for (name, lines) in names {
            let _ = writeln!(geo, "{name}:");
            for (net, addrs) in lines {
                let _ = writeln!(geo, "  - net: {net}");
                for a in addrs {
                    let _ = writeln!(geo, "    A: {a}");
                }
            }
        }
        if geo.is_empty() {
            // The module needs its file; a name outside every zone answers nothing.
            let _ = writeln!(
                geo,
                "xos-no-caches.{zone}:\n  - net: 0.0.0.0/0\n    TXT: \"no caches\""
            );
        }
        files.insert(format!("geo/{zone}.conf"), geo);
    }
    files
}

impl Dns {
    fn dir(&self, rr: i64) -> PathBuf {
        self.root.join(rr.to_string())
    }

    /// The running knotd of Request Router `rr`.
    fn running(&self, rr: i64) -> Vec<i32> {
        self.backend
            .scan()
            .remove(&rr)
            .unwrap_or_default()
            .iter()
            .map(|f| f.pid)
            .collect()
    }

    /// What differs between the files on disk and `files`.
    fn changed(dir: &Path, files: &Files) -> Vec<String> {
        files
            .iter()
            .filter(|(name, text)| {
                std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(text.as_str())
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    async fn drifted(&self, store: &Store, rr: &Record) -> Result<bool, SyncError> {
        let zones = answers(store, rr).await?;
        let dir = self.dir(rr.id());
        let files = render(rr, &zones, &dir);
        let status = format!("1 - {}", summary(rr, &zones));
        Ok(!Self::changed(&dir, &files).is_empty()
            || self.running(rr.id()).is_empty()
            || rr.opt(common::BACKEND_STATUS) != Some(status.as_str()))
    }

    /// Make Request Router `rr`'s server answer as it should; the status line.
    async fn apply(&self, store: &Store, rr: &Record) -> Result<String, SyncError> {
        let _guard = self.lock.lock().await;
        let zones = answers(store, rr).await?;
        let dir = self.dir(rr.id());
        let files = render(rr, &zones, &dir);
        let changed = Self::changed(&dir, &files);
        let status = summary(rr, &zones);
        let (knotc, knotd, backend, id) = (
            self.knotc.clone(),
            self.knotd.clone(),
            self.backend.clone(),
            rr.id(),
        );
        let running = self.running(id);
        tokio::task::spawn_blocking(move || -> Result<(), SyncError> {
            if !changed.is_empty() {
                install(&knotc, &dir, &files)?;
            }
            if running.is_empty() {
                for sub in ["run", "storage"] {
                    std::fs::create_dir_all(dir.join(sub))
                        .map_err(|e| SyncError::Failed(format!("cannot create {}: {e}", dir.display())))?;
                }
                let spec = Spec {
                    argv: vec![
                        knotd.display().to_string(),
                        "-c".into(),
                        dir.join("knot.conf").display().to_string(),
                    ],
                    // Its control socket, pid file, journal and timers.
                    writable: vec![dir.join("run"), dir.join("storage")],
                    ..Spec::default()
                };
                backend
                    .spawn(id, &spec)
                    .map_err(|e| SyncError::Failed(format!("the DNS server did not start: {e}")))?;
            } else if !changed.is_empty() {
                reload(&knotc, &dir)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| SyncError::Failed(e.to_string()))??;
        Ok(status)
    }

    async fn stop(&self, rr: i64) {
        let pids = self.running(rr);
        let backend = self.backend.clone();
        let dir = self.dir(rr);
        let _ = tokio::task::spawn_blocking(move || {
            backend.stop(&pids);
            let _ = std::fs::remove_dir_all(dir);
        })
        .await;
    }
}

/// Replace the server's files: each written aside and renamed (the configuration checked
/// first), maps and zones before the configuration that names them; stale maps and zones go.
fn install(knotc: &Path, dir: &Path, files: &Files) -> Result<(), SyncError> {
    let fail = |what: String| SyncError::Failed(what);
    for sub in ["zones", "geo"] {
        std::fs::create_dir_all(dir.join(sub))
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    }
    let conf = "knot.conf".to_string();
    let order: Vec<&String> = files
        .keys()
        .filter(|k| **k != conf)
        .chain(std::iter::once(&conf))
        .collect();
    for name in order {
        let path = dir.join(name);
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, &files[name])
            .map_err(|e| fail(format!("cannot write {}: {e}", tmp.display())))?;
        if *name == conf {
            let out = std::process::Command::new(knotc)
                .arg("-c")
                .arg(&tmp)
                .arg("conf-check")
                .output()
                .map_err(|e| {
                    fail(format!(
                        "cannot run {}: {e} (is Knot DNS installed?)",
                        knotc.display()
                    ))
                })?;
            if !out.status.success() {
                let why = String::from_utf8_lossy(&out.stderr);
                return Err(fail(format!("Knot refused the configuration: {}", why.trim())));
            }
        }
        std::fs::rename(&tmp, &path).map_err(|e| fail(format!("cannot replace {}: {e}", path.display())))?;
    }
    // Maps and zones of zones that are gone.
    for sub in ["zones", "geo"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                let rel = format!("{sub}/{}", e.file_name().to_string_lossy());
                if !files.contains_key(&rel) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    Ok(())
}

/// Tell the running server to read its files again.
fn reload(knotc: &Path, dir: &Path) -> Result<(), SyncError> {
    let out = std::process::Command::new(knotc)
        .arg("-s")
        .arg(dir.join("run/knot.sock"))
        .arg("-t")
        .arg("5")
        .arg("reload")
        .output()
        .map_err(|e| SyncError::Failed(format!("cannot run {}: {e}", knotc.display())))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SyncError::Failed(format!(
            "the DNS server did not reload: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The Request Router service: its server running and answering (internal), rendered again on
/// an interval (external) so health and prefix changes reach DNS.
struct Routers {
    dns: Arc<Dns>,
}

#[async_trait::async_trait]
impl Step for Routers {
    fn name(&self) -> &'static str {
        "requestrouter_services"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["RequestRouterService"]
    }
    fn observes(&self) -> &'static str {
        "RequestRouterService"
    }
    fn requested_interval(&self) -> Duration {
        INTERVAL
    }
    fn concurrency(&self) -> usize {
        1
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        let mut pending = default_fetch_pending(&ctx.store, "RequestRouterService", deletion, None).await?;
        if deletion {
            return Ok(pending);
        }
        for rr in all(&ctx.store, "RequestRouterService").await? {
            if !pending.iter().any(|p| p.id() == rr.id()) && self.dns.drifted(&ctx.store, &rr).await? {
                pending.push(rr);
            }
        }
        Ok(pending)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        Ok(Enacted::with_status(self.dns.apply(&ctx.store, obj).await?))
    }
    async fn delete_record(&self, _: &StepContext, obj: &Record) -> Result<(), SyncError> {
        self.dns.stop(obj.id()).await;
        Ok(())
    }
}

/// A service map: its zone served by every Request Router.
struct ServiceMaps {
    dns: Arc<Dns>,
}

impl ServiceMaps {
    async fn apply_all(&self, store: &Store) -> Result<(), SyncError> {
        let routers = all(store, "RequestRouterService").await?;
        if routers.is_empty() {
            return Err(SyncError::Deferred("no Request Router service runs yet".into()));
        }
        for rr in routers {
            self.dns.apply(store, &rr).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Step for ServiceMaps {
    fn name(&self) -> &'static str {
        "requestrouter_servicemaps"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["ServiceMap"]
    }
    fn observes(&self) -> &'static str {
        "ServiceMap"
    }
    fn concurrency(&self) -> usize {
        1
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        self.apply_all(&ctx.store).await?;
        Ok(Enacted::with_status(format!(
            "zone {} served by the Request Router",
            obj.req(service_map::PREFIX)?
        )))
    }
    async fn delete_record(&self, ctx: &StepContext, _obj: &Record) -> Result<(), SyncError> {
        // The map is hidden already: the zone leaves the rendering.
        self.apply_all(&ctx.store).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, last: u8, healthy: bool) -> Target {
        Target {
            name: name.into(),
            addr: Ipv4Addr::new(127, 1, 0, last),
            healthy,
        }
    }

    #[test]
    fn random_orders_are_stable_and_complete() {
        let items: Vec<u32> = (0..10).collect();
        let a = shuffled(&items, "x");
        assert_eq!(a, shuffled(&items, "x"));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, items);
        assert_ne!(shuffled(&items, "x"), shuffled(&items, "y"));
    }

    #[test]
    fn zone_membership() {
        assert!(in_zone("cdn.example.org", "cdn.example.org"));
        assert!(in_zone("video.cdn.example.org", "cdn.example.org"));
        assert!(!in_zone("badcdn.example.org", "cdn.example.org"));
    }

    #[test]
    fn serials_follow_the_text() {
        assert_eq!(serial("a"), serial("a"));
        assert_ne!(serial("a"), serial("b"));
        assert!(serial("") > 0);
    }

    #[test]
    fn targets_are_picked_by_health_and_action() {
        let targets = [t("a", 1, true), t("b", 2, false), t("c", 3, true)];
        let healthy: Vec<&Target> = targets.iter().filter(|x| x.healthy).collect();
        assert_eq!(pick(&healthy, "best", 1, ""), vec![Ipv4Addr::new(127, 1, 0, 1)]);
        assert_eq!(pick(&healthy, "best", 5, "").len(), 2);
        assert_eq!(pick(&healthy, "random", 5, "s").len(), 2);
    }
}
