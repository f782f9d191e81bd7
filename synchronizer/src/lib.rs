//! The synchronizer runtime: steps that steer backends until they match the data model, and
//! report back. It knows no backend and no service (as kube-runtime is to its controllers):
//! backends (`backends/*`) and services (`services/*`) implement [`Step`] and [`ModelPolicy`],
//! and the server hands the engine the ones a configuration loads.
//!
//! The guide's Synchronizer Framework: a [`Step`] declares what it `provides` and `observes` and
//! its `requested_interval`, and implements `fetch_pending(deletion)`, `sync_record` and
//! `delete_record`. The [`engine`] orders steps by the dependency graph the registry's foreign
//! keys imply ([`graph`], `xos dmdot`), runs independent steps concurrently, writes status back
//! through the store's status writes (batched; they never make an object look changed), backs
//! off per object on failure, skips objects whose dependencies failed, purges soft-deleted rows
//! only after `delete_record` succeeded, and wakes on change events as well as on intervals.
//! Model policies ([`ModelPolicy`]) run before each pass; XOS's own, which create the
//! per-controller link rows, are [`policies::ControllerLinks`].
//!
//! Steps must be idempotent: a crash at any point followed by a restart converges without lost
//! or duplicated backend resources.

pub mod engine;
pub mod graph;
pub mod policies;

pub use policies::ModelPolicy;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use store::db::{Sql, Value};
use store::{Record, Store, StoreError, select_sql, types};

/// What a step gets to work with.
pub struct StepContext {
    pub store: Store,
    /// Where backends keep their state on this host (process logs of the local backend).
    pub state_dir: PathBuf,
    /// The `xos` binary local processes run (`xos workload`, `xos helloworld-serve`).
    pub xos_binary: PathBuf,
    /// Settings of backends and services, one value per type: the runtime carries them
    /// without knowing them (the local backend's limits, the image directory, …).
    settings: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl StepContext {
    /// A context whose local processes run this binary.
    pub fn new(store: Store, state_dir: PathBuf) -> StepContext {
        StepContext {
            store,
            state_dir,
            xos_binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("xos")),
            settings: HashMap::new(),
        }
    }

    /// Set the setting of type `T` (a backend's or service's configuration section).
    pub fn set<T: Any + Send + Sync>(&mut self, value: T) {
        self.settings.insert(TypeId::of::<T>(), Box::new(value));
    }

    /// The setting of type `T`, or its default when none was set.
    pub fn setting<T: Any + Send + Sync + Clone + Default>(&self) -> T {
        self.settings
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
            .unwrap_or_default()
    }

    /// The setting of type `T` to change in place (set to its default first when missing).
    pub fn setting_mut<T: Any + Send + Sync + Default>(&mut self) -> &mut T {
        self.settings
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("settings are keyed by their type")
    }
}

/// Why a step could not enact (or delete) an object.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A real failure: `2 - <message>` and a backoff.
    #[error("{0}")]
    Failed(String),
    /// Not an error of the object (XOS's InnocuousException): `1 - <message>`, no backoff.
    #[error("{0}")]
    Innocuous(String),
    /// Try again soon (XOS's DeferredException): `2 - <message>`, a short backoff.
    #[error("{0}")]
    Deferred(String),
    /// A fault the step records and leaves to a person (drift: report): `2 - <message>`, the
    /// backend-owned `fields` written with it (so the state is data, not status text), no
    /// backoff (the step fetches the row again only when something changes).
    #[error("{message}")]
    Reported {
        message: String,
        fields: Vec<(String, Value)>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<store::MissingField> for SyncError {
    fn from(e: store::MissingField) -> SyncError {
        SyncError::Failed(e.to_string())
    }
}

impl From<store::db::DbError> for SyncError {
    fn from(e: store::db::DbError) -> SyncError {
        SyncError::Store(StoreError::Db(e))
    }
}

/// What a successful `sync_record` reports back.
#[derive(Debug, Default)]
pub struct Enacted {
    /// `backend_status` after `1 - `; `OK` when empty.
    pub status: Option<String>,
    /// Backend-owned fields to write back (ids, state, addresses), by field name.
    pub fields: Vec<(String, Value)>,
}

impl Enacted {
    pub fn ok() -> Enacted {
        Enacted::default()
    }
    pub fn with_status(status: impl Into<String>) -> Enacted {
        Enacted {
            status: Some(status.into()),
            fields: Vec::new(),
        }
    }
    pub fn field(mut self, name: &str, v: Value) -> Enacted {
        self.fields.push((name.to_string(), v));
        self
    }
}

/// A synchronizer step (the guide's `SyncStep`).
#[async_trait::async_trait]
pub trait Step: Send + Sync {
    /// A name for logs, metrics and `backend_status` of failed dependencies.
    fn name(&self) -> &'static str;
    /// The models this step makes real: places it in the dependency graph.
    fn provides(&self) -> Vec<&'static str>;
    /// The model whose rows it fetches.
    fn observes(&self) -> &'static str;
    /// Minimum time between runs; zero: every pass (an internal step, driven by changes).
    fn requested_interval(&self) -> Duration {
        Duration::ZERO
    }
    /// Whether `fetch_pending` returns the changed rows this step enacts: true for a step driven
    /// by changes; an interval step that only re-checks enacted rows (drift repair) says false.
    /// The engine tells the rows no step handles from what such steps fetched.
    fn enacts_changes(&self) -> bool {
        true
    }
    /// How many objects it works on at once.
    fn concurrency(&self) -> usize {
        16
    }
    /// Objects to enact (changed since enacted), or with `deletion` the soft-deleted ones.
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        Ok(default_fetch_pending(&ctx.store, self.observes(), deletion, None).await?)
    }
    /// Make the backend match the object.
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError>;
    /// Remove the object from the backend (its row is purged afterwards).
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError>;
}

/// The guide's default `fetch_pending`: objects never enacted or changed since (by version
/// counter, not clock), not `lazy_blocked` or `no_sync`; with `deletion`, the soft-deleted ones.
/// `extra` narrows further (a backend's own rows). The pending-rows partial index keeps this
/// O(pending), whatever the table's size.
pub async fn default_fetch_pending(
    store: &Store,
    model: &str,
    deletion: bool,
    extra: Option<Sql>,
) -> Result<Vec<Record>, StoreError> {
    let model = store.model(model);
    let mut sql = select_sql(model);
    // The first term is the partial index's own condition, so both databases can use it.
    sql.push(" WHERE (t.row_version > t.enacted_version OR t.deleted)");
    if deletion {
        sql.push(" AND t.deleted");
    } else {
        sql.push(" AND NOT t.deleted AND t.row_version > t.enacted_version");
        if model.field_named("lazy_blocked").is_some() {
            sql.push(" AND NOT t.lazy_blocked AND NOT t.no_sync");
        }
    }
    if let Some(extra) = extra {
        store::append_sql(&mut sql, &extra);
    }
    sql.push(" ORDER BY t.id");
    let rows = store.db().fetch(&sql, &types(model)).await?;
    Ok(rows.into_iter().map(|values| Record { model, values }).collect())
}

/// `Sql` helper: ` AND <expr>` with one bound value.
pub fn and_where(expr: &str, v: Value) -> Sql {
    let mut s = Sql::new(format!(" AND {expr}"));
    s.bind(v);
    s
}
