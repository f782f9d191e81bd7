//! One drift step for every cloud: on an interval, one list of the cloud's instances per
//! controller, compared with what XOS last observed (`Instance.observed_state`, `instance_id`,
//! `ip`: data written by the instance step, not text read back out of a status), then each
//! instance that changed is reflected, re-created or reported by the controller's `drift`
//! setting. A backend says only how to list, observe, reflect and re-create
//! ([`DriftSource`]); the comparison and the setting are the same everywhere.

use crate::Drift;
use registry::fields::instance;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::db::Value;
use store::{Record, Store};
use synchronizer::{Enacted, Step, StepContext, SyncError};

/// `Instance.observed_state` of an instance deleted outside XOS and reported, not re-created.
pub const GONE: &str = "gone";

/// What a cloud says of one instance, as XOS records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The cloud's id of the instance (`Instance.instance_id`).
    pub id: String,
    /// Its address (`Instance.ip`).
    pub ip: Option<String>,
    /// Its state at the cloud (`Instance.observed_state`: `ACTIVE`, `running`, …).
    pub state: String,
}

impl Observed {
    /// The backend-owned fields that record it on the instance.
    pub fn fields(&self) -> Vec<(String, Value)> {
        vec![
            ("instance_id".into(), Value::Text(self.id.clone())),
            (
                "ip".into(),
                self.ip
                    .clone()
                    .map(Value::Text)
                    .unwrap_or(Value::Null(registry::SqlType::Text)),
            ),
            ("observed_state".into(), Value::Text(self.state.clone())),
        ]
    }
}

/// What a backend supplies to the shared drift step.
#[async_trait::async_trait]
pub trait DriftSource: Send + Sync + 'static {
    /// A usable controller of this backend, with its client and settings.
    type Controller: Send + Sync;
    /// The cloud's own description of an instance.
    type Cloud: Clone + Send + Sync + 'static;
    /// The step's name (`ec2_drift`, `openstack_drift`).
    fn step_name(&self) -> &'static str;
    /// This backend's controllers that can be used now (the others logged and skipped).
    async fn controllers(&self, store: &Store) -> Result<Vec<Self::Controller>, SyncError>;
    /// The controller's deployment (its instances are the deployment's).
    fn deployment(&self, c: &Self::Controller) -> i64;
    /// The controller's `drift` setting.
    fn drift(&self, c: &Self::Controller) -> Drift;
    /// The controller of an instance's deployment.
    async fn controller_of(&self, store: &Store, rec: &Record) -> Result<Self::Controller, SyncError>;
    /// The live instances at the cloud, by XOS instance id (one list call). An error skips the
    /// controller this time and is logged.
    async fn live(
        &self,
        c: &Self::Controller,
        store: &Store,
        enacted: &[Record],
    ) -> Result<HashMap<i64, Self::Cloud>, String>;
    /// What XOS records of a live instance.
    fn observe(&self, cloud: &Self::Cloud) -> Observed;
    /// The status and fields a live instance is enacted with (those of [`Observed::fields`]
    /// among them).
    fn reflect(&self, cloud: &Self::Cloud) -> Enacted;
    /// Make an instance deleted outside XOS again; `note` says why, for its status.
    async fn recreate(&self, store: &Store, rec: &Record, note: &str) -> Result<Enacted, SyncError>;
    /// The cloud's word for an instance gone (EC2 `terminated`, OpenStack `deleted`).
    fn gone_word(&self) -> &'static str {
        "deleted"
    }
    /// Repairs of other objects on the same list interval (networks), before the instances.
    async fn before(&self, _c: &Self::Controller, _store: &Store) {}
    /// Repairs after the instances; `gone` are the instances with no live instance at the
    /// cloud (about to be made again, or reported).
    async fn after(&self, _c: &Self::Controller, _store: &Store, _gone: &[i64]) {}
}

/// Whether instance `r` differs from what the cloud shows (`now`, None: no live instance), under
/// the controller's `drift` setting. A reported instance stays as it is until the setting says
/// `recreate` (or the instance comes back).
pub fn differs(r: &Record, now: Option<&Observed>, drift: Drift) -> bool {
    let state = r.opt(instance::OBSERVED_STATE);
    match now {
        None => state != Some(GONE) || drift == Drift::Recreate,
        Some(o) => {
            r.opt(instance::INSTANCE_ID) != Some(o.id.as_str())
                || r.opt(instance::IP) != o.ip.as_deref()
                || state != Some(o.state.as_str())
        }
    }
}

/// The drift step of a backend.
pub struct DriftStep<S: DriftSource> {
    source: Arc<S>,
    interval: Duration,
    /// What the last fetch saw, by instance id (None: no live instance).
    seen: Mutex<HashMap<i64, Option<S::Cloud>>>,
}

