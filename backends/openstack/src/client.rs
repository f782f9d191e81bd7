//! A small client for the OpenStack REST APIs the synchronizer needs: Keystone v3 (password
//! tokens, projects, users, roles), Neutron v2 (networks, subnets, routers, ports), Glance v2
//! (images) and Nova v2.1 (servers, flavors, key pairs, quotas). Typed requests are built with
//! `serde_json`, sent with `reqwest`; endpoints come from the token's service catalog. Tokens are
//! cached per project scope until shortly before they expire, and a 401 re-authenticates once.
//! An OpenStack SDK crate would pull in far more than these few calls need.

use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Nova microversion of every compute call (2.10: key pairs for other users; 2.52 keeps
/// `networks` explicit).
const NOVA_MICROVERSION: &str = "2.52";

/// Why an OpenStack call failed.
#[derive(Debug, thiserror::Error)]
pub enum OsError {
    /// The service answered with an error.
    #[error("{service} refused {what}: {message} (HTTP {status})")]
    Api {
        service: &'static str,
        what: String,
        status: u16,
        message: String,
    },
    /// The endpoint did not answer.
    #[error("{url} unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// An answer we could not read.
    #[error("unexpected answer from {service} to {what}: {reason}")]
    Protocol {
        service: &'static str,
        what: String,
        reason: String,
    },
    /// The controller's settings are incomplete.
    #[error("{0}")]
    Config(String),
}

impl OsError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            OsError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Where and as whom to call OpenStack.
#[derive(Clone)]
pub struct OsConfig {
    /// Keystone, e.g. `http://127.0.0.1:5000/v3` (`/v3` is added when missing).
    pub auth_url: String,
    pub user: String,
    pub password: String,
    /// The admin's project (XOS's `admin_tenant`).
    pub project: String,
    /// The Keystone domain of the user and project (`Default` when empty).
    pub domain: String,
}

impl std::fmt::Debug for OsConfig {
    // The password never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsConfig")
            .field("auth_url", &self.auth_url)
            .field("user", &self.user)
            .field("password", &"***")
            .field("project", &self.project)
            .field("domain", &self.domain)
            .finish()
    }
}

/// The services the synchronizer calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Identity,
    Compute,
    Network,
    Image,
}

impl Service {
    fn catalog_type(self) -> &'static str {
        match self {
            Service::Identity => "identity",
            Service::Compute => "compute",
            Service::Network => "network",
            Service::Image => "image",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Service::Identity => "Keystone",
            Service::Compute => "Nova",
            Service::Network => "Neutron",
            Service::Image => "Glance",
        }
    }
}

#[derive(Clone)]
struct Token {
    value: String,
    renew_at: Instant,
    endpoints: HashMap<&'static str, String>,
    user_id: String,
}

/// An OpenStack client; cheap to clone. Counts its calls (the idle-pass figure).
#[derive(Clone)]
pub struct OsClient {
    http: reqwest::Client,
    config: OsConfig,
    calls: Arc<AtomicU64>,
    /// Tokens by project scope (`None`: the admin's own project).
    tokens: Arc<Mutex<HashMap<Option<String>, Token>>>,
    /// Ids of named objects that rarely change (roles, flavors) by (kind, name): asked once per
    /// client instead of once per privilege or server; forgotten when a use of one fails.
    ids: Arc<Mutex<HashMap<(&'static str, String), String>>>,
}

/// A Nova server as the API reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub status: String,
    pub project_id: String,
    pub instance_name: String,
    pub fault: Option<String>,
    /// Nova's task in progress (`deleting`, `spawning`, …).
    pub task_state: Option<String>,
    /// The XOS instance id from the server's metadata.
    pub xos_id: Option<String>,
    /// (network name, address, mac), in the order Nova lists them.
    pub addresses: Vec<(String, String, String)>,
}

impl Server {
    /// Deleted, or being deleted: not a server to adopt (its ports are already going).
    pub fn is_gone(&self) -> bool {
        self.status == "DELETED" || self.task_state.as_deref() == Some("deleting")
    }

