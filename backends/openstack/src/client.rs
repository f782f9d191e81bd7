//! A small client for the OpenStack REST APIs the synchronizer needs: Keystone v3 (password
//! tokens, projects, users, roles), Neutron v2 (networks, subnets, routers, ports), Glance v2
//! (images) and Nova v2.1 (servers, flavors, key pairs, quotas). Typed requests are built with
//! `serde_json`, sent with `reqwest`; endpoints come from the token's service catalog. Tokens are
//! cached per project scope until shortly before they expire, and a 401 re-authenticates once.
//! An OpenStack SDK crate would pull in far more than these few calls need.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
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
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "NovaServer")]
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
}

// ---- The answers' types ----
//
// Only the fields the backend reads. `id` is required (an object without one is a wrong
// answer, reported as `OsError::Protocol`); the others are read as their default when
// OpenStack leaves them out (a list asked with `fields=`, an extension the cloud lacks, a
// Keystone attribute never set) or sends `null` (Nova's `task_state`, Glance's `checksum`).
// Unknown fields are ignored.

/// A field OpenStack may send as `null`: read as its default, as when it is left out.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A JSON object read as its (key, value) pairs in the answer's order (`null`: none).
fn in_order<'de, D, V>(d: D) -> Result<Vec<(String, V)>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Pairs<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for Pairs<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut pairs = Vec::new();
            while let Some(pair) = map.next_entry()? {
                pairs.push(pair);
            }
            Ok(pairs)
        }
    }
    d.deserialize_any(Pairs(std::marker::PhantomData))
}

/// A Nova server (`servers[]` of `/servers/detail`, `server`), as the API spells it; read
/// into [`Server`].
#[derive(Deserialize)]
struct NovaServer {
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    status: String,
    #[serde(default, deserialize_with = "nullable")]
    tenant_id: String,
    /// Admins only.
    #[serde(
        rename = "OS-EXT-SRV-ATTR:instance_name",
        default,
        deserialize_with = "nullable"
    )]
    instance_name: String,
    /// Only when the server failed.
    #[serde(default)]
    fault: Option<NovaFault>,
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    task_state: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    metadata: HashMap<String, String>,
    /// Addresses by network name, networks in Nova's order.
    #[serde(default, deserialize_with = "in_order")]
    addresses: Vec<(String, Vec<NovaAddress>)>,
}

#[derive(Deserialize)]
struct NovaFault {
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct NovaAddress {
    #[serde(default, deserialize_with = "nullable")]
    addr: String,
    #[serde(rename = "OS-EXT-IPS-MAC:mac_addr", default, deserialize_with = "nullable")]
    mac: String,
}

impl From<NovaServer> for Server {
    fn from(mut v: NovaServer) -> Server {
        let addresses = v
            .addresses
            .into_iter()
            .flat_map(|(net, list)| list.into_iter().map(move |a| (net.clone(), a.addr, a.mac)))
            .collect();
        Server {
            id: v.id,
            name: v.name,
            status: v.status,
            project_id: v.tenant_id,
            instance_name: v.instance_name,
            fault: v.fault.and_then(|f| f.message),
            task_state: v.task_state,
            xos_id: v.metadata.remove(super::META_KEY),
            addresses,
        }
    }
}

/// An object of which only the id is read (a server just made, the token's user).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Ref {
    pub id: String,
}

/// A Nova flavor (`flavors[]` of `/flavors`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
}

/// A Keystone project (`projects[]`, `project`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Project {
    pub id: String,
    /// XOS's marker on the projects it makes (`xos slice <id>`).
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
}

/// A Keystone domain (`domains[]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Domain {
    pub id: String,
}

/// A Keystone user (`users[]`, `user`). Its description is an extra attribute, absent unless
/// set.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct User {
    pub id: String,
    /// XOS's marker on the users it makes (`xos user <id>`).
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
}

/// A Keystone role (`roles[]` of `/roles` and of a user's roles on a project, `role`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
}

/// A Glance v2 image (`images[]`, and the answer to a create, which is not wrapped).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Image {
    pub id: String,
    /// `queued` (no data yet), `saving`, `active`, …
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    /// The property XOS sets on the images it makes: the XOS image id.
    #[serde(default)]
    pub xos_image_id: Option<String>,
}

/// A Neutron object that a killed run may have left twice (see `keep_oldest`).
pub trait Stamped {
    fn id(&self) -> &str;
    /// When it was made (RFC 3339; empty when the cloud does not say).
    fn created_at(&self) -> &str;
}

/// A Neutron network (`networks[]`; a list asked with `fields=` carries only those).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Network {
    pub id: String,
    /// XOS's marker on the networks it makes (`xos network <id>`).
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
    #[serde(default, deserialize_with = "nullable")]
    pub project_id: String,
    /// Subnet ids.
    #[serde(default, deserialize_with = "nullable")]
    pub subnets: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: String,
}

/// A Neutron subnet (`subnets[]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Subnet {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub created_at: String,
}

