//! The OpenStack backend: ports.

use super::*;

/// Port → the server's Neutron port on the port's network.
pub struct OsPorts {
    pub(crate) backend: Arc<OsBackend>,
}

#[async_trait::async_trait]
impl Step for OsPorts {
    fn name(&self) -> &'static str {
        "openstack_ports"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Port"]
    }
    fn observes(&self) -> &'static str {
        "Port"
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        Ok(default_fetch_pending(
            &ctx.store,
            "Port",
            deletion,
            Some(openstack_instances("t.instance_id")),
        )
        .await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        enact_port(&self.backend, &ctx.store, obj, None).await
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        // The port is found by what XOS made (the instance's server on the network, in the
        // slice's project), never taken from a stored id alone: only a port of that server, in
        // that project, is deleted.
        let Some(port) = find_port(&self.backend, &ctx.store, obj).await? else {
            return Ok(());
        };
        let (c, found) = port;
        for p in found {
            match c
                .client
                .delete(None, Service::Network, &format!("/ports/{}", seg(&p.id)))
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(failed(e)),
            }
        }
        Ok(())
    }
}

/// The Neutron ports of a Port row: those of its instance's server on its network, in its
/// slice's project (with the controller). `None` when there is nothing to look in (no server,
/// network or project yet: nothing was made).
pub(crate) async fn find_port(
    backend: &OsBackend,
    store: &Store,
    obj: &Record,
) -> Result<Option<(Controller, Vec<Port>)>, SyncError> {
    let Some(ctx) = port_context(backend, store, obj).await? else {
        return Ok(None);
    };
    let PortContext {
        c,
        server,
        net,
        project,
    } = ctx;
    let (Some(server), Some(net), Some(project)) = (server, net, project) else {
        return Ok(None);
    };
    let ports = ports_of(&c.client, &server, &net, &project).await?;
    Ok(Some((c, ports)))
}

/// The Neutron ports of `server` on `net` in `project`.
pub(crate) async fn ports_of(
    cl: &OsClient,
    server: &str,
    net: &str,
    project: &str,
) -> Result<Vec<Port>, SyncError> {
    let ports: Vec<Port> = cl
        .list_as(
            None,
            Service::Network,
            &format!(
                "/ports?device_id={}&network_id={}&project_id={}",
                q(server),
                q(net),
                q(project)
            ),
            "ports",
        )
        .await
        .map_err(failed)?;
    // Neutron filtered on them; checked again, since they are the whole point.
    Ok(ports
        .into_iter()
        .filter(|p| p.device_id == server && p.network_id == net && p.project_id == project)
        .collect())
}

/// What a Port row's Neutron port is found by.
pub(crate) struct PortContext {
    pub(crate) c: Controller,
    /// The instance's server (its `instance_uuid`, written by the synchronizer).
    pub(crate) server: Option<String>,
    /// The network's id in Neutron on this controller.
    pub(crate) net: Option<String>,
    /// The slice's project on this controller.
    pub(crate) project: Option<String>,
}

pub(crate) async fn port_context(
    backend: &OsBackend,
    store: &Store,
    obj: &Record,
) -> Result<Option<PortContext>, SyncError> {
    let instance = obj.req(port::INSTANCE)?;
    let r = rows(
        store,
        &by_id(
            "SELECT deployment_id, instance_uuid, slice_id FROM core_instance WHERE id = ",
            instance,
        ),
        &[SqlType::Int, SqlType::Text, SqlType::Int],
    )
    .await?;
    let Some(r) = r.first() else { return Ok(None) };
    let c = backend
        .controller_of_deployment(store, r[0].as_int().unwrap_or_default())
        .await?;
    let server = Some(text(&r[1])).filter(|s| !s.is_empty());
    let mut sql = by_id(
        "SELECT net_id FROM core_controllernetwork WHERE NOT deleted AND network_id = ",
        obj.req(port::NETWORK)?,
    );
    sql.push(" AND controller_id = ").bind(Value::Int(c.id));
    let net = rows(store, &sql, &[SqlType::Text])
        .await?
        .first()
        .map(|r| text(&r[0]))
        .filter(|n| !n.is_empty());
    let project = slice_project(store, r[2].as_int().unwrap_or_default(), c.id).await?;
    Ok(Some(PortContext {
        c,
        server,
        net,
        project,
    }))
}

/// A Port: the server's Neutron port on the network, found, or attached as a new interface.
/// The server must be one of the slice's project before anything is attached to it.
pub(crate) async fn enact_port(
    backend: &OsBackend,
    store: &Store,
    obj: &Record,
    note: Option<&str>,
) -> Result<Enacted, SyncError> {
    let ctx = port_context(backend, store, obj)
        .await?
        .ok_or_else(|| SyncError::Failed("the instance is gone".into()))?;
    let PortContext {
        c,
        server,
        net,
        project,
    } = ctx;
    let server = server.ok_or_else(|| deferred("waiting for the instance's server"))?;
    let net = net.ok_or_else(|| deferred("waiting for the network in Neutron"))?;
    let project = project.ok_or_else(|| deferred("waiting for the slice's project"))?;
    let cl = &c.client;
    match cl.server(None, &server).await.map_err(failed)? {
        Some(s) if s.project_id == project => {}
        Some(_) => {
            return Err(SyncError::Failed(format!(
                "server {server} is not in the slice's project: nothing is attached to it"
            )));
        }
        None => return Err(deferred("waiting for the instance's server")),
    }
    let find = || ports_of(cl, &server, &net, &project);
    let mut ports = find().await?;
    if ports.is_empty() {
        // A network the slice gained after the server booted: attach an interface.
        cl.post(
            Some(&project),
            Service::Compute,
            &format!("/servers/{}/os-interface", seg(&server)),
            json!({"interfaceAttachment": {"net_id": net}}),
        )
        .await
        .map_err(failed)?;
        ports = find().await?;
    }
    let p = ports
        .first()
        .ok_or_else(|| deferred("waiting for the server's port"))?;
    let ip = p
        .fixed_ips
        .first()
        .map(|f| f.ip_address.clone())
        .unwrap_or_default();
    let id = p.id.clone();
    let status = format!("OK, port {id} at {ip}");
    Ok(Enacted::with_status(match note {
        Some(n) => format!("{n}; {status}"),
        None => status,
    })
    .field("port_id", Value::Text(id))
    .field("ip", opt_text(ip))
    .field("mac", opt_text(p.mac_address.clone())))
}

/// One port list per controller: enacted Ports whose Neutron port is gone (deleted outside XOS,
/// or gone with a network made again) are enacted again at once: the server's port on the
/// network is found, or a new interface attached. Instances in `skip` are being re-created.
pub(crate) async fn repair_ports(backend: &OsBackend, c: &Controller, store: &Store, skip: &[i64]) {
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
            .list_as::<Port>(None, Service::Network, "/ports?fields=id", "ports")
            .await
            .map_err(failed)?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let model = store.model("Port");
        for r in enacted {
            let (id, port) = (r[0].as_int().unwrap_or_default(), text(&r[1]));
            if ports.contains(&port) || skip.contains(&r[2].as_int().unwrap_or_default()) {
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
