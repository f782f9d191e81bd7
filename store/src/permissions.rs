//! Who may see and change what, as XOS had it. Checked in the one write path, so REST, the admin
//! pages and TOSCA obey the same rules.
//!
//! - An admin who is not read-only may do everything (XOS's `can_update_root`); the system actor
//!   too. A read-only user writes nothing.
//! - Site PIs and site admins (a `SitePrivilege` with role `pi` or `admin`) manage their site:
//!   its slices, its users and its privileges; site admins and techs manage its nodes. Nobody
//!   but an admin changes or deletes an admin, or a user holding a role at their home site that
//!   the actor does not hold there. PIs change neither `is_admin`, `site` nor `is_staff`, and of
//!   users who hold a site role neither `is_active`, `is_readonly` nor `email`; they delete only
//!   users who hold no site role.
//! - Privileges: a site PI or site admin grants (and removes) only roles ranked at or below its
//!   own at that site (admin > pi > tech, billing), a slice manager only slice roles; nobody
//!   grants a role to themselves.
//! - Link models (`Port`, `NetworkSlice`, `NetworkPermittedSlice`) need the right on both ends,
//!   before and after the change.
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
use registry::fields::user;
use registry::{Model, Read, SqlType, Write};

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
/// Fields a site PI may not change on users who hold a site role themselves (the PI's peers):
/// the account's switch and its login name.
const PI_PROTECTED_PEER_FIELDS: &[&str] = &["is_active", "is_readonly", "email"];

/// Who "me" is in a visibility query: a user id, or a column of an enclosing query (to ask
/// which users see a row).
#[derive(Clone, Copy)]
enum Me<'a> {
    Id(i64),
    Column(&'a str),
}

fn push_me<'s>(sql: &'s mut Sql, me: Me) -> &'s mut Sql {
    match me {
        Me::Id(id) => sql.bind(Value::Int(id)),
        Me::Column(c) => sql.push(c),
    }
}

/// `(SELECT site_id …)`: sites where `me` holds one of `roles`.
fn push_sites_with_role(sql: &mut Sql, me: Me, roles: &[&str]) {
    sql.push(
        "(SELECT sp.site_id FROM core_siteprivilege sp JOIN core_siterole r ON r.id = sp.role_id \
         WHERE NOT sp.deleted AND sp.user_id = ",
    );
    push_me(sql, me);
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
fn push_visible_slices(sql: &mut Sql, me: Me) {
    sql.push("(SELECT s.id FROM core_slice s WHERE NOT s.deleted AND (s.creator_id = ");
    push_me(sql, me);
    sql.push(" OR s.site_id IN ");
    push_sites_with_role(sql, me, &["admin", "pi"]);
    sql.push(" OR s.id IN (SELECT slice_id FROM core_sliceprivilege WHERE NOT deleted AND user_id = ");
    push_me(sql, me);
    sql.push(")))");
}

/// `(SELECT id FROM core_slice …)`: slices `me` may manage (XOS's `can_update_slice`).
fn push_managed_slices(sql: &mut Sql, me: Me) {
    sql.push("(SELECT s.id FROM core_slice s WHERE NOT s.deleted AND (s.creator_id = ");
    push_me(sql, me);
    sql.push(" OR s.site_id IN ");
    push_sites_with_role(sql, me, &["admin", "pi"]);
    sql.push(
        " OR s.id IN (SELECT sp.slice_id FROM core_sliceprivilege sp JOIN core_slicerole r ON r.id = sp.role_id \
         WHERE NOT sp.deleted AND r.role = 'admin' AND sp.user_id = ",
    );
    push_me(sql, me);
    sql.push(")))");
}

/// `(SELECT <object>_id FROM <through> …)`: the objects of model `object` that the link model
/// `through` makes `me` a member of (a CDN content provider's users).
fn push_members(sql: &mut Sql, me: Me, object: &str, through: &str) {
    let link = registry::registry()
        .model(through)
        .unwrap_or_else(|| panic!("access rule names unknown link model {through}"));
    let key = |to: &str| {
        link.foreign_keys()
            .find(|f| f.fk_target() == Some(to))
            .unwrap_or_else(|| panic!("{through} has no foreign key to {to}"))
            .column()
    };
    sql.push(&format!(
        "(SELECT m.{} FROM {} m WHERE NOT m.deleted AND m.{} = ",
        key(object),
        link.table(),
        key("User")
    ));
    push_me(sql, me);
    sql.push(")");
}

/// The model the foreign keys of `path` lead to from `model` (an empty path: `model`).
fn end_of(model: &Model, path: &[String]) -> &'static Model {
    let mut here = registry::registry()
        .model(&model.name)
        .unwrap_or_else(|| panic!("{} is not in the registry", model.name));
    for field in path {
        here = target(here, field);
    }
    here
}