    fn from_json(v: &Json) -> Server {
        let mut addresses = Vec::new();
        if let Some(nets) = v["addresses"].as_object() {
            for (net, list) in nets {
                for a in list.as_array().into_iter().flatten() {
                    addresses.push((
                        net.clone(),
                        a["addr"].as_str().unwrap_or_default().to_string(),
                        a["OS-EXT-IPS-MAC:mac_addr"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                    ));
                }
            }
        }
        Server {
            id: s(&v["id"]),
            name: s(&v["name"]),
            status: s(&v["status"]),
            project_id: s(&v["tenant_id"]),
            instance_name: s(&v["OS-EXT-SRV-ATTR:instance_name"]),
            fault: v["fault"]["message"].as_str().map(str::to_string),
            task_state: v["OS-EXT-STS:task_state"].as_str().map(str::to_string),
            xos_id: v["metadata"][super::META_KEY].as_str().map(str::to_string),
            addresses,
        }
    }
}

fn s(v: &Json) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The message of an OpenStack error body: `{"error": {"message"}}` (Keystone),
/// `{"NeutronError": {"message"}}`, `{"badRequest": {"message"}}` (Nova), or the text.
fn error_message(body: &str) -> String {
    if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(body) {
        for v in m.values() {
            if let Some(msg) = v["message"].as_str() {
                return msg.to_string();
            }
        }
        if let Some(msg) = m.get("message").and_then(Json::as_str) {
            return msg.to_string();
        }
    }
    let text = body.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(300).collect()
}

/// What a request sends.
enum Payload {
    Bytes(Vec<u8>),
    /// A file streamed from disk, and its length.
    File(std::path::PathBuf, u64),
}

/// A URL query component.
pub fn q(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// A URL path segment from a value (an id): everything but letters, digits, `-` and `_` is
/// percent-encoded, so a stored `../networks/<id>` stays one segment and names nothing.
pub fn seg(v: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_');
    percent_encoding::utf8_percent_encode(v, SEGMENT).to_string()
}

/// Whether a request path is one the client may send: no empty, `.` or `..` segment (also
/// percent-encoded), no backslash or fragment. The last guard should a value reach a path
/// without [`seg`].
fn safe_path(path: &str) -> bool {
    let (p, _query) = path.split_once('?').unwrap_or((path, ""));
    p.starts_with('/')
        && !p.contains(['\\', '#'])
        && p[1..].split('/').all(|segment| {
            let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            !segment.is_empty() && decoded != "." && decoded != ".." && !decoded.contains(['/', '\\'])
        })
}

/// The environment variable naming a PEM file of CA certificates the OpenStack clients trust
/// besides the system's (a private cloud's own CA).
pub const CA_BUNDLE_ENV: &str = "XOS_OPENSTACK_CA_BUNDLE";

/// The certificates of a PEM bundle (at least one).
fn ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, OsError> {
    let pem = std::fs::read(path)
        .map_err(|e| OsError::Config(format!("{CA_BUNDLE_ENV}: cannot read {}: {e}", path.display())))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(OsError::Config(format!(
            "{CA_BUNDLE_ENV}: {} holds no PEM certificate",
            path.display()
        ))),
        Err(e) => Err(OsError::Config(format!(
            "{CA_BUNDLE_ENV}: {} is not a PEM bundle: {e}",
            path.display()
        ))),
    }
}

impl OsClient {
    pub fn new(mut config: OsConfig) -> Result<OsClient, OsError> {
        config.auth_url = config.auth_url.trim().trim_end_matches('/').to_string();
        if config.auth_url.is_empty() {
            return Err(OsError::Config("the controller has no auth_url".into()));
        }
        if !config.auth_url.ends_with("/v3") {
            config.auth_url.push_str("/v3");
        }
        if config.user.is_empty() || config.password.is_empty() {
            return Err(OsError::Config(
                "the controller has no admin_user or admin_password".into(),
            ));
        }
        if config.project.is_empty() {
            return Err(OsError::Config("the controller has no admin_tenant".into()));
        }
        if config.domain.trim().is_empty() {
            config.domain = "Default".into();
        }
        // No redirects: a redirect would carry the token (or, as a 307, the password) to
        // wherever the answer points. A cloud whose endpoints redirect is misconfigured.
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60));
        if let Some(path) = std::env::var_os(CA_BUNDLE_ENV).filter(|p| !p.is_empty()) {
            for cert in ca_bundle(std::path::Path::new(&path))? {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http
            .build()
            .map_err(|e| OsError::Config(format!("HTTP client: {e}")))?;
        Ok(OsClient {
            http,
            config,
            calls: Arc::new(AtomicU64::new(0)),
            tokens: Arc::new(Mutex::new(HashMap::new())),
            ids: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// How many API calls this client made (token requests included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn auth_url(&self) -> &str {
        &self.config.auth_url
    }

    /// A token scoped to `project` (an id), or to the admin's own project.
    async fn token(&self, project: Option<&str>) -> Result<Token, OsError> {
        let key = project.map(str::to_string);
        if let Some(t) = self.tokens.lock().expect("tokens lock").get(&key)
            && t.renew_at > Instant::now()
        {
            return Ok(t.clone());
        }
        let c = &self.config;
        let scope = match project {
            Some(id) => json!({"project": {"id": id}}),
            None => json!({"project": {"name": c.project, "domain": {"name": c.domain}}}),
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": c.user, "domain": {"name": c.domain}, "password": c.password}}},
            "scope": scope}});
        let url = format!("{}/auth/tokens", c.auth_url);
        self.calls.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| OsError::Unreachable {
                url: c.auth_url.clone(),
                reason: root_cause(&e),
            })?;
        let status = resp.status();
        let value = resp
            .headers()
            .get("X-Subject-Token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let what = match project {
                Some(p) => format!("a token for project {p}"),
                None => format!("the login of {} to project {}", c.user, c.project),
            };
            return Err(OsError::Api {
                service: "Keystone",
                what,
                status: status.as_u16(),
                message: error_message(&text),
            });
        }
        let protocol = |reason: &str| OsError::Protocol {
            service: "Keystone",
            what: "a token".into(),
            reason: reason.into(),
        };
        let value = value.ok_or_else(|| protocol("no X-Subject-Token"))?;
        let v: Json = serde_json::from_str(&text).map_err(|e| protocol(&e.to_string()))?;
        let mut endpoints = HashMap::new();
        for svc in v["token"]["catalog"].as_array().into_iter().flatten() {
            let kind = svc["type"].as_str().unwrap_or_default();
            let Some(kind) = [
                Service::Identity,
                Service::Compute,
                Service::Network,
                Service::Image,
            ]
            .into_iter()
            .map(Service::catalog_type)
            .find(|k| *k == kind) else {
                continue;
            };
            let eps = svc["endpoints"].as_array().cloned().unwrap_or_default();
            let url = eps
                .iter()
                .find(|e| e["interface"] == "public")
                .or_else(|| eps.first())
                .and_then(|e| e["url"].as_str());
            if let Some(url) = url {
                endpoints.insert(kind, url.trim_end_matches('/').to_string());
            }
        }
        // Keystone itself is where we logged in, whatever the catalog says.
        endpoints.insert("identity", c.auth_url.clone());
        let lifetime = chrono::DateTime::parse_from_rfc3339(v["token"]["expires_at"].as_str().unwrap_or(""))
            .ok()
            .map(|t| (t.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64)
            .unwrap_or(3600);
        let token = Token {
            value,
            renew_at: Instant::now() + Duration::from_secs(lifetime.saturating_sub(300).max(30)),
            endpoints,
            user_id: s(&v["token"]["user"]["id"]),
        };
        self.tokens
            .lock()
            .expect("tokens lock")
            .insert(key, token.clone());
        Ok(token)
    }

