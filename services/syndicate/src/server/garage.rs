//! A Garage cluster as XOS uses it: its admin API (v2, bearer token, JSON) for buckets, keys and
//! permissions, and its S3 API (SigV4, path-style) for objects. Garage runs as its own process
//! (AGPL: never linked); `garage/garage.sh` starts one node, or `XOS_GARAGE_*` points at a
//! cluster elsewhere.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

/// Where the cluster answers and how XOS signs in. From the environment (`XOS_GARAGE_ADMIN_URL`,
/// `XOS_GARAGE_ADMIN_TOKEN_FILE`, `XOS_GARAGE_S3_URL`, `XOS_GARAGE_REGION`), whose defaults are
/// the node `garage/garage.sh` starts; set them to use an existing cluster (`external`).
#[derive(Clone)]
pub struct GarageConfig {
    pub admin_url: String,
    pub admin_token: String,
    pub s3_url: String,
    pub region: String,
}

impl std::fmt::Debug for GarageConfig {
    // The token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarageConfig")
            .field("admin_url", &self.admin_url)
            .field("admin_token", &"***")
            .field("s3_url", &self.s3_url)
            .field("region", &self.region)
            .finish()
    }
}

impl GarageConfig {
    /// The settings from the environment; `data_dir`: where the local node keeps its token
    /// (`~/.cache/xos/garage-node`) when `XOS_GARAGE_ADMIN_TOKEN_FILE` is not set.
    pub fn from_env(data_dir: &std::path::Path) -> Result<GarageConfig, GarageError> {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        let token_file = std::env::var("XOS_GARAGE_ADMIN_TOKEN_FILE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| data_dir.join("admin_token"));
        let admin_token = std::fs::read_to_string(&token_file)
            .map_err(|e| {
                GarageError::Config(format!(
                    "cannot read the admin token {}: {e}",
                    token_file.display()
                ))
            })?
            .trim()
            .to_string();
        Ok(GarageConfig {
            admin_url: var("XOS_GARAGE_ADMIN_URL", "http://127.0.0.1:3903"),
            admin_token,
            s3_url: var("XOS_GARAGE_S3_URL", "http://127.0.0.1:3900"),
            region: var("XOS_GARAGE_REGION", "garage"),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    #[error("Garage is not configured: {0}")]
    Config(String),
    #[error("Garage at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("Garage {call}: HTTP {status}: {message}")]
    Api {
        call: String,
        status: u16,
        message: String,
    },
    #[error("Garage {call}: unexpected answer: {reason}")]
    Protocol { call: String, reason: String },
}

impl GarageError {
    /// Whether the error says the thing looked up does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, GarageError::Api { status: 404, .. })
    }
    /// Whether Garage could not be reached at all (the step defers).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, GarageError::Unreachable { .. } | GarageError::Config(_))
    }
}

/// A bucket's read, write and owner flags for one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perm {
    #[serde(default)]
    pub read: bool,
    #[serde(default)]
    pub write: bool,
    #[serde(default)]
    pub owner: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Quotas {
    pub max_size: Option<u64>,
    pub max_objects: Option<u64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketKey {
    pub access_key_id: String,
    pub permissions: Perm,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub id: String,
    pub global_aliases: Vec<String>,
    pub keys: Vec<BucketKey>,
    pub objects: i64,
    pub bytes: i64,
    pub quotas: Quotas,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyBucket {
    pub id: String,
    pub permissions: Perm,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Key {
    pub access_key_id: String,
    pub name: String,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub buckets: Vec<KeyBucket>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyListed {
    pub id: String,
    pub name: String,
    pub created: Option<String>,
}

/// A client of one Garage cluster; cheap to clone.
#[derive(Clone, Debug)]
pub struct Garage {
    http: reqwest::Client,
    pub config: GarageConfig,
}

impl Garage {
    pub fn new(config: GarageConfig) -> Result<Garage, GarageError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| GarageError::Config(format!("HTTP client: {e}")))?;
        Ok(Garage { http, config })
    }

    /// One admin call: `GET|POST /v2/<call>?<query>` with an optional JSON body.
    async fn admin<T: DeserializeOwned>(
        &self,
        call: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<T, GarageError> {
        let url = format!("{}/v2/{call}", self.config.admin_url.trim_end_matches('/'));
        let mut req = match body {
            Some(b) => self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(b.to_string()),
            None => self.http.get(&url),
        };
        req = req.query(query).bearer_auth(&self.config.admin_token);
        let resp = req.send().await.map_err(|e| GarageError::Unreachable {
            url: self.config.admin_url.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| GarageError::Unreachable {
            url: self.config.admin_url.clone(),
            reason: root_cause(&e),
        })?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(GarageError::Api {
                call: call.to_string(),
                status: status.as_u16(),
                message,
            });
        }
        let text = if text.trim().is_empty() { "null" } else { &text };
        serde_json::from_str(text).map_err(|e| GarageError::Protocol {
            call: call.to_string(),
            reason: e.to_string(),
        })
    }

    pub async fn health(&self) -> Result<Value, GarageError> {
        self.admin("GetClusterHealth", &[], None).await
    }

    /// The bucket of a global alias, None when there is none.
    pub async fn bucket_by_alias(&self, alias: &str) -> Result<Option<Bucket>, GarageError> {
        not_found_is_none(self.admin("GetBucketInfo", &[("globalAlias", alias)], None).await)
    }

    pub async fn bucket(&self, id: &str) -> Result<Option<Bucket>, GarageError> {
        not_found_is_none(self.admin("GetBucketInfo", &[("id", id)], None).await)
    }

    pub async fn create_bucket(&self, alias: &str) -> Result<Bucket, GarageError> {
        self.admin("CreateBucket", &[], Some(json!({ "globalAlias": alias })))
            .await
    }

    pub async fn set_quotas(&self, id: &str, quotas: &Quotas) -> Result<Bucket, GarageError> {
        self.admin("UpdateBucket", &[("id", id)], Some(json!({ "quotas": quotas })))
            .await
    }

    /// Delete an empty bucket (Garage refuses one that holds objects).
    pub async fn delete_bucket(&self, id: &str) -> Result<(), GarageError> {
        let r: Result<Value, _> = self.admin("DeleteBucket", &[("id", id)], Some(json!({}))).await;
        r.map(|_| ())
    }

    pub async fn keys(&self) -> Result<Vec<KeyListed>, GarageError> {
        self.admin("ListKeys", &[], None).await
    }

    /// A key with its secret and buckets, None when there is none.
    pub async fn key(&self, id: &str) -> Result<Option<Key>, GarageError> {
        not_found_is_none(
            self.admin("GetKeyInfo", &[("id", id), ("showSecretKey", "true")], None)
                .await,
        )
    }

    pub async fn create_key(&self, name: &str) -> Result<Key, GarageError> {
        self.admin("CreateKey", &[], Some(json!({ "name": name }))).await
    }

    pub async fn delete_key(&self, id: &str) -> Result<(), GarageError> {
        let r: Result<Value, _> = self.admin("DeleteKey", &[("id", id)], Some(json!({}))).await;
        match r {
            Err(e) if e.is_not_found() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Set exactly `want` for the key on the bucket (Garage's Allow and Deny each change only
    /// the flags set to true).
    pub async fn set_perm(&self, bucket: &str, key: &str, want: Perm) -> Result<(), GarageError> {
        let allow = want;
        let deny = Perm {
            read: !want.read,
            write: !want.write,
            owner: !want.owner,
        };
        for (call, p) in [("AllowBucketKey", allow), ("DenyBucketKey", deny)] {
            if p == Perm::default() {
                continue;
            }
            let _: Value = self
                .admin(
                    call,
                    &[],
                    Some(json!({ "bucketId": bucket, "accessKeyId": key, "permissions": p })),
                )
                .await?;
        }
        Ok(())
    }

    /// The S3 client of a key.
    pub fn s3(&self, key_id: &str, secret: &str) -> S3 {
        S3::with(
            self.http.clone(),
            &self.config.s3_url,
            &self.config.region,
            key_id,
            secret,
        )
    }
}

fn not_found_is_none<T>(r: Result<T, GarageError>) -> Result<Option<T>, GarageError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() || matches!(&e, GarageError::Api { status: 400, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The innermost reason of an HTTP failure (`Connection refused`), not reqwest's wrapper.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// S3 with one key, path-style (`/<bucket>/<object>`), SigV4-signed.
#[derive(Clone)]
pub struct S3 {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    key_id: String,
    secret: String,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("endpoint", &self.endpoint)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// An S3 answer: its status and body.
#[derive(Clone, Debug)]
pub struct S3Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl S3 {
    /// The client of a key at an S3 endpoint (`http://127.0.0.1:3900`).
    pub fn with(http: reqwest::Client, endpoint: &str, region: &str, key_id: &str, secret: &str) -> S3 {
        S3 {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region: region.to_string(),
            key_id: key_id.to_string(),
            secret: secret.to_string(),
        }
    }

    /// One signed request; any HTTP status is an answer (a 403 is what a test looks for).
    pub async fn request(&self, method: &str, path: &str, body: &[u8]) -> Result<S3Answer, GarageError> {
        let url = format!("{}{path}", self.endpoint);
        let parsed =
            url::Url::parse(&url).map_err(|e| GarageError::Config(format!("bad S3 URL {url}: {e}")))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(GarageError::Config(format!("bad S3 URL {url}"))),
        };
        let identity = Credentials::new(&self.key_id, &self.secret, None, None, "xos-syndicate").into();
        let mut settings = SigningSettings::default();
        // S3's rules: the x-amz-content-sha256 header, the path signed as sent (encoded once,
        // not normalized).
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| GarageError::Config(format!("signing: {e}")))?
            .into();
        let headers = [("host", host.as_str())];
        let signable = SignableRequest::new(method, &url, headers.iter().copied(), SignableBody::Bytes(body))
            .map_err(|e| GarageError::Config(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| GarageError::Config(format!("signing: {e}")))?
            .into_parts();
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| GarageError::Config(format!("bad method: {e}")))?;
        let mut req = self.http.request(method, &url).body(body.to_vec());
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let resp = req.send().await.map_err(|e| GarageError::Unreachable {
            url: self.endpoint.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| GarageError::Unreachable {
            url: self.endpoint.clone(),
            reason: root_cause(&e),
        })?;
        Ok(S3Answer {
            status,
            body: body.to_vec(),
        })
    }

    pub async fn put(&self, bucket: &str, object: &str, body: &[u8]) -> Result<S3Answer, GarageError> {
        self.request("PUT", &object_path(bucket, object), body).await
    }

    pub async fn get(&self, bucket: &str, object: &str) -> Result<S3Answer, GarageError> {
        self.request("GET", &object_path(bucket, object), b"").await
    }

    pub async fn delete(&self, bucket: &str, object: &str) -> Result<S3Answer, GarageError> {
        self.request("DELETE", &object_path(bucket, object), b"").await
    }

    /// Up to 1,000 object names of a bucket (ListObjectsV2).
    pub async fn list(&self, bucket: &str) -> Result<Vec<String>, GarageError> {
        let a = self
            .request("GET", &format!("/{}?list-type=2", enc(bucket)), b"")
            .await?;
        if a.status != 200 {
            return Err(GarageError::Api {
                call: "ListObjectsV2".into(),
                status: a.status,
                message: String::from_utf8_lossy(&a.body).chars().take(200).collect(),
            });
        }
        let text = String::from_utf8_lossy(&a.body);
        let doc = roxmltree::Document::parse(&text).map_err(|e| GarageError::Protocol {
            call: "ListObjectsV2".into(),
            reason: e.to_string(),
        })?;
        Ok(doc
            .descendants()
            .filter(|n| n.has_tag_name("Key") && n.parent().is_some_and(|p| p.has_tag_name("Contents")))
            .filter_map(|n| n.text().map(str::to_string))
            .collect())
    }
}

/// What S3 leaves unencoded in a path segment: letters, digits and `-._~`.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

fn object_path(bucket: &str, object: &str) -> String {
    let object: Vec<String> = object.split('/').map(enc).collect();
    format!("/{}/{}", enc(bucket), object.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_permissions_allow_what_is_wanted_and_deny_the_rest() {
        let want = Perm {
            read: true,
            write: false,
            owner: false,
        };
        let deny = Perm {
            read: !want.read,
            write: !want.write,
            owner: !want.owner,
        };
        assert_eq!((deny.read, deny.write, deny.owner), (false, true, true));
        assert_eq!(
            serde_json::to_value(want).unwrap(),
            json!({"read": true, "write": false, "owner": false})
        );
    }

    #[test]
    fn object_paths_are_encoded_per_segment() {
        assert_eq!(
            object_path("xos-volume-1", "a b/c.txt"),
            "/xos-volume-1/a%20b/c.txt"
        );
    }

    #[test]
    fn the_token_is_not_shown() {
        let c = GarageConfig {
            admin_url: "http://127.0.0.1:3903".into(),
            admin_token: "sekrit".into(),
            s3_url: "http://127.0.0.1:3900".into(),
            region: "garage".into(),
        };
        assert!(!format!("{c:?}").contains("sekrit"));
    }
}