/// Restrict a query on `model` (aliased `t`) to rows the actor may see.
pub fn visible(actor: &Actor, model: &Model, sql: &mut Sql) {
    let Actor::User(p) = actor else { return };
    if p.is_admin {
        return;
    }
    visible_to(Me::Id(p.id), model, sql);
}

/// Whether the rows of `model` are visible to every user (no [`visible_to`] rule).
pub fn visible_to_all(model: &Model) -> bool {
    let mut probe = Sql::new("");
    visible_to(Me::Id(0), model, &mut probe);
    probe.text.is_empty()
}

/// [`visible`] for the non-admin user `me` (an id, or a column of the enclosing query): the
/// model's declared [`Read`] rule as SQL.
fn visible_to(me: Me, model: &Model, sql: &mut Sql) {
    match &model.access.read {
        Read::All => {}
        Read::Admins => {
            sql.push(" AND 1 = 0");
        }
        Read::Slice(path) => {
            sql.push(" AND ");
            push_path_in(sql, model, path, |sql| push_visible_slices(sql, me));
        }
        Read::Owner(field) => {
            sql.push(&format!(" AND t.{} = ", column(model, field)));
            push_me(sql, me);
        }
        Read::OwnerOrPublic { owner, private } => {
            sql.push(&format!(
                " AND (NOT t.{} OR t.{} = ",
                column(model, private),
                column(model, owner)
            ));
            push_me(sql, me);
            sql.push(")");
        }
        Read::Users => {
            push_me(sql.push(" AND (t.id = "), me);
            sql.push(" OR t.site_id IN ");
            push_sites_with_role(sql, me, &["admin", "pi"]);
            sql.push(" OR t.id IN (SELECT user_id FROM core_siteprivilege WHERE NOT deleted AND site_id IN ");
            push_sites_with_role(sql, me, &["admin", "pi"]);
            // The members of slices one belongs to (what the slice's member list shows anyway).
            sql.push(
                ") OR t.id IN (SELECT user_id FROM core_sliceprivilege WHERE NOT deleted AND slice_id IN ",
            );
            push_visible_slices(sql, me);
            sql.push("))");
        }
        Read::SitePrivileges => {
            push_me(sql.push(" AND (t.user_id = "), me);
            sql.push(" OR t.site_id IN ");
            push_sites_with_role(sql, me, &["admin", "pi"]);
            sql.push(")");
        }
        Read::SlicePrivileges => {
            push_me(sql.push(" AND (t.user_id = "), me);
            sql.push(" OR t.slice_id IN ");
            push_managed_slices(sql, me);
            sql.push(")");
        }
        Read::Members { path, through } => {
            let object = &end_of(model, path).name;
            sql.push(" AND ");
            push_path_in(sql, model, path, |sql| push_members(sql, me, object, through));
        }
        Read::Networks => {
            sql.push(" AND (t.permit_all_slices OR t.owner_id IN ");
            push_visible_slices(sql, me);
            sql.push(
                " OR t.id IN (SELECT network_id FROM core_networkslice WHERE NOT deleted AND slice_id IN ",
            );
            push_visible_slices(sql, me);
            sql.push("))");
        }
    }
}

