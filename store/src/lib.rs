//! The store crate: the database (`db`), the schema (`ddl`, `migrations`) and the one write path.
//! It knows no HTTP: the API, events, auth and synchronizers build on it.
//!
//! The one write path. REST, the admin pages, the CLI, the seed, TOSCA, model policies and
//! synchronizers all change data through this module, so validation, permissions, version
//! counters, on-delete rules, hooks and change events are applied the same way everywhere.
//!
//! Guarantees:
//! - A [`Unit`] is one transaction; its change events are published only after it commits, and
//!   dropping it without [`Unit::commit`] rolls everything back.
//! - User writes validate, check permission, bump `updated` and the hidden `row_version`, then run
//!   the registered [`WriteHook`]s (model policies, change log) inside the same transaction.
//! - Status writes ([`Unit::set_status`]) are for the system actor only and never bump
//!   `row_version`, so an enacted object does not look changed again.
//! - Deletes are soft for models a running synchronizer observes (hidden at once, purged after
//!   the backend delete) and immediate otherwise; on-delete rules are enforced here because a soft
//!   delete never fires the database's own.
//! - Foreign keys and unique values are checked inside the transaction so errors name the field;
//!   the database constraints stay as the last guard.

pub mod changelog;
pub mod db;
pub mod ddl;
mod inherit;
pub mod m2m;
pub mod migrations;
pub mod password;
pub mod permissions;
pub mod rules;
pub mod validate;

use crate::db::{ConstraintViolation, Db, DbError, Row, Sql, Tx, Value, constraint_violation};
use chrono::{DateTime, Utc};
use registry::{FieldKind, Model, OnDelete, Registry, SqlType};
use rules::Phase;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

pub use permissions::Op;

/// Field name → messages, the body of a 400 (`{"field": ["message"]}`).
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid input: {0:?}")]
    Invalid(FieldErrors),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("password hashing failed")]
    Hash,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl StoreError {
    /// A database error from a direct sqlx call.
    pub fn from_sqlx(e: sqlx::Error) -> StoreError {
        StoreError::Db(DbError::Sqlx(e))
    }

    /// A single-field validation error.
    pub fn field(name: &str, msg: impl Into<String>) -> StoreError {
        let mut e = FieldErrors::new();
        e.insert(name.to_string(), vec![msg.into()]);
        StoreError::Invalid(e)
    }
}

/// The authenticated user a request acts as.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Principal {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
    pub is_readonly: bool,
    pub site_id: i64,
}

/// Who performs an operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Actor {
    /// The system itself: seed, migrations, synchronizer status writes, model policies.
    System,
    User(Principal),
}

impl Actor {
    /// Full rights: the system, or an admin who is not read-only (XOS's `can_update_root`).
    pub fn is_root(&self) -> bool {
        match self {
            Actor::System => true,
            Actor::User(p) => p.is_admin && !p.is_readonly,
        }
    }
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Actor::System => None,
            Actor::User(p) => Some(p.id),
        }
    }
}

/// What kind of change an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
    /// A synchronizer status write (backend_status, enacted, backend ids).
    Status,
}

/// What [`Unit::savepoint`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Savepoint {
    Begin,
    Release,
    Rollback,
}

/// A change published after its unit of work committed.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ChangeEvent {
    pub model: String,
    pub id: i64,
    pub kind: ChangeKind,
    /// For a delete of a model with visibility rules: the non-admin users who could see the
    /// object just before (`None`: everyone could). Never sent to clients.
    #[serde(skip)]
    pub audience: Option<Arc<Vec<i64>>>,
}

impl ChangeEvent {
    pub fn new(model: impl Into<String>, id: i64, kind: ChangeKind) -> ChangeEvent {
        ChangeEvent {
            model: model.into(),
            id,
            kind,
            audience: None,
        }
    }

    /// Whether the change may alter who a credential stands for (a user's password, flags or
    /// deactivation; a token revoked).
    pub fn touches_credentials(&self) -> bool {
        self.kind != ChangeKind::Status && matches!(self.model.as_str(), "User" | "ApiToken")
    }
}

/// One event in a notification: `[model, id, kind, audience]` (compact: a batch of status
/// writes sends thousands).
pub type NoteEvent = (String, i64, ChangeKind, Option<std::sync::Arc<Vec<i64>>>);

/// What a commit announces to other processes.
#[derive(Serialize, serde::Deserialize)]
pub struct Notification {
    pub origin: String,
    pub events: Vec<NoteEvent>,
}

