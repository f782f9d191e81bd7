//! The benchmark's ceiling: a bare axum server that does the same cached basic-auth check as
//! the API and answers fixed JSON bytes without touching a database (`xos bench-ceiling`). What
//! the real API reaches is measured against it (`make bench`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use server::auth::{CredentialCache, basic_credentials, password};
use server::store::Principal;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
struct Ceiling {
    cache: Arc<CredentialCache>,
    email: String,
    hash: String,
    body: Bytes,
}

async fn answer(State(c): State<Ceiling>, headers: HeaderMap) -> Response {
    let Some(Some((user, pass))) = basic_credentials(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let fp = c.cache.fingerprint(&user, &pass);
    if c.cache.get(&fp, 0).is_none() {
        let (hash, ok_user) = (c.hash.clone(), user == c.email);
        let ok = tokio::task::spawn_blocking(move || ok_user && password::verify(&pass, &hash))
            .await
            .unwrap_or(false);
        if !ok {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let p = Principal {
            id: 1,
            email: user,
            is_admin: true,
            is_readonly: false,
            site_id: 1,
        };
        c.cache.put(fp, p, 0, String::new());
    }
    ([(header::CONTENT_TYPE, "application/json")], c.body.clone()).into_response()
}

/// Serve `body` at every path on `addr` behind basic auth as `email` / `password`.
pub async fn serve_ceiling(addr: &str, body: Vec<u8>, email: &str, pw: &str) -> std::io::Result<()> {
    let hash = password::hash(pw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let state = Ceiling {
        cache: Arc::new(CredentialCache::default()),
        email: email.to_string(),
        hash,
        body: body.into(),
    };
    let app = Router::new().fallback(get(answer)).with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("ceiling server ready at http://{addr}/");
    axum::serve(listener, app).await
}

/// Figures of the synchronizer benchmark.
#[derive(Debug)]
pub struct SyncFigures {
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub throughput_per_s: f64,
    pub idle_small_ms: f64,
    pub idle_large_ms: f64,
    pub small: usize,
    pub large: usize,
}

async fn create_many(
    store: &server::store::Store,
    model: &'static app::registry::Model,
    prefix: &str,
    n: usize,
) -> Result<(), server::store::StoreError> {
    let mut done = 0;
    while done < n {
        let mut unit = store.begin(server::store::Actor::System).await?;
        for i in done..(done + 5000).min(n) {
            let input = serde_json::json!({"name": format!("{prefix}{i}"), "versionNumber": "1"});
            unit.create(model, input.as_object().expect("object")).await?;
        }
        unit.commit().await?;
        done = (done + 5000).min(n);
    }
    Ok(())
}

/// Median time of 30 passes with nothing to do.
async fn idle(engine: &server::sync::engine::Engine) -> Result<f64, String> {
    let mut t = Vec::new();
    for _ in 0..30 {
        let t0 = std::time::Instant::now();
        engine.run_once().await.map_err(|e| e.to_string())?;
        t.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    t.sort_by(f64::total_cmp);
    Ok(percentile(&t, 0.5))
}

/// Postgres: what autovacuum does in a running system (dead index entries of enacted rows go,
/// statistics are fresh), so idle passes are measured in steady state.
async fn steady_state(store: &server::store::Store) -> Result<(), String> {
    if let Some(pool) = store.db().pg_pool() {
        sqlx::query("VACUUM ANALYZE")
            .execute(pool)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The synchronizer benchmark on a fresh database at `url`: change → enacted latency with a
/// no-op step (engine running, woken by events), enactment throughput for `throughput_n` objects
/// (one pass, batched status writes), and the time of an idle pass with `small` and `large`
/// enacted objects.
pub async fn sync_benchmark(
    url: &str,
    throughput_n: usize,
    small: usize,
    large: usize,
) -> Result<SyncFigures, String> {
    use server::sync::engine::{Engine, EngineOptions, NoopStep};
    use std::time::Instant;
    let db = server::db::Db::connect(url).await.map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| e.to_string())?;
    let store = server::store::Store::open(db, app::registry::registry())
        .await
        .map_err(|e| e.to_string())?;
    let model = store.model("Service");
    let opts = EngineOptions {
        idle_tick: Duration::from_secs(1),
        ..Default::default()
    };
    let dir = std::env::temp_dir();
    let make_engine = |store: &server::store::Store| {
        let ctx = server::sync::StepContext::new(store.clone(), dir.clone());
        Engine::new(ctx, vec![Arc::new(NoopStep { model: "Service" })], opts.clone())
    };

    // Latency: one change at a time, the engine running and woken by the change event.
    let engine = Arc::new(make_engine(&store).await.map_err(|e| e.to_string())?);
    let hub = Arc::new(server::events::EventHub::default());
    server::events::start(&store, hub.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(engine.clone().run(hub.subscribe(), stopped));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut rx = store.subscribe();
    let mut lat = Vec::new();
    for i in 0..300 {
        let input = serde_json::json!({"name": format!("latency{i}"), "versionNumber": "1"});
        let t0 = Instant::now();
        let id = store
            .create(
                server::store::Actor::System,
                model,
                input.as_object().expect("object"),
            )
            .await
            .map_err(|e| e.to_string())?
            .id();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .map_err(|_| "no status event within 5 s".to_string())?
                .map_err(|e| e.to_string())?;
            if e.id == id && e.kind == server::store::ChangeKind::Status && e.model == "Service" {
                break;
            }
        }
        lat.push(t0.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = stop.send(true);
    let _ = runner.await;
    lat.sort_by(f64::total_cmp);

    // Idle pass with `small` enacted objects.
    let engine = make_engine(&store).await.map_err(|e| e.to_string())?;
    create_many(&store, model, "small", small.saturating_sub(300))
        .await
        .map_err(|e| e.to_string())?;
    while engine.run_once().await.map_err(|e| e.to_string())?.enacted > 0 {}
    steady_state(&store).await?;
    let idle_small = idle(&engine).await?;

    // Throughput: many pending objects, one pass.
    create_many(&store, model, "bulk", throughput_n)
        .await
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let report = engine.run_once().await.map_err(|e| e.to_string())?;
    let took = t0.elapsed().as_secs_f64();
    if report.enacted < throughput_n {
        return Err(format!("only {} of {throughput_n} enacted", report.enacted));
    }

    // Idle pass with `large` enacted objects.
    let have = small.max(300) + throughput_n;
    create_many(&store, model, "large", large.saturating_sub(have))
        .await
        .map_err(|e| e.to_string())?;
    while engine.run_once().await.map_err(|e| e.to_string())?.enacted > 0 {}
    steady_state(&store).await?;
    let idle_large = idle(&engine).await?;
    // Closing waits for every checked-out connection. It once waited forever (Postgres,
    // 2026-11-26): the engine held its lease connection from the pool for its whole life. That
    // connection is detached from the pool now, and the event listener lets go of its own when
    // the pool closes (`server/tests/all/sync.rs` checks both).
    store.db().close().await;
    Ok(SyncFigures {
        latency_p50_ms: percentile(&lat, 0.5),
        latency_p99_ms: percentile(&lat, 0.99),
        throughput_per_s: throughput_n as f64 / took,
        idle_small_ms: idle_small,
        idle_large_ms: idle_large,
        small: small.max(300),
        large,
    })
}
