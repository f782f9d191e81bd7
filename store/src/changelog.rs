//! The change log: who changed which object when, and the old and new values of the fields that
//! changed (secrets masked), written by the one write path inside the writing unit of work, so
//! a failed or rolled-back write (a TOSCA dry run) records nothing. Synchronizer status writes
//! (`backend_status`, `enacted`, backend ids) are bookkeeping and are not logged.

use super::{Actor, ChangeKind, FieldErrors, Record, Store, StoreError, Unit};
use crate::db::{Sql, Value};
use chrono::{DateTime, Utc};
use registry::{FieldKind, Model, SqlType};
use serde_json::{Map, Value as Json, json};

/// What a masked value reads as.
pub const MASK: &str = "********";

/// Fields whose changes say nothing about the user's intent.
const BOOKKEEPING: &[&str] = &[
    "id",
    "created",
    "updated",
    "enacted",
    "policed",
    "backend_register",
    "backend_status",
];

fn logged_fields(model: &Model) -> impl Iterator<Item = (usize, &registry::Field)> {
    model
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.hidden && !BOOKKEEPING.contains(&f.name.as_str()))
}

fn shown(f: &registry::Field, v: &Value) -> Json {
    if v.is_null() {
        return Json::Null;
    }
    if f.secret || matches!(f.kind, FieldKind::Password) {
        return Json::String(MASK.into());
    }
    match v {
        // A megabyte of service attributes need not be copied twice per save.
        Value::Text(s) if s.chars().count() > LONG => {
            let head: String = s.chars().take(LONG_HEAD).collect();
            Json::String(format!("{head}… ({} characters)", s.chars().count()))
        }
        _ => v.to_json(),
    }
}

/// Text longer than this is logged as its beginning and its length.
const LONG: usize = 1024;
const LONG_HEAD: usize = 200;

/// The `{"field": {"old": …, "new": …}}` of a change; None when nothing worth logging changed.
pub fn diff(before: Option<&Record>, after: Option<&Record>) -> Option<Map<String, Json>> {
    let model = before.or(after)?.model;
    let mut out = Map::new();
    for (i, f) in logged_fields(model) {
        let old = before.map(|r| &r.values[i]);
        let new = after.map(|r| &r.values[i]);
        let (old_json, new_json) = match (old, new) {
            (Some(o), Some(n)) if o == n => continue,
            // A create or a delete: the values that were set.
            (None, Some(n)) if n.is_null() => continue,
            (Some(o), None) if o.is_null() => continue,
            (o, n) => (
                o.map(|v| shown(f, v)).unwrap_or(Json::Null),
                n.map(|v| shown(f, v)).unwrap_or(Json::Null),
            ),
        };
        out.insert(f.name.clone(), json!({"old": old_json, "new": new_json}));
    }
    (!out.is_empty() || before.is_none() || after.is_none()).then_some(out)
}

/// Record one change in the unit's transaction; `extra` adds entries the row's own values do
/// not show (the many-to-many relations the same write changed).
pub async fn record_extra(
    unit: &mut Unit,
    kind: ChangeKind,
    before: Option<&Record>,
    after: Option<&Record>,
    extra: Map<String, Json>,
) -> Result<(), StoreError> {
    if kind == ChangeKind::Status {
        return Ok(());
    }
    let Some(rec) = after.or(before) else {
        return Ok(());
    };
    let changes = match diff(before, after) {
        Some(mut c) => {
            c.extend(extra);
            c
        }
        None if extra.is_empty() => return Ok(()),
        None => extra,
    };
    let (user_id, actor) = match unit.actor() {
        Actor::System => (Value::Null(SqlType::Int), "system".to_string()),
        Actor::User(p) => (Value::Int(p.id), p.email.clone()),
    };
    let kind = match kind {
        ChangeKind::Create => "create",
        ChangeKind::Update => "update",
        ChangeKind::Delete => "delete",
        ChangeKind::Status => unreachable!("status writes return above"),
    };
    let mut sql =
        Sql::new("INSERT INTO xos_change (at, user_id, actor, model, object_id, kind, changes) VALUES (");
    sql.bind(Value::Time(unit.now()));
    sql.push(", ").bind(user_id);
    sql.push(", ").bind(Value::Text(actor));
    sql.push(", ").bind(Value::Text(rec.model.name.clone()));
    sql.push(", ").bind(Value::Int(rec.id()));
    sql.push(", ").bind(Value::Text(kind.into()));
    sql.push(", ")
        .bind(Value::Text(Json::Object(changes).to_string()));
    sql.push(")");
    unit.execute(&sql).await?;
    Ok(())
}

