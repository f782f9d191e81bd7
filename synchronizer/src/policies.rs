//! Model policies: code run for new and changed objects that creates the objects they imply,
//! tracked by `policed` (`policed_version`, so a change during a policy runs it again).
//!
//! XOS's own: a Site, Slice or User gets a ControllerSite, ControllerSlice or ControllerUser row
//! for each controller serving its site's deployments (a SiteDeployment names its controller, or
//! else every controller of the deployment serves), and loses the rows of controllers that no
//! longer do. A new or changed Controller or SiteDeployment re-polices the sites, slices and
//! users it concerns. Removing the parent removes its rows (cascade). Policies run in the
//! synchronizer (so not in the frontend-only configuration), as the system.
//!
//! XOS's automatic dirtying and protection, for every policed change: the synchronized rows that
//! point at the changed object are enacted again (a slice's change reaches its ControllerSlice
//! and instances, a user's its ControllerUser and the instances it created), a slice member's
//! privilege re-enacts the slice's instances (their keys), and a write-protected object protects
//! what it points at, recursively (XOS's `walk_deps(update_wp)`; unprotecting is not propagated,
//! since another protected object may hold the same parent).
//!
//! Policies are registered by whoever owns them ([`crate::engine::EngineOptions::policies`]):
//! the core's are [`ControllerLinks`]; a backend brings its own (OpenStack's networks and ports).

use registry::{Model, SqlType};
use serde_json::{Map, Value as Json};
use store::db::{Sql, Value};
use store::{Actor, StatusUpdate, Store, StoreError, Unit};

/// Models with a policy, and the link model each maintains (`None`: re-polices others).
const POLICED: &[(&str, Option<(&str, &str)>)] = &[
    ("Site", Some(("ControllerSite", "site"))),
    ("Slice", Some(("ControllerSlice", "slice"))),
    ("User", Some(("ControllerUser", "user"))),
    ("Controller", None),
    ("SiteDeployment", None),
    // XOS's list beyond the link makers: changes that re-dirty dependents and propagate
    // `write_protect` ([`dirty_dependents`], [`propagate_protect`]).
    ("Image", None),
    ("Network", None),
    ("Instance", None),
    ("SitePrivilege", None),
    ("SlicePrivilege", None),
];

/// Rows to police at most per model and pass.
const BATCH: i64 = 500;

/// A model policy: creates (and removes) the objects that new and changed objects imply.
#[async_trait::async_trait]
pub trait ModelPolicy: Send + Sync {
    /// Police what changed since the last run; the number of objects policed.
    async fn run(&self, store: &Store) -> Result<usize, StoreError>;
}

/// XOS's own policies: the ControllerSite, ControllerSlice and ControllerUser link rows.
pub struct ControllerLinks;

#[async_trait::async_trait]
impl ModelPolicy for ControllerLinks {
    async fn run(&self, store: &Store) -> Result<usize, StoreError> {
        run(store).await
    }
}

/// XOS's `model_policy_ControllerSite`, `…ControllerSlice` and `…ControllerUser`: the status of
/// a controller link row tells its Site, Slice or User. A link row whose status is not
/// `0 - …` and whose code differs from its parent's gives the parent its status (so a slice
/// whose project was made shows `1 - OK, …`, and one whose project failed shows the error). It
/// runs over every live link row each pass (one query per link model, writing only what
/// differs); XOS also copied `backend_register`, which here is the engine's own backoff
/// bookkeeping of each row and is left alone.
pub struct LinkStatus;

/// (link model, its foreign key to the parent, the parent model).
const STATUS_UP: &[(&str, &str, &str)] = &[
    ("ControllerSite", "site", "Site"),
    ("ControllerSlice", "slice", "Slice"),
    ("ControllerUser", "user", "User"),
];

