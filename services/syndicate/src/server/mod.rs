//! Syndicate storage's synchronizer steps, on Garage.
//!
//! - A `Volume` is a bucket with the global alias `xos-volume-<id>` (a rename changes nothing),
//!   its quotas, and its owner's key with read, write and owner.
//! - A principal (a user, a slice) is one Garage key named `xos-user-<id>` / `xos-slice-<id>`.
//! - A `VolumeAccessRight` gives the user's key read and/or write from its caps; a
//!   `VolumeSlice` gives the slice's key the same. `archive` takes write from everyone but the
//!   owner. Deleting either revokes, and a key left with no bucket is deleted.
//! - Deleting a volume empties and deletes its bucket.
//!
//! Every step looks up before it creates (the bucket by its alias, a key by its name), so a
//! crash between a Garage call and the row's write leaves one bucket and one key per row; an
//! unreachable Garage defers. The slice's credentials (endpoint, region, key, secret, buckets
//! with their caps) are written to `<state_dir>/slices/<slice id>/syndicate/credentials.json`,
//! readable by its owner only.

pub mod garage;
mod probe;
pub use probe::run as probe;

use crate::fields::{slice_secret, volume, volume_access_right, volume_slice};
pub use backend_kit::Drift;
use garage::{Garage, GarageConfig, GarageError, Perm, Quotas};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use store::db::Value;
use store::{Actor, Record, Store, select_sql, types};
use synchronizer::{Enacted, Step, StepContext, SyncError};
use tokio::sync::Mutex;

/// The global alias of a volume's bucket (`<prefix>-volume-<id>`).
pub fn bucket_alias(prefix: &str, volume: i64) -> String {
    format!("{prefix}-volume-{volume}")
}

/// The service's settings (`StepContext::setting`): where the local node keeps its admin token
/// (`~/.cache/xos/garage-node`, as `make garage` starts it; `XOS_GARAGE_ADMIN_TOKEN_FILE` wins),
/// and the prefix of every bucket alias and key name XOS makes, so that several XOS
/// deployments (or test runs) can share one Garage cluster without meeting.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: std::path::PathBuf,
    pub prefix: String,
    /// What to do with a bucket or key deleted or changed outside XOS (`XOS_GARAGE_DRIFT`:
    /// `recreate`, the default, or `report`), the same setting as the clouds' `drift`.
    pub drift: Drift,
    /// How often the drift steps compare Garage with the model (`XOS_GARAGE_DRIFT_SECS`, 30).
    pub drift_interval: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        let drift = match std::env::var("XOS_GARAGE_DRIFT").as_deref() {
            Ok("report") => Drift::Report,
            _ => Drift::Recreate,
        };
        let secs = std::env::var("XOS_GARAGE_DRIFT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30);
        Settings {
            data_dir: std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/xos/garage-node"))
                .unwrap_or_else(|| std::path::PathBuf::from("data/garage")),
            prefix: std::env::var("XOS_GARAGE_PREFIX").unwrap_or_else(|_| "xos".into()),
            drift,
            drift_interval: Duration::from_secs(secs),
        }
    }
}

/// Whose key: a user or a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    User(i64),
    Slice(i64),
}

impl Principal {
    /// The Garage key's name (XOS makes keys with these names only).
    pub fn key_name(self, prefix: &str) -> String {
        match self {
            Principal::User(id) => format!("{prefix}-user-{id}"),
            Principal::Slice(id) => format!("{prefix}-slice-{id}"),
        }
    }
}

/// What the steps share: the Garage client (made on first use, so a missing Garage defers the
/// steps instead of failing the synchronizer's start), and one lock around key creation, so two
/// steps never make two keys for one principal.
pub struct Syndicate {
    settings: Settings,
    garage: Mutex<Option<Garage>>,
    keys: Mutex<()>,
}

impl Syndicate {
    pub fn new(settings: Settings) -> Arc<Syndicate> {
        Arc::new(Syndicate {
            settings,
            garage: Mutex::new(None),
            keys: Mutex::new(()),
        })
    }

    fn alias(&self, volume: i64) -> String {
        bucket_alias(&self.settings.prefix, volume)
    }

    fn key_name(&self, who: Principal) -> String {
        who.key_name(&self.settings.prefix)
    }

