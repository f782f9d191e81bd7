//! Status writes: the synchronizer's bookkeeping (backend status, enacted and policed versions,
//! backend-owned fields), which never bump `row_version`.

use super::Unit;
use crate::db::{Sql, Value};
use crate::{Actor, ChangeEvent, ChangeKind, StoreError};
use registry::{Model, SqlType};

/// What a status write changes (synchronizer bookkeeping; never bumps `row_version`).
#[derive(Clone, Debug, Default)]
pub struct StatusUpdate {
    pub backend_status: Option<registry::BackendStatus>,
    pub backend_register: Option<String>,
    /// Mark enacted as of this row version (sets `enacted` to now and `enacted_version`).
    pub enacted_version: Option<i64>,
    /// Mark policed as of this row version.
    pub policed_version: Option<i64>,
    /// Backend-owned fields (pid, instance id, IPs), by field name.
    pub fields: Vec<(String, Value)>,
}

impl Unit {
    /// A synchronizer's status write: bookkeeping only, no `row_version` bump. System only.
    pub async fn set_status(
        &mut self,
        model: &'static Model,
        id: i64,
        status: &StatusUpdate,
    ) -> Result<(), StoreError> {
        if self.actor != Actor::System {
            return Err(StoreError::PermissionDenied(
                "status writes are for the synchronizer".into(),
            ));
        }
        let mut sql = Sql::new(format!("UPDATE {} SET id = id", model.table()));
        if let Some(s) = &status.backend_status {
            let s: String = s.to_string().chars().take(1024).collect();
            sql.push(", backend_status = ").bind(Value::Text(s));
        }
        if let Some(r) = &status.backend_register {
            sql.push(", backend_register = ").bind(Value::Text(r.clone()));
        }
        if let Some(v) = status.enacted_version {
            sql.push(", enacted = ").bind(Value::Time(self.now));
            sql.push(", enacted_version = ").bind(Value::Int(v));
        }
        if let Some(v) = status.policed_version {
            sql.push(", policed = ").bind(Value::Time(self.now));
            sql.push(", policed_version = ").bind(Value::Int(v));
        }
        for (name, v) in &status.fields {
            let f = model
                .field_named(name)
                .ok_or_else(|| StoreError::field(name, "Unknown field."))?;
            sql.push(&format!(", {} = ", f.column())).bind(v.clone());
        }
        sql.push(" WHERE id = ").bind(Value::Int(id));
        if self.execute(&sql).await? == 0 {
            return Err(StoreError::NotFound);
        }
        self.events
            .push(ChangeEvent::new(model.name.clone(), id, ChangeKind::Status));
        if status.backend_status.is_some() {
            self.mirror_status(model, &[id]).await?;
        }
        Ok(())
    }

    /// Many status writes of one model at once (the synchronizer's batch). On Postgres, writes of
    /// the common shape (status, register, enacted version; no backend fields) become one
    /// `UPDATE … FROM (VALUES …)` per few hundred rows instead of a round trip each; the rest, and
    /// everything on SQLite (in process, no round trips), go one by one. Rows already purged are
    /// skipped.
    pub async fn set_status_many(
        &mut self,
        model: &'static Model,
        writes: &[(i64, StatusUpdate)],
    ) -> Result<(), StoreError> {
        if self.actor != Actor::System {
            return Err(StoreError::PermissionDenied(
                "status writes are for the synchronizer".into(),
            ));
        }
        let bulk = |u: &StatusUpdate| {
            u.fields.is_empty()
                && u.policed_version.is_none()
                && u.backend_status.is_some()
                && u.backend_register.is_some()
        };
        let postgres = self.tx().dialect() == crate::db::Dialect::Postgres;
        let (common, other): (Vec<_>, Vec<_>) = writes.iter().partition(|(_, u)| postgres && bulk(u));
        for (id, u) in other {
            match self.set_status(model, *id, u).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        for chunk in common.chunks(500) {
            let mut sql = Sql::new(format!(
                "UPDATE {} AS t SET backend_status = v.bs, backend_register = v.br, \
                 enacted = CASE WHEN v.ev IS NULL THEN t.enacted ELSE ",
                model.table()
            ));
            sql.bind(Value::Time(self.now));
            sql.push(" END, enacted_version = COALESCE(v.ev, t.enacted_version) FROM (VALUES ");
            for (i, (id, u)) in chunk.iter().enumerate() {
                let casts = if i == 0 {
                    ["::bigint", "::text", "::text", "::bigint"]
                } else {
                    [""; 4]
                };
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Value::Int(*id)).push(casts[0]).push(", ");
                let status: String = u
                    .backend_status
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
                    .chars()
                    .take(1024)
                    .collect();
                sql.bind(Value::Text(status)).push(casts[1]).push(", ");
                sql.bind(Value::Text(u.backend_register.clone().unwrap_or_default()))
                    .push(casts[2])
                    .push(", ");
                sql.bind(
                    u.enacted_version
                        .map(Value::Int)
                        .unwrap_or(Value::Null(SqlType::Int)),
                )
                .push(casts[3])
                .push(")");
            }
            sql.push(") AS v(id, bs, br, ev) WHERE t.id = v.id RETURNING t.id");
            let mut ids = Vec::new();
            for r in self.fetch(&sql, &[SqlType::Int]).await? {
                if let Some(id) = r[0].as_int() {
                    self.events
                        .push(ChangeEvent::new(model.name.clone(), id, ChangeKind::Status));
                    ids.push(id);
                }
            }
            self.mirror_status(model, &ids).await?;
        }
        Ok(())
    }

