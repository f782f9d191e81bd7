//! The OpenStack backend: drift, through the kit's shared drift step. One server list, one port
//! list and one network list per controller and interval, whatever their numbers; networks and
//! ports deleted behind XOS's back are made again on the same interval.

use super::*;
use backend_kit::{DriftSource, Observed};

/// OpenStack as the kit's drift step sees it.
pub struct OsDriftSource(pub(crate) Arc<OsBackend>);

/// The drift step of the OpenStack backend.
pub type OsDrift = backend_kit::DriftStep<OsDriftSource>;

#[async_trait::async_trait]
impl DriftSource for OsDriftSource {
    type Controller = Controller;
    type Cloud = Server;
    fn step_name(&self) -> &'static str {
        "openstack_drift"
    }
    async fn controllers(&self, store: &Store) -> Result<Vec<Controller>, SyncError> {
        let mut out = Vec::new();
        for crec in OsBackend::controllers(store).await? {
            match self.0.controller(&crec) {
                Ok(c) => out.push(c),
                Err(e) => tracing::warn!(controller = crec.id(), error = %e, "OpenStack controller unusable"),
            }
        }
        Ok(out)
    }
    fn deployment(&self, c: &Controller) -> i64 {
        c.deployment
    }
    fn drift(&self, c: &Controller) -> backend_kit::Drift {
        c.settings.drift
    }
    async fn controller_of(&self, store: &Store, rec: &Record) -> Result<Controller, SyncError> {
        self.0
            .controller_of_deployment(store, rec.req(instance::DEPLOYMENT)?)
            .await
    }
    async fn before(&self, c: &Controller, store: &Store) {
        repair_networks(c, store).await;
    }
    async fn live(
        &self,
        c: &Controller,
        store: &Store,
        enacted: &[Record],
    ) -> Result<HashMap<i64, Server>, String> {
        let all = c.client.servers(None, true).await.map_err(|e| e.to_string())?;
        // Keyed by (project, XOS id): another XOS on the same cloud has ids of its own.
        let mut by_xos: HashMap<(String, String), Server> = HashMap::new();
        for s in all.into_iter().filter(|s| !s.is_gone()) {
            if let Some(id) = s.xos_id.clone() {
                by_xos.insert((s.project_id.clone(), id), s);
            }
        }
        let projects: HashMap<i64, String> = rows(
            store,
            &by_id(
                "SELECT slice_id, tenant_id FROM core_controllerslice WHERE NOT deleted AND tenant_id IS NOT NULL \
                 AND controller_id = ",
                c.id,
            ),
            &[SqlType::Int, SqlType::Text],
        )
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| (r[0].as_int().unwrap_or_default(), text(&r[1])))
        .collect();
        Ok(enacted
            .iter()
            .filter_map(|r| {
                let project = projects.get(&r.opt(instance::SLICE)?)?.clone();
                Some((r.id(), by_xos.remove(&(project, r.id().to_string()))?))
            })
            .collect())
    }
    fn observe(&self, s: &Server) -> Observed {
        observed(s)
    }
    fn reflect(&self, s: &Server) -> Enacted {
        reflect(s, "OK")
    }
    async fn recreate(&self, store: &Store, rec: &Record, note: &str) -> Result<Enacted, SyncError> {
        let c = self.controller_of(store, rec).await?;
        enact_instance(&c, store, rec, Some(note)).await
    }
    async fn after(&self, c: &Controller, store: &Store, gone: &[i64]) {
        // Ports of servers that are gone come back with their server, if it is made again.
        repair_ports(&self.0, c, store, gone).await;
    }
}

/// What XOS records of a server (its first address).
pub(crate) fn observed(s: &Server) -> Observed {
    Observed {
        id: s.id.clone(),
        ip: s
            .addresses
            .first()
            .map(|a| a.1.clone())
            .filter(|ip| !ip.is_empty()),
        state: s.status.clone(),
    }
}