#[async_trait::async_trait]
impl ModelPolicy for LinkStatus {
    async fn run(&self, store: &Store) -> Result<usize, StoreError> {
        let mut count = 0;
        for (link, fk, parent) in STATUS_UP {
            let (lm, pm) = (store.model(link), store.model(parent));
            let Some(column) = lm.field_named(fk).map(|f| f.column()) else {
                continue;
            };
            // Parents with a link row whose code is not 0 and not the parent's (one query); for
            // each, the worst of its link rows (an error before OK, the first of equals) is what
            // it shows, so two controllers that disagree do not flip the parent on every pass.
            let sql = Sql::new(format!(
                "SELECT DISTINCT p.id, p.backend_status FROM {} l JOIN {} p ON p.id = l.{column} \
                 WHERE NOT l.deleted AND NOT p.deleted AND ((substr(l.backend_status, 1, 1) <> '0' \
                 AND substr(l.backend_status, 1, 1) <> substr(p.backend_status, 1, 1)) \
                 OR (substr(l.backend_status, 1, 1) = '0' AND substr(p.backend_status, 1, 1) = '0' \
                 AND l.backend_status <> p.backend_status AND l.backend_status <> '{}')){} ORDER BY p.id",
                lm.table(),
                pm.table(),
                registry::BackendStatus::PROVISIONING,
                // A slice whose instance failed (and whose links did not) tells that instead.
                if *parent == "Slice" {
                    format!(" AND NOT ({FAILING_INSTANCE} AND NOT {FAILED_LINK})")
                } else {
                    String::new()
                }
            ));
            let parents = store.db().fetch(&sql, &[SqlType::Int, SqlType::Text]).await?;
            if parents.is_empty() {
                continue;
            }
            let mut unit = store.begin(Actor::System).await?;
            for r in &parents {
                let id = r[0].as_int().unwrap_or(0);
                let his = registry::BackendStatus::parse(r[1].as_str().unwrap_or_default());
                let mut links = Sql::new(format!(
                    "SELECT backend_status FROM {} WHERE NOT deleted AND {column} = ",
                    lm.table()
                ));
                links.bind(Value::Int(id));
                links.push(" ORDER BY id");
                let statuses: Vec<registry::BackendStatus> = unit
                    .fetch(&links, &[SqlType::Text])
                    .await?
                    .iter()
                    .map(|l| registry::BackendStatus::parse(l[0].as_str().unwrap_or_default()))
                    .collect();
                let worst = statuses.iter().filter(|st| st.code() != 0).fold(
                    None::<&registry::BackendStatus>,
                    |w, st| match w {
                        Some(w) if w.code() >= st.code() => Some(w),
                        _ => Some(st),
                    },
                );
                // No link enacted yet: a link that says why it waits tells the parent too
                // (the first such, so two links do not flip it).
                let worst = match worst {
                    Some(w) => Some(w).filter(|w| w.code() != his.code()),
                    None => statuses
                        .iter()
                        .find(|st| st.message() != registry::BackendStatus::Unset.message())
                        .filter(|st| his.code() == 0 && st.to_string() != his.to_string()),
                };
                let Some(worst) = worst.cloned() else {
                    continue;
                };
                unit.set_status(
                    pm,
                    id,
                    &StatusUpdate {
                        backend_status: Some(worst),
                        ..Default::default()
                    },
                )
                .await?;
                count += 1;
            }
            unit.commit().await?;
        }
        count += slice_instances(store).await?;
        Ok(count)
    }
}

/// A slice `p` has an instance that failed on its own (not one held back by a failed parent).
const FAILING_INSTANCE: &str = "EXISTS (SELECT 1 FROM core_instance i WHERE i.slice_id = p.id AND NOT i.deleted \
     AND substr(i.backend_status, 1, 1) = '2' AND substr(i.backend_status, 1, 21) <> '2 - Failed dependency')";
/// A slice `p` has a failed ControllerSlice.
const FAILED_LINK: &str = "EXISTS (SELECT 1 FROM core_controllerslice fl WHERE fl.slice_id = p.id AND NOT fl.deleted \
     AND substr(fl.backend_status, 1, 1) = '2')";