    /// The cluster's client; an error defers (Garage not set up yet).
    pub async fn garage(&self) -> Result<Garage, SyncError> {
        let mut g = self.garage.lock().await;
        if let Some(g) = g.as_ref() {
            return Ok(g.clone());
        }
        let client = GarageConfig::from_env(&self.settings.data_dir)
            .and_then(Garage::new)
            .map_err(|e| SyncError::Deferred(e.to_string()))?;
        *g = Some(client.clone());
        Ok(client)
    }

    /// The principal's key: the recorded one if Garage still has it, else the one named for it
    /// (the oldest, when a crash left two), else a new one.
    pub async fn key_of(
        &self,
        g: &Garage,
        who: Principal,
        recorded: Option<&str>,
    ) -> Result<String, SyncError> {
        let _one = self.keys.lock().await;
        if let Some(id) = recorded.filter(|id| !id.is_empty())
            && g.key(id).await.map_err(err)?.is_some()
        {
            return Ok(id.to_string());
        }
        let name = self.key_name(who);
        let mut named: Vec<_> = g
            .keys()
            .await
            .map_err(err)?
            .into_iter()
            .filter(|k| k.name == name)
            .collect();
        named.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        if let Some(first) = named.first() {
            for extra in &named[1..] {
                tracing::info!(key = %extra.id, %name, "deleting a second key of one principal");
                g.delete_key(&extra.id).await.map_err(err)?;
            }
            return Ok(first.id.clone());
        }
        Ok(g.create_key(&name).await.map_err(err)?.access_key_id)
    }

    /// Delete the principal's key when it has no bucket left.
    pub async fn drop_key_if_unused(&self, g: &Garage, key: &str) -> Result<(), SyncError> {
        let _one = self.keys.lock().await;
        if let Some(k) = g.key(key).await.map_err(err)?
            && k.name.starts_with(&format!("{}-", self.settings.prefix))
            && k.buckets.iter().all(|b| b.permissions == Perm::default())
        {
            g.delete_key(key).await.map_err(err)?;
        }
        Ok(())
    }

    /// The volume's bucket: the recorded one, else the one with its alias, else a new one.
    pub async fn bucket_of(
        &self,
        g: &Garage,
        vol: i64,
        recorded: Option<&str>,
    ) -> Result<garage::Bucket, SyncError> {
        if let Some(id) = recorded.filter(|id| !id.is_empty())
            && let Some(b) = g.bucket(id).await.map_err(err)?
        {
            return Ok(b);
        }
        let alias = self.alias(vol);
        if let Some(b) = g.bucket_by_alias(&alias).await.map_err(err)? {
            return Ok(b);
        }
        match g.create_bucket(&alias).await {
            Ok(b) => Ok(b),
            // Made by another pass between the lookup and here.
            Err(GarageError::Api { status: 409, .. }) => g
                .bucket_by_alias(&alias)
                .await
                .map_err(err)?
                .ok_or_else(|| SyncError::Deferred(format!("bucket {alias} is being made"))),
            Err(e) => Err(err(e)),
        }
    }
}

/// A Garage error as the engine takes it: unreachable defers, the rest fails.
fn err(e: GarageError) -> SyncError {
    if e.is_unreachable() {
        SyncError::Deferred(e.to_string())
    } else {
        SyncError::Failed(e.to_string())
    }
}

/// A volume's row as the other steps need it.
struct VolumeRow {
    id: i64,
    owner: i64,
    archive: bool,
    bucket_id: Option<String>,
}

