//! Leases between workers: Postgres advisory locks, so no object is enacted by two workers at
//! once.

use std::collections::{HashMap, HashSet};
use store::{Record, StoreError, select_sql, types};

/// Advisory locks held on a connection of this worker's own (Postgres). Keys are the schema and
/// model (hashed) and the id: advisory locks are per database, and several installations may
/// share one database in schemas of their own.
pub(super) struct Leases {
    /// Detached from the pool: held for the engine's life, it must not keep the pool from
    /// closing.
    pub(super) conn: tokio::sync::Mutex<sqlx::PgConnection>,
}

pub(super) fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

impl Leases {
    /// Lock what no other worker holds, then keep only rows unchanged since this worker read
    /// them (another worker may have finished them between our read and our lock).
    pub(super) async fn acquire(
        &self,
        store: &store::Store,
        model: &'static registry::Model,
        objs: Vec<Record>,
    ) -> Result<(Vec<Record>, Vec<i64>), StoreError> {
        let ids: Vec<i64> = objs.iter().map(Record::id).collect();
        let sql = format!(
            "SELECT id FROM unnest(ARRAY[{}]::bigint[]) AS id WHERE pg_try_advisory_lock(hashtext(current_schema() || '.{}'), id::int4)",
            id_list(&ids),
            model.name
        );
        let locked: Vec<i64> = {
            let mut conn = self.conn.lock().await;
            sqlx::query_scalar::<_, i64>(&sql)
                .fetch_all(&mut *conn)
                .await
                .map_err(StoreError::from_sqlx)?
        };
        if locked.is_empty() {
            return Ok((Vec::new(), locked));
        }
        // Keep what nobody touched between our read and our lock: another worker may have
        // enacted it (enacted_version moved) or a user changed it (row_version moved; the
        // change is picked up by the next pass).
        let mut q = select_sql(model);
        q.push(&format!(" WHERE t.id IN ({}) ORDER BY t.id", id_list(&locked)));
        let fresh = store.db().fetch(&q, &types(model)).await?;
        let before: HashMap<i64, &Record> = objs.iter().map(|o| (o.id(), o)).collect();
        let same = |r: &Record, o: &Record| {
            ["row_version", "enacted_version", "deleted"]
                .iter()
                .all(|f| r.try_get(f) == o.try_get(f))
        };
        let fresh: Vec<Record> = fresh
            .into_iter()
            .map(|values| Record { model, values })
            .filter(|r| before.get(&r.id()).is_some_and(|o| same(r, o)))
            .collect();
        let keep: HashSet<i64> = fresh.iter().map(Record::id).collect();
        let drop: Vec<i64> = locked.iter().copied().filter(|id| !keep.contains(id)).collect();
        self.release(model, &drop).await;
        Ok((fresh, keep.into_iter().collect()))
    }

    pub(super) async fn release(&self, model: &registry::Model, ids: &[i64]) {
        if ids.is_empty() {
            return;
        }
        let sql = format!(
            "SELECT pg_advisory_unlock(hashtext(current_schema() || '.{}'), id::int4) FROM unnest(ARRAY[{}]::bigint[]) AS id",
            model.name,
            id_list(ids)
        );
        let mut conn = self.conn.lock().await;
        if let Err(e) = sqlx::query(&sql).execute(&mut *conn).await {
            tracing::warn!(error = %e, "could not release leases");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_lists_are_plain_integers() {
        assert_eq!(super::id_list(&[1, 22, 333]), "1,22,333");
    }
}