impl Notification {
    /// The payloads announcing `events`, each at most `max` bytes.
    pub fn payloads(origin: &str, events: &[ChangeEvent], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut batch: Vec<NoteEvent> = Vec::new();
        let mut size = origin.len() + 40;
        for e in events {
            let item = (e.model.clone(), e.id, e.kind, e.audience.clone());
            let len = e.model.len() + 40 + e.audience.as_ref().map_or(0, |a| a.len() * 21);
            if size + len > max && !batch.is_empty() {
                let note = Notification {
                    origin: origin.to_string(),
                    events: std::mem::take(&mut batch),
                };
                out.push(serde_json::to_string(&note).unwrap_or_default());
                size = origin.len() + 40;
            }
            size += len;
            batch.push(item);
        }
        if !batch.is_empty() {
            out.push(
                serde_json::to_string(&Notification {
                    origin: origin.to_string(),
                    events: batch,
                })
                .unwrap_or_default(),
            );
        }
        out
    }
}

/// A stored object: its values aligned with `model.fields`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub model: &'static Model,
    pub values: Vec<Value>,
}

impl Record {
    pub fn id(&self) -> i64 {
        self.values[0].as_int().unwrap_or_default()
    }
    /// The value of field `name` (panics on a name the model does not declare: a programming error).
    pub fn get(&self, name: &str) -> &Value {
        let i = self
            .model
            .fields
            .iter()
            .position(|f| f.name == name)
            .unwrap_or_else(|| {
                panic!("{} has no field {name}", self.model.name);
            });
        &self.values[i]
    }
    pub fn try_get(&self, name: &str) -> Option<&Value> {
        self.model
            .fields
            .iter()
            .position(|f| f.name == name)
            .map(|i| &self.values[i])
    }
    pub fn get_int(&self, name: &str) -> Option<i64> {
        self.try_get(name).and_then(Value::as_int)
    }
    pub fn get_bool(&self, name: &str) -> bool {
        self.try_get(name).and_then(Value::as_bool).unwrap_or(false)
    }
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.try_get(name).and_then(Value::as_str)
    }
}

/// One write, as hooks see it.
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: ChangeKind,
    pub before: Option<Record>,
    pub after: Option<Record>,
}

impl Change {
    pub fn model(&self) -> &'static Model {
        self.after
            .as_ref()
            .or(self.before.as_ref())
            .map(|r| r.model)
            .expect("a change has a record")
    }
}

/// Code run inside the unit of work after each user write (model policies, the change log).
#[async_trait::async_trait]
pub trait WriteHook: Send + Sync {
    async fn after_write(&self, unit: &mut Unit, change: &Change) -> Result<(), StoreError>;
}

/// The store: the database, the registry and the event channel.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    registry: &'static Registry,
    events: broadcast::Sender<ChangeEvent>,
    observed: RwLock<HashSet<String>>,
    /// The services beyond the core whose models this process serves (None: all).
    services: RwLock<Option<HashSet<String>>>,
    hooks: RwLock<Vec<Arc<dyn WriteHook>>>,
    generation: AtomicU64,
    /// Moves when credentials may have changed: a User or ApiToken row written here, or by
    /// another process as its notification says (Postgres), or any write by another process
    /// (SQLite says no more). Cached credentials older than it are checked again.
    auth_generation: AtomicU64,
    /// Identifies this process in the notifications its commits send.
    origin: String,
    /// Postgres: the channel commits notify (one per schema, so databases sharing a server do
    /// not hear each other).
    notify_channel: Option<String>,
}

impl Store {
    /// A store over `db`; on Postgres its commits are announced on the schema's channel.
    pub async fn open(db: Db, registry: &'static Registry) -> Result<Store, StoreError> {
        let channel = match &db {
            Db::Postgres(_) => {
                let rows = db
                    .fetch(&Sql::new("SELECT current_schema()::text"), &[SqlType::Text])
                    .await?;
                let schema = rows
                    .first()
                    .and_then(|r| r[0].as_str())
                    .unwrap_or("public")
                    .to_string();
                Some(format!("xos_events_{}", slug(&schema)))
            }
            Db::Sqlite { .. } => None,
        };
        let mut store = Store::new(db, registry);
        Arc::get_mut(&mut store.inner)
            .expect("a new store is not shared")
            .notify_channel = channel;
        Ok(store)
    }

