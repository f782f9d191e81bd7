//! Crash safety of the synchronizer with the local backend: `xos sync` killed with SIGKILL at each
//! step boundary (before the backend call, after it and before the status write, after the
//! status write) and at random moments during a burst of creates, updates and deletes; after a
//! restart the backend matches the model exactly: one process per live instance, none for
//! deleted ones, none orphaned.

use serde_json::{Value, json};
use server::state::Config;
use server::store::{Actor, Store};
use server::sync::local;
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const XOS: &str = env!("CARGO_BIN_EXE_xos");

struct World {
    dir: PathBuf,
    config: PathBuf,
    state: PathBuf,
    store: Store,
    slice: i64,
    node: i64,
    images: [i64; 2],
}

impl Drop for World {
    fn drop(&mut self) {
        local::stop_all(&self.state);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn obj(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

async fn create(store: &Store, model: &str, v: Value) -> i64 {
    store
        .create(Actor::System, store.model(model), &obj(v))
        .await
        .expect(model)
        .id()
}

/// The database of a world: a SQLite file, or a fresh schema of the Postgres test database.
async fn database_url(dir: &Path, tag: &str, postgres: bool) -> Option<String> {
    if !postgres {
        return Some(format!("sqlite://{}/xos.db", dir.display()));
    }
    let base = std::env::var("XOS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("xos_crash_{}_{tag}", std::process::id());
    let admin = match sqlx::PgPool::connect(&base).await {
        Ok(p) => p,
        Err(e) if std::env::var("XOS_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
            panic!("Postgres required: {e}")
        }
        Err(_) => return None,
    };
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    Some(format!("{base}?options=-c%20search_path%3D{schema}"))
}

async fn world(tag: &str, postgres: bool) -> Option<World> {
    let dir = std::env::temp_dir().join(format!("xos-crash-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state");
    let config = dir.join("xos.toml");
    let url = database_url(&dir, tag, postgres).await?;
    std::fs::write(
        &config,
        format!(
            "name = \"crash-test\"\ndatabase_url = \"{url}\"\nstate_dir = \"{}\"\nmodel_policies = false\n",
            state.display()
        ),
    )
    .unwrap();
    let cfg = Config::load(Some(&config)).unwrap();
    let store = server::open_store(&cfg).await.unwrap();
    server::seed::bootstrap(&store, &cfg.bootstrap).await.unwrap();
    let site = store
        .find(
            &Actor::System,
            store.model("Site"),
            "login_base",
            server::db::Value::Text("mysite".into()),
        )
        .await
        .unwrap()[0]
        .id();
    let dep = create(&store, "Deployment", json!({"name": "local"})).await;
    create(
        &store,
        "Controller",
        json!({"name": "local", "backend_type": "local", "version": "1", "deployment": dep}),
    )
    .await;
    let sd = create(&store, "SiteDeployment", json!({"site": site, "deployment": dep})).await;
    let node = create(
        &store,
        "Node",
        json!({"name": "localhost", "site_deployment": sd}),
    )
    .await;
    let a = create(&store, "Image", json!({"name": "a", "disk_format": "none", "container_format": "none", "path": format!("{XOS} workload")})).await;
    let b = create(&store, "Image", json!({"name": "b", "disk_format": "none", "container_format": "none", "path": format!("{XOS} workload --allocate-mb 1")})).await;
    // Room for the whole burst (a slice runs at most max_instances, 10 by default).
    let slice = create(
        &store,
        "Slice",
        json!({"name": "mysite_crash", "site": site, "max_instances": 1000}),
    )
    .await;
    store.set_observed("Instance", true);
    Some(World {
        dir,
        config,
        state,
        store,
        slice,
        node,
        images: [a, b],
    })
}

/// Run `xos sync --once`, optionally crashing at a point; returns whether it was killed.
fn sync_once(w: &World, crash: Option<&str>) -> bool {
    let mut cmd = Command::new(XOS);
    cmd.args(["--config", w.config.to_str().unwrap(), "sync", "--once"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(c) = crash {
        cmd.env("XOS_SYNC_CRASH", c);
    }
    let status = cmd.status().expect("run xos sync");
    match status.signal() {
        Some(9) => true,
        None => {
            assert!(status.success(), "xos sync failed: {status}");
            false
        }
        Some(s) => panic!("xos sync died of signal {s}"),
    }
}

/// Live instances in the model and the processes running: they must match one to one.
async fn assert_matches(w: &World, context: &str) {
    let model = w.store.model("Instance");
    let live: Vec<i64> = w
        .store
        .list(&Actor::System, model, &server::store::ListQuery::default())
        .await
        .unwrap()
        .0
        .iter()
        .map(|r| r.id())
        .collect();
    let running: HashMap<i64, Vec<i32>> = local::running_processes(&w.state);
    for id in &live {
        assert_eq!(
            running.get(id).map(Vec::len),
            Some(1),
            "{context}: instance {id} should run once: {running:?}"
        );
    }
    for id in running.keys() {
        assert!(
            live.contains(id),
            "{context}: process of deleted instance {id} still runs: {running:?}"
        );
    }
    let pending = server::sync::default_fetch_pending(&w.store, "Instance", false, None)
        .await
        .unwrap();
    assert!(
        pending.is_empty(),
        "{context}: instances still pending: {:?}",
        pending.iter().map(|r| r.id()).collect::<Vec<_>>()
    );
}

async fn new_instance(w: &World, image: i64) -> i64 {
    create(
        &w.store,
        "Instance",
        json!({"slice": w.slice, "node": w.node, "image": image}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_boundary_converges_after_restart_sqlite() {
    crash_at_boundaries(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_boundary_converges_after_restart_postgres() {
    crash_at_boundaries(true).await;
}

async fn crash_at_boundaries(postgres: bool) {
    let Some(w) = world(if postgres { "boundaries_pg" } else { "boundaries" }, postgres).await else {
        return;
    };
    for point in ["before_backend", "after_backend", "after_status"] {
        // Creates.
        let ids = [
            new_instance(&w, w.images[0]).await,
            new_instance(&w, w.images[0]).await,
        ];
        let nth = if point == "after_status" { 1 } else { 2 };
        assert!(
            sync_once(&w, Some(&format!("{point}:{nth}"))),
            "{point}: the crash was injected"
        );
        sync_once(&w, None);
        assert_matches(&w, &format!("create, crash {point}")).await;
        // Updates (a changed image replaces the process).
        let m = w.store.model("Instance");
        w.store
            .update(
                Actor::System,
                m,
                ids[0],
                &obj(json!({"image": w.images[1]})),
                true,
            )
            .await
            .unwrap();
        assert!(sync_once(&w, Some(&format!("{point}:1"))));
        sync_once(&w, None);
        assert_matches(&w, &format!("update, crash {point}")).await;
        // Deletes.
        w.store.delete(Actor::System, m, ids[1]).await.unwrap();
        w.store.delete(Actor::System, m, ids[0]).await.unwrap();
        let killed = sync_once(&w, Some(&format!("{point}:1")));
        assert!(killed || point != "after_status", "{point}");
        sync_once(&w, None);
        assert_matches(&w, &format!("delete, crash {point}")).await;
    }
}

/// A small deterministic generator (no extra crate for one test).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_during_a_burst_converge_after_restart_sqlite() {
    random_kills(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_during_a_burst_converge_after_restart_postgres() {
    random_kills(true).await;
}

async fn random_kills(postgres: bool) {
    let Some(w) = world(if postgres { "random_pg" } else { "random" }, postgres).await else {
        return;
    };
    let mut rng = Lcg(std::env::var("XOS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261126));
    let m = w.store.model("Instance");
    let mut live: Vec<i64> = Vec::new();
    for round in 0..20 {
        for _ in 0..=rng.next(3) {
            live.push(new_instance(&w, w.images[rng.next(2) as usize]).await);
        }
        if !live.is_empty() && rng.next(2) == 0 {
            let id = live[rng.next(live.len() as u64) as usize];
            w.store
                .update(
                    Actor::System,
                    m,
                    id,
                    &obj(json!({"image": w.images[rng.next(2) as usize]})),
                    true,
                )
                .await
                .unwrap();
        }
        for _ in 0..rng.next(3) {
            if live.is_empty() {
                break;
            }
            let id = live.remove(rng.next(live.len() as u64) as usize);
            w.store.delete(Actor::System, m, id).await.unwrap();
        }
        // A synchronizer killed (SIGKILL) at a random moment of its work.
        let mut child = Command::new(XOS)
            .args(["--config", w.config.to_str().unwrap(), "sync"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Deliberate: the kill lands at a random moment of the pass, whatever it is doing.
        tokio::time::sleep(Duration::from_millis(50 + rng.next(700))).await;
        child.kill().unwrap();
        let _ = child.wait();
        let _ = round;
    }
    sync_once(&w, None);
    sync_once(&w, None);
    assert_matches(&w, "after 20 random kills").await;
    let _ = Path::new(&w.dir);
}
