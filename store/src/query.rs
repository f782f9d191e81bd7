//! Reading: the SQL every list and get starts from, and list queries (filters, search, order,
//! paging) parsed from the API's query string.

use crate::db::{Sql, Value};
use crate::{Actor, FieldErrors, permissions, validate};
use registry::{Model, SqlType};

/// Append `src` to `dst`, renumbering its placeholders after those of `dst`.
pub fn append_sql(dst: &mut Sql, src: &Sql) {
    // Renumber the placeholders of `src` after those of `dst`.
    let offset = dst.args.len();
    let mut text = String::with_capacity(src.text.len());
    let mut chars = src.text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                n.push(*d);
                chars.next();
            }
            text.push_str(&format!("${}", n.parse::<usize>().unwrap_or(0) + offset));
        } else {
            text.push(c);
        }
    }
    dst.text.push_str(&text);
    dst.args.extend(src.args.iter().cloned());
}

/// `SELECT <every column> FROM <table> t`.
pub fn select_sql(model: &Model) -> Sql {
    let cols: Vec<String> = model.fields.iter().map(|f| format!("t.{}", f.column())).collect();
    Sql::new(format!("SELECT {} FROM {} t", cols.join(", "), model.table()))
}

/// The column types of `select_sql(model)`.
pub fn types(model: &Model) -> Vec<SqlType> {
    model.fields.iter().map(|f| f.kind.sql_type()).collect()
}

pub(crate) fn live_and_visible(actor: &Actor, model: &Model, sql: &mut Sql) {
    if model.field_named("deleted").is_some() {
        sql.push(" AND NOT t.deleted");
    }
    permissions::visible(actor, model, sql);
}

/// A list query: filters, search, ordering, paging (`?field=v&field__in=a,b&field__icontains=x
/// &search=&ordering=-name&limit=&offset=`).
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    pub search: Option<String>,
    pub ordering: Vec<(String, bool)>,
    pub limit: Option<i64>,
    pub offset: i64,
}

/// One filter on a column.
#[derive(Clone, Debug)]
pub struct Filter {
    pub column: String,
    pub op: FilterOp,
    pub values: Vec<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterOp {
    Eq,
    In,
    IContains,
    /// `__startswith` (Django's lookup): the status filter of the admin lists asks
    /// `backend_status__startswith=2` for the rows in error.
    StartsWith,
}

/// Query parameters that are not filters.
const RESERVED_PARAMS: &[&str] = &[
    "no_hyperlinks",
    "format",
    "limit",
    "offset",
    "ordering",
    "search",
    "page_size",
];

/// The largest number of values an `__in` filter takes (bounded work per request).
pub const MAX_IN_VALUES: usize = 1000;
/// The largest explicit `?limit=` (a list without one still returns everything, as XOS clients
/// expect).
pub const MAX_PAGE: i64 = 10_000;
/// Field filters one list request may combine.
pub const MAX_FILTERS: usize = 32;
/// The longest value of a filter or a search.
pub const MAX_FILTER_CHARS: usize = 1024;

impl ListQuery {
    /// Parse query parameters against the model. Unknown parameters are ignored (as DRF's filter
    /// backend does); bad values for known fields are field errors.
    pub fn parse(model: &Model, params: &[(String, String)]) -> Result<ListQuery, FieldErrors> {
        let reg = registry::registry();
        let mut q = ListQuery::default();
        let mut errors = FieldErrors::new();
        for (key, raw) in params {
            if raw.contains('\0') {
                errors
                    .entry(key.clone())
                    .or_default()
                    .push(validate::NUL_MESSAGE.into());
                continue;
            }
            if raw.chars().count() > MAX_FILTER_CHARS && !matches!(key.as_str(), "ordering") {
                errors
                    .entry(key.clone())
                    .or_default()
                    .push(format!("At most {MAX_FILTER_CHARS} characters."));
                continue;
            }
            match key.as_str() {
                "search" => q.search = Some(raw.clone()).filter(|s| !s.is_empty()),
                "limit" | "page_size" => match raw.parse::<i64>() {
                    Ok(n) if (0..=MAX_PAGE).contains(&n) => q.limit = Some(n),
                    Ok(n) if n > MAX_PAGE => errors
                        .entry(key.clone())
                        .or_default()
                        .push(format!("At most {MAX_PAGE} per page; page with offset.")),
                    _ => errors
                        .entry(key.clone())
                        .or_default()
                        .push("A valid non-negative integer is required.".into()),
                },
                "offset" => match raw.parse::<i64>() {
                    Ok(n) if n >= 0 => q.offset = n,
                    _ => errors
                        .entry(key.clone())
                        .or_default()
                        .push("A valid non-negative integer is required.".into()),
                },
                "ordering" => {
                    for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let (name, desc) = match part.strip_prefix('-') {
                            Some(n) => (n, true),
                            None => (part, false),
                        };
                        match model.field_named(name).filter(|f| f.is_readable()) {
                            Some(f) => q.ordering.push((f.column(), desc)),
                            None => errors
                                .entry("ordering".into())
                                .or_default()
                                .push(format!("Unknown field \"{name}\".")),
                        }
                    }
                }
                k if RESERVED_PARAMS.contains(&k) => {}
                k => {
                    let (name, op) = if let Some(n) = k.strip_suffix("__in") {
                        (n, FilterOp::In)
                    } else if let Some(n) = k.strip_suffix("__icontains") {
                        (n, FilterOp::IContains)
                    } else if let Some(n) = k.strip_suffix("__startswith") {
                        (n, FilterOp::StartsWith)
                    } else {
                        (k, FilterOp::Eq)
                    };
                    let Some(f) = model.field_named(name).filter(|f| f.is_readable()) else {
                        continue;
                    };
                    let raws: Vec<&str> = match op {
                        FilterOp::In => raw.split(',').collect(),
                        _ => vec![raw.as_str()],
                    };
                    if raws.len() > MAX_IN_VALUES {
                        errors
                            .entry(k.to_string())
                            .or_default()
                            .push(format!("At most {MAX_IN_VALUES} values."));
                        continue;
                    }
                    let mut values = Vec::new();
                    for r in raws {
                        let json = match (f.kind.sql_type(), r) {
                            (_, "null" | "None") if f.null => serde_json::Value::Null,
                            (SqlType::Text, _) => serde_json::Value::String(r.to_string()),
                            (_, _) => serde_json::Value::String(r.to_string()),
                        };
                        match op {
                            FilterOp::IContains | FilterOp::StartsWith => {
                                values.push(Value::Text(r.to_string()))
                            }
                            _ => match validate::parse_value(reg, f, &json) {
                                Ok(v) => values.push(v),
                                Err(m) => errors.entry(k.to_string()).or_default().push(m),
                            },
                        }
                    }
                    if q.filters.len() >= MAX_FILTERS {
                        errors
                            .entry(k.to_string())
                            .or_default()
                            .push(format!("At most {MAX_FILTERS} filters in one request."));
                        continue;
                    }
                    q.filters.push(Filter {
                        column: f.column(),
                        op,
                        values,
                    });
                }
            }
        }
        if errors.is_empty() { Ok(q) } else { Err(errors) }
    }

