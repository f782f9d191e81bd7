//! The CDN services on real parts: the `cdn` configuration's recipe (with free ports) enacted on
//! nginx caches and a Knot DNS server, asked with `dig` and plain HTTP. Needs Debian's nginx,
//! knot, knot-module-geoip and dig (`make dns nginx`); without them the tests are skipped,
//! unless `XOS_REQUIRE_CDN=1` (CI) makes that a failure.

use crate::common;

use axum::http::StatusCode;
use common::TestApp;
use serde_json::{Value, json};
use server::store::Actor;
use server::sync::engine::{Engine, EngineOptions};
use server::sync::{StepContext, local};
use server::tosca::{self, Mode, Source};
use service_hpc::server::{nginx, origin};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testkit::{eventually, within};

const RECIPE: &str = include_str!("../../../configurations/cdn/recipes/cdn.yaml");

struct State(PathBuf);

impl Drop for State {
    fn drop(&mut self) {
        local::stop_all(&self.0);
        server::services::stop_all(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether nginx, Knot (with geoip) and dig are here; a failure when CI requires them.
fn parts_installed() -> bool {
    let knot_geoip = std::fs::read_dir("/usr/lib")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .any(|d| {
            std::fs::read_dir(d.path().join("knot"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|m| m.path().join("geoip.so").exists())
        });
    let dig = std::process::Command::new("dig").arg("-v").output().is_ok();
    let ok = nginx::nginx_binary().exists() && Path::new("/usr/sbin/knotd").exists() && knot_geoip && dig;
    if !ok {
        assert!(
            std::env::var("XOS_REQUIRE_CDN").is_err(),
            "nginx, Knot DNS with its geoip module and dig are required (make nginx dns)"
        );
        eprintln!("skipped: nginx, Knot DNS with geoip or dig missing (make nginx dns)");
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free port for DNS (UDP and TCP).
fn free_dns_port() -> u16 {
    loop {
        let p = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

struct Cdn {
    state: State,
    engine: Engine,
    cache_port: u16,
    dns_port: u16,
}

/// The configuration's recipe with this test's ports, applied; the engine of the core's local
/// backend and both CDN services.
async fn start(app: &TestApp, tag: &str) -> Cdn {
    let state =
        State(std::env::temp_dir().join(format!("xos-cdn-{tag}-{}-{:?}", std::process::id(), app.backend)));
    let _ = std::fs::remove_dir_all(&state.0);
    let (cache_port, dns_port, origin_port) = (free_port(), free_dns_port(), free_port());
    let text = RECIPE
        .replace("cache_port: 8880", &format!("cache_port: {cache_port}"))
        .replace("dns_port: 5353", &format!("dns_port: {dns_port}"))
        .replace("127.0.0.1:8890", &format!("127.0.0.1:{origin_port}"));
    let recipe = tosca::parse(
        app::registry::registry(),
        &[Source {
            name: "cdn.yaml".into(),
            text,
        }],
    )
    .expect("the cdn recipe parses");
    tosca::run(&app.store, Actor::System, &recipe, Mode::Apply, false)
        .await
        .expect("the cdn recipe applies");
    let mut ctx = StepContext::new(app.store.clone(), state.0.clone());
    ctx.xos_binary = env!("CARGO_BIN_EXE_xos").into();
    ctx.setting_mut::<local::LocalBackendConfig>().commands =
        vec!["xos workload".into(), "xos origin-serve".into()];
    let mut steps = local::steps(&ctx, Duration::from_secs(1));
    steps.extend(server::services::steps("hpc", &ctx));
    steps.extend(server::services::steps("requestrouter", &ctx));
    let opts = EngineOptions {
        backoff_base: Duration::from_millis(200),
        ..Default::default()
    };
    let engine = Engine::new(ctx, steps, opts).await.unwrap();
    Cdn {
        state,
        engine,
        cache_port,
        dns_port,
    }
}

impl Cdn {
    /// Run passes until `cond` holds (or fail after `limit`); how long it took.
    async fn until(&self, what: &str, limit: Duration, cond: impl Fn() -> bool) -> Duration {
        let t0 = Instant::now();
        eventually(what, limit, || async {
            self.engine.run_once().await.unwrap();
            cond().then_some(())
        })
        .await;
        t0.elapsed()
    }

    /// `dig @127.0.0.1 -p <port> <name> A +short [+subnet=…]`: the addresses.
    fn dig(&self, name: &str, subnet: Option<&str>) -> Vec<String> {
        let mut cmd = std::process::Command::new("dig");
        cmd.args([
            "@127.0.0.1",
            "-p",
            &self.dns_port.to_string(),
            name,
            "A",
            "+short",
            "+time=1",
            "+tries=1",
        ]);
        if let Some(s) = subnet {
            cmd.arg(format!("+subnet={s}"));
        }
        let out = cmd.output().expect("dig");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| l.parse::<Ipv4Addr>().is_ok())
            .map(str::to_string)
            .collect()
    }

    /// The response code of `dig … <name> A` (`NOERROR`, `REFUSED`, …).
    fn dig_status(&self, name: &str) -> String {
        let out = std::process::Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &self.dns_port.to_string(),
                name,
                "A",
                "+time=1",
                "+tries=1",
            ])
            .output()
            .expect("dig");
        String::from_utf8_lossy(&out.stdout)
            .split("status: ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or("no answer")
            .to_string()
    }

    /// GET `path` from the cache at `addr` for `host`: (status, X-Cache-Status, body).
    fn get(&self, addr: &str, host: &str, path: &str) -> Option<(u16, String, String)> {
        let mut s = TcpStream::connect((addr, self.cache_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let cache = head
            .lines()
            .find_map(|l| l.strip_prefix("X-Cache-Status: "))
            .unwrap_or_default()
            .to_string();
        Some((status, cache, body.to_string()))
    }

    fn cache_conf(&self, instance: i64) -> String {
        std::fs::read_to_string(nginx::cache_dir(&self.state.0.join("hpc"), instance).join("nginx.conf"))
            .unwrap_or_default()
    }
}

/// The loopback address of a cache instance (as `hpc::cache_address` gives it).
fn addr_of(instance: &Value) -> String {
    let id = instance["id"].as_i64().unwrap();
    format!("127.1.{}.{}", id >> 8, id & 0xff)
}

async fn one(app: &TestApp, plural: &str, query: &str) -> Value {
    let (s, v) = app.get(&format!("/xos/{plural}/?{query}&no_hyperlinks=1")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{plural}?{query}: {v}");
    v[0].clone()
}

/// Requests the origin logged for `path` (the origin is an instance; its output is its log).
fn origin_hits(state: &Path, origin: &Value, path: &str) -> usize {
    let log = state.join("instances").join(format!("{}.log", origin["id"]));
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == format!("GET {path}"))
        .count()
}

/// Send `sig` to the process group of the cache's nginx (SIGSTOP: a hung cache).
fn signal_cache(state: &Path, instance: i64, sig: i32) {
    let pid = nginx::master_pid(&nginx::cache_dir(&state.join("hpc"), instance)).expect("cache runs");
    // SAFETY: a signal to the process group of a cache this test started.
    unsafe {
        libc::kill(-pid, sig);
    }
}

both!(
    prefixes_are_answered_by_dns_and_served_by_the_caches,
    async |app: &TestApp| {
        if !parts_installed() {
            return;
        }
        let cdn = start(app, "serve").await;
        let c1 = one(app, "instances", "name=mysite_hpc-1").await;
        let c2 = one(app, "instances", "name=mysite_hpc-2").await;
        let origin = one(app, "instances", "name=origin-1").await;
        let (a1, a2) = (addr_of(&c1), addr_of(&c2));

        // DNS: the site map's default line answers the first cache; 10.1/16 the second.
        cdn.until("DNS answers", Duration::from_secs(60), || {
            cdn.dig("cdn.example.org", None) == vec![a1.clone()]
        })
        .await;
        assert_eq!(cdn.dig("cdn.example.org", Some("10.1.2.0/24")), vec![a2.clone()]);
        assert_eq!(cdn.dig("cdn.example.org", Some("192.0.2.0/24")), vec![a1.clone()]);
        // The service's status catches up within its interval.
        let caught_up = within(Duration::from_secs(10), || async {
            let svc = one(app, "hpcservices", "name=hpc").await;
            if svc["backend_status"] == "1 - 2 caches serving 1 prefix" {
                return Some(());
            }
            cdn.engine.run_once().await.unwrap();
            None
        })
        .await;
        if caught_up.is_none() {
            panic!("{}", one(app, "hpcservices", "name=hpc").await);
        }

        // XOS as root: what talks to clients and origins runs as nobody (nginx's workers, the
        // DNS server, the origin workload); nginx's master stays root to open its logs.
        if common::root() {
            let master = nginx::master_pid(&nginx::cache_dir(
                &cdn.state.0.join("hpc"),
                c1["id"].as_i64().unwrap(),
            ))
            .expect("the cache runs");
            assert_eq!(common::uid_of(master), 0);
            let workers: Vec<i32> = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/status"))
                        .is_ok_and(|s| s.lines().any(|l| l == format!("PPid:\t{master}")))
                })
                .collect();
            assert!(!workers.is_empty(), "nginx has workers");
            for w in workers {
                assert_eq!(common::uid_of(w), common::nobody(), "worker {w}");
            }
            for kind in ["requestrouter", "instances"] {
                let procs = local::running_of(&cdn.state.0, kind);
                assert!(!procs.is_empty(), "{kind} runs");
                for pid in procs.values().flatten() {
                    assert_eq!(common::uid_of(*pid), common::nobody(), "{kind} {pid}");
                }
            }
        }

        // HTTP through the answered cache: the origin's bytes, a MISS then a HIT, the origin
        // asked once.
        let path = "/video/clip.mp4";
        let (status, cache, body) = cdn.get(&a1, "cdn.example.org", path).expect("the cache answers");
        assert_eq!((status, cache.as_str()), (200, "MISS"));
        assert_eq!(body, origin::content(path));
        let (status, cache, body) = cdn.get(&a1, "cdn.example.org", path).unwrap();
        assert_eq!((status, cache.as_str()), (200, "HIT"));
        assert_eq!(body, origin::content(path));
        assert_eq!(
            origin_hits(&cdn.state.0, &origin, path),
            1,
            "the origin served it once"
        );
        // The views' context: cdnData counts the cache's requests and hits from its own log,
        // cdnContentProviders lists the provider with its prefix and origin; the CDN view
        // (registered by the recipe) shows both.
        let data = service_hpc::server::stats::cdn_data(&app.store, &cdn.state.0, &Actor::System)
            .await
            .unwrap();
        let caches = data["MySite"]["caches"]
            .as_array()
            .expect("MySite's caches")
            .clone();
        let first = caches
            .iter()
            .find(|c| c["name"] == "mysite_hpc-1")
            .expect("cache 1");
        assert!(first["requests"].as_u64().unwrap() >= 2, "{first}");
        assert!(first["hits"].as_u64().unwrap() >= 1, "{first}");
        assert_eq!(data["MySite"]["numHPCInstances"], 2, "{data}");
        let mut config = app.config.clone();
        config.dashboards_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
        config.state_dir = cdn.state.0.clone();
        let router = server::router(server::app_state(app.store.clone(), config).unwrap())
            .await
            .unwrap();
        let resp = tower::ServiceExt::oneshot(
            router,
            common::build(
                axum::http::Method::GET,
                "/admin/dashboard/CDN/?embed=1",
                Some(common::ADMIN),
                None,
            ),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let page = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        let page = String::from_utf8_lossy(&page);
        for want in [
            "Sample Content",
            "cdn.example.org",
            "127.0.0.1:",
            "mysite_hpc-1",
            "mysite_hpc-2",
            "healthy",
        ] {
            assert!(page.contains(want), "the CDN view lacks {want}: {page}");
        }

        // A name the CDN does not serve: 404 from the cache.
        assert_eq!(cdn.get(&a1, "other.example.org", path).unwrap().0, 404);

        // The access map applies: denying everyone reaches the caches within a pass, and
        // allowing loopback again too.
        let map = one(app, "accessmaps", "name=sample-access").await;
        for (text, want) in [("deny all", 403), ("allow 127.0.0.0/8\ndeny all", 200)] {
            let (s, v) = app
                .patch(&format!("/xos/accessmaps/{}/", map["id"]), json!({"map": text}))
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            cdn.until(
                &format!("the access map {text:?} answers {want}"),
                Duration::from_secs(20),
                || cdn.get(&a2, "cdn.example.org", path).map(|r| r.0) == Some(want),
            )
            .await;
        }

        // A hung cache leaves the answers within the health check's interval (2 s) and its
        // timeout (2 s), and comes back when it answers again.
        signal_cache(&cdn.state.0, c1["id"].as_i64().unwrap(), libc::SIGSTOP);
        let took = cdn
            .until(
                "the answers leave the hung cache",
                Duration::from_secs(30),
                || cdn.dig("cdn.example.org", None) == vec![a2.clone()],
            )
            .await;
        eprintln!("a hung cache left the DNS answers after {took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
        let check = one(app, "hpchealthchecks", "kind=http").await;
        assert!(
            check["backend_status"]
                .as_str()
                .unwrap()
                .contains("1 of 2 healthy"),
            "{check}"
        );
        signal_cache(&cdn.state.0, c1["id"].as_i64().unwrap(), libc::SIGCONT);
        cdn.until("the cache comes back", Duration::from_secs(30), || {
            cdn.dig("cdn.example.org", None) == vec![a1.clone()]
        })
        .await;

        // The service map's access map is the DNS server's query ACL: a client it does not
        // list is refused, and answered again once listed.
        let smap = one(app, "servicemaps", "name=cdn").await;
        for (text, answered) in [
            ("allow 10.0.0.0/8\ndeny all", false),
            ("allow 127.0.0.0/8\ndeny all", true),
        ] {
            let (s, v) = app
                .patch(
                    &format!("/xos/servicemaps/{}/", smap["id"]),
                    json!({"accessMap": text}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            cdn.until(
                &format!("DNS with the access map {text:?}"),
                Duration::from_secs(20),
                || {
                    let status = cdn.dig_status("cdn.example.org");
                    // Knot's query ACL answers a client it does not list with NOTAUTH.
                    if answered {
                        status == "NOERROR"
                    } else {
                        status == "NOTAUTH" || status == "REFUSED"
                    }
                },
            )
            .await;
        }
        let (s, v) = app
            .patch(
                &format!("/xos/servicemaps/{}/", smap["id"]),
                json!({"accessMap": "deny 10.0.0.0/8\nallow all"}),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::BAD_REQUEST,
            "a DNS access map is an allow list: {v}"
        );
        assert!(v["accessMap"].is_array(), "{v}");

        // defaultTTL is the answers' TTL; maxAnswers bounds them.
        let rr = one(app, "requestrouterservices", "name=request-router").await;
        let ttl = std::process::Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &cdn.dns_port.to_string(),
                "cdn.example.org",
                "A",
                "+noall",
                "+answer",
            ])
            .output()
            .unwrap();
        let ttl = String::from_utf8_lossy(&ttl.stdout).to_string();
        assert_eq!(ttl.split_whitespace().nth(1), Some("30"), "{ttl}");
        let (s, v) = app
            .patch(
                &format!("/xos/requestrouterservices/{}/", rr["id"]),
                json!({"maxAnswers": 2}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        cdn.until("two answers", Duration::from_secs(20), || {
            let mut got = cdn.dig("cdn.example.org", None);
            got.sort();
            got == vec![a1.clone(), a2.clone()]
        })
        .await;

        // dns and nameserver checks ask the DNS server; their outcome is their status.
        let svc = one(app, "hpcservices", "name=hpc").await;
        for (kind, contains) in [("dns", a1.as_str()), ("nameserver", "")] {
            let (s, v) = app
                .post(
                    "/xos/hpchealthchecks/?no_hyperlinks=1",
                    json!({"hpcService": svc["id"], "kind": kind, "resource_name": "cdn.example.org",
                           "result_contains": contains, "interval": 1}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
        // The statuses of the dns and nameserver checks.
        let statuses = async || -> Vec<String> {
            let (_, checks) = app.get("/xos/hpchealthchecks/?no_hyperlinks=1").await;
            checks
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["kind"] != "http")
                .map(|c| c["backend_status"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        let healthy = within(Duration::from_secs(20), || async {
            cdn.engine.run_once().await.unwrap();
            let statuses = statuses().await;
            (statuses.len() == 2 && statuses.iter().all(|s| s == "1 - 1 of 1 healthy")).then_some(())
        })
        .await;
        if healthy.is_none() {
            panic!("{:?}", statuses().await);
        }

        // Deleting the prefix removes it from both caches and from DNS.
        let prefix = one(app, "cdnprefixs", "prefix=cdn.example.org").await;
        let (s, v) = app.delete(&format!("/xos/cdnprefixs/{}/", prefix["id"])).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let (i1, i2) = (c1["id"].as_i64().unwrap(), c2["id"].as_i64().unwrap());
        cdn.until(
            "the prefix leaves caches and DNS",
            Duration::from_secs(30),
            || {
                !cdn.cache_conf(i1).contains("server_name cdn.example.org;")
                    && !cdn.cache_conf(i2).contains("server_name cdn.example.org;")
                    && cdn.dig("cdn.example.org", None).is_empty()
            },
        )
        .await;
        assert!(cdn.cache_conf(i1).contains("listen"), "the caches still run");
        assert_eq!(cdn.get(&a1, "cdn.example.org", path).unwrap().0, 404);
        assert_eq!(cdn.get(&a2, "cdn.example.org", path).unwrap().0, 404);
    }
);

both!(
    bad_cdn_input_is_refused_with_field_errors,
    async |app: &TestApp| {
        let svc = app
            .post(
                "/xos/hpcservices/?no_hyperlinks=1",
                json!({"name": "hpc", "versionNumber": "1"}),
            )
            .await
            .1;
        let sp = app
            .post(
                "/xos/serviceproviders/?no_hyperlinks=1",
                json!({"name": "sp", "hpcService": svc["id"]}),
            )
            .await
            .1;
        let mut cps = Vec::new();
        for name in ["cp1", "cp2"] {
            let (s, v) = app
                .post(
                    "/xos/contentproviders/?no_hyperlinks=1",
                    json!({"name": name, "serviceProvider": sp["id"]}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            cps.push(v["id"].as_i64().unwrap());
        }
        let before = app.count("hpc_cdnprefix").await;
        let bad = |field: &'static str, body: Value| (field, body);
        for (plural, (field, body)) in [
            (
                "cdnprefixs",
                bad(
                    "prefix",
                    json!({"prefix": "cdn..example.org", "contentProvider": cps[0]}),
                ),
            ),
            (
                "cdnprefixs",
                bad("prefix", json!({"prefix": "-x.org", "contentProvider": cps[0]})),
            ),
            (
                "originservers",
                bad(
                    "url",
                    json!({"url": "http://o.org/a;b", "contentProvider": cps[0]}),
                ),
            ),
            (
                "originservers",
                bad("url", json!({"url": "ftp://o.org/", "contentProvider": cps[0]})),
            ),
            (
                "accessmaps",
                bad(
                    "map",
                    json!({"name": "m", "map": "allow all\npermit 10.0.0.0/8", "contentProvider": cps[0]}),
                ),
            ),
            (
                "accessmaps",
                bad(
                    "map",
                    json!({"name": "m", "map": "allow 10.1.2.3/16", "contentProvider": cps[0]}),
                ),
            ),
            ("sitemaps", bad("map", json!({"name": "s", "map": "10.1.0.0/16"}))),
            (
                "sitemaps",
                bad(
                    "non_field_errors",
                    json!({"name": "s", "map": "0.0.0.0/0 a", "contentProvider": cps[0], "hpcService": svc["id"]}),
                ),
            ),
            (
                "hpchealthchecks",
                bad("kind", json!({"resource_name": "/", "kind": "ping"})),
            ),
        ] {
            let (s, v) = app.post(&format!("/xos/{plural}/"), body).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{plural}: {v}");
            assert!(v[field].is_array(), "{plural}: {field} named in {v}");
        }
        let (s, v) = app
            .post(
                "/xos/accessmaps/",
                json!({"name": "m", "map": "allow all\npermit 10.0.0.0/8", "contentProvider": cps[0]}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["map"][0].as_str().unwrap().starts_with("line 2:"), "{v}");
        // A default origin of another content provider.
        let (s, o) = app
            .post(
                "/xos/originservers/?no_hyperlinks=1",
                json!({"url": "http://127.0.0.1:9/", "contentProvider": cps[1]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let (s, v) = app
        .post(
            "/xos/cdnprefixs/",
            json!({"prefix": "cdn.example.org", "contentProvider": cps[0], "defaultOriginServer": o["id"]}),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["defaultOriginServer"].is_array(), "{v}");
        assert_eq!(app.count("hpc_cdnprefix").await, before, "nothing half-written");
        // One Request Router in the system.
        let (s, v) = app
            .post(
                "/xos/requestrouterservices/",
                json!({"name": "rr1", "versionNumber": "1"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = app
            .post(
                "/xos/requestrouterservices/",
                json!({"name": "rr2", "versionNumber": "1"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["non_field_errors"].is_array(), "{v}");
        // Both CDN services' rows are Services with their kinds.
        let (_, v) = app.get("/xos/services/?kind=requestrouter&no_hyperlinks=1").await;
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
        let (_, v) = app.get("/xos/services/?kind=hpc&no_hyperlinks=1").await;
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    }
);

both!(
    a_prefix_the_caches_cannot_take_fails_alone,
    async |app: &TestApp| {
        if !parts_installed() {
            return;
        }
        let cdn = start(app, "alone").await;
        let c1 = one(app, "instances", "name=mysite_hpc-1").await;
        let (i1, a1) = (c1["id"].as_i64().unwrap(), addr_of(&c1));
        let serves = |prefix: &str| cdn.cache_conf(i1).contains(&format!("server_name {prefix};"));
        cdn.until("the sample prefix served", Duration::from_secs(60), || {
            serves("cdn.example.org")
        })
        .await;
        // A second content provider of the same service, with its own origin and prefix.
        let sp = one(app, "serviceproviders", "name=cdn-operator").await;
        let (s, cp) = app
            .post(
                "/xos/contentproviders/?no_hyperlinks=1",
                json!({"name": "Second Content", "serviceProvider": sp["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{cp}");
        let (s, o) = app
            .post(
                "/xos/originservers/?no_hyperlinks=1",
                json!({"url": "http://127.0.0.1:9/", "contentProvider": cp["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{o}");
        let (s, p) = app
            .post(
                "/xos/cdnprefixs/?no_hyperlinks=1",
                json!({"prefix": "second.example.org", "contentProvider": cp["id"],
                       "defaultOriginServer": o["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        cdn.until("the second prefix served", Duration::from_secs(30), || {
            serves("second.example.org") && serves("cdn.example.org")
        })
        .await;
        // The API refuses an origin that would break the caches' configuration…
        let bad = "http://127.0.0.1:9/ }";
        let (s, v) = app
            .patch(&format!("/xos/originservers/{}/", o["id"]), json!({"url": bad}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        // …and one stored anyway (written before the rule) leaves out its prefix alone.
        let mut sql =
            server::db::Sql::new("UPDATE hpc_originserver SET row_version = row_version + 1, url = ");
        sql.bind(server::db::Value::Text(bad.into()));
        sql.push(" WHERE id = ")
            .bind(server::db::Value::Int(o["id"].as_i64().unwrap()));
        app.store.db().execute(&sql).await.unwrap();
        cdn.until(
            "the second prefix left out, alone",
            Duration::from_secs(30),
            || !serves("second.example.org") && serves("cdn.example.org"),
        )
        .await;
        assert!(
            !cdn.cache_conf(i1).contains(bad),
            "the bad URL reached nginx.conf"
        );
        // The rows at fault say why; the service too.
        let (s, v) = app
            .patch(
                &format!("/xos/cdnprefixs/{}/", p["id"]),
                json!({"description": "touched"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let at_fault = async || {
            (
                one(app, "originservers", &format!("id={}", o["id"])).await,
                one(app, "cdnprefixs", "prefix=second.example.org").await,
                one(app, "hpcservices", "name=hpc").await,
            )
        };
        let says = |v: &Value| {
            let st = v["backend_status"].as_str().unwrap_or_default();
            st.starts_with("2 - ") && st.contains("second.example.org is not served")
        };
        let said = within(Duration::from_secs(30), || async {
            cdn.engine.run_once().await.unwrap();
            let (origin, prefix, svc) = at_fault().await;
            let svc_says = svc["backend_status"]
                .as_str()
                .unwrap_or_default()
                .contains("second.example.org is not served");
            // The prefix either says so itself or names its failed origin (held back while the
            // origin backs off).
            let prefix_says = says(&prefix)
                || prefix["backend_status"]
                    .as_str()
                    .is_some_and(|st| st.starts_with("2 - Failed dependency: OriginServer"));
            (says(&origin) && prefix_says && svc_says).then_some(())
        })
        .await;
        if said.is_none() {
            let (origin, prefix, svc) = at_fault().await;
            panic!("origin {origin}\nprefix {prefix}\nservice {svc}");
        }
        // The other provider's changes still reach the caches.
        let map = one(app, "accessmaps", "name=sample-access").await;
        let (s, v) = app
            .patch(
                &format!("/xos/accessmaps/{}/", map["id"]),
                json!({"map": "deny all"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        cdn.until("the sample map applied", Duration::from_secs(20), || {
            cdn.get(&a1, "cdn.example.org", "/video/clip.mp4").map(|r| r.0) == Some(403)
        })
        .await;
        // Mended: served again, and the rows are OK.
        let (s, v) = app
            .patch(
                &format!("/xos/originservers/{}/", o["id"]),
                json!({"url": "http://127.0.0.1:9/"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        cdn.until("the second prefix served again", Duration::from_secs(30), || {
            serves("second.example.org")
        })
        .await;
        let ok = within(Duration::from_secs(30), || async {
            cdn.engine.run_once().await.unwrap();
            let prefix = one(app, "cdnprefixs", "prefix=second.example.org").await;
            prefix["backend_status"]
                .as_str()
                .is_some_and(|s| s.starts_with("1 - "))
                .then_some(())
        })
        .await;
        if ok.is_none() {
            panic!("{}", one(app, "cdnprefixs", "prefix=second.example.org").await);
        }
    }
);

/// Every configuration on disk is whole: each cache's passes `nginx -t`, each DNS server's
/// passes `knotc conf-check`, and every file a configuration names exists.
fn configurations_are_whole(state: &Path) -> usize {
    let mut checked = 0;
    for e in std::fs::read_dir(state.join("hpc"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir = e.path();
        let conf = dir.join("nginx.conf");
        if !conf.exists() {
            continue;
        }
        let out = std::process::Command::new(nginx::nginx_binary())
            .args(["-t", "-q", "-p"])
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            conf.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    for e in std::fs::read_dir(state.join("requestrouter"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let conf = e.path().join("knot.conf");
        if !conf.exists() {
            continue;
        }
        let out = std::process::Command::new("/usr/sbin/knotc")
            .arg("-c")
            .arg(&conf)
            .arg("conf-check")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            conf.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&conf).unwrap();
        for line in text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("config-file: "))
        {
            let path = line.trim_matches('"');
            let geo = std::fs::read_to_string(path).unwrap_or_else(|_| panic!("{path} is missing"));
            assert!(geo.ends_with('\n'), "{path} is cut short");
        }
        checked += 1;
    }
    checked
}

/// `xos sync` on the app's database with the CDN services: `--once` (killed at a crash point
/// when given one), or SIGKILLed after `kill_after`. Whether it was killed.
fn sync_run(config: &Path, crash: Option<String>, kill_after: Option<Duration>) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xos"));
    cmd.args(["--config", config.to_str().unwrap(), "sync"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if kill_after.is_none() {
        cmd.arg("--once");
    }
    if let Some(c) = crash {
        cmd.env("XOS_SYNC_CRASH", c);
    }
    let mut child = cmd.spawn().expect("xos sync");
    if let Some(d) = kill_after {
        // Deliberate: the synchronizer is killed `d` into its pass, wherever it then is.
        std::thread::sleep(d);
        let _ = child.kill();
    }
    child.wait().unwrap().signal() == Some(9)
}

both!(
    a_synchronizer_killed_mid_pass_leaves_whole_configurations,
    async |app: &TestApp| {
        if !parts_installed() {
            return;
        }
        // The recipe applied and the engine made (not run): the workers below do the work.
        let cdn = start(app, "kill").await;
        std::fs::create_dir_all(&cdn.state.0).unwrap();
        let config = cdn.state.0.join("xos.toml");
        std::fs::write(
            &config,
            format!(
                "name = \"cdn-kill\"\ndatabase_url = \"{}\"\nstate_dir = \"{}\"\nmodel_policies = false\nservices = [\"hpc\", \"requestrouter\"]\n\n[local_backend]\ncommands = [\"xos workload\", \"xos origin-serve\"]\n",
                app.state.config.database_url,
                cdn.state.0.display()
            ),
        )
        .unwrap();
        let origin = one(app, "originservers", "enabled=true").await;
        let prefix = one(app, "cdnprefixs", "prefix=cdn.example.org").await;
        // Killed right after the k-th backend call, for k = 1, 2, …, then at random moments
        // while prefixes and origins change: every configuration stays whole.
        let mut kills = 0;
        for k in 1..=12 {
            if sync_run(&config, Some(format!("after_backend:{k}")), None) {
                kills += 1;
            }
            configurations_are_whole(&cdn.state.0);
        }
        for (i, ms) in [150u64, 300, 450, 600, 900, 1200].into_iter().enumerate() {
            let (s, v) = app
                .patch(
                    &format!("/xos/cdnprefixs/{}/", prefix["id"]),
                    json!({"description": format!("change {i}")}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let (s, v) = app
                .patch(
                    &format!("/xos/originservers/{}/", origin["id"]),
                    json!({"redirects": i % 2 == 0}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            sync_run(&config, None, Some(Duration::from_millis(ms)));
            configurations_are_whole(&cdn.state.0);
        }
        eprintln!("{kills} deterministic kills");
        assert!(kills >= 3, "only {kills} kill points were reached");
        // A run that is left alone finishes the work: DNS answers, the caches serve.
        let c1 = one(app, "instances", "name=mysite_hpc-1").await;
        let a1 = addr_of(&c1);
        let t0 = Instant::now();
        while cdn.dig("cdn.example.org", None) != vec![a1.clone()] {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no DNS answer after the kills"
            );
            sync_run(&config, None, None);
        }
        assert!(
            configurations_are_whole(&cdn.state.0) >= 3,
            "two caches and a DNS server"
        );
        assert_eq!(cdn.get(&a1, "cdn.example.org", "/after-kills").unwrap().0, 200);
    }
);
