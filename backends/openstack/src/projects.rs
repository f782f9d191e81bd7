//! The OpenStack backend: projects: sites and slices.

use super::*;

/// Find the project `name` made for `marker`, or make it; returns its id.
pub(crate) async fn ensure_project(c: &Controller, name: &str, marker: &str) -> Result<String, SyncError> {
    if let Some(p) = c.client.project_by_name(name).await.map_err(failed)? {
        let desc = p.description.as_str();
        if desc != marker {
            return Err(SyncError::Failed(format!(
                "a Keystone project named {name} exists and was not made by XOS for this object \
                 (its description is {desc:?}, expected {marker:?})"
            )));
        }
        return Ok(p.id);
    }
    let domain = c.client.domain_id().await.map_err(failed)?;
    let p: Project = c
        .client
        .post_as(
            None,
            Service::Identity,
            "/projects",
            json!({"project": {"name": name, "description": marker, "domain_id": domain, "enabled": true}}),
            "project",
        )
        .await
        .map_err(failed)?;
    Ok(p.id)
}

/// Remove what is left in a project (servers, ports, routers, subnets, networks), then the project.
pub(crate) async fn purge_project(c: &Controller, project: &str) -> Result<(), SyncError> {
    let cl = &c.client;
    let servers: Vec<Server> = cl
        .servers(None, true)
        .await
        .map_err(failed)?
        .into_iter()
        .filter(|s| s.project_id == project)
        .collect();
    for s in &servers {
        cl.delete(None, Service::Compute, &format!("/servers/{}", seg(&s.id)))
            .await
            .map_err(failed)?;
    }
    for s in &servers {
        wait_gone(cl, &s.id).await?;
    }
    let p = q(project);
    for r in cl
        .list_as::<Router>(
            None,
            Service::Network,
            &format!("/routers?project_id={p}"),
            "routers",
        )
        .await
        .map_err(failed)?
    {
        delete_router(cl, &r.id).await?;
    }
    for port in cl
        .list_as::<Port>(None, Service::Network, &format!("/ports?project_id={p}"), "ports")
        .await
        .map_err(failed)?
    {
        if port.device_owner.starts_with("network:") {
            continue; // DHCP and router ports go with their network and router
        }
        cl.delete(None, Service::Network, &format!("/ports/{}", seg(&port.id)))
            .await
            .map_err(failed)?;
    }
    for n in cl
        .list_as::<Network>(
            None,
            Service::Network,
            &format!("/networks?project_id={p}"),
            "networks",
        )
        .await
        .map_err(failed)?
    {
        cl.delete(None, Service::Network, &format!("/networks/{}", seg(&n.id)))
            .await
            .map_err(failed)?;
    }
    cl.delete(None, Service::Identity, &format!("/projects/{}", seg(project)))
        .await
        .map_err(failed)
}

/// Wait until a deleted server is gone (its ports are released then).
pub(crate) async fn wait_gone(cl: &OsClient, id: &str) -> Result<(), SyncError> {
    for _ in 0..240 {
        match cl.server(None, id).await.map_err(failed)? {
            None => return Ok(()),
            Some(s) if s.status == "DELETED" => return Ok(()),
            Some(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    Err(deferred(format!("waiting for server {id} to be deleted")))
}

/// Detach a router from its subnets and delete it.
pub(crate) async fn delete_router(cl: &OsClient, id: &str) -> Result<(), SyncError> {
    for port in cl
        .list_as::<Port>(
            None,
            Service::Network,
            &format!("/ports?device_id={}&device_owner=network:router_interface", q(id)),
            "ports",
        )
        .await
        .map_err(failed)?
    {
        for ip in &port.fixed_ips {
            let subnet = ip.subnet_id.as_str();
            match cl
                .put(
                    None,
                    Service::Network,
                    &format!("/routers/{}/remove_router_interface", seg(id)),
                    Some(json!({"subnet_id": subnet})),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(failed(e)),
            }
        }
    }
    cl.delete(None, Service::Network, &format!("/routers/{}", seg(id)))
        .await
        .map_err(failed)
}

/// ControllerSite → a Keystone project per site (external to nothing: driven by changes).
pub struct OsSites {
    pub(crate) backend: Arc<OsBackend>,
}

#[async_trait::async_trait]
impl Step for OsSites {
    fn name(&self) -> &'static str {
        "openstack_sites"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["ControllerSite", "Site"]
    }
    fn observes(&self) -> &'static str {
        "ControllerSite"
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        Ok(default_fetch_pending(&ctx.store, "ControllerSite", deletion, Some(openstack_links())).await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.opt(controller_site::CONTROLLER))
            .await?;
        let site = obj.req(controller_site::SITE)?;
        let r = rows(
            &ctx.store,
            &by_id("SELECT login_base FROM core_site WHERE id = ", site),
            &[SqlType::Text],
        )
        .await?;
        let login_base = r.first().map(|r| text(&r[0])).unwrap_or_default();
        let project = ensure_project(&c, &login_base, &format!("xos site {site}")).await?;
        Ok(
            Enacted::with_status(format!("OK, project {login_base}"))
                .field("tenant_id", Value::Text(project)),
        )
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.opt(controller_site::CONTROLLER))
            .await?;
        if let Some(p) = obj.opt(controller_site::TENANT_ID).filter(|p| !p.is_empty()) {
            purge_project(&c, p).await?;
        }
        Ok(())
    }
}