    /// The parameters [`ListQuery::parse`] would ignore: neither a query option nor a readable
    /// field of `model` (with `__in` / `__icontains`). The API ignores them as DRF does; the
    /// `xos list` command refuses them rather than list everything.
    pub fn unknown_params<'a>(model: &Model, params: &'a [(String, String)]) -> Vec<&'a str> {
        params
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| {
                let name = k
                    .strip_suffix("__in")
                    .or_else(|| k.strip_suffix("__icontains"))
                    .or_else(|| k.strip_suffix("__startswith"))
                    .unwrap_or(k);
                !matches!(*k, "search" | "ordering")
                    && !RESERVED_PARAMS.contains(k)
                    && model.field_named(name).is_none_or(|f| !f.is_readable())
            })
            .collect()
    }

    pub(crate) fn push_where(&self, model: &Model, dialect: crate::db::Dialect, sql: &mut Sql) {
        let like = match dialect {
            crate::db::Dialect::Sqlite => "LIKE",
            crate::db::Dialect::Postgres => "ILIKE",
        };
        for f in &self.filters {
            match f.op {
                FilterOp::Eq if f.values.first().is_some_and(Value::is_null) => {
                    sql.push(&format!(" AND t.{} IS NULL", f.column));
                }
                FilterOp::Eq => {
                    sql.push(&format!(" AND t.{} = ", f.column))
                        .bind(f.values[0].clone());
                }
                FilterOp::In => {
                    sql.push(&format!(" AND t.{} IN (", f.column));
                    for (i, v) in f.values.iter().enumerate() {
                        if i > 0 {
                            sql.push(", ");
                        }
                        sql.bind(v.clone());
                    }
                    sql.push(")");
                }
                FilterOp::IContains => {
                    let pat = format!("%{}%", escape_like(f.values[0].as_str().unwrap_or("")));
                    sql.push(&format!(" AND CAST(t.{} AS TEXT) {like} ", f.column))
                        .bind(Value::Text(pat));
                    sql.push(" ESCAPE '\\'");
                }
                FilterOp::StartsWith => {
                    // Exact and case-sensitive on both databases (LIKE is not on SQLite).
                    let prefix = f.values[0].as_str().unwrap_or("").to_string();
                    sql.push(&format!(
                        " AND substr(CAST(t.{} AS TEXT), 1, {}) = ",
                        f.column,
                        prefix.chars().count()
                    ))
                    .bind(Value::Text(prefix));
                }
            }
        }
        if let Some(term) = &self.search
            && !model.search_fields.is_empty()
        {
            let pat = format!("%{}%", escape_like(term));
            sql.push(" AND (");
            for (i, name) in model.search_fields.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                let col = model
                    .field_named(name)
                    .map(|f| f.column())
                    .unwrap_or_else(|| format!("\"{name}\""));
                sql.push(&format!("t.{col} {like} "))
                    .bind(Value::Text(pat.clone()));
                sql.push(" ESCAPE '\\'");
            }
            sql.push(")");
        }
    }

    pub(crate) fn push_order(&self, model: &Model, sql: &mut Sql) {
        let mut parts: Vec<String> = self
            .ordering
            .iter()
            .map(|(c, desc)| format!("t.{c}{}", if *desc { " DESC" } else { "" }))
            .collect();
        if parts.is_empty() {
            for o in &model.ordering {
                let (name, desc) = o
                    .strip_prefix('-')
                    .map(|n| (n, true))
                    .unwrap_or((o.as_str(), false));
                if let Some(f) = model.field_named(name) {
                    parts.push(format!("t.{}{}", f.column(), if desc { " DESC" } else { "" }));
                }
            }
        }
        parts.push("t.id".into());
        sql.push(&format!(" ORDER BY {}", parts.join(", ")));
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}
