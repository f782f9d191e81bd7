//! The schema the migrations produce, compared with the registry's declarations, and the
//! SQLite file's mode.

use crate::common;

use common::{Backend, TestStore};
use registry::SqlType;
use store::db::{Sql, Value};
use store::ddl::SchemaSpec;

/// The columns the database has for a table: (name, nullable).
async fn columns(t: &TestStore, table: &str) -> Vec<(String, bool)> {
    let db = t.store.db();
    let (sql, types) = match t.backend {
        Backend::Sqlite => (
            Sql::new(format!(
                "SELECT name, CASE WHEN \"notnull\" = 0 OR pk = 1 THEN 1 ELSE 0 END FROM pragma_table_info('{table}') ORDER BY cid"
            )),
            [SqlType::Text, SqlType::Int],
        ),
        Backend::Postgres => {
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
async fn indexes(t: &TestStore, table: &str) -> Vec<String> {
    let mut sql = match t.backend {
        Backend::Sqlite => Sql::new(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = ",
        ),
        Backend::Postgres => Sql::new(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND indexname NOT LIKE '%_pkey' AND tablename = ",
        ),
    };
    sql.bind(Value::Text(table.into()));
    let mut out: Vec<String> = t
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
    async |t: &TestStore| {
        // The core's models as the registry declares them; then every other table the committed
        // migrations record (the services': `services/catalog`'s test holds that record to the
        // registry of every service, which this crate does not know).
        let spec = SchemaSpec::from_registry(t.store.registry());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let recorded = store::migrations::recorded_state(&dir).expect("migrations/schema.json");
        let services = recorded.tables.iter().filter(|r| spec.table(&r.name).is_none());
        for table in spec.tables.iter().chain(services) {
            // Column order may differ (ADD COLUMN appends); names and nullability may not.
            let mut want: Vec<(String, bool)> = table
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.null || c.primary_key))
                .collect();
            want.sort();
            let mut have = columns(t, &table.name).await;
            have.sort();
            assert_eq!(have, want, "columns of {}", table.name);
            let mut want_idx: Vec<String> = table.indexes.iter().map(|i| i.name.clone()).collect();
            want_idx.sort();
            assert_eq!(
                indexes(t, &table.name).await,
                want_idx,
                "indexes of {}",
                table.name
            );
        }
        assert!(t.store.db().migrations_current().await.unwrap());
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
    let db = store::db::Db::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    assert_eq!(mode(&path), 0o600);
    drop(db);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = store::db::Db::connect(&url).await.unwrap();
    assert_eq!(mode(&path), 0o600, "an older, readable file is closed");
    let wal = dir.join("xos.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