async fn volume_row(store: &Store, id: i64) -> Result<Option<VolumeRow>, SyncError> {
    let model = store.model("Volume");
    match store.get(&Actor::System, model, id).await {
        Ok(r) => Ok(Some(VolumeRow {
            id,
            owner: r.req(volume::OWNER_ID)?,
            archive: r.opt(volume::ARCHIVE).unwrap_or(false),
            bucket_id: r.opt(volume::BUCKET_ID).map(str::to_string),
        })),
        Err(store::StoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The permissions caps give: read, and write unless the volume is an archive (the owner's
/// own key keeps everything).
fn perm_from_caps(read: bool, write: bool, vol: &VolumeRow, who: Principal) -> Perm {
    if who == Principal::User(vol.owner) {
        return Perm {
            read: true,
            write: true,
            owner: true,
        };
    }
    Perm {
        read,
        write: write && !vol.archive,
        owner: false,
    }
}

fn user_of(r: &Record) -> Result<Principal, SyncError> {
    Ok(Principal::User(r.req(volume_access_right::OWNER_ID)?))
}

fn slice_of(r: &Record) -> Result<Principal, SyncError> {
    Ok(Principal::Slice(r.req(volume_slice::SLICE_ID)?))
}

/// Volume → bucket, quotas, owner key.
pub struct Volumes(pub Arc<Syndicate>);

#[async_trait::async_trait]
impl Step for Volumes {
    fn name(&self) -> &'static str {
        "syndicate_volumes"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["Volume"]
    }
    fn observes(&self) -> &'static str {
        "Volume"
    }
    fn concurrency(&self) -> usize {
        4
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let g = self.0.garage().await?;
        let id = obj.id();
        let owner = obj.req(volume::OWNER_ID)?;
        let bucket = self.0.bucket_of(&g, id, obj.opt(volume::BUCKET_ID)).await?;
        let quotas = Quotas {
            max_size: obj.opt(volume::MAX_SIZE_BYTES).map(|v| v as u64),
            max_objects: obj.opt(volume::MAX_OBJECTS).map(|v| v as u64),
        };
        let bucket = if bucket.quotas != quotas {
            g.set_quotas(&bucket.id, &quotas).await.map_err(err)?
        } else {
            bucket
        };
        let key = self
            .0
            .key_of(&g, Principal::User(owner), obj.opt(volume::OWNER_KEY_ID))
            .await?;
        g.set_perm(
            &bucket.id,
            &key,
            Perm {
                read: true,
                write: true,
                owner: true,
            },
        )
        .await
        .map_err(err)?;
        // The rights on it follow the volume (`archive` takes write away, or gives it back).
        let vol = VolumeRow {
            id,
            owner,
            archive: obj.opt(volume::ARCHIVE).unwrap_or(false),
            bucket_id: Some(bucket.id.clone()),
        };
        for (model, fk, who_of) in [
            (
                "VolumeAccessRight",
                "volume",
                user_of as fn(&Record) -> Result<Principal, SyncError>,
            ),
            ("VolumeSlice", "volume_id", slice_of),
        ] {
            let rows = ctx
                .store
                .find(&Actor::System, ctx.store.model(model), fk, Value::Int(id))
                .await?;
            for r in rows {
                let Some(k) = r.opt(volume_slice::KEY_ID).filter(|k| !k.is_empty()) else {
                    continue; // not enacted yet: its own step grants
                };
                let perm = perm_from_caps(
                    r.opt(volume_slice::CAP_READ_DATA).unwrap_or(false),
                    r.opt(volume_slice::CAP_WRITE_DATA).unwrap_or(false),
                    &vol,
                    who_of(&r)?,
                );
                g.set_perm(&bucket.id, k, perm).await.map_err(err)?;
            }
        }
        Ok(Enacted::with_status(format!(
            "OK, bucket {} ({} objects, {} bytes)",
            self.0.alias(id),
            bucket.objects,
            bucket.bytes
        ))
        .field("bucket_id", Value::Text(bucket.id.clone()))
        .field("owner_key_id", Value::Text(key))
        .field("object_count", Value::Int(bucket.objects))
        .field("size_bytes", Value::Int(bucket.bytes)))
    }
    async fn delete_record(&self, _ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let g = self.0.garage().await?;
        let id = obj.id();
        let bucket = match obj.opt(volume::BUCKET_ID).filter(|b| !b.is_empty()) {
            Some(b) => g.bucket(b).await.map_err(err)?,
            None => None,
        };
        let bucket = match bucket {
            Some(b) => Some(b),
            None => g.bucket_by_alias(&self.0.alias(id)).await.map_err(err)?,
        };
        let Some(bucket) = bucket else {
            return Ok(()); // never made, or already gone
        };
        // Empty it with the owner's key (a key that may write), then delete it.
        let owner_key = self
            .0
            .key_of(
                &g,
                Principal::User(obj.req(volume::OWNER_ID)?),
                obj.opt(volume::OWNER_KEY_ID),
            )
            .await?;
        g.set_perm(
            &bucket.id,
            &owner_key,
            Perm {
                read: true,
                write: true,
                owner: true,
            },
        )
        .await
        .map_err(err)?;
        let secret = g
            .key(&owner_key)
            .await
            .map_err(err)?
            .and_then(|k| k.secret_access_key)
            .ok_or_else(|| {
                SyncError::Failed(format!(
                    "the owner key {owner_key} has no secret to empty the bucket with"
                ))
            })?;
        let s3 = g.s3(&owner_key, &secret);
        let alias = self.0.alias(id);
        loop {
            let names = s3.list(&alias).await.map_err(err)?;
            if names.is_empty() {
                break;
            }
            for name in names {
                let a = s3.delete(&alias, &name).await.map_err(err)?;
                if !(200..300).contains(&a.status) {
                    return Err(SyncError::Failed(format!(
                        "cannot delete {name} from {alias}: HTTP {}",
                        a.status
                    )));
                }
            }
        }
        let keys: Vec<String> = bucket.keys.iter().map(|k| k.access_key_id.clone()).collect();
        g.delete_bucket(&bucket.id).await.map_err(err)?;
        for key in keys {
            self.0.drop_key_if_unused(&g, &key).await?;
        }
        Ok(())
    }
}

/// VolumeAccessRight → the user's key on the volume's bucket.
pub struct AccessRights(pub Arc<Syndicate>);

#[async_trait::async_trait]
impl Step for AccessRights {
    fn name(&self) -> &'static str {
        "syndicate_access_rights"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["VolumeAccessRight"]
    }
    fn observes(&self) -> &'static str {
        "VolumeAccessRight"
    }
    fn concurrency(&self) -> usize {
        4
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let vol_id = obj.req(volume_access_right::VOLUME)?;
        let who = Principal::User(obj.req(volume_access_right::OWNER_ID)?);
        grant(
            &self.0,
            &ctx.store,
            vol_id,
            who,
            obj.opt(volume_access_right::KEY_ID),
            obj.opt(volume_access_right::CAP_READ_DATA).unwrap_or(false),
            obj.opt(volume_access_right::CAP_WRITE_DATA).unwrap_or(false),
        )
        .await
        .map(|(enacted, _)| enacted)
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let who = Principal::User(obj.req(volume_access_right::OWNER_ID)?);
        revoke(
            &self.0,
            &ctx.store,
            obj.req(volume_access_right::VOLUME)?,
            who,
            obj.opt(volume_access_right::KEY_ID),
        )
        .await
    }
}

