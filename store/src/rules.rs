//! Model-level rules the registry names (`Model::rule`): checks and derived values that need
//! more than one field or a database lookup, run inside the unit of work before the write.
//! Each rule says which XOS behaviour it carries over.

use super::{Actor, FieldErrors, Record, StoreError, Unit};
use crate::db::{Sql, Value};
use registry::{Model, Rule, SqlType};

/// The draft being written, with the bookkeeping rules need.
struct Draft<'a> {
    model: &'static Model,
    values: &'a mut [Option<Value>],
    changed: &'a mut Vec<usize>,
}

impl Draft<'_> {
    fn idx(&self, name: &str) -> Option<usize> {
        self.model.fields.iter().position(|f| f.name == name)
    }
    fn get(&self, name: &str) -> Option<&Value> {
        self.idx(name)
            .and_then(|i| self.values[i].as_ref())
            .filter(|v| !v.is_null())
    }
    fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(Value::as_int)
    }
    fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }
    fn touched(&self, name: &str) -> bool {
        self.idx(name).is_some_and(|i| self.changed.contains(&i))
    }
    /// Set a value the rule derived, marking it written.
    fn set(&mut self, name: &str, v: Value) {
        if let Some(i) = self.idx(name) {
            self.values[i] = Some(v);
            if !self.changed.contains(&i) {
                self.changed.push(i);
            }
        }
    }
}

/// One value from a query (first column of the first row).
async fn scalar(unit: &mut Unit, sql: &Sql, ty: SqlType) -> Result<Option<Value>, StoreError> {
    Ok(unit
        .fetch(sql, &[ty])
        .await?
        .into_iter()
        .next()
        .map(|mut r| r.remove(0))
        .filter(|v| !v.is_null()))
}

async fn lookup(
    unit: &mut Unit,
    table: &str,
    column: &str,
    id: i64,
    ty: SqlType,
) -> Result<Option<Value>, StoreError> {
    let mut sql = Sql::new(format!("SELECT {column} FROM {table} WHERE id = "));
    sql.bind(Value::Int(id));
    scalar(unit, &sql, ty).await
}

/// When a rule runs in the write path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before the fields are checked: rules that fill in values (defaults that depend on other
    /// fields or rows), so a derived required field is not reported missing.
    Derive,
    /// After every field is valid (foreign keys exist and are visible) and the write is
    /// permitted: rules that check the object as a whole, as DRF's `validate()` does.
    Check,
}

/// Whether `rule` fills in values (runs in [`Phase::Derive`]) rather than checking them.
fn derives(rule: &Rule) -> bool {
    matches!(
        rule,
        Rule::CreatorDefault | Rule::UserUsername | Rule::NodeSiteDefault | Rule::InstanceDefaults
    )
}

