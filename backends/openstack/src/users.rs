//! The OpenStack backend: users.

use super::*;

/// ControllerUser → a Keystone user (named by email) with the user's key pair.
pub struct OsUsers {
    pub(crate) backend: Arc<OsBackend>,
}

/// The Nova key pair name of XOS user `id`'s public key (the same on every cloud).
pub(crate) fn key_name(user: i64, public_key: &str) -> String {
    backend_kit::key_pair_name(user, public_key)
}

/// Make sure `user_id` (or the admin when None) has key pair `name` holding `key`.
pub(crate) async fn ensure_key_pair(
    cl: &OsClient,
    user_id: Option<&str>,
    name: &str,
    key: &str,
) -> Result<(), SyncError> {
    let suffix = user_id.map(|u| format!("?user_id={}", q(u))).unwrap_or_default();
    match cl
        .get(
            None,
            Service::Compute,
            &format!("/os-keypairs/{}{suffix}", seg(name)),
        )
        .await
    {
        Ok(_) => return Ok(()),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(failed(e)),
    }
    let mut kp = json!({"name": name, "public_key": key.trim()});
    if let Some(u) = user_id {
        kp["user_id"] = json!(u);
    }
    match cl
        .post(None, Service::Compute, "/os-keypairs", json!({"keypair": kp}))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(409) => Ok(()), // made meanwhile
        Err(e) => Err(failed(e)),
    }
}

#[async_trait::async_trait]
impl Step for OsUsers {
    fn name(&self) -> &'static str {
        "openstack_users"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["ControllerUser", "User"]
    }
    fn observes(&self) -> &'static str {
        "ControllerUser"
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        let mut pending =
            default_fetch_pending(&ctx.store, "ControllerUser", deletion, Some(openstack_links())).await?;
        if !deletion {
            // A user disabled (or enabled again) since its account was made: purge (or make) it.
            let model = ctx.store.model("ControllerUser");
            let mut sql = select_sql(model);
            sql.push(
                " JOIN core_user u ON u.id = t.user_id WHERE NOT t.deleted AND t.enacted_version > 0 \
                 AND ((t.kuser_id IS NOT NULL AND NOT u.is_active) OR (t.kuser_id IS NULL AND u.is_active))",
            );
            store::append_sql(&mut sql, &openstack_links());
            sql.push(" ORDER BY t.id");
            for values in ctx.store.db().fetch(&sql, &types(model)).await? {
                let r = Record { model, values };
                if !pending.iter().any(|p| p.id() == r.id()) {
                    pending.push(r);
                }
            }
        }
        Ok(pending)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.opt(controller_user::CONTROLLER))
            .await?;
        let user = obj.req(controller_user::USER)?;
        let r = rows(
            &ctx.store,
            &by_id(
                "SELECT email, is_active, public_key FROM core_user WHERE id = ",
                user,
            ),
            &[SqlType::Text, SqlType::Bool, SqlType::Text],
        )
        .await?;
        let Some(r) = r.first() else {
            return Err(SyncError::Failed("the user is gone".into()));
        };
        let (email, active, public_key) = (text(&r[0]), r[1].as_bool().unwrap_or(false), text(&r[2]));
        let marker = format!("xos user {user}");
        let found = c
            .client
            .list_as::<User>(
                None,
                Service::Identity,
                &format!("/users?name={}", q(&email)),
                "users",
            )
            .await
            .map_err(failed)?
            .into_iter()
            .next();
        if let Some(u) = &found
            && u.description != marker
        {
            return Err(SyncError::Failed(format!(
                "a Keystone user named {email} exists and was not made by XOS for this user"
            )));
        }
        if !active {
            // Disabled users are purged from the cloud (XOS's user purge).
            if let Some(u) = found {
                c.client
                    .delete(None, Service::Identity, &format!("/users/{}", seg(&u.id)))
                    .await
                    .map_err(failed)?;
            }
            return Ok(
                Enacted::with_status("OK, purged from Keystone: the user is disabled")
                    .field("kuser_id", Value::Null(SqlType::Text)),
            );
        }
        let kuser = match found {
            Some(u) => u.id,
            None => {
                let domain = c.client.domain_id().await.map_err(failed)?;
                // Users log in to XOS; the cloud account gets a random password nobody knows.
                let password = {
                    use rand::RngCore;
                    let mut bytes = [0u8; 24];
                    rand::thread_rng().fill_bytes(&mut bytes);
                    backend_kit::sha256_hex(&format!("{bytes:?}"))
                };
                let u: User = c
                    .client
                    .post_as(
                        None,
                        Service::Identity,
                        "/users",
                        json!({"user": {"name": email, "domain_id": domain, "description": marker,
                                        "email": email, "password": password, "enabled": true}}),
                        "user",
                    )
                    .await
                    .map_err(failed)?;
                u.id
            }
        };
        let mut status = format!("OK, Keystone user {email}");
        if !public_key.trim().is_empty() {
            let name = key_name(user, &public_key);
            ensure_key_pair(&c.client, Some(&kuser), &name, &public_key).await?;
            status.push_str(&format!(", key pair {name}"));
        }
        Ok(Enacted::with_status(status).field("kuser_id", Value::Text(kuser)))
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let c = self
            .backend
            .controller_by_id(&ctx.store, obj.opt(controller_user::CONTROLLER))
            .await?;
        if let Some(u) = obj.opt(controller_user::KUSER_ID).filter(|u| !u.is_empty()) {
            c.client
                .delete(None, Service::Identity, &format!("/users/{}", seg(u)))
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}