impl Stamped for Network {
    fn id(&self) -> &str {
        &self.id
    }
    fn created_at(&self) -> &str {
        &self.created_at
    }
}

impl Stamped for Subnet {
    fn id(&self) -> &str {
        &self.id
    }
    fn created_at(&self) -> &str {
        &self.created_at
    }
}

/// A Neutron router (`routers[]`, `router`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Router {
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub project_id: String,
}

/// A Neutron port (`ports[]`; a list asked with `fields=` carries only those).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Port {
    pub id: String,
    /// The server (or router, DHCP agent) the port belongs to.
    #[serde(default, deserialize_with = "nullable")]
    pub device_id: String,
    /// `compute:<zone>` for a server's, `network:…` for a router's or the DHCP agent's.
    #[serde(default, deserialize_with = "nullable")]
    pub device_owner: String,
    #[serde(default, deserialize_with = "nullable")]
    pub network_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub project_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub mac_address: String,
    #[serde(default, deserialize_with = "nullable")]
    pub fixed_ips: Vec<FixedIp>,
}

/// An address of a Neutron port.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct FixedIp {
    #[serde(default, deserialize_with = "nullable")]
    pub subnet_id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub ip_address: String,
}

/// Keystone's answer to a login (`POST /auth/tokens`).
#[derive(Deserialize)]
struct TokenAnswer {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    /// Absent from a token asked with `nocatalog`.
    #[serde(default, deserialize_with = "nullable")]
    catalog: Vec<CatalogEntry>,
    #[serde(default)]
    expires_at: Option<String>,
    user: Ref,
}

/// A service of the token's catalog.
#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    kind: String,
    #[serde(default, deserialize_with = "nullable")]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Deserialize)]
struct CatalogEndpoint {
    /// `public`, `internal`, `admin`.
    #[serde(default, deserialize_with = "nullable")]
    interface: String,
    #[serde(default)]
    url: Option<String>,
}

/// `{"message": …}`, the part of an error body that says what went wrong.
#[derive(Deserialize)]
struct ErrorMessage {
    message: String,
}

/// What a call is, in errors: the method and the path without its query.
fn call_name(method: &reqwest::Method, path: &str) -> String {
    format!("{method} {}", path.split('?').next().unwrap_or(path))
}

/// An answer read as `T`: the object under `key` (`{"<key>": {...}}`), or the whole answer
/// when `key` is empty. What does not read is an [`OsError::Protocol`] saying why.
fn decode<T: DeserializeOwned>(service: Service, what: &str, answer: Json, key: &str) -> Result<T, OsError> {
    let protocol = |reason: String| OsError::Protocol {
        service: service.label(),
        what: what.to_string(),
        reason,
    };
    let v = if key.is_empty() {
        answer
    } else {
        match answer {
            Json::Object(mut m) => m
                .remove(key)
                .ok_or_else(|| protocol(format!("no \"{key}\" in the answer")))?,
            Json::Null => return Err(protocol(format!("an empty answer, expected \"{key}\""))),
            _ => return Err(protocol(format!("not an object with \"{key}\""))),
        }
    };
    serde_json::from_value(v).map_err(|e| {
        protocol(if key.is_empty() {
            e.to_string()
        } else {
            format!("{key}: {e}")
        })
    })
}

/// The items of a list answer (`{"<key>": [...]}`) read as `T`; an item that does not read is
/// an [`OsError::Protocol`] naming it (`ports[3]: missing field "id"`).
fn decode_list<T: DeserializeOwned>(
    service: Service,
    what: &str,
    answer: Json,
    key: &str,
) -> Result<Vec<T>, OsError> {
    let items: Vec<Json> = decode(service, what, answer, key)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item).map_err(|e| OsError::Protocol {
                service: service.label(),
                what: what.to_string(),
                reason: format!("{key}[{i}]: {e}"),
            })
        })
        .collect()
}

