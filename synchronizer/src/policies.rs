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

/// The core's policies, as a list for [`crate::engine::EngineOptions::policies`].
pub fn core() -> Vec<std::sync::Arc<dyn ModelPolicy>> {
    vec![std::sync::Arc::new(ControllerLinks)]
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
