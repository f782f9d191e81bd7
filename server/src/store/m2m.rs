//! Many-to-many relations kept in named through models (`Site.deployments` through
//! `SiteDeployment`). Writing a list of ids adds and removes through rows, as XOS's serializer did;
//! reading shows the ids (or hyperlinks) of the live through rows.

use super::{Actor, FieldErrors, Store, StoreError, Unit};
use crate::db::{Sql, Value};
use app::registry::{ManyToMany, Model, SqlType};
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
    let reg = app::registry::registry();
    let mut rest = input.clone();
    let mut writes = Vec::new();
    let mut errors = FieldErrors::new();
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
        fk.kind = app::registry::FieldKind::ForeignKey {
            to: relation.to.clone(),
            related_name: String::new(),
            on_delete: app::registry::OnDelete::Cascade,
        };
        let mut ids = Vec::new();
        for item in &items {
            match super::validate::parse_value(reg, &fk, item) {
                Ok(Value::Int(id)) if !ids.contains(&id) => ids.push(id),
                Ok(Value::Int(_)) => {}
                Ok(_) => errors
                    .entry(relation.name.clone())
                    .or_default()
                    .push("This list may not contain null.".into()),
                Err(m) => errors.entry(relation.name.clone()).or_default().push(m),
            }
        }
        writes.push(M2mWrite { relation, ids });
    }
    if errors.is_empty() {
        Ok((rest, writes))
    } else {
        Err(StoreError::Invalid(errors))
    }
}

impl Unit {
    /// Make object `id`'s relation hold exactly `ids` (targets must exist), adding and removing
    /// through rows. Permission was checked on the owner; the through rows are written as the
    /// system, as XOS's serializer wrote them.
    pub async fn set_m2m(
        &mut self,
        model: &'static Model,
        id: i64,
        write: &M2mWrite,
    ) -> Result<(), StoreError> {
        let reg = self.store.registry();
        let relation = write.relation;
        let (source, target) = reg
            .through_fields(&model.name, relation)
            .expect("registry checked");
        let through = reg.model(&relation.through).expect("registry checked");
        let target_model = reg.model(&relation.to).expect("registry checked");
        let mut errors = Vec::new();
        for &t in &write.ids {
            let mut sql = Sql::new(format!("SELECT id FROM {} WHERE id = ", target_model.table()));
            sql.bind(Value::Int(t));
            if target_model.field_named("deleted").is_some() {
                sql.push(" AND NOT deleted");
            }
            if self.fetch(&sql, &[SqlType::Int]).await?.is_empty() {
                errors.push(format!("Invalid pk \"{t}\" - object does not exist."));
            }
        }
        if !errors.is_empty() {
            let mut e = FieldErrors::new();
            e.insert(relation.name.clone(), errors);
            return Err(StoreError::Invalid(e));
        }
        let mut sql = Sql::new(format!(
            "SELECT id, {} FROM {} WHERE {} = ",
            target.column(),
            through.table(),
            source.column()
        ));
        sql.bind(Value::Int(id));
        sql.push(" AND NOT deleted ORDER BY id");
        let existing = self.fetch(&sql, &[SqlType::Int, SqlType::Int]).await?;
        let saved = std::mem::replace(&mut self.actor, Actor::System);
        let result = async {
            for row in &existing {
                let (row_id, t) = (row[0].as_int().unwrap_or(0), row[1].as_int().unwrap_or(0));
                if !write.ids.contains(&t) {
                    Box::pin(self.delete(through, row_id)).await?;
                }
            }
            for &t in &write.ids {
                if !existing.iter().any(|r| r[1].as_int() == Some(t)) {
                    let mut input = Map::new();
                    input.insert(source.name.clone(), Json::from(id));
                    input.insert(target.name.clone(), Json::from(t));
                    Box::pin(self.create(through, &input)).await?;
                }
            }
            Ok(())
        }
        .await;
        self.actor = saved;
        result
    }
}

impl Store {
    /// The many-to-many ids of the given objects, one query per relation.
    pub async fn m2m_values(&self, model: &'static Model, ids: &[i64]) -> Result<M2mValues, StoreError> {
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
            sql.push(") ORDER BY id");
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
