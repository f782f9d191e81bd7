//! The change log's retention (what it records, and `/xos/changes/`, are the server's tests).

use crate::common;

use common::TestStore;
use store::changelog::prune;
use store::db::{Sql, Value};

both!(old_entries_are_pruned, async |t: &TestStore| {
    t.make_slice("old").await;
    t.make_slice("new").await;
    let n = t.count("xos_change").await;
    let mut sql = Sql::new("UPDATE xos_change SET at = ");
    sql.bind(Value::Time(chrono::Utc::now() - chrono::Duration::days(10)));
    sql.push(" WHERE id = (SELECT MIN(id) FROM xos_change)");
    t.store.db().execute(&sql).await.unwrap();
    assert_eq!(prune(&t.store, 0).await.unwrap(), 0, "0 keeps all");
    assert_eq!(prune(&t.store, 30).await.unwrap(), 0);
    assert_eq!(prune(&t.store, 7).await.unwrap(), 1);
    assert_eq!(t.count("xos_change").await, n - 1);
});
