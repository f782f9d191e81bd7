//! A unit of work: one transaction acting as one actor, and the one write path through it
//! (create, update, and the checks they run in DRF's order).

mod delete;
mod status;

pub use status::StatusUpdate;

use crate::db::{ConstraintViolation, Row, Sql, Tx, Value, constraint_violation};
use crate::decode::{decode_fields, finish_draft, merge_errors};
use crate::query::append_sql;
use crate::query::{live_and_visible, select_sql, types};
use crate::rules::{self, Phase};
use crate::{
    Actor, Change, ChangeEvent, ChangeKind, FieldErrors, Notification, Op, Record, Store, StoreError, m2m,
    permissions, validate,
};
use crate::{WriteHook, changelog};
use chrono::{DateTime, Utc};
use registry::fields::user;
use registry::{FieldKind, Model, SqlType};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What [`Unit::savepoint`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Savepoint {
    Begin,
    Release,
    Rollback,
}

/// A unit of work: one transaction, acting as one actor.
pub struct Unit {
    pub(crate) store: Store,
    pub(crate) tx: Option<Tx>,
    pub(crate) actor: Actor,
    pub(crate) events: Vec<ChangeEvent>,
    pub(crate) now: DateTime<Utc>,
    pub(crate) depth: u32,
    /// Opened by [`Store::begin_read`]: takes no row locks.
    pub(crate) read_only: bool,
}

/// How deep hooks may nest writes (a policy creating objects whose policies create objects…).
const MAX_HOOK_DEPTH: u32 = 8;

impl Unit {
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
    pub fn store(&self) -> &Store {
        &self.store
    }
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The SQL dialect of this unit's database.
    pub fn dialect(&mut self) -> crate::db::Dialect {
        self.tx().dialect()
    }

    pub(crate) fn tx(&mut self) -> &mut Tx {
        self.tx.as_mut().expect("unit of work already finished")
    }

    /// Run a query inside this unit's transaction.
    pub async fn fetch(&mut self, sql: &Sql, types: &[SqlType]) -> Result<Vec<Row>, StoreError> {
        Ok(self.tx().fetch(sql, types).await?)
    }

    /// Run a statement inside this unit's transaction (the store's own writes only: callers
    /// outside write through `create`/`update`/`delete`, `set_status`, [`Unit::savepoint`] and
    /// [`Unit::repolice`]).
    pub(crate) async fn execute(&mut self, sql: &Sql) -> Result<u64, StoreError> {
        Ok(self.tx().execute(sql).await?)
    }

    /// A savepoint inside the unit (`name`: letters and `_`), so a failed part of a unit can be
    /// undone alone ([`Savepoint::Rollback`]) while the unit goes on (TOSCA: one per node).
    pub async fn savepoint(&mut self, name: &str, op: Savepoint) -> Result<(), StoreError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
            return Err(StoreError::field(
                "savepoint",
                format!("bad savepoint name {name:?}"),
            ));
        }
        let sql = match op {
            Savepoint::Begin => format!("SAVEPOINT {name}"),
            Savepoint::Release => format!("RELEASE SAVEPOINT {name}"),
            Savepoint::Rollback => format!("ROLLBACK TO SAVEPOINT {name}"),
        };
        self.execute(&Sql::new(sql)).await.map(|_| ())
    }

    /// Make the model policies run again for the rows of `model` that `filter` (an SQL condition
    /// on the table, unaliased) selects: their `policed_version` goes back to zero. System only:
    /// it is a status write, not a change.
    pub async fn repolice(&mut self, model: &'static Model, filter: Sql) -> Result<u64, StoreError> {
        if self.actor != Actor::System {
            return Err(StoreError::PermissionDenied(
                "re-policing is for the synchronizer".into(),
            ));
        }
        let mut sql = Sql::new(format!("UPDATE {} SET policed_version = 0 WHERE ", model.table()));
        append_sql(&mut sql, &filter);
        self.execute(&sql).await
    }

    /// Commit and publish the unit's change events.
    pub async fn commit(mut self) -> Result<Vec<ChangeEvent>, StoreError> {
        if let Some(channel) = self.store.inner.notify_channel.clone()
            && !self.events.is_empty()
        {
            // Delivered by Postgres exactly when the commit is, to every listening process.
            // Payloads stay under Postgres's 8000-byte limit.
            let payloads = Notification::payloads(&self.store.inner.origin, &self.events, 7000);
            for payload in payloads {
                let mut sql = Sql::new("SELECT pg_notify(");
                sql.bind(Value::Text(channel.clone()));
                sql.push(", ").bind(Value::Text(payload));
                sql.push(")::text");
                self.fetch(&sql, &[SqlType::Text]).await?;
            }
        }
        let tx = self.tx.take().expect("unit of work already finished");
        tx.commit().await?;
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            // Before anyone hears of the change (and before this commit returns to its caller).
            if events.iter().any(ChangeEvent::touches_credentials) {
                self.store.inner.auth_generation.fetch_add(1, Ordering::AcqRel);
            }
            self.store.inner.generation.fetch_add(1, Ordering::AcqRel);
        }
        for e in &events {
            let _ = self.store.inner.events.send(e.clone());
        }
        Ok(events)
    }

    /// Abandon the unit: nothing it wrote is kept.
    pub async fn rollback(mut self) -> Result<(), StoreError> {
        if let Some(tx) = self.tx.take() {
            tx.rollback().await?;
        }
        Ok(())
    }

    /// Load one live object, whether or not the actor may see it.
    pub async fn load(&mut self, model: &'static Model, id: i64) -> Result<Record, StoreError> {
        let mut sql = select_sql(model);
        sql.push(" WHERE t.id = ").bind(Value::Int(id));
        if model.field_named("deleted").is_some() {
            sql.push(" AND NOT t.deleted");
        }
        if !self.read_only && self.tx().dialect() == crate::db::Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        let rows = self.fetch(&sql, &types(model)).await?;
        rows.into_iter()
            .next()
            .map(|values| Record { model, values })
            .ok_or(StoreError::NotFound)
    }

    /// Load one object the actor may see (404 otherwise, so invisible objects do not leak).
    pub(crate) async fn load_visible(
        &mut self,
        model: &'static Model,
        id: i64,
    ) -> Result<Record, StoreError> {
        let mut sql = Sql::new(format!("SELECT t.id FROM {} t WHERE t.id = ", model.table()));
        sql.bind(Value::Int(id));
        live_and_visible(&self.actor, model, &mut sql);
        if self.fetch(&sql, &[SqlType::Int]).await?.is_empty() {
            return Err(StoreError::NotFound);
        }
        self.load(model, id).await
    }

    /// Create an object from API-shaped input.
    ///
    /// The order is DRF's: whether the actor may create objects of this model at all (403
    /// before a word about the body), then every field error at once (format, choices,
    /// required, foreign keys that do not exist or that the actor cannot see, unique values),
    /// then the permission on this object's values, then the model's own rules.
    pub async fn create(
        &mut self,
        model: &'static Model,
        input: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Record, StoreError> {
        self.create_with(model, input, &[]).await
    }

    /// [`Unit::create`] with values the server itself computed for fields the caller may not
    /// write (an API token's key hash): everything else, permissions included, as for any
    /// create by this unit's actor, who is also the change log's author.
    pub async fn create_with(
        &mut self,
        model: &'static Model,
        input: &serde_json::Map<String, serde_json::Value>,
        computed: &[(&str, Value)],
    ) -> Result<Record, StoreError> {
        if !permissions::may_create(self, model).await? {
            return Err(StoreError::PermissionDenied(format!(
                "You do not have permission to create this {}.",
                model.verbose_name
            )));
        }
        let mut errors = FieldErrors::new();
        let (input, m2m) = m2m::split_m2m(model, input, &mut errors);
        let mut draft = validate::defaults(model, self.now);
        let mut set = self.decode_into(model, &input, &mut draft, true, &mut errors);
        for (name, value) in computed {
            let i = model
                .fields
                .iter()
                .position(|f| f.name == *name)
                .ok_or_else(|| StoreError::field(name, "Unknown field."))?;
            draft[i] = Some(value.clone());
            set.push(i);
        }
        let derived = rules::before_write(self, model, None, &mut draft, &mut set, Phase::Derive).await?;
        merge_errors(&mut errors, derived);
        let values = finish_draft(model, draft, None, &mut errors);
        let after = Record { model, values };
        let every_field: Vec<usize> = (0..model.fields.len()).collect();
        self.check_references(&after, &every_field, None, &mut errors)
            .await?;
        self.check_m2m_targets(&m2m, &mut errors).await?;
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        permissions::check_write(self, Op::Create, None, &after, &set).await?;
        self.check_rules(model, None, &after, &mut set).await?;
        let mut after = after;
        hash_passwords(&mut after, &set)?;
        if let Some(parent) = self.parent_of(model) {
            // An extending model's row is also a parent row: that one first, for the id.
            match self.create_parent_row(parent, &after, &mut errors).await? {
                Some(id) => after.values[0] = Value::Int(id),
                None => return Err(StoreError::Invalid(errors)),
            }
        }
        let id = self.insert(&after).await?;
        after.values[0] = Value::Int(id);
        let mut m2m_log = serde_json::Map::new();
        for w in &m2m {
            if !w.ids.is_empty() {
                m2m_log.insert(w.relation.name.clone(), m2m::diff_json(&[], &w.ids));
            }
        }
        self.announce(
            Change {
                kind: ChangeKind::Create,
                before: None,
                after: Some(after.clone()),
            },
            None,
            m2m_log,
        )
        .await?;
        for w in &m2m {
            self.set_m2m(model, id, w).await?;
        }
        Ok(after)
    }

    /// Update an object from API-shaped input; `partial` is PATCH (no required-field check).
    /// A caller who may not change the object at all gets 403 (404 when it cannot see it)
    /// before anything about the body; then the order of [`Unit::create`].
    pub async fn update(
        &mut self,
        model: &'static Model,
        id: i64,
        input: &serde_json::Map<String, serde_json::Value>,
        partial: bool,
    ) -> Result<Record, StoreError> {
        let before = self.load_visible(model, id).await?;
        permissions::check_write(self, Op::Update, Some(&before), &before, &[]).await?;
        let mut errors = FieldErrors::new();
        let (mut input, m2m) = m2m::split_m2m(model, input, &mut errors);
        let old_password = match model.name.as_str() {
            "User" => input
                .remove("old_password")
                .map(|v| v.as_str().unwrap_or_default().to_string()),
            _ => None,
        };
        let mut draft: Vec<Option<Value>> = before.values.iter().cloned().map(Some).collect();
        let mut set = self.decode_into(model, &input, &mut draft, !partial, &mut errors);
        let derived =
            rules::before_write(self, model, Some(&before), &mut draft, &mut set, Phase::Derive).await?;
        merge_errors(&mut errors, derived);
        let values = finish_draft(model, draft, Some(&before), &mut errors);
        let mut after = Record { model, values };
        let changed: Vec<usize> = set
            .iter()
            .copied()
            .filter(|&i| after.values[i] != before.values[i])
            .collect();
        self.check_references(&after, &changed, Some(id), &mut errors)
            .await?;
        self.check_m2m_targets(&m2m, &mut errors).await?;
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        permissions::check_write(self, Op::Update, Some(&before), &after, &changed).await?;
        self.check_rules(model, Some(&before), &after, &mut set).await?;
        if changed
            .iter()
            .any(|&i| matches!(model.fields[i].kind, FieldKind::Password))
        {
            let stored = before.opt(user::PASSWORD).unwrap_or_default();
            permissions::check_old_password(&self.actor, stored, old_password).await?;
        }
        let mut m2m_log = serde_json::Map::new();
        for w in &m2m {
            if let Some(diff) = self.set_m2m(model, id, w).await? {
                m2m_log.insert(w.relation.name.clone(), diff);
            }
        }
        if changed.is_empty() {
            if !m2m_log.is_empty() {
                // Only the relations changed: the owner's entry in the change log says so.
                changelog::record_extra(self, ChangeKind::Update, Some(&before), Some(&before), m2m_log)
                    .await?;
                self.events
                    .push(ChangeEvent::new(model.name.clone(), id, ChangeKind::Update));
            }
            return Ok(before);
        }
        hash_passwords(&mut after, &changed)?;
        self.write_update(&mut after, &changed).await?;
        self.mirror_update(&after, &changed).await?;
        self.announce(
            Change {
                kind: ChangeKind::Update,
                before: Some(before),
                after: Some(after.clone()),
            },
            None,
            m2m_log,
        )
        .await?;
        Ok(after)
    }

    /// The model's checking rules on a valid, permitted object (400 with their messages).
    pub(crate) async fn check_rules(
        &mut self,
        model: &'static Model,
        before: Option<&Record>,
        after: &Record,
        set: &mut Vec<usize>,
    ) -> Result<(), StoreError> {
        let mut draft: Vec<Option<Value>> = after.values.iter().cloned().map(Some).collect();
        let errors = rules::before_write(self, model, before, &mut draft, set, Phase::Check).await?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Invalid(errors))
        }
    }

    /// Set fields by name on an existing object as the system (the store's own bookkeeping).
    pub(crate) async fn update_fields(
        &mut self,
        model: &'static Model,
        id: i64,
        fields: &[(&str, Value)],
    ) -> Result<Record, StoreError> {
        let before = self.load(model, id).await?;
        let mut after = before.clone();
        let mut changed = Vec::new();
        for (name, v) in fields {
            let i = model
                .fields
                .iter()
                .position(|f| f.name == *name)
                .ok_or(StoreError::NotFound)?;
            if after.values[i] != *v {
                after.values[i] = v.clone();
                changed.push(i);
            }
        }
        if changed.is_empty() {
            return Ok(before);
        }
        self.write_update(&mut after, &changed).await?;
        self.mirror_update(&after, &changed).await?;
        self.announce(
            Change {
                kind: ChangeKind::Update,
                before: Some(before),
                after: Some(after.clone()),
            },
            None,
            serde_json::Map::new(),
        )
        .await?;
        Ok(after)
    }
}

