//! The OpenStack backend: XOS's first synchronizer, against the real REST APIs.
//!
//! A Controller with `backend_type` `OpenStack` selects it for its Deployment: `auth_url` is
//! Keystone, `admin_user` / `admin_password` an account with the `admin` role in
//! `admin_tenant`, `domain` the Keystone domain (`Default` when empty).
//!
//! Steps, in dependency order (each `provides` the model it enacts and the core model it makes
//! real, so instances wait for their slice's project and image, and deletions run in reverse):
//! - [`OsControllers`]: logs in; a wrong password or an unreachable `auth_url` says so on the
//!   Controller.
//! - [`OsSites`] (ControllerSite → a project per site, named by its login base) and
//!   [`OsSlices`] (ControllerSlice → a project per slice, named like the slice, with the slice's
//!   `max_instances` as its Nova instance quota and the admin account as its admin). Deleting one
//!   removes what is left in its project (servers, ports, routers, networks), then the project.
//! - [`OsPrivileges`] (SitePrivilege and SlicePrivilege → role assignments on the project).
//! - [`OsUsers`] (ControllerUser → a Keystone user named by email, with its public key as a Nova
//!   key pair; a disabled user is purged from Keystone).
//! - [`OsImages`] (ControllerImages → a Glance image of the same name, uploaded from
//!   `Image.path`, or an existing one of that name adopted).
//! - [`OsNetworks`] (ControllerNetwork → a Neutron network and subnet in the owner slice's
//!   project, with a router to the external network for NAT templates; a template's
//!   `shared_network_name` names an existing network instead).
//! - [`OsInstances`] (Instance → a Nova server with its flavor, image, networks, key pair and user
//!   data; waits for ACTIVE and writes back its ids and address) and [`OsPorts`] (Port → the
//!   server's Neutron port on that network: `port_id`, `ip`, `mac`).
//! - [`OsDrift`]: on an interval, one list of servers and one of networks per controller;
//!   servers and networks deleted behind XOS's back are made again.
//!
//! Every OpenStack object carries the XOS id (server metadata `xos_instance_id`, descriptions
//! `xos <model> <id>`), so a synchronizer killed at any point finds what it made instead of
//! making it twice.

pub mod client;

use client::{OsClient, OsConfig, OsError, Server, Service, q, seg};
use registry::{BackendStatus, Model, SqlType};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::db::{Sql, Value};
use store::{Actor, Record, Store, StoreError, select_sql, types};
use synchronizer::{Enacted, Step, StepContext, SyncError, and_where, default_fetch_pending};

/// The `backend_type` that selects this backend.
pub const BACKEND: &str = "OpenStack";
/// The server metadata key carrying the XOS instance id.
pub const META_KEY: &str = "xos_instance_id";
/// How long a sync waits for a new server to become ACTIVE before trying again later.
const BOOT_WAIT: Duration = Duration::from_secs(120);

/// The OpenStack backend's shared state: a client per controller, the count of API calls.
#[derive(Default)]
pub struct OsBackend {
    clients: Mutex<HashMap<i64, (String, OsClient)>>,
    retired_calls: AtomicU64,
}

/// An OpenStack controller and its client.
#[derive(Clone)]
pub struct Controller {
    pub id: i64,
    pub deployment: i64,
    pub client: OsClient,
}

fn failed(e: OsError) -> SyncError {
    SyncError::Failed(e.to_string())
}

fn deferred(what: impl Into<String>) -> SyncError {
    SyncError::Deferred(what.into())
}

impl OsBackend {
    /// OpenStack API calls made so far (the idle-pass figure).
    pub fn api_calls(&self) -> u64 {
        let live: u64 = self
            .clients
            .lock()
            .expect("clients lock")
            .values()
            .map(|(_, c)| c.calls())
            .sum();
        live + self.retired_calls.load(Ordering::Relaxed)
    }

    fn controller(&self, rec: &Record) -> Result<Controller, SyncError> {
        let config = OsConfig {
            auth_url: rec.get_str("auth_url").unwrap_or_default().to_string(),
            user: rec.get_str("admin_user").unwrap_or_default().trim().to_string(),
            password: rec.get_str("admin_password").unwrap_or_default().to_string(),
            project: rec.get_str("admin_tenant").unwrap_or_default().trim().to_string(),
            domain: rec.get_str("domain").unwrap_or_default().trim().to_string(),
        };
        // Reuse the client (its tokens and connections) while the settings stay the same.
        let fingerprint = format!(
            "{}|{}|{}|{}|{}",
            config.auth_url,
            config.user,
            config.project,
            config.domain,
            backend_kit::sha256_hex(&config.password)
        );
        let mut clients = self.clients.lock().expect("clients lock");
        let client = match clients.get(&rec.id()) {
            Some((f, c)) if *f == fingerprint => c.clone(),
            _ => {
                let c = OsClient::new(config).map_err(failed)?;
                if let Some((_, old)) = clients.insert(rec.id(), (fingerprint, c.clone())) {
                    self.retired_calls.fetch_add(old.calls(), Ordering::Relaxed);
                }
                c
            }
        };
        Ok(Controller {
            id: rec.id(),
            deployment: rec.get_int("deployment").unwrap_or_default(),
            client,
        })
    }

    /// The live OpenStack controllers.
    pub async fn controllers(store: &Store) -> Result<Vec<Record>, StoreError> {
        let model = store.model("Controller");
        let mut sql = select_sql(model);
        sql.push(" WHERE NOT t.deleted AND t.backend_type = ")
            .bind(Value::Text(BACKEND.into()));
        sql.push(" ORDER BY t.id");
        let rows = store.db().fetch(&sql, &types(model)).await?;
        Ok(rows.into_iter().map(|values| Record { model, values }).collect())
    }

    /// Controller `id` (deleted ones too: a deletion still needs its client).
    async fn controller_by_id(&self, store: &Store, id: Option<i64>) -> Result<Controller, SyncError> {
        let rec = load_record(store, store.model("Controller"), id.unwrap_or(0))
            .await?
            .ok_or_else(|| SyncError::Failed("the controller is gone".into()))?;
        self.controller(&rec)
    }

    /// The controller of a deployment.
    async fn controller_of_deployment(
        &self,
        store: &Store,
        deployment: i64,
    ) -> Result<Controller, SyncError> {
        let rec = OsBackend::controllers(store)
            .await?
            .into_iter()
            .find(|c| c.get_int("deployment") == Some(deployment))
            .ok_or_else(|| SyncError::Failed("the deployment has no OpenStack controller".into()))?;
        self.controller(&rec)
    }
}