/// VolumeSlice → the slice's key on the volume's bucket, and the slice's credentials file.
pub struct VolumeSlices(pub Arc<Syndicate>);

#[async_trait::async_trait]
impl Step for VolumeSlices {
    fn name(&self) -> &'static str {
        "syndicate_volume_slices"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["VolumeSlice"]
    }
    fn observes(&self) -> &'static str {
        "VolumeSlice"
    }
    fn concurrency(&self) -> usize {
        4
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let slice = obj.req(volume_slice::SLICE_ID)?;
        let (enacted, key) = grant(
            &self.0,
            &ctx.store,
            obj.req(volume_slice::VOLUME_ID)?,
            Principal::Slice(slice),
            obj.opt(volume_slice::KEY_ID),
            obj.opt(volume_slice::CAP_READ_DATA).unwrap_or(false),
            obj.opt(volume_slice::CAP_WRITE_DATA).unwrap_or(false),
        )
        .await?;
        let path = write_credentials(&self.0, ctx, slice, &key, Some(obj)).await?;
        ensure_slice_secret(&self.0, ctx, slice).await?;
        Ok(enacted.field("credentials_blob", Value::Text(path)))
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        let slice = obj.req(volume_slice::SLICE_ID)?;
        revoke(
            &self.0,
            &ctx.store,
            obj.req(volume_slice::VOLUME_ID)?,
            Principal::Slice(slice),
            obj.opt(volume_slice::KEY_ID),
        )
        .await?;
        let key = obj.opt(volume_slice::KEY_ID).unwrap_or_default().to_string();
        write_credentials(&self.0, ctx, slice, &key, None).await?;
        Ok(())
    }
}

/// Give `who` the caps on the volume's bucket; the row's status and fields, and the key.
async fn grant(
    s: &Syndicate,
    store: &Store,
    vol_id: i64,
    who: Principal,
    recorded: Option<&str>,
    read: bool,
    write: bool,
) -> Result<(Enacted, String), SyncError> {
    let vol = volume_row(store, vol_id)
        .await?
        .ok_or_else(|| SyncError::Deferred("waiting for the volume".into()))?;
    let Some(bucket) = vol.bucket_id.clone().filter(|b| !b.is_empty()) else {
        return Err(SyncError::Deferred(format!(
            "waiting for volume {vol_id}'s bucket"
        )));
    };
    let g = s.garage().await?;
    let key = s.key_of(&g, who, recorded).await?;
    let perm = perm_from_caps(read, write, &vol, who);
    g.set_perm(&bucket, &key, perm).await.map_err(|e| {
        if e.is_not_found() {
            SyncError::Deferred(format!("volume {}'s bucket is being made again", vol.id))
        } else {
            err(e)
        }
    })?;
    let what = match (perm.read, perm.write) {
        (true, true) => "read and write",
        (true, false) => "read",
        (false, true) => "write",
        (false, false) => "no access",
    };
    Ok((
        Enacted::with_status(format!("OK, {what} on {}", s.alias(vol_id)))
            .field("key_id", Value::Text(key.clone())),
        key,
    ))
}

