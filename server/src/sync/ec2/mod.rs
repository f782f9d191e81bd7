//! The EC2 backend (the guide's "Developing a Synchronizer" example, as a real backend).
//!
//! A Controller with `backend_type` `EC2` selects it for its Deployment. The Controller carries
//! the connection: `auth_url` the endpoint (empty: the region's AWS endpoint), `admin_user` the
//! access key id, `admin_password` the secret access key (write-only, never logged), `domain`
//! the region, and `settings` a JSON object: `public_images` (public AMI ids to offer besides the
//! account's own) and `drift` (`recreate`, the default, or `report`).
//!
//! Steps:
//! - [`Ec2Catalog`] (external, on an interval): a Site, SiteDeployment and Node per availability
//!   zone (`login_base` = the zone), an Image per AMI (the account's own and the allowed public
//!   ones; `path` = the AMI id), and the Flavors of [`INSTANCE_TYPES`].
//! - [`Ec2Instances`] (internal, driven by changes): runs, resizes, replaces and terminates
//!   instances. Each EC2 instance is tagged with the model's id and looked up by that tag before
//!   anything is run, so a crash between RunInstances and the write of the instance id never
//!   leads to a second instance: the restarted synchronizer adopts the first.
//! - [`Ec2Drift`] (external, on an interval): one DescribeInstances per controller for all its
//!   instances; reflects state and addresses changed outside XOS and re-creates (or reports)
//!   instances terminated outside XOS.

pub mod client;

use super::{Enacted, Step, StepContext, SyncError, and_where, default_fetch_pending};
use crate::db::{Sql, Value};
use crate::store::{Actor, Record, Store, StoreError, select_sql, types};
use app::registry::SqlType;
use client::{Ec2Client, Ec2Config, Ec2Error, Ec2Instance, RunRequest};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The `backend_type` that selects this backend.
pub const BACKEND: &str = "EC2";
/// The tag carrying the model's id on each EC2 instance.
pub const TAG: &str = "xos-instance-id";
/// The instance types offered as Flavors: (type, vCPUs, memory in MiB).
pub const INSTANCE_TYPES: &[(&str, i64, i64)] = &[
    ("t2.micro", 1, 1024),
    ("t2.small", 1, 2048),
    ("t2.medium", 2, 4096),
    ("t2.large", 2, 8192),
    ("m5.large", 2, 8192),
    ("m5.xlarge", 4, 16384),
];

/// Instances of deployments whose controller is an EC2 one.
const EC2_INSTANCES: &str =
    "t.deployment_id IN (SELECT deployment_id FROM core_controller WHERE NOT deleted AND backend_type = ";

/// What to do about an instance terminated outside XOS.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Drift {
    #[default]
    Recreate,
    Report,
}

/// The JSON `settings` of an EC2 controller.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub public_images: Vec<String>,
    #[serde(default)]
    pub drift: Drift,
}

impl Settings {
    pub fn parse(text: Option<&str>) -> Result<Settings, String> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(Settings::default()),
            Some(t) => serde_json::from_str(t).map_err(|e| format!("the controller's settings: {e}")),
        }
    }
}

/// The EC2 backend's shared state: a client per controller, the count of API calls.
#[derive(Default)]
pub struct Ec2Backend {
    clients: Mutex<HashMap<i64, (String, Ec2Client)>>,
    /// Calls made by clients that were replaced (their counters are gone).
    retired_calls: AtomicU64,
}

/// An EC2 controller and its client.
struct Controller {
    id: i64,
    deployment: i64,
    settings: Settings,
    client: Ec2Client,
}