/// The steps of the OpenStack backend, sharing one client per controller.
pub fn steps(backend: Arc<OsBackend>, drift_interval: Duration) -> Vec<Arc<dyn Step>> {
    vec![
        Arc::new(OsControllers {
            backend: backend.clone(),
        }),
        Arc::new(OsSites {
            backend: backend.clone(),
        }),
        Arc::new(OsSlices {
            backend: backend.clone(),
        }),
        Arc::new(OsUsers {
            backend: backend.clone(),
        }),
        Arc::new(OsPrivileges {
            backend: backend.clone(),
            kind: "site",
        }),
        Arc::new(OsPrivileges {
            backend: backend.clone(),
            kind: "slice",
        }),
        Arc::new(OsImages {
            backend: backend.clone(),
        }),
        Arc::new(OsNetworks {
            backend: backend.clone(),
        }),
        Arc::new(OsInstances {
            backend: backend.clone(),
        }),
        Arc::new(OsPorts {
            backend: backend.clone(),
        }),
        Arc::new(OsDrift {
            backend,
            interval: drift_interval,
            seen: Mutex::new(HashMap::new()),
        }),
    ]
}

// ---- small database helpers -------------------------------------------------------------------

/// Rows of a query.
async fn rows(store: &Store, sql: &Sql, types: &[SqlType]) -> Result<Vec<Vec<Value>>, StoreError> {
    Ok(store.db().fetch(sql, types).await?)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn opt_text(v: String) -> Value {
    if v.is_empty() {
        Value::Null(SqlType::Text)
    } else {
        Value::Text(v)
    }
}

/// `SELECT ... WHERE <col> = id` helper.
fn by_id(select: &str, id: i64) -> Sql {
    let mut sql = Sql::new(select);
    sql.bind(Value::Int(id));
    sql
}

/// Link rows (ControllerX) whose controller is an OpenStack one.
fn openstack_links() -> Sql {
    let mut extra = and_where(
        "t.controller_id IN (SELECT id FROM core_controller WHERE backend_type = ",
        Value::Text(BACKEND.into()),
    );
    extra.push(")");
    extra
}

/// Instances (and ports of instances) on deployments with an OpenStack controller.
fn openstack_instances(column: &str) -> Sql {
    let mut extra = and_where(
        &format!(
            "{column} IN (SELECT i.id FROM core_instance i WHERE i.deployment_id IN \
             (SELECT deployment_id FROM core_controller WHERE NOT deleted AND backend_type = "
        ),
        Value::Text(BACKEND.into()),
    );
    extra.push("))");
    extra
}

/// The Keystone project of slice `slice` on controller `controller`, if made yet.
async fn slice_project(store: &Store, slice: i64, controller: i64) -> Result<Option<String>, StoreError> {
    project_of_slice(store, slice, controller, false).await
}

/// [`slice_project`], or with `even_deleted` also the project of a slice row being deleted
/// (the clean-up of what the slice had still runs inside its project).
async fn project_of_slice(
    store: &Store,
    slice: i64,
    controller: i64,
    even_deleted: bool,
) -> Result<Option<String>, StoreError> {
    let live = if even_deleted { "" } else { "NOT deleted AND " };
    let mut sql = by_id(
        &format!("SELECT tenant_id FROM core_controllerslice WHERE {live}slice_id = "),
        slice,
    );
    sql.push(" AND controller_id = ").bind(Value::Int(controller));
    sql.push(" ORDER BY deleted, id DESC");
    Ok(rows(store, &sql, &[SqlType::Text])
        .await?
        .first()
        .map(|r| text(&r[0]))
        .filter(|t| !t.is_empty()))
}

/// The role name in OpenStack of an XOS role: a slice or site `admin` is the project's
/// `manager` (a role without cloud-wide powers: Keystone's `admin` is cloud-wide under the
/// legacy policies many clouds still run), every other role a `member`. Never `admin`.
pub fn keystone_role(xos_role: &str) -> &'static str {
    if xos_role == "admin" { "manager" } else { "member" }
}

// ---- controllers ----------------------------------------------------------------------------

/// Logs in to each OpenStack controller saved since its last check: a wrong password or an
/// unreachable Keystone is the Controller's status.
pub struct OsControllers {
    backend: Arc<OsBackend>,
}

#[async_trait::async_trait]
impl Step for OsControllers {
    fn name(&self) -> &'static str {
        "openstack_controllers"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Controller"]
    }
    fn observes(&self) -> &'static str {
        "Controller"
    }
    fn concurrency(&self) -> usize {
        1
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        if deletion {
            // The EC2 catalog step purges deleted controllers of every backend.
            return Ok(Vec::new());
        }
        Ok(OsBackend::controllers(&ctx.store)
            .await?
            .into_iter()
            .filter(|c| c.get_int("row_version") > c.get_int("enacted_version"))
            .collect())
    }
    async fn sync_record(&self, _ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self.backend.controller(obj)?;
        c.client.login().await.map_err(failed)?;
        // The roles XOS hands out exist (made once, found afterwards).
        c.client.role_id(keystone_role("admin")).await.map_err(failed)?;
        c.client.role_id(keystone_role("access")).await.map_err(failed)?;
        Ok(Enacted::with_status(format!(
            "OK, logged in to {} as {}",
            c.client.auth_url(),
            obj.get_str("admin_user").unwrap_or_default()
        )))
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}

// ---- projects: sites and slices -------------------------------------------------------------

/// Find the project `name` made for `marker`, or make it; returns its id.
async fn ensure_project(c: &Controller, name: &str, marker: &str) -> Result<String, SyncError> {
    if let Some(p) = c.client.project_by_name(name).await.map_err(failed)? {
        let desc = p["description"].as_str().unwrap_or_default();
        if desc != marker {
            return Err(SyncError::Failed(format!(
                "a Keystone project named {name} exists and was not made by XOS for this object \
                 (its description is {desc:?}, expected {marker:?})"
            )));
        }
        return Ok(p["id"].as_str().unwrap_or_default().to_string());
    }
    let domain = c.client.domain_id().await.map_err(failed)?;
    let p = c
        .client
        .post(
            None,
            Service::Identity,
            "/projects",
            json!({"project": {"name": name, "description": marker, "domain_id": domain, "enabled": true}}),
        )
        .await
        .map_err(failed)?;
    Ok(p["project"]["id"].as_str().unwrap_or_default().to_string())
}

/// Remove what is left in a project (servers, ports, routers, subnets, networks), then the project.
async fn purge_project(c: &Controller, project: &str) -> Result<(), SyncError> {
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
        .list(
            None,
            Service::Network,
            &format!("/routers?project_id={p}"),
            "routers",
        )
        .await
        .map_err(failed)?
    {
        delete_router(cl, r["id"].as_str().unwrap_or_default()).await?;
    }
    for port in cl
        .list(None, Service::Network, &format!("/ports?project_id={p}"), "ports")
        .await
        .map_err(failed)?
    {
        if port["device_owner"]
            .as_str()
            .unwrap_or_default()
            .starts_with("network:")
        {
            continue; // DHCP and router ports go with their network and router
        }
        cl.delete(
            None,
            Service::Network,
            &format!("/ports/{}", seg(port["id"].as_str().unwrap_or_default())),
        )
        .await
        .map_err(failed)?;
    }
    for n in cl
        .list(
            None,
            Service::Network,
            &format!("/networks?project_id={p}"),
            "networks",
        )
        .await
        .map_err(failed)?
    {
        cl.delete(
            None,
            Service::Network,
            &format!("/networks/{}", seg(n["id"].as_str().unwrap_or_default())),
        )
        .await
        .map_err(failed)?;
    }
    cl.delete(None, Service::Identity, &format!("/projects/{}", seg(project)))
        .await
        .map_err(failed)
}

