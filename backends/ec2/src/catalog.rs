//! The catalog: zones, images and flavors from EC2 (external step).

use super::*;
use registry::fields::common;

/// Sites, nodes, images and flavors from EC2 (external step).
pub struct Ec2Catalog {
    pub(super) backend: Arc<Ec2Backend>,
    pub(super) interval: Duration,
}

/// The id of the live row of `table` where `column = value`, if any.
pub(super) async fn find_id(
    unit: &mut store::Unit,
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
pub(super) async fn find_link(
    unit: &mut store::Unit,
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

pub(super) fn obj(v: Json) -> Map<String, Json> {
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
        let due_before = synchronizer::engine::now_ms() - self.interval.as_millis() as i64;
        // One query a pass: saved since its last sync (the version counters), or due.
        Ok(Ec2Backend::controllers(&ctx.store)
            .await?
            .into_iter()
            .filter(|c| {
                c.opt(common::ROW_VERSION) > c.opt(common::ENACTED_VERSION)
                    || c.opt(common::BACKEND_REGISTER)
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
