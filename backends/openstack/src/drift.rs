//! The OpenStack backend: drift.

use super::*;

/// Notices servers, ports and networks deleted or changed behind XOS's back (external step): one
/// server list, one port list and one network list per controller and interval, whatever their
/// numbers.
pub struct OsDrift {
    pub(crate) backend: Arc<OsBackend>,
    pub(crate) interval: Duration,
    /// What the last fetch saw, by instance id (None: no live server).
    pub(crate) seen: Mutex<HashMap<i64, Option<Server>>>,
}

#[async_trait::async_trait]
impl Step for OsDrift {
    fn name(&self) -> &'static str {
        "openstack_drift"
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
        for crec in OsBackend::controllers(&ctx.store).await? {
            let c = match self.backend.controller(&crec) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(controller = crec.id(), error = %e, "OpenStack controller unusable");
                    continue;
                }
            };
            repair_networks(&c, &ctx.store).await;
            let enacted = backend_kit::enacted_instances(&ctx.store, c.deployment).await?;
            if enacted.is_empty() {
                continue;
            }
            let all = match c.client.servers(None, true).await {
                Ok(all) => all,
                Err(e) => {
                    tracing::warn!(controller = crec.id(), error = %e, "OpenStack drift check failed");
                    continue;
                }
            };
            // Keyed by (project, XOS id): another XOS on the same cloud has ids of its own.
            let mut by_xos: HashMap<(String, String), Server> = HashMap::new();
            for s in all.into_iter().filter(|s| !s.is_gone()) {
                if let Some(id) = s.xos_id.clone() {
                    by_xos.insert((s.project_id.clone(), id), s);
                }
            }
            let projects: HashMap<i64, String> = rows(
                &ctx.store,
                &by_id(
                    "SELECT slice_id, tenant_id FROM core_controllerslice WHERE NOT deleted AND tenant_id IS NOT NULL \
                     AND controller_id = ",
                    c.id,
                ),
                &[SqlType::Int, SqlType::Text],
            )
            .await?
            .into_iter()
            .map(|r| (r[0].as_int().unwrap_or_default(), text(&r[1])))
            .collect();
            for r in enacted {
                let project = projects
                    .get(&r.get_int("slice").unwrap_or_default())
                    .cloned()
                    .unwrap_or_default();
                let now = by_xos.remove(&(project, r.id().to_string()));
                let changed = match &now {
                    None => true,
                    Some(s) => {
                        let ip = s.addresses.first().map(|a| a.1.clone());
                        r.get_str("instance_id") != Some(s.id.as_str())
                            || r.get_str("ip").map(str::to_string) != ip
                            || !r
                                .get_str("backend_status")
                                .is_some_and(|st| st.contains(&format!(": {} as {}", s.status, s.id)))
                    }
                };
                if changed {
                    seen.insert(r.id(), now);
                    out.push(r);
                }
            }
            // Ports of servers that are being made again come back with their server.
            repair_ports(&self.backend, &c, &ctx.store, &seen).await;
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
        if let Some(s) = now {
            return Ok(reflect(&s, "OK"));
        }
        let c = self
            .backend
            .controller_of_deployment(&ctx.store, obj.get_int("deployment").unwrap_or_default())
            .await?;
        let gone = obj.get_str("instance_id").unwrap_or("the server").to_string();
        if c.settings.drift == backend_kit::Drift::Report {
            return Err(SyncError::Failed(format!(
                "{gone} was deleted outside XOS (drift: report, so it is not re-created)"
            )));
        }
        let note = format!("re-created: {gone} was deleted outside XOS");
        tracing::info!(instance = obj.id(), server = %gone, "re-creating a server deleted outside XOS");
        enact_instance(&c, &ctx.store, obj, Some(&note)).await
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}

/// Row `id` of `model` as the synchronizer sees it (None when it is gone).
pub(crate) async fn load_record(
    store: &Store,
    model: &'static Model,
    id: i64,
) -> Result<Option<Record>, StoreError> {
    let mut sql = select_sql(model);
    sql.push(" WHERE t.id = ").bind(Value::Int(id));
    Ok(store
        .db()
        .fetch(&sql, &types(model))
        .await?
        .into_iter()
        .next()
        .map(|values| Record { model, values }))
}

/// Write what a drift repair enacted, as the engine would after a sync: the status, the backend
/// fields, enacted as of the row's version.
pub(crate) async fn record_enacted(store: &Store, rec: &Record, enacted: Enacted) -> Result<(), StoreError> {
    let update = store::StatusUpdate {
        backend_status: Some(BackendStatus::ok(enacted.status.as_deref())),
        enacted_version: rec.get_int("row_version"),
        fields: enacted.fields,
        ..Default::default()
    };
    let mut unit = store.begin(Actor::System).await?;
    unit.set_status(rec.model, rec.id(), &update).await?;
    unit.commit().await?;
    Ok(())
}

