//! Models that extend a core model ([`registry::Extends`]): a `HelloWorldService` row is also a
//! `Service` row with the same id, as Django's multi-table inheritance kept them. Each table
//! holds every field its model has (the child's table repeats the parent's fields, so reads,
//! filters and the synchronizer's queries stay one-table); the write path keeps the two rows
//! one object:
//!
//! - create of a child: the parent row first (its id is the object's id, so ids never clash
//!   with plain parent rows), then the child row with that id;
//! - update through either: the changed fields the other has follow in the same transaction
//!   (a parent write to a child's row must also pass the child's own write check; its `kind` is
//!   fixed);
//! - delete through either: both go, with what refers to either;
//! - the synchronizer's status of a child shows on the parent row too.
//!
//! Each row's write is announced (change event, log, hooks), so caches and event streams of
//! both collections hear it.

use crate::db::{Sql, Value};
use crate::permissions::{self, Op};
use crate::{Change, ChangeKind, FieldErrors, Record, StoreError, Unit, select_sql, types};
use registry::{Model, SqlType};

impl Unit {
    /// The parent model of `model`, when it extends one.
    pub(crate) fn parent_of(&self, model: &Model) -> Option<&'static Model> {
        let ext = model.extends.as_ref()?;
        self.store.registry().model(&ext.parent)
    }

    /// The child model whose row `id` of `model` is (live or awaiting purge), if any.
    pub(crate) async fn child_of(
        &mut self,
        model: &Model,
        id: i64,
    ) -> Result<Option<&'static Model>, StoreError> {
        let reg = self.store.registry();
        let children: Vec<&'static Model> = reg.children(&model.name).collect();
        for child in children {
            let mut sql = Sql::new(format!("SELECT id FROM {} WHERE id = ", child.table()));
            sql.bind(Value::Int(id));
            if !self.fetch(&sql, &[SqlType::Int]).await?.is_empty() {
                return Ok(Some(child));
            }
        }
        Ok(None)
    }

    /// The parent row of a child about to be created: the fields the parent has, by name;
    /// every other parent field at its default.
    pub(crate) fn parent_row(&self, parent: &'static Model, child: &Record) -> Record {
        let mut values = crate::validate::defaults(parent, self.now)
            .into_iter()
            .zip(&parent.fields)
            .map(|(v, f)| v.unwrap_or(Value::Null(f.kind.sql_type())))
            .collect::<Vec<_>>();
        for (i, f) in parent.fields.iter().enumerate().skip(1) {
            if let Some(v) = child.try_get(&f.name) {
                values[i] = v.clone();
            }
        }
        Record {
            model: parent,
            values,
        }
    }

    /// Create the parent row of a new child (unique parent fields checked first, as field
    /// errors) and return its id, which the child row takes.
    pub(crate) async fn create_parent_row(
        &mut self,
        parent: &'static Model,
        child: &Record,
        errors: &mut FieldErrors,
    ) -> Result<Option<i64>, StoreError> {
        let row = self.parent_row(parent, child);
        let unique: Vec<usize> = parent
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.unique)
            .map(|(i, _)| i)
            .collect();
        self.check_references(&row, &unique, None, errors).await?;
        if !errors.is_empty() {
            return Ok(None);
        }
        let mut row = row;
        let id = self.insert(&row).await?;
        row.values[0] = Value::Int(id);
        self.announce(
            Change {
                kind: ChangeKind::Create,
                before: None,
                after: Some(row),
            },
            None,
            serde_json::Map::new(),
        )
        .await?;
        Ok(Some(id))
    }

    /// After `after` (a write of `changed` fields) the other row of the same object follows:
    /// the parent of a child, or the child of a parent. A parent write that reaches a child
    /// must also be allowed by the child's own rule, and may not change its `kind`.
    pub(crate) async fn mirror_update(
        &mut self,
        after: &Record,
        changed: &[usize],
    ) -> Result<(), StoreError> {
        let model = after.model;
        let other = match self.parent_of(model) {
            Some(parent) => Some((parent, false)),
            None => self.child_of(model, after.id()).await?.map(|c| (c, true)),
        };
        let Some((other, is_child)) = other else {
            return Ok(());
        };
        let before = match self.load(other, after.id()).await {
            Ok(r) => r,
            // The other row is already deleted (a delete in progress clears references).
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut next = before.clone();
        let mut follow = Vec::new();
        for &i in changed {
            let f = &model.fields[i];
            if let Some(j) = other.fields.iter().position(|o| o.name == f.name)
                && next.values[j] != after.values[i]
            {
                next.values[j] = after.values[i].clone();
                follow.push(j);
            }
        }
        if follow.is_empty() {
            return Ok(());
        }
        if is_child {
            if follow.iter().any(|&j| other.fields[j].name == "kind") {
                return Err(StoreError::field(
                    "kind",
                    format!("This object is a {}; its kind is fixed.", other.verbose_name),
                ));
            }
            permissions::check_write(self, Op::Update, Some(&before), &next, &follow).await?;
        }
        self.write_update(&mut next, &follow).await?;
        self.announce(
            Change {
                kind: ChangeKind::Update,
                before: Some(before),
                after: Some(next),
            },
            None,
            serde_json::Map::new(),
        )
        .await
    }

    /// The other live row of the object `rec` is, for a delete: the parent row of a child, or
    /// the child row of a parent (whose own delete rule the actor must pass too).
    pub(crate) async fn counterpart(&mut self, rec: &Record) -> Result<Option<Record>, StoreError> {
        let other = match self.parent_of(rec.model) {
            Some(parent) => parent,
            None => match self.child_of(rec.model, rec.id()).await? {
                Some(child) => child,
                None => return Ok(None),
            },
        };
        let mut sql = select_sql(other);
        sql.push(" WHERE t.id = ").bind(Value::Int(rec.id()));
        sql.push(" AND NOT t.deleted");
        let rows = self.fetch(&sql, &types(other)).await?;
        Ok(rows
            .into_iter()
            .next()
            .map(|values| Record { model: other, values }))
    }

    /// Before deleting a parent row that is a child's: the actor must be allowed to delete
    /// the child too.
    pub(crate) async fn check_child_delete(&mut self, rec: &Record) -> Result<(), StoreError> {
        if self.parent_of(rec.model).is_some() {
            return Ok(());
        }
        if let Some(child) = self.counterpart(rec).await? {
            permissions::check_write(self, Op::Delete, Some(&child), &child, &[]).await?;
        }
        Ok(())
    }

    /// A child's status shows on its parent row too.
    pub(crate) async fn mirror_status(&mut self, model: &Model, ids: &[i64]) -> Result<(), StoreError> {
        let Some(parent) = self.parent_of(model) else {
            return Ok(());
        };
        for chunk in ids.chunks(500) {
            let mut sql = Sql::new(format!(
                "UPDATE {p} SET backend_status = (SELECT c.backend_status FROM {c} c WHERE c.id = {p}.id) WHERE id IN (",
                p = parent.table(),
                c = model.table()
            ));
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(Value::Int(*id));
            }
            sql.push(")");
            self.execute(&sql).await?;
            for id in chunk {
                self.events.push(crate::ChangeEvent::new(
                    parent.name.clone(),
                    *id,
                    ChangeKind::Status,
                ));
            }
        }
        Ok(())
    }
}
