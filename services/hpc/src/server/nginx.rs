//! nginx caches: the configuration of one cache, and the processes that serve it.
//!
//! Each cache lives in `<state_dir>/hpc/cache-<instance id>/`: `nginx.conf`, `nginx.pid`,
//! `access.log` (one line per request with the cache status, which `cdnData` counts),
//! `error.log`, the cache itself (`cache/`) and nginx's temporary files. nginx runs in the
//! foreground under the local backend (a cleared environment and the backend's limits); its
//! master is found again through its pid file, whose process must be an nginx master of that
//! directory.

use super::{Cache, Plan, Site};
use crate::maps::Clients;
use backend_local::{self as local, LocalBackend, RunAs, Spec};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use synchronizer::{StepContext, SyncError};

/// The nginx binary: `XOS_NGINX`, else where Debian puts it, else `nginx` on the PATH.
pub fn nginx_binary() -> PathBuf {
    xos_service::sbin_binary("nginx", "XOS_NGINX")
}

/// The caches of this host.
pub struct Caches {
    root: PathBuf,
    nginx: PathBuf,
    backend: Arc<LocalBackend>,
    /// The user nginx's workers run as (XOS as root), or why there is none to be had.
    user: Result<Option<RunAs>, String>,
    /// One reconcile at a time: steps of several models render the same files.
    lock: tokio::sync::Mutex<()>,
}

/// The directory of cache `instance` under `root`.
pub fn cache_dir(root: &Path, instance: i64) -> PathBuf {
    root.join(format!("cache-{instance}"))
}

/// Keep only the characters a name may show in a configuration comment.
fn plain(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .collect()
}

/// The configuration of `cache` serving `sites`.
pub fn render(cache: &Cache, sites: &[Site], dir: &Path, user: Option<&RunAs>) -> String {
    let d = dir.display();
    let listen = format!("{}:{}", cache.addr, cache.port);
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# XOS HPC cache {} (instance {}): written by the HPC synchronizer; edits are replaced.",
        plain(&cache.name),
        cache.instance
    );
    c.push_str("daemon off;\nworker_processes 1;\n");
    if let Some(u) = user {
        // The master (root) opens the logs and listening sockets and hands the cache and temp
        // directories to the workers' user; the workers, which talk to clients and origins,
        // run as that user.
        let _ = writeln!(c, "user {} {};", plain(&u.user), plain(&u.group));
    }
    let _ = writeln!(c, "pid {d}/nginx.pid;\nerror_log {d}/error.log warn;");
    c.push_str("events {\n    worker_connections 512;\n}\nhttp {\n");
    c.push_str(
        "    log_format cdn '$time_iso8601 $remote_addr $host \"$request\" $status $body_bytes_sent $upstream_cache_status';\n",
    );
    let _ = writeln!(c, "    access_log {d}/access.log cdn;");
    for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
        let _ = writeln!(c, "    {t}_temp_path {d}/tmp/{t};");
    }
    let _ = writeln!(
        c,
        "    proxy_cache_path {d}/cache levels=1:2 keys_zone=cdn:10m max_size=1g inactive=1h use_temp_path=off;"
    );
    c.push_str("    server_tokens off;\n");
    // Requests for no prefix: 404; the status page for this host's health checks.
    let _ = writeln!(
        c,
        "    server {{\n        listen {listen} default_server;\n        location = /xos-cache-status {{\n            stub_status;\n            allow 127.0.0.0/8;\n            deny all;\n        }}\n        location / {{\n            return 404;\n        }}\n    }}"
    );
    for site in sites {
        let first = &site.origins[0];
        let _ = writeln!(c, "    # {} of {}", site.prefix, plain(&site.provider));
        let _ = writeln!(c, "    upstream origin_{} {{", site.id);
        for (i, o) in site.origins.iter().enumerate() {
            let host = o.host_str().unwrap_or_default();
            let port = o.port_or_known_default().unwrap_or(80);
            let backup = if i == 0 { "" } else { " backup" };
            let _ = writeln!(c, "        server {host}:{port}{backup};");
        }
        c.push_str("    }\n");
        let _ = writeln!(
            c,
            "    server {{\n        listen {listen};\n        server_name {};",
            site.prefix
        );
        if let Some(rules) = &site.access {
            for rule in rules {
                let verb = if rule.allow { "allow" } else { "deny" };
                match rule.clients {
                    Clients::All => {
                        let _ = writeln!(c, "        {verb} all;");
                    }
                    Clients::Net(n) => {
                        let _ = writeln!(c, "        {verb} {n};");
                    }
                }
            }
            // What no line of the access maps allows is refused (a map of comments only
            // allows nobody).
            c.push_str("        deny all;\n");
        }
        let path = match first.path() {
            "" | "/" => String::new(),
            p if p.ends_with('/') => p.to_string(),
            p => format!("{p}/"),
        };
        let host = match first.port() {
            Some(p) => format!("{}:{p}", first.host_str().unwrap_or_default()),
            None => first.host_str().unwrap_or_default().to_string(),
        };
        let _ = writeln!(
            c,
            "        location / {{\n            proxy_pass {}://origin_{}{path};\n            proxy_set_header Host {host};\n            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n            proxy_cache cdn;\n            proxy_cache_key $host$request_uri;\n            proxy_cache_valid 200 301 302 10m;\n            proxy_cache_valid 404 1m;\n            proxy_cache_lock on;\n            proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;\n            add_header X-Cache-Status $upstream_cache_status always;\n        }}\n    }}",
            first.scheme(),
            site.id
        );
    }
    c.push_str("}\n");
    c
}

