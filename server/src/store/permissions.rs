//! Who may see and change what, as XOS had it. Checked in the one write path, so REST, the admin
//! pages and TOSCA obey the same rules.
//!
//! - An admin who is not read-only may do everything (XOS's `can_update_root`); the system actor
//!   too. A read-only user writes nothing.
//! - Site PIs and site admins (a `SitePrivilege` with role `pi` or `admin`) manage their site:
//!   its slices, its users (PIs not `is_admin`, `site` or `is_staff`) and its privileges; site
//!   admins and techs manage its nodes.
//! - A slice's creator, the PIs/admins of its site and its slice admins (a `SlicePrivilege` with
//!   role `admin`) manage the slice, its instances, networks and privileges.
//! - Users read what they are related to (their slices and the objects in them, the users of
//!   sites they run, their own privileges and dashboards) and edit themselves, but not their own
//!   `is_admin`, `is_active`, `site`, `is_staff` or `is_readonly`; a password change needs the
//!   old password. Nobody but an admin grants `is_admin`.
//! - Everything else (deployments, controllers, images, flavors, roles, dashboards, services,
//!   tags) is readable by every user and written by admins.

use super::{Actor, FieldErrors, Principal, Record, StoreError, Unit};
use crate::db::{Sql, Value};
use app::registry::{Model, SqlType};

/// The kind of write being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

/// Fields of their own User row that a user may not change.
const SELF_PROTECTED_USER_FIELDS: &[&str] = &["is_admin", "is_active", "site", "is_staff", "is_readonly"];
/// Fields a site PI may not change on the users of their site.
const PI_PROTECTED_USER_FIELDS: &[&str] = &["is_admin", "site", "is_staff"];

/// `(SELECT site_id …)`: sites where `me` holds one of `roles`.
fn push_sites_with_role(sql: &mut Sql, me: i64, roles: &[&str]) {
    sql.push(
        "(SELECT sp.site_id FROM core_siteprivilege sp JOIN core_siterole r ON r.id = sp.role_id \
         WHERE NOT sp.deleted AND sp.user_id = ",
    )
    .bind(Value::Int(me));
    sql.push(" AND r.role IN (");
    for (i, role) in roles.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(Value::Text(role.to_string()));
    }
    sql.push("))");
}

/// `(SELECT id FROM core_slice …)`: slices `me` may see (creator, a privilege, or PI/admin of
/// the slice's site).
fn push_visible_slices(sql: &mut Sql, me: i64) {
    sql.push("(SELECT s.id FROM core_slice s WHERE NOT s.deleted AND (s.creator_id = ")
        .bind(Value::Int(me));
    sql.push(" OR s.site_id IN ");
    push_sites_with_role(sql, me, &["admin", "pi"]);
    sql.push(" OR s.id IN (SELECT slice_id FROM core_sliceprivilege WHERE NOT deleted AND user_id = ")
        .bind(Value::Int(me));
    sql.push(")))");
}

/// `(SELECT id FROM core_slice …)`: slices `me` may manage (XOS's `can_update_slice`).
fn push_managed_slices(sql: &mut Sql, me: i64) {
    sql.push("(SELECT s.id FROM core_slice s WHERE NOT s.deleted AND (s.creator_id = ")
        .bind(Value::Int(me));
    sql.push(" OR s.site_id IN ");
    push_sites_with_role(sql, me, &["admin", "pi"]);
    sql.push(
        " OR s.id IN (SELECT sp.slice_id FROM core_sliceprivilege sp JOIN core_slicerole r ON r.id = sp.role_id \
         WHERE NOT sp.deleted AND r.role = 'admin' AND sp.user_id = ",
    )
    .bind(Value::Int(me));
    sql.push(")))");
}

