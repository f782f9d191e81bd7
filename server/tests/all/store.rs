//! The one write path, below HTTP: units of work, events, status writes, hooks, and the schema
//! the migrations produce compared with the registry.

use crate::common;

use app::registry::SqlType;
use common::TestApp;
use serde_json::{Map, Value as Json, json};
use server::db::{Sql, Value};
use server::store::{Actor, Change, ChangeKind, StatusUpdate, Store, StoreError, Unit, WriteHook};
use std::sync::{Arc, Mutex};

fn obj(v: Json) -> Map<String, Json> {
    v.as_object().unwrap().clone()
}

async fn row_version(store: &Store, id: i64) -> i64 {
    let mut sql = Sql::new("SELECT row_version FROM core_slice WHERE id = ");
    sql.bind(Value::Int(id));
    store.db().fetch(&sql, &[SqlType::Int]).await.unwrap()[0][0]
        .as_int()
        .unwrap()
}

both!(
    a_unit_of_work_commits_all_or_nothing_and_publishes_after_commit,
    async |app: &TestApp| {
        let store = &app.store;
        let site = app.site_id().await;
        let slice = store.model("Slice");
        let mut events = store.subscribe();

        let mut unit = store.begin(Actor::System).await.unwrap();
        unit.create(slice, &obj(json!({"name": "mysite_one", "site": site})))
            .await
            .unwrap();
        unit.create(slice, &obj(json!({"name": "mysite_two", "site": site})))
            .await
            .unwrap();
        assert!(events.try_recv().is_err(), "nothing is published before commit");
        let err = unit
            .create(slice, &obj(json!({"name": "mysite_one", "site": site})))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(ref e) if e.contains_key("name")),
            "{err:?}"
        );
        unit.rollback().await.unwrap();
        assert_eq!(
            app.count("core_slice").await,
            0,
            "a rolled-back unit leaves nothing"
        );
        assert!(events.try_recv().is_err(), "and publishes nothing");

        let mut unit = store.begin(Actor::System).await.unwrap();
        let a = unit
            .create(slice, &obj(json!({"name": "mysite_one", "site": site})))
            .await
            .unwrap();
        let b = unit
            .create(slice, &obj(json!({"name": "mysite_two", "site": site})))
            .await
            .unwrap();
        unit.commit().await.unwrap();
        let got: Vec<_> = (0..2).map(|_| events.try_recv().unwrap()).collect();
        assert_eq!(got[0].id, a.id());
        assert_eq!(got[1].id, b.id());
        assert!(
            got.iter()
                .all(|e| e.kind == ChangeKind::Create && e.model == "Slice")
        );

        // A unit dropped without commit rolls back too.
        {
            let mut unit = store.begin(Actor::System).await.unwrap();
            unit.create(slice, &obj(json!({"name": "mysite_three", "site": site})))
                .await
                .unwrap();
        }
        assert_eq!(app.count("core_slice").await, 2);
    }
);

both!(
    status_writes_do_not_make_an_object_look_changed,
    async |app: &TestApp| {
        let store = &app.store;
        let s = app.make_slice("status").await;
        let id = s["id"].as_i64().unwrap();
        let slice = store.model("Slice");
        assert_eq!(row_version(store, id).await, 1);
        let mut unit = store.begin(Actor::System).await.unwrap();
        unit.set_status(
            slice,
            id,
            &StatusUpdate {
                backend_status: Some(app::registry::BackendStatus::ok(None)),
                enacted_version: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        unit.commit().await.unwrap();
        assert_eq!(row_version(store, id).await, 1, "status writes keep the version");
        let (_, v) = app.get(&format!("/xos/slices/{id}/")).await;
        assert_eq!(v["backend_status"], "1 - OK");
        assert!(v["enacted"].is_string());
        assert_eq!(v["updated"], s["updated"], "status writes do not touch `updated`");

        let (_, _) = app
            .patch(&format!("/xos/slices/{id}/"), json!({"description": "new"}))
            .await;
        assert_eq!(row_version(store, id).await, 2, "user writes bump the version");
        let (_, _) = app
            .patch(&format!("/xos/slices/{id}/"), json!({"description": "new"}))
            .await;
        assert_eq!(
            row_version(store, id).await,
            2,
            "a write that changes nothing is not a change"
        );

        // Users cannot make status writes, and cannot write backend_status through the API.
        let admin = Actor::User(server::store::Principal {
            id: 1,
            email: "padmin@vicci.org".into(),
            is_admin: true,
            is_readonly: false,
            site_id: 1,
        });
        let mut unit = store.begin(admin).await.unwrap();
        let err = unit
            .set_status(slice, id, &StatusUpdate::default())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::PermissionDenied(_)));
        drop(unit);
        let (_, v) = app
            .patch(
                &format!("/xos/slices/{id}/"),
                json!({"backend_status": "2 - forged"}),
            )
            .await;
        assert_eq!(
            v["backend_status"], "1 - OK",
            "read-only fields are ignored on write"
        );
    }
);