/// Take `who`'s permissions on the volume's bucket away (the owner keeps its own), and its key
/// when no bucket is left to it.
async fn revoke(
    s: &Syndicate,
    store: &Store,
    vol_id: i64,
    who: Principal,
    recorded: Option<&str>,
) -> Result<(), SyncError> {
    let g = s.garage().await?;
    let key = match recorded.filter(|k| !k.is_empty()) {
        Some(k) => k.to_string(),
        None => match g
            .keys()
            .await
            .map_err(err)?
            .into_iter()
            .find(|k| k.name == s.key_name(who))
        {
            Some(k) => k.id,
            None => return Ok(()), // never made
        },
    };
    let vol = volume_row(store, vol_id).await?;
    if vol.as_ref().is_some_and(|v| who == Principal::User(v.owner)) {
        return Ok(());
    }
    let bucket = match vol.and_then(|v| v.bucket_id).filter(|b| !b.is_empty()) {
        Some(b) => Some(b),
        None => g
            .bucket_by_alias(&s.alias(vol_id))
            .await
            .map_err(err)?
            .map(|b| b.id),
    };
    if let Some(bucket) = bucket {
        match g.set_perm(&bucket, &key, Perm::default()).await {
            Err(e) if e.is_not_found() => {}
            r => r.map_err(err)?,
        }
    }
    s.drop_key_if_unused(&g, &key).await
}

/// Write the slice's credentials: every volume delivered to it with its caps, the key and its
/// secret. `changed`: the volume-slice being enacted (its row is not marked enacted yet); None
/// when one is being deleted. Returns the file's path.
async fn write_credentials(
    s: &Syndicate,
    ctx: &StepContext,
    slice: i64,
    key: &str,
    changed: Option<&Record>,
) -> Result<String, SyncError> {
    let g = s.garage().await?;
    let model = ctx.store.model("VolumeSlice");
    let rows = ctx
        .store
        .find(&Actor::System, model, "slice_id", Value::Int(slice))
        .await?;
    let secret = if key.is_empty() {
        None
    } else {
        g.key(key).await.map_err(err)?.and_then(|k| k.secret_access_key)
    };
    let mut volumes = Vec::new();
    if secret.is_some() {
        for r in &rows {
            let vol_id = r.req(volume_slice::VOLUME_ID)?;
            let Some(vol) = volume_row(&ctx.store, vol_id).await? else {
                continue;
            };
            let perm = perm_from_caps(
                r.opt(volume_slice::CAP_READ_DATA).unwrap_or(false),
                r.opt(volume_slice::CAP_WRITE_DATA).unwrap_or(false),
                &vol,
                Principal::Slice(slice),
            );
            let enacted = changed.is_some_and(|c| c.id() == r.id()) || r.opt(volume_slice::KEY_ID).is_some();
            if enacted {
                volumes.push(serde_json::json!({
                    "volume": vol_id,
                    "bucket": s.alias(vol_id),
                    "read": perm.read,
                    "write": perm.write,
                }));
            }
        }
    }
    let dir = slice_dir(&ctx.state_dir, slice);
    let path = dir.join("credentials.json");
    let doc = serde_json::json!({
        "endpoint": g.config.s3_url,
        "region": g.config.region,
        "access_key_id": if volumes.is_empty() { "" } else { key },
        "secret_access_key": if volumes.is_empty() { "" } else { secret.as_deref().unwrap_or_default() },
        "volumes": volumes,
    });
    // Readable by the user the local backend runs the slice's instances as (when XOS runs as
    // root), and by no one else.
    let owner =
        backend_local::run_as(&ctx.setting::<backend_local::LocalBackendConfig>())?.map(|u| (u.uid, u.gid));
    write_private(
        &dir,
        &path,
        &serde_json::to_vec_pretty(&doc).unwrap_or_default(),
        owner,
    )
    .map_err(|e| SyncError::Failed(format!("cannot write {}: {e}", path.display())))?;
    Ok(path.display().to_string())
}

