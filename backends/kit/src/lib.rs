//! What the backends share: the image directory files are uploaded from, the naming of key
//! pairs, the drift setting, and the queries every backend makes of its controllers and
//! instances. Each backend (`backends/local`, `backends/ec2`, `backends/openstack`) is a crate
//! on this kit and the synchronizer runtime; none of them knows HTTP servers or the UI.

use registry::BackendStatus;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use store::db::Value;
use store::{Record, Store, StoreError, select_sql, types};

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
        .filter(|r| BackendStatus::parse(r.get_str("backend_status").unwrap_or_default()).is_ok())
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