/// Restrict a query on `model` (aliased `t`) to rows the actor may see.
pub fn visible(actor: &Actor, model: &Model, sql: &mut Sql) {
    let Actor::User(p) = actor else { return };
    if p.is_admin {
        return;
    }
    let me = p.id;
    match model.name.as_str() {
        "User" => {
            sql.push(" AND (t.id = ").bind(Value::Int(me));
            sql.push(" OR t.site_id IN ");
            push_sites_with_role(sql, me, &["admin", "pi"]);
            sql.push(" OR t.id IN (SELECT user_id FROM core_siteprivilege WHERE NOT deleted AND site_id IN ");
            push_sites_with_role(sql, me, &["admin", "pi"]);
            sql.push("))");
        }
        "Slice" => {
            sql.push(" AND t.id IN ");
            push_visible_slices(sql, me);
        }
        "SitePrivilege" => {
            sql.push(" AND (t.user_id = ").bind(Value::Int(me));
            sql.push(" OR t.site_id IN ");
            push_sites_with_role(sql, me, &["admin", "pi"]);
            sql.push(")");
        }
        "SlicePrivilege" => {
            sql.push(" AND (t.user_id = ").bind(Value::Int(me));
            sql.push(" OR t.slice_id IN ");
            push_managed_slices(sql, me);
            sql.push(")");
        }
        "Instance" | "ControllerSlice" | "NetworkSlice" | "NetworkPermittedSlice" => {
            sql.push(" AND t.slice_id IN ");
            push_visible_slices(sql, me);
        }
        "Network" => {
            sql.push(" AND (t.permit_all_slices OR t.owner_id IN ");
            push_visible_slices(sql, me);
            sql.push(
                " OR t.id IN (SELECT network_id FROM core_networkslice WHERE NOT deleted AND slice_id IN ",
            );
            push_visible_slices(sql, me);
            sql.push("))");
        }
        "Port" => {
            sql.push(
                " AND t.instance_id IN (SELECT id FROM core_instance WHERE NOT deleted AND slice_id IN ",
            );
            push_visible_slices(sql, me);
            sql.push(")");
        }
        "ControllerNetwork" => {
            sql.push(" AND t.network_id IN (SELECT id FROM core_network WHERE NOT deleted AND owner_id IN ");
            push_visible_slices(sql, me);
            sql.push(")");
        }
        "ControllerUser" | "UserDashboardView" | "DeploymentPrivilege" | "ApiToken" => {
            sql.push(" AND t.user_id = ").bind(Value::Int(me));
        }
        _ => {}
    }
}

fn deny(what: &str) -> StoreError {
    StoreError::PermissionDenied(format!("You do not have permission to {what}."))
}

/// Whether `me` holds one of `roles` at `site`.
async fn has_site_role(
    unit: &mut Unit,
    me: i64,
    site: Option<i64>,
    roles: &[&str],
) -> Result<bool, StoreError> {
    let Some(site) = site else { return Ok(false) };
    let mut sql = Sql::new("SELECT 1 WHERE ");
    sql.bind(Value::Int(site));
    sql.push(" IN ");
    push_sites_with_role(&mut sql, me, roles);
    Ok(!unit.fetch(&sql, &[SqlType::Int]).await?.is_empty())
}

/// XOS's `can_update_slice`: creator, site PI/admin of the slice's site, or slice admin.
async fn can_manage_slice(unit: &mut Unit, me: i64, slice: Option<i64>) -> Result<bool, StoreError> {
    let Some(slice) = slice else { return Ok(false) };
    let mut sql = Sql::new("SELECT 1 WHERE ");
    sql.bind(Value::Int(slice));
    sql.push(" IN ");
    push_managed_slices(&mut sql, me);
    Ok(!unit.fetch(&sql, &[SqlType::Int]).await?.is_empty())
}

/// One foreign key of another row (`column` of `table` row `id`).
async fn column_of(
    unit: &mut Unit,
    table: &str,
    column: &str,
    id: Option<i64>,
) -> Result<Option<i64>, StoreError> {
    let Some(id) = id else { return Ok(None) };
    let mut sql = Sql::new(format!("SELECT {column} FROM {table} WHERE id = "));
    sql.bind(Value::Int(id));
    Ok(unit
        .fetch(&sql, &[SqlType::Int])
        .await?
        .first()
        .and_then(|r| r[0].as_int()))
}