/// The column of `model`'s field `name`, quoted (a declaration error if there is none): some
/// keep their camelCase (`"contentProvider_id"`), which Postgres would fold unquoted.
fn column(model: &Model, name: &str) -> String {
    model
        .field_named(name)
        .unwrap_or_else(|| panic!("{}.{name}: access path names no field", model.name))
        .column()
}

/// The model a foreign key of `model` points at.
fn target(model: &Model, name: &str) -> &'static Model {
    let to = model
        .field_named(name)
        .and_then(|f| f.fk_target())
        .unwrap_or_else(|| panic!("{}.{name}: access path names no foreign key", model.name));
    registry::registry()
        .model(to)
        .unwrap_or_else(|| panic!("{to} is not declared"))
}

/// `t.<fk> IN (SELECT id FROM <target> WHERE NOT deleted AND <next fk> IN … <end>)`: the row
/// (aliased `t`) reaches, by the foreign keys of `path`, a row in the set `end` pushes (an empty
/// path: the row itself).
fn push_path_in(sql: &mut Sql, model: &Model, path: &[String], end: impl FnOnce(&mut Sql)) {
    let Some((first, rest)) = path.split_first() else {
        sql.push("t.id IN ");
        end(sql);
        return;
    };
    sql.push(&format!("t.{} IN ", column(model, first)));
    let mut here = target(model, first);
    let mut open = 0;
    for field in rest {
        sql.push(&format!(
            "(SELECT id FROM {} WHERE NOT deleted AND {} IN ",
            here.table(),
            column(here, field)
        ));
        here = target(here, field);
        open += 1;
    }
    end(sql);
    sql.push(&")".repeat(open));
}

/// The id the foreign keys of `path` reach from `rec` (an empty path: `rec` itself).
async fn follow(unit: &mut Unit, rec: &Record, path: &[String]) -> Result<Option<i64>, StoreError> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(Some(rec.id()));
    };
    let mut id = rec.get_int(first);
    let mut here = target(rec.model, first);
    for field in rest {
        id = column_of(unit, &here.table(), &column(here, field), id).await?;
        here = target(here, field);
    }
    Ok(id)
}

/// The non-admin users who may see object `id` of `model` now (before it is deleted), for the
/// `/xos/events` stream: `None` when every user may (the model has no visibility rule, or more
/// than [`AUDIENCE_MAX`] users do). Admins see everything and are not listed.
pub async fn audience(unit: &mut Unit, model: &Model, id: i64) -> Result<Option<Vec<i64>>, StoreError> {
    if visible_to_all(model) {
        return Ok(None);
    }
    let mut sql = Sql::new(format!(
        "SELECT u.id FROM core_user u WHERE NOT u.deleted AND NOT u.is_admin AND EXISTS (SELECT 1 FROM {} t WHERE t.id = ",
        model.table()
    ));
    sql.bind(Value::Int(id));
    visible_to(Me::Column("u.id"), model, &mut sql);
    sql.push(") ORDER BY u.id LIMIT ");
    sql.bind(Value::Int(AUDIENCE_MAX as i64 + 1));
    let ids: Vec<i64> = unit
        .fetch(&sql, &[SqlType::Int])
        .await?
        .iter()
        .filter_map(|r| r[0].as_int())
        .collect();
    Ok((ids.len() <= AUDIENCE_MAX).then_some(ids))
}

/// Past this many users, a delete is announced to everyone (a network open to all slices); the
/// list also rides in the Postgres notification, whose payload is limited to 8000 bytes.
pub const AUDIENCE_MAX: usize = 300;

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
    push_sites_with_role(&mut sql, Me::Id(me), roles);
    Ok(!unit.fetch(&sql, &[SqlType::Int]).await?.is_empty())
}

