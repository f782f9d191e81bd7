//! The OpenStack backend: instances.

use super::*;

/// Servers, by XOS instance id.
pub struct OsInstances {
    pub(crate) backend: Arc<OsBackend>,
}

/// What a server should be.
pub(crate) struct ServerSpec {
    pub(crate) project: String,
    pub(crate) flavor: String,
    pub(crate) image: String,
    pub(crate) networks: Vec<String>,
    pub(crate) key: Option<(String, String)>,
    pub(crate) user_data: String,
}

pub(crate) async fn server_spec(
    c: &Controller,
    store: &Store,
    obj: &Record,
) -> Result<ServerSpec, SyncError> {
    let slice = obj.req(instance::SLICE)?;
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
        // XOS's cloud-config: the keys of the slice's members, creators and service.
        user_data: backend_kit::user_data_with_keys(
            obj.opt(instance::USER_DATA).unwrap_or_default(),
            &backend_kit::instance_keys(store, obj).await?,
        ),
    })
}

/// The model's view of a server: ids, name, address, and a status line.
pub(crate) fn reflect(s: &Server, what: &str) -> Enacted {
    let ip = s.addresses.first().map(|a| a.1.clone()).unwrap_or_default();
    let mut status = format!("{what}: {} as {}", s.status, s.id);
    if !ip.is_empty() {
        status.push_str(&format!(" at {ip}"));
    }
    let mut e = Enacted::with_status(status)
        .field("instance_uuid", Value::Text(s.id.clone()))
        .field("instance_name", opt_text(s.instance_name.clone()));
    e.fields.extend(observed(s).fields());
    e
}

/// The live servers carrying XOS instance id `id` in `project`.
pub(crate) async fn servers_of(cl: &OsClient, project: &str, id: i64) -> Result<Vec<Server>, SyncError> {
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
pub(crate) async fn enact_instance(
    c: &Controller,
    store: &Store,
    obj: &Record,
    note: Option<&str>,
) -> Result<Enacted, SyncError> {
    let spec = server_spec(c, store, obj).await?;
    let cl = &c.client;
    let mut live = servers_of(cl, &spec.project, obj.id()).await?;
    let recorded = obj.opt(instance::INSTANCE_ID).unwrap_or_default().to_string();
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
                "name": obj.opt(instance::NAME).unwrap_or_default(),
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
            let made: Ref = cl
                .post_as(
                    Some(&spec.project),
                    Service::Compute,
                    "/servers",
                    json!({"server": server}),
                    "server",
                )
                .await
                .map_err(|e| {
                    // A flavor deleted or made again in Nova: look it up anew next time.
                    cl.forget_ids("flavor");
                    failed(e)
                })?;
            let id = made.id;
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
pub(crate) async fn wait_active(cl: &OsClient, project: &str, mut s: Server) -> Result<Server, SyncError> {
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
            .controller_of_deployment(&ctx.store, obj.req(instance::DEPLOYMENT)?)
            .await?;
        enact_instance(&c, &ctx.store, obj, None).await
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let c = self
            .backend
            .controller_of_deployment(&ctx.store, obj.req(instance::DEPLOYMENT)?)
            .await?;
        let Some(project) = slice_project(&ctx.store, obj.req(instance::SLICE)?, c.id).await? else {
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
