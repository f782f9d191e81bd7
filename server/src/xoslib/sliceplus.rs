//! `/xoslib/slicesplus/`: XOS's SlicePlus, a slice plus figures the Developer dashboard shows.
//!
//! Read: the slice's fields (ids, not hyperlinks), `networks`, and `sliceInfo` = `{sitesUsed,
//! sitesReady, deploymentsUsed, instanceCount, siteCount, users, roles, sshCommands,
//! networkPorts}` where `roles` are the caller's roles on the slice; also `site_allocation`,
//! `site_ready`, `users`, `user_names` (JSON-encoded strings, as XOS's serializer sent them),
//! `network_ports`, `current_user_can_see`, `backendIcon`, `backendHtml`.
//!
//! Write (POST, PUT, PATCH), in one unit of work with the slice's own fields:
//! - `site_allocation` `{"site name": count}`: adds instances on the least used nodes of each site
//!   or deletes the newest ones; a changed default image or flavor replaces them all.
//! - `users` `[ids]`: adds an `access` privilege for each new member and removes `access`
//!   privileges of members no longer listed (admins are never removed this way).
//! - `user_roles` `{"user id": "role"}` (read as well: each member's role, `admin` when they
//!   hold it): each listed user holds exactly that slice role, added to the slice if they were
//!   not a member. The write path's privilege rules apply (only slice managers grant roles, and
//!   nobody grants themselves one).
//! - `network_ports`: sets the ports of the slice's own network (the one with ports, else a NAT one).

use super::{backend_icon, escape_html};
use crate::api::{body_object, json_response};
use crate::auth::AuthContext;
use crate::db::{Sql, Value};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Actor, FieldErrors, ListQuery, Record, StoreError, Unit};
use app::registry::SqlType;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use registry::fields::{self, common, slice};
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, HashMap};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/xoslib/slicesplus", get(list).post(create))
        .route("/xoslib/slicesplus/", get(list).post(create))
        .route(
            "/xoslib/slicesplus/{id}",
            get(detail).put(replace).patch(patch).delete(destroy),
        )
        .route(
            "/xoslib/slicesplus/{id}/",
            get(detail).put(replace).patch(patch).delete(destroy),
        )
}

/// Slice fields SlicePlus shows (XOS's serializer `fields`, minus the unmodelled serviceClass).
const SLICE_FIELDS: &[&str] = &[
    "id",
    "created",
    "updated",
    "enacted",
    "name",
    "enabled",
    "omf_friendly",
    "description",
    "slice_url",
    "site",
    "max_instances",
    "service",
    "network",
    "mount_data_sets",
    "default_image",
    "default_flavor",
    "creator",
    "backend_status",
];

/// Keys SlicePlus emits that are not slice fields; ignored on write unless handled below.
const EXTRA_KEYS: &[&str] = &[
    "humanReadableName",
    "sliceInfo",
    "networks",
    "backendIcon",
    "backendHtml",
    "site_ready",
    "user_names",
    "current_user_can_see",
    "validators",
];

#[derive(Default, Debug)]
struct MemberInfo {
    email: String,
    roles: Vec<String>,
}

/// What SlicePlus computes about one slice.
#[derive(Default, Debug)]
struct SliceInfo {
    sites_used: BTreeMap<String, i64>,
    sites_ready: BTreeMap<String, i64>,
    deployments_used: BTreeMap<String, i64>,
    instance_count: i64,
    users: BTreeMap<i64, MemberInfo>,
    ssh_commands: Vec<String>,
    network_ports: String,
    networks: Vec<i64>,
}

fn in_list(sql: &mut Sql, ids: &[i64]) {
    sql.push(" IN (");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(Value::Int(*id));
    }
    sql.push(")");
}

