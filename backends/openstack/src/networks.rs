//! The OpenStack backend: networks.

use super::*;

/// ControllerNetwork → a Neutron network, subnet and (NAT) router.
pub struct OsNetworks {
    pub(crate) backend: Arc<OsBackend>,
}

/// What a network should be.
pub(crate) struct NetworkSpec {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) owner: i64,
    pub(crate) subnet: String,
    pub(crate) nat: bool,
    pub(crate) shared_name: String,
}

pub(crate) async fn network_spec(store: &Store, network: i64) -> Result<NetworkSpec, SyncError> {
    let r = rows(
        store,
        &by_id(
            "SELECT n.name, n.owner_id, n.subnet, t.translation, t.shared_network_name \
             FROM core_network n JOIN core_networktemplate t ON t.id = n.template_id WHERE n.id = ",
            network,
        ),
        &[
            SqlType::Text,
            SqlType::Int,
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
        ],
    )
    .await?;
    let r = r
        .first()
        .ok_or_else(|| SyncError::Failed("the network is gone".into()))?;
    Ok(NetworkSpec {
        id: network,
        name: text(&r[0]),
        owner: r[1].as_int().unwrap_or_default(),
        subnet: text(&r[2]),
        nat: text(&r[3]).eq_ignore_ascii_case("nat"),
        shared_name: text(&r[4]),
    })
}

/// The subnet of a network: its own, or 10.x.y.0/24 from its id.
pub(crate) fn cidr_of(spec: &NetworkSpec) -> String {
    if !spec.subnet.trim().is_empty() {
        spec.subnet.trim().to_string()
    } else {
        format!("10.{}.{}.0/24", (spec.id >> 8) & 0xff, spec.id & 0xff)
    }
}

/// The id of the one Neutron `kind` (networks, subnets; read as `T`) matching `query`: found,
/// or made with `create`; of several, the oldest (see [`keep_oldest`]).
pub(crate) async fn one_of<T: Stamped + serde::de::DeserializeOwned>(
    cl: &OsClient,
    kind: &str,
    query: &str,
    create: serde_json::Value,
) -> Result<String, SyncError> {
    let found: Vec<T> = cl
        .list_as(None, Service::Network, &format!("/{kind}?{query}"), kind)
        .await
        .map_err(failed)?;
    match found.as_slice() {
        [one] => Ok(one.id().to_string()),
        [] => {
            cl.post(None, Service::Network, &format!("/{kind}"), create)
                .await
                .map_err(failed)?;
            keep_oldest::<T>(cl, kind, query).await
        }
        _ => keep_oldest::<T>(cl, kind, query).await,
    }
}

/// The oldest of the Neutron `kind` (networks, subnets) matching `query`, the others deleted.
///
/// Neutron has no idempotent create: a run killed while its create was in flight leaves the
/// object being made after the next run looked and made its own. Looking again after a create
/// (and whenever several are found) keeps one; the drift check removes a straggler that
/// appears later still.
pub(crate) async fn keep_oldest<T: Stamped + serde::de::DeserializeOwned>(
    cl: &OsClient,
    kind: &str,
    query: &str,
) -> Result<String, SyncError> {
    let mut found: Vec<T> = cl
        .list_as(None, Service::Network, &format!("/{kind}?{query}"), kind)
        .await
        .map_err(failed)?;
    found.sort_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())));
    let keep = found
        .first()
        .map(|v| v.id())
        .ok_or_else(|| deferred(format!("waiting for the new {kind} to be listed")))?
        .to_string();
    for extra in found.iter().skip(1) {
        let id = extra.id();
        tracing::info!(kind, id, kept = %keep, "deleting a duplicate a killed run left");
        if let Err(e) = cl
            .delete(None, Service::Network, &format!("/{kind}/{}", seg(id)))
            .await
        {
            tracing::warn!(kind, id, error = %e, "could not delete a duplicate");
        }
    }
    Ok(keep)
}

