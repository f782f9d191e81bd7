//! Deletes: on-delete rules (cascade, protect, set null), soft deletes of observed models and
//! their purge after the backend delete.

use super::Unit;
use crate::db::{ConstraintViolation, Sql, Value, constraint_violation};
use crate::{
    Actor, Change, ChangeKind, Op, Record, StoreError, human_readable_name, permissions, select_sql, types,
};
use registry::fields::common;
use registry::{FieldKind, Model, OnDelete, SqlType};
use std::sync::Arc;

impl Unit {
    /// Delete an object and apply the on-delete rules of everything pointing at it.
    pub async fn delete(&mut self, model: &'static Model, id: i64) -> Result<(), StoreError> {
        let before = self.load_visible(model, id).await?;
        permissions::check_write(self, Op::Delete, Some(&before), &before, &[]).await?;
        self.check_child_delete(&before).await?;
        if before.opt(common::WRITE_PROTECT) == Some(true) {
            return Err(StoreError::Conflict(format!(
                "{} {} is write-protected.",
                model.verbose_name,
                human_readable_name(&before)
            )));
        }
        let mut plan = Vec::new();
        self.plan_delete(before, &mut plan, 0).await?;
        // Who could see each removed object, asked before anything goes (a slice's members
        // are known by privileges the same delete removes first).
        let mut audiences = Vec::new();
        for step in &plan {
            if let DeleteStep::Remove(rec) = step {
                audiences.push(
                    permissions::audience(self, rec.model, rec.id())
                        .await?
                        .map(Arc::new),
                );
            }
        }
        let mut audiences = audiences.into_iter();
        for step in plan {
            match step {
                DeleteStep::Remove(rec) => self.remove(rec, audiences.next().flatten()).await?,
                DeleteStep::Clear { model, id, field } => {
                    let null = Value::Null(SqlType::Int);
                    self.update_fields(model, id, &[(field.as_str(), null)]).await?;
                }
            }
        }
        Ok(())
    }

    /// Collect what a delete does, children first, refusing on a protecting reference.
    pub(crate) fn plan_delete<'a>(
        &'a mut self,
        rec: Record,
        plan: &'a mut Vec<DeleteStep>,
        depth: u32,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>> {
        Box::pin(async move {
            let planned = |plan: &[DeleteStep], rec: &Record| {
                plan.iter().any(|s| matches!(s, DeleteStep::Remove(r) if r.model.name == rec.model.name && r.id() == rec.id()))
            };
            if depth > 32 || planned(plan, &rec) {
                return Ok(());
            }
            // The object's other row (parent or child) goes too: a child before its parent.
            let counterpart = self.counterpart(&rec).await?;
            if let Some(child) = counterpart.as_ref().filter(|c| c.model.extends.is_some()) {
                if !planned(plan, child) {
                    self.plan_delete(child.clone(), plan, depth + 1).await?;
                }
                if planned(plan, &rec) {
                    return Ok(());
                }
            }
            let reg = self.store.registry();
            for (ref_model, field) in reg.referrers(&rec.model.name) {
                let FieldKind::ForeignKey { on_delete, .. } = &field.kind else {
                    continue;
                };
                let mut sql = select_sql(ref_model);
                sql.push(&format!(" WHERE t.{} = ", field.column()))
                    .bind(Value::Int(rec.id()));
                if ref_model.field_named("deleted").is_some() {
                    sql.push(" AND NOT t.deleted");
                }
                sql.push(" ORDER BY t.id");
                let rows = self.fetch(&sql, &types(ref_model)).await?;
                if rows.is_empty() {
                    continue;
                }
                match on_delete {
                    OnDelete::Protect => {
                        return Err(StoreError::Conflict(format!(
                            "Cannot delete {} {}: {} {} still refer to it through \"{}\".",
                            rec.model.verbose_name,
                            human_readable_name(&rec),
                            rows.len(),
                            ref_model.verbose_name_plural,
                            field.name
                        )));
                    }
                    OnDelete::SetNull => {
                        for values in rows {
                            let child = Record {
                                model: ref_model,
                                values,
                            };
                            plan.push(DeleteStep::Clear {
                                model: ref_model,
                                id: child.id(),
                                field: field.name.clone(),
                            });
                        }
                    }
                    OnDelete::Cascade => {
                        for values in rows {
                            let child = Record {
                                model: ref_model,
                                values,
                            };
                            self.plan_delete(child, plan, depth + 1).await?;
                        }
                    }
                }
            }
            plan.push(DeleteStep::Remove(rec));
            if let Some(parent) = counterpart.filter(|c| c.model.extends.is_none()) {
                self.plan_delete(parent, plan, depth + 1).await?;
            }
            Ok(())
        })
    }

