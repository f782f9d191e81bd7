//! Schema from the registry: the table/column/index specification of every model, the DDL that
//! creates it in either dialect, and the diff `xos makemigrations` turns into the next migration.
//!
//! As Django's makemigrations did for XOS, the state the committed migrations produce is kept
//! beside them (`migrations/schema.json`); the next migration is the difference between that
//! state and what the registry declares now.

use crate::db::Dialect;
use registry::{FieldDefault, FieldKind, Model, Registry, SqlType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One column.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ColumnSpec {
    pub name: String,
    pub sql_type: SqlType,
    /// VARCHAR length on Postgres (SQLite stores TEXT; the store enforces lengths).
    pub max_length: Option<u32>,
    pub null: bool,
    /// The SQL literal of a constant default, if any.
    pub default: Option<String>,
    /// `(table)` this column references.
    pub references: Option<String>,
    /// `CHECK (col >= 0)`.
    pub non_negative: bool,
    pub primary_key: bool,
}

/// One index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IndexSpec {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// A partial index's condition.
    pub condition: Option<String>,
}

/// One table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<ColumnSpec>,
    pub indexes: Vec<IndexSpec>,
}

/// The whole schema: tables by name, in creation order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SchemaSpec {
    pub tables: Vec<TableSpec>,
}

impl SchemaSpec {
    /// The schema the registry declares, each table after the tables it references.
    pub fn from_registry(reg: &Registry) -> SchemaSpec {
        let mut pending: Vec<TableSpec> = reg.models.iter().map(|m| table_spec(reg, m)).collect();
        let mut tables: Vec<TableSpec> = Vec::with_capacity(pending.len());
        while !pending.is_empty() {
            let ready = pending.iter().position(|t| {
                t.columns.iter().filter_map(|c| c.references.as_deref()).all(|r| {
                    r == t.name
                        || tables.iter().any(|done| done.name == r)
                        || !pending.iter().any(|p| p.name == r)
                })
            });
            // A reference cycle (none among the core models) falls back to declaration order.
            tables.push(pending.remove(ready.unwrap_or(0)));
        }
        SchemaSpec { tables }
    }

    pub fn table(&self, name: &str) -> Option<&TableSpec> {
        self.tables.iter().find(|t| t.name == name)
    }
}

fn literal(default: &Option<FieldDefault>, ty: SqlType) -> Option<String> {
    match default {
        Some(FieldDefault::Value(v)) => match (v, ty) {
            (serde_json::Value::Bool(b), _) => Some(if *b { "TRUE".into() } else { "FALSE".into() }),
            (serde_json::Value::Number(n), _) => Some(n.to_string()),
            (serde_json::Value::String(s), SqlType::Text) => Some(format!("'{}'", s.replace('\'', "''"))),
            _ => None,
        },
        _ => None,
    }
}

/// An index name Postgres keeps whole: lower case, at most 63 bytes (longer names are cut and
/// made unique again with a hash of the full name).
fn index_name(full: &str) -> String {
    let lower = full.to_lowercase();
    if lower.len() <= 63 {
        return lower;
    }
    // FNV-1a: stable across builds and platforms.
    let mut h: u32 = 0x811c_9dc5;
    for b in lower.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("{}_{h:08x}", &lower[..54])
}

/// The table of one model.
pub fn table_spec(reg: &Registry, m: &Model) -> TableSpec {
    let table = m.table();
    let soft_delete = m.field_named("deleted").is_some();
    let live = soft_delete.then(|| "NOT deleted".to_string());
    let mut columns = Vec::new();
    let mut indexes = Vec::new();
    for f in &m.fields {
        let ty = f.kind.sql_type();
        let col = f.column_name();
        let references = f.fk_target().and_then(|to| reg.model(to)).map(Model::table);
        columns.push(ColumnSpec {
            name: col.clone(),
            sql_type: ty,
            max_length: match f.kind {
                FieldKind::Text { .. } | FieldKind::Password => None,
                _ => f.kind.max_length(),
            },
            null: f.null,
            default: literal(&f.default, ty),
            references,
            non_negative: matches!(f.kind, FieldKind::PositiveInteger),
            primary_key: matches!(f.kind, FieldKind::AutoId),
        });
        if f.unique {
            indexes.push(IndexSpec {
                name: index_name(&format!("{table}__{col}__uniq")),
                columns: vec![col.clone()],
                unique: true,
                condition: live.clone(),
            });
        } else if f.db_index || f.fk_target().is_some() {
            indexes.push(IndexSpec {
                name: index_name(&format!("{table}__{col}__idx")),
                columns: vec![col.clone()],
                unique: false,
                condition: None,
            });
        }
    }
    for set in &m.unique_together {
        let cols: Vec<String> = set
            .iter()
            .map(|n| {
                m.field_named(n)
                    .map(|f| f.column_name())
                    .unwrap_or_else(|| n.clone())
            })
            .collect();
        indexes.push(IndexSpec {
            name: index_name(&format!("{table}__{}__uniq", cols.join("__"))),
            columns: cols,
            unique: true,
            condition: live.clone(),
        });
    }
    if m.is_synchronized() {
        // Keeps the synchronizer's idle pass O(changed): only rows needing work are indexed.
        indexes.push(IndexSpec {
            name: format!("{table}__pending__idx"),
            columns: vec!["id".into()],
            unique: false,
            condition: Some("row_version > enacted_version OR deleted".into()),
        });
    }
    TableSpec {
        name: table,
        columns,
        indexes,
    }
}