/// Run the rules `model` declares for `phase` on a draft (`before` is the stored object on
/// update). Derived values are set in the draft; rule violations are returned.
pub async fn before_write(
    unit: &mut Unit,
    model: &'static Model,
    before: Option<&Record>,
    draft: &mut [Option<Value>],
    changed: &mut Vec<usize>,
    phase: Phase,
) -> Result<FieldErrors, StoreError> {
    let mut d = Draft {
        model,
        values: draft,
        changed,
    };
    let creating = before.is_none();
    let mut errors = FieldErrors::new();
    let mut err = |field: &str, msg: String| errors.entry(field.to_string()).or_default().push(msg);
    for rule in &model.rules {
        if derives(rule) != (phase == Phase::Derive) {
            continue;
        }
        match rule {
            // A slice's name starts with its site's login_base and "_" (XOS checked it on create
            // and its client on every save; we check it whenever name or site changes).
            Rule::SliceNamePrefix if creating || d.touched("name") || d.touched("site") => {
                let (Some(name), Some(site)) = (d.text("name").map(str::to_string), d.int("site")) else {
                    continue;
                };
                let Some(Value::Text(login_base)) =
                    lookup(unit, "core_site", "login_base", site, SqlType::Text).await?
                else {
                    continue; // the foreign-key check reports the missing site
                };
                let prefix = format!("{login_base}_");
                if !name.starts_with(&prefix) {
                    err("name", format!("slice name must begin with {prefix}"));
                } else if name == prefix {
                    err("name", format!("slice name is too short (only {prefix})"));
                }
            }
            // The creator defaults to the caller on create.
            Rule::CreatorDefault if creating => {
                if d.get("creator").is_none()
                    && let Actor::User(p) = unit.actor()
                {
                    d.set("creator", Value::Int(p.id));
                }
            }
            // A user's username is their email (XOS set it on every save).
            Rule::UserUsername => {
                if let Some(email) = d.get("email").cloned() {
                    d.set("username", email);
                }
            }
            // A node's site defaults to its site deployment's site.
            Rule::NodeSiteDefault => {
                if d.get("site").is_none()
                    && let Some(sd) = d.int("site_deployment")
                    && let Some(site) =
                        lookup(unit, "core_sitedeployment", "site_id", sd, SqlType::Int).await?
                {
                    d.set("site", site);
                }
            }
            // An instance's name defaults to its slice's name, its deployment to its node's, its
            // flavor to the default flavor (else the first one).
            Rule::InstanceDefaults => {
                if d.text("name").is_none_or(str::is_empty)
                    && let Some(slice) = d.int("slice")
                    && let Some(name) = lookup(unit, "core_slice", "name", slice, SqlType::Text).await?
                {
                    d.set("name", name);
                }
                if d.get("deployment").is_none()
                    && let Some(node) = d.int("node")
                {
                    let mut sql = Sql::new(
                        "SELECT sd.deployment_id FROM core_node n JOIN core_sitedeployment sd \
                         ON sd.id = n.site_deployment_id WHERE n.id = ",
                    );
                    sql.bind(Value::Int(node));
                    if let Some(dep) = scalar(unit, &sql, SqlType::Int).await? {
                        d.set("deployment", dep);
                    }
                }
                if d.get("flavor").is_none() {
                    let sql = Sql::new(
                        "SELECT id FROM core_flavor WHERE NOT deleted ORDER BY \"default\" DESC, \"order\", name, id LIMIT 1",
                    );
                    if let Some(f) = scalar(unit, &sql, SqlType::Int).await? {
                        d.set("flavor", f);
                    }
                }
            }
            // The image must fit the isolation; only container_vm instances have (and need) a parent.
            Rule::InstanceIsolation => {
                let isolation = d.text("isolation").unwrap_or("vm").to_string();
                if let Some(image) = d.int("image")
                    && let Some(Value::Text(kind)) =
                        lookup(unit, "core_image", "kind", image, SqlType::Text).await?
                {
                    let want = if isolation == "vm" { "vm" } else { "container" };
                    if kind != want {
                        err(
                            "image",
                            format!("A {isolation} instance needs an image of kind {want}, not {kind}."),
                        );
                    }
                }
                match (isolation.as_str(), d.get("parent").is_some()) {
                    ("container_vm", false) => err(
                        "parent",
                        "Container-in-VM instances need a parent instance.".into(),
                    ),
                    ("vm" | "container", true) => err(
                        "parent",
                        "Only container_vm instances may have a parent instance.".into(),
                    ),
                    _ => {}
                }
            }
            // An instance's creator must belong to the slice: its creator, a holder of a privilege
            // on it (XOS's rule), or (our addition, so site PIs can act on their slices) an admin
            // or a PI/admin of the slice's site.
            Rule::InstanceCreatorPrivilege if creating || d.touched("creator") || d.touched("slice") => {
                let (Some(creator), Some(slice)) = (d.int("creator"), d.int("slice")) else {
                    continue;
                };
                let mut sql = Sql::new("SELECT s.id FROM core_slice s WHERE s.id = ");
                sql.bind(Value::Int(slice));
                sql.push(" AND (s.creator_id = ").bind(Value::Int(creator));
                sql.push(" OR EXISTS (SELECT 1 FROM core_sliceprivilege p WHERE NOT p.deleted AND p.slice_id = s.id AND p.user_id = ");
                sql.bind(Value::Int(creator));
                sql.push(") OR EXISTS (SELECT 1 FROM core_user u WHERE u.id = ")
                    .bind(Value::Int(creator));
                sql.push(" AND u.is_admin) OR EXISTS (SELECT 1 FROM core_siteprivilege sp JOIN core_siterole r ON r.id = sp.role_id \
                          WHERE NOT sp.deleted AND sp.site_id = s.site_id AND r.role IN ('admin', 'pi') AND sp.user_id = ");
                sql.bind(Value::Int(creator));
                sql.push("))");
                if scalar(unit, &sql, SqlType::Int).await?.is_none() {
                    err(
                        "creator",
                        "The creator must be the slice's creator, hold a privilege on it, or run its site."
                            .into(),
                    );
                }
            }
            // A slice runs at most `max_instances` instances (XOS declared the field; we enforce
            // it). On Postgres the slice row is locked first, so two creates at once cannot both
            // take the last place.
            Rule::InstanceSliceQuota
                if creating || before.is_some_and(|b| b.get_int("slice") != d.int("slice")) =>
            {
                let Some(slice) = d.int("slice") else { continue };
                let mut sql = Sql::new("SELECT max_instances FROM core_slice WHERE id = ");
                sql.bind(Value::Int(slice));
                if unit.dialect() == crate::db::Dialect::Postgres {
                    sql.push(" FOR UPDATE");
                }
                let Some(max) = scalar(unit, &sql, SqlType::Int).await?.and_then(|v| v.as_int()) else {
                    continue;
                };
                let mut count =
                    Sql::new("SELECT COUNT(*) FROM core_instance WHERE NOT deleted AND slice_id = ");
                count.bind(Value::Int(slice));
                let running = scalar(unit, &count, SqlType::Int)
                    .await?
                    .and_then(|v| v.as_int())
                    .unwrap_or(0);
                if running >= max {
                    err(
                        "slice",
                        format!("The slice already has its maximum of {max} instances (its max_instances)."),
                    );
                }
            }
            // Privileges are not granted to inactive users.
            Rule::PrivilegeActiveUser => {
                if let Some(user) = d.int("user")
                    && lookup(unit, "core_user", "is_active", user, SqlType::Bool)
                        .await?
                        .and_then(|v| v.as_bool())
                        == Some(false)
                {
                    err("user", "This user is inactive.".into());
                }
            }
            // A slice joins a network (or an instance gets a port on it) only if it owns it, is
            // permitted, or the network permits all slices.
            Rule::NetworkSlicePermitted => {
                let Some(network) = d.int("network") else { continue };
                let slice = match model.name.as_str() {
                    "Port" => match d.int("instance") {
                        Some(i) => lookup(unit, "core_instance", "slice_id", i, SqlType::Int)
                            .await?
                            .and_then(|v| v.as_int()),
                        None => continue,
                    },
                    _ => d.int("slice"),
                };
                let Some(slice) = slice else { continue };
                let mut sql = Sql::new("SELECT n.id FROM core_network n WHERE n.id = ");
                sql.bind(Value::Int(network));
                sql.push(" AND (n.permit_all_slices OR n.owner_id = ")
                    .bind(Value::Int(slice));
                sql.push(" OR EXISTS (SELECT 1 FROM core_networkpermittedslice p WHERE NOT p.deleted AND p.network_id = n.id AND p.slice_id = ");
                sql.bind(Value::Int(slice));
                sql.push("))");
                if lookup(unit, "core_network", "id", network, SqlType::Int)
                    .await?
                    .is_some()
                    && scalar(unit, &sql, SqlType::Int).await?.is_none()
                {
                    err(
                        "non_field_errors",
                        "The slice is not allowed to join this network.".into(),
                    );
                }
            }
            // At most one subscriber (XOS's XOSConflictingField).
            Rule::TenantOneSubscriber => {
                let set = ["subscriber_service", "subscriber_tenant", "subscriber_user"]
                    .iter()
                    .filter(|f| d.get(f).is_some())
                    .count();
                if set > 1 {
                    err(
                        "non_field_errors",
                        "Only one of subscriber_service, subscriber_tenant and subscriber_user may be set."
                            .into(),
                    );
                }
            }
            // A generic reference (Tag): a known model and an object of it that exists.
            Rule::GenericReference => {
                let reg = unit.store().registry();
                let Some(ct) = d.text("content_type") else {
                    continue;
                };
                match reg.model(ct) {
                    None => err("content_type", format!("\"{ct}\" is not a model.")),
                    Some(target) => {
                        if let Some(oid) = d.int("object_id") {
                            let mut sql = Sql::new(format!("SELECT id FROM {} WHERE id = ", target.table()));
                            sql.bind(Value::Int(oid));
                            if target.field_named("deleted").is_some() {
                                sql.push(" AND NOT deleted");
                            }
                            if scalar(unit, &sql, SqlType::Int).await?.is_none() {
                                err("object_id", format!("{} {oid} does not exist.", target.name));
                            }
                        }
                    }
                }
            }
            // A token has a key: they are made at /xoslib/tokens/, which shows the key once.
            Rule::ApiTokenKey if creating && d.text("key_hash").is_none_or(str::is_empty) => {
                err(
                    "key_hash",
                    "Create API tokens at /xoslib/tokens/, which returns the key.".into(),
                );
            }
            // A role's scope names a model.
            Rule::ContentTypeModel => {
                if let Some(ct) = d.text("content_type")
                    && unit.store().registry().model(ct).is_none()
                {
                    err("content_type", format!("\"{ct}\" is not a model."));
                }
            }
            // A text field holding settings: empty, or a JSON object.
            Rule::JsonObject(field) => {
                let field = field.as_str();
                if let Some(text) = d.text(field).map(str::trim).filter(|t| !t.is_empty()) {
                    match serde_json::from_str::<serde_json::Value>(text) {
                        Ok(serde_json::Value::Object(_)) => {}
                        Ok(_) => err(field, "Enter a JSON object ({…}).".into()),
                        Err(e) => err(field, format!("Enter valid JSON: {e}.")),
                    }
                }
            }
            // At most one owner (XOS's SiteMap.save).
            Rule::AtMostOneOf(fields) => {
                let set: Vec<&str> = fields
                    .iter()
                    .map(String::as_str)
                    .filter(|f| d.get(f).is_some())
                    .collect();
                if set.len() > 1 {
                    err(
                        "non_field_errors",
                        format!("You may only set one of {}.", fields.join(", ")),
                    );
                }
            }
            // The row a foreign key points at shares this row's `via` (a CDN prefix's default
            // origin is one of its own content provider's origins).
            Rule::SameAs { field, via } => {
                let (Some(other), Some(ours)) = (d.int(field), d.int(via)) else {
                    continue;
                };
                let reg = unit.store().registry();
                let Some(target) = model
                    .field_named(field)
                    .and_then(|f| f.fk_target())
                    .and_then(|t| reg.model(t))
                else {
                    continue;
                };
                let Some(column) = target.field_named(via).map(|f| f.column()) else {
                    continue;
                };
                let theirs = lookup(unit, &target.table(), &column, other, SqlType::Int)
                    .await?
                    .and_then(|v| v.as_int());
                if theirs.is_some_and(|t| t != ours) {
                    let via_name = model
                        .field_named(via)
                        .and_then(|f| f.fk_target())
                        .and_then(|t| reg.model(t))
                        .map_or(via.as_str(), |m| m.verbose_name.as_str());
                    err(
                        field,
                        format!("The {} belongs to another {via_name}.", target.verbose_name),
                    );
                }
            }
            // One live row in the system (XOS's SingletonModel).
            Rule::Singleton if creating => {
                let sql = Sql::new(format!("SELECT id FROM {} WHERE NOT deleted", model.table()));
                if scalar(unit, &sql, SqlType::Int).await?.is_some() {
                    err(
                        "non_field_errors",
                        format!("There is already a {}; the system has one.", model.verbose_name),
                    );
                }
            }
            Rule::IntRange { field, min, max } => {
                if let Some(v) = d.int(field)
                    && !(*min..=*max).contains(&v)
                {
                    err(field, format!("Ensure this value is between {min} and {max}."));
                }
            }
            Rule::Differ(fields) => {
                let values: Vec<(&str, i64)> = fields
                    .iter()
                    .filter_map(|f| d.int(f).map(|v| (f.as_str(), v)))
                    .collect();
                for (i, (f, v)) in values.iter().enumerate() {
                    if values[..i].iter().any(|(_, w)| w == v) {
                        err(f, format!("Must differ from {}.", fields.join(" and ")));
                    }
                }
            }
            // Rules whose condition (the guard above) does not hold.
            Rule::SliceNamePrefix
            | Rule::CreatorDefault
            | Rule::InstanceCreatorPrivilege
            | Rule::InstanceSliceQuota
            | Rule::ApiTokenKey
            | Rule::Singleton => {}
        }
    }
    Ok(errors)
}