/// Wait until a deleted server is gone (its ports are released then).
async fn wait_gone(cl: &OsClient, id: &str) -> Result<(), SyncError> {
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
async fn delete_router(cl: &OsClient, id: &str) -> Result<(), SyncError> {
    for port in cl
        .list(
            None,
            Service::Network,
            &format!("/ports?device_id={}&device_owner=network:router_interface", q(id)),
            "ports",
        )
        .await
        .map_err(failed)?
    {
        for ip in port["fixed_ips"].as_array().into_iter().flatten() {
            let subnet = ip["subnet_id"].as_str().unwrap_or_default();
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
    backend: Arc<OsBackend>,
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
            .controller_by_id(&ctx.store, obj.get_int("controller"))
            .await?;
        let site = obj.get_int("site").unwrap_or_default();
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
            .controller_by_id(&ctx.store, obj.get_int("controller"))
            .await?;
        if let Some(p) = obj.get_str("tenant_id").filter(|p| !p.is_empty()) {
            purge_project(&c, p).await?;
        }
        Ok(())
    }
}

/// ControllerSlice → a Keystone project per slice, its quota and its members' roles.
pub struct OsSlices {
    backend: Arc<OsBackend>,
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
            .controller_by_id(&ctx.store, obj.get_int("controller"))
            .await?;
        let slice = obj.get_int("slice").unwrap_or_default();
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
            .controller_by_id(&ctx.store, obj.get_int("controller"))
            .await?;
        let project = match obj.get_str("tenant_id").filter(|p| !p.is_empty()) {
            Some(p) => Some(p.to_string()),
            // A crash before the id was written: find it by name and marker.
            None => {
                let slice = obj.get_int("slice").unwrap_or_default();
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
                        .filter(|p| p["description"] == format!("xos slice {slice}").as_str())
                        .and_then(|p| p["id"].as_str().map(str::to_string)),
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

// ---- privileges -----------------------------------------------------------------------------

/// SitePrivilege / SlicePrivilege → a role assignment of the user's Keystone account on the
/// site's or slice's project, on every OpenStack controller that has both (XOS's
/// ControllerSitePrivilege and ControllerSlicePrivilege). `admin` stays admin, other roles
/// become `member`; deleting the privilege removes the assignment.
pub struct OsPrivileges {
    backend: Arc<OsBackend>,
    /// "site" or "slice".
    kind: &'static str,
}

impl OsPrivileges {
    fn model(&self) -> &'static str {
        if self.kind == "site" {
            "SitePrivilege"
        } else {
            "SlicePrivilege"
        }
    }
    /// The link table and column of the privilege's object.
    fn links(&self) -> (&'static str, &'static str) {
        if self.kind == "site" {
            ("core_controllersite", "site_id")
        } else {
            ("core_controllerslice", "slice_id")
        }
    }
    /// (controller, project, kuser) for the privilege's object and user on each OpenStack
    /// controller that has both (empty strings where not made yet).
    async fn targets(&self, store: &Store, obj: &Record) -> Result<Vec<(i64, String, String)>, StoreError> {
        let (links, col) = self.links();
        let mut sql = Sql::new(format!(
            "SELECT l.controller_id, l.tenant_id, cu.kuser_id FROM {links} l \
             JOIN core_controlleruser cu ON cu.controller_id = l.controller_id AND NOT cu.deleted \
             JOIN core_controller c ON c.id = l.controller_id AND NOT c.deleted AND c.backend_type = "
        ));
        sql.bind(Value::Text(BACKEND.into()));
        sql.push(&format!(" WHERE NOT l.deleted AND l.{col} = "))
            .bind(Value::Int(obj.get_int(self.kind).unwrap_or_default()));
        sql.push(" AND cu.user_id = ")
            .bind(Value::Int(obj.get_int("user").unwrap_or_default()));
        Ok(rows(store, &sql, &[SqlType::Int, SqlType::Text, SqlType::Text])
            .await?
            .into_iter()
            .map(|r| (r[0].as_int().unwrap_or_default(), text(&r[1]), text(&r[2])))
            .collect())
    }
    async fn role(&self, store: &Store, obj: &Record) -> Result<&'static str, StoreError> {
        let table = if self.kind == "site" {
            "core_siterole"
        } else {
            "core_slicerole"
        };
        let r = rows(
            store,
            &by_id(
                &format!("SELECT role FROM {table} WHERE id = "),
                obj.get_int("role").unwrap_or_default(),
            ),
            &[SqlType::Text],
        )
        .await?;
        Ok(keystone_role(&r.first().map(|r| text(&r[0])).unwrap_or_default()))
    }
}

#[async_trait::async_trait]
impl Step for OsPrivileges {
    fn name(&self) -> &'static str {
        if self.kind == "site" {
            "openstack_site_privileges"
        } else {
            "openstack_slice_privileges"
        }
    }
    fn provides(&self) -> Vec<&'static str> {
        vec![self.model()]
    }
    fn observes(&self) -> &'static str {
        self.model()
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        // Privileges of objects on an OpenStack controller only.
        let (links, col) = self.links();
        let mut extra = and_where(
            &format!(
                "t.{col} IN (SELECT l.{col} FROM {links} l JOIN core_controller c ON c.id = l.controller_id \
                 WHERE c.backend_type = "
            ),
            Value::Text(BACKEND.into()),
        );
        extra.push(")");
        Ok(default_fetch_pending(&ctx.store, self.model(), deletion, Some(extra)).await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let targets = self.targets(&ctx.store, obj).await?;
        let ready: Vec<_> = targets
            .iter()
            .filter(|(_, p, u)| !p.is_empty() && !u.is_empty())
            .collect();
        if ready.is_empty() {
            return Err(deferred(format!(
                "waiting for the {}'s project and the user's Keystone account",
                self.kind
            )));
        }
        let role = self.role(&ctx.store, obj).await?;
        for (controller, project, kuser) in &ready {
            let c = self
                .backend
                .controller_by_id(&ctx.store, Some(*controller))
                .await?;
            let id = c.client.role_id(role).await.map_err(failed)?;
            c.client.assign_role(project, kuser, &id).await.map_err(failed)?;
        }
        Ok(Enacted::with_status(format!(
            "OK, role {role} on {} project(s)",
            ready.len()
        )))
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let role = self.role(&ctx.store, obj).await?;
        for (controller, project, kuser) in self.targets(&ctx.store, obj).await? {
            if project.is_empty() || kuser.is_empty() {
                continue;
            }
            let c = self
                .backend
                .controller_by_id(&ctx.store, Some(controller))
                .await?;
            let id = c.client.role_id(role).await.map_err(failed)?;
            c.client
                .unassign_role(&project, &kuser, &id)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}

// ---- users ------------------------------------------------------------------------------------

/// ControllerUser → a Keystone user (named by email) with the user's key pair.
pub struct OsUsers {
    backend: Arc<OsBackend>,
}

/// The Nova key pair name of XOS user `id`'s public key (the same on every cloud).
fn key_name(user: i64, public_key: &str) -> String {
    backend_kit::key_pair_name(user, public_key)
}

/// Make sure `user_id` (or the admin when None) has key pair `name` holding `key`.
async fn ensure_key_pair(
    cl: &OsClient,
    user_id: Option<&str>,
    name: &str,
    key: &str,
) -> Result<(), SyncError> {
    let suffix = user_id.map(|u| format!("?user_id={}", q(u))).unwrap_or_default();
    match cl
        .get(
            None,
            Service::Compute,
            &format!("/os-keypairs/{}{suffix}", seg(name)),
        )
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(failed(e)),
    }
    let mut kp = json!({"name": name, "public_key": key.trim()});
    if let Some(u) = user_id {
        kp["user_id"] = json!(u);
    }
    match cl
        .post(None, Service::Compute, "/os-keypairs", json!({"keypair": kp}))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(409) => Ok(()), // made meanwhile
        Err(e) => Err(failed(e)),
    }
}

#[async_trait::async_trait]
impl Step for OsUsers {
    fn name(&self) -> &'static str {
        "openstack_users"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["ControllerUser", "User"]
    }
    fn observes(&self) -> &'static str {
        "ControllerUser"
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        let mut pending =
            default_fetch_pending(&ctx.store, "ControllerUser", deletion, Some(openstack_links())).await?;
        if !deletion {
            // A user disabled (or enabled again) since its account was made: purge (or make) it.
            let model = ctx.store.model("ControllerUser");
            let mut sql = select_sql(model);
            sql.push(
                " JOIN core_user u ON u.id = t.user_id WHERE NOT t.deleted AND t.enacted_version > 0 \
                 AND ((t.kuser_id IS NOT NULL AND NOT u.is_active) OR (t.kuser_id IS NULL AND u.is_active))",
            );
            store::append_sql(&mut sql, &openstack_links());
            sql.push(" ORDER BY t.id");
            for values in ctx.store.db().fetch(&sql, &types(model)).await? {
                let r = Record { model, values };
                if !pending.iter().any(|p| p.id() == r.id()) {
                    pending.push(r);
                }
            }
        }
        Ok(pending)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.get_int("controller"))
            .await?;
        let user = obj.get_int("user").unwrap_or_default();
        let r = rows(
            &ctx.store,
            &by_id(
                "SELECT email, is_active, public_key FROM core_user WHERE id = ",
                user,
            ),
            &[SqlType::Text, SqlType::Bool, SqlType::Text],
        )
        .await?;
        let Some(r) = r.first() else {
            return Err(SyncError::Failed("the user is gone".into()));
        };
        let (email, active, public_key) = (text(&r[0]), r[1].as_bool().unwrap_or(false), text(&r[2]));
        let marker = format!("xos user {user}");
        let found = c
            .client
            .list(
                None,
                Service::Identity,
                &format!("/users?name={}", q(&email)),
                "users",
            )
            .await
            .map_err(failed)?
            .into_iter()
            .next();
        if let Some(u) = &found
            && u["description"].as_str().unwrap_or_default() != marker
        {
            return Err(SyncError::Failed(format!(
                "a Keystone user named {email} exists and was not made by XOS for this user"
            )));
        }
        if !active {
            // Disabled users are purged from the cloud (XOS's user purge).
            if let Some(u) = found {
                c.client
                    .delete(
                        None,
                        Service::Identity,
                        &format!("/users/{}", seg(u["id"].as_str().unwrap_or_default())),
                    )
                    .await
                    .map_err(failed)?;
            }
            return Ok(
                Enacted::with_status("OK, purged from Keystone: the user is disabled")
                    .field("kuser_id", Value::Null(SqlType::Text)),
            );
        }
        let kuser = match found {
            Some(u) => u["id"].as_str().unwrap_or_default().to_string(),
            None => {
                let domain = c.client.domain_id().await.map_err(failed)?;
                // Users log in to XOS; the cloud account gets a random password nobody knows.
                let password = {
                    use rand::RngCore;
                    let mut bytes = [0u8; 24];
                    rand::thread_rng().fill_bytes(&mut bytes);
                    backend_kit::sha256_hex(&format!("{bytes:?}"))
                };
                let u = c
                    .client
                    .post(
                        None,
                        Service::Identity,
                        "/users",
                        json!({"user": {"name": email, "domain_id": domain, "description": marker,
                                        "email": email, "password": password, "enabled": true}}),
                    )
                    .await
                    .map_err(failed)?;
                u["user"]["id"].as_str().unwrap_or_default().to_string()
            }
        };
        let mut status = format!("OK, Keystone user {email}");
        if !public_key.trim().is_empty() {
            let name = key_name(user, &public_key);
            ensure_key_pair(&c.client, Some(&kuser), &name, &public_key).await?;
            status.push_str(&format!(", key pair {name}"));
        }
        Ok(Enacted::with_status(status).field("kuser_id", Value::Text(kuser)))
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.get_int("controller"))
            .await?;
        if let Some(u) = obj.get_str("kuser_id").filter(|u| !u.is_empty()) {
            c.client
                .delete(None, Service::Identity, &format!("/users/{}", seg(u)))
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}

