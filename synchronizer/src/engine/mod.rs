//! The engine that runs the steps: passes in dependency order, status write-back, backoff,
//! failed-dependency skips, deletions and purges, leases between workers, wake-ups.
//!
//! Guarantees:
//! - `enacted_version` is set to the `row_version` read when the object was fetched, so a change
//!   made while `sync_record` ran is synced again.
//! - Everything written back goes through the store's status writes (they never bump
//!   `row_version`), in batches, one transaction per batch.
//! - A failure backs off that object only (exponential, capped) and never stops other objects
//!   or steps; objects whose dependencies failed in this pass are skipped with a status naming
//!   the dependency.
//! - A soft-deleted row is purged only after its step's `delete_record` succeeded, children
//!   before parents (the deletion pass runs the layers in reverse).
//! - On Postgres, several workers share the work: a worker holds an advisory lock on each object
//!   it works on (released when its status is written, or when the worker dies) and re-reads the
//!   object after locking, so no object is enacted by two workers at once or twice for one change.

mod backoff;
mod fault;
mod leases;

mod clock;

pub use backoff::now_ms;
pub use clock::{Clock, ManualClock, SystemClock};

use crate::graph::{CycleError, step_layers};
use crate::{ModelPolicy, Step, StepContext, SyncError};
use backoff::Register;
use fault::CrashPoint;
use futures::StreamExt;
use futures::future::BoxFuture;
use leases::Leases;
use registry::fields::common;
use registry::{BackendStatus, SqlType};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::db::Sql;
use store::{Actor, Record, StatusUpdate, StoreError};

/// How the engine behaves.
#[derive(Clone)]
pub struct EngineOptions {
    /// First backoff after a failure; doubles with each further failure.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Longest wait between passes without any event (XOS's loop waited 5 s).
    pub idle_tick: Duration,
    /// Model policies run before each pass, in this order (whoever owns a policy registers it:
    /// the core's controller links, a backend's networks).
    pub policies: Vec<Arc<dyn ModelPolicy>>,
    /// Status writes per transaction.
    pub batch: usize,
    /// The services this engine runs for (`xos sync --service`): it purges the deleted rows of
    /// their unobserved models only. None: every service.
    pub services: Option<Vec<String>>,
    /// The time backoff and step intervals are measured by (a test's [`ManualClock`]).
    pub clock: Arc<dyn Clock>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(600),
            idle_tick: Duration::from_secs(5),
            policies: Vec::new(),
            batch: 2000,
            services: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassReport {
    pub enacted: usize,
    pub failed: usize,
    pub deleted: usize,
    pub policed: usize,
    /// Objects left alone: backing off, dependency failed, or held by another worker.
    pub skipped: usize,
}

/// Counters for metrics, per step.
#[derive(Default)]
pub struct StepStats {
    pub runs: AtomicU64,
    pub enacted: AtomicU64,
    pub failed: AtomicU64,
    pub backoff_skips: AtomicU64,
    pub pending: AtomicU64,
}

/// The result of working on one object.
enum Outcome {
    Enacted {
        id: i64,
        version: i64,
        result: crate::Enacted,
    },
    Deleted {
        id: i64,
    },
    Failed {
        id: i64,
        name: String,
        error: SyncError,
        register: String,
    },
    DependencyFailed {
        id: i64,
        message: BackendStatus,
        write: bool,
    },
    /// Backing off after a failure (`failed`: its status says so): its dependents wait too.
    BackingOff {
        id: i64,
        name: String,
        failed: bool,
    },
}

/// An object of this pass that its dependents must not run ahead of: failed, or not enacted
/// (backing off, or itself held back by a dependency).
#[derive(Clone, Debug)]
struct Held {
    /// Its readable name (empty: its id is shown).
    name: String,
    /// It failed (`2 - Failed dependency: …` for dependents) rather than waits
    /// (`0 - waiting for …`).
    failed: bool,
}

type HeldMap = Mutex<HashMap<(String, i64), Held>>;

/// The synchronizer engine.
pub struct Engine {
    ctx: Arc<StepContext>,
    steps: Vec<Arc<dyn Step>>,
    layers: Vec<Vec<usize>>,
    opts: EngineOptions,
    /// When each interval step last ran, by the engine's clock (ms).
    last_run: Mutex<HashMap<usize, i64>>,
    crash: Option<CrashPoint>,
    leases: Option<Leases>,
    pub stats: HashMap<&'static str, Arc<StepStats>>,
    pub passes: AtomicU64,
    last_orphan_purge: Mutex<Option<Instant>>,
    /// The earliest end of a backoff seen in the last pass (ms; `i64::MAX`: none): the engine
    /// wakes then rather than at its idle tick, so a deferred object (a server waiting for its
    /// network) is retried when it may be, not seconds later.
    next_due: AtomicI64,
}

/// How often an idle engine looks for deleted parents to purge.
const ORPHAN_PURGE_EVERY: Duration = Duration::from_secs(10);

impl Engine {
    pub async fn new(
        ctx: StepContext,
        steps: Vec<Arc<dyn Step>>,
        opts: EngineOptions,
    ) -> Result<Engine, EngineError> {
        let layers = step_layers(ctx.store.registry(), &steps)?;
        let leases = match ctx.store.db().pg_pool() {
            Some(pool) => Some(Leases {
                conn: tokio::sync::Mutex::new(pool.acquire().await.map_err(StoreError::from_sqlx)?.detach()),
            }),
            None => None,
        };
        for s in &steps {
            ctx.store.set_observed(s.observes(), true);
        }
        let stats = steps
            .iter()
            .map(|s| (s.name(), Arc::new(StepStats::default())))
            .collect();
        Ok(Engine {
            ctx: Arc::new(ctx),
            steps,
            layers,
            opts,
            last_run: Mutex::new(HashMap::new()),
            crash: CrashPoint::from_env(),
            leases,
            stats,
            passes: AtomicU64::new(0),
            last_orphan_purge: Mutex::new(None),
            next_due: AtomicI64::new(i64::MAX),
        })
    }