impl Ec2Backend {
    /// EC2 API calls made so far (the idle-pass figure of `make bench`).
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
        let region = rec.get_str("domain").unwrap_or_default().trim().to_string();
        let endpoint = rec
            .get_str("auth_url")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| Ec2Client::default_endpoint(&region));
        let config = Ec2Config {
            endpoint,
            region,
            access_key: rec.get_str("admin_user").unwrap_or_default().trim().to_string(),
            secret_key: rec.get_str("admin_password").unwrap_or_default().to_string(),
        };
        let settings = Settings::parse(rec.get_str("settings")).map_err(SyncError::Failed)?;
        // Reuse the client (its connections) while the connection settings stay the same.
        let fingerprint = format!(
            "{}|{}|{}|{}",
            config.endpoint,
            config.region,
            config.access_key,
            crate::auth::key_hash(&config.secret_key)
        );
        let mut clients = self.clients.lock().expect("clients lock");
        let client = match clients.get(&rec.id()) {
            Some((f, c)) if *f == fingerprint => c.clone(),
            _ => {
                let c = Ec2Client::new(config).map_err(|e| SyncError::Failed(e.to_string()))?;
                if let Some((_, old)) = clients.insert(rec.id(), (fingerprint, c.clone())) {
                    self.retired_calls.fetch_add(old.calls(), Ordering::Relaxed);
                }
                c
            }
        };
        Ok(Controller {
            id: rec.id(),
            deployment: rec.get_int("deployment").unwrap_or_default(),
            settings,
            client,
        })
    }

    /// The live EC2 controllers.
    async fn controllers(store: &Store) -> Result<Vec<Record>, StoreError> {
        let model = store.model("Controller");
        let mut sql = select_sql(model);
        sql.push(" WHERE NOT t.deleted AND t.backend_type = ")
            .bind(Value::Text(BACKEND.into()));
        sql.push(" ORDER BY t.id");
        let rows = store.db().fetch(&sql, &types(model)).await?;
        Ok(rows.into_iter().map(|values| Record { model, values }).collect())
    }

    /// The controller of an instance's deployment.
    async fn controller_of(&self, store: &Store, instance: &Record) -> Result<Controller, SyncError> {
        let deployment = instance.get_int("deployment").unwrap_or_default();
        let rec = Ec2Backend::controllers(store)
            .await?
            .into_iter()
            .find(|c| c.get_int("deployment") == Some(deployment))
            .ok_or_else(|| SyncError::Failed("the instance's deployment has no EC2 controller".into()))?;
        self.controller(&rec)
    }
}

fn failed(e: Ec2Error) -> SyncError {
    SyncError::Failed(e.to_string())
}

/// The steps of the EC2 backend, sharing one client per controller.
pub fn steps(
    backend: Arc<Ec2Backend>,
    catalog_interval: Duration,
    drift_interval: Duration,
) -> Vec<Arc<dyn Step>> {
    vec![
        Arc::new(Ec2Catalog {
            backend: backend.clone(),
            interval: catalog_interval,
        }),
        Arc::new(Ec2Instances {
            backend: backend.clone(),
        }),
        Arc::new(Ec2Drift {
            backend,
            interval: drift_interval,
            seen: Mutex::new(HashMap::new()),
        }),
    ]
}

// ---- the catalog: zones, images, flavors ----------------------------------------------------

/// Sites, nodes, images and flavors from EC2 (external step).
pub struct Ec2Catalog {
    backend: Arc<Ec2Backend>,
    interval: Duration,
}

/// The id of the live row of `table` where `column = value`, if any.
async fn find_id(
    unit: &mut crate::store::Unit,
    table: &str,
    column: &str,
    value: Value,
) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new(format!(
        "SELECT id FROM {table} WHERE NOT deleted AND \"{column}\" = "
    ));
    sql.bind(value);
    sql.push(" ORDER BY id LIMIT 1");
    Ok(unit
        .fetch(&sql, &[SqlType::Int])
        .await?
        .first()
        .and_then(|r| r[0].as_int()))
}

/// The id of the live row of `table` joining `a` and `b`.
async fn find_link(
    unit: &mut crate::store::Unit,
    table: &str,
    a: (&str, i64),
    b: (&str, i64),
) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new(format!(
        "SELECT id FROM {table} WHERE NOT deleted AND \"{}_id\" = ",
        a.0
    ));
    sql.bind(Value::Int(a.1));
    sql.push(&format!(" AND \"{}_id\" = ", b.0)).bind(Value::Int(b.1));
    Ok(unit
        .fetch(&sql, &[SqlType::Int])
        .await?
        .first()
        .and_then(|r| r[0].as_int()))
}