/// The figures of several slices, in four queries whatever their number.
async fn slice_infos(state: &AppState, ids: &[i64]) -> Result<HashMap<i64, SliceInfo>, StoreError> {
    let mut out: HashMap<i64, SliceInfo> = ids.iter().map(|&id| (id, SliceInfo::default())).collect();
    if ids.is_empty() {
        return Ok(out);
    }
    let db = state.store.db();
    let mut sql = Sql::new(
        "SELECT i.slice_id, s.name, d.name, i.instance_id, i.instance_name, n.name FROM core_instance i \
         JOIN core_node n ON n.id = i.node_id JOIN core_sitedeployment sd ON sd.id = n.site_deployment_id \
         JOIN core_site s ON s.id = sd.site_id JOIN core_deployment d ON d.id = sd.deployment_id \
         WHERE NOT i.deleted AND i.slice_id",
    );
    in_list(&mut sql, ids);
    sql.push(" ORDER BY i.id");
    let types = [
        SqlType::Int,
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
        SqlType::Text,
    ];
    for r in db.fetch(&sql, &types).await? {
        let Some(info) = r[0].as_int().and_then(|id| out.get_mut(&id)) else {
            continue;
        };
        let site = r[1].as_str().unwrap_or_default().to_string();
        *info.sites_used.entry(site.clone()).or_default() += 1;
        *info
            .deployments_used
            .entry(r[2].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
        info.instance_count += 1;
        if let (Some(iid), Some(iname), Some(node)) = (r[3].as_str(), r[4].as_str(), r[5].as_str()) {
            info.ssh_commands.push(format!(
                "ssh -o \"ProxyCommand ssh -q {iid}@{node}\" ubuntu@{iname}"
            ));
            *info.sites_ready.entry(site).or_default() += 1;
        }
    }
    let mut sql = Sql::new(
        "SELECT sp.slice_id, u.id, u.email, r.role FROM core_sliceprivilege sp JOIN core_user u ON u.id = sp.user_id \
         JOIN core_slicerole r ON r.id = sp.role_id WHERE NOT sp.deleted AND sp.slice_id",
    );
    in_list(&mut sql, ids);
    sql.push(" ORDER BY sp.id");
    for r in db
        .fetch(&sql, &[SqlType::Int, SqlType::Int, SqlType::Text, SqlType::Text])
        .await?
    {
        let Some(info) = r[0].as_int().and_then(|id| out.get_mut(&id)) else {
            continue;
        };
        let member = info.users.entry(r[1].as_int().unwrap_or_default()).or_default();
        member.email = r[2].as_str().unwrap_or_default().to_string();
        member.roles.push(r[3].as_str().unwrap_or_default().to_string());
    }
    let mut sql = Sql::new(
        "SELECT ns.slice_id, n.id, n.owner_id, n.ports FROM core_networkslice ns JOIN core_network n ON n.id = ns.network_id \
         WHERE NOT ns.deleted AND NOT n.deleted AND ns.slice_id",
    );
    in_list(&mut sql, ids);
    sql.push(" ORDER BY ns.id");
    for r in db
        .fetch(&sql, &[SqlType::Int, SqlType::Int, SqlType::Int, SqlType::Text])
        .await?
    {
        let Some(slice) = r[0].as_int() else { continue };
        let Some(info) = out.get_mut(&slice) else { continue };
        info.networks.push(r[1].as_int().unwrap_or_default());
        if r[2].as_int() == Some(slice)
            && let Some(ports) = r[3].as_str().filter(|p| !p.is_empty())
        {
            info.network_ports = ports.to_string();
        }
    }
    Ok(out)
}

/// The one role the Tenant view shows for a member: `admin` when they hold it, else the first.
fn member_role(roles: &[String]) -> &str {
    if roles.iter().any(|r| r == "admin") {
        "admin"
    } else {
        roles.first().map(String::as_str).unwrap_or("access")
    }
}

fn render(rec: &Record, info: &SliceInfo, actor: &Actor) -> Json {
    let mut m = Map::new();
    let plain = crate::api::json::plain_map(rec);
    m.insert(
        "humanReadableName".into(),
        Json::String(crate::api::json::human_readable_name(rec)),
    );
    for f in SLICE_FIELDS {
        m.insert((*f).into(), plain.get(*f).cloned().unwrap_or(Json::Null));
    }
    m.insert("networks".into(), json!(info.networks));
    let me = actor.user_id();
    let my_roles: Vec<&String> = me
        .and_then(|id| info.users.get(&id))
        .map(|u| u.roles.iter().collect())
        .unwrap_or_default();
    let users: Map<String, Json> = info
        .users
        .iter()
        .map(|(id, u)| {
            (
                id.to_string(),
                json!({"name": u.email, "id": id, "roles": u.roles}),
            )
        })
        .collect();
    m.insert(
        "sliceInfo".into(),
        json!({
            "sitesUsed": info.sites_used,
            "sitesReady": info.sites_ready,
            "deploymentsUsed": info.deployments_used,
            "instanceCount": info.instance_count,
            "siteCount": info.sites_used.len(),
            "users": users,
            "roles": my_roles,
            "sshCommands": info.ssh_commands,
            "networkPorts": info.network_ports,
        }),
    );
    m.insert("network_ports".into(), Json::String(info.network_ports.clone()));
    m.insert(
        "site_allocation".into(),
        Json::String(json!(info.sites_used).to_string()),
    );
    m.insert(
        "site_ready".into(),
        Json::String(json!(info.sites_ready).to_string()),
    );
    let ids: Vec<i64> = info.users.keys().copied().collect();
    let names: Vec<&str> = info.users.values().map(|u| u.email.as_str()).collect();
    m.insert("users".into(), Json::String(json!(ids).to_string()));
    m.insert("user_names".into(), Json::String(json!(names).to_string()));
    let user_roles: BTreeMap<String, &str> = info
        .users
        .iter()
        .map(|(id, u)| (id.to_string(), member_role(&u.roles)))
        .collect();
    m.insert("user_roles".into(), Json::String(json!(user_roles).to_string()));
    let can_see = me.is_some_and(|id| rec.opt(slice::CREATOR) == Some(id) || !my_roles.is_empty());
    m.insert("current_user_can_see".into(), Json::Bool(can_see));
    let status = rec.opt(common::BACKEND_STATUS).unwrap_or_default();
    let enacted_ok =
        matches!((rec.get("enacted"), rec.get("updated")), (Value::Time(e), Value::Time(u)) if e >= u);
    let (icon, tip) = backend_icon(status, enacted_ok);
    let src = format!("/static/img/icon_{icon}.svg");
    m.insert("backendIcon".into(), Json::String(src.clone()));
    m.insert(
        "backendHtml".into(),
        Json::String(format!(
            "<span title=\"{}\"><img src=\"{src}\" alt=\"{icon}\"></span>",
            escape_html(&tip)
        )),
    );
    Json::Object(m)
}

async fn list(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let params: Vec<(String, String)> = raw
        .as_deref()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let only_mine = params
        .iter()
        .any(|(k, v)| k == "current_user_can_see" && v != "0" && v != "false");
    let model = state.store.model("Slice");
    let q = ListQuery::parse(model, &params).map_err(ApiError::Invalid)?;
    let (records, _) = state.store.list(&actor, model, &q).await?;
    let ids: Vec<i64> = records.iter().map(Record::id).collect();
    let infos = slice_infos(&state, &ids).await?;
    let items: Vec<Json> = records
        .iter()
        .map(|r| render(r, &infos[&r.id()], &actor))
        .filter(|o| !only_mine || o["current_user_can_see"] == Json::Bool(true))
        .collect();
    Ok(json_response(StatusCode::OK, &Json::Array(items), &headers))
}

async fn one(state: &AppState, actor: &Actor, id: i64) -> Result<Json, ApiError> {
    let rec = state.store.get(actor, state.store.model("Slice"), id).await?;
    let infos = slice_infos(state, &[id]).await?;
    Ok(render(&rec, &infos[&id], actor))
}

async fn detail(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let id = id.parse().map_err(|_| ApiError::NotFound)?;
    Ok(json_response(
        StatusCode::OK,
        &one(&state, &actor, id).await?,
        &headers,
    ))
}

/// The most instances one `site_allocation` may ask for (each site, and in all); the slice's
/// `max_instances` limits them further, instance by instance.
const MAX_ALLOCATION: i64 = 1000;
/// The most sites one `site_allocation` may name.
const MAX_ALLOCATION_SITES: usize = 100;

/// The SlicePlus-only keys of a write.
#[derive(Default)]
struct Extras {
    site_allocation: Option<BTreeMap<String, i64>>,
    users: Option<Vec<i64>>,
    user_roles: Option<BTreeMap<i64, String>>,
    network_ports: Option<String>,
}

/// A JSON-encoded string (as XOS's serializer took them) or the value itself.
fn decoded(v: &Json) -> Json {
    match v {
        Json::String(s) => serde_json::from_str(s).unwrap_or(Json::String(s.clone())),
        other => other.clone(),
    }
}

/// Split a write into slice fields and SlicePlus extras.
fn split(input: Map<String, Json>) -> Result<(Map<String, Json>, Extras), ApiError> {
    let mut rest = Map::new();
    let mut extras = Extras::default();
    let mut errors = FieldErrors::new();
    for (k, v) in input {
        match k.as_str() {
            "site_allocation" => match decoded(&v) {
                Json::Object(m) if m.len() > MAX_ALLOCATION_SITES => errors
                    .entry(k.clone())
                    .or_default()
                    .push(format!("At most {MAX_ALLOCATION_SITES} sites.")),
                Json::Object(m) if m.keys().any(|site| site.contains('\0')) => errors
                    .entry(k.clone())
                    .or_default()
                    .push(crate::store::validate::NUL_MESSAGE.into()),
                Json::Object(m) => {
                    let mut alloc = BTreeMap::new();
                    for (site, n) in m {
                        match n.as_i64().filter(|n| (0..=MAX_ALLOCATION).contains(n)) {
                            Some(n) => {
                                alloc.insert(site, n);
                            }
                            None => errors.entry(k.clone()).or_default().push(format!(
                                "The count for {site} must be an integer from 0 to {MAX_ALLOCATION}."
                            )),
                        }
                    }
                    if alloc.values().sum::<i64>() > MAX_ALLOCATION {
                        errors
                            .entry(k.clone())
                            .or_default()
                            .push(format!("At most {MAX_ALLOCATION} instances in all."));
                    }
                    extras.site_allocation = Some(alloc);
                }
                _ => errors
                    .entry(k.clone())
                    .or_default()
                    .push("Expected a dictionary of site name to count.".into()),
            },
            "users" => match decoded(&v) {
                Json::Array(items) => {
                    let ids: Option<Vec<i64>> = items.iter().map(Json::as_i64).collect();
                    match ids {
                        Some(ids) => extras.users = Some(ids),
                        None => errors
                            .entry(k.clone())
                            .or_default()
                            .push("Expected a list of user ids.".into()),
                    }
                }
                _ => errors
                    .entry(k.clone())
                    .or_default()
                    .push("Expected a list of user ids.".into()),
            },
            "user_roles" => match decoded(&v) {
                Json::Object(items) => {
                    let roles: Option<BTreeMap<i64, String>> = items
                        .iter()
                        .map(|(id, role)| Some((id.trim().parse().ok()?, role.as_str()?.to_string())))
                        .collect();
                    match roles {
                        Some(roles) => extras.user_roles = Some(roles),
                        None => errors
                            .entry(k.clone())
                            .or_default()
                            .push("Expected a dictionary of user id to slice role name.".into()),
                    }
                }
                Json::Null => {}
                _ => errors
                    .entry(k.clone())
                    .or_default()
                    .push("Expected a dictionary of user id to slice role name.".into()),
            },
            "network_ports" => match v {
                Json::String(s) => extras.network_ports = Some(s),
                Json::Null => {}
                _ => errors
                    .entry(k.clone())
                    .or_default()
                    .push("Not a valid string.".into()),
            },
            key if EXTRA_KEYS.contains(&key) => {}
            _ => {
                rest.insert(k, v);
            }
        }
    }
    if errors.is_empty() {
        Ok((rest, extras))
    } else {
        Err(ApiError::Invalid(errors))
    }
}

async fn write(
    state: AppState,
    auth: AuthContext,
    id: Option<i64>,
    headers: HeaderMap,
    body: Bytes,
    partial: bool,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let (fields, extras) = split(body_object(&headers, &body)?)?;
    let model = state.store.model("Slice");
    let mut unit = state.store.begin(actor.clone()).await?;
    let (rec, reset) = match id {
        Some(id) => {
            let before = unit.load(model, id).await?;
            let rec = unit.update(model, id, &fields, partial).await?;
            let reset = rec.get("default_image") != before.get("default_image")
                || rec.get("default_flavor") != before.get("default_flavor");
            (rec, reset)
        }
        None => (unit.create(model, &fields).await?, false),
    };
    if let Some(alloc) = &extras.site_allocation {
        save_site_allocation(&mut unit, &rec, alloc, reset).await?;
    }
    if extras.users.is_some() || extras.user_roles.is_some() {
        let roles = extras.user_roles.clone().unwrap_or_default();
        save_users(&mut unit, rec.id(), extras.users.as_deref(), &roles).await?;
    }
    if let Some(ports) = &extras.network_ports {
        save_network_ports(&mut unit, rec.id(), ports).await?;
    }
    unit.commit().await?;
    let status = if id.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_response(
        status,
        &one(&state, &actor, rec.id()).await?,
        &headers,
    ))
}

