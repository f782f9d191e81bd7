//! Applying a recipe: one unit of work of the store, one savepoint per node.

use crate::parse::{PropValue, Recipe, Template};
use crate::{Problem, ToscaError};
use registry::{FieldKind, Model, SqlType, ToscaEffect, ToscaLink};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap, HashSet};
use store::db::{Sql, Value};
use store::{Actor, Savepoint, Store, StoreError, Unit};

/// What a run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Create what is missing, update what differs.
    Apply,
    /// Delete the recipe's objects, in reverse dependency order.
    Delete,
}

/// What happened (or, in a dry run, would happen) to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    Delete,
    /// Not in the database (a delete of something absent, or `no-create`).
    Absent,
    /// Left alone by `no-delete`.
    Kept,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Delete => "delete",
            Action::Absent => "absent",
            Action::Kept => "kept",
        }
    }
}

/// One line of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub node: String,
    pub node_type: String,
    pub action: Action,
    /// The object's id (absent when it does not exist).
    pub id: Option<i64>,
    /// Changed properties and link rows written (`+SiteDeployment mydeployment`).
    pub changes: Vec<String>,
}

impl Entry {
    fn new(t: &Template, action: Action, id: Option<i64>, changes: Vec<String>) -> Entry {
        Entry {
            node: t.name.clone(),
            node_type: t.type_name.clone(),
            action,
            id,
            changes,
        }
    }
}

/// Run a recipe as `actor`. Every failing node is reported (`ToscaError::Problems`) and then
/// nothing is written; a dry run reports the same plan and writes nothing either way.
pub async fn run(
    store: &Store,
    actor: Actor,
    recipe: &Recipe,
    mode: Mode,
    dry_run: bool,
) -> Result<Vec<Entry>, ToscaError> {
    let mut unit = store.begin(actor).await?;
    let mut ids: HashMap<&str, Option<i64>> = HashMap::new();
    let mut failed: HashSet<&str> = HashSet::new();
    let mut problems = Vec::new();
    let mut entries = Vec::new();
    let order: Vec<&Template> = match mode {
        Mode::Apply => recipe.templates.iter().collect(),
        Mode::Delete => recipe.templates.iter().rev().collect(),
    };
    for t in order {
        if !store.is_loaded(t.model) {
            problems.push(t.problem(
                t.line,
                format!(
                    "{} is a type of the service '{}', which this configuration does not load (add it to `services` in xos.toml)",
                    t.type_name, t.model.app
                ),
            ));
            failed.insert(&t.name);
            continue;
        }
        if mode == Mode::Apply
            && let Some(dep) = t.depends_on().find(|d| failed.contains(d))
        {
            problems.push(t.problem(t.line, format!("not applied: it requires '{dep}', which failed")));
            failed.insert(&t.name);
            continue;
        }
        // A savepoint per node: a failure undoes only that node's writes, so the following
        // nodes still run and report their own problems (Postgres aborts the whole transaction
        // on an error otherwise).
        unit.savepoint("tosca_node", Savepoint::Begin).await?;
        let result = match mode {
            Mode::Apply => apply_node(&mut unit, t, &ids).await,
            Mode::Delete => delete_node(&mut unit, t).await,
        };
        match result {
            Ok(entry) => {
                unit.savepoint("tosca_node", Savepoint::Release).await?;
                ids.insert(&t.name, entry.id);
                entries.push(entry);
            }
            Err(p) => {
                unit.savepoint("tosca_node", Savepoint::Rollback).await?;
                unit.savepoint("tosca_node", Savepoint::Release).await?;
                problems.push(p);
                failed.insert(&t.name);
            }
        }
    }
    if !problems.is_empty() {
        unit.rollback().await?;
        problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        return Err(ToscaError::Problems(problems));
    }
    if dry_run {
        unit.rollback().await?;
    } else {
        unit.commit().await?;
    }
    Ok(entries)
}

/// The field objects of `model` are named by in recipes and list properties.
fn key_field(model: &Model) -> &str {
    if let Some(t) = &model.tosca {
        return &t.key;
    }
    ["name", "role"]
        .into_iter()
        .find(|k| model.field_named(k).is_some())
        .unwrap_or("id")
}