/// Records every change it sees and, for slices named `*_hooked`, writes to the same unit.
struct Recorder(Mutex<Vec<(String, ChangeKind)>>);

#[async_trait::async_trait]
impl WriteHook for Recorder {
    async fn after_write(&self, unit: &mut Unit, change: &Change) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap()
            .push((change.model().name.clone(), change.kind));
        if let Some(after) = &change.after
            && change.kind == ChangeKind::Create
            && after.get_str("name").is_some_and(|n| n.ends_with("_hooked"))
        {
            let slice = unit.store().model("Slice");
            let input = serde_json::json!({"description": "set by hook"});
            unit.update(slice, after.id(), input.as_object().expect("object"), true)
                .await?;
        }
        Ok(())
    }
}

both!(
    hooks_run_inside_the_unit_after_each_write,
    async |app: &TestApp| {
        let rec = Arc::new(Recorder(Mutex::new(Vec::new())));
        app.store.add_hook(rec.clone());
        let s = app.make_slice("hooked").await;
        let (_, v) = app.get(&format!("/xos/slices/{}/", s["id"])).await;
        assert_eq!(v["description"], "set by hook");
        app.delete(&format!("/xos/slices/{}/", s["id"])).await;
        let seen = rec.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![
                ("Slice".into(), ChangeKind::Create),
                ("Slice".into(), ChangeKind::Update),
                ("Slice".into(), ChangeKind::Delete)
            ]
        );
    }
);

/// The columns the database has for a table: (name, nullable).
async fn columns(app: &TestApp, table: &str) -> Vec<(String, bool)> {
    let db = app.store.db();
    let (sql, types) = match app.backend {
        common::Backend::Sqlite => (
            Sql::new(format!(
                "SELECT name, CASE WHEN \"notnull\" = 0 OR pk = 1 THEN 1 ELSE 0 END FROM pragma_table_info('{table}') ORDER BY cid"
            )),
            [SqlType::Text, SqlType::Int],
        ),
        common::Backend::Postgres => {
            let mut s = Sql::new(
                "SELECT column_name::text, CASE WHEN is_nullable = 'YES' OR column_name = 'id' THEN 1 ELSE 0 END::bigint \
                 FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ",
            );
            s.bind(Value::Text(table.into()));
            s.push(" ORDER BY ordinal_position");
            (s, [SqlType::Text, SqlType::Int])
        }
    };
    db.fetch(&sql, &types)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_int() == Some(1)))
        .collect()
}

/// Index names of a table.
async fn indexes(app: &TestApp, table: &str) -> Vec<String> {
    let mut sql = match app.backend {
        common::Backend::Sqlite => Sql::new(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = ",
        ),
        common::Backend::Postgres => Sql::new(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND indexname NOT LIKE '%_pkey' AND tablename = ",
        ),
    };
    sql.bind(Value::Text(table.into()));
    let mut out: Vec<String> = app
        .store
        .db()
        .fetch(&sql, &[SqlType::Text])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

both!(
    the_migrated_database_matches_every_registry_declaration,
    async |app: &TestApp| {
        let spec = server::ddl::SchemaSpec::from_registry(app.store.registry());
        for table in &spec.tables {
            // Column order may differ (ADD COLUMN appends); names and nullability may not.
            let mut want: Vec<(String, bool)> = table
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.null || c.primary_key))
                .collect();
            want.sort();
            let mut have = columns(app, &table.name).await;
            have.sort();
            assert_eq!(have, want, "columns of {}", table.name);
            let mut want_idx: Vec<String> = table.indexes.iter().map(|i| i.name.clone()).collect();
            want_idx.sort();
            assert_eq!(
                indexes(app, &table.name).await,
                want_idx,
                "indexes of {}",
                table.name
            );
        }
        assert!(app.store.db().migrations_current().await.unwrap());
    }
);

/// The embedded database holds password hashes and sessions, and workloads run on this host:
/// its file (and its WAL) is readable by its owner only, also when it was made readable before.
#[tokio::test]
async fn the_sqlite_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("xos-db-mode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("xos.db");
    let url = format!("sqlite://{}", path.display());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let db = server::db::Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    assert_eq!(mode(&path), 0o600);
    drop(db);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = server::db::Db::connect(&url).await.unwrap();
    assert_eq!(mode(&path), 0o600, "an older, readable file is closed");
    let wal = dir.join("xos.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