// ---- images -----------------------------------------------------------------------------------

/// ControllerImages → a Glance image.
pub struct OsImages {
    backend: Arc<OsBackend>,
}

#[async_trait::async_trait]
impl Step for OsImages {
    fn name(&self) -> &'static str {
        "openstack_images"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["ControllerImages", "Image"]
    }
    fn observes(&self) -> &'static str {
        "ControllerImages"
    }
    fn concurrency(&self) -> usize {
        2
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        Ok(default_fetch_pending(&ctx.store, "ControllerImages", deletion, Some(openstack_links())).await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.get_int("controller"))
            .await?;
        let image = obj.get_int("image").unwrap_or_default();
        let r = rows(
            &ctx.store,
            &by_id(
                "SELECT name, disk_format, container_format, path FROM core_image WHERE id = ",
                image,
            ),
            &[SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text],
        )
        .await?;
        let Some(r) = r.first() else {
            return Err(SyncError::Failed("the image is gone".into()));
        };
        let (name, disk, container, path) = (text(&r[0]), text(&r[1]), text(&r[2]), text(&r[3]));
        let found = c
            .client
            .list(
                None,
                Service::Image,
                &format!("/images?name={}", q(&name)),
                "images",
            )
            .await
            .map_err(failed)?;
        if let Some(img) = found.iter().find(|i| i["status"] == "active") {
            let id = img["id"].as_str().unwrap_or_default().to_string();
            return Ok(Enacted::with_status(format!("OK, Glance image {id}"))
                .field("glance_image_id", Value::Text(id)));
        }
        // One of ours left half-made (a crash during the upload): upload into it.
        let ours = found
            .iter()
            .find(|i| i["xos_image_id"] == image.to_string().as_str() && i["status"] == "queued");
        // Only a file of the image directory, of a bounded size, is ever sent to the cloud.
        let (file, len) = ctx
            .setting::<backend_kit::ImagesConfig>()
            .file(&ctx.state_dir, &path)
            .map_err(|e| SyncError::Failed(format!("no Glance image named {name}, and {e}")))?;
        let id = match ours {
            Some(i) => i["id"].as_str().unwrap_or_default().to_string(),
            None => {
                let or = |v: String, d: &str| if v.trim().is_empty() { d.to_string() } else { v };
                let created = c
                    .client
                    .post(
                        None,
                        Service::Image,
                        "/images",
                        // Shared, not public: the projects of the slices that boot it are
                        // made members (`server_spec`); nobody else sees it.
                        json!({"name": name, "disk_format": or(disk, "raw"), "container_format": or(container, "bare"),
                               "visibility": "shared", "xos_image_id": image.to_string()}),
                    )
                    .await
                    .map_err(failed)?;
                created["id"].as_str().unwrap_or_default().to_string()
            }
        };
        c.client.upload_image(&id, &file, len).await.map_err(failed)?;
        Ok(Enacted::with_status(format!("OK, uploaded as Glance image {id}"))
            .field("glance_image_id", Value::Text(id)))
    }
    async fn delete_record(&self, _ctx: &StepContext, _obj: &Record) -> Result<(), SyncError> {
        // Images may be in use by servers XOS does not know (an adopted one): left in Glance.
        Ok(())
    }
}

