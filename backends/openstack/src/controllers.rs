//! The OpenStack backend: controllers.

use super::*;

/// Logs in to each OpenStack controller saved since its last check: a wrong password or an
/// unreachable Keystone is the Controller's status.
pub struct OsControllers {
    pub(crate) backend: Arc<OsBackend>,
}

#[async_trait::async_trait]
impl Step for OsControllers {
    fn name(&self) -> &'static str {
        "openstack_controllers"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Controller"]
    }
    fn observes(&self) -> &'static str {
        "Controller"
    }
    fn concurrency(&self) -> usize {
        1
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        if deletion {
            // The EC2 catalog step purges deleted controllers of every backend.
            return Ok(Vec::new());
        }
        Ok(OsBackend::controllers(&ctx.store)
            .await?
            .into_iter()
            .filter(|c| c.opt(common::ROW_VERSION) > c.opt(common::ENACTED_VERSION))
            .collect())
    }
    async fn sync_record(&self, _ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self.backend.controller(obj)?;
        c.client.login().await.map_err(failed)?;
        // The roles XOS hands out exist (made once, found afterwards).
        c.client.role_id(keystone_role("admin")).await.map_err(failed)?;
        c.client.role_id(keystone_role("access")).await.map_err(failed)?;
        Ok(Enacted::with_status(format!(
            "OK, logged in to {} as {}",
            c.client.auth_url(),
            obj.opt(controller::ADMIN_USER).unwrap_or_default()
        )))
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}