    pub fn new(db: Db, registry: &'static Registry) -> Store {
        // Large enough for a synchronizer batch of status writes without lagging listeners.
        let (events, _) = broadcast::channel(65_536);
        Store {
            inner: Arc::new(Inner {
                db,
                registry,
                events,
                observed: RwLock::new(HashSet::new()),
                services: RwLock::new(None),
                hooks: RwLock::new(Vec::new()),
                generation: AtomicU64::new(0),
                auth_generation: AtomicU64::new(0),
                origin: format!("{:016x}", rand::random::<u64>()),
                notify_channel: None,
            }),
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }
    pub fn registry(&self) -> &'static Registry {
        self.inner.registry
    }

    /// The model named `name` (a programming error if it is not declared).
    pub fn model(&self, name: &str) -> &'static Model {
        self.inner
            .registry
            .model(name)
            .unwrap_or_else(|| panic!("model {name} is not declared"))
    }

    /// A counter that grows whenever data changes: each commit that wrote something, and each
    /// change another process announces. Caches tag what they read with it.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// This process's identity in notifications.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The Postgres notification channel of this database, if any.
    pub fn notify_channel(&self) -> Option<String> {
        self.inner.notify_channel.clone()
    }

    /// Another process changed data (its events arrive from the database's notifications).
    /// `credentials`: the change may touch users or tokens (or it is unknown what changed).
    pub fn note_external_change(&self, credentials: bool) {
        if credentials {
            self.inner.auth_generation.fetch_add(1, Ordering::AcqRel);
        }
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// See `auth_generation`: what a cached credential was verified at.
    pub fn auth_generation(&self) -> u64 {
        self.inner.auth_generation.load(Ordering::Acquire)
    }

    /// Receive change events published after each commit.
    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.inner.events.subscribe()
    }

    /// Serve only the core and these services' models (the configuration's `services`); the
    /// models of the others keep their tables and are still kept consistent by the write path
    /// (on-delete rules, inheritance), but the API, admin, TOSCA and synchronizer skip them.
    pub fn set_services(&self, services: &[String]) {
        *self.inner.services.write().expect("services lock") = Some(services.iter().cloned().collect());
    }

    /// Whether `model` belongs to the core or to a loaded service.
    pub fn is_loaded(&self, model: &Model) -> bool {
        model.app == "core"
            || self
                .inner
                .services
                .read()
                .expect("services lock")
                .as_ref()
                .is_none_or(|s| s.contains(&model.app))
    }

    /// The loaded services beyond the core (every one of the registry when not set).
    pub fn services(&self) -> Vec<String> {
        let set = self.inner.services.read().expect("services lock");
        self.registry()
            .services()
            .into_iter()
            .filter(|s| *s != "core" && set.as_ref().is_none_or(|set| set.contains(*s)))
            .map(str::to_string)
            .collect()
    }

    /// Declare that a running synchronizer observes `model`: its deletes become soft.
    pub fn set_observed(&self, model: &str, observed: bool) {
        let mut set = self.inner.observed.write().expect("observed lock");
        if observed {
            set.insert(model.to_string());
        } else {
            set.remove(model);
        }
    }
    pub fn is_observed(&self, model: &str) -> bool {
        self.inner.observed.read().expect("observed lock").contains(model)
    }

    /// Register a hook run after every user write.
    pub fn add_hook(&self, hook: Arc<dyn WriteHook>) {
        self.inner.hooks.write().expect("hooks lock").push(hook);
    }

    /// Begin a unit of work acting as `actor`.
    pub async fn begin(&self, actor: Actor) -> Result<Unit, StoreError> {
        Ok(self.unit(self.inner.db.begin().await?, actor, false))
    }

    /// Begin a unit of work that only reads (permission dry runs such as the capabilities of
    /// the admin pages): no write lock, no row locks. Writes through it fail.
    pub async fn begin_read(&self, actor: Actor) -> Result<Unit, StoreError> {
        Ok(self.unit(self.inner.db.begin_read().await?, actor, true))
    }

    fn unit(&self, tx: Tx, actor: Actor, read_only: bool) -> Unit {
        Unit {
            store: self.clone(),
            tx: Some(tx),
            actor,
            events: Vec::new(),
            now: Utc::now(),
            depth: 0,
            read_only,
        }
    }

    /// Create one object in its own unit of work.
    pub async fn create(
        &self,
        actor: Actor,
        model: &'static Model,
        input: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Record, StoreError> {
        let mut unit = self.begin(actor).await?;
        let rec = unit.create(model, input).await?;
        unit.commit().await?;
        Ok(rec)
    }

    /// Update one object in its own unit of work (`partial`: PATCH semantics).
    pub async fn update(
        &self,
        actor: Actor,
        model: &'static Model,
        id: i64,
        input: &serde_json::Map<String, serde_json::Value>,
        partial: bool,
    ) -> Result<Record, StoreError> {
        let mut unit = self.begin(actor).await?;
        let rec = unit.update(model, id, input, partial).await?;
        unit.commit().await?;
        Ok(rec)
    }

    /// Delete one object in its own unit of work.
    pub async fn delete(&self, actor: Actor, model: &'static Model, id: i64) -> Result<(), StoreError> {
        let mut unit = self.begin(actor).await?;
        unit.delete(model, id).await?;
        unit.commit().await?;
        Ok(())
    }

    /// One object the actor may see.
    pub async fn get(&self, actor: &Actor, model: &'static Model, id: i64) -> Result<Record, StoreError> {
        let mut sql = select_sql(model);
        sql.push(" WHERE t.id = ").bind(Value::Int(id));
        live_and_visible(actor, model, &mut sql);
        let rows = self.inner.db.fetch(&sql, &types(model)).await?;
        rows.into_iter()
            .next()
            .map(|values| Record { model, values })
            .ok_or(StoreError::NotFound)
    }

    /// The objects the actor may see that match `q`, and the total before limit/offset (only
    /// counted when a limit was given).
    pub async fn list(
        &self,
        actor: &Actor,
        model: &'static Model,
        q: &ListQuery,
    ) -> Result<(Vec<Record>, Option<i64>), StoreError> {
        let mut where_sql = Sql::new(" WHERE 1=1");
        live_and_visible(actor, model, &mut where_sql);
        q.push_where(model, self.inner.db.dialect(), &mut where_sql);
        let total = if q.limit.is_some() || q.offset > 0 {
            let mut c = Sql::new(format!("SELECT COUNT(*) FROM {} t", model.table()));
            append_sql(&mut c, &where_sql);
            let rows = self.inner.db.fetch(&c, &[SqlType::Int]).await?;
            rows.first().and_then(|r| r[0].as_int())
        } else {
            None
        };
        let mut sql = select_sql(model);
        append_sql(&mut sql, &where_sql);
        q.push_order(model, &mut sql);
        if let Some(limit) = q.limit {
            sql.push(" LIMIT ").bind(Value::Int(limit));
            sql.push(" OFFSET ").bind(Value::Int(q.offset));
        } else if q.offset > 0 {
            sql.push(" LIMIT -1 OFFSET ").bind(Value::Int(q.offset));
            if self.inner.db.dialect() == crate::db::Dialect::Postgres {
                sql.text = sql.text.replace(" LIMIT -1 OFFSET ", " OFFSET ");
            }
        }
        let rows = self.inner.db.fetch(&sql, &types(model)).await?;
        Ok((
            rows.into_iter().map(|values| Record { model, values }).collect(),
            total,
        ))
    }

    /// Rows of `model` the actor may see with `field = value` (a small helper for extensions).
    pub async fn find(
        &self,
        actor: &Actor,
        model: &'static Model,
        field: &str,
        value: Value,
    ) -> Result<Vec<Record>, StoreError> {
        let col = model
            .field_named(field)
            .map(|f| f.column())
            .ok_or(StoreError::NotFound)?;
        let mut sql = select_sql(model);
        sql.push(&format!(" WHERE t.{col} = ")).bind(value);
        live_and_visible(actor, model, &mut sql);
        sql.push(" ORDER BY t.id");
        let rows = self.inner.db.fetch(&sql, &types(model)).await?;
        Ok(rows.into_iter().map(|values| Record { model, values }).collect())
    }
}

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