/// The live object of `model` whose key is `key`.
async fn find(unit: &mut Unit, model: &'static Model, key: &str) -> Result<Option<i64>, StoreError> {
    let field = model.field_named(key_field(model)).ok_or(StoreError::NotFound)?;
    let mut sql = Sql::new(format!(
        "SELECT id FROM {} WHERE {} = ",
        model.table(),
        field.column()
    ));
    sql.bind(Value::Text(key.to_string()));
    if model.field_named("deleted").is_some() {
        sql.push(" AND NOT deleted");
    }
    sql.push(" ORDER BY id LIMIT 1");
    let rows = unit.fetch(&sql, &[SqlType::Int]).await?;
    Ok(rows.first().and_then(|r| r[0].as_int()))
}

fn store_problem(t: &Template, e: StoreError) -> Problem {
    match e {
        StoreError::Invalid(errors) => {
            let mut line = None;
            let parts: Vec<String> = errors
                .into_iter()
                .map(|(field, messages)| {
                    let prop = t.properties.iter().find(|p| p.field == field);
                    if let Some(p) = prop {
                        line = line.or(Some(p.line));
                    }
                    let name = prop.map(|p| p.property.clone()).unwrap_or(field);
                    format!("{name}: {}", messages.join(" "))
                })
                .collect();
            t.problem(line.unwrap_or(t.line), parts.join("; "))
        }
        StoreError::PermissionDenied(m) => t.problem(t.line, format!("permission denied: {m}")),
        StoreError::NotFound => t.problem(t.line, "the object is not visible to you"),
        StoreError::Conflict(m) => t.problem(t.line, m),
        other => t.problem(t.line, other.to_string()),
    }
}

fn target_id(
    t: &Template,
    ids: &HashMap<&str, Option<i64>>,
    target: &str,
    line: usize,
) -> Result<i64, Problem> {
    ids.get(target).copied().flatten().ok_or_else(|| {
        t.problem(
            line,
            format!("requires '{target}', which does not exist (its template says no-create)"),
        )
    })
}