impl Unit {
    /// Apply input keys to a draft; returns the indexes of fields the input set, adding what
    /// is wrong to `errors`.
    pub(crate) fn decode_into(
        &self,
        model: &'static Model,
        input: &serde_json::Map<String, serde_json::Value>,
        draft: &mut [Option<Value>],
        full: bool,
        errors: &mut FieldErrors,
    ) -> Vec<usize> {
        let system = self.actor == Actor::System;
        decode_fields(self.store.registry(), model, input, draft, full, system, errors)
    }
}

impl Unit {
    /// Foreign keys must point at live objects the actor may see (an invisible id reads exactly
    /// like one that does not exist); unique values must be free (ignoring deleted rows). Fields
    /// that already have an error are not looked at again.
    pub(crate) async fn check_references(
        &mut self,
        rec: &Record,
        changed: &[usize],
        self_id: Option<i64>,
        errors: &mut FieldErrors,
    ) -> Result<(), StoreError> {
        let model = rec.model;
        let reg = self.store.registry();
        for &i in changed {
            let f = &model.fields[i];
            let v = &rec.values[i];
            if v.is_null() || errors.contains_key(&f.name) {
                continue;
            }
            if let Some(target) = f.fk_target().and_then(|t| reg.model(t)) {
                let id = v.as_int().unwrap_or_default();
                if !self.reference_exists(target, id).await? {
                    errors
                        .entry(f.name.clone())
                        .or_default()
                        .push(format!("Invalid pk \"{id}\" - object does not exist."));
                    continue;
                }
            }
            if f.unique && self.is_taken(model, &[(f.column(), v.clone())], self_id).await? {
                let msg = f.message("unique").map(str::to_string).unwrap_or_else(|| {
                    format!(
                        "{} with this {} already exists.",
                        model.verbose_name, f.verbose_name
                    )
                });
                errors.entry(f.name.clone()).or_default().push(msg);
            }
        }
        for set in &model.unique_together {
            let idx: Vec<usize> = set
                .iter()
                .filter_map(|n| model.fields.iter().position(|f| &f.name == n))
                .collect();
            if !idx.iter().any(|i| changed.contains(i))
                || idx.iter().any(|&i| errors.contains_key(&model.fields[i].name))
            {
                continue;
            }
            let cols: Vec<(String, Value)> = idx
                .iter()
                .map(|&i| (model.fields[i].column(), rec.values[i].clone()))
                .collect();
            if cols.iter().any(|(_, v)| v.is_null()) {
                continue;
            }
            if self.is_taken(model, &cols, self_id).await? {
                errors
                    .entry("non_field_errors".into())
                    .or_default()
                    .push(format!("The fields {} must make a unique set.", set.join(", ")));
            }
        }
        Ok(())
    }