/// The slice's secret (XOS's `SliceSecret`, made with the slice's first volume): what its
/// instances prove themselves with to fetch the credentials from `/services/syndicate_storage/
/// slices/<id>/credentials`. It is also written next to the credentials (`secret`, readable by
/// the instances' user only), where local instances find it.
async fn ensure_slice_secret(s: &Syndicate, ctx: &StepContext, slice: i64) -> Result<(), SyncError> {
    let _one = s.keys.lock().await;
    let model = ctx.store.model("SliceSecret");
    let rows = ctx
        .store
        .find(&Actor::System, model, "slice_id", Value::Int(slice))
        .await?;
    let secret = match rows
        .first()
        .and_then(|r| r.opt(slice_secret::SECRET))
        .filter(|v| !v.is_empty())
    {
        Some(v) => v.to_string(),
        None => {
            let secret = random_secret();
            let mut input = serde_json::Map::new();
            input.insert("secret".into(), serde_json::json!(secret));
            match rows.first() {
                Some(r) => {
                    ctx.store
                        .update(Actor::System, model, r.id(), &input, true)
                        .await?;
                }
                None => {
                    input.insert("slice_id".into(), serde_json::json!(slice));
                    ctx.store.create(Actor::System, model, &input).await?;
                }
            }
            secret
        }
    };
    let dir = slice_dir(&ctx.state_dir, slice);
    let owner =
        backend_local::run_as(&ctx.setting::<backend_local::LocalBackendConfig>())?.map(|u| (u.uid, u.gid));
    write_private(&dir, &dir.join("secret"), secret.as_bytes(), owner)
        .map_err(|e| SyncError::Failed(format!("cannot write the slice's secret: {e}")))
}

/// 32 random bytes, hex.
fn random_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET slices/<id>/credentials` with `Authorization: Bearer <the slice's secret>`: the slice's
/// credentials (as in its credentials file). No secret: 401; a wrong one, or a slice without
/// one: 403 (the same answer, so a caller learns nothing about which slices exist). The
/// secret is compared in constant time and never returned.
pub async fn endpoint(
    store: &Store,
    state_dir: &std::path::Path,
    req: &xos_service::EndpointRequest,
) -> Option<xos_service::EndpointAnswer> {
    use xos_service::EndpointAnswer;
    let rest = req.path.strip_prefix("slices/")?;
    let (id, what) = rest.split_once('/')?;
    let slice: i64 = id.parse().ok()?;
    if what != "credentials" || req.method != "GET" {
        return None;
    }
    let Some(given) = req
        .authorization
        .as_deref()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Some(EndpointAnswer::json(
            401,
            &serde_json::json!({"detail": "Send the slice's secret: Authorization: Bearer <secret>."}),
        ));
    };
    let forbidden = || EndpointAnswer::json(403, &serde_json::json!({"detail": "Not the slice's secret."}));
    let rows = match store
        .find(
            &Actor::System,
            store.model("SliceSecret"),
            "slice_id",
            Value::Int(slice),
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the slice's secret");
            return Some(EndpointAnswer::json(
                503,
                &serde_json::json!({"detail": "Try again."}),
            ));
        }
    };
    let known = rows
        .first()
        .and_then(|r| r.opt(slice_secret::SECRET))
        .filter(|v| !v.is_empty());
    let matches = known.is_some_and(|k| {
        use subtle::ConstantTimeEq;
        k.len() == given.len() && bool::from(k.as_bytes().ct_eq(given.as_bytes()))
    });
    if !matches {
        return Some(forbidden());
    }
    let path = slice_dir(state_dir, slice).join("credentials.json");
    match std::fs::read(&path) {
        Ok(body) => Some(EndpointAnswer {
            status: 200,
            content_type: "application/json",
            body,
        }),
        Err(_) => Some(EndpointAnswer::json(
            404,
            &serde_json::json!({"detail": "No volume has been delivered to the slice yet."}),
        )),
    }
}

/// Where a slice's credentials go: `syndicate/` in the slice's directory, which the local
/// backend gives its instances as `XOS_SLICE_DIR`.
pub fn slice_dir(state_dir: &std::path::Path, slice: i64) -> std::path::PathBuf {
    state_dir.join("slices").join(slice.to_string()).join("syndicate")
}

