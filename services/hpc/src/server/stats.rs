//! What the dashboards show of the CDN: the guide's `cdnData` (per site, XOS's figures, with
//! each cache's requests, bytes and hit ratio counted from its own access log) and
//! `cdnContentProviders` (each provider with its prefixes and origins).
//!
//! Access logs are read incrementally: each file's offset and counts are remembered, so a page
//! view reads only what the caches logged since the last one.

use super::{all, cache_health, caches_of, nginx};
use crate::fields::{cdn_prefix, content_provider, hpc_service, origin_server};
use registry::fields::{common, instance, node};
use registry::typed::{Bool, FieldName, Fk, Text};
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use store::{Actor, ListQuery, Record, Store};
use synchronizer::SyncError;

/// What one cache's access log says.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LogStats {
    pub requests: u64,
    pub bytes: u64,
    pub hits: u64,
}

/// Count the lines of `text` (the `cdn` log format: `… status bytes cache_status`).
fn count(text: &str, into: &mut LogStats) {
    for line in text.lines() {
        let mut words = line.rsplit(' ');
        let (Some(cache), Some(bytes)) = (words.next(), words.next()) else {
            continue;
        };
        into.requests += 1;
        into.bytes += bytes.parse::<u64>().unwrap_or(0);
        if cache == "HIT" {
            into.hits += 1;
        }
    }
}