/// XOS's `can_update_slice`: creator, site PI/admin of the slice's site, or slice admin.
async fn can_manage_slice(unit: &mut Unit, me: i64, slice: Option<i64>) -> Result<bool, StoreError> {
    slice_in(unit, me, slice, push_managed_slices).await
}

/// Whether `me` may see `slice` (a member: creator, a privilege on it, PI/admin of its site).
async fn is_slice_member(unit: &mut Unit, me: i64, slice: Option<i64>) -> Result<bool, StoreError> {
    slice_in(unit, me, slice, push_visible_slices).await
}

/// Whether `slice` (or another row id) is in the set `push` writes for `me`.
async fn slice_in(
    unit: &mut Unit,
    me: i64,
    slice: Option<i64>,
    push: fn(&mut Sql, Me),
) -> Result<bool, StoreError> {
    let Some(slice) = slice else { return Ok(false) };
    let mut sql = Sql::new("SELECT 1 WHERE ");
    sql.bind(Value::Int(slice));
    sql.push(" IN ");
    push(&mut sql, Me::Id(me));
    Ok(!unit.fetch(&sql, &[SqlType::Int]).await?.is_empty())
}

/// Whether `me` is a member (through `through`) of object `id` of model `object`.
async fn is_member(
    unit: &mut Unit,
    me: i64,
    id: Option<i64>,
    object: &str,
    through: &str,
) -> Result<bool, StoreError> {
    let Some(id) = id else { return Ok(false) };
    let mut sql = Sql::new("SELECT 1 WHERE ");
    sql.bind(Value::Int(id));
    sql.push(" IN ");
    push_members(&mut sql, Me::Id(me), object, through);
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

/// The rank of a site role: a holder grants roles of the same rank or lower.
fn site_rank(role: &str) -> u8 {
    match role {
        "admin" => 3,
        "pi" => 2,
        "tech" | "billing" => 1,
        _ => 0,
    }
}

/// The rank of a slice role (slice managers hold the top one).
fn slice_rank(role: &str) -> u8 {
    match role {
        "admin" => 2,
        "access" => 1,
        _ => 0,
    }
}

/// The site roles `user` holds at `site`.
async fn site_roles(unit: &mut Unit, user: i64, site: Option<i64>) -> Result<Vec<String>, StoreError> {
    let Some(site) = site else { return Ok(Vec::new()) };
    let mut sql = Sql::new(
        "SELECT r.role FROM core_siteprivilege sp JOIN core_siterole r ON r.id = sp.role_id \
         WHERE NOT sp.deleted AND sp.user_id = ",
    );
    sql.bind(Value::Int(user));
    sql.push(" AND sp.site_id = ").bind(Value::Int(site));
    Ok(unit
        .fetch(&sql, &[SqlType::Text])
        .await?
        .into_iter()
        .filter_map(|r| r[0].as_str().map(str::to_string))
        .collect())
}

/// Every (site, role) `user` holds.
async fn roles_everywhere(unit: &mut Unit, user: i64) -> Result<Vec<(i64, String)>, StoreError> {
    let mut sql = Sql::new(
        "SELECT sp.site_id, r.role FROM core_siteprivilege sp JOIN core_siterole r ON r.id = sp.role_id \
         WHERE NOT sp.deleted AND sp.user_id = ",
    );
    sql.bind(Value::Int(user));
    Ok(unit
        .fetch(&sql, &[SqlType::Int, SqlType::Text])
        .await?
        .into_iter()
        .filter_map(|r| Some((r[0].as_int()?, r[1].as_str()?.to_string())))
        .collect())
}

/// The name of role `id` in a role table.
async fn role_name(unit: &mut Unit, table: &str, id: Option<i64>) -> Result<String, StoreError> {
    let Some(id) = id else { return Ok(String::new()) };
    let mut sql = Sql::new(format!("SELECT role FROM {table} WHERE id = "));
    sql.bind(Value::Int(id));
    Ok(unit
        .fetch(&sql, &[SqlType::Text])
        .await?
        .first()
        .and_then(|r| r[0].as_str().map(str::to_string))
        .unwrap_or_default())
}

/// Whether object `id` of `model` is live and visible to `actor` (what the API would show).
pub async fn is_visible(unit: &mut Unit, model: &Model, id: i64) -> Result<bool, StoreError> {
    let actor = unit.actor().clone();
    let mut sql = Sql::new(format!("SELECT t.id FROM {} t WHERE t.id = ", model.table()));
    sql.bind(Value::Int(id));
    if model.field_named("deleted").is_some() {
        sql.push(" AND NOT t.deleted");
    }
    visible(&actor, model, &mut sql);
    Ok(!unit.fetch(&sql, &[SqlType::Int]).await?.is_empty())
}

/// Whether the actor may see object `id` of the model named `model`.
async fn sees(unit: &mut Unit, model: &str, id: Option<i64>) -> Result<bool, StoreError> {
    let Some(id) = id else { return Ok(false) };
    let model = unit.store().model(model);
    is_visible(unit, model, id).await
}

/// The states of a row a write must allow: the new one (create), the old one (delete), both
/// (update: the row may neither come from nor go to a place the actor has no right on).
fn states<'a>(op: Op, before: Option<&'a Record>, after: &'a Record) -> Vec<&'a Record> {
    match (op, before) {
        (Op::Create, _) | (_, None) => vec![after],
        (Op::Delete, Some(b)) => vec![b],
        (Op::Update, Some(b)) if b.values == after.values => vec![after],
        (Op::Update, Some(b)) => vec![b, after],
    }
}

/// Check a write: `before` is the stored object (update, delete), `after` the proposed one,
/// `changed` the indexes of the fields the write changes. With `after == before` and nothing
/// changed it answers whether the actor may change (or delete) the object at all.
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
    let rows = states(op, before, after);
    let mut allowed = true;
    match &model.access.write {
        Write::Admins => allowed = false,
        Write::Users => return check_user(unit, p, op, before, after, &changed_names).await,
        Write::SitePrivileges => return check_privilege(unit, me, Scope::Site, op, &rows, after).await,
        Write::SlicePrivileges => return check_privilege(unit, me, Scope::Slice, op, &rows, after).await,
        Write::Slices => {
            if changed_names.contains(&"creator") && op == Op::Update {
                return Err(deny("change the creator of a slice"));
            }
            // A slice of a service is run by the service's synchronizer (the HPC service starts
            // caches for its slices): only an admin attaches a slice to a service, or moves it
            // to another one.
            let service_set = match op {
                Op::Create => after.get_int("service").is_some(),
                Op::Update => changed_names.contains(&"service"),
                Op::Delete => false,
            };
            if service_set {
                return Err(deny("attach a slice to a service"));
            }
            match op {
                Op::Create => {
                    allowed = has_site_role(unit, me, after.get_int("site"), &["admin", "pi"]).await?
                }
                _ => {
                    allowed = can_manage_slice(unit, me, Some(after.id())).await?;
                    // Moving a slice: the actor runs both sites. Its quota: the site's PIs set it.
                    let site_fields = ["site", "max_instances"];
                    if changed_names.iter().any(|n| site_fields.contains(n)) {
                        for r in &rows {
                            allowed &= has_site_role(unit, me, r.get_int("site"), &["admin", "pi"]).await?;
                        }
                    }
                }
            }
        }
        // Rows of a slice (and link rows: the other end must be one the actor sees).
        Write::Slice { slice, members, sees } => {
            for r in &rows {
                let s = follow(unit, r, slice).await?;
                allowed &= if *members {
                    is_slice_member(unit, me, s).await?
                } else {
                    can_manage_slice(unit, me, s).await?
                };
                for (field, model) in sees {
                    allowed &= self::sees(unit, model, r.get_int(field)).await?;
                }
            }
        }
        // Rows of an object with members (a CDN content provider's): its members, on both sides
        // of the change. The object itself is created by admins (a new one has no members yet).
        Write::Members { path, through } => {
            if path.is_empty() && op != Op::Update {
                allowed = false;
            }
            let object = &end_of(model, path).name;
            for r in &rows {
                let id = follow(unit, r, path).await?;
                allowed &= is_member(unit, me, id, object, through).await?;
            }
        }
        // A user's own rows (tokens: made at /xoslib/tokens/, which shows the key once; never
        // changed, only revoked).
        Write::Owner { field, update } => {
            allowed = (*update || op != Op::Update) && rows.iter().all(|r| r.get_int(field) == Some(me))
        }
        // E.g. a node: the actor runs the nodes of its site and of its site deployment's site.
        Write::SiteRole {
            sites,
            roles,
            add_remove,
        } => {
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            allowed = op == Op::Update || *add_remove;
            for r in &rows {
                for path in sites {
                    let site = follow(unit, r, path).await?;
                    allowed &= has_site_role(unit, me, site, &roles).await?;
                }
            }
        }
    }
    if allowed { Ok(()) } else { Err(deny(&what)) }
}