/// Write a file readable by its owner only (`owner`: uid and gid to give it and its
/// directory), aside and renamed (no reader sees half of it).
fn write_private(
    dir: &std::path::Path,
    path: &std::path::Path,
    bytes: &[u8],
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    // The slices' directories may be passed through (the local backend's workloads run as
    // another user), the credentials' own is its owner's alone.
    if let Some(slice) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(slice)?;
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
    }
    let aside = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&aside, Some(uid), Some(gid))?;
    }
    std::fs::rename(&aside, path)
}

/// The Tenant view's "Data Sets": the volumes that are not private, that `reader` may see
/// (ids and names, in id order).
pub async fn public_volumes(store: &Store, reader: &Actor) -> Vec<(&'static str, serde_json::Value)> {
    let rows = match store
        .find(reader, store.model("Volume"), "private", Value::Bool(false))
        .await
    {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the public volumes");
            return Vec::new();
        }
    };
    let ids: Vec<i64> = rows.iter().map(Record::id).collect();
    let names: Vec<String> = rows
        .iter()
        .map(|r| r.opt(volume::NAME).unwrap_or_default().to_string())
        .collect();
    vec![
        ("public_volumes", serde_json::json!(ids)),
        ("public_volume_names", serde_json::json!(names)),
    ]
}

/// The rows a drift step checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Volume,
    Right,
    Slice,
}

/// Drift (external, on an interval): the enacted rows of one model whose bucket, key or
/// permissions Garage no longer has as the model says (deleted or changed outside XOS) are
/// enacted again by their own step (`recreate`: a new key, the old one's credentials stop
/// working) or reported once (`report`).
pub struct StorageDrift {
    s: Arc<Syndicate>,
    kind: Kind,
    repair: Arc<dyn Step>,
    /// (row, version) already reported, so a report is made once.
    reported: std::sync::Mutex<HashSet<(i64, i64)>>,
    /// What the last fetch found differing, by row (sync_record says it without asking Garage
    /// again).
    found: std::sync::Mutex<std::collections::HashMap<i64, String>>,
}

impl StorageDrift {
    /// What differs for one enacted row, or None.
    async fn differs(&self, g: &Garage, store: &Store, r: &Record) -> Result<Option<String>, SyncError> {
        let (vol_id, who, read, write, key) = match self.kind {
            Kind::Volume => {
                let Some(bucket) = (match r.opt(volume::BUCKET_ID) {
                    Some(b) => g.bucket(b).await.map_err(err)?,
                    None => None,
                }) else {
                    return Ok(Some("its bucket was deleted outside XOS".into()));
                };
                let quotas = Quotas {
                    max_size: r.opt(volume::MAX_SIZE_BYTES).map(|v| v as u64),
                    max_objects: r.opt(volume::MAX_OBJECTS).map(|v| v as u64),
                };
                if bucket.quotas != quotas {
                    return Ok(Some("its quotas were changed outside XOS".into()));
                }
                let owner = r.opt(volume::OWNER_KEY_ID).unwrap_or_default();
                let full = Perm {
                    read: true,
                    write: true,
                    owner: true,
                };
                if !bucket
                    .keys
                    .iter()
                    .any(|k| k.access_key_id == owner && k.permissions == full)
                {
                    return Ok(Some("its owner's key lost its permissions outside XOS".into()));
                }
                return Ok(None);
            }
            Kind::Right => (
                r.req(volume_access_right::VOLUME)?,
                user_of(r)?,
                r.opt(volume_access_right::CAP_READ_DATA).unwrap_or(false),
                r.opt(volume_access_right::CAP_WRITE_DATA).unwrap_or(false),
                r.opt(volume_access_right::KEY_ID).unwrap_or_default(),
            ),
            Kind::Slice => (
                r.req(volume_slice::VOLUME_ID)?,
                slice_of(r)?,
                r.opt(volume_slice::CAP_READ_DATA).unwrap_or(false),
                r.opt(volume_slice::CAP_WRITE_DATA).unwrap_or(false),
                r.opt(volume_slice::KEY_ID).unwrap_or_default(),
            ),
        };
        let Some(vol) = volume_row(store, vol_id).await? else {
            return Ok(None);
        };
        let Some(k) = g.key(key).await.map_err(err)? else {
            return Ok(Some("its key was deleted outside XOS".into()));
        };
        let want = perm_from_caps(read, write, &vol, who);
        let has = k
            .buckets
            .iter()
            .find(|b| Some(&b.id) == vol.bucket_id.as_ref())
            .map(|b| b.permissions)
            .unwrap_or_default();
        Ok((has != want).then(|| "its key's permissions were changed outside XOS".into()))
    }
}