fn field_error(field: &str, msg: String) -> StoreError {
    StoreError::field(field, msg)
}

/// Make the slice run `alloc[site]` instances at each listed site.
async fn save_site_allocation(
    unit: &mut Unit,
    slice: &Record,
    alloc: &BTreeMap<String, i64>,
    reset: bool,
) -> Result<(), StoreError> {
    let sid = slice.id();
    let instance_model = unit.store().model("Instance");
    let mut sql = Sql::new(
        "SELECT i.id, s.name FROM core_instance i JOIN core_node n ON n.id = i.node_id \
         JOIN core_sitedeployment sd ON sd.id = n.site_deployment_id JOIN core_site s ON s.id = sd.site_id \
         WHERE NOT i.deleted AND i.slice_id = ",
    );
    sql.bind(Value::Int(sid));
    sql.push(" ORDER BY i.id");
    let existing = unit.fetch(&sql, &[SqlType::Int, SqlType::Text]).await?;
    for (site_name, &want) in alloc {
        let mut here: Vec<i64> = existing
            .iter()
            .filter(|r| r[1].as_str() == Some(site_name))
            .filter_map(|r| r[0].as_int())
            .collect();
        while (reset && !here.is_empty()) || here.len() as i64 > want {
            let id = here.pop().expect("not empty");
            unit.delete(instance_model, id).await?;
        }
        if (here.len() as i64) < want {
            let mut sql = Sql::new("SELECT id FROM core_site WHERE NOT deleted AND name = ");
            sql.bind(Value::Text(site_name.clone()));
            let Some(site) = unit
                .fetch(&sql, &[SqlType::Int])
                .await?
                .first()
                .and_then(|r| r[0].as_int())
            else {
                return Err(field_error(
                    "site_allocation",
                    format!("There is no site named {site_name}."),
                ));
            };
            let mut sql = Sql::new(
                "SELECT n.id, n.name, sd.deployment_id, (SELECT COUNT(*) FROM core_instance i WHERE NOT i.deleted \
                 AND i.node_id = n.id AND i.slice_id = ",
            );
            sql.bind(Value::Int(sid));
            sql.push(") FROM core_node n JOIN core_sitedeployment sd ON sd.id = n.site_deployment_id WHERE NOT n.deleted AND sd.site_id = ");
            sql.bind(Value::Int(site));
            sql.push(" ORDER BY n.id");
            let mut nodes = unit
                .fetch(&sql, &[SqlType::Int, SqlType::Text, SqlType::Int, SqlType::Int])
                .await?;
            if nodes.is_empty() {
                return Err(field_error(
                    "site_allocation",
                    format!("There are no nodes in site {site_name}."),
                ));
            }
            let Some(image) = slice.opt(fields::slice::DEFAULT_IMAGE) else {
                return Err(field_error(
                    "default_image",
                    "Set a default image before allocating instances.".into(),
                ));
            };
            while (here.len() as i64) < want {
                // The least used node of the site (by this slice), first by id on ties.
                let i = (0..nodes.len())
                    .min_by_key(|&i| (nodes[i][3].as_int().unwrap_or(0), i))
                    .expect("nodes");
                let mut input = Map::new();
                input.insert(
                    "name".into(),
                    Json::from(nodes[i][1].as_str().unwrap_or_default()),
                );
                input.insert("slice".into(), Json::from(sid));
                input.insert(
                    "node".into(),
                    Json::from(nodes[i][0].as_int().unwrap_or_default()),
                );
                input.insert(
                    "deployment".into(),
                    Json::from(nodes[i][2].as_int().unwrap_or_default()),
                );
                input.insert("image".into(), Json::from(image));
                if let Some(flavor) = slice.opt(fields::slice::DEFAULT_FLAVOR) {
                    input.insert("flavor".into(), Json::from(flavor));
                }
                if let Some(creator) = slice.opt(fields::slice::CREATOR) {
                    input.insert("creator".into(), Json::from(creator));
                }
                let created = unit.create(instance_model, &input).await?;
                here.push(created.id());
                nodes[i][3] = Value::Int(nodes[i][3].as_int().unwrap_or(0) + 1);
            }
        }
    }
    Ok(())
}

