//! Migrations that move data: a database from before HelloWorld extended Service and Tenant
//! (migration 0008) keeps its HelloWorld services and tenants, now also Service and Tenant rows
//! with the same ids, and new objects get ids above every old one.

use crate::common::{self, Backend};
use app::registry::SqlType;
use server::db::{Db, Sql, Value};
use server::store::Store;

/// Apply the migrations numbered below `before` only (an older release's schema).
async fn migrate_until(db: &Db, dialect: &str, before: i64) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(dialect);
    let mut m = sqlx::migrate::Migrator::new(dir).await.expect("migrations");
    m.migrations = m
        .migrations
        .iter()
        .filter(|x| x.version < before)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    match (db.sqlite_writer(), db.pg_pool()) {
        (Some(pool), _) => m.run(pool).await.expect("old migrations"),
        (_, Some(pool)) => m.run(pool).await.expect("old migrations"),
        _ => unreachable!(),
    }
}

async fn ints(db: &Db, sql: &str) -> Vec<Vec<i64>> {
    let n = sql.split(" FROM ").next().unwrap().matches(',').count() + 1;
    db.fetch(&Sql::new(sql), &vec![SqlType::Int; n])
        .await
        .expect(sql)
        .into_iter()
        .map(|r| r.iter().map(|v| v.as_int().unwrap_or(-1)).collect())
        .collect()
}

async fn exec(db: &Db, sql: &str) {
    db.execute(&Sql::new(sql)).await.expect(sql);
}

async fn upgrade(backend: Backend) {
    let Some((url, cleanup)) = common::fresh_database(backend).await else {
        return;
    };
    let dialect = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let db = Db::connect(&url).await.expect("connect");
    migrate_until(&db, dialect, 8).await;
    let (t, f) = match backend {
        Backend::Sqlite => ("'2026-01-01T00:00:00Z'", "0"),
        Backend::Postgres => ("now()", "FALSE"),
    };
    // Two plain services (ids 1, 2), two HelloWorld services (ids 1, 2: the clash the
    // migration resolves), three tenants.
    for name in ["core-a", "core-b"] {
        exec(&db, &format!("INSERT INTO core_service (created, updated, name, \"versionNumber\") VALUES ({t}, {t}, '{name}', '1')")).await;
    }
    exec(
        &db,
        &format!("INSERT INTO core_tenant (created, updated, provider_service_id) VALUES ({t}, {t}, 1)"),
    )
    .await;
    for name in ["hello-a", "hello-b"] {
        exec(&db, &format!("INSERT INTO helloworld_helloworldservice (created, updated, name, description, enabled) VALUES ({t}, {t}, '{name}', 'old', {f})")).await;
    }
    for (name, svc) in [("t1", 1), ("t2", 2), ("t3", 2)] {
        exec(&db, &format!("INSERT INTO helloworld_helloworldtenant (created, updated, name, service_id, display_message, port) VALUES ({t}, {t}, '{name}', {svc}, 'msg {name}', 9000)")).await;
    }
    db.migrate().await.expect("upgrade");

    // Every HelloWorld service is a Service of kind helloworld with its id, above the old ids.
    let hw = ints(&db, "SELECT h.id, s.id FROM helloworld_helloworldservice h JOIN core_service s ON s.id = h.id AND s.name = h.name AND s.kind = 'helloworld' ORDER BY h.id").await;
    assert_eq!(hw.len(), 2, "{hw:?}");
    assert!(hw.iter().all(|r| r[0] > 2), "{hw:?}");
    let names = db
        .fetch(
            &Sql::new("SELECT name, description FROM core_service WHERE kind = 'helloworld' ORDER BY id"),
            &[SqlType::Text, SqlType::Text],
        )
        .await
        .unwrap();
    assert_eq!(names[0][0], Value::Text("hello-a".into()));
    assert_eq!(names[1][1], Value::Text("old".into()));
    // Each tenant kept its service (now `provider_service`) and message, and is a Tenant.
    let tenants = ints(&db, "SELECT h.id, h.provider_service_id, t.provider_service_id FROM helloworld_helloworldtenant h JOIN core_tenant t ON t.id = h.id AND t.kind = 'helloworld' ORDER BY h.id").await;
    assert_eq!(tenants.len(), 3, "{tenants:?}");
    assert_eq!(tenants[0][1], hw[0][0], "t1 belongs to hello-a");
    assert_eq!(tenants[1][1], hw[1][0], "t2 belongs to hello-b");
    assert!(tenants.iter().all(|r| r[1] == r[2] && r[0] > 1), "{tenants:?}");
    let msgs = db
        .fetch(
            &Sql::new("SELECT display_message FROM helloworld_helloworldtenant ORDER BY id"),
            &[SqlType::Text],
        )
        .await
        .unwrap();
    assert_eq!(msgs[2][0], Value::Text("msg t3".into()));
    assert_eq!(ints(&db, "SELECT COUNT(*) FROM core_tenant").await[0][0], 4);

    // New objects through the store get ids above all of these.
    let store = Store::open(db.clone(), app::registry::registry()).await.unwrap();
    let mut unit = store.begin(server::store::Actor::System).await.unwrap();
    let input = serde_json::json!({"name": "hello-new", "versionNumber": "1"});
    let rec = unit
        .create(store.model("HelloWorldService"), input.as_object().unwrap())
        .await
        .unwrap();
    unit.commit().await.unwrap();
    assert!(rec.id() > hw[1][0], "new id {} after {:?}", rec.id(), hw);
    db.close().await;
    cleanup.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helloworld_rows_become_services_and_tenants_sqlite() {
    upgrade(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helloworld_rows_become_services_and_tenants_postgres() {
    upgrade(Backend::Postgres).await;
}