    /// Whether a reference to `target` `id` may be written by this unit's actor: the object is
    /// live and, for a user who is not an admin, visible to them.
    pub(crate) async fn reference_exists(
        &mut self,
        target: &'static Model,
        id: i64,
    ) -> Result<bool, StoreError> {
        if self.actor.is_root() {
            let mut sql = Sql::new(format!("SELECT id FROM {} WHERE id = ", target.table()));
            sql.bind(Value::Int(id));
            if target.field_named("deleted").is_some() {
                sql.push(" AND NOT deleted");
            }
            return Ok(!self.fetch(&sql, &[SqlType::Int]).await?.is_empty());
        }
        permissions::is_visible(self, target, id).await
    }

    pub(crate) async fn is_taken(
        &mut self,
        model: &Model,
        cols: &[(String, Value)],
        self_id: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut sql = Sql::new(format!("SELECT id FROM {} WHERE 1=1", model.table()));
        for (c, v) in cols {
            sql.push(&format!(" AND {c} = ")).bind(v.clone());
        }
        if model.field_named("deleted").is_some() {
            sql.push(" AND NOT deleted");
        }
        if let Some(id) = self_id {
            sql.push(" AND id <> ").bind(Value::Int(id));
        }
        sql.push(" LIMIT 1");
        Ok(!self.fetch(&sql, &[SqlType::Int]).await?.is_empty())
    }

