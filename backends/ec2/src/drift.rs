//! Drift: what changed in EC2 behind the system's back, through the kit's shared drift step
//! (one DescribeInstances per controller and interval, whatever the number of instances).

use super::instances::{enact, reflect};
use super::*;
use backend_kit::{DriftSource, Observed};

/// EC2 as the kit's drift step sees it.
pub struct Ec2DriftSource(pub(super) Arc<Ec2Backend>);

/// The drift step of the EC2 backend.
pub type Ec2Drift = backend_kit::DriftStep<Ec2DriftSource>;

#[async_trait::async_trait]
impl DriftSource for Ec2DriftSource {
    type Controller = Controller;
    type Cloud = Ec2Instance;
    fn step_name(&self) -> &'static str {
        "ec2_drift"
    }
    fn gone_word(&self) -> &'static str {
        "terminated"
    }
    async fn controllers(&self, store: &Store) -> Result<Vec<Controller>, SyncError> {
        let mut out = Vec::new();
        for crec in Ec2Backend::controllers(store).await? {
            match self.0.controller(&crec) {
                Ok(c) => out.push(c),
                Err(e) => tracing::warn!(controller = crec.id(), error = %e, "EC2 controller unusable"),
            }
        }
        Ok(out)
    }
    fn deployment(&self, c: &Controller) -> i64 {
        c.deployment
    }
    fn drift(&self, c: &Controller) -> Drift {
        c.settings.drift
    }
    async fn controller_of(&self, store: &Store, rec: &Record) -> Result<Controller, SyncError> {
        self.0.controller_of(store, rec).await
    }
    async fn live(
        &self,
        c: &Controller,
        _store: &Store,
        _enacted: &[Record],
    ) -> Result<HashMap<i64, Ec2Instance>, String> {
        let all = c
            .client
            .instances_tagged(TAG, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(all
            .into_iter()
            .filter(|i| !i.is_gone())
            .filter_map(|i| Some((i.tag(TAG)?.parse().ok()?, i)))
            .collect())
    }
    fn observe(&self, inst: &Ec2Instance) -> Observed {
        observed(inst)
    }
    fn reflect(&self, inst: &Ec2Instance) -> Enacted {
        reflect(inst, "OK")
    }
    async fn recreate(&self, store: &Store, rec: &Record, note: &str) -> Result<Enacted, SyncError> {
        let c = self.0.controller_of(store, rec).await?;
        enact(&c, store, rec, Some(note)).await
    }
}

/// What XOS records of an EC2 instance (its private address, or its public one).
pub(super) fn observed(inst: &Ec2Instance) -> Observed {
    Observed {
        id: inst.id.clone(),
        ip: inst.private_ip.clone().or_else(|| inst.public_ip.clone()),
        state: inst.state.clone(),
    }
}