/// A query of the change log (`/xos/changes/`).
#[derive(Debug, Default)]
pub struct ChangeQuery {
    pub model: Option<String>,
    pub object: Option<i64>,
    pub user: Option<i64>,
    pub kind: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub limit: i64,
    pub offset: i64,
}

/// Entries returned when no `limit` is given, and the most one request may ask for.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

impl ChangeQuery {
    /// Parse query parameters; unknown ones are ignored, bad values are field errors.
    pub fn parse(store: &Store, params: &[(String, String)]) -> Result<ChangeQuery, FieldErrors> {
        let mut q = ChangeQuery {
            limit: DEFAULT_LIMIT,
            ..Default::default()
        };
        let mut errors = FieldErrors::new();
        let mut err = |k: &str, m: String| errors.entry(k.to_string()).or_default().push(m);
        for (k, v) in params {
            match k.as_str() {
                "model" => match store
                    .registry()
                    .models
                    .iter()
                    .find(|m| m.name.eq_ignore_ascii_case(v) || m.plural == *v)
                {
                    Some(m) => q.model = Some(m.name.clone()),
                    None => err(k, format!("No model named \"{v}\".")),
                },
                "object" | "user" => match v.parse::<i64>() {
                    Ok(n) if k == "object" => q.object = Some(n),
                    Ok(n) => q.user = Some(n),
                    Err(_) => err(k, "A valid integer is required.".into()),
                },
                "kind" => match v.as_str() {
                    "create" | "update" | "delete" => q.kind = Some(v.clone()),
                    _ => err(k, "Choose one of create, update, delete.".into()),
                },
                "since" | "until" => match crate::db::parse_time(v) {
                    Some(t) if k == "since" => q.since = Some(t),
                    Some(t) => q.until = Some(t),
                    None => err(k, "An RFC 3339 time is required (2026-01-31T12:00:00Z).".into()),
                },
                "limit" => match v.parse::<i64>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                    _ => err(k, format!("A number from 1 to {MAX_LIMIT} is required.")),
                },
                "offset" => match v.parse::<i64>() {
                    Ok(n) if n >= 0 => q.offset = n,
                    _ => err(k, "A number of 0 or more is required.".into()),
                },
                _ => {}
            }
        }
        if errors.is_empty() { Ok(q) } else { Err(errors) }
    }

    fn where_sql(&self) -> Sql {
        let mut sql = Sql::new(" WHERE 1 = 1");
        if let Some(m) = &self.model {
            sql.push(" AND model = ").bind(Value::Text(m.clone()));
        }
        if let Some(o) = self.object {
            sql.push(" AND object_id = ").bind(Value::Int(o));
        }
        if let Some(u) = self.user {
            sql.push(" AND user_id = ").bind(Value::Int(u));
        }
        if let Some(k) = &self.kind {
            sql.push(" AND kind = ").bind(Value::Text(k.clone()));
        }
        if let Some(t) = self.since {
            sql.push(" AND at >= ").bind(Value::Time(t));
        }
        if let Some(t) = self.until {
            sql.push(" AND at < ").bind(Value::Time(t));
        }
        sql
    }
}

const COLUMNS: &str = "SELECT id, at, user_id, actor, model, object_id, kind, changes FROM xos_change";
const TYPES: &[SqlType] = &[
    SqlType::Int,
    SqlType::Time,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
];

fn entry(row: &[Value]) -> Json {
    json!({
        "id": row[0].to_json(),
        "at": row[1].to_json(),
        "user": row[2].to_json(),
        "actor": row[3].to_json(),
        "model": row[4].to_json(),
        "object_id": row[5].to_json(),
        "kind": row[6].to_json(),
        "changes": row[7].as_str().and_then(|s| serde_json::from_str::<Json>(s).ok()).unwrap_or(Json::Null),
    })
}