/// A slice tells the first of its instances that failed, `2 - instance <name>: <why>` (unless its
/// own link rows failed: that is the cause to show); once none fails, the link rows tell it again
/// (the rule above). XOS showed a slice "OK" however its instances fared; a tenant looking at the
/// slice wants to know that one of them does not run.
async fn slice_instances(store: &Store) -> Result<usize, StoreError> {
    let sql = Sql::new(format!(
        "SELECT p.id, p.backend_status, (SELECT i.name || '\n' || i.backend_status FROM core_instance i \
         WHERE i.slice_id = p.id AND NOT i.deleted AND substr(i.backend_status, 1, 1) = '2' \
         AND substr(i.backend_status, 1, 21) <> '2 - Failed dependency' ORDER BY i.id LIMIT 1) \
         FROM core_slice p WHERE NOT p.deleted AND {FAILING_INSTANCE} AND NOT {FAILED_LINK} ORDER BY p.id"
    ));
    let rows = store
        .db()
        .fetch(&sql, &[SqlType::Int, SqlType::Text, SqlType::Text])
        .await?;
    let mut count = 0;
    let mut unit: Option<Unit> = None;
    for r in rows {
        let Some((name, status)) = r[2].as_str().and_then(|t| t.split_once('\n')) else {
            continue;
        };
        let why = registry::BackendStatus::parse(status);
        let want = registry::BackendStatus::Failed(format!("instance {name}: {}", why.message()));
        if r[1].as_str() == Some(want.to_string().as_str()) {
            continue;
        }
        if unit.is_none() {
            unit = Some(store.begin(Actor::System).await?);
        }
        let u = unit.as_mut().expect("begun");
        u.set_status(
            store.model("Slice"),
            r[0].as_int().unwrap_or(0),
            &StatusUpdate {
                backend_status: Some(want),
                ..Default::default()
            },
        )
        .await?;
        count += 1;
    }
    if let Some(u) = unit {
        u.commit().await?;
    }
    Ok(count)
}

/// The core's policies, as a list for [`crate::engine::EngineOptions::policies`].
pub fn core() -> Vec<std::sync::Arc<dyn ModelPolicy>> {
    vec![
        std::sync::Arc::new(ControllerLinks),
        std::sync::Arc::new(LinkStatus),
    ]
}

/// Police every object changed since it was last policed. Returns how many were.
async fn run(store: &Store) -> Result<usize, StoreError> {
    let mut count = 0;
    for (model_name, link) in POLICED {
        let model = store.model(model_name);
        let sql = Sql::new(format!(
            "SELECT id, row_version, deleted, policed_version FROM {} WHERE row_version > policed_version ORDER BY id LIMIT {BATCH}",
            model.table()
        ));
        let rows = store
            .db()
            .fetch(&sql, &[SqlType::Int, SqlType::Int, SqlType::Bool, SqlType::Int])
            .await?;
        if rows.is_empty() {
            continue;
        }
        let mut unit = store.begin(Actor::System).await?;
        for r in &rows {
            let id = r[0].as_int().unwrap_or(0);
            // Read again inside the unit (locked on Postgres): a user may have deleted or changed
            // the row since the list above, and a vanished row is simply not policed.
            let mut again = Sql::new(format!(
                "SELECT row_version, deleted FROM {} WHERE id = ",
                model.table()
            ));
            again.bind(store::db::Value::Int(id));
            if unit.store().db().dialect() == store::db::Dialect::Postgres {
                again.push(" FOR UPDATE");
            }
            let Some(now) = unit
                .fetch(&again, &[SqlType::Int, SqlType::Bool])
                .await?
                .into_iter()
                .next()
            else {
                continue;
            };
            let (version, deleted) = (now[0].as_int().unwrap_or(0), now[1].as_bool() == Some(true));

            if !deleted {
                match (model_name, link) {
                    (_, Some((link_model, owner_field))) => {
                        ensure_links(&mut unit, model_name, id, link_model, owner_field).await?
                    }
                    (&"Controller", None) => repolice_deployment_of(&mut unit, "core_controller", id).await?,
                    (&"SiteDeployment", None) => {
                        repolice_deployment_of(&mut unit, "core_sitedeployment", id).await?
                    }
                    _ => {}
                }
                // Only for a change since an earlier policing: a new row's dependents are new
                // too, and a re-policing (a controller or site deployment changed) is no change
                // of the row itself.
                if r[3].as_int().unwrap_or(0) > 0 {
                    dirty_dependents(&mut unit, model, id).await?;
                }
                if model_name == &"SlicePrivilege" {
                    // A member's keys go into the slice's instances.
                    let mut f = Sql::new("slice_id IN (SELECT slice_id FROM core_sliceprivilege WHERE id = ");
                    f.bind(Value::Int(id));
                    f.push(")");
                    let instances = unit.store().model("Instance");
                    unit.resync(instances, f).await?;
                }
                propagate_protect(&mut unit, model, id).await?;
            }
            unit.set_status(
                model,
                id,
                &StatusUpdate {
                    policed_version: Some(version),
                    ..Default::default()
                },
            )
            .await?;
            count += 1;
        }
        unit.commit().await?;
    }
    Ok(count)
}