/// The values of a foreign key before and after the write (both must be allowed).
fn both(before: Option<&Record>, after: &Record, field: &str) -> Vec<Option<i64>> {
    let mut v = vec![after.get_int(field)];
    if let Some(b) = before
        && b.get_int(field) != after.get_int(field)
    {
        v.push(b.get_int(field));
    }
    v
}

/// Check a write: `before` is the stored object (update, delete), `after` the proposed one,
/// `changed` the indexes of the fields the write changes.
pub async fn check_write(
    unit: &mut Unit,
    op: Op,
    before: Option<&Record>,
    after: &Record,
    changed: &[usize],
) -> Result<(), StoreError> {
    let actor = unit.actor().clone();
    if actor.is_root() {
        return Ok(());
    }
    let Actor::User(p) = &actor else { return Ok(()) };
    let model = after.model;
    let verb = match op {
        Op::Create => "create",
        Op::Update => "change",
        Op::Delete => "delete",
    };
    let what = format!("{verb} this {}", model.verbose_name);
    if p.is_readonly {
        return Err(deny(&what));
    }
    let changed_names: Vec<&str> = changed.iter().map(|&i| model.fields[i].name.as_str()).collect();
    let me = p.id;
    let allowed = match model.name.as_str() {
        "Site" => op == Op::Update && has_site_role(unit, me, Some(after.id()), &["admin", "pi"]).await?,
        "User" => return check_user(unit, p, op, before, after, &changed_names).await,
        "SitePrivilege" => {
            let mut ok = true;
            for site in both(before, after, "site") {
                ok &= has_site_role(unit, me, site, &["admin", "pi"]).await?;
            }
            ok
        }
        "Slice" => {
            if changed_names.contains(&"creator") && op == Op::Update {
                return Err(deny("change the creator of a slice"));
            }
            match op {
                Op::Create => has_site_role(unit, me, after.get_int("site"), &["admin", "pi"]).await?,
                _ => {
                    let mut ok = can_manage_slice(unit, me, Some(after.id())).await?;
                    if changed_names.contains(&"site") {
                        ok &= has_site_role(unit, me, after.get_int("site"), &["admin", "pi"]).await?;
                    }
                    ok
                }
            }
        }
        "SlicePrivilege" | "Instance" | "NetworkSlice" => {
            let mut ok = true;
            for slice in both(before, after, "slice") {
                ok &= can_manage_slice(unit, me, slice).await?;
            }
            ok
        }
        "Network" => {
            let mut ok = true;
            for owner in both(before, after, "owner") {
                ok &= can_manage_slice(unit, me, owner).await?;
            }
            ok
        }
        "NetworkPermittedSlice" => {
            let owner = column_of(unit, "core_network", "owner_id", after.get_int("network")).await?;
            can_manage_slice(unit, me, owner).await?
        }
        "Port" => {
            let slice = column_of(unit, "core_instance", "slice_id", after.get_int("instance")).await?;
            let owner = column_of(unit, "core_network", "owner_id", after.get_int("network")).await?;
            can_manage_slice(unit, me, slice).await? || can_manage_slice(unit, me, owner).await?
        }
        "Node" => {
            let mut ok = true;
            for site in both(before, after, "site") {
                ok &= has_site_role(unit, me, site, &["admin", "tech"]).await?;
            }
            ok
        }
        "UserDashboardView" => both(before, after, "user").iter().all(|u| *u == Some(me)),
        // Tokens are made at /xoslib/tokens/ (which shows the key once); users revoke their own.
        "ApiToken" => op == Op::Delete && after.get_int("user") == Some(me),
        _ => false,
    };
    if allowed { Ok(()) } else { Err(deny(&what)) }
}

