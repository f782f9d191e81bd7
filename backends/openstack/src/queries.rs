//! The OpenStack backend: small database helpers (the rows and links its steps read).

use super::*;

/// Rows of a query.
pub(crate) async fn rows(store: &Store, sql: &Sql, types: &[SqlType]) -> Result<Vec<Vec<Value>>, StoreError> {
    Ok(store.db().fetch(sql, types).await?)
}

pub(crate) fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub(crate) fn opt_text(v: String) -> Value {
    if v.is_empty() {
        Value::Null(SqlType::Text)
    } else {
        Value::Text(v)
    }
}

/// `SELECT ... WHERE <col> = id` helper.
pub(crate) fn by_id(select: &str, id: i64) -> Sql {
    let mut sql = Sql::new(select);
    sql.bind(Value::Int(id));
    sql
}

/// Link rows (ControllerX) whose controller is an OpenStack one.
pub(crate) fn openstack_links() -> Sql {
    let mut extra = and_where(
        "t.controller_id IN (SELECT id FROM core_controller WHERE backend_type = ",
        Value::Text(BACKEND.into()),
    );
    extra.push(")");
    extra
}

/// Instances (and ports of instances) on deployments with an OpenStack controller.
pub(crate) fn openstack_instances(column: &str) -> Sql {
    let mut extra = and_where(
        &format!(
            "{column} IN (SELECT i.id FROM core_instance i WHERE i.deployment_id IN \
             (SELECT deployment_id FROM core_controller WHERE NOT deleted AND backend_type = "
        ),
        Value::Text(BACKEND.into()),
    );
    extra.push("))");
    extra
}

/// The Keystone project of slice `slice` on controller `controller`, if made yet.
pub(crate) async fn slice_project(
    store: &Store,
    slice: i64,
    controller: i64,
) -> Result<Option<String>, StoreError> {
    project_of_slice(store, slice, controller, false).await
}

/// [`slice_project`], or with `even_deleted` also the project of a slice row being deleted
/// (the clean-up of what the slice had still runs inside its project).
pub(crate) async fn project_of_slice(
    store: &Store,
    slice: i64,
    controller: i64,
    even_deleted: bool,
) -> Result<Option<String>, StoreError> {
    let live = if even_deleted { "" } else { "NOT deleted AND " };
    let mut sql = by_id(
        &format!("SELECT tenant_id FROM core_controllerslice WHERE {live}slice_id = "),
        slice,
    );
    sql.push(" AND controller_id = ").bind(Value::Int(controller));
    sql.push(" ORDER BY deleted, id DESC");
    Ok(rows(store, &sql, &[SqlType::Text])
        .await?
        .first()
        .map(|r| text(&r[0]))
        .filter(|t| !t.is_empty()))
}

/// The role name in OpenStack of an XOS role: a slice or site `admin` is the project's
/// `manager` (a role without cloud-wide powers: Keystone's `admin` is cloud-wide under the
/// legacy policies many clouds still run), every other role a `member`. Never `admin`.
pub fn keystone_role(xos_role: &str) -> &'static str {
    if xos_role == "admin" { "manager" } else { "member" }
}

/// Row `id` of `model` as the synchronizer sees it (None when it is gone).
pub(crate) async fn load_record(
    store: &Store,
    model: &'static Model,
    id: i64,
) -> Result<Option<Record>, StoreError> {
    let mut sql = select_sql(model);
    sql.push(" WHERE t.id = ").bind(Value::Int(id));
    Ok(store
        .db()
        .fetch(&sql, &types(model))
        .await?
        .into_iter()
        .next()
        .map(|values| Record { model, values }))
}

/// Write what a drift repair enacted, as the engine would after a sync: the status, the backend
/// fields, enacted as of the row's version.
pub(crate) async fn record_enacted(store: &Store, rec: &Record, enacted: Enacted) -> Result<(), StoreError> {
    let update = store::StatusUpdate {
        backend_status: Some(BackendStatus::ok(enacted.status.as_deref())),
        enacted_version: rec.opt(common::ROW_VERSION),
        fields: enacted.fields,
        ..Default::default()
    };
    let mut unit = store.begin(Actor::System).await?;
    unit.set_status(rec.model, rec.id(), &update).await?;
    unit.commit().await?;
    Ok(())
}