/// Re-dirty the enacted, synchronized rows that point at row `id` of `model` (XOS's
/// `walk_inv_deps(update_dep)`): each observed model's foreign keys to it.
async fn dirty_dependents(unit: &mut Unit, model: &'static Model, id: i64) -> Result<(), StoreError> {
    let store = unit.store().clone();
    for child in &store.registry().models {
        if !store.is_loaded(child)
            || !store.is_observed(&child.name)
            || child.field_named("enacted_version").is_none()
        {
            continue;
        }
        let child = store.model(&child.name);
        let columns: Vec<String> = child
            .foreign_keys()
            .filter(|f| f.fk_target() == Some(model.name.as_str()))
            .map(|f| f.column())
            .collect();
        for column in columns {
            let mut filter = Sql::new(format!("{column} = "));
            filter.bind(Value::Int(id));
            unit.resync(child, filter).await?;
        }
    }
    Ok(())
}

/// A write-protected row protects what it points at, and those what they point at (XOS's
/// `walk_deps(update_wp)`). Rows already protected stop the walk.
async fn propagate_protect(unit: &mut Unit, model: &'static Model, id: i64) -> Result<(), StoreError> {
    let store = unit.store().clone();
    let mut todo = vec![(model, id)];
    let mut first = true;
    while let Some((m, id)) = todo.pop() {
        let Some(wp) = m.field_named("write_protect") else {
            continue;
        };
        let fks: Vec<(&'static Model, String)> = m
            .foreign_keys()
            .filter_map(|f| Some((store.registry().model(f.fk_target()?)?, f.column())))
            .filter(|(t, _)| t.field_named("write_protect").is_some() && store.is_loaded(t))
            .collect();
        if fks.is_empty() {
            continue;
        }
        let mut sql = Sql::new(format!("SELECT {}", wp.column()));
        for (_, c) in &fks {
            sql.push(&format!(", {c}"));
        }
        sql.push(&format!(" FROM {} WHERE id = ", m.table()));
        sql.bind(Value::Int(id));
        let mut types = vec![SqlType::Bool];
        types.extend(fks.iter().map(|_| SqlType::Int));
        let Some(row) = unit.fetch(&sql, &types).await?.into_iter().next() else {
            continue;
        };
        // The changed row itself must be protected; the rows reached were just protected.
        if first && row[0].as_bool() != Some(true) {
            break;
        }
        first = false;
        for (k, (target, _)) in fks.iter().enumerate() {
            let Some(tid) = row[k + 1].as_int() else {
                continue;
            };
            let mut filter = Sql::new("id = ");
            filter.bind(Value::Int(tid));
            for pid in unit.protect(target, filter).await? {
                todo.push((target, pid));
            }
        }
    }
    Ok(())
}

/// The controllers serving the site of object `id` of `model` (Site, Slice or User).
async fn controllers_for(unit: &mut Unit, model: &str, id: i64) -> Result<Vec<i64>, StoreError> {
    let site = match model {
        "Site" => "$1".to_string(),
        "Slice" => "(SELECT site_id FROM core_slice WHERE id = $1)".to_string(),
        _ => "(SELECT site_id FROM core_user WHERE id = $1)".to_string(),
    };
    let mut sql = Sql::new(format!(
        "SELECT DISTINCT c.id FROM core_sitedeployment sd JOIN core_controller c ON c.deployment_id = sd.deployment_id \
         WHERE NOT sd.deleted AND NOT c.deleted AND sd.site_id = {site} \
         AND (sd.controller_id IS NULL OR sd.controller_id = c.id) ORDER BY c.id"
    ));
    sql.args.push(Value::Int(id));
    Ok(unit
        .fetch(&sql, &[SqlType::Int])
        .await?
        .iter()
        .filter_map(|r| r[0].as_int())
        .collect())
}

/// Make the link rows of object `id` match the controllers serving it.
async fn ensure_links(
    unit: &mut Unit,
    model: &str,
    id: i64,
    link_model: &str,
    owner_field: &str,
) -> Result<(), StoreError> {
    let want = controllers_for(unit, model, id).await?;
    let link = unit.store().model(link_model);
    if want.is_empty() {
        // Nothing will ever enact it until a controller serves its site: say so, instead of
        // "Provisioning in progress" forever.
        let parent = unit.store().model(model);
        let what = if model == "Site" {
            "this site's"
        } else {
            "its site's"
        };
        unit.set_status(
            parent,
            id,
            &StatusUpdate {
                backend_status: Some(registry::BackendStatus::Pending(format!(
                    "waiting for a controller: none serves {what} deployments (add the site to a \
                     deployment that has a controller)"
                ))),
                ..Default::default()
            },
        )
        .await?;
    }
    let mut sql = Sql::new(format!(
        "SELECT id, controller_id FROM {} WHERE NOT deleted AND {owner_field}_id = ",
        link.table()
    ));
    sql.bind(Value::Int(id));
    let have = unit.fetch(&sql, &[SqlType::Int, SqlType::Int]).await?;
    for &c in &want {
        if !have.iter().any(|r| r[1].as_int() == Some(c)) {
            let mut input = Map::new();
            input.insert(owner_field.to_string(), Json::from(id));
            input.insert("controller".into(), Json::from(c));
            unit.create(link, &input).await?;
        }
    }
    for r in &have {
        if !r[1].as_int().is_some_and(|c| want.contains(&c)) {
            unit.delete(link, r[0].as_int().unwrap_or(0)).await?;
        }
    }
    Ok(())
}

/// A controller or site deployment changed: police again the sites of its deployment, their
/// slices and users (their `policed_version` goes back to zero).
async fn repolice_deployment_of(unit: &mut Unit, table: &str, id: i64) -> Result<(), StoreError> {
    let sites = match table {
        "core_controller" => {
            "SELECT sd.site_id FROM core_sitedeployment sd JOIN core_controller c ON c.deployment_id = sd.deployment_id WHERE c.id = $1"
        }
        _ => "SELECT site_id FROM core_sitedeployment WHERE id = $1",
    };
    for (model, col) in [("Site", "id"), ("Slice", "site_id"), ("User", "site_id")] {
        let mut filter = Sql::new(format!("{col} IN ({sites})"));
        filter.args.push(Value::Int(id));
        let model = unit.store().model(model);
        unit.repolice(model, filter).await?;
    }
    Ok(())
}