/// ControllerSlice → a Keystone project per slice, its quota and its members' roles.
pub struct OsSlices {
    pub(crate) backend: Arc<OsBackend>,
}

#[async_trait::async_trait]
impl Step for OsSlices {
    fn name(&self) -> &'static str {
        "openstack_slices"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["ControllerSlice", "Slice"]
    }
    fn observes(&self) -> &'static str {
        "ControllerSlice"
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        Ok(default_fetch_pending(&ctx.store, "ControllerSlice", deletion, Some(openstack_links())).await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.opt(controller_slice::CONTROLLER))
            .await?;
        let slice = obj.req(controller_slice::SLICE)?;
        let r = rows(
            &ctx.store,
            &by_id("SELECT name, max_instances FROM core_slice WHERE id = ", slice),
            &[SqlType::Text, SqlType::Int],
        )
        .await?;
        let (name, max_instances) = r
            .first()
            .map(|r| (text(&r[0]), r[1].as_int().unwrap_or(10)))
            .unwrap_or_default();
        let project = ensure_project(&c, &name, &format!("xos slice {slice}")).await?;
        // The admin account works inside each slice's project (servers are booted there).
        let admin = c.client.admin_user_id().await.map_err(failed)?;
        let admin_role = c.client.role_id("admin").await.map_err(failed)?;
        if !c
            .client
            .roles_on(&project, &admin)
            .await
            .map_err(failed)?
            .iter()
            .any(|(_, n)| n == "admin")
        {
            c.client
                .assign_role(&project, &admin, &admin_role)
                .await
                .map_err(failed)?;
        }
        c.client
            .put(
                None,
                Service::Compute,
                &format!("/os-quota-sets/{}", seg(&project)),
                Some(json!({"quota_set": {"instances": max_instances}})),
            )
            .await
            .map_err(failed)?;
        Ok(
            Enacted::with_status(format!("OK, project {name}, quota {max_instances} instances"))
                .field("tenant_id", Value::Text(project)),
        )
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.opt(controller_slice::CONTROLLER))
            .await?;
        let project = match obj.opt(controller_slice::TENANT_ID).filter(|p| !p.is_empty()) {
            Some(p) => Some(p.to_string()),
            // A crash before the id was written: find it by name and marker.
            None => {
                let slice = obj.req(controller_slice::SLICE)?;
                let name = rows(
                    &ctx.store,
                    &by_id("SELECT name FROM core_slice WHERE id = ", slice),
                    &[SqlType::Text],
                )
                .await?
                .first()
                .map(|r| text(&r[0]));
                match name {
                    Some(n) => c
                        .client
                        .project_by_name(&n)
                        .await
                        .map_err(failed)?
                        .filter(|p| p.description == format!("xos slice {slice}"))
                        .map(|p| p.id),
                    None => None,
                }
            }
        };
        if let Some(p) = project {
            purge_project(&c, &p).await?;
        }
        Ok(())
    }
}