/// The pid of the nginx master serving `dir`, if one runs.
pub fn master_pid(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.join("nginx.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    // nginx rewrites its command line to "nginx: master process <argv>".
    (cmdline.contains("master process") && cmdline.contains(&*dir.to_string_lossy())).then_some(pid)
}

/// What applying a configuration did to one cache.
#[derive(Debug, PartialEq)]
enum Applied {
    Unchanged,
    Reloaded,
    Started,
}

impl Caches {
    pub fn new(ctx: &StepContext) -> Caches {
        Caches {
            root: ctx.state_dir.join("hpc"),
            nginx: nginx_binary(),
            backend: Arc::new(
                LocalBackend::with_kind(&ctx.state_dir, "hpc")
                    .limits(&ctx.setting::<local::LocalBackendConfig>()),
            ),
            user: local::run_as(&ctx.setting::<local::LocalBackendConfig>()).map_err(|e| e.to_string()),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether any cache of `plan` differs from it: a configuration not written yet or edited,
    /// a cache not running.
    pub async fn drifted(&self, plan: &Plan) -> bool {
        let root = self.root.clone();
        let plan = plan.clone();
        let user = self.user.clone().ok().flatten();
        tokio::task::spawn_blocking(move || {
            plan.caches.iter().any(|cache| {
                let dir = cache_dir(&root, cache.instance);
                let want = render(cache, &plan.sites, &dir, user.as_ref());
                std::fs::read_to_string(dir.join("nginx.conf")).ok().as_deref() != Some(want.as_str())
                    || master_pid(&dir).is_none()
            })
        })
        .await
        .unwrap_or(true)
    }

    /// Make every cache of `plan` serve it; the status line.
    pub async fn apply(&self, plan: &Plan) -> Result<String, SyncError> {
        let _guard = self.lock.lock().await;
        let user = self.user.clone().map_err(SyncError::Failed)?;
        let mut reloaded = 0;
        let mut started = 0;
        for cache in &plan.caches {
            let dir = cache_dir(&self.root, cache.instance);
            let text = render(cache, &plan.sites, &dir, user.as_ref());
            match self.apply_one(cache, dir, text).await? {
                Applied::Unchanged => {}
                Applied::Reloaded => reloaded += 1,
                Applied::Started => started += 1,
            }
        }
        if started + reloaded > 0 {
            tracing::info!(service = plan.service, started, reloaded, "HPC caches updated");
        }
        let status = plan.summary();
        Ok(status)
    }

    async fn apply_one(&self, cache: &Cache, dir: PathBuf, text: String) -> Result<Applied, SyncError> {
        let nginx = self.nginx.clone();
        let conf = dir.join("nginx.conf");
        let changed = std::fs::read_to_string(&conf).ok().as_deref() != Some(text.as_str());
        if changed {
            let (nginx, dir, text) = (nginx.clone(), dir.clone(), text.clone());
            tokio::task::spawn_blocking(move || install(&nginx, &dir, &text))
                .await
                .map_err(|e| SyncError::Failed(e.to_string()))??;
        }
        let running = master_pid(&dir);
        match running {
            Some(pid) if changed => {
                // Graceful reload: the old workers finish their requests.
                // SAFETY: a signal to the nginx master we started (checked by its command line).
                unsafe {
                    libc::kill(pid, libc::SIGHUP);
                }
                Ok(Applied::Reloaded)
            }
            Some(_) => Ok(Applied::Unchanged),
            None => {
                let spec = Spec {
                    argv: vec![
                        nginx.display().to_string(),
                        "-p".into(),
                        dir.display().to_string(),
                        "-e".into(),
                        dir.join("error.log").display().to_string(),
                        "-c".into(),
                        conf.display().to_string(),
                    ],
                    drops_privileges: true,
                    ..Spec::default()
                };
                let id = cache.instance;
                let backend = self.backend.clone();
                let stale = dir.join("nginx.pid");
                let pid = tokio::task::spawn_blocking(move || {
                    // A stale pid file of a dead master would confuse the next check.
                    let _ = std::fs::remove_file(stale);
                    backend.spawn(id, &spec)
                })
                .await
                .map_err(|e| SyncError::Failed(e.to_string()))?
                .map_err(|e| SyncError::Failed(format!("cache {} did not start: {e}", cache.name)))?;
                // nginx writes its pid file once it listens.
                for _ in 0..50 {
                    if master_pid(&dir) == Some(pid) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(Applied::Started)
            }
        }
    }

    /// Stop the caches whose instance is not in `keep` and remove their files.
    pub async fn stop_others(&self, keep: &[i64]) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(id) = name.strip_prefix("cache-").and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            if keep.contains(&id) {
                continue;
            }
            let dir = e.path();
            let backend = self.backend.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(pid) = master_pid(&dir) {
                    tracing::info!(cache = id, pid, "stopping the cache of a gone instance");
                    backend.stop(&[pid]);
                }
                let _ = std::fs::remove_dir_all(&dir);
            })
            .await;
        }
    }
}

