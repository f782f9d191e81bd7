//! The first data of a fresh database: a site and an admin (when no user exists), and for the
//! devel configuration a few sample slices. Written through the store like everything else.

use crate::db::{Sql, Value};
use crate::state::Bootstrap;
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

/// Create the first site and admin user if the database has no user yet. Returns whether it did.
pub async fn bootstrap(store: &Store, b: &Bootstrap) -> Result<bool, StoreError> {
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
    let admin = json!({
        "email": b.admin_email,
        "password": b.admin_password,
        "firstname": "XOS",
        "lastname": "admin",
        "site": site,
        "is_admin": true,
    });
    unit.create(store.model("User"), &obj(admin)).await?;
    unit.commit().await?;
    tracing::info!(email = %b.admin_email, "created the first site and admin user");
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