fn column_type(c: &ColumnSpec, d: Dialect) -> String {
    match (d, c.sql_type) {
        (Dialect::Sqlite, SqlType::Int) if c.primary_key => "INTEGER".into(),
        (Dialect::Postgres, SqlType::Int) if c.primary_key => "BIGINT".into(),
        (_, SqlType::Bool) => "BOOLEAN".into(),
        (Dialect::Sqlite, SqlType::Int) => "INTEGER".into(),
        (Dialect::Postgres, SqlType::Int) => "BIGINT".into(),
        (Dialect::Sqlite, SqlType::Float) => "REAL".into(),
        (Dialect::Postgres, SqlType::Float) => "DOUBLE PRECISION".into(),
        (Dialect::Sqlite, SqlType::Text) => "TEXT".into(),
        (Dialect::Postgres, SqlType::Text) => match c.max_length {
            Some(n) => format!("VARCHAR({n})"),
            None => "TEXT".into(),
        },
        (Dialect::Sqlite, SqlType::Time) => "TEXT".into(),
        (Dialect::Postgres, SqlType::Time) => "TIMESTAMPTZ".into(),
    }
}

fn column_def(c: &ColumnSpec, d: Dialect) -> String {
    if c.primary_key {
        return match d {
            Dialect::Sqlite => format!("\"{}\" INTEGER PRIMARY KEY AUTOINCREMENT", c.name),
            Dialect::Postgres => format!(
                "\"{}\" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                c.name
            ),
        };
    }
    let mut s = format!("\"{}\" {}", c.name, column_type(c, d));
    if !c.null {
        s.push_str(" NOT NULL");
    }
    if let Some(def) = &c.default {
        let def = match (d, def.as_str()) {
            (Dialect::Sqlite, "TRUE") => "1",
            (Dialect::Sqlite, "FALSE") => "0",
            (_, other) => other,
        };
        s.push_str(&format!(" DEFAULT {def}"));
    }
    if let Some(t) = &c.references {
        s.push_str(&format!(" REFERENCES {t} (id)"));
    }
    if c.non_negative {
        s.push_str(&format!(" CHECK (\"{}\" >= 0)", c.name));
    }
    s
}

fn create_index(t: &str, i: &IndexSpec) -> String {
    format!(
        "CREATE {}INDEX {} ON {t} ({}){};",
        if i.unique { "UNIQUE " } else { "" },
        i.name,
        i.columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", "),
        i.condition
            .as_ref()
            .map(|c| format!(" WHERE {c}"))
            .unwrap_or_default()
    )
}

/// `CREATE TABLE` plus its indexes.
pub fn create_table(t: &TableSpec, d: Dialect) -> Vec<String> {
    let cols: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("    {}", column_def(c, d)))
        .collect();
    let mut out = vec![format!("CREATE TABLE {} (\n{}\n);", t.name, cols.join(",\n"))];
    out.extend(t.indexes.iter().map(|i| create_index(&t.name, i)));
    out
}

/// The statements that take the schema from `old` to `new` in dialect `d`.
pub fn diff(old: &SchemaSpec, new: &SchemaSpec, d: Dialect) -> Vec<String> {
    let mut out = Vec::new();
    for t in &new.tables {
        let Some(o) = old.table(&t.name) else {
            out.extend(create_table(t, d));
            continue;
        };
        let old_cols: BTreeMap<&str, &ColumnSpec> = o.columns.iter().map(|c| (c.name.as_str(), c)).collect();
        let new_cols: BTreeMap<&str, &ColumnSpec> = t.columns.iter().map(|c| (c.name.as_str(), c)).collect();
        let changed = t
            .columns
            .iter()
            .any(|c| old_cols.get(c.name.as_str()).is_some_and(|oc| *oc != c));
        let dropped = o.columns.iter().any(|c| !new_cols.contains_key(c.name.as_str()));
        if d == Dialect::Sqlite && (changed || dropped) {
            out.extend(rebuild_sqlite(o, t));
            continue;
        }
        for i in &o.indexes {
            if !t.indexes.contains(i) {
                out.push(format!("DROP INDEX {};", i.name));
            }
        }
        for c in &t.columns {
            match old_cols.get(c.name.as_str()) {
                None => out.push(format!("ALTER TABLE {} ADD COLUMN {};", t.name, column_def(c, d))),
                Some(oc) if *oc != c => out.extend(alter_pg_column(&t.name, oc, c)),
                Some(_) => {}
            }
        }
        for c in &o.columns {
            if !new_cols.contains_key(c.name.as_str()) {
                out.push(format!("ALTER TABLE {} DROP COLUMN \"{}\";", t.name, c.name));
            }
        }
        for i in &t.indexes {
            if !o.indexes.contains(i) {
                out.push(create_index(&t.name, i));
            }
        }
    }
    for o in old.tables.iter().rev() {
        if new.table(&o.name).is_none() {
            out.push(format!("DROP TABLE {};", o.name));
        }
    }
    out
}