#[async_trait::async_trait]
impl Step for StorageDrift {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Volume => "syndicate_volume_drift",
            Kind::Right => "syndicate_access_right_drift",
            Kind::Slice => "syndicate_volume_slice_drift",
        }
    }
    fn provides(&self) -> Vec<&'static str> {
        self.repair.provides()
    }
    fn observes(&self) -> &'static str {
        self.repair.observes()
    }
    fn requested_interval(&self) -> Duration {
        self.s.settings.drift_interval
    }
    fn concurrency(&self) -> usize {
        4
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        if deletion {
            return Ok(Vec::new());
        }
        let g = self.s.garage().await?;
        let model = ctx.store.model(self.observes());
        let mut sql = select_sql(model);
        sql.push(" WHERE NOT t.deleted AND t.row_version = t.enacted_version ORDER BY t.id");
        let rows = ctx.store.db().fetch(&sql, &types(model)).await?;
        let mut out = Vec::new();
        for values in rows {
            let r = Record { model, values };
            let version = r.opt(registry::fields::common::ROW_VERSION).unwrap_or_default();
            if self.s.settings.drift == Drift::Report
                && self
                    .reported
                    .lock()
                    .expect("not poisoned")
                    .contains(&(r.id(), version))
            {
                continue;
            }
            if let Some(what) = self.differs(&g, &ctx.store, &r).await? {
                tracing::info!(step = self.name(), id = r.id(), %what, "drift");
                self.found.lock().expect("not poisoned").insert(r.id(), what);
                out.push(r);
            }
        }
        Ok(out)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        let what = self
            .found
            .lock()
            .expect("not poisoned")
            .remove(&obj.id())
            .unwrap_or_else(|| "it changed outside XOS".into());
        if self.s.settings.drift == Drift::Report {
            let version = obj.opt(registry::fields::common::ROW_VERSION).unwrap_or_default();
            self.reported
                .lock()
                .expect("not poisoned")
                .insert((obj.id(), version));
            return Err(SyncError::Reported {
                message: format!("drift: {what} (drift: report; left as it is)"),
                fields: Vec::new(),
            });
        }
        let mut enacted = self.repair.sync_record(ctx, obj).await?;
        enacted.status = Some(format!(
            "{} (drift repaired: {what})",
            enacted.status.unwrap_or_default()
        ));
        Ok(enacted)
    }
    async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
        Ok(())
    }
}

/// The service's steps, sharing one Garage client.
pub fn steps(settings: Settings) -> Vec<Arc<dyn Step>> {
    let s = Syndicate::new(settings);
    let volumes: Arc<dyn Step> = Arc::new(Volumes(s.clone()));
    let rights: Arc<dyn Step> = Arc::new(AccessRights(s.clone()));
    let slices: Arc<dyn Step> = Arc::new(VolumeSlices(s.clone()));
    let drift = |kind, repair: &Arc<dyn Step>| -> Arc<dyn Step> {
        Arc::new(StorageDrift {
            s: s.clone(),
            kind,
            repair: repair.clone(),
            reported: std::sync::Mutex::new(HashSet::new()),
            found: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    };
    vec![
        drift(Kind::Volume, &volumes),
        drift(Kind::Right, &rights),
        drift(Kind::Slice, &slices),
        volumes,
        rights,
        slices,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_become_permissions_and_an_archive_takes_write_from_all_but_its_owner() {
        let vol = VolumeRow {
            id: 1,
            owner: 7,
            archive: true,
            bucket_id: None,
        };
        let p = perm_from_caps(true, true, &vol, Principal::Slice(3));
        assert!(p.read && !p.write && !p.owner);
        let p = perm_from_caps(false, false, &vol, Principal::User(7));
        assert!(p.read && p.write && p.owner);
        let open = VolumeRow {
            archive: false,
            ..vol
        };
        let p = perm_from_caps(true, true, &open, Principal::User(8));
        assert!(p.read && p.write && !p.owner);
        let p = perm_from_caps(true, false, &open, Principal::User(8));
        assert!(p.read && !p.write);
    }

    #[test]
    fn names_are_stable_and_distinct() {
        assert_eq!(bucket_alias("xos", 12), "xos-volume-12");
        assert_eq!(Principal::User(3).key_name("xos"), "xos-user-3");
        assert_ne!(
            Principal::User(3).key_name("xos"),
            Principal::Slice(3).key_name("xos")
        );
    }
}
