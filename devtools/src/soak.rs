//! `xos soak`: a long run of mixed API traffic against a running server, at half the capacity it
//! measures first, with synchronizer work (instances on the local backend created and deleted
//! all along). Every minute it prints requests, errors, p50/p99 latency and the server's RSS;
//! at the end the totals and the RSS growth from minute 5 to the last.
//!
//! The mix, per request: 50% list `/xos/slices/`, 25% get one slice, 20% churn (create a slice
//! while fewer than [`POPULATION`] of ours exist, else delete one), 5% change one; plus one
//! Instance created every 2 s and deleted 10 s later (the local backend starts and stops a
//! process for each). The population is filled before the capacity is measured, so the load
//! stays the same all along (a list that grew would make the same rate heavier).

use rand::Rng;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to run.
pub struct SoakOptions {
    pub base: String,
    pub email: String,
    pub password: String,
    pub minutes: u64,
    /// Requests per second; None: half the capacity measured in a 10 s closed-loop burst.
    pub rate: Option<f64>,
    /// The server's pid, for its RSS (None: not reported).
    pub server_pid: Option<u32>,
}

/// The outcome, as printed.
pub struct SoakReport {
    pub requests: u64,
    pub errors: u64,
    pub rss_growth_pct: Option<f64>,
}

/// Slices of the soak's own kept alive: the list it reads has this many rows and more.
pub const POPULATION: usize = 100;

#[derive(Default)]
struct Minute {
    latencies_ms: Mutex<Vec<f64>>,
    errors: AtomicU64,
}

struct Client {
    http: reqwest::Client,
    base: String,
    email: String,
    password: String,
    site: i64,
    created: Mutex<Vec<i64>>,
    seq: AtomicU64,
    /// One error message of each kind, to show what went wrong.
    first_errors: Mutex<Vec<String>>,
}