/// The counts of the access log at `path`, read from where the last call stopped.
pub fn log_stats(path: &Path) -> LogStats {
    static SEEN: OnceLock<Mutex<HashMap<PathBuf, (u64, LogStats)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let mut seen = seen.lock().expect("log stats lock");
    let (mut offset, mut stats) = seen.get(path).copied().unwrap_or_default();
    let Ok(mut f) = std::fs::File::open(path) else {
        seen.remove(path);
        return LogStats::default();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < offset {
        // A new log (the cache was made again): count from the start.
        (offset, stats) = (0, LogStats::default());
    }
    let mut text = String::new();
    if f.seek(SeekFrom::Start(offset)).is_ok() && f.read_to_string(&mut text).is_ok() {
        // Only whole lines; a line being written is counted next time.
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        count(&text[..whole], &mut stats);
        offset += whole as u64;
    }
    seen.insert(path.to_path_buf(), (offset, stats));
    stats
}

/// `cdnData`: per site with caches, XOS's figures and each cache's, for `reader`: only the
/// caches whose instance the reader may see (an admin sees them all).
pub async fn cdn_data(store: &Store, state_dir: &Path, reader: &Actor) -> Result<Json, SyncError> {
    let health = cache_health(store).await?;
    let instance_model = store.model("Instance");
    let readable: std::collections::HashSet<i64> = store
        .list(reader, instance_model, &ListQuery::default())
        .await?
        .0
        .iter()
        .map(Record::id)
        .collect();
    let nodes: HashMap<i64, Record> = all(store, "Node")
        .await?
        .into_iter()
        .map(|n| (n.id(), n))
        .collect();
    let instances: HashMap<i64, Record> = all(store, "Instance")
        .await?
        .into_iter()
        .map(|i| (i.id(), i))
        .collect();
    let mut sites: serde_json::Map<String, Json> = serde_json::Map::new();
    let site_rows: HashMap<i64, Record> = all(store, "Site")
        .await?
        .into_iter()
        .map(|s| (s.id(), s))
        .collect();
    for service in all(store, "HpcService").await? {
        let service_name = service.req(hpc_service::NAME)?;
        for cache in caches_of(store, &service).await? {
            if !readable.contains(&cache.instance) {
                continue;
            }
            let site = instances
                .get(&cache.instance)
                .and_then(|i| i.opt(instance::NODE))
                .and_then(|n| nodes.get(&n))
                .and_then(|n| n.opt(node::SITE))
                .and_then(|s| site_rows.get(&s));
            let Some(site) = site else { continue };
            let name = site.req(registry::fields::site::NAME)?.to_string();
            let log = nginx::cache_dir(&state_dir.join("hpc"), cache.instance).join("access.log");
            let s = log_stats(&log);
            let healthy = health.get(&cache.instance).copied().unwrap_or(true);
            let entry = sites.entry(name).or_insert_with(|| {
                json!({
                    "lat": site.get("latitude").to_json(),
                    "long": site.get("longitude").to_json(),
                    "health": 0,
                    "numHPCInstances": 0,
                    "activeHPCInstances": 0,
                    "siteUrl": site.opt(registry::fields::site::SITE_URL).unwrap_or_default(),
                    "bandwidth": 0,
                    "load": 0,
                    "hot": 0.0,
                    "caches": [],
                })
            });
            entry["numHPCInstances"] = json!(entry["numHPCInstances"].as_i64().unwrap_or(0) + 1);
            if healthy {
                entry["activeHPCInstances"] = json!(entry["activeHPCInstances"].as_i64().unwrap_or(0) + 1);
            } else {
                entry["health"] = json!(entry["health"].as_i64().unwrap_or(0) + 1);
            }
            entry["bandwidth"] = json!(entry["bandwidth"].as_u64().unwrap_or(0) + s.bytes);
            if let Some(list) = entry["caches"].as_array_mut() {
                list.push(json!({
                    "name": cache.name,
                    "address": format!("{}:{}", cache.addr, cache.port),
                    "service": service_name,
                    "healthy": healthy,
                    "requests": s.requests,
                    "bytes": s.bytes,
                    "hits": s.hits,
                    "hit_ratio": if s.requests == 0 { 0.0 } else { s.hits as f64 / s.requests as f64 },
                }));
            }
        }
    }
    Ok(Json::Object(sites))
}

/// `cdnContentProviders`: the providers the user may see, with their prefixes and origins.
pub async fn cdn_content_providers(store: &Store, actor: &Actor) -> Result<Json, SyncError> {
    let list = |name: &'static str| async move {
        store
            .list(actor, store.model(name), &ListQuery::default())
            .await
            .map(|r| r.0)
    };
    let prefixes = list("CDNPrefix").await?;
    let origins = list("OriginServer").await?;
    // A prefix's or origin's: the content provider it belongs to, whether it is enabled, and the
    // text shown (under the field's name).
    type Shown = (FieldName<Fk>, FieldName<Bool>, FieldName<Text>);
    let of = |rows: &[Record], cp: i64, (provider, enabled, text): Shown| -> Vec<Json> {
        rows.iter()
            .filter(|r| r.opt(provider) == Some(cp))
            .map(|r| {
                json!({
                    "id": r.id(),
                    text.name: r.opt(text).unwrap_or_default(),
                    "enabled": r.opt(enabled) == Some(true),
                    "backend_status": r.opt(common::BACKEND_STATUS).unwrap_or_default(),
                })
            })
            .collect()
    };
    Ok(Json::Array(
        list("ContentProvider")
            .await?
            .iter()
            .map(|cp| {
                let name = cp.opt(content_provider::NAME).unwrap_or_default();
                json!({
                    "id": cp.id(),
                    "name": name,
                    // XOS mapped two legacy Vicci providers to account names; others are their name.
                    "account": match name { "ON.LAB" => "onlabcp", "Syndicate" => "syndicatecp", n => n },
                    "enabled": cp.opt(content_provider::ENABLED) == Some(true),
                    "prefixes": of(
                        &prefixes,
                        cp.id(),
                        (cdn_prefix::CONTENT_PROVIDER, cdn_prefix::ENABLED, cdn_prefix::PREFIX),
                    ),
                    "origins": of(
                        &origins,
                        cp.id(),
                        (origin_server::CONTENT_PROVIDER, origin_server::ENABLED, origin_server::URL),
                    ),
                })
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_logs_are_counted_incrementally() {
        let dir = std::env::temp_dir().join(format!("xos-logstats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("access.log");
        std::fs::write(
            &log,
            "2026-12-01T10:00:00+00:00 127.0.0.1 cdn.example.org \"GET /a HTTP/1.1\" 200 853 MISS\n\
             2026-12-01T10:00:01+00:00 127.0.0.1 cdn.example.org \"GET /a HTTP/1.1\" 200 853 HIT\n",
        )
        .unwrap();
        assert_eq!(
            log_stats(&log),
            LogStats {
                requests: 2,
                bytes: 1706,
                hits: 1
            }
        );
        // A line being written is not counted yet; once whole, it is, without the others twice.
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut f, b"2026 127.0.0.1 x \"GET /b HTTP/1.1\" 404 10 -").unwrap();
        assert_eq!(log_stats(&log).requests, 2);
        std::io::Write::write_all(&mut f, b"\n").unwrap();
        assert_eq!(
            log_stats(&log),
            LogStats {
                requests: 3,
                bytes: 1716,
                hits: 1
            }
        );
        // A log made again is counted from its start.
        std::fs::write(&log, "t 127.0.0.1 x \"GET / HTTP/1.1\" 200 5 HIT\n").unwrap();
        assert_eq!(
            log_stats(&log),
            LogStats {
                requests: 1,
                bytes: 5,
                hits: 1
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