pub(crate) async fn enact_network(
    c: &Controller,
    store: &Store,
    obj: &Record,
    note: Option<&str>,
) -> Result<Enacted, SyncError> {
    let spec = network_spec(store, obj.req(controller_network::NETWORK)?).await?;
    let cl = &c.client;
    let prefix = |s: String| match note {
        Some(n) => format!("{n}; {s}"),
        None => s,
    };
    if !spec.shared_name.trim().is_empty() {
        let nets: Vec<Network> = cl
            .list_as(
                None,
                Service::Network,
                &format!("/networks?name={}", q(spec.shared_name.trim())),
                "networks",
            )
            .await
            .map_err(failed)?;
        let net = nets.first().ok_or_else(|| {
            SyncError::Failed(format!(
                "the shared network {} does not exist in OpenStack",
                spec.shared_name
            ))
        })?;
        let subnet = net.subnets.first().cloned().unwrap_or_default();
        return Ok(
            Enacted::with_status(prefix(format!("OK, shared network {}", spec.shared_name)))
                .field("net_id", Value::Text(net.id.clone()))
                .field("subnet_id", opt_text(subnet)),
        );
    }
    let project = slice_project(store, spec.owner, c.id)
        .await?
        .ok_or_else(|| deferred("waiting for the owner slice's project"))?;
    let marker = format!("xos network {}", spec.id);
    let net_id = one_of::<Network>(
        cl,
        "networks",
        &format!("description={}&project_id={}", q(&marker), q(&project)),
        json!({"network": {"name": spec.name, "description": marker, "project_id": project}}),
    )
    .await?;
    let cidr = cidr_of(&spec);
    let subnet_id = one_of::<Subnet>(
        cl,
        "subnets",
        &format!("network_id={}", q(&net_id)),
        json!({"subnet": {"network_id": net_id, "project_id": project, "ip_version": 4, "cidr": cidr,
                          "name": format!("{}-subnet", spec.name), "description": marker}}),
    )
    .await?;
    let mut router_id = String::new();
    if spec.nat {
        let routers: Vec<Router> = cl
            .list_as(
                None,
                Service::Network,
                &format!("/routers?description={}&project_id={}", q(&marker), q(&project)),
                "routers",
            )
            .await
            .map_err(failed)?;
        router_id = match routers.into_iter().next() {
            Some(r) => r.id,
            None => {
                let external: Vec<Network> = cl
                    .list_as(
                        None,
                        Service::Network,
                        "/networks?router:external=true",
                        "networks",
                    )
                    .await
                    .map_err(failed)?;
                let ext = external.into_iter().next().map(|n| n.id).ok_or_else(|| {
                    SyncError::Failed("NAT needs an external network, and OpenStack has none".into())
                })?;
                let r: Router = cl
                    .post_as(
                        None,
                        Service::Network,
                        "/routers",
                        json!({"router": {"name": format!("{}-router", spec.name), "description": marker,
                                          "project_id": project, "external_gateway_info": {"network_id": ext}}}),
                        "router",
                    )
                    .await
                    .map_err(failed)?;
                r.id
            }
        };
        let attached: Vec<Port> = cl
            .list_as(
                None,
                Service::Network,
                &format!("/ports?device_id={}&network_id={}", q(&router_id), q(&net_id)),
                "ports",
            )
            .await
            .map_err(failed)?;
        if attached.is_empty() {
            cl.put(
                None,
                Service::Network,
                &format!("/routers/{}/add_router_interface", seg(&router_id)),
                Some(json!({"subnet_id": subnet_id})),
            )
            .await
            .map_err(failed)?;
        }
    }
    let mut status = format!("OK, network {net_id} with subnet {cidr}");
    if !router_id.is_empty() {
        status.push_str(&format!(", NAT router {router_id}"));
    }
    Ok(Enacted::with_status(prefix(status))
        .field("net_id", Value::Text(net_id))
        .field("subnet_id", Value::Text(subnet_id))
        .field("router_id", opt_text(router_id))
        .field("subnet", Value::Text(cidr)))
}