    /// Check the credentials (a fresh login) and return the admin's user id.
    pub async fn login(&self) -> Result<String, OsError> {
        self.tokens.lock().expect("tokens lock").remove(&None);
        Ok(self.token(None).await?.user_id)
    }

    /// The admin's user id.
    pub async fn admin_user_id(&self) -> Result<String, OsError> {
        Ok(self.token(None).await?.user_id)
    }

    /// One JSON call; `Json::Null` for an empty answer.
    pub async fn call(
        &self,
        scope: Option<&str>,
        service: Service,
        method: reqwest::Method,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Json, OsError> {
        self.send(
            scope,
            service,
            method,
            path,
            body.map(|b| (Payload::Bytes(b.to_string().into_bytes()), "application/json")),
        )
        .await
    }

    async fn send(
        &self,
        scope: Option<&str>,
        service: Service,
        method: reqwest::Method,
        path: &str,
        body: Option<(Payload, &'static str)>,
    ) -> Result<Json, OsError> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        if !safe_path(path) {
            return Err(OsError::Config(format!(
                "refusing to call {what}: not a plain path"
            )));
        }
        for attempt in 0..2 {
            let token = self.token(scope).await?;
            let base = token
                .endpoints
                .get(service.catalog_type())
                .ok_or_else(|| OsError::Config(format!("no {} endpoint in the catalog", service.label())))?;
            let base = match service {
                // Neutron's catalog URL has no version; Glance's neither.
                Service::Network if !base.ends_with("/v2.0") => format!("{base}/v2.0"),
                Service::Image if !base.ends_with("/v2") => format!("{base}/v2"),
                _ => base.clone(),
            };
            let url = format!("{base}{path}");
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("X-Auth-Token", &token.value)
                .header("Accept", "application/json");
            if service == Service::Compute {
                req = req.header("OpenStack-API-Version", format!("compute {NOVA_MICROVERSION}"));
            }
            if let Some((payload, ctype)) = &body {
                req = req.header("Content-Type", *ctype);
                req = match payload {
                    Payload::Bytes(bytes) => req.body(bytes.clone()),
                    // Opened anew for each attempt; its length is sent (not chunked).
                    Payload::File(path, len) => {
                        let f = tokio::fs::File::open(path)
                            .await
                            .map_err(|e| OsError::Config(format!("cannot read {}: {e}", path.display())))?;
                        req.header("Content-Length", len.to_string())
                            .body(reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(f)))
                    }
                };
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            let resp = req.send().await.map_err(|e| OsError::Unreachable {
                url: base.clone(),
                reason: root_cause(&e),
            })?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if status.as_u16() == 401 && attempt == 0 {
                // Expired or revoked: log in again once.
                self.tokens
                    .lock()
                    .expect("tokens lock")
                    .remove(&scope.map(str::to_string));
                continue;
            }
            if !status.is_success() {
                return Err(OsError::Api {
                    service: service.label(),
                    what,
                    status: status.as_u16(),
                    message: error_message(&text),
                });
            }
            if text.trim().is_empty() {
                return Ok(Json::Null);
            }
            return serde_json::from_str(&text).map_err(|e| OsError::Protocol {
                service: service.label(),
                what,
                reason: e.to_string(),
            });
        }
        unreachable!("the loop returns on its second attempt")
    }

    pub async fn get(&self, scope: Option<&str>, service: Service, path: &str) -> Result<Json, OsError> {
        self.call(scope, service, reqwest::Method::GET, path, None).await
    }
    pub async fn post(
        &self,
        scope: Option<&str>,
        service: Service,
        path: &str,
        body: Json,
    ) -> Result<Json, OsError> {
        self.call(scope, service, reqwest::Method::POST, path, Some(&body))
            .await
    }
    pub async fn put(
        &self,
        scope: Option<&str>,
        service: Service,
        path: &str,
        body: Option<Json>,
    ) -> Result<Json, OsError> {
        self.call(scope, service, reqwest::Method::PUT, path, body.as_ref())
            .await
    }
    /// DELETE; a 404 counts as done (deleting is idempotent).
    pub async fn delete(&self, scope: Option<&str>, service: Service, path: &str) -> Result<(), OsError> {
        match self
            .call(scope, service, reqwest::Method::DELETE, path, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The items of a list answer (`{"<key>": [...]}`).
    pub async fn list(
        &self,
        scope: Option<&str>,
        service: Service,
        path: &str,
        key: &str,
    ) -> Result<Vec<Json>, OsError> {
        let v = self.get(scope, service, path).await?;
        Ok(v[key].as_array().cloned().unwrap_or_default())
    }

    // ---- Keystone ----

    pub async fn project_by_name(&self, name: &str) -> Result<Option<Json>, OsError> {
        Ok(self
            .list(
                None,
                Service::Identity,
                &format!("/projects?name={}", q(name)),
                "projects",
            )
            .await?
            .into_iter()
            .next())
    }

    /// The id of the domain the controller's user lives in.
    pub async fn domain_id(&self) -> Result<String, OsError> {
        let name = self.config.domain.clone();
        let doms = self
            .list(
                None,
                Service::Identity,
                &format!("/domains?name={}", q(&name)),
                "domains",
            )
            .await?;
        doms.first()
            .map(|d| s(&d["id"]))
            .ok_or_else(|| OsError::Config(format!("Keystone has no domain named {name}")))
    }

    fn cached_id(&self, kind: &'static str, name: &str) -> Option<String> {
        let ids = self.ids.lock().expect("ids lock");
        ids.get(&(kind, name.to_string())).cloned()
    }

    fn remember_id(&self, kind: &'static str, name: &str, id: &str) {
        let mut ids = self.ids.lock().expect("ids lock");
        ids.insert((kind, name.to_string()), id.to_string());
    }

    /// Drop the cached ids of a kind (after a call that used one failed: it may be gone).
    pub fn forget_ids(&self, kind: &'static str) {
        self.ids.lock().expect("ids lock").retain(|(k, _), _| *k != kind);
    }

    /// The id of the Nova flavor named `name` (None when there is none); one listing fills the
    /// cache for every flavor.
    pub async fn flavor_id(&self, name: &str) -> Result<Option<String>, OsError> {
        if let Some(id) = self.cached_id("flavor", name) {
            return Ok(Some(id));
        }
        let flavors = self.list(None, Service::Compute, "/flavors", "flavors").await?;
        for f in &flavors {
            if let (Some(n), Some(id)) = (f["name"].as_str(), f["id"].as_str()) {
                self.remember_id("flavor", n, id);
            }
        }
        Ok(self.cached_id("flavor", name))
    }

    /// The id of the Keystone role `name`, made when it does not exist.
    pub async fn role_id(&self, name: &str) -> Result<String, OsError> {
        if let Some(id) = self.cached_id("role", name) {
            return Ok(id);
        }
        let id = self.find_or_make_role(name).await?;
        self.remember_id("role", name, &id);
        Ok(id)
    }

    async fn find_or_make_role(&self, name: &str) -> Result<String, OsError> {
        let roles = self
            .list(
                None,
                Service::Identity,
                &format!("/roles?name={}", q(name)),
                "roles",
            )
            .await?;
        match roles.first() {
            Some(r) => Ok(s(&r["id"])),
            None => {
                let r = self
                    .post(None, Service::Identity, "/roles", json!({"role": {"name": name}}))
                    .await?;
                Ok(s(&r["role"]["id"]))
            }
        }
    }

    pub async fn assign_role(&self, project: &str, user: &str, role: &str) -> Result<(), OsError> {
        self.put(
            None,
            Service::Identity,
            &format!(
                "/projects/{}/users/{}/roles/{}",
                seg(project),
                seg(user),
                seg(role)
            ),
            None,
        )
        .await
        .map(|_| ())
        .inspect_err(|e| {
            if e.is_not_found() {
                // The role may have been deleted and made again: look it up anew next time.
                self.forget_ids("role");
            }
        })
    }

    pub async fn unassign_role(&self, project: &str, user: &str, role: &str) -> Result<(), OsError> {
        self.delete(
            None,
            Service::Identity,
            &format!(
                "/projects/{}/users/{}/roles/{}",
                seg(project),
                seg(user),
                seg(role)
            ),
        )
        .await
    }

    /// (role id, role name) of `user` on `project`.
    pub async fn roles_on(&self, project: &str, user: &str) -> Result<Vec<(String, String)>, OsError> {
        Ok(self
            .list(
                None,
                Service::Identity,
                &format!("/projects/{}/users/{}/roles", seg(project), seg(user)),
                "roles",
            )
            .await?
            .iter()
            .map(|r| (s(&r["id"]), s(&r["name"])))
            .collect())
    }

    // ---- Nova ----

    /// Servers visible to the scope (`all_tenants` for the admin's view of every project).
    pub async fn servers(&self, scope: Option<&str>, all_tenants: bool) -> Result<Vec<Server>, OsError> {
        let path = if all_tenants {
            "/servers/detail?all_tenants=1"
        } else {
            "/servers/detail"
        };
        Ok(self
            .list(scope, Service::Compute, path, "servers")
            .await?
            .iter()
            .map(Server::from_json)
            .collect())
    }

    pub async fn server(&self, scope: Option<&str>, id: &str) -> Result<Option<Server>, OsError> {
        match self
            .get(scope, Service::Compute, &format!("/servers/{}", seg(id)))
            .await
        {
            Ok(v) => Ok(Some(Server::from_json(&v["server"]))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Upload a file to a Glance image, streamed from disk (its `len` bytes, as read before).
    pub async fn upload_image(&self, id: &str, file: &std::path::Path, len: u64) -> Result<(), OsError> {
        self.send(
            None,
            Service::Image,
            reqwest::Method::PUT,
            &format!("/images/{}/file", seg(id)),
            Some((Payload::File(file.to_path_buf(), len), "application/octet-stream")),
        )
        .await
        .map(|_| ())
    }

    /// Share image `id` with `project` (an image XOS uploaded is `shared`: only the projects of
    /// the slices that boot it see it). Already a member is fine.
    pub async fn share_image(&self, id: &str, project: &str) -> Result<(), OsError> {
        match self
            .post(
                None,
                Service::Image,
                &format!("/images/{}/members", seg(id)),
                json!({"member": project}),
            )
            .await
        {
            Ok(_) => Ok(()),
            // 409: a member already. 403: not a shared image (a public one, adopted by name).
            Err(e) if matches!(e.status(), Some(409 | 403)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The innermost cause of a transport error ("connection refused"), not reqwest's outer text.
fn root_cause(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

impl backend_kit::CountsCalls for OsClient {
    fn calls(&self) -> u64 {
        OsClient::calls(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_stay_one_path_segment() {
        assert_eq!(seg("../networks/5f1c"), "%2E%2E%2Fnetworks%2F5f1c");
        assert_eq!(seg("2f6e3c1a-0b7d_4a61"), "2f6e3c1a-0b7d_4a61");
        assert_eq!(seg("a?b#c d"), "a%3Fb%23c%20d");
        assert!(safe_path("/ports/2f6e?network_id=a/b"));
        // Encoded, the value is one segment; a server that decodes before routing would still
        // see the slashes, so a value holding one is refused outright.
        assert!(!safe_path(&format!("/ports/{}", seg("../networks/x"))));
        assert!(safe_path(&format!("/ports/{}", seg("a.b:c"))));
        for bad in [
            "/ports/../networks/x",
            "/ports/%2e%2e/networks/x",
            "/ports/./x",
            "/ports//x",
            "/ports/a\\b",
            "/ports/x#frag",
            "ports/x",
            "/ports/%2E%2E",
        ] {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn a_ca_bundle_that_is_not_there_or_not_pem_is_a_clear_error() {
        let e = ca_bundle(std::path::Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.to_string().contains("cannot read /nonexistent/ca.pem"), "{e}");
        let f = std::env::temp_dir().join(format!("xos-ca-{}.pem", std::process::id()));
        std::fs::write(&f, "not a certificate").unwrap();
        let e = ca_bundle(&f);
        std::fs::remove_file(&f).ok();
        assert!(e.unwrap_err().to_string().contains("no PEM certificate"));
        // Debian's bundle (ca-certificates, always on these machines) is read whole.
        let system = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
        assert!(ca_bundle(system).unwrap().len() > 10);
    }

    /// A Keystone that answers the password login with a redirect elsewhere: the client stops
    /// there, and the other listener never sees the password or a token.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        use std::io::{Read, Write};
        let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        elsewhere.set_nonblocking(true).unwrap();
        let there = elsewhere.local_addr().unwrap();
        let keystone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let here = keystone.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = keystone.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{there}/v3/auth/tokens\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            conn.write_all(answer.as_bytes()).unwrap();
        });
        let client = OsClient::new(OsConfig {
            auth_url: format!("http://{here}/v3"),
            user: "admin".into(),
            password: "secret-password".into(),
            project: "admin".into(),
            domain: String::new(),
        })
        .unwrap();
        let e = client.login().await.unwrap_err();
        server.join().unwrap();
        assert_eq!(e.status(), Some(307), "{e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(elsewhere.accept().is_err(), "the redirect target was called");
    }

    #[test]
    fn error_messages_are_read_from_each_service_shape() {
        assert_eq!(
            error_message(
                r#"{"error": {"message": "The request you have made requires authentication.", "code": 401}}"#
            ),
            "The request you have made requires authentication."
        );
        assert_eq!(
            error_message(
                r#"{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found."}}"#
            ),
            "Network x could not be found."
        );
        assert_eq!(
            error_message(r#"{"badRequest": {"code": 400, "message": "Invalid flavorRef."}}"#),
            "Invalid flavorRef."
        );
        assert_eq!(
            error_message("<html>\n 502   Bad Gateway</html>"),
            "<html> 502 Bad Gateway</html>"
        );
    }

    #[test]
    fn config_is_checked_and_auth_url_gets_its_version() {
        let c = |url: &str, user: &str| OsConfig {
            auth_url: url.into(),
            user: user.into(),
            password: "pw".into(),
            project: "admin".into(),
            domain: String::new(),
        };
        let client = OsClient::new(c("http://127.0.0.1:5000/", "admin")).unwrap();
        assert_eq!(client.auth_url(), "http://127.0.0.1:5000/v3");
        assert_eq!(client.config.domain, "Default");
        assert!(matches!(OsClient::new(c("", "admin")), Err(OsError::Config(_))));
        assert!(matches!(
            OsClient::new(c("http://x/v3", "")),
            Err(OsError::Config(_))
        ));
        assert!(!format!("{:?}", c("u", "admin")).contains("pw"));
    }
}