/// Stop every cache under `root` (`xos backend-stop`, tests); the number stopped.
pub fn stop_all(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let pids: Vec<i32> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("cache-"))
        .filter_map(|e| master_pid(&e.path()))
        .collect();
    LocalBackend::with_kind(root, "hpc").stop(&pids);
    pids.len()
}

/// Write `text` as the configuration of the cache in `dir`: to a temporary file, checked by
/// `nginx -t`, then renamed over the old one (a crash leaves the old or the new, never half).
fn install(nginx: &Path, dir: &Path, text: &str) -> Result<(), SyncError> {
    let io = |what: &str, e: std::io::Error| SyncError::Failed(format!("{what} {}: {e}", dir.display()));
    for sub in ["cache", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| io("cannot create", e))?;
    }
    let new = dir.join("nginx.conf.new");
    std::fs::write(&new, text).map_err(|e| io("cannot write in", e))?;
    let out = std::process::Command::new(nginx)
        .arg("-t")
        .arg("-q")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&new)
        .output()
        .map_err(|e| {
            SyncError::Failed(format!(
                "cannot run {}: {e} (is nginx installed?)",
                nginx.display()
            ))
        })?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().find(|l| l.contains("emerg")).unwrap_or(why.trim());
        return Err(SyncError::Failed(format!(
            "nginx refused the configuration: {why}"
        )));
    }
    // The file's contents reach the disk before the name does.
    if let Ok(f) = std::fs::File::open(&new) {
        let _ = f.sync_all();
    }
    std::fs::rename(&new, dir.join("nginx.conf")).map_err(|e| io("cannot replace the configuration in", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::parse_access_map;

    fn site(access: Option<&str>) -> Site {
        Site {
            id: 7,
            prefix: "cdn.example.org".into(),
            provider: "cp".into(),
            origins: vec![url::Url::parse("http://127.0.0.1:8890/video").unwrap()],
            access: access.map(|m| parse_access_map(m).unwrap()),
        }
    }

    /// The lines of the prefix's own `server` block.
    fn prefix_block(conf: &str) -> String {
        let start = conf
            .find("server_name cdn.example.org;")
            .expect("the prefix's server");
        conf[start..]
            .lines()
            .take_while(|l| !l.trim_start().starts_with("location"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn access_maps_deny_what_they_do_not_allow_and_an_empty_map_denies_all() {
        let cache = Cache {
            instance: 1,
            name: "c".into(),
            addr: std::net::Ipv4Addr::new(127, 1, 0, 1),
            port: 8880,
        };
        let dir = Path::new("/tmp/x");
        let open = render(&cache, &[site(None)], dir, None);
        assert!(
            !prefix_block(&open).contains("deny"),
            "no map: everyone may fetch"
        );
        let comments = render(&cache, &[site(Some("# nobody yet\n"))], dir, None);
        assert_eq!(
            prefix_block(&comments).matches("deny all;").count(),
            1,
            "{comments}"
        );
        assert!(!prefix_block(&comments).contains("allow"));
        let some = render(
            &cache,
            &[site(Some("allow 10.0.0.0/8\ndeny 10.66.0.0/16"))],
            dir,
            None,
        );
        let block = prefix_block(&some);
        let (allow, deny) = (
            block.find("allow 10.0.0.0/8;").unwrap(),
            block.find("deny all;").unwrap(),
        );
        assert!(allow < deny, "{block}");
    }
}