fn live_and_visible(actor: &Actor, model: &Model, sql: &mut Sql) {
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
                            FilterOp::IContains => values.push(Value::Text(r.to_string())),
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
                    .unwrap_or(k);
                !matches!(*k, "search" | "ordering")
                    && !RESERVED_PARAMS.contains(k)
                    && model.field_named(name).is_none_or(|f| !f.is_readable())
            })
            .collect()
    }

    fn push_where(&self, model: &Model, dialect: crate::db::Dialect, sql: &mut Sql) {
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

    fn push_order(&self, model: &Model, sql: &mut Sql) {
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

/// A unit of work: one transaction, acting as one actor.
pub struct Unit {
    store: Store,
    tx: Option<Tx>,
    actor: Actor,
    events: Vec<ChangeEvent>,
    now: DateTime<Utc>,
    depth: u32,
    /// Opened by [`Store::begin_read`]: takes no row locks.
    read_only: bool,
}

/// How deep hooks may nest writes (a policy creating objects whose policies create objects…).
const MAX_HOOK_DEPTH: u32 = 8;

/// What a status write changes (synchronizer bookkeeping; never bumps `row_version`).
#[derive(Clone, Debug, Default)]
pub struct StatusUpdate {
    pub backend_status: Option<registry::BackendStatus>,
    pub backend_register: Option<String>,
    /// Mark enacted as of this row version (sets `enacted` to now and `enacted_version`).
    pub enacted_version: Option<i64>,
    /// Mark policed as of this row version.
    pub policed_version: Option<i64>,
    /// Backend-owned fields (pid, instance id, IPs), by field name.
    pub fields: Vec<(String, Value)>,
}

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

    fn tx(&mut self) -> &mut Tx {
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
    async fn load_visible(&mut self, model: &'static Model, id: i64) -> Result<Record, StoreError> {
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
            let stored = before.get_str("password").unwrap_or_default();
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
    async fn check_rules(
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

    /// Delete an object and apply the on-delete rules of everything pointing at it.
    pub async fn delete(&mut self, model: &'static Model, id: i64) -> Result<(), StoreError> {
        let before = self.load_visible(model, id).await?;
        permissions::check_write(self, Op::Delete, Some(&before), &before, &[]).await?;
        self.check_child_delete(&before).await?;
        if before.get_bool("write_protect") {
            return Err(StoreError::Conflict(format!(
                "{} {} is write-protected.",
                model.verbose_name,
                human_readable_name(&before)
            )));
        }
        let mut plan = Vec::new();
        self.plan_delete(before, &mut plan, 0).await?;
        // Who could see each removed object, asked before anything goes (a slice's members
        // are known by privileges the same delete removes first).
        let mut audiences = Vec::new();
        for step in &plan {
            if let DeleteStep::Remove(rec) = step {
                audiences.push(
                    permissions::audience(self, rec.model, rec.id())
                        .await?
                        .map(Arc::new),
                );
            }
        }
        let mut audiences = audiences.into_iter();
        for step in plan {
            match step {
                DeleteStep::Remove(rec) => self.remove(rec, audiences.next().flatten()).await?,
                DeleteStep::Clear { model, id, field } => {
                    let null = Value::Null(SqlType::Int);
                    self.update_fields(model, id, &[(field.as_str(), null)]).await?;
                }
            }
        }
        Ok(())
    }

    /// Collect what a delete does, children first, refusing on a protecting reference.
    fn plan_delete<'a>(
        &'a mut self,
        rec: Record,
        plan: &'a mut Vec<DeleteStep>,
        depth: u32,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>> {
        Box::pin(async move {
            let planned = |plan: &[DeleteStep], rec: &Record| {
                plan.iter().any(|s| matches!(s, DeleteStep::Remove(r) if r.model.name == rec.model.name && r.id() == rec.id()))
            };
            if depth > 32 || planned(plan, &rec) {
                return Ok(());
            }
            // The object's other row (parent or child) goes too: a child before its parent.
            let counterpart = self.counterpart(&rec).await?;
            if let Some(child) = counterpart.as_ref().filter(|c| c.model.extends.is_some()) {
                if !planned(plan, child) {
                    self.plan_delete(child.clone(), plan, depth + 1).await?;
                }
                if planned(plan, &rec) {
                    return Ok(());
                }
            }
            let reg = self.store.registry();
            for (ref_model, field) in reg.referrers(&rec.model.name) {
                let FieldKind::ForeignKey { on_delete, .. } = &field.kind else {
                    continue;
                };
                let mut sql = select_sql(ref_model);
                sql.push(&format!(" WHERE t.{} = ", field.column()))
                    .bind(Value::Int(rec.id()));
                if ref_model.field_named("deleted").is_some() {
                    sql.push(" AND NOT t.deleted");
                }
                sql.push(" ORDER BY t.id");
                let rows = self.fetch(&sql, &types(ref_model)).await?;
                if rows.is_empty() {
                    continue;
                }
                match on_delete {
                    OnDelete::Protect => {
                        return Err(StoreError::Conflict(format!(
                            "Cannot delete {} {}: {} {} still refer to it through \"{}\".",
                            rec.model.verbose_name,
                            human_readable_name(&rec),
                            rows.len(),
                            ref_model.verbose_name_plural,
                            field.name
                        )));
                    }
                    OnDelete::SetNull => {
                        for values in rows {
                            let child = Record {
                                model: ref_model,
                                values,
                            };
                            plan.push(DeleteStep::Clear {
                                model: ref_model,
                                id: child.id(),
                                field: field.name.clone(),
                            });
                        }
                    }
                    OnDelete::Cascade => {
                        for values in rows {
                            let child = Record {
                                model: ref_model,
                                values,
                            };
                            self.plan_delete(child, plan, depth + 1).await?;
                        }
                    }
                }
            }
            plan.push(DeleteStep::Remove(rec));
            if let Some(parent) = counterpart.filter(|c| c.model.extends.is_none()) {
                self.plan_delete(parent, plan, depth + 1).await?;
            }
            Ok(())
        })
    }

    /// Remove one row: soft when a synchronizer observes the model or when rows still refer to it
    /// (children awaiting purge), hard otherwise. `audience`: who could see it (for the event).
    async fn remove(&mut self, rec: Record, audience: Option<Arc<Vec<i64>>>) -> Result<(), StoreError> {
        let model = rec.model;
        let id = rec.id();
        let soft = model.field_named("deleted").is_some()
            && (self.store.is_observed(&model.name) || self.has_referrers(model, id).await?);
        if soft {
            let mut sql = Sql::new(format!("UPDATE {} SET deleted = ", model.table()));
            sql.bind(Value::Bool(true));
            sql.push(", enacted = NULL, policed = NULL, row_version = row_version + 1 WHERE id = ");
            sql.bind(Value::Int(id));
            self.execute(&sql).await?;
        } else {
            let mut sql = Sql::new(format!("DELETE FROM {} WHERE id = ", model.table()));
            sql.bind(Value::Int(id));
            self.execute(&sql).await.map_err(|e| match e {
                StoreError::Db(ref d) if constraint_violation(d) == Some(ConstraintViolation::ForeignKey) => {
                    StoreError::Conflict(format!("{} {id} is still referred to.", model.verbose_name))
                }
                e => e,
            })?;
        }
        self.announce(
            Change {
                kind: ChangeKind::Delete,
                before: Some(rec),
                after: None,
            },
            audience,
            serde_json::Map::new(),
        )
        .await
    }

    /// Whether any row (live or awaiting purge) still points at `model` `id`.
    async fn has_referrers(&mut self, model: &Model, id: i64) -> Result<bool, StoreError> {
        let reg = self.store.registry();
        for (ref_model, field) in reg.referrers(&model.name) {
            let mut sql = Sql::new(format!(
                "SELECT 1 FROM {} WHERE {} = ",
                ref_model.table(),
                field.column()
            ));
            sql.bind(Value::Int(id));
            sql.push(" LIMIT 1");
            if !self.fetch(&sql, &[SqlType::Int]).await?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Remove a soft-deleted row for good (after the backend delete succeeded). System only.
    pub async fn purge(&mut self, model: &'static Model, id: i64) -> Result<(), StoreError> {
        if self.actor != Actor::System {
            return Err(StoreError::PermissionDenied(
                "only the system purges objects".into(),
            ));
        }
        if self.has_referrers(model, id).await? {
            return Err(StoreError::Conflict(format!(
                "{} {id} still has children awaiting purge",
                model.name
            )));
        }
        let mut sql = Sql::new(format!("DELETE FROM {} WHERE id = ", model.table()));
        sql.bind(Value::Int(id));
        self.execute(&sql).await?;
        Ok(())
    }

    /// A synchronizer's status write: bookkeeping only, no `row_version` bump. System only.
    pub async fn set_status(
        &mut self,
        model: &'static Model,
        id: i64,
        status: &StatusUpdate,
    ) -> Result<(), StoreError> {
        if self.actor != Actor::System {
            return Err(StoreError::PermissionDenied(
                "status writes are for the synchronizer".into(),
            ));
        }
        let mut sql = Sql::new(format!("UPDATE {} SET id = id", model.table()));
        if let Some(s) = &status.backend_status {
            let s: String = s.to_string().chars().take(1024).collect();
            sql.push(", backend_status = ").bind(Value::Text(s));
        }
        if let Some(r) = &status.backend_register {
            sql.push(", backend_register = ").bind(Value::Text(r.clone()));
        }
        if let Some(v) = status.enacted_version {
            sql.push(", enacted = ").bind(Value::Time(self.now));
            sql.push(", enacted_version = ").bind(Value::Int(v));
        }
        if let Some(v) = status.policed_version {
            sql.push(", policed = ").bind(Value::Time(self.now));
            sql.push(", policed_version = ").bind(Value::Int(v));
        }
        for (name, v) in &status.fields {
            let f = model
                .field_named(name)
                .ok_or_else(|| StoreError::field(name, "Unknown field."))?;
            sql.push(&format!(", {} = ", f.column())).bind(v.clone());
        }
        sql.push(" WHERE id = ").bind(Value::Int(id));
        if self.execute(&sql).await? == 0 {
            return Err(StoreError::NotFound);
        }
        self.events
            .push(ChangeEvent::new(model.name.clone(), id, ChangeKind::Status));
        if status.backend_status.is_some() {
            self.mirror_status(model, &[id]).await?;
        }
        Ok(())
    }

    /// Many status writes of one model at once (the synchronizer's batch). On Postgres, writes of
    /// the common shape (status, register, enacted version; no backend fields) become one
    /// `UPDATE … FROM (VALUES …)` per few hundred rows instead of a round trip each; the rest, and
    /// everything on SQLite (in process, no round trips), go one by one. Rows already purged are
    /// skipped.
    pub async fn set_status_many(
        &mut self,
        model: &'static Model,
        writes: &[(i64, StatusUpdate)],
    ) -> Result<(), StoreError> {
        if self.actor != Actor::System {
            return Err(StoreError::PermissionDenied(
                "status writes are for the synchronizer".into(),
            ));
        }
        let bulk = |u: &StatusUpdate| {
            u.fields.is_empty()
                && u.policed_version.is_none()
                && u.backend_status.is_some()
                && u.backend_register.is_some()
        };
        let postgres = self.tx().dialect() == crate::db::Dialect::Postgres;
        let (common, other): (Vec<_>, Vec<_>) = writes.iter().partition(|(_, u)| postgres && bulk(u));
        for (id, u) in other {
            match self.set_status(model, *id, u).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        for chunk in common.chunks(500) {
            let mut sql = Sql::new(format!(
                "UPDATE {} AS t SET backend_status = v.bs, backend_register = v.br, \
                 enacted = CASE WHEN v.ev IS NULL THEN t.enacted ELSE ",
                model.table()
            ));
            sql.bind(Value::Time(self.now));
            sql.push(" END, enacted_version = COALESCE(v.ev, t.enacted_version) FROM (VALUES ");
            for (i, (id, u)) in chunk.iter().enumerate() {
                let casts = if i == 0 {
                    ["::bigint", "::text", "::text", "::bigint"]
                } else {
                    [""; 4]
                };
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Value::Int(*id)).push(casts[0]).push(", ");
                let status: String = u
                    .backend_status
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
                    .chars()
                    .take(1024)
                    .collect();
                sql.bind(Value::Text(status)).push(casts[1]).push(", ");
                sql.bind(Value::Text(u.backend_register.clone().unwrap_or_default()))
                    .push(casts[2])
                    .push(", ");
                sql.bind(
                    u.enacted_version
                        .map(Value::Int)
                        .unwrap_or(Value::Null(SqlType::Int)),
                )
                .push(casts[3])
                .push(")");
            }
            sql.push(") AS v(id, bs, br, ev) WHERE t.id = v.id RETURNING t.id");
            let mut ids = Vec::new();
            for r in self.fetch(&sql, &[SqlType::Int]).await? {
                if let Some(id) = r[0].as_int() {
                    self.events
                        .push(ChangeEvent::new(model.name.clone(), id, ChangeKind::Status));
                    ids.push(id);
                }
            }
            self.mirror_status(model, &ids).await?;
        }
        Ok(())
    }

    /// Apply input keys to a draft; returns the indexes of fields the input set, adding what
    /// is wrong to `errors`.
    fn decode_into(
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

fn merge_errors(into: &mut FieldErrors, from: FieldErrors) {
    for (k, v) in from {
        into.entry(k).or_default().extend(v);
    }
}

/// Decode API-shaped JSON input into a draft row: each known field parsed by its kind, unknown
/// fields and (with `full`, a PUT or a create) missing required ones as field errors. Returns
/// the indexes of the fields set. `system` may also set non-editable fields (a token's key hash,
/// backend ids). Pure: no database, so the fuzz target drives it directly.
pub fn decode_input(
    reg: &registry::Registry,
    model: &'static Model,
    input: &serde_json::Map<String, serde_json::Value>,
    draft: &mut [Option<Value>],
    full: bool,
    system: bool,
) -> Result<Vec<usize>, StoreError> {
    let mut errors = FieldErrors::new();
    let changed = decode_fields(reg, model, input, draft, full, system, &mut errors);
    if errors.is_empty() {
        Ok(changed)
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// [`decode_input`], adding to `errors` instead of failing, so one answer names every bad field.
fn decode_fields(
    reg: &registry::Registry,
    model: &'static Model,
    input: &serde_json::Map<String, serde_json::Value>,
    draft: &mut [Option<Value>],
    full: bool,
    system: bool,
    errors: &mut FieldErrors,
) -> Vec<usize> {
    let mut changed = Vec::new();
    for (key, v) in input {
        match model.fields.iter().position(|f| &f.name == key) {
            Some(i) if model.fields[i].is_writable() || (system && !model.fields[i].hidden && i > 0) => {
                match validate::parse_value(reg, &model.fields[i], v) {
                    Ok(val) => {
                        draft[i] = Some(val);
                        changed.push(i);
                    }
                    Err(m) => errors.entry(key.clone()).or_default().push(m),
                }
            }
            Some(i) if !model.fields[i].hidden => {} // read-only fields the API emits
            _ if is_emitted_key(reg, model, key) => {}
            _ => errors
                .entry(key.clone())
                .or_default()
                .push("Unknown field.".into()),
        }
    }
    if full {
        for f in &model.fields {
            if f.is_required() && !input.contains_key(&f.name) && !f.secret {
                errors
                    .entry(f.name.clone())
                    .or_default()
                    .push("This field is required.".into());
            }
        }
    }
    changed
}

/// Decode a whole API body for `model` the way a create does before it reaches the database:
/// many-to-many keys split off, defaults, each field parsed and checked. The fuzz target's entry
/// to the generic model layer; field errors as the API would report them.
pub fn decode_body(
    model: &'static Model,
    input: &serde_json::Map<String, serde_json::Value>,
    full: bool,
) -> Result<Vec<Value>, StoreError> {
    let (input, _m2m) = m2m::take_m2m(model, input)?;
    let mut draft = validate::defaults(model, Utc::now());
    decode_input(registry::registry(), model, &input, &mut draft, full, false)?;
    let mut errors = FieldErrors::new();
    let values = finish_draft(model, draft, None, &mut errors);
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(StoreError::Invalid(errors))
    }
}

impl Unit {
    /// Foreign keys must point at live objects the actor may see (an invisible id reads exactly
    /// like one that does not exist); unique values must be free (ignoring deleted rows). Fields
    /// that already have an error are not looked at again.
    async fn check_references(
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

    async fn is_taken(
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

    async fn insert(&mut self, rec: &Record) -> Result<i64, StoreError> {
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

    async fn write_update(&mut self, rec: &mut Record, changed: &[usize]) -> Result<(), StoreError> {
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
    async fn announce(
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
    async fn run_hooks_logged(
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

/// Check required fields and every field's value (messages go to `errors`); produce the row.
fn finish_draft(
    model: &'static Model,
    draft: Vec<Option<Value>>,
    before: Option<&Record>,
    errors: &mut FieldErrors,
) -> Vec<Value> {
    let mut values = Vec::with_capacity(draft.len());
    for (f, v) in model.fields.iter().zip(draft) {
        let reported = errors.contains_key(&f.name);
        match v {
            Some(v) if reported => values.push(v),
            None if reported => values.push(Value::Null(f.kind.sql_type())),
            Some(v) => {
                if !matches!(f.kind, FieldKind::AutoId) && (before.is_none() || f.is_writable()) {
                    validate::check_field(f, &v, errors);
                }
                values.push(v);
            }
            None if matches!(f.kind, FieldKind::AutoId) => values.push(Value::Null(SqlType::Int)),
            None => {
                errors
                    .entry(f.name.clone())
                    .or_default()
                    .push("This field is required.".into());
                values.push(Value::Null(f.kind.sql_type()));
            }
        }
    }
    values
}

enum DeleteStep {
    Remove(Record),
    Clear {
        model: &'static Model,
        id: i64,
        field: String,
    },
}

/// Keys the API itself emits that a client may send back: ignored on write.
fn is_emitted_key(reg: &Registry, model: &Model, key: &str) -> bool {
    matches!(key, "humanReadableName" | "validators" | "id")
        || reg.models.iter().any(|m| {
            m.many_to_many
                .iter()
                .any(|r| r.to == model.name && r.related_name == key)
        })
        || reg.referrers(&model.name).any(
            |(_, f)| matches!(&f.kind, FieldKind::ForeignKey { related_name, .. } if related_name == key),
        )
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

/// `humanReadableName`: the model's display template filled from the record (the API shows it,
/// the change log and delete messages name objects by it).
pub fn human_readable_name(rec: &Record) -> String {
    rec.model.display_with(|key| match rec.try_get(key) {
        Some(Value::Text(s)) => Some(s.clone()),
        Some(Value::Null(_)) | None => None,
        Some(v) => Some(v.to_json().to_string()),
    })
}

/// `s` as a lowercase SQL identifier or file name part: every other character becomes `_`.
pub(crate) fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}