async fn apply_node(
    unit: &mut Unit,
    t: &Template,
    ids: &HashMap<&str, Option<i64>>,
) -> Result<Entry, Problem> {
    let model = t.model;
    let existing = find(unit, model, &t.name)
        .await
        .map_err(|e| store_problem(t, e))?;
    if existing.is_none() && t.no_create {
        return Ok(Entry::new(t, Action::Absent, None, vec!["no-create".into()]));
    }
    if let Some(id) = existing
        && t.no_update
    {
        return Ok(Entry::new(
            t,
            Action::Unchanged,
            Some(id),
            vec!["no-update".into()],
        ));
    }
    let mut input = Map::new();
    for (field, v) in &t.fixed {
        input.insert(field.clone(), v.clone());
    }
    for p in &t.properties {
        let v = match &p.value {
            PropValue::Json(j) => j.clone(),
            PropValue::Ref { model: target, key } => {
                let target_model = unit.store().model(target);
                match find(unit, target_model, key)
                    .await
                    .map_err(|e| store_problem(t, e))?
                {
                    Some(id) => Json::from(id),
                    None => {
                        return Err(t.problem(
                            p.line,
                            format!(
                                "property '{}': there is no {} '{key}'",
                                p.property, target_model.verbose_name
                            ),
                        ));
                    }
                }
            }
        };
        input.insert(p.field.clone(), v);
    }
    // field → (through model, [(column, target id, target node)])
    type Lookups<'a> = BTreeMap<&'a str, (&'a str, Vec<(&'a str, i64, &'a str)>)>;
    let mut lookups: Lookups = BTreeMap::new();
    for r in &t.requirements {
        let target = target_id(t, ids, &r.target, r.line)?;
        match &r.spec.effect {
            ToscaEffect::Field(field) => {
                input.insert(field.clone(), Json::from(target));
            }
            ToscaEffect::Lookup {
                field,
                through,
                column,
            } => {
                let entry = lookups.entry(field).or_insert((through, Vec::new()));
                entry.1.push((column, target, &r.target));
            }
            ToscaEffect::Link(_) => {}
        }
    }
    for (field, (through, columns)) in lookups {
        let id = lookup_row(unit, t, through, &columns).await?;
        input.insert(field.to_string(), Json::from(id));
    }
    if t.tosca.capabilities.as_deref() == Some("compute") {
        compute(unit, t, existing.is_none(), &mut input).await?;
    }
    let (id, mut action, mut changes) = match existing {
        None => {
            let key = t.tosca.key.clone();
            input.insert(key, Json::String(t.name.clone()));
            for field in &t.tosca.name_defaults {
                input
                    .entry(field.clone())
                    .or_insert_with(|| Json::String(t.name.clone()));
            }
            for (field, v) in &t.tosca.defaults {
                input.entry(field.clone()).or_insert_with(|| v.clone());
            }
            let rec = unit
                .create(model, &input)
                .await
                .map_err(|e| store_problem(t, e))?;
            (rec.id(), Action::Create, Vec::new())
        }
        Some(id) => {
            let before = unit.load(model, id).await.map_err(|e| store_problem(t, e))?;
            // A password is stored hashed: the recipe's is unchanged when it verifies.
            for f in model
                .fields
                .iter()
                .filter(|f| matches!(f.kind, FieldKind::Password))
            {
                let same = match (input.get(&f.name), before.get_str(&f.name)) {
                    (Some(Json::String(plain)), Some(stored)) => store::password::verify(plain, stored),
                    _ => false,
                };
                if same {
                    input.remove(&f.name);
                }
            }
            let after = unit
                .update(model, id, &input, true)
                .await
                .map_err(|e| store_problem(t, e))?;
            let changes: Vec<String> = model
                .fields
                .iter()
                .enumerate()
                .filter(|(i, f)| f.is_writable() && before.values[*i] != after.values[*i])
                .map(|(_, f)| property_name(t, &f.name))
                .collect();
            let action = if changes.is_empty() {
                Action::Unchanged
            } else {
                Action::Update
            };
            (id, action, changes)
        }
    };
    let linked = links(unit, t, id, ids).await?;
    if !linked.is_empty() && action == Action::Unchanged {
        action = Action::Update;
    }
    changes.extend(linked);
    Ok(Entry::new(t, action, Some(id), changes))
}

/// The recipe's name for a field (`display_name` for a site's `name`).
fn property_name(t: &Template, field: &str) -> String {
    t.tosca
        .renames
        .iter()
        .find(|(_, f)| f == field)
        .map(|(p, _)| p.clone())
        .unwrap_or_else(|| field.to_string())
}

/// The row of `through` whose columns hold the given targets (a node's site deployment).
async fn lookup_row(
    unit: &mut Unit,
    t: &Template,
    through: &str,
    columns: &[(&str, i64, &str)],
) -> Result<i64, Problem> {
    let model = unit.store().model(through);
    let mut sql = Sql::new(format!("SELECT id FROM {} WHERE NOT deleted", model.table()));
    for (column, id, _) in columns {
        let f = model
            .field_named(column)
            .ok_or_else(|| t.problem(t.line, format!("{through} has no field {column}")))?;
        sql.push(&format!(" AND {} = ", f.column())).bind(Value::Int(*id));
    }
    sql.push(" ORDER BY id LIMIT 1");
    let rows = unit
        .fetch(&sql, &[SqlType::Int])
        .await
        .map_err(|e| store_problem(t, e))?;
    rows.first().and_then(|r| r[0].as_int()).ok_or_else(|| {
        let named: Vec<String> = columns.iter().map(|(c, _, n)| format!("{c} '{n}'")).collect();
        t.problem(
            t.line,
            format!("no {} joins {}", model.verbose_name, named.join(" and ")),
        )
    })
}

/// Keep the link rows of the node's requirements and list properties; returns what it wrote.
async fn links(
    unit: &mut Unit,
    t: &Template,
    id: i64,
    ids: &HashMap<&str, Option<i64>>,
) -> Result<Vec<String>, Problem> {
    let mut out = Vec::new();
    let mut order: HashMap<&str, i64> = HashMap::new();
    for r in &t.requirements {
        let ToscaEffect::Link(link) = &r.spec.effect else {
            continue;
        };
        let target = target_id(t, ids, &r.target, r.line)?;
        let mut extra = Map::new();
        if let Some(field) = &link.order {
            let n = order.entry(field).or_insert(0);
            *n += 10;
            extra.insert(field.clone(), Json::from(*n));
        }
        for (field, node, line) in &r.nested {
            extra.insert(field.clone(), Json::from(target_id(t, ids, node, *line)?));
        }
        let label = format!("{} {}", r.spec.relationship, r.target);
        if let Some(change) = ensure_link(unit, t, link, id, target, extra, &label, r.line).await? {
            out.push(change);
        }
    }
    for list in &t.lists {
        let through = unit.store().model(&list.link.through);
        let other_model = through
            .field_named(&list.link.other)
            .and_then(|f| f.fk_target())
            .map(|m| unit.store().model(m))
            .ok_or_else(|| {
                t.problem(
                    list.line,
                    format!("{} has no field {}", through.name, list.link.other),
                )
            })?;
        for name in &list.names {
            let Some(target) = find(unit, other_model, name)
                .await
                .map_err(|e| store_problem(t, e))?
            else {
                return Err(t.problem(
                    list.line,
                    format!(
                        "property '{}': there is no {} '{name}'",
                        list.property, other_model.verbose_name
                    ),
                ));
            };
            let label = format!("{} {name}", list.property);
            if let Some(change) =
                ensure_link(unit, t, list.link, id, target, Map::new(), &label, list.line).await?
            {
                out.push(change);
            }
        }
    }
    Ok(out)
}

/// Create the link row if missing, or bring its nested/order fields up to date.
#[allow(clippy::too_many_arguments)]
async fn ensure_link(
    unit: &mut Unit,
    t: &Template,
    link: &ToscaLink,
    own: i64,
    other: i64,
    extra: Map<String, Json>,
    label: &str,
    line: usize,
) -> Result<Option<String>, Problem> {
    let through = unit.store().model(&link.through);
    let column = |name: &str| {
        through
            .field_named(name)
            .map(|f| f.column())
            .ok_or_else(|| t.problem(line, format!("{} has no field {name}", through.name)))
    };
    let mut sql = Sql::new(format!(
        "SELECT id FROM {} WHERE NOT deleted AND ",
        through.table()
    ));
    sql.push(&format!("{} = ", column(&link.own)?))
        .bind(Value::Int(own));
    sql.push(&format!(" AND {} = ", column(&link.other)?))
        .bind(Value::Int(other));
    let mut values = Map::new();
    values.insert(link.own.clone(), Json::from(own));
    values.insert(link.other.clone(), Json::from(other));
    if let Some((field, role)) = &link.role {
        let role_model = through
            .field_named(field)
            .and_then(|f| f.fk_target())
            .map(|m| unit.store().model(m))
            .ok_or_else(|| t.problem(line, format!("{} has no role field {field}", through.name)))?;
        let Some(role_id) = find(unit, role_model, role)
            .await
            .map_err(|e| store_problem(t, e))?
        else {
            return Err(t.problem(line, format!("there is no {} '{role}'", role_model.verbose_name)));
        };
        sql.push(&format!(" AND {} = ", column(field)?))
            .bind(Value::Int(role_id));
        values.insert(field.clone(), Json::from(role_id));
    }
    sql.push(" ORDER BY id LIMIT 1");
    let rows = unit
        .fetch(&sql, &[SqlType::Int])
        .await
        .map_err(|e| store_problem(t, e))?;
    match rows.first().and_then(|r| r[0].as_int()) {
        None => {
            for (field, v) in &link.values {
                values.insert(field.clone(), v.clone());
            }
            values.extend(extra);
            unit.create(through, &values)
                .await
                .map_err(|e| link_problem(t, label, line, e))?;
            Ok(Some(format!("+{label}")))
        }
        Some(_) if extra.is_empty() => Ok(None),
        Some(row) => {
            let before = unit.load(through, row).await.map_err(|e| store_problem(t, e))?;
            let after = unit
                .update(through, row, &extra, true)
                .await
                .map_err(|e| link_problem(t, label, line, e))?;
            Ok((before.values != after.values).then(|| format!("~{label}")))
        }
    }
}

fn link_problem(t: &Template, label: &str, line: usize, e: StoreError) -> Problem {
    let p = store_problem(t, e);
    t.problem(line, format!("{label}: {}", p.message))
}

async fn delete_node(unit: &mut Unit, t: &Template) -> Result<Entry, Problem> {
    let existing = find(unit, t.model, &t.name)
        .await
        .map_err(|e| store_problem(t, e))?;
    let Some(id) = existing else {
        return Ok(Entry::new(t, Action::Absent, None, Vec::new()));
    };
    if t.no_delete {
        return Ok(Entry::new(t, Action::Kept, Some(id), vec!["no-delete".into()]));
    }
    unit.delete(t.model, id).await.map_err(|e| store_problem(t, e))?;
    Ok(Entry::new(t, Action::Delete, Some(id), Vec::new()))
}

/// A size such as `4 MB`, `10 GB` or `512 MiB`, in MiB (a bare number is MiB).
pub fn parse_size_mb(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let split = raw
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: f64 = number.trim().parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "mb" | "mib" | "m" => 1.0,
        "b" => 1.0 / (1024.0 * 1024.0),
        "kb" | "kib" | "k" => 1.0 / 1024.0,
        "gb" | "gib" | "g" => 1024.0,
        "tb" | "tib" | "t" => 1024.0 * 1024.0,
        _ => return None,
    };
    let mb = (number * factor).ceil();
    (mb.is_finite() && mb >= 0.0).then_some(mb as u64)
}

