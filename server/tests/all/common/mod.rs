//! Test harness: the whole HTTP application on a fresh database, SQLite or Postgres.
//!
//! Postgres tests each get their own schema in the `test` database (dropped afterwards). When
//! Postgres cannot be reached they are skipped, unless `XOS_REQUIRE_POSTGRES=1` (CI), which turns
//! that into a failure.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine;
use serde_json::Value;
use server::state::{AppState, Config};
use server::store::Store;
use std::sync::atomic::{AtomicU32, Ordering};
use tower::ServiceExt;

pub const ADMIN: (&str, &str) = ("padmin@vicci.org", "letmein");

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running application on its own database.
pub struct TestApp {
    pub router: Router,
    pub store: Store,
    pub state: AppState,
    pub backend: Backend,
    /// The configuration it runs with (its database URL, for a second server).
    pub config: Config,
    cleanup: Cleanup,
}

/// Another server process on the same database (its own store, caches and change listener).
pub struct Twin {
    pub router: Router,
    pub store: Store,
}

impl Twin {
    pub async fn call(&self, req: Request<Body>) -> StatusCode {
        self.router.clone().oneshot(req).await.expect("request").status()
    }
}

pub enum Cleanup {
    File(std::path::PathBuf),
    Schema(String),
}

/// An empty database for one test (a SQLite file or a Postgres schema), with what removes it;
/// None when Postgres is not there and not required.
pub async fn fresh_database(backend: Backend) -> Option<(String, Cleanup)> {
    Some(match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{}.db", unique("xos_test")));
            (format!("sqlite://{}", path.display()), Cleanup::File(path))
        }
        Backend::Postgres => {
            let schema = unique("xos_t");
            let admin = match sqlx::PgPool::connect(&postgres_url()).await {
                Ok(p) => p,
                Err(e) if require_postgres() => panic!("Postgres required but unreachable: {e}"),
                Err(e) => {
                    eprintln!(
                        "skipping: Postgres unreachable ({e}); set XOS_REQUIRE_POSTGRES=1 to fail instead"
                    );
                    return None;
                }
            };
            drop_stale_schemas(&admin).await;
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&admin)
                .await
                .expect("create schema");
            admin.close().await;
            let sep = if postgres_url().contains('?') { '&' } else { '?' };
            (
                format!("{}{sep}options=-c%20search_path%3D{schema}", postgres_url()),
                Cleanup::Schema(schema),
            )
        }
    })
}