    pub(crate) async fn insert(&mut self, rec: &Record) -> Result<i64, StoreError> {
        let model = rec.model;
        let mut cols = Vec::new();
        let mut sql = Sql::default();
        let mut vals = String::new();
        for (f, v) in model.fields.iter().zip(&rec.values) {
            // The id comes from the sequence, except a child's, which is its parent row's.
            if matches!(f.kind, FieldKind::AutoId) && !(model.extends.is_some() && rec.id() > 0) {
                continue;
            }
            cols.push(f.column());
            if !vals.is_empty() {
                vals.push_str(", ");
            }
            sql.args.push(v.clone());
            vals.push_str(&format!("${}", sql.args.len()));
        }
        sql.text = format!(
            "INSERT INTO {} ({}) VALUES ({vals}) RETURNING id",
            model.table(),
            cols.join(", ")
        );
        let rows = self
            .fetch(&sql, &[SqlType::Int])
            .await
            .map_err(|e| map_constraint(model, e))?;
        rows.first()
            .and_then(|r| r[0].as_int())
            .ok_or_else(|| StoreError::Conflict("insert returned no id".into()))
    }

    pub(crate) async fn write_update(
        &mut self,
        rec: &mut Record,
        changed: &[usize],
    ) -> Result<(), StoreError> {
        let model = rec.model;
        let mut sql = Sql::new(format!("UPDATE {} SET ", model.table()));
        let mut first = true;
        for &i in changed {
            let f = &model.fields[i];
            if !first {
                sql.push(", ");
            }
            first = false;
            sql.push(&format!("{} = ", f.column()))
                .bind(rec.values[i].clone());
        }
        if let Some(i) = model
            .fields
            .iter()
            .position(|f| matches!(f.kind, FieldKind::DateTime { auto_now: true, .. }))
        {
            sql.push(&format!(", {} = ", model.fields[i].name))
                .bind(Value::Time(self.now));
            rec.values[i] = Value::Time(self.now);
        }
        if let Some(i) = model.fields.iter().position(|f| f.name == "row_version") {
            sql.push(", row_version = row_version + 1");
            if let Value::Int(v) = rec.values[i] {
                rec.values[i] = Value::Int(v + 1);
            }
        }
        sql.push(" WHERE id = ").bind(Value::Int(rec.id()));
        self.execute(&sql).await.map_err(|e| map_constraint(model, e))?;
        Ok(())
    }