#[async_trait::async_trait]
impl Step for OsNetworks {
    fn name(&self) -> &'static str {
        "openstack_networks"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["ControllerNetwork", "Network"]
    }
    fn observes(&self) -> &'static str {
        "ControllerNetwork"
    }
    fn concurrency(&self) -> usize {
        4
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        Ok(default_fetch_pending(&ctx.store, "ControllerNetwork", deletion, Some(openstack_links())).await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.opt(controller_network::CONTROLLER))
            .await?;
        enact_network(&c, &ctx.store, obj, None).await
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.opt(controller_network::CONTROLLER))
            .await?;
        let cl = &c.client;
        let network = obj.req(controller_network::NETWORK)?;
        let marker = format!("xos network {network}");
        // In the owner slice's project (another XOS on the same cloud may use the same ids).
        let owner = rows(
            &ctx.store,
            &by_id("SELECT owner_id FROM core_network WHERE id = ", network),
            &[SqlType::Int],
        )
        .await?
        .first()
        .and_then(|r| r[0].as_int());
        // Never unscoped: without the owner's project there is nothing XOS made to find, and
        // a search across projects could match another tenant's network by its description.
        let project = match owner {
            Some(o) => project_of_slice(&ctx.store, o, c.id, true).await?,
            None => None,
        };
        let Some(project) = project else {
            tracing::warn!(
                network,
                "no project is known for the network's slice: nothing is deleted in Neutron"
            );
            return Ok(());
        };
        let scope = format!("&project_id={}", q(&project));
        for r in cl
            .list_as::<Router>(
                None,
                Service::Network,
                &format!("/routers?description={}{scope}", q(&marker)),
                "routers",
            )
            .await
            .map_err(failed)?
            .into_iter()
            .filter(|r| r.project_id == project)
        {
            delete_router(cl, &r.id).await?;
        }
        for n in cl
            .list_as::<Network>(
                None,
                Service::Network,
                &format!("/networks?description={}{scope}", q(&marker)),
                "networks",
            )
            .await
            .map_err(failed)?
            .into_iter()
            .filter(|n| n.project_id == project)
        {
            let id = n.id.as_str();
            // Ports of servers still on it (their instances are deleted first) would block it.
            for port in cl
                .list_as::<Port>(
                    None,
                    Service::Network,
                    &format!("/ports?network_id={}", q(id)),
                    "ports",
                )
                .await
                .map_err(failed)?
            {
                if !port.device_owner.starts_with("network:") {
                    cl.delete(None, Service::Network, &format!("/ports/{}", seg(&port.id)))
                        .await
                        .map_err(failed)?;
                }
            }
            cl.delete(None, Service::Network, &format!("/networks/{}", seg(id)))
                .await
                .map_err(failed)?;
        }
        Ok(())
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
        let listed: Vec<Network> = c
            .client
            .list_as(
                None,
                Service::Network,
                "/networks?fields=id&fields=description&fields=project_id",
                "networks",
            )
            .await
            .map_err(failed)?;
        let nets: HashMap<&str, &str> = listed
            .iter()
            .map(|n| (n.id.as_str(), n.project_id.as_str()))
            .collect();
        for r in enacted {
            let (id, net) = (r[0].as_int().unwrap_or_default(), text(&r[1]));
            if let Some(&project) = nets.get(net.as_str()) {
                // A straggler: made by a killed run's create after the next run made this one
                // (the same marker, in the same project).
                let marker = format!("xos network {}", r[2].as_int().unwrap_or_default());
                for n in &listed {
                    let other = &n.id;
                    if *other != net && n.description == marker && n.project_id == project {
                        tracing::info!(controller_network = id, network = %other, kept = %net, "deleting a duplicate network a killed run left");
                        if let Err(e) = c
                            .client
                            .delete(None, Service::Network, &format!("/networks/{}", seg(other)))
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
