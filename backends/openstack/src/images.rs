//! The OpenStack backend: images.

use super::*;

/// ControllerImages → a Glance image.
pub struct OsImages {
    pub(crate) backend: Arc<OsBackend>,
}

#[async_trait::async_trait]
impl Step for OsImages {
    fn name(&self) -> &'static str {
        "openstack_images"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["ControllerImages", "Image"]
    }
    fn observes(&self) -> &'static str {
        "ControllerImages"
    }
    fn concurrency(&self) -> usize {
        2
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        Ok(default_fetch_pending(&ctx.store, "ControllerImages", deletion, Some(openstack_links())).await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.opt(controller_images::CONTROLLER))
            .await?;
        let image = obj.req(controller_images::IMAGE)?;
        let r = rows(
            &ctx.store,
            &by_id(
                "SELECT name, disk_format, container_format, path FROM core_image WHERE id = ",
                image,
            ),
            &[SqlType::Text, SqlType::Text, SqlType::Text, SqlType::Text],
        )
        .await?;
        let Some(r) = r.first() else {
            return Err(SyncError::Failed("the image is gone".into()));
        };
        let (name, disk, container, path) = (text(&r[0]), text(&r[1]), text(&r[2]), text(&r[3]));
        let found: Vec<Image> = c
            .client
            .list_as(
                None,
                Service::Image,
                &format!("/images?name={}", q(&name)),
                "images",
            )
            .await
            .map_err(failed)?;
        if let Some(img) = found.iter().find(|i| i.status == "active") {
            let id = img.id.clone();
            return Ok(Enacted::with_status(format!("OK, Glance image {id}"))
                .field("glance_image_id", Value::Text(id)));
        }
        // One of ours left half-made (a crash during the upload): upload into it.
        let ours = found
            .iter()
            .find(|i| i.xos_image_id.as_deref() == Some(image.to_string().as_str()) && i.status == "queued");
        // Only a file of the image directory, of a bounded size, is ever sent to the cloud.
        let (file, len) = ctx
            .setting::<backend_kit::ImagesConfig>()
            .file(&ctx.state_dir, &path)
            .map_err(|e| SyncError::Failed(format!("no Glance image named {name}, and {e}")))?;
        let id = match ours {
            Some(i) => i.id.clone(),
            None => {
                let or = |v: String, d: &str| if v.trim().is_empty() { d.to_string() } else { v };
                let created: Image = c
                    .client
                    .post_as(
                        None,
                        Service::Image,
                        "/images",
                        // Shared, not public: the projects of the slices that boot it are
                        // made members (`server_spec`); nobody else sees it.
                        json!({"name": name, "disk_format": or(disk, "raw"), "container_format": or(container, "bare"),
                               "visibility": "shared", "xos_image_id": image.to_string()}),
                        // Glance answers with the image itself, not wrapped.
                        "",
                    )
                    .await
                    .map_err(failed)?;
                created.id
            }
        };
        c.client.upload_image(&id, &file, len).await.map_err(failed)?;
        Ok(Enacted::with_status(format!("OK, uploaded as Glance image {id}"))
            .field("glance_image_id", Value::Text(id)))
    }
    async fn delete_record(&self, _ctx: &StepContext, _obj: &Record) -> Result<(), SyncError> {
        // Images may be in use by servers XOS does not know (an adopted one): left in Glance.
        Ok(())
    }
}