impl Cleanup {
    /// Remove the test's database.
    pub async fn run(self) {
        match self {
            Cleanup::File(p) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
                }
            }
            Cleanup::Schema(s) => {
                if let Ok(admin) = sqlx::PgPool::connect(&postgres_url()).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {s} CASCADE"))
                        .execute(&admin)
                        .await;
                    admin.close().await;
                }
            }
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn postgres_url() -> String {
    std::env::var("XOS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn require_postgres() -> bool {
    std::env::var("XOS_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A unique name for this test's database.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

impl TestApp {
    /// A fresh application on `backend`; `None` when Postgres is unavailable and not required.
    pub async fn new(backend: Backend) -> Option<TestApp> {
        Self::with_config(backend, |_| {}).await
    }

    /// [`TestApp::new`] with the configuration changed by `tune` first.
    pub async fn with_config(backend: Backend, tune: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()))
            .with_test_writer()
            .try_init();
        let (url, cleanup) = fresh_database(backend).await?;
        let config = Config {
            name: "test".into(),
            database_url: url,
            port: 0,
            site_root: std::env::temp_dir(),
            // What the requests of these tests send (Django's test client's name too).
            allowed_hosts: vec!["testserver".into()],
            ..Config::default()
        };
        let mut config = config;
        tune(&mut config);
        let store = server::open_store(&config).await.expect("open store");
        server::seed::bootstrap(&store, &config.bootstrap)
            .await
            .expect("bootstrap");
        let state = server::app_state(store.clone(), config.clone()).expect("state");
        let router = server::router(state.clone()).await.expect("router");
        Some(TestApp {
            router,
            store,
            state,
            backend,
            config,
            cleanup,
        })
    }

    /// A second server on this database, as another process would be.
    pub async fn twin(&self) -> Twin {
        let store = server::open_store(&self.config).await.expect("open store");
        let state = server::app_state(store.clone(), self.config.clone()).expect("state");
        let router = server::router(state).await.expect("router");
        Twin { router, store }
    }

    /// Close the database and remove it.
    pub async fn finish(self) {
        self.store.db().close().await;
        self.cleanup.run().await;
    }

    /// Send a request; returns status, headers and the JSON body (Null when empty or not JSON).
    pub async fn call(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let resp = self.router.clone().oneshot(req).await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, json)
    }

    /// A request with basic auth as `who` (None: anonymous) and an optional JSON body.
    pub async fn req(
        &self,
        method: Method,
        path: &str,
        who: Option<(&str, &str)>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self
            .call(build(method, path, who, body.map(|b| b.to_string())))
            .await;
        (s, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.req(Method::GET, path, Some(ADMIN), None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::POST, path, Some(ADMIN), Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::PUT, path, Some(ADMIN), Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.req(Method::PATCH, path, Some(ADMIN), Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.req(Method::DELETE, path, Some(ADMIN), None).await
    }

    /// Number of rows in a table (including soft-deleted ones).
    pub async fn count(&self, table: &str) -> i64 {
        let sql = server::db::Sql::new(format!("SELECT COUNT(*) FROM {table}"));
        let rows = self
            .store
            .db()
            .fetch(&sql, &[app::registry::SqlType::Int])
            .await
            .expect("count");
        rows[0][0].as_int().unwrap()
    }

    /// The id of the bootstrap site.
    pub async fn site_id(&self) -> i64 {
        let (_, v) = self.get("/xos/sites/?login_base=mysite").await;
        v[0]["id"].as_i64().expect("bootstrap site")
    }

    /// Create a slice as admin, returning its JSON (ids).
    pub async fn make_slice(&self, suffix: &str) -> Value {
        let site = self.site_id().await;
        let (s, v) = self
            .post(
                "/xos/slices/?no_hyperlinks=1",
                serde_json::json!({"name": format!("mysite_{suffix}"), "site": site, "description": "d"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    /// Write `body` into row `id` of `model` as the system (what no API caller may write:
    /// backend-owned fields, a row as an older version stored it).
    pub async fn system_update(&self, model: &str, id: i64, body: Value) {
        let input = body.as_object().expect("an object");
        self.store
            .update(
                server::store::Actor::System,
                self.store.model(model),
                id,
                input,
                true,
            )
            .await
            .expect("the system's update");
    }

    /// Make `user` a member of `slice` (its `access` role), as an admin would.
    pub async fn add_slice_member(&self, slice: i64, user: i64) {
        let (_, roles) = self.get("/xos/slice_roles/?role=access").await;
        let (s, v) = self
            .post(
                "/xos/slice_privileges/",
                serde_json::json!({"user": user, "slice": slice, "role": roles[0]["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    /// A user with a password and an SSH public key (a non-admin of the bootstrap site).
    pub async fn make_user_with_key(&self, email: &str, password: &str, key: &str) -> i64 {
        let id = self.make_user(email, password).await;
        self.system_update("User", id, serde_json::json!({"public_key": key}))
            .await;
        id
    }

    /// Create a non-admin user with a password, returning its id.
    pub async fn make_user(&self, email: &str, password: &str) -> i64 {
        let site = self.site_id().await;
        let (s, v) = self
            .post(
                "/xos/users/",
                serde_json::json!({"email": email, "password": password, "firstname": "F", "lastname": "L", "site": site}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_i64().unwrap()
    }
}

/// The effective uid of process `pid`.
pub fn uid_of(pid: i32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("a Uid line")
}

/// Whether the tests run as root (then workloads must run as `nobody`).
pub fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid of `nobody`, whom workloads run as when XOS is root.
pub fn nobody() -> u32 {
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("nobody:"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|u| u.parse().ok())
        .expect("nobody in /etc/passwd")
}

/// POST `body` to `/xos/<plural>/` as admin, expecting 201; the new row's id.
pub async fn make(app: &TestApp, plural: &str, body: Value) -> i64 {
    let (s, v) = app
        .post(&format!("/xos/{plural}/?no_hyperlinks=1"), body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "POST /xos/{plural}/ {body}: {v}");
    v["id"].as_i64().unwrap()
}

/// Log in through the form as `who`; the cookie jar (`sessionid=…; xoscsrftoken=…`) and the
/// CSRF token.
pub async fn login_jar(app: &TestApp, who: (&str, &str)) -> (String, String) {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let login = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::HOST, "testserver")
        .header(header::ORIGIN, "http://testserver")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "username={}&password={}&next=%2F",
            enc(who.0),
            enc(who.1)
        )))
        .unwrap();
    let (s, h, _) = app.call(login).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "login as {}", who.0);
    let jar: Vec<String> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
        .collect();
    let csrf = jar
        .iter()
        .find_map(|kv| kv.strip_prefix("xoscsrftoken="))
        .expect("a CSRF cookie")
        .to_string();
    (jar.join("; "), csrf)
}

/// Build a request with optional basic auth and JSON body.
pub fn build(method: Method, path: &str, who: Option<(&str, &str)>, body: Option<String>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "testserver");
    if let Some((u, p)) = who {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        b = b.header(header::AUTHORIZATION, format!("Basic {token}"));
    }
    match body {
        Some(text) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(text))
            .unwrap(),
        None => b.body(Body::empty()).unwrap(),
    }
}

/// Remove schemas left by test processes that no longer run (a test that panicked).
async fn drop_stale_schemas(admin: &sqlx::PgPool) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'xos\\_t\\_%'")
                .fetch_all(admin)
                .await
                .unwrap_or_default();
        for (name,) in rows {
            let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = sqlx::query(&format!("DROP SCHEMA {name} CASCADE"))
                    .execute(admin)
                    .await;
            }
        }
    })
    .await;
}

/// Run a test body on SQLite and on Postgres: `both!(name, |app| async move { … })`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = common::TestApp::new(common::Backend::Sqlite)
                    .await
                    .expect("sqlite");
                let f = $body;
                f(&app).await;
                app.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(app) = common::TestApp::new(common::Backend::Postgres).await else {
                    return;
                };
                let f = $body;
                f(&app).await;
                app.finish().await;
            }
        }
    };
}
