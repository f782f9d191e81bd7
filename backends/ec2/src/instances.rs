//! Instances: run, resize, replace and terminate (internal step, driven by changes).

use super::*;
use registry::fields::{common, instance};

/// What an instance should be in EC2.
pub(super) struct Wanted {
    pub(super) ami: String,
    pub(super) instance_type: String,
    pub(super) zone: Option<String>,
    /// (key pair name, public key) of the instance's creator.
    pub(super) key: Option<(String, String)>,
    /// Cloud-config with the keys of the slice's members, creators and service (XOS's user
    /// data), after the instance's own.
    pub(super) user_data: String,
}

pub(super) async fn wanted(store: &Store, obj: &Record) -> Result<Wanted, SyncError> {
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
        (Some(user), Some(public_key)) => Some((
            backend_kit::key_pair_name(user, public_key),
            public_key.to_string(),
        )),
        _ => None,
    };
    let keys = backend_kit::instance_keys(store, obj).await?;
    Ok(Wanted {
        ami,
        instance_type,
        zone: r[3].as_str().map(str::to_string),
        key,
        user_data: backend_kit::user_data_with_keys(obj.opt(instance::USER_DATA).unwrap_or_default(), &keys),
    })
}

/// The model's view of an EC2 instance: its id, name and address, and a status line.
pub(super) fn reflect(inst: &Ec2Instance, what: &str) -> Enacted {
    let seen = super::drift::observed(inst);
    let mut status = format!("{what}: {} as {}", inst.state, inst.id);
    if let Some(ip) = &seen.ip {
        status.push_str(&format!(" at {ip}"));
    }
    if let Some(public) = &inst.public_ip {
        status.push_str(&format!(" (public {public})"));
    }
    let mut e = Enacted::with_status(status).field("instance_name", Value::Text(inst.id.clone()));
    e.fields.extend(seen.fields());
    e
}

/// Make EC2 match the instance: adopt, run, resize or replace. `note` prefixes the status.
pub(super) async fn enact(
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
    let recorded = obj.opt(instance::INSTANCE_ID).unwrap_or_default().to_string();
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

pub(super) async fn run(c: &Controller, obj: &Record, w: &Wanted) -> Result<Ec2Instance, SyncError> {
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
        obj.req(common::ROW_VERSION)?,
        chrono::Utc::now().timestamp()
    );
    let tags = [
        (TAG, obj.id().to_string()),
        ("Name", obj.opt(instance::NAME).unwrap_or_default().to_string()),
    ];
    c.client
        .run(&RunRequest {
            image_id: &w.ami,
            instance_type: &w.instance_type,
            zone: w.zone.as_deref(),
            key_name: w.key.as_ref().map(|(n, _)| n.as_str()),
            user_data: &w.user_data,
            client_token: &token,
            tags: &tags,
        })
        .await
        .map_err(failed)
}

/// Stop, change the type, start: what EC2 requires to resize.
pub(super) async fn resize(
    c: &Controller,
    inst: &Ec2Instance,
    instance_type: &str,
) -> Result<Ec2Instance, SyncError> {
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
    pub(super) backend: Arc<Ec2Backend>,
}

pub(super) fn ec2_filter() -> Sql {
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
