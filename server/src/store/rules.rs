//! Model-level rules the registry names (`Model::rule`): checks and derived values that need
//! more than one field or a database lookup, run inside the unit of work before the write.

use super::{Actor, FieldErrors, Record, StoreError, Unit};
use crate::db::{Sql, Value};
use app::registry::{Model, SqlType};

/// Run the rules `model` declares on a draft (`before` is the stored object on update).
pub async fn before_write(
    unit: &mut Unit,
    model: &'static Model,
    before: Option<&Record>,
    draft: &mut [Option<Value>],
    changed: &mut Vec<usize>,
) -> Result<(), StoreError> {
    let idx = |name: &str| model.fields.iter().position(|f| f.name == name);
    let touched = |name: &str, changed: &[usize]| idx(name).is_some_and(|i| changed.contains(&i));
    let mut errors = FieldErrors::new();
    for rule in &model.rules {
        match rule.as_str() {
            // A slice's name starts with its site's login_base and "_" (XOS checked it on create
            // and its client on every save; we check it whenever name or site changes).
            "slice_name_prefix"
                if before.is_none() || touched("name", changed) || touched("site", changed) =>
            {
                let (Some(ni), Some(si)) = (idx("name"), idx("site")) else {
                    continue;
                };
                let (Some(Value::Text(name)), Some(Value::Int(site))) = (&draft[ni], &draft[si]) else {
                    continue;
                };
                let mut sql = Sql::new("SELECT login_base FROM core_site WHERE id = ");
                sql.bind(Value::Int(*site));
                let rows = unit.fetch(&sql, &[SqlType::Text]).await?;
                let Some(login_base) = rows.first().and_then(|r| r[0].as_str().map(str::to_string)) else {
                    continue; // the site check reports the missing site
                };
                let prefix = format!("{login_base}_");
                if !name.starts_with(&prefix) {
                    errors
                        .entry("name".into())
                        .or_default()
                        .push(format!("slice name must begin with {prefix}"));
                } else if *name == prefix {
                    errors
                        .entry("name".into())
                        .or_default()
                        .push(format!("slice name is too short (only {prefix})"));
                }
            }
            // The creator defaults to the caller on create.
            "creator_default" if before.is_none() => {
                let Some(ci) = idx("creator") else { continue };
                if matches!(draft[ci], None | Some(Value::Null(_)))
                    && let Actor::User(p) = unit.actor()
                {
                    draft[ci] = Some(Value::Int(p.id));
                    changed.push(ci);
                }
            }
            // A user's username is their email (XOS set it on every save).
            "user_username" => {
                if let (Some(ui), Some(ei)) = (idx("username"), idx("email"))
                    && let Some(email) = draft[ei].clone()
                {
                    draft[ui] = Some(email);
                    if !changed.contains(&ui) {
                        changed.push(ui);
                    }
                }
            }
            _ => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(errors))
    }
}