impl Client {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.email, Some(&self.password));
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// One request of the mix; Err describes an error (a transport failure or an unexpected status).
    async fn one(&self) -> Result<(), String> {
        let roll = rand::thread_rng().gen_range(0..100);
        let pick = || {
            let c = self.created.lock().expect("created lock");
            (!c.is_empty()).then(|| c[rand::thread_rng().gen_range(0..c.len())])
        };
        let expect = |what: &str, got: u16, want: &[u16], body: &Value| {
            if want.contains(&got) {
                Ok(())
            } else {
                Err(format!(
                    "{what}: HTTP {got} {}",
                    body.to_string().chars().take(200).collect::<String>()
                ))
            }
        };
        match roll {
            0..50 => {
                let (s, b) = self.send(reqwest::Method::GET, "/xos/slices/", None).await?;
                expect("list", s, &[200], &b)
            }
            50..75 => {
                let id = pick().unwrap_or(1);
                let (s, b) = self
                    .send(reqwest::Method::GET, &format!("/xos/slices/{id}/"), None)
                    .await?;
                // A slice another task deleted a moment ago is a fair 404.
                expect("get", s, &[200, 404], &b)
            }
            75..95 if self.created.lock().expect("created lock").len() < POPULATION => {
                let n = self.seq.fetch_add(1, Ordering::Relaxed);
                let body =
                    json!({"name": format!("mysite_soak{n}"), "site": self.site, "description": "soak"});
                let (s, b) = self
                    .send(reqwest::Method::POST, "/xos/slices/?no_hyperlinks=1", Some(body))
                    .await?;
                if let Some(id) = b["id"].as_i64() {
                    self.created.lock().expect("created lock").push(id);
                }
                expect("create", s, &[201], &b)
            }
            75..95 => {
                let id = {
                    let mut c = self.created.lock().expect("created lock");
                    if c.is_empty() {
                        None
                    } else {
                        let i = rand::thread_rng().gen_range(0..c.len());
                        Some(c.swap_remove(i))
                    }
                };
                let Some(id) = id else { return Ok(()) };
                let (s, b) = self
                    .send(reqwest::Method::DELETE, &format!("/xos/slices/{id}/"), None)
                    .await?;
                expect("delete", s, &[204], &b)
            }
            _ => {
                let Some(id) = pick() else { return Ok(()) };
                let body = json!({"description": format!("soak {}", rand::thread_rng().r#gen::<u32>())});
                let (s, b) = self
                    .send(reqwest::Method::PATCH, &format!("/xos/slices/{id}/"), Some(body))
                    .await?;
                expect("patch", s, &[200, 404], &b)
            }
        }
    }

    fn note_error(&self, e: &str) {
        let mut first = self.first_errors.lock().expect("errors lock");
        let kind = e.split(':').next().unwrap_or_default().to_string();
        if first.len() < 10 && !first.iter().any(|f| f.starts_with(&kind)) {
            first.push(e.to_string());
        }
    }
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Instances on the local backend: one created every 2 s, each deleted 10 s later.
async fn instance_churn(c: Arc<Client>, until: Instant, errors: Arc<AtomicU64>) {
    let template = match c
        .send(reqwest::Method::GET, "/xos/instances/?no_hyperlinks=1", None)
        .await
    {
        Ok((200, Value::Array(a))) if !a.is_empty() => a[0].clone(),
        other => {
            eprintln!("soak: no instance to copy, so no synchronizer work: {other:?}");
            return;
        }
    };
    let mut alive: std::collections::VecDeque<(Instant, i64)> = Default::default();
    let mut n = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    while Instant::now() < until {
        tick.tick().await;
        n += 1;
        let mut body = serde_json::Map::new();
        for k in [
            "slice",
            "node",
            "image",
            "flavor",
            "creator",
            "deployment",
            "isolation",
        ] {
            if !template[k].is_null() {
                body.insert(k.into(), template[k].clone());
            }
        }
        body.insert("name".into(), json!(format!("soak-{n}")));
        match c
            .send(
                reqwest::Method::POST,
                "/xos/instances/?no_hyperlinks=1",
                Some(Value::Object(body)),
            )
            .await
        {
            Ok((201, b)) => {
                if let Some(id) = b["id"].as_i64() {
                    alive.push_back((Instant::now(), id));
                }
            }
            Ok((s, b)) => {
                errors.fetch_add(1, Ordering::Relaxed);
                c.note_error(&format!("instance create: HTTP {s} {b}"));
            }
            Err(e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                c.note_error(&format!("instance create: {e}"));
            }
        }
        while alive
            .front()
            .is_some_and(|(t, _)| t.elapsed() >= Duration::from_secs(10))
        {
            let (_, id) = alive.pop_front().expect("front");
            match c
                .send(reqwest::Method::DELETE, &format!("/xos/instances/{id}/"), None)
                .await
            {
                Ok((204, _)) => {}
                Ok((s, b)) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    c.note_error(&format!("instance delete: HTTP {s} {b}"));
                }
                Err(e) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    c.note_error(&format!("instance delete: {e}"));
                }
            }
        }
    }
    for (_, id) in alive {
        let _ = c
            .send(reqwest::Method::DELETE, &format!("/xos/instances/{id}/"), None)
            .await;
    }
}

/// Run the soak and print its figures.
pub async fn run(opts: SoakOptions) -> Result<SoakReport, String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut client = Client {
        http,
        base: opts.base.trim_end_matches('/').to_string(),
        email: opts.email.clone(),
        password: opts.password.clone(),
        site: 0,
        created: Mutex::new(Vec::new()),
        seq: AtomicU64::new(0),
        first_errors: Mutex::new(Vec::new()),
    };
    let (s, sites) = client
        .send(
            reqwest::Method::GET,
            "/xos/sites/?login_base=mysite&no_hyperlinks=1",
            None,
        )
        .await?;
    client.site = sites[0]["id"]
        .as_i64()
        .ok_or_else(|| format!("no site mysite (HTTP {s}): {sites}"))?;
    let client = Arc::new(client);
    // The population first (creates while below it).
    while client.created.lock().expect("created lock").len() < POPULATION {
        let n = client.seq.fetch_add(1, Ordering::Relaxed);
        let body = json!({"name": format!("mysite_soak{n}"), "site": client.site, "description": "soak"});
        let (s, b) = client
            .send(reqwest::Method::POST, "/xos/slices/?no_hyperlinks=1", Some(body))
            .await?;
        match b["id"].as_i64() {
            Some(id) => client.created.lock().expect("created lock").push(id),
            None => return Err(format!("could not create a slice: HTTP {s} {b}")),
        }
    }

    let rate = match opts.rate {
        Some(r) => r,
        None => {
            // Closed loop, 16 at a time, for 10 s: what the server does flat out.
            let done = Arc::new(AtomicU64::new(0));
            let until = Instant::now() + Duration::from_secs(10);
            let mut tasks = Vec::new();
            for _ in 0..16 {
                let (c, done) = (client.clone(), done.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < until {
                        let _ = c.one().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let capacity = done.load(Ordering::Relaxed) as f64 / 10.0;
            println!(
                "capacity: {capacity:.0} requests/s with this mix (closed loop, 16 connections); soaking at half"
            );
            capacity / 2.0
        }
    };
    println!(
        "soak: {} minutes at {rate:.0} requests/s against {}",
        opts.minutes, client.base
    );
    println!("minute  requests  errors  p50_ms  p99_ms  rss_mb");
    let start = Instant::now();
    let until = start + Duration::from_secs(opts.minutes * 60);
    let churn_errors = Arc::new(AtomicU64::new(0));
    let churn = tokio::spawn(instance_churn(client.clone(), until, churn_errors.clone()));
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut total_requests = 0u64;
    let mut total_errors = 0u64;
    let mut rss: Vec<(u64, u64)> = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    for minute in 1..=opts.minutes {
        let stats = Arc::new(Minute::default());
        let end = start + Duration::from_secs(minute * 60);
        let mut next = Instant::now();
        let mut sent = 0u64;
        while Instant::now() < end {
            next += interval;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            if in_flight.load(Ordering::Relaxed) >= 512 {
                // The server is not keeping up: count it, do not pile on.
                stats.errors.fetch_add(1, Ordering::Relaxed);
                client.note_error("backlog: more than 512 requests in flight");
                continue;
            }
            sent += 1;
            let (c, stats, in_flight) = (client.clone(), stats.clone(), in_flight.clone());
            in_flight.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let t = Instant::now();
                let r = c.one().await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                stats.latencies_ms.lock().expect("latency lock").push(ms);
                if let Err(e) = r {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    c.note_error(&e);
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
        // Let this minute's requests finish before reading its figures (bounded).
        let settle = Instant::now();
        while in_flight.load(Ordering::Relaxed) > 0 && settle.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut lat = std::mem::take(&mut *stats.latencies_ms.lock().expect("latency lock"));
        lat.sort_by(f64::total_cmp);
        let errors = stats.errors.load(Ordering::Relaxed) + churn_errors.swap(0, Ordering::Relaxed);
        let rss_now = opts.server_pid.and_then(rss_kb);
        if let Some(kb) = rss_now {
            rss.push((minute, kb));
        }
        total_requests += sent;
        total_errors += errors;
        println!(
            "{minute:>6}  {sent:>8}  {errors:>6}  {:>6.2}  {:>6.2}  {}",
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            rss_now.map_or("-".into(), |kb| format!("{:.1}", kb as f64 / 1024.0))
        );
    }
    let _ = churn.await;
    let growth = {
        let from = rss.iter().find(|(m, _)| *m == 5.min(opts.minutes)).map(|r| r.1);
        let to = rss.last().map(|r| r.1);
        match (from, to) {
            (Some(a), Some(b)) if a > 0 => Some((b as f64 - a as f64) * 100.0 / a as f64),
            _ => None,
        }
    };
    println!(
        "soak done: {total_requests} requests, {total_errors} errors, RSS growth from minute {} to {}: {}",
        5.min(opts.minutes),
        opts.minutes,
        growth.map_or("-".into(), |g| format!("{g:+.1}%"))
    );
    for e in client.first_errors.lock().expect("errors lock").iter() {
        println!("  error seen: {e}");
    }
    Ok(SoakReport {
        requests: total_requests,
        errors: total_errors,
        rss_growth_pct: growth,
    })
}