/// Which privilege a check is about: site privileges (the actor is a PI or admin of the site and
/// grants roles ranked at or below its own there) or slice privileges (the actor manages the
/// slice: creator, PI or admin of its site, slice admin; it grants up to a manager's role).
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    Site,
    Slice,
}

/// Privileges of either scope: every state of the row (before and after) must be one the actor
/// may grant or remove, and a grant is never to the actor itself (a PI cannot make itself a
/// site admin, nor a user it controls one). Removing one's own privilege is allowed.
async fn check_privilege(
    unit: &mut Unit,
    me: i64,
    scope: Scope,
    op: Op,
    rows: &[&Record],
    after: &Record,
) -> Result<(), StoreError> {
    let (target, roles, rank, noun): (_, _, fn(&str) -> u8, _) = match scope {
        Scope::Site => ("site", "core_siterole", site_rank, "site"),
        Scope::Slice => ("slice", "core_slicerole", slice_rank, "slice"),
    };
    for r in rows {
        let my_rank = match scope {
            Scope::Site => {
                let mine = site_roles(unit, me, r.get_int(target)).await?;
                mine.iter().map(|r| site_rank(r)).max().unwrap_or(0)
            }
            Scope::Slice if can_manage_slice(unit, me, r.get_int(target)).await? => slice_rank("admin"),
            Scope::Slice => 0,
        };
        let manager = match scope {
            Scope::Site => site_rank("pi"),
            Scope::Slice => slice_rank("admin"),
        };
        if my_rank < manager {
            return Err(deny(&format!("manage the privileges of this {noun}")));
        }
        let role = role_name(unit, roles, r.get_int("role")).await?;
        if rank(&role) > my_rank {
            return Err(deny(&format!("grant or remove the {noun} role \"{role}\"")));
        }
    }
    if op != Op::Delete && after.get_int("user") == Some(me) {
        return Err(deny(&format!("grant yourself a {noun} role")));
    }
    Ok(())
}