fn obj(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

impl Ec2Catalog {
    /// Bring the catalog of one controller up to date; returns a summary for its status.
    async fn refresh(&self, store: &Store, c: &Controller) -> Result<String, SyncError> {
        let zones = c.client.zones().await.map_err(failed)?;
        let images = c.client.images(&c.settings.public_images).await.map_err(failed)?;
        let mut unit = store.begin(Actor::System).await?;
        let mut created = 0;
        for zone in &zones {
            let site = match find_id(&mut unit, "core_site", "login_base", Value::Text(zone.clone())).await? {
                Some(id) => id,
                None => {
                    created += 1;
                    let input = json!({"login_base": zone, "name": format!("EC2 {zone}"), "abbreviated_name": zone,
                                       "hosts_users": false});
                    unit.create(store.model("Site"), &obj(input)).await?.id()
                }
            };
            let sd = match find_link(
                &mut unit,
                "core_sitedeployment",
                ("site", site),
                ("deployment", c.deployment),
            )
            .await?
            {
                Some(id) => id,
                None => {
                    created += 1;
                    let input = json!({"site": site, "deployment": c.deployment, "controller": c.id});
                    unit.create(store.model("SiteDeployment"), &obj(input))
                        .await?
                        .id()
                }
            };
            if find_id(&mut unit, "core_node", "name", Value::Text(zone.clone()))
                .await?
                .is_none()
            {
                created += 1;
                let input = json!({"name": zone, "site_deployment": sd});
                unit.create(store.model("Node"), &obj(input)).await?;
            }
        }
        for img in &images {
            let image = match find_id(&mut unit, "core_image", "path", Value::Text(img.id.clone())).await? {
                Some(id) => id,
                None => {
                    created += 1;
                    // Image names are unique; AMI names need not be.
                    let mut name = if img.name.is_empty() {
                        img.id.clone()
                    } else {
                        img.name.clone()
                    };
                    if find_id(&mut unit, "core_image", "name", Value::Text(name.clone()))
                        .await?
                        .is_some()
                    {
                        name = format!("{name} ({})", img.id);
                    }
                    name.truncate(256);
                    let input = json!({"name": name, "kind": "vm", "disk_format": "ami", "container_format": "ami",
                                       "path": img.id});
                    unit.create(store.model("Image"), &obj(input)).await?.id()
                }
            };
            if find_link(
                &mut unit,
                "core_imagedeployments",
                ("image", image),
                ("deployment", c.deployment),
            )
            .await?
            .is_none()
            {
                let input = json!({"image": image, "deployment": c.deployment});
                unit.create(store.model("ImageDeployments"), &obj(input)).await?;
            }
        }
        for (i, (itype, vcpus, memory)) in INSTANCE_TYPES.iter().enumerate() {
            let flavor = match find_id(&mut unit, "core_flavor", "name", Value::Text(itype.to_string()))
                .await?
            {
                Some(id) => id,
                None => {
                    created += 1;
                    let input = json!({"name": itype, "flavor": itype, "vcpus": vcpus, "memory_mb": memory,
                                       "order": 100 + i, "description": format!("EC2 {itype}: {vcpus} vCPU, {} GiB", memory / 1024)});
                    unit.create(store.model("Flavor"), &obj(input)).await?.id()
                }
            };
            if find_link(
                &mut unit,
                "core_flavordeployment",
                ("flavor", flavor),
                ("deployment", c.deployment),
            )
            .await?
            .is_none()
            {
                let input = json!({"flavor": flavor, "deployment": c.deployment});
                unit.create(store.model("FlavorDeployment"), &obj(input)).await?;
            }
        }
        unit.commit().await?;
        Ok(format!(
            "OK, {} zones, {} images, {} instance types ({created} objects created)",
            zones.len(),
            images.len(),
            INSTANCE_TYPES.len()
        ))
    }
}

#[async_trait::async_trait]
impl Step for Ec2Catalog {
    fn name(&self) -> &'static str {
        "ec2_catalog"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Site", "SiteDeployment", "Node", "Image", "Flavor"]
    }
    fn observes(&self) -> &'static str {
        "Controller"
    }
    fn requested_interval(&self) -> Duration {
        // The engine asks every pass; `fetch_pending` keeps the interval per controller, so
        // saving a controller ("asking") refreshes its catalog at once.
        Duration::ZERO
    }
    fn concurrency(&self) -> usize {
        1
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        if deletion {
            // Deleted controllers of any backend: nothing to tear down here, so they are purged.
            return Ok(default_fetch_pending(&ctx.store, "Controller", true, None).await?);
        }
        let due_before = crate::sync::engine::now_ms() - self.interval.as_millis() as i64;
        // One query a pass: saved since its last sync (the version counters), or due.
        Ok(Ec2Backend::controllers(&ctx.store)
            .await?
            .into_iter()
            .filter(|c| {
                c.get_int("row_version") > c.get_int("enacted_version")
                    || c.get_str("backend_register")
                        .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
                        .and_then(|r| r["last_success"].as_i64())
                        .is_none_or(|t| t <= due_before)
            })
            .collect())
    }

    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self.backend.controller(obj)?;
        let summary = self.refresh(&ctx.store, &c).await?;
        Ok(Enacted::with_status(summary))
    }
    async fn delete_record(&self, _ctx: &StepContext, _obj: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}

// ---- instances -------------------------------------------------------------------------------

/// What an instance should be in EC2.
struct Wanted {
    ami: String,
    instance_type: String,
    zone: Option<String>,
    /// (key pair name, public key) of the instance's creator.
    key: Option<(String, String)>,
}