    /// Remove one row: soft when a synchronizer observes the model or when rows still refer to it
    /// (children awaiting purge), hard otherwise. `audience`: who could see it (for the event).
    pub(crate) async fn remove(
        &mut self,
        rec: Record,
        audience: Option<Arc<Vec<i64>>>,
    ) -> Result<(), StoreError> {
        let model = rec.model;
        let id = rec.id();
        let soft = model.field_named("deleted").is_some()
            && (self.store.is_observed(&model.name) || self.has_referrers(model, id).await?);
        if soft {
            let mut sql = Sql::new(format!("UPDATE {} SET deleted = ", model.table()));
            sql.bind(Value::Bool(true));
            sql.push(", enacted = NULL, policed = NULL, row_version = row_version + 1 WHERE id = ");
            sql.bind(Value::Int(id));
            self.execute(&sql).await?;
        } else {
            let mut sql = Sql::new(format!("DELETE FROM {} WHERE id = ", model.table()));
            sql.bind(Value::Int(id));
            self.execute(&sql).await.map_err(|e| match e {
                StoreError::Db(ref d) if constraint_violation(d) == Some(ConstraintViolation::ForeignKey) => {
                    StoreError::Conflict(format!("{} {id} is still referred to.", model.verbose_name))
                }
                e => e,
            })?;
        }
        // A member leaving a slice takes their key out of its instances, which are enacted
        // again (the policies see new and changed privileges; a removed one is gone before they
        // look).
        if model.name == "SlicePrivilege"
            && let Some(slice) = rec.get_int("slice")
        {
            let mut filter = Sql::new("slice_id = ");
            filter.bind(Value::Int(slice));
            self.resync_rows(self.store.model("Instance"), filter).await?;
        }
        self.announce(
            Change {
                kind: ChangeKind::Delete,
                before: Some(rec),
                after: None,
            },
            audience,
            serde_json::Map::new(),
        )
        .await
    }

    /// Whether any row (live or awaiting purge) still points at `model` `id`.
    pub(crate) async fn has_referrers(&mut self, model: &Model, id: i64) -> Result<bool, StoreError> {
        let reg = self.store.registry();
        for (ref_model, field) in reg.referrers(&model.name) {
            let mut sql = Sql::new(format!(
                "SELECT 1 FROM {} WHERE {} = ",
                ref_model.table(),
                field.column()
            ));
            sql.bind(Value::Int(id));
            sql.push(" LIMIT 1");
            if !self.fetch(&sql, &[SqlType::Int]).await?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Remove a soft-deleted row for good (after the backend delete succeeded). System only.
    pub async fn purge(&mut self, model: &'static Model, id: i64) -> Result<(), StoreError> {
        if self.actor != Actor::System {
            return Err(StoreError::PermissionDenied(
                "only the system purges objects".into(),
            ));
        }
        if self.has_referrers(model, id).await? {
            return Err(StoreError::Conflict(format!(
                "{} {id} still has children awaiting purge",
                model.name
            )));
        }
        let mut sql = Sql::new(format!("DELETE FROM {} WHERE id = ", model.table()));
        sql.bind(Value::Int(id));
        self.execute(&sql).await?;
        Ok(())
    }
}

pub(crate) enum DeleteStep {
    Remove(Record),
    Clear {
        model: &'static Model,
        id: i64,
        field: String,
    },
}
