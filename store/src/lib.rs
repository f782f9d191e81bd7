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
mod decode;
mod event;
mod inherit;
pub mod m2m;
pub mod migrations;
pub mod password;
pub mod permissions;
mod query;
mod record;
pub mod rules;
pub mod seed;
mod unit;
pub mod validate;

use crate::db::{Db, DbError, Sql, Tx, Value};
use crate::query::live_and_visible;
use chrono::Utc;
use registry::{Model, Registry, SqlType};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

pub use decode::{decode_body, decode_input};
pub use event::{ChangeEvent, ChangeKind, NoteEvent, Notification};
pub use permissions::Op;
pub use query::{
    Filter, FilterOp, ListQuery, MAX_FILTER_CHARS, MAX_FILTERS, MAX_IN_VALUES, MAX_PAGE, append_sql,
    select_sql, types,
};
pub(crate) use record::slug;
pub use record::{Change, MissingField, ReadField, Record, human_readable_name};
pub use unit::{Savepoint, StatusUpdate, Unit};

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