/// Make the slice's `access` members exactly `users` (admins are left alone), when given, and
/// each user of `roles` hold exactly that slice role (a member if they were not).
async fn save_users(
    unit: &mut Unit,
    slice: i64,
    users: Option<&[i64]>,
    roles: &BTreeMap<i64, String>,
) -> Result<(), StoreError> {
    let priv_model = unit.store().model("SlicePrivilege");
    let sql = Sql::new("SELECT id, role FROM core_slicerole WHERE NOT deleted ORDER BY role");
    let role_rows = unit.fetch(&sql, &[SqlType::Int, SqlType::Text]).await?;
    let role_id = |name: &str| {
        role_rows
            .iter()
            .find(|r| r[1].as_str() == Some(name))
            .and_then(|r| r[0].as_int())
    };
    // XOS's default member role: `access`, else `default`.
    let Some(default_role) = role_id("access").or_else(|| role_id("default")) else {
        return Err(field_error("users", "There is no access slice role.".into()));
    };
    let mut wanted: BTreeMap<i64, i64> = BTreeMap::new();
    for (&user, name) in roles {
        let Some(role) = role_id(name) else {
            return Err(field_error(
                "user_roles",
                format!("There is no slice role named \"{name}\"."),
            ));
        };
        wanted.insert(user, role);
    }
    let mut sql =
        Sql::new("SELECT id, user_id, role_id FROM core_sliceprivilege WHERE NOT deleted AND slice_id = ");
    sql.bind(Value::Int(slice));
    let privs = unit
        .fetch(&sql, &[SqlType::Int, SqlType::Int, SqlType::Int])
        .await?;
    let holds = |user: i64, role: i64| {
        privs
            .iter()
            .any(|r| r[1].as_int() == Some(user) && r[2].as_int() == Some(role))
    };
    let members: Vec<i64> = privs.iter().filter_map(|r| r[1].as_int()).collect();
    let mut grants: Vec<(i64, i64)> = wanted
        .iter()
        .filter(|&(&u, &r)| !holds(u, r))
        .map(|(&u, &r)| (u, r))
        .collect();
    for &user in users.unwrap_or_default() {
        if !members.contains(&user) && !wanted.contains_key(&user) {
            grants.push((user, default_role));
        }
    }
    // Grants first: a manager changing their own role still manages the slice while it runs.
    for (user, role) in grants {
        let input = json!({"slice": slice, "user": user, "role": role});
        let field = if wanted.contains_key(&user) {
            "user_roles"
        } else {
            "users"
        };
        unit.create(priv_model, input.as_object().expect("object"))
            .await
            .map_err(|e| match e {
                StoreError::Invalid(f) if f.contains_key("user") => {
                    field_error(field, format!("User {user}: {}", f["user"].join(" ")))
                }
                e => e,
            })?;
    }
    for r in &privs {
        let (Some(user), Some(role)) = (r[1].as_int(), r[2].as_int()) else {
            continue;
        };
        let drop = match wanted.get(&user) {
            Some(&keep) => role != keep,
            None => users.is_some_and(|users| role == default_role && !users.contains(&user)),
        };
        if drop {
            unit.delete(priv_model, r[0].as_int().unwrap_or_default()).await?;
        }
    }
    Ok(())
}