    pub fn context(&self) -> &StepContext {
        &self.ctx
    }

    /// The step names in the order they run, layer by layer.
    pub fn order(&self) -> Vec<Vec<&'static str>> {
        self.layers
            .iter()
            .map(|l| l.iter().map(|&i| self.steps[i].name()).collect())
            .collect()
    }

    fn crash(&self, point: &str) {
        if let Some(c) = &self.crash {
            c.reach(point);
        }
    }

    /// One pass: model policies, then the sync pass in dependency order, then the deletion pass
    /// in reverse order, then purges of deleted rows no step observes.
    pub async fn run_once(&self) -> Result<PassReport, StoreError> {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.next_due.store(i64::MAX, Ordering::Relaxed);
        let mut report = PassReport::default();
        for policy in &self.opts.policies {
            report.policed += policy.run(&self.ctx.store).await?;
        }
        let failed: HeldMap = Mutex::new(HashMap::new());
        let fetched: Mutex<HashMap<String, HashSet<i64>>> = Mutex::new(HashMap::new());
        for deletion in [false, true] {
            let layers: Vec<&Vec<usize>> = if deletion {
                self.layers.iter().rev().collect()
            } else {
                self.layers.iter().collect()
            };
            for layer in layers {
                // Boxed: spawned engines need these futures to be provably `Send`.
                let runs = layer
                    .iter()
                    .map(|&i| -> BoxFuture<'_, Result<PassReport, StoreError>> {
                        Box::pin(self.run_step(i, deletion, &failed, &fetched))
                    });
                for r in futures::future::join_all(runs).await {
                    let r = r?;
                    report.enacted += r.enacted;
                    report.failed += r.failed;
                    report.deleted += r.deleted;
                    report.skipped += r.skipped;
                }
            }
        }
        let fetched = fetched.into_inner().expect("fetched lock");
        self.mark_unhandled(&fetched).await?;
        // Unobserved parents wait only for children purged by a deletion pass: look after such a
        // pass, and otherwise now and then (a backstop), not on every idle pass.
        let due = self
            .last_orphan_purge
            .lock()
            .expect("purge lock")
            .is_none_or(|t| t.elapsed() > ORPHAN_PURGE_EVERY);
        if report.deleted > 0 || due {
            *self.last_orphan_purge.lock().expect("purge lock") = Some(Instant::now());
            self.purge_unobserved().await?;
        }
        Ok(report)
    }

    async fn run_step(
        &self,
        i: usize,
        deletion: bool,
        failed: &HeldMap,
        fetched: &Mutex<HashMap<String, HashSet<i64>>>,
    ) -> Result<PassReport, StoreError> {
        let step = &self.steps[i];
        let interval = step.requested_interval();
        if !deletion && !interval.is_zero() {
            let now = self.opts.clock.now_ms();
            let mut last = self.last_run.lock().expect("last run lock");
            if last
                .get(&i)
                .is_some_and(|t| now - t < interval.as_millis() as i64)
            {
                return Ok(PassReport::default());
            }
            last.insert(i, now);
        }
        let stats = self.stats[step.name()].clone();
        stats.runs.fetch_add(1, Ordering::Relaxed);
        let objs = match step.fetch_pending(&self.ctx, deletion).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(step = step.name(), error = %e, "fetch_pending failed");
                return Ok(PassReport {
                    failed: 1,
                    ..Default::default()
                });
            }
        };
        if !deletion {
            stats.pending.store(objs.len() as u64, Ordering::Relaxed);
            if interval.is_zero() && step.enacts_changes() {
                fetched
                    .lock()
                    .expect("fetched lock")
                    .entry(step.observes().to_string())
                    .or_default()
                    .extend(objs.iter().map(Record::id));
            }
        }
        if objs.is_empty() {
            return Ok(PassReport::default());
        }
        let model = objs[0].model;
        // With several workers, claim a chunk at a time so the others get the rest.
        let claim = if self.leases.is_some() {
            step.concurrency().max(1) * 2
        } else {
            objs.len()
        };
        let mut report = PassReport::default();
        let mut objs = objs;
        while !objs.is_empty() {
            let rest = objs.split_off(claim.min(objs.len()));
            let r = self.run_chunk(step, model, objs, deletion, failed).await?;
            report.enacted += r.enacted;
            report.failed += r.failed;
            report.deleted += r.deleted;
            report.skipped += r.skipped;
            objs = rest;
        }
        Ok(report)
    }

    /// Work on one claimed chunk of a step's objects: lock (Postgres), enact, write back, release.
    async fn run_chunk(
        &self,
        step: &Arc<dyn Step>,
        model: &'static registry::Model,
        objs: Vec<Record>,
        deletion: bool,
        failed: &HeldMap,
    ) -> Result<PassReport, StoreError> {
        let stats = self.stats[step.name()].clone();
        let (objs, locked) = match &self.leases {
            Some(l) => l.acquire(&self.ctx.store, model, objs).await?,
            None => (objs, Vec::new()),
        };
        let snapshot = failed.lock().expect("failed lock").clone();
        // Indexes, not references, into `objs`: keeps the futures' lifetimes simple (`Send`).
        let objs_ref = &objs;
        let snapshot_ref = &snapshot;
        let outcomes: Vec<Outcome> = futures::stream::iter(0..objs.len())
            .map(|k| -> BoxFuture<'_, Outcome> {
                Box::pin(self.process(step.as_ref(), &objs_ref[k], deletion, snapshot_ref))
            })
            .buffer_unordered(step.concurrency().max(1))
            .collect()
            .await;
        let mut report = PassReport::default();
        let mut writes = Vec::new();
        let mut newly_failed = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Enacted { id, version, result } => {
                    report.enacted += 1;
                    let status = BackendStatus::ok(result.status.as_deref());
                    let register =
                        json!({"next_run": 0, "exponent": 0, "last_success": self.opts.clock.now_ms()})
                            .to_string();
                    writes.push(Write::Status(
                        id,
                        StatusUpdate {
                            backend_status: Some(status),
                            backend_register: Some(register),
                            enacted_version: Some(version),
                            fields: result.fields,
                            ..Default::default()
                        },
                    ));
                }
                Outcome::Deleted { id } => {
                    report.deleted += 1;
                    writes.push(Write::Purge(id));
                }
                Outcome::Failed {
                    id,
                    name,
                    error,
                    register,
                } => {
                    report.failed += 1;
                    // XOS wrote innocuous errors with the OK code: not a failure to show.
                    let status = if matches!(error, SyncError::Innocuous(_)) {
                        BackendStatus::Ok(error.to_string())
                    } else {
                        BackendStatus::Failed(error.to_string())
                    };
                    tracing::info!(step = step.name(), id, error = %error, "sync failed");
                    newly_failed.push((id, Held { name, failed: true }));
                    let fields = match error {
                        SyncError::Reported { fields, .. } => fields,
                        _ => Vec::new(),
                    };
                    writes.push(Write::Status(
                        id,
                        StatusUpdate {
                            backend_status: Some(status),
                            backend_register: Some(register),
                            fields,
                            ..Default::default()
                        },
                    ));
                }
                Outcome::DependencyFailed { id, message, write } => {
                    report.skipped += 1;
                    newly_failed.push((
                        id,
                        Held {
                            name: String::new(),
                            failed: message.is_failed(),
                        },
                    ));
                    if write {
                        writes.push(Write::Status(
                            id,
                            StatusUpdate {
                                backend_status: Some(message),
                                ..Default::default()
                            },
                        ));
                    }
                }
                Outcome::BackingOff { id, name, failed } => {
                    report.skipped += 1;
                    newly_failed.push((id, Held { name, failed }));
                }
            }
        }
        stats.enacted.fetch_add(report.enacted as u64, Ordering::Relaxed);
        stats.failed.fetch_add(report.failed as u64, Ordering::Relaxed);
        for chunk in writes.chunks(self.opts.batch.max(1)) {
            self.flush(model, chunk).await?;
        }
        self.crash("after_status");
        if let Some(l) = &self.leases {
            l.release(model, &locked).await;
        }
        // Record failures under the observed model and under the models the step provides (a
        // failed ControllerSlice is a failed Slice for the instances that depend on it, named
        // as the slice: read once per failure, which is rare).
        let mut provided = Vec::new();
        for (id, held) in &newly_failed {
            let rec = objs.iter().find(|o| o.id() == *id);
            for p in step.provides() {
                if p == model.name {
                    continue;
                }
                if let Some(fk) = model.foreign_keys().find(|fk| fk.fk_target() == Some(p))
                    && let Some(pid) = rec.and_then(|r| r.get_int(&fk.name))
                {
                    let name = self.name_of(p, pid).await.unwrap_or_default();
                    provided.push(((p.to_string(), pid), Held { name, ..held.clone() }));
                }
            }
        }
        let mut f = failed.lock().expect("failed lock");
        for (id, held) in newly_failed {
            f.insert((model.name.clone(), id), held);
        }
        f.extend(provided);
        Ok(report)
    }

    /// The readable name of row `id` of `model` (None when it is gone).
    async fn name_of(&self, model: &str, id: i64) -> Option<String> {
        let store = &self.ctx.store;
        let model = store.registry().model(model)?;
        let mut sql = store::select_sql(model);
        sql.push(" WHERE t.id = ").bind(store::db::Value::Int(id));
        let values = store
            .db()
            .fetch(&sql, &store::types(model))
            .await
            .ok()?
            .into_iter()
            .next()?;
        Some(store::human_readable_name(&Record { model, values }))
    }

    async fn process(
        &self,
        step: &dyn Step,
        obj: &Record,
        deletion: bool,
        failed: &HashMap<(String, i64), Held>,
    ) -> Outcome {
        let id = obj.id();
        let reg = Register::parse(obj);
        if !reg.due(self.opts.clock.now_ms()) {
            self.stats[step.name()]
                .backoff_skips
                .fetch_add(1, Ordering::Relaxed);
            self.next_due.fetch_min(reg.next_run(), Ordering::Relaxed);
            return Outcome::BackingOff {
                id,
                name: store::human_readable_name(obj),
                failed: BackendStatus::parse(obj.opt(common::BACKEND_STATUS).unwrap_or_default()).is_failed(),
            };
        }
        if !deletion {
            for fk in obj.model.foreign_keys() {
                let (Some(to), Some(target)) = (fk.fk_target(), obj.get_int(&fk.name)) else {
                    continue;
                };
                if let Some(held) = failed.get(&(to.to_string(), target)) {
                    let what = if held.name.is_empty() {
                        format!("{to} {target}")
                    } else {
                        format!("{to} {}", held.name)
                    };
                    let message = if held.failed {
                        BackendStatus::Failed(format!("Failed dependency: {what}"))
                    } else {
                        BackendStatus::Pending(format!("waiting for {what}"))
                    };
                    // Written only when it says something new: a status write wakes the engine,
                    // and a parent backing off holds its dependents for many passes.
                    let write = obj.opt(common::BACKEND_STATUS) != Some(message.to_string().as_str());
                    return Outcome::DependencyFailed { id, message, write };
                }
            }
        }
        self.crash("before_backend");
        let result = if deletion {
            step.delete_record(&self.ctx, obj).await.map(|_| None)
        } else {
            step.sync_record(&self.ctx, obj).await.map(Some)
        };
        self.crash("after_backend");
        match result {
            Ok(Some(result)) => Outcome::Enacted {
                id,
                version: obj.opt(common::ROW_VERSION).unwrap_or(0),
                result,
            },
            Ok(None) => Outcome::Deleted { id },
            Err(error) => {
                let base = match error {
                    SyncError::Deferred(_) => self.opts.backoff_base / 4,
                    _ => self.opts.backoff_base,
                };
                let register = if matches!(error, SyncError::Reported { .. }) {
                    json!({"next_run": 0, "exponent": 0}).to_string()
                } else {
                    let (register, next_run) =
                        reg.after_failure(self.opts.clock.now_ms(), base, self.opts.backoff_cap);
                    self.next_due.fetch_min(next_run, Ordering::Relaxed);
                    register
                };
                Outcome::Failed {
                    id,
                    name: store::human_readable_name(obj),
                    error,
                    register,
                }
            }
        }
    }

    /// Tell the rows no step of this engine handles (XOS left them "Provisioning in progress"
    /// forever): pending rows of a model its change-driven steps observe that none of them
    /// fetched in this pass (an instance of a deployment without a controller, a network on a
    /// backend without networks), and rows held back by `no_sync` or `lazy_blocked`. Only an
    /// engine that runs every service decides (a model's steps may run elsewhere otherwise),
    /// and only for models no interval step enacts changes of (it may simply not have run).
    /// Each status is written once (a write wakes the engine).
    async fn mark_unhandled(&self, fetched: &HashMap<String, HashSet<i64>>) -> Result<(), StoreError> {
        if self.opts.services.is_some() {
            return Ok(());
        }
        let store = &self.ctx.store;
        let mut models: Vec<&'static str> = Vec::new();
        for s in &self.steps {
            let m = s.observes();
            let decidable = self
                .steps
                .iter()
                .filter(|o| o.observes() == m)
                .all(|o| o.requested_interval().is_zero() || !o.enacts_changes());
            if decidable && s.requested_interval().is_zero() && s.enacts_changes() && !models.contains(&m) {
                models.push(m);
            }
        }
        for name in models {
            let model = store.model(name);
            let gated = model.field_named("lazy_blocked").is_some() && model.field_named("no_sync").is_some();
            let sql = Sql::new(format!(
                "SELECT id, backend_status{} FROM {} WHERE (row_version > enacted_version OR deleted) \
                 AND NOT deleted AND row_version > enacted_version ORDER BY id LIMIT 1000",
                if gated { ", no_sync, lazy_blocked" } else { "" },
                model.table()
            ));
            let mut types = vec![SqlType::Int, SqlType::Text];
            if gated {
                types.extend([SqlType::Bool, SqlType::Bool]);
            }
            let rows = store.db().fetch(&sql, &types).await?;
            let seen = fetched.get(name);
            let mut writes = Vec::new();
            for r in rows {
                let id = r[0].as_int().unwrap_or(0);
                if seen.is_some_and(|s| s.contains(&id)) {
                    continue;
                }
                let message = if gated && r[2].as_bool() == Some(true) {
                    "not synchronized: no_sync is set".to_string()
                } else if gated && r[3].as_bool() == Some(true) {
                    "not enacted until something needs it (lazy_blocked)".to_string()
                } else {
                    format!(
                        "not handled here: no synchronizer step of this configuration enacts this {name} \
                         (its deployment or controller has no backend for it)"
                    )
                };
                let status = BackendStatus::Pending(message);
                if r[1].as_str() != Some(status.to_string().as_str()) {
                    writes.push((
                        id,
                        StatusUpdate {
                            backend_status: Some(status),
                            ..Default::default()
                        },
                    ));
                }
            }
            if !writes.is_empty() {
                let mut unit = store.begin(Actor::System).await?;
                unit.set_status_many(model, &writes).await?;
                unit.commit().await?;
            }
        }
        Ok(())
    }

    async fn flush(&self, model: &'static registry::Model, writes: &[Write]) -> Result<(), StoreError> {
        let mut unit = self.ctx.store.begin(Actor::System).await?;
        let statuses: Vec<(i64, StatusUpdate)> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Status(id, u) => Some((*id, u.clone())),
                Write::Purge(_) => None,
            })
            .collect();
        unit.set_status_many(model, &statuses).await?;
        for w in writes {
            match w {
                Write::Status(..) => {}
                Write::Purge(id) => match unit.purge(model, *id).await {
                    // Children still wait for their own backend delete: purged in a later pass.
                    Ok(()) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                },
            }
        }
        unit.commit().await?;
        Ok(())
    }

    /// Deleted rows of models no step observes were kept only for their children; purge those
    /// whose children are gone (children first, so a chain empties over passes).
    async fn purge_unobserved(&self) -> Result<(), StoreError> {
        let store = &self.ctx.store;
        let observed: HashSet<&str> = self.steps.iter().map(|s| s.observes()).collect();
        for model in &store.registry().models {
            // Observed by a step here or by another service's synchronizer: theirs to purge.
            let mine = self.opts.services.as_ref().is_none_or(|s| s.contains(&model.app));
            if !mine
                || !store.is_loaded(model)
                || observed.contains(model.name.as_str())
                || store.is_observed(&model.name)
                || model.field_named("deleted").is_none()
            {
                continue;
            }
            let sql = Sql::new(format!(
                "SELECT id FROM {} WHERE (row_version > enacted_version OR deleted) AND deleted LIMIT 1000",
                model.table()
            ));
            let rows = store.db().fetch(&sql, &[SqlType::Int]).await?;
            if rows.is_empty() {
                continue;
            }
            let model = store.model(&model.name);
            let mut unit = store.begin(Actor::System).await?;
            for r in rows {
                match unit.purge(model, r[0].as_int().unwrap_or(0)).await {
                    Ok(()) | Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            unit.commit().await?;
        }
        Ok(())
    }

    /// Run passes until `shutdown` turns true: after every change event on `rx` (coalesced;
    /// whatever the events are, the engine only wakes on them), after `idle_tick`, or when a
    /// step's interval comes due.
    pub async fn run<E: Clone>(
        self: Arc<Self>,
        mut rx: tokio::sync::broadcast::Receiver<E>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let tick = self
            .steps
            .iter()
            .map(|s| s.requested_interval())
            .filter(|d| !d.is_zero())
            .fold(self.opts.idle_tick, Duration::min);
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "synchronizer pass failed");
            }
            tokio::select! {
                r = rx.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        break;
                    }
                    // Coalesce a burst of events into one pass.
                    while rx.try_recv().is_ok() {}
                }
                _ = tokio::time::sleep(self.wait(tick)) => {}
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        break;
                    }
                }
            }
            if *shutdown.borrow() {
                break;
            }
        }
    }
}

impl Engine {
    /// How long to sleep without events: the idle tick, or less when a backoff ends sooner.
    fn wait(&self, tick: Duration) -> Duration {
        let due = self.next_due.load(Ordering::Relaxed);
        if due == i64::MAX {
            return tick;
        }
        let ms = (due - self.opts.clock.now_ms()).max(10) as u64;
        tick.min(Duration::from_millis(ms))
    }
}

enum Write {
    Status(i64, StatusUpdate),
    Purge(i64),
}

/// Errors starting the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Cycle(#[from] CycleError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Used by tests and the benchmark: a step that enacts every object without a backend.
pub struct NoopStep {
    pub model: &'static str,
}

#[async_trait::async_trait]
impl Step for NoopStep {
    fn name(&self) -> &'static str {
        "noop"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec![self.model]
    }
    fn observes(&self) -> &'static str {
        self.model
    }
    fn concurrency(&self) -> usize {
        256
    }
    async fn sync_record(&self, _: &StepContext, _: &Record) -> Result<crate::Enacted, SyncError> {
        Ok(crate::Enacted::ok())
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}