/// The entries the actor may see, newest first, and how many match in all. Admins see every
/// entry; others the entries of objects they may read now (a deleted object's history is for
/// admins), in one query, with the author's email only where they may see the author.
pub async fn list(store: &Store, actor: &Actor, q: &ChangeQuery) -> Result<(Vec<Json>, i64), StoreError> {
    let sees_all = match actor {
        Actor::System => true,
        Actor::User(p) => p.is_admin,
    };
    let filter = q.where_sql();
    if sees_all {
        let mut count = Sql::new("SELECT COUNT(*) FROM xos_change");
        super::append_sql(&mut count, &filter);
        let total = store.db().fetch(&count, &[SqlType::Int]).await?[0][0]
            .as_int()
            .unwrap_or(0);
        let mut sql = Sql::new(COLUMNS);
        super::append_sql(&mut sql, &filter);
        sql.push(" ORDER BY id DESC LIMIT ").bind(Value::Int(q.limit));
        sql.push(" OFFSET ").bind(Value::Int(q.offset));
        let rows = store.db().fetch(&sql, TYPES).await?;
        return Ok((rows.iter().map(|r| entry(r)).collect(), total));
    }
    // One query: the entries of live objects the actor may read now, as a condition per model.
    let mut visible = Sql::new(" AND (1 = 0");
    for model in &store.registry().models {
        if q.model.as_ref().is_some_and(|m| m != &model.name) {
            continue;
        }
        visible
            .push(" OR (model = ")
            .bind(Value::Text(model.name.clone()));
        visible.push(&format!(
            " AND object_id IN (SELECT t.id FROM {} t WHERE 1 = 1",
            model.table()
        ));
        if model.field_named("deleted").is_some() {
            visible.push(" AND NOT t.deleted");
        }
        super::permissions::visible(actor, model, &mut visible);
        visible.push("))");
    }
    visible.push(")");
    let mut count = Sql::new("SELECT COUNT(*) FROM xos_change");
    super::append_sql(&mut count, &filter);
    super::append_sql(&mut count, &visible);
    let total = store.db().fetch(&count, &[SqlType::Int]).await?[0][0]
        .as_int()
        .unwrap_or(0);
    let mut sql = Sql::new(COLUMNS);
    super::append_sql(&mut sql, &filter);
    super::append_sql(&mut sql, &visible);
    sql.push(" ORDER BY id DESC LIMIT ").bind(Value::Int(q.limit));
    sql.push(" OFFSET ").bind(Value::Int(q.offset));
    let rows = store.db().fetch(&sql, TYPES).await?;
    let mut entries: Vec<Json> = rows.iter().map(|r| entry(r)).collect();
    mask_actors(store, actor, &mut entries).await?;
    Ok((entries, total))
}

/// Emails are shown only to those who may see the user: an entry whose author the reader
/// cannot see names it as `user <id>`.
async fn mask_actors(store: &Store, actor: &Actor, entries: &mut [Json]) -> Result<(), StoreError> {
    let mut ids: Vec<i64> = entries.iter().filter_map(|e| e["user"].as_i64()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let users = store.registry().model("User").expect("the registry has users");
    let mut sql = Sql::new("SELECT t.id FROM core_user t WHERE t.id IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(Value::Int(*id));
    }
    sql.push(")");
    super::permissions::visible(actor, users, &mut sql);
    let seen: std::collections::HashSet<i64> = store
        .db()
        .fetch(&sql, &[SqlType::Int])
        .await?
        .iter()
        .filter_map(|r| r[0].as_int())
        .collect();
    for e in entries {
        if let Some(id) = e["user"].as_i64()
            && !seen.contains(&id)
        {
            e["actor"] = Json::String(format!("user {id}"));
        }
    }
    Ok(())
}

/// Delete entries older than `days` days (0 keeps everything); returns how many went.
pub async fn prune(store: &Store, days: u32) -> Result<u64, StoreError> {
    if days == 0 {
        return Ok(0);
    }
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
    let mut sql = Sql::new("DELETE FROM xos_change WHERE at < ");
    sql.bind(Value::Time(cutoff));
    Ok(store.db().execute(&sql).await?)
}