async fn wanted(store: &Store, obj: &Record) -> Result<Wanted, SyncError> {
    let mut sql = Sql::new(
        "SELECT im.path, im.name, f.flavor, s.login_base, u.id, u.public_key \
         FROM core_instance i \
         JOIN core_image im ON im.id = i.image_id \
         LEFT JOIN core_flavor f ON f.id = i.flavor_id \
         LEFT JOIN core_node n ON n.id = i.node_id \
         LEFT JOIN core_sitedeployment sd ON sd.id = n.site_deployment_id \
         LEFT JOIN core_site s ON s.id = sd.site_id \
         LEFT JOIN core_user u ON u.id = i.creator_id \
         WHERE i.id = ",
    );
    sql.bind(Value::Int(obj.id()));
    let rows = store
        .db()
        .fetch(
            &sql,
            &[
                SqlType::Text,
                SqlType::Text,
                SqlType::Text,
                SqlType::Text,
                SqlType::Int,
                SqlType::Text,
            ],
        )
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| SyncError::Failed("the instance's image is missing".into()))?;
    let ami = r[0].as_str().map(str::trim).unwrap_or_default().to_string();
    if !ami.starts_with("ami-") {
        return Err(SyncError::Failed(format!(
            "image '{}' has no AMI id in its path",
            r[1].as_str().unwrap_or_default()
        )));
    }
    let instance_type = r[2]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("t2.micro")
        .to_string();
    let key = match (
        r[4].as_int(),
        r[5].as_str().map(str::trim).filter(|k| !k.is_empty()),
    ) {
        (Some(user), Some(public_key)) => {
            let digest = crate::auth::key_hash(public_key);
            Some((
                format!("xos-user-{user}-{}", &digest[..8]),
                public_key.to_string(),
            ))
        }
        _ => None,
    };
    Ok(Wanted {
        ami,
        instance_type,
        zone: r[3].as_str().map(str::to_string),
        key,
    })
}

/// The model's view of an EC2 instance: its id, name and address, and a status line.
fn reflect(inst: &Ec2Instance, what: &str) -> Enacted {
    let ip = inst
        .private_ip
        .clone()
        .or_else(|| inst.public_ip.clone())
        .unwrap_or_default();
    let mut status = format!("{what}: {} as {}", inst.state, inst.id);
    if !ip.is_empty() {
        status.push_str(&format!(" at {ip}"));
    }
    if let Some(public) = &inst.public_ip {
        status.push_str(&format!(" (public {public})"));
    }
    let mut e = Enacted::with_status(status)
        .field("instance_id", Value::Text(inst.id.clone()))
        .field("instance_name", Value::Text(inst.id.clone()));
    e = e.field(
        "ip",
        if ip.is_empty() {
            Value::Null(SqlType::Text)
        } else {
            Value::Text(ip)
        },
    );
    e
}

/// Make EC2 match the instance: adopt, run, resize or replace. `note` prefixes the status.
async fn enact(
    c: &Controller,
    store: &Store,
    obj: &Record,
    note: Option<&str>,
) -> Result<Enacted, SyncError> {
    let w = wanted(store, obj).await?;
    let id = obj.id().to_string();
    // Ours by tag: also what a crash left behind between RunInstances and the status write.
    let mut live: Vec<Ec2Instance> = c
        .client
        .instances_tagged(TAG, Some(&id))
        .await
        .map_err(failed)?
        .into_iter()
        .filter(|i| !i.is_gone())
        .collect();
    live.sort_by(|a, b| a.id.cmp(&b.id));
    // Prefer the one the model records; stop any others (a duplicate would be a leak).
    let recorded = obj.get_str("instance_id").unwrap_or_default().to_string();
    if let Some(pos) = live.iter().position(|i| i.id == recorded) {
        let keep = live.remove(pos);
        live.insert(0, keep);
    }
    for extra in live.iter().skip(1) {
        tracing::warn!(instance = obj.id(), ec2 = %extra.id, "terminating a duplicate EC2 instance");
        c.client.terminate(&extra.id).await.map_err(failed)?;
    }
    let prefix = |s: &str| match note {
        Some(n) => format!("{n}; {s}"),
        None => s.to_string(),
    };
    match live.into_iter().next() {
        Some(inst) if inst.image_id != w.ami => {
            c.client.terminate(&inst.id).await.map_err(failed)?;
            let new = run(c, obj, &w).await?;
            Ok(reflect(
                &new,
                &prefix(&format!("replaced {} (image changed to {})", inst.id, w.ami)),
            ))
        }
        Some(inst) if inst.instance_type != w.instance_type => {
            let resized = resize(c, &inst, &w.instance_type).await?;
            Ok(reflect(
                &resized,
                &prefix(&format!(
                    "resized from {} to {} (stopped, changed, started)",
                    inst.instance_type, w.instance_type
                )),
            ))
        }
        Some(inst) => Ok(reflect(&inst, &prefix("OK"))),
        None => {
            let new = run(c, obj, &w).await?;
            Ok(reflect(&new, &prefix("OK")))
        }
    }
}

