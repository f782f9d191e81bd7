//! What the backends share: the image directory files are uploaded from, the naming of key
//! pairs, the drift setting and controller settings, one client per controller, and the queries
//! every backend makes of its controllers and instances. Each backend (`backends/local`, `backends/ec2`, `backends/openstack`) is a crate
//! on this kit and the synchronizer runtime; none of them knows HTTP servers or the UI.

pub mod drift;
pub mod keys;
pub mod links;

pub use drift::{DriftSource, DriftStep, Observed};
pub use keys::{instance_keys, user_data_with_keys};
pub use links::{Link, LinkStep};
use registry::BackendStatus;
use registry::fields::{self, common};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use store::db::Value;
use store::{Record, Store, StoreError, select_sql, types};

/// What a backend does about an instance deleted outside XOS (`"drift"` in a controller's
/// `settings`), the same on every cloud.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Drift {
    /// Make it again (the default): the model says it should exist.
    #[default]
    Recreate,
    /// Say so on the instance (`2 - … was deleted outside XOS`) and leave it to a person.
    Report,
}

/// A controller's `settings` (a JSON object, checked when written) as the backend's type `T`;
/// absent or blank: `T`'s default. The error names what is wrong.
pub fn parse_settings<T: DeserializeOwned + Default>(text: Option<&str>) -> Result<T, String> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(T::default()),
        Some(t) => serde_json::from_str(t).map_err(|e| format!("the controller's settings: {e}")),
    }
}

/// The live controllers of `backend_type`, in id order.
pub async fn controllers(store: &Store, backend_type: &str) -> Result<Vec<Record>, StoreError> {
    let model = store.model("Controller");
    let mut sql = select_sql(model);
    sql.push(" WHERE NOT t.deleted AND t.backend_type = ")
        .bind(Value::Text(backend_type.into()));
    sql.push(" ORDER BY t.id");
    let rows = store.db().fetch(&sql, &types(model)).await?;
    Ok(rows.into_iter().map(|values| Record { model, values }).collect())
}

/// A cloud API client that counts the calls it made (the idle-pass figure of `make bench`).
pub trait CountsCalls {
    fn calls(&self) -> u64;
}

/// One client per controller, kept (with its tokens and connections) while the controller's
/// connection settings stay the same, replaced when they change.
pub struct ClientPool<C> {
    clients: Mutex<HashMap<i64, (String, C)>>,
    /// Calls made by clients that were replaced (their counters are gone).
    retired_calls: AtomicU64,
}

impl<C> Default for ClientPool<C> {
    fn default() -> Self {
        ClientPool {
            clients: Mutex::new(HashMap::new()),
            retired_calls: AtomicU64::new(0),
        }
    }
}

impl<C: Clone + CountsCalls> ClientPool<C> {
    /// Controller `id`'s client for the settings `fingerprint` (never a secret itself: hash it
    /// with [`sha256_hex`]), made by `make` when there is none or the settings changed.
    pub fn client<E>(
        &self,
        id: i64,
        fingerprint: String,
        make: impl FnOnce() -> Result<C, E>,
    ) -> Result<C, E> {
        let mut clients = self.clients.lock().expect("clients lock");
        match clients.get(&id) {
            Some((f, c)) if *f == fingerprint => Ok(c.clone()),
            _ => {
                let c = make()?;
                if let Some((_, old)) = clients.insert(id, (fingerprint, c.clone())) {
                    self.retired_calls.fetch_add(old.calls(), Ordering::Relaxed);
                }
                Ok(c)
            }
        }
    }

    /// API calls made so far by every client, the replaced ones too.
    pub fn api_calls(&self) -> u64 {
        let live: u64 = self
            .clients
            .lock()
            .expect("clients lock")
            .values()
            .map(|(_, c)| c.calls())
            .sum();
        live + self.retired_calls.load(Ordering::Relaxed)
    }
}

/// Where image files uploaded to a cloud come from (`[images]`). An Image's `path` names a
/// file under `dir` (relative, or absolute inside it); anything whose real path leaves the
/// directory is refused, so no host file (a key, `/proc/self/environ`) can be sent to a cloud.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ImagesConfig {
    /// The directory (empty: `<state_dir>/images`).
    pub dir: PathBuf,
    /// The largest file uploaded, in MiB.
    pub max_size_mb: u64,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            dir: PathBuf::new(),
            max_size_mb: 10 * 1024,
        }
    }
}

impl ImagesConfig {
    /// The image directory of a configuration whose state lives in `state_dir`.
    pub fn dir_in(&self, state_dir: &Path) -> PathBuf {
        if self.dir.as_os_str().is_empty() {
            state_dir.join("images")
        } else {
            self.dir.clone()
        }
    }

    /// The file an Image's `path` names, and its size: a regular file whose canonical path is
    /// inside the image directory, at most `max_size_mb`. The error says why not.
    pub fn file(&self, state_dir: &Path, path: &str) -> Result<(PathBuf, u64), String> {
        let dir = self.dir_in(state_dir);
        let root = dir.canonicalize().map_err(|e| {
            format!(
                "the image directory {} cannot be read ({e}); set [images] dir in xos.toml",
                dir.display()
            )
        })?;
        let path = path.trim();
        if path.is_empty() {
            return Err("the image has no path".into());
        }
        let wanted = Path::new(path);
        let joined = if wanted.is_absolute() {
            wanted.to_path_buf()
        } else {
            root.join(wanted)
        };
        let real = joined
            .canonicalize()
            .map_err(|e| format!("the image's path {path:?} cannot be read ({e})"))?;
        if !real.starts_with(&root) {
            return Err(format!(
                "the image's path {path:?} is outside the image directory {}",
                root.display()
            ));
        }
        let meta = std::fs::metadata(&real)
            .map_err(|e| format!("the image's path {path:?} cannot be read ({e})"))?;
        if !meta.is_file() {
            return Err(format!("the image's path {path:?} is not a file"));
        }
        if meta.len() > self.max_size_mb.saturating_mul(1024 * 1024) {
            return Err(format!(
                "the image's file is {} MiB, more than the {} MiB allowed ([images] max_size_mb)",
                meta.len() / (1024 * 1024),
                self.max_size_mb
            ));
        }
        Ok((real, meta.len()))
    }
}