/// The message of an OpenStack error body: `{"error": {"message"}}` (Keystone),
/// `{"NeutronError": {"message"}}`, `{"badRequest": {"message"}}` (Nova), or the text.
fn error_message(body: &str) -> String {
    if let Ok(Json::Object(m)) = serde_json::from_str::<Json>(body) {
        for v in m.values().filter(|v| v.is_object()) {
            if let Ok(ErrorMessage { message }) = ErrorMessage::deserialize(v) {
                return message;
            }
        }
        if let Ok(ErrorMessage { message }) = ErrorMessage::deserialize(&Json::Object(m)) {
            return message;
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
        let answer: TokenAnswer = serde_json::from_str(&text).map_err(|e| protocol(&e.to_string()))?;
        let mut endpoints = HashMap::new();
        for svc in &answer.token.catalog {
            let Some(kind) = [
                Service::Identity,
                Service::Compute,
                Service::Network,
                Service::Image,
            ]
            .into_iter()
            .map(Service::catalog_type)
            .find(|k| *k == svc.kind) else {
                continue;
            };
            let eps = &svc.endpoints;
            let url = eps
                .iter()
                .find(|e| e.interface == "public")
                .or_else(|| eps.first())
                .and_then(|e| e.url.as_deref());
            if let Some(url) = url {
                endpoints.insert(kind, url.trim_end_matches('/').to_string());
            }
        }
        // Keystone itself is where we logged in, whatever the catalog says.
        endpoints.insert("identity", c.auth_url.clone());
        let lifetime = chrono::DateTime::parse_from_rfc3339(answer.token.expires_at.as_deref().unwrap_or(""))
            .ok()
            .map(|t| (t.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64)
            .unwrap_or(3600);
        let token = Token {
            value,
            renew_at: Instant::now() + Duration::from_secs(lifetime.saturating_sub(300).max(30)),
            endpoints,
            user_id: answer.token.user.id,
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
        let what = call_name(&method, path);
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

    /// The items of a list answer (`{"<key>": [...]}`), untyped (for tests and one-off looks;
    /// the backend reads its answers with [`OsClient::list_as`]).
    pub async fn list(
        &self,
        scope: Option<&str>,
        service: Service,
        path: &str,
        key: &str,
    ) -> Result<Vec<Json>, OsError> {
        self.list_as(scope, service, path, key).await
    }

    /// The items of a list answer (`{"<key>": [...]}`) read as `T`. An answer without `key`,
    /// or an item that does not read as `T`, is an [`OsError::Protocol`].
    pub async fn list_as<T: DeserializeOwned>(
        &self,
        scope: Option<&str>,
        service: Service,
        path: &str,
        key: &str,
    ) -> Result<Vec<T>, OsError> {
        let v = self.get(scope, service, path).await?;
        decode_list(service, &call_name(&reqwest::Method::GET, path), v, key)
    }

    /// A GET answer read as `T`: the object under `key` (`{"server": {...}}`), or the whole
    /// answer when `key` is empty (Glance). What does not read is an [`OsError::Protocol`].
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        scope: Option<&str>,
        service: Service,
        path: &str,
        key: &str,
    ) -> Result<T, OsError> {
        let v = self.get(scope, service, path).await?;
        decode(service, &call_name(&reqwest::Method::GET, path), v, key)
    }

    /// A POST answer read as `T`, as [`OsClient::get_as`] reads a GET's.
    pub async fn post_as<T: DeserializeOwned>(
        &self,
        scope: Option<&str>,
        service: Service,
        path: &str,
        body: Json,
        key: &str,
    ) -> Result<T, OsError> {
        let v = self.post(scope, service, path, body).await?;
        decode(service, &call_name(&reqwest::Method::POST, path), v, key)
    }

    // ---- Keystone ----

    pub async fn project_by_name(&self, name: &str) -> Result<Option<Project>, OsError> {
        Ok(self
            .list_as(
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
        let doms: Vec<Domain> = self
            .list_as(
                None,
                Service::Identity,
                &format!("/domains?name={}", q(&name)),
                "domains",
            )
            .await?;
        doms.into_iter()
            .next()
            .map(|d| d.id)
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
        let flavors: Vec<Flavor> = self
            .list_as(None, Service::Compute, "/flavors", "flavors")
            .await?;
        for f in &flavors {
            self.remember_id("flavor", &f.name, &f.id);
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
        let roles: Vec<Role> = self
            .list_as(
                None,
                Service::Identity,
                &format!("/roles?name={}", q(name)),
                "roles",
            )
            .await?;
        match roles.into_iter().next() {
            Some(r) => Ok(r.id),
            None => {
                let r: Role = self
                    .post_as(
                        None,
                        Service::Identity,
                        "/roles",
                        json!({"role": {"name": name}}),
                        "role",
                    )
                    .await?;
                Ok(r.id)
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
            .list_as::<Role>(
                None,
                Service::Identity,
                &format!("/projects/{}/users/{}/roles", seg(project), seg(user)),
                "roles",
            )
            .await?
            .into_iter()
            .map(|r| (r.id, r.name))
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
        self.list_as(scope, Service::Compute, path, "servers").await
    }

    pub async fn server(&self, scope: Option<&str>, id: &str) -> Result<Option<Server>, OsError> {
        match self
            .get_as(
                scope,
                Service::Compute,
                &format!("/servers/{}", seg(id)),
                "server",
            )
            .await
        {
            Ok(s) => Ok(Some(s)),
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

    /// A list answer of `service` to `GET path`, read as the backend reads it.
    fn listed<T: DeserializeOwned>(
        service: Service,
        path: &str,
        key: &str,
        answer: &str,
    ) -> Result<Vec<T>, OsError> {
        decode_list(
            service,
            &call_name(&reqwest::Method::GET, path),
            serde_json::from_str(answer).unwrap(),
            key,
        )
    }

    // Samples shaped after the OpenStack API reference (docs.openstack.org/api-ref).

    #[test]
    fn a_keystone_token_gives_the_public_endpoints_the_user_and_the_expiry() {
        let answer: TokenAnswer = serde_json::from_str(
            r#"{"token": {
                "methods": ["password"],
                "user": {"domain": {"id": "default", "name": "Default"}, "id": "ee4dfb6e5540447cb3741905149d9b6e",
                         "name": "admin", "password_expires_at": null},
                "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
                "expires_at": "2015-11-07T02:58:43.578887Z",
                "issued_at": "2015-11-07T01:58:43.578929Z",
                "project": {"domain": {"id": "default", "name": "Default"}, "id": "a6944d763bf64ee6a275f1263fae0352", "name": "admin"},
                "is_domain": false,
                "roles": [{"id": "51cc68287d524c759f47c811e6463340", "name": "admin"}],
                "catalog": [
                    {"endpoints": [
                        {"region_id": "RegionOne", "url": "http://10.0.0.5:8774/v2.1/", "region": "RegionOne",
                         "interface": "internal", "id": "1"},
                        {"region_id": "RegionOne", "url": "http://203.0.113.5:8774/v2.1/", "region": "RegionOne",
                         "interface": "public", "id": "2"}],
                     "type": "compute", "id": "050726f278654128aba89757ae25910c", "name": "nova"},
                    {"endpoints": [{"url": "http://203.0.113.5:9696", "interface": "admin", "region": "RegionOne", "id": "3"}],
                     "type": "network", "id": "1e8b5d1c", "name": "neutron"},
                    {"endpoints": [], "type": "placement", "id": "9", "name": "placement"}
                ]}}"#,
        )
        .unwrap();
        let t = answer.token;
        assert_eq!(t.user.id, "ee4dfb6e5540447cb3741905149d9b6e");
        assert_eq!(t.expires_at.as_deref(), Some("2015-11-07T02:58:43.578887Z"));
        let kinds: Vec<&str> = t.catalog.iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds, ["compute", "network", "placement"]);
        let compute = &t.catalog[0].endpoints;
        assert_eq!(compute[1].interface, "public");
        assert_eq!(compute[1].url.as_deref(), Some("http://203.0.113.5:8774/v2.1/"));
        assert!(t.catalog[2].endpoints.is_empty());
        // A token without a catalog (`nocatalog`) reads; one without its user does not.
        let bare: TokenAnswer = serde_json::from_str(
            r#"{"token": {"user": {"id": "u1"}, "expires_at": "2015-11-07T02:58:43Z"}}"#,
        )
        .unwrap();
        assert!(bare.token.catalog.is_empty());
        assert!(serde_json::from_str::<TokenAnswer>(r#"{"token": {"catalog": []}}"#).is_err());
    }

    #[test]
    fn keystone_projects_domains_users_and_roles_are_read() {
        let projects: Vec<Project> = listed(
            Service::Identity,
            "/projects?name=mysite_slice",
            "projects",
            r#"{"links": {"next": null, "previous": null, "self": "http://example.com/identity/v3/projects"},
                "projects": [
                  {"is_domain": false, "description": "xos slice 7", "domain_id": "default", "enabled": true,
                   "id": "0c4e939acacf4376bdcd1129f1a054ad", "links": {"self": "http://example.com/identity/v3/projects/0c4e"},
                   "name": "mysite_slice", "parent_id": "default", "tags": []},
                  {"is_domain": false, "description": null, "domain_id": "default", "enabled": true,
                   "id": "1a2b", "name": "other", "parent_id": null, "tags": []}]}"#,
        )
        .unwrap();
        assert_eq!(projects[0].id, "0c4e939acacf4376bdcd1129f1a054ad");
        assert_eq!(projects[0].description, "xos slice 7");
        assert_eq!(projects[1].description, "", "a null description reads as none");
        let made: Project = decode(
            Service::Identity,
            "POST /projects",
            json!({"project": {"description": "xos site 3", "domain_id": "default", "enabled": true,
                               "id": "93ebbcc35335488b96ff9cd7d18cbb2e", "is_domain": false, "name": "mysite",
                               "parent_id": "default", "tags": [], "links": {"self": "x"}}}),
            "project",
        )
        .unwrap();
        assert_eq!(made.id, "93ebbcc35335488b96ff9cd7d18cbb2e");

        let domains: Vec<Domain> = listed(
            Service::Identity,
            "/domains?name=Default",
            "domains",
            r#"{"domains": [{"description": "The default domain", "enabled": true, "id": "default",
                             "links": {"self": "x"}, "name": "Default", "tags": []}],
                "links": {"next": null, "previous": null, "self": "x"}}"#,
        )
        .unwrap();
        assert_eq!(domains[0].id, "default");

        // A user's description is an extra attribute: absent unless it was set.
        let users: Vec<User> = listed(
            Service::Identity,
            "/users?name=jane@example.org",
            "users",
            r#"{"links": {"next": null, "previous": null, "self": "x"},
                "users": [
                  {"domain_id": "default", "enabled": true, "id": "2844b2a08be147a08ef58317d6471f1f",
                   "name": "jane@example.org", "description": "xos user 4", "email": "jane@example.org",
                   "links": {"self": "x"}, "password_expires_at": null, "options": {}},
                  {"domain_id": "default", "enabled": true, "id": "4ab84ea7b7c4", "name": "other",
                   "links": {"self": "x"}, "password_expires_at": null, "options": {}}]}"#,
        )
        .unwrap();
        assert_eq!(users[0].description, "xos user 4");
        assert_eq!(
            users[1],
            User {
                id: "4ab84ea7b7c4".into(),
                description: String::new()
            }
        );

        let roles: Vec<Role> = listed(
            Service::Identity,
            "/projects/p/users/u/roles",
            "roles",
            r#"{"links": {"next": null, "previous": null, "self": "x"},
                "roles": [{"id": "9fe2ff9ee4384b1894a90878d3e92bab", "links": {"self": "x"}, "name": "member",
                           "domain_id": null, "description": null, "options": {}},
                          {"id": "b8b8f55f", "links": {"self": "x"}, "name": "admin", "domain_id": null}]}"#,
        )
        .unwrap();
        let named: Vec<(&str, &str)> = roles.iter().map(|r| (r.id.as_str(), r.name.as_str())).collect();
        assert_eq!(
            named,
            [
                ("9fe2ff9ee4384b1894a90878d3e92bab", "member"),
                ("b8b8f55f", "admin")
            ]
        );
        let made: Role = decode(
            Service::Identity,
            "POST /roles",
            json!({"role": {"domain_id": null, "id": "1e443fa8cee3482a8a2b6954dd5c8f12", "links": {"self": "x"},
                            "name": "manager", "options": {}}}),
            "role",
        )
        .unwrap();
        assert_eq!(made.id, "1e443fa8cee3482a8a2b6954dd5c8f12");
    }

    #[test]
    fn nova_servers_keep_their_addresses_in_novas_order_and_their_xos_id() {
        let servers: Vec<Server> = listed(
            Service::Compute,
            "/servers/detail?all_tenants=1",
            "servers",
            r#"{"servers": [
              {"OS-DCF:diskConfig": "AUTO", "OS-EXT-AZ:availability_zone": "nova",
               "OS-EXT-SRV-ATTR:host": "compute1", "OS-EXT-SRV-ATTR:instance_name": "instance-00000001",
               "OS-EXT-STS:power_state": 1, "OS-EXT-STS:task_state": null, "OS-EXT-STS:vm_state": "active",
               "OS-SRV-USG:launched_at": "2017-10-10T15:49:09.516729", "OS-SRV-USG:terminated_at": null,
               "accessIPv4": "", "accessIPv6": "",
               "addresses": {
                 "zeta-private": [
                   {"OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:4c:2c:30", "OS-EXT-IPS:type": "fixed", "addr": "10.0.1.5", "version": 4},
                   {"OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:4c:2c:30", "OS-EXT-IPS:type": "floating", "addr": "172.24.4.3", "version": 4}],
                 "alpha-public": [
                   {"OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:11:22:33", "OS-EXT-IPS:type": "fixed", "addr": "192.168.0.3", "version": 4}]},
               "config_drive": "", "created": "2017-10-10T15:49:08Z",
               "flavor": {"disk": 1, "ephemeral": 0, "extra_specs": {}, "original_name": "m1.tiny", "ram": 512, "swap": 0, "vcpus": 1},
               "hostId": "2091634baaccdc4c5a1d57069c833e402921df696b7f970791b12ec6", "id": "569f39f9-7c76-42a1-9c2d-8394e2638a6d",
               "image": {"id": "70a599e0-31e7-49b7-b260-868f441e862b", "links": []},
               "key_name": null, "links": [], "locked": false,
               "metadata": {"xos_instance_id": "12", "owner": "xos"},
               "name": "mysite_slice-12", "security_groups": [{"name": "default"}], "status": "ACTIVE",
               "tags": [], "tenant_id": "6f70656e737461636b20342065766572", "updated": "2017-10-10T15:49:09Z",
               "user_id": "fake"},
              {"id": "9e5476bd-a4ec-4653-93d6-72c93aa682ba", "name": "broken", "status": "ERROR",
               "tenant_id": "6f70", "OS-EXT-STS:task_state": "deleting", "metadata": {},
               "fault": {"code": 500, "created": "2017-10-10T15:49:09Z", "message": "No valid host was found. "},
               "addresses": {}}]}"#,
        )
        .unwrap();
        let s = &servers[0];
        assert_eq!(s.id, "569f39f9-7c76-42a1-9c2d-8394e2638a6d");
        assert_eq!(s.name, "mysite_slice-12");
        assert_eq!(s.status, "ACTIVE");
        assert_eq!(s.project_id, "6f70656e737461636b20342065766572");
        assert_eq!(s.instance_name, "instance-00000001");
        assert_eq!((s.task_state.as_deref(), s.fault.as_deref()), (None, None));
        assert_eq!(s.xos_id.as_deref(), Some("12"));
        assert!(!s.is_gone());
        let addr = |n: &str, a: &str, m: &str| (n.to_string(), a.to_string(), m.to_string());
        assert_eq!(
            s.addresses,
            [
                addr("zeta-private", "10.0.1.5", "fa:16:3e:4c:2c:30"),
                addr("zeta-private", "172.24.4.3", "fa:16:3e:4c:2c:30"),
                addr("alpha-public", "192.168.0.3", "fa:16:3e:11:22:33"),
            ]
        );
        let b = &servers[1];
        assert_eq!(b.fault.as_deref(), Some("No valid host was found. "));
        assert_eq!((b.xos_id.as_deref(), b.instance_name.as_str()), (None, ""));
        assert!(b.is_gone() && b.addresses.is_empty());

        let one: Server = decode(
            Service::Compute,
            "GET /servers/x",
            json!({"server": {"id": "569f", "name": "n", "status": "BUILD", "tenant_id": "p",
                              "OS-EXT-STS:task_state": "spawning", "metadata": {"xos_instance_id": "3"}, "addresses": {}}}),
            "server",
        )
        .unwrap();
        assert_eq!(
            (one.task_state.as_deref(), one.xos_id.as_deref()),
            (Some("spawning"), Some("3"))
        );

        // A create answers with little more than the id.
        let made: Ref = decode(
            Service::Compute,
            "POST /servers",
            json!({"server": {"OS-DCF:diskConfig": "AUTO", "adminPass": "6NpUwoz2QDRN",
                              "id": "f5dc173b-6804-445a-a6d8-c705dad5b5eb", "links": [],
                              "security_groups": [{"name": "default"}]}}),
            "server",
        )
        .unwrap();
        assert_eq!(made.id, "f5dc173b-6804-445a-a6d8-c705dad5b5eb");

        let flavors: Vec<Flavor> = listed(
            Service::Compute,
            "/flavors",
            "flavors",
            r#"{"flavors": [{"id": "1", "links": [], "name": "m1.tiny", "description": null},
                            {"id": "7d4c7a4e-2b6a", "links": [], "name": "m1.small", "description": null}]}"#,
        )
        .unwrap();
        assert_eq!(
            flavors[1],
            Flavor {
                id: "7d4c7a4e-2b6a".into(),
                name: "m1.small".into()
            }
        );
    }

    #[test]
    fn glance_images_are_read_with_xos_s_property() {
        let images: Vec<Image> = listed(
            Service::Image,
            "/images?name=trusty-server",
            "images",
            r#"{"images": [
                {"status": "active", "name": "trusty-server", "tags": [], "container_format": "bare",
                 "created_at": "2014-11-07T17:07:06Z", "disk_format": "qcow2", "updated_at": "2014-11-07T17:19:09Z",
                 "visibility": "public", "self": "/v2/images/1bea47ed-f6a9-463b-b423-14b9cca9ad27",
                 "min_disk": 0, "protected": false, "id": "1bea47ed-f6a9-463b-b423-14b9cca9ad27",
                 "file": "/v2/images/1bea47ed-f6a9-463b-b423-14b9cca9ad27/file",
                 "checksum": "64d7c1cd2b6f60c92c14662941cb7913", "os_hash_algo": "sha512",
                 "owner": "5ef70662f8b34079a6eddb8da9d75fe8", "size": 13167616, "min_ram": 0,
                 "schema": "/v2/schemas/image", "virtual_size": null},
                {"status": "queued", "name": "trusty-server", "tags": [], "container_format": "bare",
                 "disk_format": "raw", "visibility": "shared", "id": "b2173dd3-7ad6-4362-baa6-a68bce3565cb",
                 "checksum": null, "size": null, "xos_image_id": "5", "owner": "5ef7"}],
              "schema": "/v2/schemas/images", "first": "/v2/images?name=trusty-server"}"#,
        )
        .unwrap();
        assert_eq!(images[0].status, "active");
        assert_eq!(images[0].xos_image_id, None);
        assert_eq!(
            images[1],
            Image {
                id: "b2173dd3-7ad6-4362-baa6-a68bce3565cb".into(),
                status: "queued".into(),
                xos_image_id: Some("5".into()),
            }
        );
        // Glance answers a create with the image itself.
        let made: Image = decode(
            Service::Image,
            "POST /images",
            json!({"status": "queued", "name": "img", "id": "e7db3b45-8db7-47ad-8109-3fb55c2c24fd",
                   "visibility": "shared", "checksum": null, "xos_image_id": "5"}),
            "",
        )
        .unwrap();
        assert_eq!(made.id, "e7db3b45-8db7-47ad-8109-3fb55c2c24fd");
    }

    #[test]
    fn neutron_networks_subnets_routers_and_ports_are_read() {
        let nets: Vec<Network> = listed(
            Service::Network,
            "/networks?name=public",
            "networks",
            r#"{"networks": [
                {"admin_state_up": true, "availability_zone_hints": [], "availability_zones": ["nova"],
                 "created_at": "2016-03-08T20:19:41", "dns_domain": "my-domain.org.", "id": "d32019d3-bc6e-4319-9c1d-6722fc136a22",
                 "ipv4_address_scope": null, "ipv6_address_scope": null, "l2_adjacency": false, "mtu": 1500,
                 "name": "net1", "port_security_enabled": true, "project_id": "4fd44f30292945e481c7b8a0c8908869",
                 "qos_policy_id": "6a8454ade84346f59e8d40665f878b2e", "revision_number": 1, "router:external": false,
                 "shared": false, "status": "ACTIVE", "subnets": ["54d6f61d-db07-451c-9ab3-b9609b6b6f0b"],
                 "tenant_id": "4fd44f30292945e481c7b8a0c8908869", "updated_at": "2016-03-08T20:19:41",
                 "vlan_transparent": true, "description": "xos network 9", "is_default": false, "tags": []},
                {"id": "8a3b", "name": "bare", "subnets": [], "project_id": "4fd4", "description": null}]}"#,
        )
        .unwrap();
        assert_eq!(nets[0].id, "d32019d3-bc6e-4319-9c1d-6722fc136a22");
        assert_eq!(nets[0].subnets, ["54d6f61d-db07-451c-9ab3-b9609b6b6f0b"]);
        assert_eq!(
            (
                nets[0].description.as_str(),
                nets[0].project_id.as_str(),
                nets[0].created_at()
            ),
            (
                "xos network 9",
                "4fd44f30292945e481c7b8a0c8908869",
                "2016-03-08T20:19:41"
            )
        );
        assert_eq!((nets[1].description.as_str(), nets[1].created_at()), ("", ""));
        // Asked with `fields=`, Neutron sends only those.
        let few: Vec<Network> = listed(
            Service::Network,
            "/networks?fields=id&fields=description&fields=project_id",
            "networks",
            r#"{"networks": [{"id": "d320", "description": "xos network 9", "project_id": "4fd4"}]}"#,
        )
        .unwrap();
        assert!(few[0].subnets.is_empty());

        let subnets: Vec<Subnet> = listed(
            Service::Network,
            "/subnets?network_id=d320",
            "subnets",
            r#"{"subnets": [{"name": "net1-subnet", "enable_dhcp": true, "network_id": "d320",
                             "project_id": "4fd4", "dns_nameservers": [], "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.254"}],
                             "host_routes": [], "ip_version": 4, "gateway_ip": "10.0.0.1", "cidr": "10.0.0.0/24",
                             "id": "08eae331-0402-425a-923c-34f7cfe39c1b", "created_at": "2016-10-10T14:35:47Z",
                             "description": "xos network 9", "ipv6_address_mode": null, "ipv6_ra_mode": null,
                             "revision_number": 2, "service_types": [], "subnetpool_id": null, "tags": [],
                             "updated_at": "2016-10-10T14:35:47Z"}]}"#,
        )
        .unwrap();
        assert_eq!(
            (subnets[0].id(), subnets[0].created_at()),
            ("08eae331-0402-425a-923c-34f7cfe39c1b", "2016-10-10T14:35:47Z")
        );

        let routers: Vec<Router> = listed(
            Service::Network,
            "/routers?project_id=0bd1",
            "routers",
            r#"{"routers": [{"admin_state_up": true, "availability_zone_hints": [], "availability_zones": ["nova"],
                             "description": "xos network 9", "distributed": false,
                             "external_gateway_info": {"enable_snat": true, "external_fixed_ips": [{"ip_address": "172.24.4.6",
                                 "subnet_id": "b930d7f6-ceb7-40a0-8b81-a425dd994ccf"}], "network_id": "ae34051f-aa6c-4c75-abf5-50dc9ac99ef3"},
                             "flavor_id": "f7b14d9a", "ha": false, "id": "915a14a6-867b-4af7-83d1-70efceb146f9",
                             "name": "router2", "revision_number": 1, "routes": [], "status": "ACTIVE",
                             "project_id": "0bd18306d801447bb457a46252d82d13", "tenant_id": "0bd18306d801447bb457a46252d82d13",
                             "tags": []}]}"#,
        )
        .unwrap();
        assert_eq!(
            routers[0],
            Router {
                id: "915a14a6-867b-4af7-83d1-70efceb146f9".into(),
                project_id: "0bd18306d801447bb457a46252d82d13".into(),
            }
        );
        let made: Router = decode(
            Service::Network,
            "POST /routers",
            json!({"router": {"id": "f8a44de0-fc8e-45df-93c7-f79bf3b01c95", "name": "net-router",
                              "project_id": "0bd1", "status": "ACTIVE", "external_gateway_info": null}}),
            "router",
        )
        .unwrap();
        assert_eq!(made.id, "f8a44de0-fc8e-45df-93c7-f79bf3b01c95");

        let ports: Vec<Port> = listed(
            Service::Network,
            "/ports?device_id=569f&network_id=d320&project_id=4fd4",
            "ports",
            r#"{"ports": [
                {"admin_state_up": true, "allowed_address_pairs": [], "binding:vnic_type": "normal",
                 "created_at": "2016-03-08T20:19:41", "data_plane_status": null, "description": "",
                 "device_id": "569f39f9-7c76-42a1-9c2d-8394e2638a6d", "device_owner": "compute:nova",
                 "dns_assignment": [], "dns_name": "", "extra_dhcp_opts": [],
                 "fixed_ips": [{"ip_address": "10.0.0.5", "subnet_id": "a0304c3a-4f08-4c43-88af-d796509c97d2"}],
                 "id": "94225baa-9d3f-4b93-bf12-b41e7ce49cdb", "ip_allocation": "immediate",
                 "mac_address": "fa:16:3e:48:b8:9f", "name": "", "network_id": "d32019d3-bc6e-4319-9c1d-6722fc136a22",
                 "port_security_enabled": true, "project_id": "4fd44f30292945e481c7b8a0c8908869",
                 "revision_number": 1, "security_groups": [], "status": "ACTIVE", "tags": [],
                 "tenant_id": "4fd44f30292945e481c7b8a0c8908869", "updated_at": "2016-03-08T20:19:41"},
                {"id": "5e3", "device_id": "915a", "device_owner": "network:router_interface",
                 "fixed_ips": [{"ip_address": "10.0.0.1", "subnet_id": "a030"}], "mac_address": "fa:16:3e:00:00:01",
                 "network_id": "d320", "project_id": "4fd4", "status": "ACTIVE"}]}"#,
        )
        .unwrap();
        let p = &ports[0];
        assert_eq!(p.id, "94225baa-9d3f-4b93-bf12-b41e7ce49cdb");
        assert_eq!(
            (p.device_id.as_str(), p.network_id.as_str(), p.project_id.as_str()),
            (
                "569f39f9-7c76-42a1-9c2d-8394e2638a6d",
                "d32019d3-bc6e-4319-9c1d-6722fc136a22",
                "4fd44f30292945e481c7b8a0c8908869"
            )
        );
        assert_eq!(p.mac_address, "fa:16:3e:48:b8:9f");
        assert_eq!(
            p.fixed_ips,
            [FixedIp {
                subnet_id: "a0304c3a-4f08-4c43-88af-d796509c97d2".into(),
                ip_address: "10.0.0.5".into()
            }]
        );
        assert!(!p.device_owner.starts_with("network:") && ports[1].device_owner.starts_with("network:"));
        let ids: Vec<Port> = listed(
            Service::Network,
            "/ports?fields=id",
            "ports",
            r#"{"ports": [{"id": "9422"}]}"#,
        )
        .unwrap();
        assert!(ids[0].fixed_ips.is_empty() && ids[0].device_owner.is_empty());
    }

    #[test]
    fn an_answer_that_does_not_read_is_a_protocol_error_naming_what_is_wrong() {
        // The second port has no id: the whole answer is refused, saying which item.
        let e = listed::<Port>(
            Service::Network,
            "/ports?project_id=4fd4",
            "ports",
            r#"{"ports": [{"id": "9422", "device_owner": "compute:nova"}, {"device_owner": "compute:nova", "status": "DOWN"}]}"#,
        )
        .unwrap_err();
        assert!(matches!(e, OsError::Protocol { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "unexpected answer from Neutron to GET /ports: ports[1]: missing field `id`"
        );
        // A wrong type, the list's key missing, an object instead of a list, an empty answer.
        let e = listed::<Network>(
            Service::Network,
            "/networks",
            "networks",
            r#"{"networks": [{"id": 42}]}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("networks[0]: invalid type: integer `42`, expected a string"),
            "{e}"
        );
        let e = listed::<Role>(
            Service::Identity,
            "/roles?name=x",
            "roles",
            r#"{"error": "nope"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "unexpected answer from Keystone to GET /roles: no \"roles\" in the answer"
        );
        let e = listed::<Flavor>(
            Service::Compute,
            "/flavors",
            "flavors",
            r#"{"flavors": {"id": "1"}}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("flavors: invalid type: map, expected a sequence"),
            "{e}"
        );
        let e = decode::<Server>(Service::Compute, "GET /servers/x", Json::Null, "server").unwrap_err();
        assert!(e.to_string().contains("an empty answer"), "{e}");
        let e = decode::<Server>(
            Service::Compute,
            "GET /servers/x",
            json!({"server": {"id": "x", "addresses": ["10.0.0.5"]}}),
            "server",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("server: invalid type: sequence, expected an object"),
            "{e}"
        );
        // Nor is a token without its user read as one.
        assert!(serde_json::from_str::<TokenAnswer>(r#"{"token": {"user": {}}}"#).is_err());
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
