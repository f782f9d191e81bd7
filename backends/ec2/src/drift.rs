//! Drift: what changed in EC2 behind the system's back (external step).

use super::instances::{enact, reflect};
use super::*;

/// Notices what changed in EC2 behind the system's back (external step): one DescribeInstances
/// per controller and interval, whatever the number of instances.
pub struct Ec2Drift {
    pub(super) backend: Arc<Ec2Backend>,
    pub(super) interval: Duration,
    /// What the last fetch saw, by model id (None: no live EC2 instance).
    pub(super) seen: Mutex<HashMap<i64, Option<Ec2Instance>>>,
}

#[async_trait::async_trait]
impl Step for Ec2Drift {
    fn name(&self) -> &'static str {
        "ec2_drift"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Instance"]
    }
    fn observes(&self) -> &'static str {
        "Instance"
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
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for crec in Ec2Backend::controllers(&ctx.store).await? {
            let c = match self.backend.controller(&crec) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(controller = crec.id(), error = %e, "EC2 controller unusable");
                    continue;
                }
            };
            let rows = backend_kit::enacted_instances(&ctx.store, c.deployment).await?;
            if rows.is_empty() {
                continue;
            }
            let all = match c.client.instances_tagged(TAG, None).await {
                Ok(all) => all,
                Err(e) => {
                    tracing::warn!(controller = crec.id(), error = %e, "EC2 drift check failed");
                    continue;
                }
            };
            let mut by_model: HashMap<String, Ec2Instance> = HashMap::new();
            for inst in all.into_iter().filter(|i| !i.is_gone()) {
                if let Some(id) = inst.tag(TAG).map(str::to_string) {
                    by_model.insert(id, inst);
                }
            }
            for r in rows {
                let now = by_model.remove(&r.id().to_string());
                let changed = match &now {
                    None => true,
                    Some(inst) => {
                        let ip = inst.private_ip.clone().or_else(|| inst.public_ip.clone());
                        r.get_str("instance_id") != Some(inst.id.as_str())
                            || r.get_str("ip").map(str::to_string) != ip
                            || !r
                                .get_str("backend_status")
                                .is_some_and(|s| s.contains(&format!(": {} as {}", inst.state, inst.id)))
                    }
                };
                if changed {
                    seen.insert(r.id(), now);
                    out.push(r);
                }
            }
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
        if let Some(inst) = now {
            return Ok(reflect(&inst, "OK"));
        }
        let c = self.backend.controller_of(&ctx.store, obj).await?;
        let gone = obj
            .get_str("instance_id")
            .unwrap_or("the EC2 instance")
            .to_string();
        match c.settings.drift {
            Drift::Report => Err(SyncError::Failed(format!(
                "{gone} was terminated outside XOS (drift: report, so it is not re-created)"
            ))),
            Drift::Recreate => {
                let note = format!("re-created: {gone} was terminated outside XOS");
                enact(&c, &ctx.store, obj, Some(&note)).await
            }
        }
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}
