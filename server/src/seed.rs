//! The first data of a fresh database: a site and an admin (when no user exists), and for the
//! devel configuration a few sample slices. Written through the store like everything else.

use crate::config::Bootstrap;
use crate::db::{Sql, Value};
use crate::store::{Actor, Store, StoreError};
use app::registry::SqlType;
use serde_json::{Map, Value as Json, json};

fn obj(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

async fn count(store: &Store, table: &str) -> Result<i64, StoreError> {
    let rows = store
        .db()
        .fetch(
            &Sql::new(format!("SELECT COUNT(*) FROM {table}")),
            &[SqlType::Int],
        )
        .await?;
    Ok(rows.first().and_then(|r| r[0].as_int()).unwrap_or(0))
}

/// XOS's fixtures (`initial_data.json`): roles, flavors and network templates every
/// installation has (the store's [`store::seed::core_rows`]), then the rows the services seed
/// (their dashboard views). Creates what is missing (matched by key), changes nothing that exists.
pub async fn initial_data(store: &Store) -> Result<(), StoreError> {
    let seeded: Vec<xos_service::SeedRow> =
        crate::services::catalog().iter().flat_map(|s| s.seed()).collect();
    let rows = store::seed::core_rows()
        .into_iter()
        .chain(seeded.into_iter().map(|r| (r.model, r.key, r.values)));
    let created = store::seed::create_missing(store, rows).await?;
    if created > 0 {
        tracing::info!(
            created,
            "loaded the initial data (roles, flavors, network templates)"
        );
    }
    Ok(())
}

/// Create the first site and admin user if the database has no user yet (after the initial
/// data). Returns whether it created them.
pub async fn bootstrap(store: &Store, b: &Bootstrap) -> Result<bool, StoreError> {
    initial_data(store).await?;
    if !b.enabled || count(store, "core_user").await? > 0 {
        return Ok(false);
    }
    let mut unit = store.begin(Actor::System).await?;
    let site = match store_find_site(&mut unit, &b.site_login_base).await? {
        Some(id) => id,
        None => {
            let site = json!({
                "name": b.site_name,
                "login_base": b.site_login_base,
                "abbreviated_name": b.site_login_base,
                "site_url": "http://www.opencloud.us/",
            });
            unit.create(store.model("Site"), &obj(site)).await?.id()
        }
    };
    // No password given: a random one, shown once on the console (never logged).
    let generated = b.admin_password.is_empty().then(|| {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(20)
            .map(char::from)
            .collect::<String>()
    });
    let password = generated.clone().unwrap_or_else(|| b.admin_password.clone());
    let admin = json!({
        "email": b.admin_email,
        "password": password,
        "firstname": "XOS",
        "lastname": "admin",
        "site": site,
        "is_admin": true,
    });
    unit.create(store.model("User"), &obj(admin)).await?;
    unit.commit().await?;
    tracing::info!(email = %b.admin_email, "created the first site and admin user");
    if let Some(pw) = generated {
        println!(
            "Created the admin {} with the password {pw}\n(shown this once: write it down, or change it in the admin pages)",
            b.admin_email
        );
    }
    Ok(true)
}

async fn store_find_site(unit: &mut crate::store::Unit, login_base: &str) -> Result<Option<i64>, StoreError> {
    let mut sql = Sql::new("SELECT id FROM core_site WHERE NOT deleted AND login_base = ");
    sql.bind(Value::Text(login_base.to_string()));
    Ok(unit
        .fetch(&sql, &[SqlType::Int])
        .await?
        .first()
        .and_then(|r| r[0].as_int()))
}

/// Sample slices for the devel configuration (only into a database without slices).
pub async fn sample_data(store: &Store, b: &Bootstrap) -> Result<(), StoreError> {
    if !b.sample_data || count(store, "core_slice").await? > 0 {
        return Ok(());
    }
    let mut unit = store.begin(Actor::System).await?;
    let Some(site) = store_find_site(&mut unit, &b.site_login_base).await? else {
        return Ok(());
    };
    let mut sql = Sql::new("SELECT id FROM core_user WHERE NOT deleted AND email = ");
    sql.bind(Value::Text(b.admin_email.clone()));
    let admin = unit
        .fetch(&sql, &[SqlType::Int])
        .await?
        .first()
        .and_then(|r| r[0].as_int());
    for (suffix, description) in [
        ("demo", "A demonstration slice for trying out XOS"),
        ("helloworld", "Runs the HelloWorld service"),
        ("public", "Shared services for every user"),
    ] {
        let slice = json!({
            "name": format!("{}_{suffix}", b.site_login_base),
            "description": description,
            "site": site,
            "creator": admin,
        });
        unit.create(store.model("Slice"), &obj(slice)).await?;
    }
    unit.commit().await?;
    tracing::info!("loaded the sample slices");
    Ok(())
}

/// Apply the configuration's TOSCA recipes, as the bootstrap admin when there is one (as XOS
/// ran its recipes: the admin becomes the creator of the slices and instances), else as the
/// system. Idempotent: what exists and matches is left alone, so this runs at every start.
pub async fn apply_recipes(
    store: &Store,
    recipes: &[std::path::PathBuf],
    admin_email: &str,
) -> Result<(), crate::tosca::ToscaError> {
    if recipes.is_empty() {
        return Ok(());
    }
    let actor = crate::tosca::actor_for(store, admin_email)
        .await
        .unwrap_or(Actor::System);
    let sources = crate::tosca::read_sources(recipes)?;
    let recipe = crate::tosca::parse(app::registry::registry(), &sources)
        .map_err(crate::tosca::ToscaError::Problems)?;
    let entries = crate::tosca::run(store, actor, &recipe, crate::tosca::Mode::Apply, false).await?;
    let count = |a: &str| entries.iter().filter(|e| e.action.as_str() == a).count();
    tracing::info!(
        recipes = recipes.len(),
        created = count("create"),
        updated = count("update"),
        unchanged = count("unchanged"),
        "applied the configuration's TOSCA recipes"
    );
    Ok(())
}