impl<S: DriftSource> DriftStep<S> {
    pub fn new(source: Arc<S>, interval: Duration) -> DriftStep<S> {
        DriftStep {
            source,
            interval,
            seen: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait::async_trait]
impl<S: DriftSource> Step for DriftStep<S> {
    fn name(&self) -> &'static str {
        self.source.step_name()
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Instance"]
    }
    fn observes(&self) -> &'static str {
        "Instance"
    }
    fn enacts_changes(&self) -> bool {
        false // it re-checks enacted rows only
    }
    fn requested_interval(&self) -> Duration {
        self.interval
    }
    fn concurrency(&self) -> usize {
        4
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        if deletion {
            return Ok(Vec::new());
        }
        let src = &self.source;
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for c in src.controllers(&ctx.store).await? {
            src.before(&c, &ctx.store).await;
            let enacted = crate::enacted_instances(&ctx.store, src.deployment(&c)).await?;
            if enacted.is_empty() {
                continue;
            }
            let mut live = match src.live(&c, &ctx.store, &enacted).await {
                Ok(live) => live,
                Err(e) => {
                    tracing::warn!(step = src.step_name(), error = %e, "drift check failed");
                    continue;
                }
            };
            let drift = src.drift(&c);
            let mut gone = Vec::new();
            for r in enacted {
                let now = live.remove(&r.id());
                if now.is_none() {
                    gone.push(r.id());
                }
                if differs(&r, now.as_ref().map(|x| src.observe(x)).as_ref(), drift) {
                    seen.insert(r.id(), now);
                    out.push(r);
                }
            }
            src.after(&c, &ctx.store, &gone).await;
        }
        *self.seen.lock().expect("seen lock") = seen;
        Ok(out)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let now = self
            .seen
            .lock()
            .expect("seen lock")
            .get(&obj.id())
            .cloned()
            .flatten();
        if let Some(cloud) = now {
            return Ok(self.source.reflect(&cloud));
        }
        let c = self.source.controller_of(&ctx.store, obj).await?;
        let gone = obj
            .opt(instance::INSTANCE_ID)
            .unwrap_or("the instance")
            .to_string();
        match self.source.drift(&c) {
            Drift::Report => Err(SyncError::Reported {
                message: format!(
                    "{gone} was {} outside XOS (drift: report, so it is not re-created)",
                    self.source.gone_word()
                ),
                fields: vec![("observed_state".into(), Value::Text(GONE.into()))],
            }),
            Drift::Recreate => {
                tracing::info!(step = self.source.step_name(), instance = obj.id(), was = %gone, "re-creating an instance deleted outside XOS");
                let note = format!("re-created: {gone} was {} outside XOS", self.source.gone_word());
                self.source.recreate(&ctx.store, obj, &note).await
            }
        }
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Instance row with these backend-owned values (the rest null).
    fn instance(id: Option<&str>, ip: Option<&str>, state: Option<&str>) -> Record {
        let model = registry::registry().model("Instance").expect("core model");
        let values = model
            .fields
            .iter()
            .map(|f| {
                let v = match f.name.as_str() {
                    "instance_id" => id,
                    "ip" => ip,
                    "observed_state" => state,
                    _ => None,
                };
                v.map(|s| Value::Text(s.into()))
                    .unwrap_or(Value::Null(f.kind.sql_type()))
            })
            .collect();
        Record { model, values }
    }

    fn seen(id: &str, ip: Option<&str>, state: &str) -> Observed {
        Observed {
            id: id.into(),
            ip: ip.map(str::to_string),
            state: state.into(),
        }
    }

    #[test]
    fn a_live_instance_differs_only_when_what_was_recorded_changed() {
        let r = instance(Some("i-1"), Some("10.0.0.5"), Some("running"));
        for drift in [Drift::Recreate, Drift::Report] {
            assert!(!differs(
                &r,
                Some(&seen("i-1", Some("10.0.0.5"), "running")),
                drift
            ));
            assert!(differs(
                &r,
                Some(&seen("i-1", Some("10.0.0.5"), "stopped")),
                drift
            ));
            assert!(differs(
                &r,
                Some(&seen("i-2", Some("10.0.0.5"), "running")),
                drift
            ));
            assert!(differs(&r, Some(&seen("i-1", None, "running")), drift));
        }
        // Recorded before the state was data: reflected once, then quiet.
        let old = instance(Some("i-1"), Some("10.0.0.5"), None);
        assert!(differs(
            &old,
            Some(&seen("i-1", Some("10.0.0.5"), "running")),
            Drift::Recreate
        ));
    }

    #[test]
    fn a_reported_instance_waits_for_the_setting_to_say_recreate() {
        let live = instance(Some("i-1"), None, Some("running"));
        assert!(
            differs(&live, None, Drift::Report),
            "a disappearance is reported once"
        );
        assert!(differs(&live, None, Drift::Recreate));
        let reported = instance(Some("i-1"), None, Some(GONE));
        assert!(!differs(&reported, None, Drift::Report), "not reported again");
        assert!(
            differs(&reported, None, Drift::Recreate),
            "re-created once the setting changes"
        );
    }
}
