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
//! Policies are registered by whoever owns them ([`crate::engine::EngineOptions::policies`]):
//! the core's are [`ControllerLinks`]; a backend brings its own (OpenStack's networks and ports).

use registry::SqlType;
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
                 WHERE NOT l.deleted AND NOT p.deleted AND substr(l.backend_status, 1, 1) <> '0' \
                 AND substr(l.backend_status, 1, 1) <> substr(p.backend_status, 1, 1) ORDER BY p.id",
                lm.table(),
                pm.table()
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
                let worst = unit
                    .fetch(&links, &[SqlType::Text])
                    .await?
                    .iter()
                    .map(|l| registry::BackendStatus::parse(l[0].as_str().unwrap_or_default()))
                    .filter(|st| st.code() != 0)
                    .fold(None::<registry::BackendStatus>, |w, st| match w {
                        Some(w) if w.code() >= st.code() => Some(w),
                        _ => Some(st),
                    });
                let Some(worst) = worst.filter(|w| w.code() != his.code()) else {
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
        Ok(count)
    }
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
            "SELECT id, row_version, deleted FROM {} WHERE row_version > policed_version ORDER BY id LIMIT {BATCH}",
            model.table()
        ));
        let rows = store
            .db()
            .fetch(&sql, &[SqlType::Int, SqlType::Int, SqlType::Bool])
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