/// Lower-case hex SHA-256 of `text`: fingerprints of credentials (never the credential itself)
/// and the short digests in key-pair names.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key pair name of XOS user `user`'s public key on every cloud: the same key gets the same
/// name (surrounding whitespace ignored), a changed key a new one.
pub fn key_pair_name(user: i64, public_key: &str) -> String {
    let digest = sha256_hex(public_key.trim());
    format!("xos-user-{user}-{}", &digest[..8])
}

/// The live instances of `deployment` enacted as they are now (a `1 - ` status, no change since):
/// what a backend's drift step compares with the cloud's own list.
pub async fn enacted_instances(store: &Store, deployment: i64) -> Result<Vec<Record>, StoreError> {
    let model = store.model("Instance");
    let mut sql = select_sql(model);
    sql.push(" WHERE NOT t.deleted AND t.row_version = t.enacted_version AND t.deployment_id = ")
        .bind(Value::Int(deployment));
    sql.push(" ORDER BY t.id");
    Ok(store
        .db()
        .fetch(&sql, &types(model))
        .await?
        .into_iter()
        .map(|values| Record { model, values })
        // An instance reported gone (drift: report) is still the drift step's to watch.
        .filter(|r| {
            BackendStatus::parse(r.opt(common::BACKEND_STATUS).unwrap_or_default()).is_ok()
                || r.opt(fields::instance::OBSERVED_STATE) == Some(drift::GONE)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_come_only_from_their_directory() {
        let base = std::env::temp_dir().join(format!("xos-images-test-{}", std::process::id()));
        let dir = base.join("images");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ok.raw"), vec![0u8; 2048]).unwrap();
        std::fs::write(base.join("secret"), "s").unwrap();
        let _ = std::os::unix::fs::symlink(base.join("secret"), dir.join("out"));
        let images = ImagesConfig::default();
        let (p, len) = images.file(&base, "ok.raw").unwrap();
        assert_eq!((p.file_name().unwrap().to_str(), len), (Some("ok.raw"), 2048));
        assert!(images.file(&base, dir.join("ok.raw").to_str().unwrap()).is_ok());
        for bad in ["/proc/self/environ", "../secret", "out", "/etc/passwd", ""] {
            assert!(images.file(&base, bad).is_err(), "{bad}");
        }
        assert!(images.file(&base, ".").unwrap_err().contains("not a file"));
        let tiny = ImagesConfig {
            max_size_mb: 0,
            ..ImagesConfig::default()
        };
        assert!(tiny.file(&base, "ok.raw").unwrap_err().contains("MiB"));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[derive(Clone)]
    struct Counted(u64);
    impl CountsCalls for Counted {
        fn calls(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn a_pool_keeps_a_client_until_its_settings_change_and_counts_the_replaced_ones() {
        let pool = ClientPool::<Counted>::default();
        let made = std::cell::Cell::new(0);
        let make = |n| {
            made.set(made.get() + 1);
            Ok::<_, ()>(Counted(n))
        };
        pool.client(1, "a".into(), || make(5)).unwrap();
        pool.client(1, "a".into(), || make(7)).unwrap();
        assert_eq!(
            (made.get(), pool.api_calls()),
            (1, 5),
            "same settings: the same client"
        );
        pool.client(1, "b".into(), || make(3)).unwrap();
        assert_eq!(
            (made.get(), pool.api_calls()),
            (2, 8),
            "the replaced client's calls still count"
        );
        pool.client(2, "a".into(), || make(1)).unwrap();
        assert_eq!(pool.api_calls(), 9);
        assert!(pool.client(3, "x".into(), || Err::<Counted, _>(())).is_err());
    }

    #[test]
    fn settings_parse_with_defaults_and_name_what_is_wrong() {
        #[derive(Default, Deserialize, Debug, PartialEq)]
        #[serde(deny_unknown_fields)]
        struct S {
            #[serde(default)]
            drift: Drift,
        }
        assert_eq!(parse_settings::<S>(None), Ok(S::default()));
        assert_eq!(parse_settings::<S>(Some("  ")), Ok(S::default()));
        assert_eq!(
            parse_settings::<S>(Some(r#"{"drift": "report"}"#)),
            Ok(S { drift: Drift::Report })
        );
        assert!(
            parse_settings::<S>(Some(r#"{"drift": "ignore"}"#))
                .unwrap_err()
                .contains("settings")
        );
        assert!(
            parse_settings::<S>(Some(r#"{"drfit": "report"}"#))
                .unwrap_err()
                .contains("drfit")
        );
    }

    #[test]
    fn a_key_pair_name_ignores_surrounding_whitespace() {
        assert_eq!(
            key_pair_name(3, "ssh-ed25519 AAAA x"),
            key_pair_name(3, " ssh-ed25519 AAAA x\n")
        );
        assert_ne!(
            key_pair_name(3, "ssh-ed25519 AAAA x"),
            key_pair_name(4, "ssh-ed25519 AAAA x")
        );
        assert_ne!(
            key_pair_name(3, "ssh-ed25519 AAAA x"),
            key_pair_name(3, "ssh-ed25519 AAAB x")
        );
        assert!(key_pair_name(3, "k").starts_with("xos-user-3-"));
    }
}