/// The User rules of XOS (`User.can_update`), plus: only admins grant `is_admin` or touch an
/// admin; nobody touches a user holding a site role the actor lacks at that user's site; a
/// password change needs the old password (checked by the store's update before this runs).
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
    if after.opt(user::IS_ADMIN) == Some(true) && (op == Op::Create || changed.contains(&"is_admin")) {
        return Err(deny("make a user an admin"));
    }
    if op == Op::Update && changed.contains(&"password") && after.id() != me {
        return Err(deny("set another user's password"));
    }
    let home = before
        .map(|b| b.opt(user::SITE))
        .unwrap_or_else(|| after.opt(user::SITE));
    if op == Op::Create {
        return if has_site_role(unit, me, home, &["admin", "pi"]).await? {
            Ok(())
        } else {
            Err(deny(what))
        };
    }
    if after.id() == me {
        if op == Op::Delete {
            return Err(deny(what));
        }
        if let Some(f) = changed.iter().find(|n| SELF_PROTECTED_USER_FIELDS.contains(n)) {
            return Err(deny(&format!("change your own {f}")));
        }
        return Ok(());
    }
    // Another user: never an admin, never one who outranks the actor at their home site.
    let target = before.unwrap_or(after);
    if target.opt(user::IS_ADMIN) == Some(true) {
        return Err(deny(&format!(
            "{} an admin",
            if op == Op::Delete { "delete" } else { "change" }
        )));
    }
    // Every site role the target holds, anywhere: none may rank above what the actor holds at
    // that site (a PI of the home site does not lock out another site's admin who lives there).
    let everywhere = roles_everywhere(unit, target.id()).await?;
    for (site, role) in &everywhere {
        let mine_there = site_roles(unit, me, Some(*site)).await?;
        let my_rank = mine_there.iter().map(|r| site_rank(r)).max().unwrap_or(0);
        if site_rank(role) > my_rank {
            return Err(deny(&format!(
                "{} a user who holds the site role \"{role}\" at a site where you hold less",
                if op == Op::Delete { "delete" } else { "change" }
            )));
        }
    }
    let theirs: Vec<&String> = everywhere.iter().map(|(_, r)| r).collect();
    let mine = site_roles(unit, me, home).await?;
    if mine.iter().any(|r| r == "admin") {
        if op == Op::Update
            && changed.contains(&"site")
            && !has_site_role(unit, me, after.get_int("site"), &["admin"]).await?
        {
            return Err(deny("move a user to a site you do not run"));
        }
        return Ok(());
    }
    if mine.iter().any(|r| r == "pi") {
        if op == Op::Delete {
            return if theirs.is_empty() {
                Ok(())
            } else {
                Err(deny("delete a user who holds a site role"))
            };
        }
        if let Some(f) = changed.iter().find(|n| PI_PROTECTED_USER_FIELDS.contains(n)) {
            return Err(deny(&format!("change a user's {f}")));
        }
        if !theirs.is_empty()
            && let Some(f) = changed.iter().find(|n| PI_PROTECTED_PEER_FIELDS.contains(n))
        {
            return Err(deny(&format!("change the {f} of a user who holds a site role")));
        }
        return Ok(());
    }
    Err(deny(what))
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
    let ok = crate::password::verify_bounded(old, Some(hash)).await;
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
    let mut probe = Sql::new("SELECT 1 WHERE EXISTS ");
    match &model.access.write {
        Write::Admins => return Ok(false),
        Write::Owner { .. } => return Ok(true),
        Write::SiteRole {
            add_remove: false, ..
        } => return Ok(false),
        Write::SiteRole { roles, .. } => {
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            push_sites_with_role(&mut probe, Me::Id(me), &roles);
        }
        Write::Users | Write::Slices | Write::SitePrivileges => {
            push_sites_with_role(&mut probe, Me::Id(me), &["admin", "pi"])
        }
        Write::Slice { members: true, .. } => push_visible_slices(&mut probe, Me::Id(me)),
        Write::Members { path, .. } if path.is_empty() => return Ok(false),
        Write::Members { path, through } => {
            push_members(&mut probe, Me::Id(me), &end_of(model, path).name, through)
        }
        Write::Slice { members: false, .. } | Write::SlicePrivileges => {
            push_managed_slices(&mut probe, Me::Id(me))
        }
    }
    Ok(!unit.fetch(&probe, &[SqlType::Int]).await?.is_empty())
}