/// The User rules of XOS (`User.can_update`), plus: only admins grant `is_admin`, and a password
/// change needs the old password (checked by the store's update before this runs).
async fn check_user(
    unit: &mut Unit,
    p: &Principal,
    op: Op,
    before: Option<&Record>,
    after: &Record,
    changed: &[&str],
) -> Result<(), StoreError> {
    let me = p.id;
    let what = match op {
        Op::Create => "create users",
        Op::Update => "change this user",
        Op::Delete => "delete this user",
    };
    if after.get_bool("is_admin") && (op == Op::Create || changed.contains(&"is_admin")) {
        return Err(deny("make a user an admin"));
    }
    if op == Op::Update && changed.contains(&"password") && after.id() != me {
        return Err(deny("set another user's password"));
    }
    let home = before
        .map(|b| b.get_int("site"))
        .unwrap_or_else(|| after.get_int("site"));
    match op {
        Op::Update if after.id() == me => {
            if let Some(f) = changed.iter().find(|n| SELF_PROTECTED_USER_FIELDS.contains(n)) {
                return Err(deny(&format!("change your own {f}")));
            }
            Ok(())
        }
        Op::Update => {
            if has_site_role(unit, me, home, &["admin"]).await? {
                if changed.contains(&"site")
                    && !has_site_role(unit, me, after.get_int("site"), &["admin"]).await?
                {
                    return Err(deny("move a user to a site you do not run"));
                }
                return Ok(());
            }
            if has_site_role(unit, me, home, &["pi"]).await? {
                if let Some(f) = changed.iter().find(|n| PI_PROTECTED_USER_FIELDS.contains(n)) {
                    return Err(deny(&format!("change a user's {f}")));
                }
                return Ok(());
            }
            Err(deny(what))
        }
        Op::Create | Op::Delete => {
            if after.id() != me && has_site_role(unit, me, home, &["admin", "pi"]).await? {
                Ok(())
            } else {
                Err(deny(what))
            }
        }
    }
}

/// A non-admin changing their own password must give the old one (`old_password`).
pub async fn check_old_password(
    actor: &Actor,
    stored_hash: &str,
    old: Option<String>,
) -> Result<(), StoreError> {
    if actor.is_root() {
        return Ok(());
    }
    let mut e = FieldErrors::new();
    let Some(old) = old else {
        e.insert(
            "old_password".into(),
            vec!["Give your current password to change it.".into()],
        );
        return Err(StoreError::Invalid(e));
    };
    let hash = stored_hash.to_string();
    let ok = tokio::task::spawn_blocking(move || crate::auth::password::verify(&old, &hash))
        .await
        .unwrap_or(false);
    if ok {
        return Ok(());
    }
    e.insert("old_password".into(), vec!["Wrong password.".into()]);
    Err(StoreError::Invalid(e))
}

/// Whether the actor may create some object of `model` (the admin pages show "Add" only then).
/// Whether a particular object may be created still depends on its values (checked on write).
pub async fn may_create(unit: &mut Unit, model: &Model) -> Result<bool, StoreError> {
    let actor = unit.actor().clone();
    if actor.is_root() {
        return Ok(true);
    }
    let Actor::User(p) = &actor else { return Ok(true) };
    if p.is_readonly {
        return Ok(false);
    }
    let me = p.id;
    let probe = match model.name.as_str() {
        "Slice" | "User" | "SitePrivilege" => {
            let mut s = Sql::new("SELECT 1 WHERE EXISTS ");
            push_sites_with_role(&mut s, me, &["admin", "pi"]);
            s
        }
        "Node" => {
            let mut s = Sql::new("SELECT 1 WHERE EXISTS ");
            push_sites_with_role(&mut s, me, &["admin", "tech"]);
            s
        }
        "SlicePrivilege" | "Instance" | "Network" | "NetworkSlice" | "NetworkPermittedSlice" | "Port" => {
            let mut s = Sql::new("SELECT 1 WHERE EXISTS ");
            push_managed_slices(&mut s, me);
            s
        }
        "UserDashboardView" => return Ok(true),
        _ => return Ok(false),
    };
    Ok(!unit.fetch(&probe, &[SqlType::Int]).await?.is_empty())
}
