//! The OpenStack backend: model policies.

use super::*;

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