/// One port list per controller: enacted Ports whose Neutron port is gone (deleted outside XOS,
/// or gone with a network made again) are enacted again at once: the server's port on the
/// network is found, or a new interface attached. Instances in `skip` are being re-created.
pub(crate) async fn repair_ports(
    backend: &OsBackend,
    c: &Controller,
    store: &Store,
    skip: &HashMap<i64, Option<Server>>,
) {
    let result: Result<(), SyncError> = async {
        let mut sql = by_id(
            "SELECT p.id, p.port_id, p.instance_id FROM core_port p JOIN core_instance i ON i.id = p.instance_id \
             WHERE NOT p.deleted AND NOT i.deleted AND p.row_version = p.enacted_version \
             AND p.port_id IS NOT NULL AND i.deployment_id = ",
            c.deployment,
        );
        sql.push(" ORDER BY p.id");
        let enacted = rows(store, &sql, &[SqlType::Int, SqlType::Text, SqlType::Int]).await?;
        if enacted.is_empty() {
            return Ok(());
        }
        let ports: HashSet<String> = c
            .client
            .list(None, Service::Network, "/ports?fields=id", "ports")
            .await
            .map_err(failed)?
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect();
        let model = store.model("Port");
        for r in enacted {
            let (id, port) = (r[0].as_int().unwrap_or_default(), text(&r[1]));
            if ports.contains(&port) || skip.contains_key(&r[2].as_int().unwrap_or_default()) {
                continue;
            }
            tracing::info!(port_row = id, port = %port, "re-creating a port deleted outside XOS");
            let Some(rec) = load_record(store, model, id).await? else {
                continue;
            };
            let note = format!("re-created: port {port} was deleted outside XOS");
            let enacted = enact_port(backend, store, &rec, Some(&note)).await?;
            record_enacted(store, &rec, enacted).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(controller = c.id, error = %e, "OpenStack port drift check failed");
    }
}

/// One network list per controller: enacted ControllerNetworks whose Neutron network is gone
/// are marked to be made again (their next sync re-creates network, subnet and router, and
/// says so in the status and the change log).
pub(crate) async fn repair_networks(c: &Controller, store: &Store) {
    let result: Result<(), SyncError> = async {
        let mut sql = by_id(
            "SELECT id, net_id, network_id FROM core_controllernetwork WHERE NOT deleted \
             AND row_version = enacted_version AND net_id IS NOT NULL AND controller_id = ",
            c.id,
        );
        sql.push(" ORDER BY id");
        let enacted = rows(store, &sql, &[SqlType::Int, SqlType::Text, SqlType::Int]).await?;
        if enacted.is_empty() {
            return Ok(());
        }
        let listed = c
            .client
            .list(
                None,
                Service::Network,
                "/networks?fields=id&fields=description&fields=project_id",
                "networks",
            )
            .await
            .map_err(failed)?;
        let field = |n: &serde_json::Value, f: &str| n[f].as_str().unwrap_or_default().to_string();
        let nets: HashMap<String, String> = listed
            .iter()
            .map(|n| (field(n, "id"), field(n, "project_id")))
            .collect();
        for r in enacted {
            let (id, net) = (r[0].as_int().unwrap_or_default(), text(&r[1]));
            if let Some(project) = nets.get(&net) {
                // A straggler: made by a killed run's create after the next run made this one
                // (the same marker, in the same project).
                let marker = format!("xos network {}", r[2].as_int().unwrap_or_default());
                for n in &listed {
                    let other = field(n, "id");
                    if other != net && field(n, "description") == marker && &field(n, "project_id") == project {
                        tracing::info!(controller_network = id, network = %other, kept = %net, "deleting a duplicate network a killed run left");
                        if let Err(e) = c
                            .client
                            .delete(None, Service::Network, &format!("/networks/{}", seg(&other)))
                            .await
                        {
                            tracing::warn!(network = %other, error = %e, "could not delete a duplicate network");
                        }
                    }
                }
                continue;
            }
            tracing::info!(controller_network = id, network = %net, "re-creating a network deleted outside XOS");
            let Some(rec) = load_record(store, store.model("ControllerNetwork"), id).await? else {
                continue;
            };
            let note = format!("re-created: network {net} was deleted outside XOS");
            let enacted = enact_network(c, store, &rec, Some(&note)).await?;
            record_enacted(store, &rec, enacted).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(controller = c.id, error = %e, "OpenStack network drift check failed");
    }
}