fn alter_pg_column(table: &str, old: &ColumnSpec, new: &ColumnSpec) -> Vec<String> {
    let mut out = Vec::new();
    let alter = |what: String| format!("ALTER TABLE {table} ALTER COLUMN \"{}\" {what};", new.name);
    if old.sql_type != new.sql_type || old.max_length != new.max_length {
        out.push(alter(format!("TYPE {}", column_type(new, Dialect::Postgres))));
    }
    if old.null != new.null {
        out.push(alter(if new.null {
            "DROP NOT NULL".into()
        } else {
            "SET NOT NULL".into()
        }));
    }
    if old.default != new.default {
        out.push(alter(match &new.default {
            Some(d) => format!("SET DEFAULT {d}"),
            None => "DROP DEFAULT".into(),
        }));
    }
    if old.references != new.references || old.non_negative != new.non_negative {
        // Constraint changes: rename-free approach, drop the old named constraints Postgres made.
        out.push(format!(
            "-- {table}.{}: reference/check changed; review constraints by hand",
            new.name
        ));
    }
    out
}

/// SQLite cannot alter a column: build the new table, copy the rows, swap it in.
fn rebuild_sqlite(old: &TableSpec, new: &TableSpec) -> Vec<String> {
    let tmp = TableSpec {
        name: format!("{}__new", new.name),
        columns: new.columns.clone(),
        indexes: vec![],
    };
    let mut out = vec!["PRAGMA defer_foreign_keys = ON;".to_string()];
    out.extend(create_table(&tmp, Dialect::Sqlite));
    let common: Vec<String> = new
        .columns
        .iter()
        .filter(|c| old.columns.iter().any(|o| o.name == c.name))
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    out.push(format!(
        "INSERT INTO {} ({cols}) SELECT {cols} FROM {};",
        tmp.name,
        old.name,
        cols = common.join(", ")
    ));
    out.push(format!("DROP TABLE {};", old.name));
    out.push(format!("ALTER TABLE {} RENAME TO {};", tmp.name, new.name));
    out.extend(new.indexes.iter().map(|i| create_index(&new.name, i)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::registry;

    #[test]
    fn unique_indexes_ignore_deleted_rows() {
        let spec = SchemaSpec::from_registry(registry());
        let site = spec.table("core_site").unwrap();
        let idx = site
            .indexes
            .iter()
            .find(|i| i.name == "core_site__login_base__uniq")
            .unwrap();
        assert!(idx.unique);
        assert_eq!(idx.condition.as_deref(), Some("NOT deleted"));
    }

    #[test]
    fn foreign_keys_get_a_column_with_id_suffix_and_a_reference() {
        let spec = SchemaSpec::from_registry(registry());
        let slice = spec.table("core_slice").unwrap();
        let site = slice.columns.iter().find(|c| c.name == "site_id").unwrap();
        assert_eq!(site.references.as_deref(), Some("core_site"));
        assert!(!site.null);
    }

    #[test]
    fn a_new_column_becomes_add_column_in_both_dialects() {
        let old = SchemaSpec::from_registry(registry());
        let mut new = old.clone();
        new.tables[0].columns.push(ColumnSpec {
            name: "extra".into(),
            sql_type: SqlType::Text,
            max_length: Some(10),
            null: true,
            default: None,
            references: None,
            non_negative: false,
            primary_key: false,
        });
        assert_eq!(
            diff(&old, &new, Dialect::Postgres),
            vec!["ALTER TABLE core_site ADD COLUMN \"extra\" VARCHAR(10);"]
        );
        assert_eq!(
            diff(&old, &new, Dialect::Sqlite),
            vec!["ALTER TABLE core_site ADD COLUMN \"extra\" TEXT;"]
        );
        assert!(diff(&old, &old, Dialect::Sqlite).is_empty());
    }

    #[test]
    fn a_changed_column_rebuilds_the_sqlite_table_and_alters_postgres() {
        let old = SchemaSpec::from_registry(registry());
        let mut new = old.clone();
        let c = new.tables[0]
            .columns
            .iter_mut()
            .find(|c| c.name == "abbreviated_name")
            .unwrap();
        c.max_length = Some(100);
        let pg = diff(&old, &new, Dialect::Postgres);
        assert_eq!(
            pg,
            vec!["ALTER TABLE core_site ALTER COLUMN \"abbreviated_name\" TYPE VARCHAR(100);"]
        );
        let lite = diff(&old, &new, Dialect::Sqlite);
        assert!(lite.iter().any(|s| s.starts_with("CREATE TABLE core_site__new")));
        assert!(
            lite.iter()
                .any(|s| s == "ALTER TABLE core_site__new RENAME TO core_site;")
        );
    }
}