    /// XOS's automatic dirtying: the enacted rows of `model` that `filter` (an SQL condition on
    /// the unaliased table) selects are enacted again, because something they depend on changed.
    /// Their `enacted_version` goes back to zero; `row_version` stays, so to clients nothing
    /// changed. A change arriving while a step works on the row may be absorbed by that step's
    /// write-back (XOS's `updated` bump had the same window). System only; the ids resynced.
    pub async fn resync(&mut self, model: &'static Model, filter: Sql) -> Result<Vec<i64>, StoreError> {
        self.system_only("resyncs")?;
        self.resync_rows(model, filter).await
    }

    /// [`Unit::resync`] as a consequence the store itself draws from a user's write.
    pub(crate) async fn resync_rows(
        &mut self,
        model: &'static Model,
        filter: Sql,
    ) -> Result<Vec<i64>, StoreError> {
        let mut sql = Sql::new(format!(
            "UPDATE {} SET enacted_version = 0 WHERE enacted_version > 0 AND NOT deleted AND ",
            model.table()
        ));
        crate::append_sql(&mut sql, &filter);
        self.update_announced(model, sql).await
    }

    /// XOS's `write_protect` propagation: set it on the live rows of `model` that `filter`
    /// selects and that are not protected yet. Announced as a status write (readers' caches
    /// move), without a `row_version` bump. System only; the ids protected.
    pub async fn protect(&mut self, model: &'static Model, filter: Sql) -> Result<Vec<i64>, StoreError> {
        self.system_only("write-protect propagation")?;
        let mut sql = Sql::new(format!("UPDATE {} SET write_protect = ", model.table()));
        sql.bind(Value::Bool(true));
        sql.push(" WHERE write_protect = ").bind(Value::Bool(false));
        sql.push(" AND NOT deleted AND ");
        crate::append_sql(&mut sql, &filter);
        self.update_announced(model, sql).await
    }

    /// Run a status `UPDATE` of `model` and announce each row it changed as a status write.
    async fn update_announced(
        &mut self,
        model: &'static Model,
        mut sql: Sql,
    ) -> Result<Vec<i64>, StoreError> {
        sql.push(" RETURNING id");
        let ids: Vec<i64> = self
            .fetch(&sql, &[SqlType::Int])
            .await?
            .iter()
            .filter_map(|r| r[0].as_int())
            .collect();
        for &id in &ids {
            self.events
                .push(ChangeEvent::new(model.name.clone(), id, ChangeKind::Status));
        }
        Ok(ids)
    }

    fn system_only(&self, what: &str) -> Result<(), StoreError> {
        if self.actor != Actor::System {
            return Err(StoreError::PermissionDenied(format!(
                "{what} are for the synchronizer"
            )));
        }
        Ok(())
    }
}
