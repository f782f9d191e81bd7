//! The one write path, below HTTP: units of work commit all or nothing and publish after the
//! commit, status writes do not make an object look changed, hooks run inside the unit.

use crate::common;

use common::{TestStore, obj};
use registry::SqlType;
use serde_json::json;
use std::sync::{Arc, Mutex};
use store::db::{Sql, Value};
use store::{Actor, Change, ChangeKind, StatusUpdate, Store, StoreError, Unit, WriteHook};

async fn row_version(store: &Store, id: i64) -> i64 {
    let mut sql = Sql::new("SELECT row_version FROM core_slice WHERE id = ");
    sql.bind(Value::Int(id));
    store.db().fetch(&sql, &[SqlType::Int]).await.unwrap()[0][0]
        .as_int()
        .unwrap()
}

both!(
    a_unit_of_work_commits_all_or_nothing_and_publishes_after_commit,
    async |t: &TestStore| {
        let store = &t.store;
        let site = t.site;
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
            t.count("core_slice").await,
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
        assert_eq!(t.count("core_slice").await, 2);
    }
);

both!(
    status_writes_do_not_make_an_object_look_changed,
    async |t: &TestStore| {
        let store = &t.store;
        let slice = store.model("Slice");
        let id = t.make_slice("status").await.id();
        let created = store.get(&t.as_admin(), slice, id).await.unwrap();
        assert_eq!(row_version(store, id).await, 1);
        let mut unit = store.begin(Actor::System).await.unwrap();
        unit.set_status(
            slice,
            id,
            &StatusUpdate {
                backend_status: Some(registry::BackendStatus::ok(None)),
                enacted_version: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        unit.commit().await.unwrap();
        assert_eq!(row_version(store, id).await, 1, "status writes keep the version");
        let v = store.get(&t.as_admin(), slice, id).await.unwrap();
        assert_eq!(v.get_str("backend_status"), Some("1 - OK"));
        assert!(!v.get("enacted").is_null(), "{v:?}");
        assert_eq!(
            v.get("updated"),
            created.get("updated"),
            "status writes do not touch `updated`"
        );

        let description = obj(json!({"description": "new"}));
        store
            .update(t.as_admin(), slice, id, &description, true)
            .await
            .unwrap();
        assert_eq!(row_version(store, id).await, 2, "user writes bump the version");
        store
            .update(t.as_admin(), slice, id, &description, true)
            .await
            .unwrap();
        assert_eq!(
            row_version(store, id).await,
            2,
            "a write that changes nothing is not a change"
        );

        // Users cannot make status writes, and cannot write backend_status as a field.
        let mut unit = store.begin(t.as_admin()).await.unwrap();
        let err = unit
            .set_status(slice, id, &StatusUpdate::default())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
        drop(unit);
        let v = store
            .update(
                t.as_admin(),
                slice,
                id,
                &obj(json!({"backend_status": "2 - forged"})),
                true,
            )
            .await
            .unwrap();
        assert_eq!(
            v.get_str("backend_status"),
            Some("1 - OK"),
            "read-only fields are ignored on write"
        );
        let v = store.get(&t.as_admin(), slice, id).await.unwrap();
        assert_eq!(v.get_str("backend_status"), Some("1 - OK"));
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
    async |t: &TestStore| {
        let rec = Arc::new(Recorder(Mutex::new(Vec::new())));
        t.store.add_hook(rec.clone());
        let slice = t.store.model("Slice");
        let id = t.make_slice("hooked").await.id();
        let v = t.store.get(&t.as_admin(), slice, id).await.unwrap();
        assert_eq!(v.get_str("description"), Some("set by hook"));
        t.store.delete(t.as_admin(), slice, id).await.unwrap();
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