    /// Announce a write: queue its change event (published when the unit commits), log it (with
    /// `extra` entries) and run the hooks. Every create, update and delete ends here.
    pub(crate) async fn announce(
        &mut self,
        change: Change,
        audience: Option<Arc<Vec<i64>>>,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StoreError> {
        let rec = change
            .after
            .as_ref()
            .or(change.before.as_ref())
            .expect("a change has a record");
        let mut event = ChangeEvent::new(rec.model.name.clone(), rec.id(), change.kind);
        event.audience = audience;
        self.events.push(event);
        self.run_hooks_logged(change, extra).await
    }

    /// Log the change (with `extra` entries: many-to-many changes of the same write), then run
    /// the hooks.
    pub(crate) async fn run_hooks_logged(
        &mut self,
        change: Change,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StoreError> {
        changelog::record_extra(
            self,
            change.kind,
            change.before.as_ref(),
            change.after.as_ref(),
            extra,
        )
        .await?;

        let hooks: Vec<Arc<dyn WriteHook>> = self.store.inner.hooks.read().expect("hooks lock").clone();
        if hooks.is_empty() {
            return Ok(());
        }
        if self.depth >= MAX_HOOK_DEPTH {
            return Err(StoreError::Conflict("write hooks nested too deeply".into()));
        }
        self.depth += 1;
        let mut result = Ok(());
        for h in hooks {
            result = h.after_write(self, &change).await;
            if result.is_err() {
                break;
            }
        }
        self.depth -= 1;
        result
    }
}

/// Turn a constraint the database refused into a field error (the race after our own checks).
fn map_constraint(model: &Model, e: StoreError) -> StoreError {
    let StoreError::Db(d) = &e else { return e };
    match constraint_violation(d) {
        Some(ConstraintViolation::Unique(col)) => {
            let field = col
                .and_then(|c| {
                    model
                        .fields
                        .iter()
                        .find(|f| f.column_name().eq_ignore_ascii_case(&c))
                        .map(|f| f.name.clone())
                })
                .unwrap_or_else(|| "non_field_errors".into());
            StoreError::field(
                &field,
                format!("{} with this {field} already exists.", model.verbose_name),
            )
        }
        Some(ConstraintViolation::ForeignKey) => {
            StoreError::field("non_field_errors", "A referenced object does not exist.")
        }
        None => e,
    }
}

/// Replace written passwords by their argon2 hashes.
fn hash_passwords(rec: &mut Record, changed: &[usize]) -> Result<(), StoreError> {
    for &i in changed {
        if matches!(rec.model.fields[i].kind, FieldKind::Password)
            && let Value::Text(plain) = &rec.values[i]
            && !plain.is_empty()
        {
            rec.values[i] = Value::Text(crate::password::hash(plain).map_err(|_| StoreError::Hash)?);
        }
    }
    Ok(())
}
