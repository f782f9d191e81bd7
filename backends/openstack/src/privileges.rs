//! The OpenStack backend: privileges.

use super::*;

/// SitePrivilege / SlicePrivilege → a role assignment of the user's Keystone account on the
/// site's or slice's project, on every OpenStack controller that has both (XOS's
/// ControllerSitePrivilege and ControllerSlicePrivilege). `admin` stays admin, other roles
/// become `member`; deleting the privilege removes the assignment.
pub struct OsPrivileges {
    pub(crate) backend: Arc<OsBackend>,
    /// "site" or "slice".
    pub(crate) kind: &'static str,
}

impl OsPrivileges {
    fn model(&self) -> &'static str {
        if self.kind == "site" {
            "SitePrivilege"
        } else {
            "SlicePrivilege"
        }
    }
    /// The id of the privilege's site or slice. (`user` and `role` are named alike in both
    /// models, so the slice privilege's names read either.)
    fn object(&self, obj: &Record) -> i64 {
        let field = if self.kind == "site" {
            site_privilege::SITE
        } else {
            slice_privilege::SLICE
        };
        obj.opt(field).unwrap_or_default()
    }
    /// The link table and column of the privilege's object.
    fn links(&self) -> (&'static str, &'static str) {
        if self.kind == "site" {
            ("core_controllersite", "site_id")
        } else {
            ("core_controllerslice", "slice_id")
        }
    }
    /// (controller, project, kuser) for the privilege's object and user on each OpenStack
    /// controller that has both (empty strings where not made yet).
    async fn targets(&self, store: &Store, obj: &Record) -> Result<Vec<(i64, String, String)>, StoreError> {
        let (links, col) = self.links();
        let mut sql = Sql::new(format!(
            "SELECT l.controller_id, l.tenant_id, cu.kuser_id FROM {links} l \
             JOIN core_controlleruser cu ON cu.controller_id = l.controller_id AND NOT cu.deleted \
             JOIN core_controller c ON c.id = l.controller_id AND NOT c.deleted AND c.backend_type = "
        ));
        sql.bind(Value::Text(BACKEND.into()));
        sql.push(&format!(" WHERE NOT l.deleted AND l.{col} = "))
            .bind(Value::Int(self.object(obj)));
        sql.push(" AND cu.user_id = ")
            .bind(Value::Int(obj.opt(slice_privilege::USER).unwrap_or_default()));
        Ok(rows(store, &sql, &[SqlType::Int, SqlType::Text, SqlType::Text])
            .await?
            .into_iter()
            .map(|r| (r[0].as_int().unwrap_or_default(), text(&r[1]), text(&r[2])))
            .collect())
    }
    async fn role(&self, store: &Store, obj: &Record) -> Result<&'static str, StoreError> {
        let table = if self.kind == "site" {
            "core_siterole"
        } else {
            "core_slicerole"
        };
        let r = rows(
            store,
            &by_id(
                &format!("SELECT role FROM {table} WHERE id = "),
                obj.opt(slice_privilege::ROLE).unwrap_or_default(),
            ),
            &[SqlType::Text],
        )
        .await?;
        Ok(keystone_role(&r.first().map(|r| text(&r[0])).unwrap_or_default()))
    }
}

#[async_trait::async_trait]
impl Step for OsPrivileges {
    fn name(&self) -> &'static str {
        if self.kind == "site" {
            "openstack_site_privileges"
        } else {
            "openstack_slice_privileges"
        }
    }
    fn provides(&self) -> Vec<&'static str> {
        vec![self.model()]
    }
    fn observes(&self) -> &'static str {
        self.model()
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        // Privileges of objects on an OpenStack controller only.
        let (links, col) = self.links();
        let mut extra = and_where(
            &format!(
                "t.{col} IN (SELECT l.{col} FROM {links} l JOIN core_controller c ON c.id = l.controller_id \
                 WHERE c.backend_type = "
            ),
            Value::Text(BACKEND.into()),
        );
        extra.push(")");
        Ok(default_fetch_pending(&ctx.store, self.model(), deletion, Some(extra)).await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let targets = self.targets(&ctx.store, obj).await?;
        let ready: Vec<_> = targets
            .iter()
            .filter(|(_, p, u)| !p.is_empty() && !u.is_empty())
            .collect();
        if ready.is_empty() {
            return Err(deferred(format!(
                "waiting for the {}'s project and the user's Keystone account",
                self.kind
            )));
        }
        let role = self.role(&ctx.store, obj).await?;
        for (controller, project, kuser) in &ready {
            let c = self
                .backend
                .controller_by_id(&ctx.store, Some(*controller))
                .await?;
            let id = c.client.role_id(role).await.map_err(failed)?;
            c.client.assign_role(project, kuser, &id).await.map_err(failed)?;
        }
        Ok(Enacted::with_status(format!(
            "OK, role {role} on {} project(s)",
            ready.len()
        )))
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let role = self.role(&ctx.store, obj).await?;
        for (controller, project, kuser) in self.targets(&ctx.store, obj).await? {
            if project.is_empty() || kuser.is_empty() {
                continue;
            }
            let c = self
                .backend
                .controller_by_id(&ctx.store, Some(controller))
                .await?;
            let id = c.client.role_id(role).await.map_err(failed)?;
            c.client
                .unassign_role(&project, &kuser, &id)
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}
