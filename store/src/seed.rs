//! XOS's fixtures (`initial_data.json`): the roles, flavors, dashboard views and network
//! templates every installation has, written through the store like everything else. The
//! server adds the rows its services seed; the store's and the TOSCA crate's tests load the
//! core's alone.

use crate::db::{Sql, Value};
use crate::{Actor, Store, StoreError};
use registry::SqlType;
use serde_json::{Value as Json, json};

/// One fixture row: its model, the field that identifies it, its values.
pub type SeedRow = (&'static str, &'static str, Json);

/// The core's fixture rows.
pub fn core_rows() -> Vec<SeedRow> {
    vec![
        ("SiteRole", "role", json!({"role": "admin"})),
        ("SiteRole", "role", json!({"role": "pi"})),
        ("SiteRole", "role", json!({"role": "tech"})),
        ("SiteRole", "role", json!({"role": "billing"})),
        ("SliceRole", "role", json!({"role": "admin"})),
        ("SliceRole", "role", json!({"role": "access"})),
        ("DeploymentRole", "role", json!({"role": "admin"})),
        (
            "Flavor",
            "name",
            json!({"name": "m1.small", "flavor": "m1.small", "description": "1 CPU, 2 GB", "order": 1, "default": true, "memory_mb": 2048, "vcpus": 1}),
        ),
        (
            "Flavor",
            "name",
            json!({"name": "m1.medium", "flavor": "m1.medium", "description": "2 CPUs, 4 GB", "order": 2, "memory_mb": 4096, "vcpus": 2}),
        ),
        (
            "Flavor",
            "name",
            json!({"name": "m1.large", "flavor": "m1.large", "description": "4 CPUs, 8 GB", "order": 3, "memory_mb": 8192, "vcpus": 4}),
        ),
        (
            "DashboardView",
            "name",
            json!({"name": "Customize", "url": "template:customize"}),
        ),
        (
            "DashboardView",
            "name",
            json!({"name": "Tenant", "url": "template:xosTenant"}),
        ),
        (
            "DashboardView",
            "name",
            json!({"name": "Developer", "url": "template:xosDeveloper"}),
        ),
        (
            "NetworkTemplate",
            "name",
            json!({"name": "Private", "visibility": "private", "translation": "none"}),
        ),
        (
            "NetworkTemplate",
            "name",
            json!({"name": "Public shared IPv4", "visibility": "private", "translation": "NAT", "shared_network_name": "nat-net"}),
        ),
        (
            "NetworkTemplate",
            "name",
            json!({"name": "Public dedicated IPv4", "visibility": "public", "translation": "none", "shared_network_name": "ext-net"}),
        ),
    ]
}

/// Create the rows that are missing (matched by their key field) in one unit of work, as the
/// system; rows that exist are left as they are. Returns how many it created.
pub async fn create_missing(
    store: &Store,
    rows: impl IntoIterator<Item = SeedRow>,
) -> Result<usize, StoreError> {
    let mut unit = store.begin(Actor::System).await?;
    let mut created = 0;
    for (model, key, row) in rows {
        let m = store.model(model);
        let table = m.table();
        let key_value = row[key].as_str().unwrap_or_default().to_string();
        let mut sql = Sql::new(format!("SELECT id FROM {table} WHERE NOT deleted AND {key} = "));
        sql.bind(Value::Text(key_value));
        if unit.fetch(&sql, &[SqlType::Int]).await?.is_empty() {
            let values = match row {
                Json::Object(values) => values,
                _ => serde_json::Map::new(),
            };
            unit.create(m, &values).await?;
            created += 1;
        }
    }
    unit.commit().await?;
    Ok(created)
}
