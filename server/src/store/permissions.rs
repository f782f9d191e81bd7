//! Who may see and change what. Checked in the one write path, so REST, the admin pages and
//! TOSCA all obey the same rules.
//!
//! As in XOS: an admin who is not read-only may do everything (`can_update_root`); a read-only
//! user writes nothing; a user reads what they are related to and edits themselves, but not their
//! own `is_admin`, `is_active`, `site`, `is_staff` or `is_readonly`. Slices belong to their
//! creator. (Site and slice roles widen these rules once their models exist.)

use super::{Actor, Record, StoreError, Unit};
use crate::db::{Sql, Value};
use app::registry::Model;

/// The kind of write being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

/// Fields of their own User row that a user may not change.
const SELF_PROTECTED_USER_FIELDS: &[&str] = &["is_admin", "is_active", "site", "is_staff", "is_readonly"];

/// Restrict a query on `model` (aliased `t`) to rows the actor may see.
pub fn visible(actor: &Actor, model: &Model, sql: &mut Sql) {
    let Actor::User(p) = actor else { return };
    if p.is_admin {
        return;
    }
    match model.name.as_str() {
        "User" => {
            sql.push(" AND t.id = ").bind(Value::Int(p.id));
        }
        "Slice" => {
            sql.push(" AND t.creator_id = ").bind(Value::Int(p.id));
        }
        _ => {}
    }
}

fn deny(what: &str) -> StoreError {
    StoreError::PermissionDenied(format!("You do not have permission to {what}."))
}

/// Check a write: `before` is the stored object (update, delete), `after` the proposed one,
/// `changed` the indexes of the fields the write changes.
pub async fn check_write(
    unit: &mut Unit,
    op: Op,
    before: Option<&Record>,
    after: &Record,
    changed: &[usize],
) -> Result<(), StoreError> {
    let actor = unit.actor().clone();
    if actor.is_root() {
        return Ok(());
    }
    let Actor::User(p) = &actor else { return Ok(()) };
    let model = after.model;
    let verb = match op {
        Op::Create => "create",
        Op::Update => "change",
        Op::Delete => "delete",
    };
    let what = format!("{verb} this {}", model.verbose_name);
    if p.is_readonly {
        return Err(deny(&what));
    }
    let changed_names: Vec<&str> = changed.iter().map(|&i| model.fields[i].name.as_str()).collect();
    match (model.name.as_str(), op) {
        ("User", Op::Update) if after.id() == p.id => {
            if let Some(f) = changed_names
                .iter()
                .find(|n| SELF_PROTECTED_USER_FIELDS.contains(n))
            {
                return Err(deny(&format!("change your own {f}")));
            }
            Ok(())
        }
        ("Slice", Op::Update | Op::Delete) => {
            let owner = before.and_then(|b| b.get_int("creator"));
            if owner != Some(p.id) {
                return Err(deny(&what));
            }
            if changed_names.contains(&"creator") {
                return Err(deny("change the creator of a slice"));
            }
            Ok(())
        }
        _ => Err(deny(&what)),
    }
}