/// The compute capabilities: `host` picks the smallest flavor with enough CPUs and memory,
/// `os` an image whose name holds the distribution and version, and a new instance goes on the
/// node with the fewest instances.
async fn compute(
    unit: &mut Unit,
    t: &Template,
    creating: bool,
    input: &mut Map<String, Json>,
) -> Result<(), Problem> {
    if let Some(host) = t.capabilities.get("host")
        && !input.contains_key("flavor")
    {
        let number = |name: &str| -> Result<(u64, usize), Problem> {
            match host.properties.get(name) {
                None => Ok((0, host.line)),
                Some((raw, line)) => {
                    let parsed = if name == "num_cpus" {
                        raw.trim().parse().ok()
                    } else {
                        parse_size_mb(raw)
                    };
                    parsed.map(|n| (n, *line)).ok_or_else(|| {
                        t.problem(
                            *line,
                            format!(
                                "capability host: {name} '{raw}' is not {}",
                                if name == "num_cpus" {
                                    "a whole number"
                                } else {
                                    "a size like '4 GB'"
                                }
                            ),
                        )
                    })
                }
            }
        };
        let (cpus, _) = number("num_cpus")?;
        let (mem, _) = number("mem_size")?;
        number("disk_size")?;
        let sql = Sql::new(
            "SELECT id, vcpus, memory_mb FROM core_flavor WHERE NOT deleted ORDER BY vcpus, memory_mb, \"order\", id",
        );
        let rows = unit
            .fetch(&sql, &[SqlType::Int, SqlType::Int, SqlType::Int])
            .await
            .map_err(|e| store_problem(t, e))?;
        let fits = rows
            .iter()
            .find(|r| r[1].as_int().unwrap_or(0) as u64 >= cpus && r[2].as_int().unwrap_or(0) as u64 >= mem);
        match fits.and_then(|r| r[0].as_int()) {
            Some(id) => {
                input.insert("flavor".into(), Json::from(id));
            }
            None => {
                return Err(t.problem(
                    host.line,
                    format!("capability host: no flavor has {cpus} CPUs and {mem} MB of memory"),
                ));
            }
        }
    }
    if let Some(os) = t.capabilities.get("os")
        && !input.contains_key("image")
    {
        let words: Vec<String> = ["distribution", "version"]
            .iter()
            .filter_map(|k| os.properties.get(*k))
            .map(|(v, _)| v.to_lowercase())
            .collect();
        let sql = Sql::new("SELECT id, name FROM core_image WHERE NOT deleted ORDER BY id");
        let rows = unit
            .fetch(&sql, &[SqlType::Int, SqlType::Text])
            .await
            .map_err(|e| store_problem(t, e))?;
        let found = rows.iter().find(|r| {
            let name = r[1].as_str().unwrap_or_default().to_lowercase();
            words.iter().all(|w| name.contains(w.as_str()))
        });
        match found.and_then(|r| r[0].as_int()) {
            Some(id) => {
                input.insert("image".into(), Json::from(id));
            }
            None => {
                let names: Vec<&str> = rows.iter().filter_map(|r| r[1].as_str()).collect();
                return Err(t.problem(
                    os.line,
                    format!(
                        "capability os: no image's name holds '{}' (images: {})",
                        words.join(" "),
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    if creating && !input.contains_key("node") {
        let sql = Sql::new(
            "SELECT n.id FROM core_node n WHERE NOT n.deleted ORDER BY \
             (SELECT COUNT(*) FROM core_instance i WHERE i.node_id = n.id AND NOT i.deleted), n.id LIMIT 1",
        );
        let rows = unit
            .fetch(&sql, &[SqlType::Int])
            .await
            .map_err(|e| store_problem(t, e))?;
        match rows.first().and_then(|r| r[0].as_int()) {
            Some(id) => {
                input.insert("node".into(), Json::from(id));
            }
            None => {
                return Err(t.problem(
                    t.line,
                    "there is no node to place the instance on (declare a tosca.nodes.Node)",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size_mb;

    #[test]
    fn sizes_parse_to_mebibytes() {
        assert_eq!(parse_size_mb("4 MB"), Some(4));
        assert_eq!(parse_size_mb("10 GB"), Some(10240));
        assert_eq!(parse_size_mb("512MiB"), Some(512));
        assert_eq!(parse_size_mb("2048"), Some(2048));
        assert_eq!(parse_size_mb("1 kB"), Some(1));
        assert_eq!(parse_size_mb("lots"), None);
        assert_eq!(parse_size_mb("4 parsecs"), None);
    }
}