/// Set the ports of the slice's own network: one that has ports, else one with a NAT template.
async fn save_network_ports(unit: &mut Unit, slice: i64, ports: &str) -> Result<(), StoreError> {
    let network_model = unit.store().model("Network");
    let mut sql = Sql::new(
        "SELECT n.id, n.ports, t.translation FROM core_networkslice ns JOIN core_network n ON n.id = ns.network_id \
         JOIN core_networktemplate t ON t.id = n.template_id WHERE NOT ns.deleted AND NOT n.deleted AND n.owner_id = ns.slice_id AND ns.slice_id = ",
    );
    sql.bind(Value::Int(slice));
    sql.push(" ORDER BY ns.id");
    let nets = unit
        .fetch(&sql, &[SqlType::Int, SqlType::Text, SqlType::Text])
        .await?;
    let target = nets
        .iter()
        .find(|r| r[1].as_str().is_some_and(|p| !p.is_empty()))
        .or_else(|| nets.iter().find(|r| r[2].as_str() == Some("NAT")))
        .and_then(|r| r[0].as_int());
    let Some(network) = target else {
        return Err(field_error(
            "network_ports",
            "No network was found that ports could be set on.".into(),
        ));
    };
    let input = json!({"ports": ports});
    unit.update(network_model, network, input.as_object().expect("object"), true)
        .await?;
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    write(state, auth, None, headers, body, false).await
}

async fn replace(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = id.parse().map_err(|_| ApiError::NotFound)?;
    write(state, auth, Some(id), headers, body, false).await
}

async fn patch(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = id.parse().map_err(|_| ApiError::NotFound)?;
    write(state, auth, Some(id), headers, body, true).await
}

async fn destroy(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let id = id.parse().map_err(|_| ApiError::NotFound)?;
    state.store.delete(actor, state.store.model("Slice"), id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
