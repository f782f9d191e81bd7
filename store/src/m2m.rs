//! Many-to-many relations kept in named through models (`Site.deployments` through
//! `SiteDeployment`). Writing a list of ids adds and removes through rows, as XOS's serializer did;
//! reading shows the ids (or hyperlinks) of the live through rows.

use super::{Actor, FieldErrors, Store, StoreError, Unit};
use crate::db::{Sql, Value};
use registry::{ManyToMany, Model, SqlType};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

/// A many-to-many write taken out of an input object: the relation and the ids it should hold.
pub struct M2mWrite {
    pub relation: &'static ManyToMany,
    pub ids: Vec<i64>,
}

/// The ids each object of a page holds in each many-to-many relation: name → (object id → ids).
pub type M2mValues = Vec<(String, HashMap<i64, Vec<i64>>)>;

/// Remove many-to-many keys from `input`, parsing their id lists (ids, numeric strings or
/// hyperlinks of the target collection).
pub fn take_m2m(
    model: &'static Model,
    input: &Map<String, Json>,
) -> Result<(Map<String, Json>, Vec<M2mWrite>), StoreError> {
    let mut errors = FieldErrors::new();
    let out = split_m2m(model, input, &mut errors);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// [`take_m2m`], adding what is wrong to `errors` (so one answer names every bad field).
pub fn split_m2m(
    model: &'static Model,
    input: &Map<String, Json>,
    errors: &mut FieldErrors,
) -> (Map<String, Json>, Vec<M2mWrite>) {
    let reg = registry::registry();
    let mut rest = input.clone();
    let mut writes = Vec::new();
    for relation in &model.many_to_many {
        let Some(v) = rest.remove(&relation.name) else {
            continue;
        };
        let items = match v {
            Json::Array(items) => items,
            Json::Null => Vec::new(),
            other => {
                let kind = if other.is_string() { "str" } else { "non-list" };
                errors
                    .entry(relation.name.clone())
                    .or_default()
                    .push(format!("Expected a list of items but got type \"{kind}\"."));
                continue;
            }
        };
        let target = reg.model(&relation.to).expect("registry checked");
        let id_field = target.field_named("id").expect("every model has an id");
        let mut fk = id_field.clone();
        fk.kind = registry::FieldKind::ForeignKey {
            to: relation.to.clone(),
            related_name: String::new(),
            on_delete: registry::OnDelete::Cascade,
        };
        let mut ids = Vec::new();
        let mut bad = false;
        for item in &items {
            match super::validate::parse_value(reg, &fk, item) {
                Ok(Value::Int(id)) if !ids.contains(&id) => ids.push(id),
                Ok(Value::Int(_)) => {}
                Ok(_) => {
                    bad = true;
                    errors
                        .entry(relation.name.clone())
                        .or_default()
                        .push("This list may not contain null.".into())
                }
                Err(m) => {
                    bad = true;
                    errors.entry(relation.name.clone()).or_default().push(m)
                }
            }
        }
        if !bad {
            writes.push(M2mWrite { relation, ids });
        }
    }
    (rest, writes)
}

/// The change log's `{"old": […], "new": […]}` of a relation.
pub fn diff_json(old: &[i64], new: &[i64]) -> Json {
    serde_json::json!({"old": old, "new": new})
}

impl Unit {
    /// Every id a many-to-many write names must be an object the actor may see (an invisible
    /// one reads exactly like one that does not exist).
    pub async fn check_m2m_targets(
        &mut self,
        writes: &[M2mWrite],
        errors: &mut FieldErrors,
    ) -> Result<(), StoreError> {
        let reg = self.store.registry();
        for w in writes {
            let target = reg.model(&w.relation.to).expect("registry checked");
            for &t in &w.ids {
                if !self.reference_exists(target, t).await? {
                    errors
                        .entry(w.relation.name.clone())
                        .or_default()
                        .push(format!("Invalid pk \"{t}\" - object does not exist."));
                }
            }
        }
        Ok(())
    }

    /// Make object `id`'s relation hold exactly `ids` (checked by [`Unit::check_m2m_targets`]),
    /// adding and removing through rows. The rows are written as the caller: each one passes
    /// the through model's own create or delete permission and is logged under the caller's
    /// name. Returns the change log's diff when the relation changed.
    pub async fn set_m2m(
        &mut self,
        model: &'static Model,
        id: i64,
        write: &M2mWrite,
    ) -> Result<Option<Json>, StoreError> {
        let reg = self.store.registry();
        let relation = write.relation;
        let (source, target) = reg
            .through_fields(&model.name, relation)
            .expect("registry checked");
        let through = reg.model(&relation.through).expect("registry checked");
        let mut sql = Sql::new(format!(
            "SELECT id, {} FROM {} WHERE {} = ",
            target.column(),
            through.table(),
            source.column()
        ));
        sql.bind(Value::Int(id));
        sql.push(" AND NOT deleted ORDER BY id");
        let existing = self.fetch(&sql, &[SqlType::Int, SqlType::Int]).await?;
        let old: Vec<i64> = existing.iter().filter_map(|r| r[1].as_int()).collect();
        // The caller's list names only what it sees: links to objects it cannot see were not
        // shown to it and stay as they are.
        let target_model = reg.model(&relation.to).expect("registry checked");
        let mut hidden = Vec::new();
        if !self.actor().is_root() {
            for &t in &old {
                if !write.ids.contains(&t) && !super::permissions::is_visible(self, target_model, t).await? {
                    hidden.push(t);
                }
            }
        }
        let mut changed = false;
        for row in &existing {
            let (row_id, t) = (row[0].as_int().unwrap_or(0), row[1].as_int().unwrap_or(0));
            if !write.ids.contains(&t) && !hidden.contains(&t) {
                changed = true;
                Box::pin(self.delete(through, row_id))
                    .await
                    .map_err(|e| match e {
                        // A through row the caller cannot see is one it may not remove.
                        StoreError::NotFound => StoreError::PermissionDenied(format!(
                            "You do not have permission to change the {} of this {}.",
                            relation.name, model.verbose_name
                        )),
                        e => e,
                    })?;
            }
        }
        for &t in &write.ids {
            if !old.contains(&t) {
                changed = true;
                let mut input = Map::new();
                input.insert(source.name.clone(), Json::from(id));
                input.insert(target.name.clone(), Json::from(t));
                Box::pin(self.create(through, &input)).await?;
            }
        }
        let new: Vec<i64> = hidden.iter().chain(&write.ids).copied().collect();
        Ok(changed.then(|| diff_json(&old, &new)))
    }
}

impl Store {
    /// The many-to-many ids of the given objects, one query per relation: only ids of objects
    /// `actor` may see (an id it cannot see is not shown, as it would not exist for it).
    pub async fn m2m_values(
        &self,
        actor: &Actor,
        model: &'static Model,
        ids: &[i64],
    ) -> Result<M2mValues, StoreError> {
        let reg = self.registry();
        let mut out = Vec::new();
        if ids.is_empty() {
            return Ok(model
                .many_to_many
                .iter()
                .map(|r| (r.name.clone(), HashMap::new()))
                .collect());
        }
        for relation in &model.many_to_many {
            let (source, target) = reg
                .through_fields(&model.name, relation)
                .expect("registry checked");
            let through = reg.model(&relation.through).expect("registry checked");
            let mut sql = Sql::new(format!(
                "SELECT {}, {} FROM {} WHERE NOT deleted AND {} IN (",
                source.column(),
                target.column(),
                through.table(),
                source.column()
            ));
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(Value::Int(*id));
            }
            sql.push(")");
            let target_model = reg.model(&relation.to).expect("registry checked");
            if !actor.is_root() && !super::permissions::visible_to_all(target_model) {
                sql.push(&format!(
                    " AND {} IN (SELECT t.id FROM {} t WHERE 1 = 1",
                    target.column(),
                    target_model.table()
                ));
                super::permissions::visible(actor, target_model, &mut sql);
                sql.push(")");
            }
            sql.push(" ORDER BY id");
            let mut map: HashMap<i64, Vec<i64>> = HashMap::new();
            for row in self.db().fetch(&sql, &[SqlType::Int, SqlType::Int]).await? {
                if let (Some(s), Some(t)) = (row[0].as_int(), row[1].as_int()) {
                    map.entry(s).or_default().push(t);
                }
            }
            out.push((relation.name.clone(), map));
        }
        Ok(out)
    }
}