async fn run(c: &Controller, obj: &Record, w: &Wanted) -> Result<Ec2Instance, SyncError> {
    // A clear error for a missing AMI before anything is launched (moto would launch it).
    c.client.check_image(&w.ami).await.map_err(failed)?;
    if let Some((name, key)) = &w.key {
        c.client.ensure_key_pair(name, key).await.map_err(failed)?;
    }
    // A fresh token per launch of this object (a replacement is a new launch); real EC2 makes a
    // retried call with the same token idempotent.
    let token = format!(
        "xos-{}-{}-{}",
        obj.id(),
        obj.get_int("row_version").unwrap_or(0),
        chrono::Utc::now().timestamp()
    );
    let tags = [
        (TAG, obj.id().to_string()),
        ("Name", obj.get_str("name").unwrap_or_default().to_string()),
    ];
    c.client
        .run(&RunRequest {
            image_id: &w.ami,
            instance_type: &w.instance_type,
            zone: w.zone.as_deref(),
            key_name: w.key.as_ref().map(|(n, _)| n.as_str()),
            client_token: &token,
            tags: &tags,
        })
        .await
        .map_err(failed)
}

/// Stop, change the type, start: what EC2 requires to resize.
async fn resize(c: &Controller, inst: &Ec2Instance, instance_type: &str) -> Result<Ec2Instance, SyncError> {
    if inst.state != "stopped" {
        c.client.stop(&inst.id).await.map_err(failed)?;
    }
    let mut waited = Duration::ZERO;
    loop {
        let now = c.client.instance(&inst.id).await.map_err(failed)?;
        match now {
            Some(i) if i.state == "stopped" => break,
            Some(_) if waited < Duration::from_secs(120) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                waited += Duration::from_secs(1);
            }
            Some(i) => {
                return Err(SyncError::Deferred(format!(
                    "waiting for {} to stop before resizing (state {})",
                    i.id, i.state
                )));
            }
            None => {
                return Err(SyncError::Failed(format!(
                    "{} disappeared while resizing",
                    inst.id
                )));
            }
        }
    }
    c.client
        .set_instance_type(&inst.id, instance_type)
        .await
        .map_err(failed)?;
    c.client.start(&inst.id).await.map_err(failed)?;
    c.client
        .instance(&inst.id)
        .await
        .map_err(failed)?
        .ok_or_else(|| SyncError::Failed(format!("{} disappeared while resizing", inst.id)))
}

/// Runs, resizes, replaces and terminates EC2 instances (internal step).
pub struct Ec2Instances {
    backend: Arc<Ec2Backend>,
}

fn ec2_filter() -> Sql {
    let mut extra = and_where(EC2_INSTANCES, Value::Text(BACKEND.into()));
    extra.push(")");
    extra
}

#[async_trait::async_trait]
impl Step for Ec2Instances {
    fn name(&self) -> &'static str {
        "ec2_instances"
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
        Ok(default_fetch_pending(&ctx.store, "Instance", deletion, Some(ec2_filter())).await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self.backend.controller_of(&ctx.store, obj).await?;
        enact(&c, &ctx.store, obj, None).await
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let c = self.backend.controller_of(&ctx.store, obj).await?;
        let tagged = c
            .client
            .instances_tagged(TAG, Some(&obj.id().to_string()))
            .await
            .map_err(failed)?;
        for inst in tagged.iter().filter(|i| !i.is_gone()) {
            c.client.terminate(&inst.id).await.map_err(failed)?;
        }
        Ok(())
    }
}

// ---- drift -------------------------------------------------------------------------------------

/// Notices what changed in EC2 behind the system's back (external step): one DescribeInstances
/// per controller and interval, whatever the number of instances.
pub struct Ec2Drift {
    backend: Arc<Ec2Backend>,
    interval: Duration,
    /// What the last fetch saw, by model id (None: no live EC2 instance).
    seen: Mutex<HashMap<i64, Option<Ec2Instance>>>,
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
            let rows = super::enacted_instances(&ctx.store, c.deployment).await?;
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