// ---- networks ---------------------------------------------------------------------------------

/// ControllerNetwork → a Neutron network, subnet and (NAT) router.
pub struct OsNetworks {
    backend: Arc<OsBackend>,
}

/// What a network should be.
struct NetworkSpec {
    id: i64,
    name: String,
    owner: i64,
    subnet: String,
    nat: bool,
    shared_name: String,
}

async fn network_spec(store: &Store, network: i64) -> Result<NetworkSpec, SyncError> {
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
fn cidr_of(spec: &NetworkSpec) -> String {
    if !spec.subnet.trim().is_empty() {
        spec.subnet.trim().to_string()
    } else {
        format!("10.{}.{}.0/24", (spec.id >> 8) & 0xff, spec.id & 0xff)
    }
}

/// The id of the one Neutron `kind` (networks, subnets) matching `query`: found, or made with
/// `create`; of several, the oldest (see [`keep_oldest`]).
async fn one_of(
    cl: &OsClient,
    kind: &str,
    query: &str,
    create: serde_json::Value,
) -> Result<String, SyncError> {
    let found = cl
        .list(None, Service::Network, &format!("/{kind}?{query}"), kind)
        .await
        .map_err(failed)?;
    match found.as_slice() {
        [one] => Ok(one["id"].as_str().unwrap_or_default().to_string()),
        [] => {
            cl.post(None, Service::Network, &format!("/{kind}"), create)
                .await
                .map_err(failed)?;
            keep_oldest(cl, kind, query).await
        }
        _ => keep_oldest(cl, kind, query).await,
    }
}

/// The oldest of the Neutron `kind` (networks, subnets) matching `query`, the others deleted.
///
/// Neutron has no idempotent create: a run killed while its create was in flight leaves the
/// object being made after the next run looked and made its own. Looking again after a create
/// (and whenever several are found) keeps one; the drift check removes a straggler that
/// appears later still.
async fn keep_oldest(cl: &OsClient, kind: &str, query: &str) -> Result<String, SyncError> {
    let mut found = cl
        .list(None, Service::Network, &format!("/{kind}?{query}"), kind)
        .await
        .map_err(failed)?;
    found.sort_by(|a, b| {
        let key = |v: &serde_json::Value| {
            (
                v["created_at"].as_str().unwrap_or_default().to_string(),
                v["id"].as_str().unwrap_or_default().to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    let keep = found
        .first()
        .and_then(|v| v["id"].as_str())
        .ok_or_else(|| deferred(format!("waiting for the new {kind} to be listed")))?
        .to_string();
    for extra in found.iter().skip(1) {
        let id = extra["id"].as_str().unwrap_or_default();
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

async fn enact_network(
    c: &Controller,
    store: &Store,
    obj: &Record,
    note: Option<&str>,
) -> Result<Enacted, SyncError> {
    let spec = network_spec(store, obj.get_int("network").unwrap_or_default()).await?;
    let cl = &c.client;
    let prefix = |s: String| match note {
        Some(n) => format!("{n}; {s}"),
        None => s,
    };
    if !spec.shared_name.trim().is_empty() {
        let nets = cl
            .list(
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
        let subnet = net["subnets"][0].as_str().unwrap_or_default().to_string();
        return Ok(
            Enacted::with_status(prefix(format!("OK, shared network {}", spec.shared_name)))
                .field(
                    "net_id",
                    Value::Text(net["id"].as_str().unwrap_or_default().to_string()),
                )
                .field("subnet_id", opt_text(subnet)),
        );
    }
    let project = slice_project(store, spec.owner, c.id)
        .await?
        .ok_or_else(|| deferred("waiting for the owner slice's project"))?;
    let marker = format!("xos network {}", spec.id);
    let net_id = one_of(
        cl,
        "networks",
        &format!("description={}&project_id={}", q(&marker), q(&project)),
        json!({"network": {"name": spec.name, "description": marker, "project_id": project}}),
    )
    .await?;
    let cidr = cidr_of(&spec);
    let subnet_id = one_of(
        cl,
        "subnets",
        &format!("network_id={}", q(&net_id)),
        json!({"subnet": {"network_id": net_id, "project_id": project, "ip_version": 4, "cidr": cidr,
                          "name": format!("{}-subnet", spec.name), "description": marker}}),
    )
    .await?;
    let mut router_id = String::new();
    if spec.nat {
        let routers = cl
            .list(
                None,
                Service::Network,
                &format!("/routers?description={}&project_id={}", q(&marker), q(&project)),
                "routers",
            )
            .await
            .map_err(failed)?;
        router_id = match routers.first() {
            Some(r) => r["id"].as_str().unwrap_or_default().to_string(),
            None => {
                let external = cl
                    .list(
                        None,
                        Service::Network,
                        "/networks?router:external=true",
                        "networks",
                    )
                    .await
                    .map_err(failed)?;
                let ext = external
                    .first()
                    .and_then(|n| n["id"].as_str())
                    .ok_or_else(|| {
                        SyncError::Failed("NAT needs an external network, and OpenStack has none".into())
                    })?
                    .to_string();
                let r = cl
                    .post(
                        None,
                        Service::Network,
                        "/routers",
                        json!({"router": {"name": format!("{}-router", spec.name), "description": marker,
                                          "project_id": project, "external_gateway_info": {"network_id": ext}}}),
                    )
                    .await
                    .map_err(failed)?;
                r["router"]["id"].as_str().unwrap_or_default().to_string()
            }
        };
        let attached = cl
            .list(
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
            .controller_by_id(&ctx.store, obj.get_int("controller"))
            .await?;
        enact_network(&c, &ctx.store, obj, None).await
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.get_int("controller"))
            .await?;
        let cl = &c.client;
        let network = obj.get_int("network").unwrap_or_default();
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
        let in_project = |v: &serde_json::Value| v["project_id"] == project.as_str();
        for r in cl
            .list(
                None,
                Service::Network,
                &format!("/routers?description={}{scope}", q(&marker)),
                "routers",
            )
            .await
            .map_err(failed)?
            .into_iter()
            .filter(in_project)
        {
            delete_router(cl, r["id"].as_str().unwrap_or_default()).await?;
        }
        for n in cl
            .list(
                None,
                Service::Network,
                &format!("/networks?description={}{scope}", q(&marker)),
                "networks",
            )
            .await
            .map_err(failed)?
            .into_iter()
            .filter(in_project)
        {
            let id = n["id"].as_str().unwrap_or_default();
            // Ports of servers still on it (their instances are deleted first) would block it.
            for port in cl
                .list(
                    None,
                    Service::Network,
                    &format!("/ports?network_id={}", q(id)),
                    "ports",
                )
                .await
                .map_err(failed)?
            {
                if !port["device_owner"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("network:")
                {
                    cl.delete(
                        None,
                        Service::Network,
                        &format!("/ports/{}", seg(port["id"].as_str().unwrap_or_default())),
                    )
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

// ---- instances --------------------------------------------------------------------------------

/// Servers, by XOS instance id.
pub struct OsInstances {
    backend: Arc<OsBackend>,
}

/// What a server should be.
struct ServerSpec {
    project: String,
    flavor: String,
    image: String,
    networks: Vec<String>,
    key: Option<(String, String)>,
    user_data: String,
}

async fn server_spec(c: &Controller, store: &Store, obj: &Record) -> Result<ServerSpec, SyncError> {
    let slice = obj.get_int("slice").unwrap_or_default();
    let project = slice_project(store, slice, c.id)
        .await?
        .ok_or_else(|| deferred("waiting for the slice's project"))?;
    let mut sql = by_id(
        "SELECT f.flavor, im.name, ci.glance_image_id, u.id, u.public_key \
         FROM core_instance i JOIN core_image im ON im.id = i.image_id \
         LEFT JOIN core_flavor f ON f.id = i.flavor_id \
         LEFT JOIN core_user u ON u.id = i.creator_id \
         LEFT JOIN core_controllerimages ci ON ci.image_id = im.id AND NOT ci.deleted AND ci.controller_id = ",
        c.id,
    );
    sql.push(" WHERE i.id = ").bind(Value::Int(obj.id()));
    let r = rows(
        store,
        &sql,
        &[
            SqlType::Text,
            SqlType::Text,
            SqlType::Text,
            SqlType::Int,
            SqlType::Text,
        ],
    )
    .await?;
    let r = r
        .first()
        .ok_or_else(|| SyncError::Failed("the instance's image is missing".into()))?;
    let flavor_name = {
        let f = text(&r[0]);
        if f.trim().is_empty() {
            "m1.tiny".to_string()
        } else {
            f
        }
    };
    let image = text(&r[2]);
    if image.is_empty() {
        return Err(deferred(format!("waiting for image {} in Glance", text(&r[1]))));
    }
    // An image XOS uploaded is shared with the projects that boot it, and only with them.
    c.client.share_image(&image, &project).await.map_err(failed)?;
    let flavor = c
        .client
        .flavor_id(&flavor_name)
        .await
        .map_err(failed)?
        .ok_or_else(|| SyncError::Failed(format!("OpenStack has no flavor named {flavor_name}")))?;
    let key = match (r[3].as_int(), text(&r[4])) {
        (Some(u), k) if !k.trim().is_empty() => Some((key_name(u, &k), k)),
        _ => None,
    };
    // The slice's networks, in id order: owned ones and joined ones.
    let mut sql = by_id(
        "SELECT cn.net_id, n.name FROM core_network n \
         LEFT JOIN core_controllernetwork cn ON cn.network_id = n.id AND NOT cn.deleted AND cn.controller_id = ",
        c.id,
    );
    sql.push(" WHERE NOT n.deleted AND (n.owner_id = ")
        .bind(Value::Int(slice));
    sql.push(" OR n.id IN (SELECT network_id FROM core_networkslice WHERE NOT deleted AND slice_id = ")
        .bind(Value::Int(slice));
    sql.push(")) ORDER BY n.id");
    let mut networks = Vec::new();
    for r in rows(store, &sql, &[SqlType::Text, SqlType::Text]).await? {
        let id = text(&r[0]);
        if id.is_empty() {
            return Err(deferred(format!(
                "waiting for network {} in Neutron",
                text(&r[1])
            )));
        }
        networks.push(id);
    }
    Ok(ServerSpec {
        project,
        flavor,
        image,
        networks,
        key,
        user_data: obj.get_str("userData").unwrap_or_default().to_string(),
    })
}

/// The model's view of a server: ids, name, address, and a status line.
fn reflect(s: &Server, what: &str) -> Enacted {
    let ip = s.addresses.first().map(|a| a.1.clone()).unwrap_or_default();
    let mut status = format!("{what}: {} as {}", s.status, s.id);
    if !ip.is_empty() {
        status.push_str(&format!(" at {ip}"));
    }
    Enacted::with_status(status)
        .field("instance_id", Value::Text(s.id.clone()))
        .field("instance_uuid", Value::Text(s.id.clone()))
        .field("instance_name", opt_text(s.instance_name.clone()))
        .field("ip", opt_text(ip))
}

/// The live servers carrying XOS instance id `id` in `project`.
async fn servers_of(cl: &OsClient, project: &str, id: i64) -> Result<Vec<Server>, SyncError> {
    let want = id.to_string();
    let mut v: Vec<Server> = cl
        .servers(Some(project), false)
        .await
        .map_err(failed)?
        .into_iter()
        .filter(|s| s.xos_id.as_deref() == Some(want.as_str()) && !s.is_gone())
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(v)
}

/// Make Nova match the instance: adopt or boot, then wait for ACTIVE.
async fn enact_instance(
    c: &Controller,
    store: &Store,
    obj: &Record,
    note: Option<&str>,
) -> Result<Enacted, SyncError> {
    let spec = server_spec(c, store, obj).await?;
    let cl = &c.client;
    let mut live = servers_of(cl, &spec.project, obj.id()).await?;
    let recorded = obj.get_str("instance_id").unwrap_or_default().to_string();
    if let Some(pos) = live.iter().position(|s| s.id == recorded) {
        let keep = live.remove(pos);
        live.insert(0, keep);
    }
    for extra in live.iter().skip(1) {
        tracing::warn!(instance = obj.id(), server = %extra.id, "deleting a duplicate Nova server");
        cl.delete(
            Some(&spec.project),
            Service::Compute,
            &format!("/servers/{}", seg(&extra.id)),
        )
        .await
        .map_err(failed)?;
    }
    // A server that failed to build is replaced.
    let server = match live.into_iter().next() {
        Some(s) if s.status == "ERROR" => {
            cl.delete(
                Some(&spec.project),
                Service::Compute,
                &format!("/servers/{}", seg(&s.id)),
            )
            .await
            .map_err(failed)?;
            return Err(SyncError::Failed(format!(
                "server {} failed: {}",
                s.id,
                s.fault.unwrap_or_else(|| "no reason given".into())
            )));
        }
        Some(s) => s,
        None => {
            if let Some((name, key)) = &spec.key {
                ensure_key_pair(cl, None, name, key).await?;
            }
            let mut server = json!({
                "name": obj.get_str("name").unwrap_or_default(),
                "flavorRef": spec.flavor,
                "imageRef": spec.image,
                "networks": if spec.networks.is_empty() { json!("none") } else {
                    json!(spec.networks.iter().map(|n| json!({"uuid": n})).collect::<Vec<_>>()) },
                "metadata": {META_KEY: obj.id().to_string()},
            });
            if let Some((name, _)) = &spec.key {
                server["key_name"] = json!(name);
            }
            if !spec.user_data.is_empty() {
                use base64::Engine as _;
                server["user_data"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(&spec.user_data));
            }
            let made = cl
                .post(
                    Some(&spec.project),
                    Service::Compute,
                    "/servers",
                    json!({"server": server}),
                )
                .await
                .map_err(|e| {
                    // A flavor deleted or made again in Nova: look it up anew next time.
                    cl.forget_ids("flavor");
                    failed(e)
                })?;
            let id = made["server"]["id"].as_str().unwrap_or_default().to_string();
            cl.server(Some(&spec.project), &id)
                .await
                .map_err(failed)?
                .ok_or_else(|| SyncError::Failed(format!("server {id} vanished after it was created")))?
        }
    };
    let server = wait_active(cl, &spec.project, server).await?;
    Ok(reflect(&server, note.unwrap_or("OK")))
}

/// Poll a server until it is ACTIVE (or failed).
async fn wait_active(cl: &OsClient, project: &str, mut s: Server) -> Result<Server, SyncError> {
    let start = std::time::Instant::now();
    loop {
        match s.status.as_str() {
            "ACTIVE" => return Ok(s),
            "ERROR" => {
                return Err(SyncError::Failed(format!(
                    "server {} failed: {}",
                    s.id,
                    s.fault.unwrap_or_else(|| "no reason given".into())
                )));
            }
            _ if start.elapsed() > BOOT_WAIT => {
                return Err(deferred(format!("server {} is still {}", s.id, s.status)));
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        s = cl
            .server(Some(project), &s.id)
            .await
            .map_err(failed)?
            .ok_or_else(|| SyncError::Failed(format!("server {} disappeared while it booted", s.id)))?;
    }
}

#[async_trait::async_trait]
impl Step for OsInstances {
    fn name(&self) -> &'static str {
        "openstack_instances"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Instance"]
    }
    fn observes(&self) -> &'static str {
        "Instance"
    }
    fn concurrency(&self) -> usize {
        8
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        Ok(default_fetch_pending(
            &ctx.store,
            "Instance",
            deletion,
            Some(openstack_instances("t.id")),
        )
        .await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self
            .backend
            .controller_of_deployment(&ctx.store, obj.get_int("deployment").unwrap_or_default())
            .await?;
        enact_instance(&c, &ctx.store, obj, None).await
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let c = self
            .backend
            .controller_of_deployment(&ctx.store, obj.get_int("deployment").unwrap_or_default())
            .await?;
        let Some(project) = slice_project(&ctx.store, obj.get_int("slice").unwrap_or_default(), c.id).await?
        else {
            return Ok(()); // no project, no server
        };
        let servers = match servers_of(&c.client, &project, obj.id()).await {
            Ok(s) => s,
            // The project went first (the slice's deletion purges it): nothing left here.
            Err(SyncError::Failed(m)) if m.contains("HTTP 401") || m.contains("HTTP 404") => return Ok(()),
            Err(e) => return Err(e),
        };
        for s in &servers {
            c.client
                .delete(
                    Some(&project),
                    Service::Compute,
                    &format!("/servers/{}", seg(&s.id)),
                )
                .await
                .map_err(failed)?;
        }
        for s in &servers {
            wait_gone(&c.client, &s.id).await?;
        }
        Ok(())
    }
}

// ---- ports ------------------------------------------------------------------------------------

/// Port → the server's Neutron port on the port's network.
pub struct OsPorts {
    backend: Arc<OsBackend>,
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
            let id = p["id"].as_str().unwrap_or_default();
            match c
                .client
                .delete(None, Service::Network, &format!("/ports/{}", seg(id)))
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
async fn find_port(
    backend: &OsBackend,
    store: &Store,
    obj: &Record,
) -> Result<Option<(Controller, Vec<serde_json::Value>)>, SyncError> {
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
async fn ports_of(
    cl: &OsClient,
    server: &str,
    net: &str,
    project: &str,
) -> Result<Vec<serde_json::Value>, SyncError> {
    let ports = cl
        .list(
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
        .filter(|p| p["device_id"] == server && p["network_id"] == net && p["project_id"] == project)
        .collect())
}

/// What a Port row's Neutron port is found by.
struct PortContext {
    c: Controller,
    /// The instance's server (its `instance_uuid`, written by the synchronizer).
    server: Option<String>,
    /// The network's id in Neutron on this controller.
    net: Option<String>,
    /// The slice's project on this controller.
    project: Option<String>,
}

async fn port_context(
    backend: &OsBackend,
    store: &Store,
    obj: &Record,
) -> Result<Option<PortContext>, SyncError> {
    let instance = obj.get_int("instance").unwrap_or_default();
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
        obj.get_int("network").unwrap_or_default(),
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
async fn enact_port(
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
    let ip = p["fixed_ips"][0]["ip_address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let id = p["id"].as_str().unwrap_or_default().to_string();
    let status = format!("OK, port {id} at {ip}");
    Ok(Enacted::with_status(match note {
        Some(n) => format!("{n}; {status}"),
        None => status,
    })
    .field("port_id", Value::Text(id))
    .field("ip", opt_text(ip))
    .field(
        "mac",
        opt_text(p["mac_address"].as_str().unwrap_or_default().to_string()),
    ))
}

// ---- drift ------------------------------------------------------------------------------------

/// Notices servers, ports and networks deleted or changed behind XOS's back (external step): one
/// server list, one port list and one network list per controller and interval, whatever their
/// numbers.
pub struct OsDrift {
    backend: Arc<OsBackend>,
    interval: Duration,
    /// What the last fetch saw, by instance id (None: no live server).
    seen: Mutex<HashMap<i64, Option<Server>>>,
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
        let note = format!("re-created: {gone} was deleted outside XOS");
        tracing::info!(instance = obj.id(), server = %gone, "re-creating a server deleted outside XOS");
        enact_instance(&c, &ctx.store, obj, Some(&note)).await
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}

/// Row `id` of `model` as the synchronizer sees it (None when it is gone).
async fn load_record(store: &Store, model: &'static Model, id: i64) -> Result<Option<Record>, StoreError> {
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
async fn record_enacted(store: &Store, rec: &Record, enacted: Enacted) -> Result<(), StoreError> {
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
async fn repair_ports(
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
async fn repair_networks(c: &Controller, store: &Store) {
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

// ---- model policies ---------------------------------------------------------------------------

/// The OpenStack model policies XOS had, run with the others on every pass (one query when no
/// OpenStack controller exists): a slice on an OpenStack controller gets its default private
/// network; an instance gets a port on each of its slice's networks; a network gets a
/// ControllerNetwork on each OpenStack controller its slices use; an image gets ControllerImages
/// on each OpenStack controller whose deployment offers it or runs it.
pub struct Policies;

#[async_trait::async_trait]
impl synchronizer::ModelPolicy for Policies {
    async fn run(&self, store: &Store) -> Result<usize, StoreError> {
        policies(store).await
    }
}

/// [`Policies`]: the rows made.
pub async fn policies(store: &Store) -> Result<usize, StoreError> {
    let has = rows(
        store,
        &{
            let mut s = Sql::new("SELECT id FROM core_controller WHERE NOT deleted AND backend_type = ");
            s.bind(Value::Text(BACKEND.into()));
            s.push(" LIMIT 1");
            s
        },
        &[SqlType::Int],
    )
    .await?;
    if has.is_empty() {
        return Ok(0);
    }
    let os = |s: &str| {
        let mut sql = Sql::new(s);
        sql.bind(Value::Text(BACKEND.into()));
        sql
    };
    let mut made = 0;
    let mut unit = store.begin(Actor::System).await?;
    // Slices with a ControllerSlice on OpenStack whose `network` setting is not host/bridged:
    // the default private network when they have no network of their own or joined, and (like
    // XOS's model_policy_Slice) a NAT network on the shared `nat-net` when their setting is `nat`
    // and they own no NAT network yet.
    let on_openstack = "SELECT s.id, s.name FROM core_slice s WHERE NOT s.deleted \
         AND COALESCE(s.network, '') NOT IN ('host', 'bridged') AND s.id IN \
         (SELECT cs.slice_id FROM core_controllerslice cs JOIN core_controller c ON c.id = cs.controller_id \
          WHERE NOT cs.deleted AND NOT c.deleted AND c.backend_type = ";
    let mut private = os(on_openstack);
    private.push(") AND NOT EXISTS (SELECT 1 FROM core_network n WHERE n.owner_id = s.id AND NOT n.deleted) \
              AND NOT EXISTS (SELECT 1 FROM core_networkslice ns WHERE ns.slice_id = s.id AND NOT ns.deleted) \
              ORDER BY s.id LIMIT 100");
    let mut nat = os(on_openstack);
    nat.push(
        ") AND s.network = 'nat' AND NOT EXISTS (SELECT 1 FROM core_network n \
              JOIN core_networktemplate t ON t.id = n.template_id \
              WHERE n.owner_id = s.id AND NOT n.deleted AND LOWER(t.translation) = 'nat') \
              ORDER BY s.id LIMIT 100",
    );
    for (sql, template, suffix, label) in [
        (private, "Private", "private", "default private network"),
        (nat, "Public shared IPv4", "nat", "NAT network"),
    ] {
        let slices = unit.fetch(&sql, &[SqlType::Int, SqlType::Text]).await?;
        if slices.is_empty() {
            continue;
        }
        let mut by_name = Sql::new("SELECT id FROM core_networktemplate WHERE NOT deleted AND name = ");
        by_name.bind(Value::Text(template.into()));
        let Some(template) = unit
            .fetch(&by_name, &[SqlType::Int])
            .await?
            .first()
            .and_then(|r| r[0].as_int())
        else {
            tracing::warn!(template, "network template missing; slices get no {label}");
            continue;
        };
        for s in slices {
            let (slice, name) = (s[0].as_int().unwrap_or_default(), text(&s[1]));
            let mut net_name = format!("{name}-{suffix}");
            if net_name.len() > 32 {
                net_name = format!("slice{slice}-{suffix}");
            }
            let input = json!({"name": net_name, "template": template, "owner": slice, "labels": label});
            let net = unit
                .create(store.model("Network"), input.as_object().expect("object"))
                .await?;
            let link = json!({"network": net.id(), "slice": slice});
            unit.create(store.model("NetworkSlice"), link.as_object().expect("object"))
                .await?;
            made += 2;
        }
    }
    // Instances on OpenStack deployments: a port on each of the slice's networks.
    let mut sql = os(
        "SELECT i.id, n.id FROM core_instance i JOIN core_network n ON NOT n.deleted AND (n.owner_id = i.slice_id \
           OR n.id IN (SELECT network_id FROM core_networkslice WHERE NOT deleted AND slice_id = i.slice_id)) \
         WHERE NOT i.deleted AND i.deployment_id IN (SELECT deployment_id FROM core_controller WHERE NOT deleted AND backend_type = ",
    );
    sql.push(") AND NOT EXISTS (SELECT 1 FROM core_port p WHERE p.instance_id = i.id AND p.network_id = n.id AND NOT p.deleted) \
              ORDER BY i.id, n.id LIMIT 500");
    for r in unit.fetch(&sql, &[SqlType::Int, SqlType::Int]).await? {
        let input = json!({"instance": r[0].as_int(), "network": r[1].as_int()});
        unit.create(store.model("Port"), input.as_object().expect("object"))
            .await?;
        made += 1;
    }
    // Networks: a ControllerNetwork on each OpenStack controller of their slices.
    let mut sql = os("SELECT DISTINCT n.id, cs.controller_id FROM core_network n \
         JOIN core_controllerslice cs ON NOT cs.deleted AND (cs.slice_id = n.owner_id \
           OR cs.slice_id IN (SELECT slice_id FROM core_networkslice WHERE NOT deleted AND network_id = n.id)) \
         JOIN core_controller c ON c.id = cs.controller_id AND NOT c.deleted AND c.backend_type = ");
    sql.push(
        " WHERE NOT n.deleted AND NOT EXISTS (SELECT 1 FROM core_controllernetwork cn \
              WHERE cn.network_id = n.id AND cn.controller_id = cs.controller_id AND NOT cn.deleted) \
              ORDER BY n.id LIMIT 500",
    );
    for r in unit.fetch(&sql, &[SqlType::Int, SqlType::Int]).await? {
        let input = json!({"network": r[0].as_int(), "controller": r[1].as_int()});
        unit.create(
            store.model("ControllerNetwork"),
            input.as_object().expect("object"),
        )
        .await?;
        made += 1;
    }
    // Images offered on (ImageDeployments) or used by instances of an OpenStack deployment.
    let mut sql = os(
        "SELECT DISTINCT im.id, c.id FROM core_image im JOIN core_controller c ON NOT c.deleted AND c.backend_type = ",
    );
    sql.push(" WHERE NOT im.deleted AND (im.id IN (SELECT image_id FROM core_imagedeployments WHERE NOT deleted AND deployment_id = c.deployment_id) \
                OR im.id IN (SELECT image_id FROM core_instance WHERE NOT deleted AND deployment_id = c.deployment_id)) \
              AND NOT EXISTS (SELECT 1 FROM core_controllerimages ci WHERE ci.image_id = im.id AND ci.controller_id = c.id AND NOT ci.deleted) \
              ORDER BY im.id LIMIT 500");
    for r in unit.fetch(&sql, &[SqlType::Int, SqlType::Int]).await? {
        let input = json!({"image": r[0].as_int(), "controller": r[1].as_int()});
        unit.create(
            store.model("ControllerImages"),
            input.as_object().expect("object"),
        )
        .await?;
        made += 1;
    }
    unit.commit().await?;
    Ok(made)
}
