//! The store's test fixture: a fresh database (a SQLite file, or a schema of its own in the
//! Postgres database `test`), migrated, with a store over it built from the core's registry
//! alone (no service), the core's fixtures (roles, flavors, network templates, dashboard views),
//! a site `mysite` and its admin. No HTTP, no synchronizer: a change to the store runs these
//! tests without building the server. The TOSCA crate's tests use this fixture too.
//!
//! Postgres tests are skipped when Postgres cannot be reached, unless `XOS_REQUIRE_POSTGRES=1`
//! (CI), which turns that into a failure. `XOS_TEST_POSTGRES_URL` overrides
//! `postgres://postgres@127.0.0.1:5432/test`.
#![allow(dead_code)]

use registry::SqlType;
use serde_json::{Map, Value as Json, json};
use std::sync::atomic::{AtomicU32, Ordering};
use store::db::{Db, Sql};
use store::{Actor, Principal, Record, Store};

/// The admin every fixture has, as the server's bootstrap makes it.
pub const ADMIN: (&str, &str) = ("padmin@vicci.org", "letmein");

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store on its own fresh database.
pub struct TestStore {
    pub store: Store,
    pub backend: Backend,
    /// The site `mysite`.
    pub site: i64,
    /// Its admin ([`ADMIN`]).
    pub admin: Principal,
    cleanup: Cleanup,
}

/// What removes a test's database.
pub enum Cleanup {
    File(std::path::PathBuf),
    Schema(String),
}

/// `v` as a JSON object (the input of the store's writes).
pub fn obj(v: Json) -> Map<String, Json> {
    v.as_object().expect("a JSON object").clone()
}

impl TestStore {
    /// A fresh store on `backend`; `None` when Postgres is unavailable and not required.
    pub async fn new(backend: Backend) -> Option<TestStore> {
        let (url, cleanup) = fresh_database(backend).await?;
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        let store = Store::open(db, registry::registry()).await.expect("open store");
        store::seed::create_missing(&store, store::seed::core_rows())
            .await
            .expect("the core's fixtures");
        let site = json!({
            "name": "MySite",
            "login_base": "mysite",
            "abbreviated_name": "mysite",
            "site_url": "http://www.opencloud.us/",
        });
        let site = store
            .create(Actor::System, store.model("Site"), &obj(site))
            .await
            .expect("the site")
            .id();
        let admin = json!({
            "email": ADMIN.0,
            "password": ADMIN.1,
            "firstname": "XOS",
            "lastname": "admin",
            "site": site,
            "is_admin": true,
        });
        let admin = store
            .create(Actor::System, store.model("User"), &obj(admin))
            .await
            .expect("the admin");
        let admin = Principal {
            id: admin.id(),
            email: ADMIN.0.into(),
            is_admin: true,
            is_readonly: false,
            site_id: site,
        };
        Some(TestStore {
            store,
            backend,
            site,
            admin,
            cleanup,
        })
    }

    /// The admin as the actor of a write (what an API call with its credentials acts as).
    pub fn as_admin(&self) -> Actor {
        Actor::User(self.admin.clone())
    }

    /// Close the database and remove it.
    pub async fn finish(self) {
        self.store.db().close().await;
        self.cleanup.run().await;
    }

    /// Number of rows in a table (including soft-deleted ones).
    pub async fn count(&self, table: &str) -> i64 {
        let sql = Sql::new(format!("SELECT COUNT(*) FROM {table}"));
        let rows = self.store.db().fetch(&sql, &[SqlType::Int]).await.expect("count");
        rows[0][0].as_int().unwrap()
    }

    /// Create a slice `mysite_<suffix>` of the site as the admin.
    pub async fn make_slice(&self, suffix: &str) -> Record {
        let slice = json!({"name": format!("mysite_{suffix}"), "site": self.site, "description": "d"});
        self.store
            .create(self.as_admin(), self.store.model("Slice"), &obj(slice))
            .await
            .expect("create a slice")
    }

    /// Create a user of the site with a password as the admin; its id.
    pub async fn make_user(&self, email: &str, password: &str) -> i64 {
        let user = json!({"email": email, "password": password, "firstname": "F", "lastname": "L", "site": self.site});
        self.store
            .create(self.as_admin(), self.store.model("User"), &obj(user))
            .await
            .expect("create a user")
            .id()
    }
}

/// An empty database for one test (a SQLite file or a Postgres schema), with what removes it;
/// None when Postgres is not there and not required.
pub async fn fresh_database(backend: Backend) -> Option<(String, Cleanup)> {
    Some(match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{}.db", unique("xos_store_test")));
            (format!("sqlite://{}", path.display()), Cleanup::File(path))
        }
        Backend::Postgres => {
            let schema = unique("xos_t");
            let admin = match Db::connect(&postgres_url()).await {
                Ok(db) => db,
                Err(e) if require_postgres() => panic!("Postgres required but unreachable: {e}"),
                Err(e) => {
                    eprintln!(
                        "skipping: Postgres unreachable ({e}); set XOS_REQUIRE_POSTGRES=1 to fail instead"
                    );
                    return None;
                }
            };
            drop_stale_schemas(&admin).await;
            admin
                .execute(&Sql::new(format!("CREATE SCHEMA {schema}")))
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
                if let Ok(admin) = Db::connect(&postgres_url()).await {
                    let _ = admin.execute(&Sql::new(format!("DROP SCHEMA {s} CASCADE"))).await;
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

/// A unique name for this test's database: `<prefix>_<pid>_<n>`.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Remove schemas left by test processes that no longer run (a test that panicked). The
/// server's test fixture names its schemas the same way, so either cleans up after the other.
async fn drop_stale_schemas(admin: &Db) {
    static ONCE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ONCE.get_or_init(|| async {
        let sql = Sql::new("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'xos\\_t\\_%'");
        let rows = admin.fetch(&sql, &[SqlType::Text]).await.unwrap_or_default();
        for row in rows {
            let Some(name) = row[0].as_str() else { continue };
            let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
            if !alive {
                let _ = admin
                    .execute(&Sql::new(format!("DROP SCHEMA {name} CASCADE")))
                    .await;
            }
        }
    })
    .await;
}

/// Run a test body on SQLite and on Postgres: `both!(name, async |t: &TestStore| { … })`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let t = common::TestStore::new(common::Backend::Sqlite)
                    .await
                    .expect("sqlite");
                let f = $body;
                f(&t).await;
                t.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(t) = common::TestStore::new(common::Backend::Postgres).await else {
                    return;
                };
                let f = $body;
                f(&t).await;
                t.finish().await;
            }
        }
    };
}
