//! Authentication: HTTP basic auth with a cache of verified credentials, browser sessions
//! (tower-sessions, stored in the same database), CSRF for cookie-authenticated writes, and the
//! login/logout form handlers.
//!
//! - Basic auth verifies argon2 once per credential, then keeps the verified principal in memory
//!   under an HMAC of user + password (never the password itself) for a short time. The entry is
//!   dropped when that user changes (password, deactivation) or when it expires. Wrong passwords
//!   are never cached and stay slow.
//! - Session requests that write (`POST/PUT/PATCH/DELETE`) must carry the `X-CSRFToken` header
//!   with the value of the JS-readable `xoscsrftoken` cookie, which must also equal the token kept
//!   in the session (double submit, bound to the session). Basic-auth requests need none.
//! - Form posts (login, logout) are checked by `Origin` (or `Referer`) against the `Host`.
//! - A 401 carries `WWW-Authenticate: Basic` only when the request tried basic auth, so an expired
//!   browser session never pops the browser's login dialog.

pub use crate::store::password;
pub mod session_store;
pub mod throttle;

use crate::config::Config;
use crate::db::{Sql, Value};
use crate::error::ApiError;
use crate::store::{Actor, ChangeKind, Principal, StatusUpdate};
use app::registry::SqlType;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower_sessions::Session;

/// What authentication needs of the shared state (handlers get it through `FromRef`).
#[derive(Clone)]
pub struct AuthState {
    pub store: crate::store::Store,
    pub config: Arc<Config>,
    pub credentials: Arc<CredentialCache>,
    pub throttle: Arc<throttle::Throttle>,
}

/// The stored form of an API token's key (SHA-256, hex): what authentication compares.
pub fn key_hash(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How a request authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    None,
    Basic,
    Token,
    Session,
}

/// The outcome of authentication, put into every request's extensions.
#[derive(Clone, Debug)]
pub struct AuthContext {
    pub principal: Option<Principal>,
    pub method: AuthMethod,
    /// Basic credentials were sent but were wrong.
    pub bad_credentials: bool,
}

impl AuthContext {
    /// The actor, or the 401 an API request without credentials gets.
    pub fn require(&self) -> Result<Actor, ApiError> {
        match &self.principal {
            Some(p) => Ok(Actor::User(p.clone())),
            None => Err(ApiError::Unauthorized {
                detail: if self.bad_credentials {
                    "Invalid username/password.".into()
                } else {
                    "Authentication credentials were not provided.".into()
                },
                basic: self.method == AuthMethod::Basic,
            }),
        }
    }
}

/// Name of the JS-readable CSRF cookie (what xoslib's client read).
pub const CSRF_COOKIE: &str = "xoscsrftoken";
/// Header carrying the CSRF token back.
pub const CSRF_HEADER: &str = "x-csrftoken";
const SESSION_USER: &str = "user_id";
/// When the session's user logged in (Unix milliseconds): the absolute lifetime counts from it.
const SESSION_STARTED: &str = "started_ms";
/// The [`password_stamp`] at login: a changed password ends the session.
const SESSION_PASSWORD: &str = "password_stamp";
const SESSION_CSRF: &str = "csrf";

/// How long a verified basic-auth credential is trusted without re-hashing.
const CREDENTIAL_TTL: Duration = Duration::from_secs(300);
/// Bound on the cache (entries beyond it evict expired ones, then everything).
const CREDENTIAL_CACHE_MAX: usize = 10_000;

/// A verified credential as the cache keeps it.
#[derive(Clone)]
struct Entry {
    principal: Principal,
    at: Instant,
    /// The store's credential generation when it was last checked.
    generation: u64,
    /// What [`CredentialCache::get_or_verify`]'s recheck compares: the stored password hash the
    /// password was verified against (basic auth), empty for tokens.
    stamp: String,
}

/// The outcome of a verification: who, what to compare on a recheck, and whether to cache it.
pub struct Verified {
    pub principal: Principal,
    pub stamp: String,
    pub cacheable: bool,
}

/// Verified credentials (basic auth and tokens), keyed by HMAC(process key, user + password).
///
/// An entry is used as is while the store's credential generation has not moved since it was
/// checked. When it has (a user or token was written here, or by another process: Postgres
/// notifications, SQLite's data_version), the entry is checked again with one cheap query before
/// use (no argon2): a revoked token, a deactivated user, a changed password or a removed
/// `is_admin` stops working on every server within the change channel's delay (well under a
/// second).
pub struct CredentialCache {
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    /// One verification at a time per credential (see [`CredentialCache::verifying`]).
    inflight: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
}

impl Default for CredentialCache {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        CredentialCache {
            key,
            entries: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

/// What a lookup found.
enum Lookup {
    Fresh(Principal),
    /// Present, but credentials changed somewhere since it was checked.
    Stale(Principal, String),
    Missing,
}

impl CredentialCache {
    /// The cache key of a credential: HMAC(process key, user, password).
    pub fn fingerprint(&self, user: &str, password: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes any key length");
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn lookup(&self, fp: &[u8; 32], generation: u64) -> Lookup {
        let mut map = self.entries.lock().expect("credential cache lock");
        match map.get(fp) {
            Some(e) if e.at.elapsed() >= CREDENTIAL_TTL => {
                map.remove(fp);
                Lookup::Missing
            }
            Some(e) if e.generation == generation => Lookup::Fresh(e.principal.clone()),
            Some(e) => Lookup::Stale(e.principal.clone(), e.stamp.clone()),
            None => Lookup::Missing,
        }
    }

    /// A live entry for this key that needs no recheck at `generation`.
    pub fn get(&self, fp: &[u8; 32], generation: u64) -> Option<Principal> {
        match self.lookup(fp, generation) {
            Lookup::Fresh(p) => Some(p),
            _ => None,
        }
    }

    /// The principal of credential `fp` at credential generation `generation`: from the cache;
    /// or, for an entry older than the generation, from `recheck` (given the cached principal
    /// and stamp; cheap, no argon2); or else from `verify`, run by one request at a time per
    /// credential. When an entry expires under load, the requests that miss it wait for the
    /// first one's answer instead of each running argon2 at once (which stalled the server for
    /// seconds in the soak). Both answer `Some(Verified)` or `None` for bad credentials; a
    /// failure is never cached.
    pub async fn get_or_verify<F, Fut, R, RFut, E>(
        &self,
        fp: [u8; 32],
        generation: u64,
        verify: F,
        recheck: R,
    ) -> Result<Option<Principal>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Verified>, E>>,
        R: FnOnce(Principal, String) -> RFut,
        RFut: std::future::Future<Output = Result<Option<Verified>, E>>,
    {
        if let Lookup::Fresh(p) = self.lookup(&fp, generation) {
            return Ok(Some(p));
        }
        // Held until this request's answer is cached (or failed).
        let _guard = self.verifying(&fp).await;
        let answer = match self.lookup(&fp, generation) {
            Lookup::Fresh(p) => return Ok(Some(p)),
            Lookup::Stale(p, stamp) => recheck(p, stamp).await?,
            Lookup::Missing => verify().await?,
        };
        Ok(match answer {
            Some(v) => {
                if v.cacheable {
                    self.put(fp, v.principal.clone(), generation, v.stamp);
                } else {
                    self.forget(&fp);
                }
                Some(v.principal)
            }
            None => {
                self.forget(&fp);
                None
            }
        })
    }

    /// The lock of one credential's verification.
    async fn verifying(&self, fp: &[u8; 32]) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.inflight.lock().expect("credential cache lock");
            if map.len() >= CREDENTIAL_CACHE_MAX {
                // Locks nobody holds or waits for.
                map.retain(|_, m| Arc::strong_count(m) > 1);
            }
            map.entry(*fp).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Remember a verified credential, checked at credential generation `generation`.
    pub fn put(&self, fp: [u8; 32], p: Principal, generation: u64, stamp: String) {
        let mut map = self.entries.lock().expect("credential cache lock");
        if map.len() >= CREDENTIAL_CACHE_MAX {
            map.retain(|_, e| e.at.elapsed() < CREDENTIAL_TTL);
            if map.len() >= CREDENTIAL_CACHE_MAX {
                map.clear();
            }
        }
        let at = match map.get(&fp) {
            // A recheck keeps the original verification time: the TTL still ends it.
            Some(e) if e.principal.id == p.id => e.at,
            _ => Instant::now(),
        };
        map.insert(
            fp,
            Entry {
                principal: p,
                at,
                generation,
                stamp,
            },
        );
    }

    fn forget(&self, fp: &[u8; 32]) {
        self.entries.lock().expect("credential cache lock").remove(fp);
    }

    /// Forget every credential of user `id` (their row changed).
    pub fn forget_user(&self, id: i64) {
        self.entries
            .lock()
            .expect("credential cache lock")
            .retain(|_, e| e.principal.id != id);
    }

    /// Drop entries of users that change here at once (the generation check would recheck them
    /// on their next use anyway; this frees them).
    pub fn watch(cache: std::sync::Arc<CredentialCache>, store: &crate::store::Store) {
        let mut rx = store.subscribe();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) if e.model == "User" && e.kind != ChangeKind::Status => cache.forget_user(e.id),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        cache.entries.lock().expect("credential cache lock").clear()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
}

/// A user row as authentication needs it.
struct UserRow {
    principal: Principal,
    password: String,
    is_active: bool,
}

async fn load_user(state: &AuthState, by: (&str, Value)) -> Result<Option<UserRow>, ApiError> {
    let mut sql = Sql::new(format!(
        "SELECT id, email, is_admin, is_readonly, site_id, password, is_active FROM core_user \
         WHERE NOT deleted AND {} = ",
        by.0
    ));
    sql.bind(by.1);
    let types = [
        SqlType::Int,
        SqlType::Text,
        SqlType::Bool,
        SqlType::Bool,
        SqlType::Int,
        SqlType::Text,
        SqlType::Bool,
    ];
    let rows = state
        .store
        .db()
        .fetch(&sql, &types)
        .await
        .map_err(ApiError::internal)?;
    Ok(rows.into_iter().next().map(|r| UserRow {
        principal: Principal {
            id: r[0].as_int().unwrap_or_default(),
            email: r[1].as_str().unwrap_or_default().to_string(),
            is_admin: r[2].as_bool().unwrap_or(false),
            is_readonly: r[3].as_bool().unwrap_or(false),
            site_id: r[4].as_int().unwrap_or_default(),
        },
        password: r[5].as_str().unwrap_or_default().to_string(),
        is_active: r[6].as_bool().unwrap_or(false),
    }))
}

/// Verify an email and password (argon2 on the bounded pool). `None` for any failure.
pub async fn check_password(
    state: &AuthState,
    email: &str,
    password: &str,
) -> Result<Option<Principal>, ApiError> {
    Ok(verify_password(state, email, password)
        .await?
        .map(|v| v.principal))
}

/// [`check_password`], with the stored hash as the stamp a later recheck compares.
async fn verify_password(
    state: &AuthState,
    email: &str,
    password: &str,
) -> Result<Option<Verified>, ApiError> {
    // A NUL cannot be in an email (Postgres refuses it in a query): an unknown user.
    let user = if email.contains('\0') {
        None
    } else {
        load_user(state, ("email", Value::Text(email.to_string()))).await?
    };
    let (user, stored) = match user {
        Some(u) if u.is_active => {
            let stored = u.password.clone();
            (Some(u), Some(stored))
        }
        _ => (None, None),
    };
    let ok = password::verify_bounded(password.to_string(), stored).await;
    Ok(match user {
        Some(u) if ok => Some(Verified {
            principal: u.principal,
            stamp: u.password,
            cacheable: true,
        }),
        _ => None,
    })
}

/// A cached password credential after credentials changed somewhere: still the same active
/// user with the same stored password hash (then with its current flags), or `None`.
async fn recheck_password(
    state: &AuthState,
    p: Principal,
    stamp: String,
) -> Result<Option<Verified>, ApiError> {
    Ok(match load_user(state, ("id", Value::Int(p.id))).await? {
        Some(u) if u.is_active && u.password == stamp && !stamp.is_empty() => Some(Verified {
            principal: u.principal,
            stamp,
            cacheable: true,
        }),
        _ => None,
    })
}

/// `Authorization: Basic …` decoded: `None` without one, `Some(None)` when it is malformed.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Option<(String, String)>> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok();
    Some(
        decoded
            .and_then(|d| String::from_utf8(d).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_string(), p.to_string()))),
    )
}

/// `Authorization: Token <key>` (DRF's token scheme).
pub(crate) fn token_credentials(headers: &HeaderMap) -> Option<String> {
    let h = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("token")
        .then(|| rest.trim().to_string())
}

/// The user a token belongs to, if it is live and theirs is active; and whether the answer may
/// be cached (not when the token expires within the cache's lifetime). Cheap (a SHA-256 and
/// one query): it is also the recheck of a cached token.
async fn check_token(state: &AuthState, key: &str) -> Result<Option<Verified>, ApiError> {
    let mut sql = Sql::new(
        "SELECT u.id, u.email, u.is_admin, u.is_readonly, u.site_id, u.is_active, t.expires FROM core_apitoken t \
         JOIN core_user u ON u.id = t.user_id WHERE NOT t.deleted AND NOT u.deleted AND t.key_hash = ",
    );
    sql.bind(Value::Text(key_hash(key)));
    let types = [
        SqlType::Int,
        SqlType::Text,
        SqlType::Bool,
        SqlType::Bool,
        SqlType::Int,
        SqlType::Bool,
        SqlType::Time,
    ];
    let rows = state
        .store
        .db()
        .fetch(&sql, &types)
        .await
        .map_err(ApiError::internal)?;
    let Some(r) = rows.into_iter().next() else {
        return Ok(None);
    };
    if r[5].as_bool() != Some(true) {
        return Ok(None);
    }
    let now = chrono::Utc::now();
    let cacheable = match &r[6] {
        Value::Time(t) if *t <= now => return Ok(None),
        Value::Time(t) => *t > now + chrono::Duration::from_std(CREDENTIAL_TTL).unwrap_or_default(),
        _ => true,
    };
    let p = Principal {
        id: r[0].as_int().unwrap_or_default(),
        email: r[1].as_str().unwrap_or_default().to_string(),
        is_admin: r[2].as_bool().unwrap_or(false),
        is_readonly: r[3].as_bool().unwrap_or(false),
        site_id: r[4].as_int().unwrap_or_default(),
    };
    Ok(Some(Verified {
        principal: p,
        stamp: String::new(),
        cacheable,
    }))
}

/// The current principal of a live token (for an open event stream's recheck).
pub(crate) async fn token_principal(state: &AuthState, key: &str) -> Result<Option<Principal>, ApiError> {
    Ok(check_token(state, key).await?.map(|v| v.principal))
}

/// What a session or an open stream remembers of the password it was opened with: a digest of
/// the stored hash, so a password change ends them (as Django's session auth hash does).
pub(crate) fn password_stamp(stored_hash: &str) -> String {
    use sha2::Digest;
    Sha256::digest(stored_hash.as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The current principal of user `id` if it is still active, with its password stamp.
pub(crate) async fn active_user(state: &AuthState, id: i64) -> Result<Option<(Principal, String)>, ApiError> {
    Ok(load_user(state, ("id", Value::Int(id)))
        .await?
        .filter(|u| u.is_active)
        .map(|u| (u.principal, password_stamp(&u.password))))
}

/// Whether the browser session `sid` still belongs to user `user` with password stamp `stamp`:
/// not logged out, not expired by inactivity, within its absolute lifetime, no password change.
pub(crate) async fn session_alive(
    state: &AuthState,
    store: &session_store::DbSessionStore,
    sid: &tower_sessions::session::Id,
    user: i64,
    stamp: &str,
) -> bool {
    use tower_sessions::SessionStore as _;
    let Ok(Some(record)) = store.load(sid).await else {
        return false;
    };
    let now = chrono::Utc::now().timestamp_millis();
    let lifetime = (state.config.session_lifetime_secs as i64).saturating_mul(1000);
    let owner = record.data.get(SESSION_USER).and_then(|v| v.as_i64());
    let started = record.data.get(SESSION_STARTED).and_then(|v| v.as_i64());
    let password = record.data.get(SESSION_PASSWORD).and_then(|v| v.as_str());
    record.expiry_date > tower_sessions::cookie::time::OffsetDateTime::now_utc()
        && owner == Some(user)
        && password == Some(stamp)
        && started.is_some_and(|t| now.saturating_sub(t) < lifetime)
}

fn is_unsafe(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The cookie value named `name` in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';').find_map(|kv| {
                let (k, val) = kv.trim().split_once('=')?;
                (k == name).then(|| val.to_string())
            })
        })
}

/// Paths that answer without looking at credentials: probes and metrics must not fail because
/// a throttled account's `Authorization` header came along (`/metrics` has its own rule).
fn ignores_credentials(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Middleware: authenticate the request and enforce CSRF on cookie-authenticated writes.
pub async fn authenticate(State(state): State<AuthState>, mut req: Request, next: Next) -> Response {
    let mut ctx = AuthContext {
        principal: None,
        method: AuthMethod::None,
        bad_credentials: false,
    };
    let generation = state.store.auth_generation();
    if ignores_credentials(req.uri().path()) {
        // Anonymous, whatever was sent.
    } else if let Some(key) = token_credentials(req.headers()) {
        ctx.method = AuthMethod::Token;
        let fp = state.credentials.fingerprint("\0token", &key);
        match state
            .credentials
            .get_or_verify(
                fp,
                generation,
                || check_token(&state, &key),
                |_, _| check_token(&state, &key),
            )
            .await
        {
            Ok(Some(p)) => ctx.principal = Some(p),
            Ok(None) => ctx.bad_credentials = true,
            Err(e) => return e.into_response(),
        }
    } else if let Some(creds) = basic_credentials(req.headers()) {
        ctx.method = AuthMethod::Basic;
        match creds {
            Some((user, pass)) => {
                let fp = state.credentials.fingerprint(&user, &pass);
                // Only the parts of the request that may cross threads (its body may not).
                let (headers, peer) = (req.headers(), peer(&req));
                let verify = || async {
                    let address = throttle::client_address(headers, peer);
                    // The check and the count are one step: a parallel burst cannot pass the
                    // limit; a success takes its count back.
                    if let Err(wait) = state.throttle.attempt(&user, &address) {
                        return Err(throttled(wait));
                    }
                    match verify_password(&state, &user, &pass).await {
                        Ok(Some(v)) => {
                            state.throttle.succeeded(&user, &address);
                            Ok(Some(v))
                        }
                        Ok(None) => Ok(None),
                        Err(e) => Err(e.into_response()),
                    }
                };
                let recheck = |p, stamp| async {
                    recheck_password(&state, p, stamp)
                        .await
                        .map_err(IntoResponse::into_response)
                };
                match state
                    .credentials
                    .get_or_verify(fp, generation, verify, recheck)
                    .await
                {
                    Ok(Some(p)) => ctx.principal = Some(p),
                    Ok(None) => ctx.bad_credentials = true,
                    Err(resp) => return resp,
                }
            }
            None => ctx.bad_credentials = true,
        }
    } else if let Some(session) = req.extensions().get::<Session>().cloned()
        && cookie(req.headers(), crate::config::SESSION_COOKIE).is_some()
    {
        let user_id = session.get::<i64>(SESSION_USER).await.ok().flatten();
        let started = session.get::<i64>(SESSION_STARTED).await.ok().flatten();
        let stamp = session.get::<String>(SESSION_PASSWORD).await.ok().flatten();
        let lifetime = (state.config.session_lifetime_secs as i64).saturating_mul(1000);
        let now = chrono::Utc::now().timestamp_millis();
        // An absolute lifetime from login, whatever the activity since (a stolen cookie does
        // not live forever by being used).
        let expired = started.is_none_or(|t| now.saturating_sub(t) >= lifetime);
        if let Some(id) = user_id.filter(|_| !expired) {
            match load_user(&state, ("id", Value::Int(id))).await {
                Ok(Some(u)) if u.is_active && stamp.as_deref() == Some(&password_stamp(&u.password)) => {
                    ctx.principal = Some(u.principal);
                    ctx.method = AuthMethod::Session;
                }
                Ok(_) => {
                    let _ = session.flush().await;
                }
                Err(e) => return e.into_response(),
            }
        } else if user_id.is_some() {
            let _ = session.flush().await;
        }
        if ctx.method == AuthMethod::Session && is_unsafe(req.method()) && !is_form_endpoint(req.uri().path())
        {
            let expected = session.get::<String>(SESSION_CSRF).await.ok().flatten();
            let header = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let cookie = cookie(req.headers(), CSRF_COOKIE);
            let ok = matches!((&expected, &header, &cookie), (Some(e), Some(h), Some(c)) if e == h && h == c);
            if !ok {
                return ApiError::Forbidden("CSRF Failed: CSRF token missing or incorrect.".into())
                    .into_response();
            }
        }
    }
    req.extensions_mut().insert(ctx);
    next.run(req).await
}

/// The TCP peer, when the server was started with connection info (`xos serve` is).
fn peer(req: &Request) -> Option<std::net::SocketAddr> {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

/// 429 for a throttled login, with `Retry-After`.
fn throttled(wait: u64) -> Response {
    let body = serde_json::json!({
        "detail": format!("Too many failed logins; try again in {wait} seconds.")
    });
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    if let Ok(v) = wait.to_string().parse() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Form endpoints check `Origin` instead of the CSRF header.
fn is_form_endpoint(path: &str) -> bool {
    matches!(path, "/login" | "/logout")
}

/// The request came from a page of this site (`Origin`, else `Referer`, matches `Host`).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok())
        .and_then(|s| url::Url::parse(s).ok());
    match source {
        Some(u) => {
            let authority = match u.port() {
                Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
                None => u.host_str().unwrap_or_default().to_string(),
            };
            authority.eq_ignore_ascii_case(host)
        }
        None => false,
    }
}

/// The login form's fields.
#[derive(serde::Deserialize)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub next: String,
}

/// Only paths on this site are followed after login (no open redirect): a single leading `/`,
/// no backslash, no whitespace or control character (browsers drop a tab or newline, so
/// `/\t/evil.example/` reads as `//evil.example/`), checked on the text and once more after
/// percent-decoding. Anything else goes home.
fn safe_next(next: &str) -> &str {
    let local = |p: &str, space_ok: bool| {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p
                .chars()
                .any(|c| c == '\\' || c.is_control() || (c.is_whitespace() && !(space_ok && c == ' ')))
    };
    // Decoded once more, a space is a name's (`/admin/dashboard/Hello%20World/`), not a trick.
    let decoded = percent_encoding::percent_decode_str(next).decode_utf8_lossy();
    if local(next, false) && local(&decoded, true) {
        next
    } else {
        "/"
    }
}

fn csrf_cookie(token: &str, secure: bool) -> String {
    format!(
        "{CSRF_COOKIE}={token}; Path=/; SameSite=Lax; Max-Age=1209600{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `POST /login`: check the password, start a session, set the CSRF cookie.
pub async fn login(
    State(state): State<AuthState>,
    connect: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "Cross-origin login refused.").into_response();
    }
    let next = safe_next(&form.next).to_string();
    let user = form.username.trim();
    let address = throttle::client_address(&headers, connect.map(|c| c.0.0));
    if let Err(wait) = state.throttle.attempt(user, &address) {
        tracing::info!(user = %user, address = %address, "login throttled");
        return throttled(wait);
    }
    let verified = match verify_password(&state, user, &form.password).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    if verified.is_some() {
        state.throttle.succeeded(user, &address);
    }
    let Some(Verified {
        principal: p,
        stamp: hash,
        ..
    }) = verified
    else {
        tracing::info!(user = %form.username.trim(), "login failed");
        let q = format!(
            "/login?error=1&next={}",
            percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC)
        );
        return Redirect::to(&q).into_response();
    };
    let mut token = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut token);
    let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
    let stored = async {
        session.cycle_id().await?;
        session.insert(SESSION_USER, p.id).await?;
        session
            .insert(SESSION_STARTED, chrono::Utc::now().timestamp_millis())
            .await?;
        session.insert(SESSION_PASSWORD, password_stamp(&hash)).await?;
        session.insert(SESSION_CSRF, &token).await
    }
    .await;
    if let Err(e) = stored {
        return ApiError::internal(e).into_response();
    }
    record_login(&state, p.id).await;
    tracing::info!(user = %p.email, "logged in");
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = csrf_cookie(&token, state.config.secure_cookies).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Note the login time (bookkeeping, written as a status write so it does not look like a change).
async fn record_login(state: &AuthState, id: i64) {
    let model = state.store.model("User");
    let status = StatusUpdate {
        fields: vec![("last_login".into(), Value::Time(chrono::Utc::now()))],
        ..Default::default()
    };
    let result = async {
        let mut unit = state.store.begin(Actor::System).await?;
        unit.set_status(model, id, &status).await?;
        unit.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record login time");
    }
}

/// `POST /logout`: end the session.
pub async fn logout(session: Session, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "Cross-origin logout refused.").into_response();
    }
    let _ = session.flush().await;
    let mut resp = Redirect::to("/login").into_response();
    if let Ok(v) = format!("{CSRF_COOKIE}=; Path=/; Max-Age=0").parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_user_and_password_and_never_contain_them() {
        let c = CredentialCache::default();
        let a = c.fingerprint("a@x.org", "pw");
        assert_ne!(a, c.fingerprint("a@x.org", "pw2"));
        assert_ne!(a, c.fingerprint("a@x.orgpw", ""));
        assert_eq!(a, c.fingerprint("a@x.org", "pw"));
    }

    fn user_seven() -> Principal {
        Principal {
            id: 7,
            email: "a@x.org".into(),
            is_admin: false,
            is_readonly: false,
            site_id: 1,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_of_one_credential_verify_it_once() {
        let c = Arc::new(CredentialCache::default());
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let fp = c.fingerprint("a@x.org", "pw");
        let p = user_seven();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (c, runs, p) = (c.clone(), runs.clone(), p.clone());
                tokio::spawn(async move {
                    c.get_or_verify(
                        fp,
                        0,
                        || async move {
                            runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, ()>(Some(Verified {
                                principal: p,
                                stamp: String::new(),
                                cacheable: true,
                            }))
                        },
                        |_, _| async { Ok(None) },
                    )
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(Some(p.clone())));
        }
        assert_eq!(
            runs.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one argon2 run for 20 requests"
        );
        // A credential that fails is asked again each time (never cached).
        let bad = c.fingerprint("a@x.org", "wrong");
        for _ in 0..3 {
            let r = c
                .get_or_verify(
                    bad,
                    0,
                    || async {
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        Ok::<_, ()>(None)
                    },
                    |_, _| async { Ok(None) },
                )
                .await;
            assert_eq!(r, Ok(None));
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[test]
    fn cached_credentials_are_forgotten_when_their_user_changes() {
        let c = CredentialCache::default();
        let p = user_seven();
        let fp = c.fingerprint("a@x.org", "pw");
        c.put(fp, p.clone(), 3, "hash".into());
        assert_eq!(c.get(&fp, 3), Some(p));
        assert_eq!(
            c.get(&fp, 4),
            None,
            "a newer credential generation needs a recheck"
        );
        c.forget_user(7);
        assert_eq!(c.get(&fp, 3), None);
    }

    #[tokio::test]
    async fn a_stale_entry_is_rechecked_not_verified_again() {
        let c = CredentialCache::default();
        let fp = c.fingerprint("a@x.org", "pw");
        let p = user_seven();
        c.put(fp, p.clone(), 1, "hash-1".into());
        let verified = |p: Principal| Verified {
            principal: p,
            stamp: "hash-1".into(),
            cacheable: true,
        };
        // Generation 2: the recheck runs (with the stamp), never the full verification.
        let got = c
            .get_or_verify(
                fp,
                2,
                || async { panic!("no argon2 for a recheck") },
                |p, stamp| async move {
                    assert_eq!(stamp, "hash-1");
                    Ok::<_, ()>(Some(verified(Principal { is_admin: true, ..p })))
                },
            )
            .await;
        assert_eq!(
            got.unwrap().map(|p| p.is_admin),
            Some(true),
            "current flags are taken"
        );
        assert!(c.get(&fp, 2).is_some());
        // A recheck that fails (password changed) drops the entry.
        let got = c
            .get_or_verify(
                fp,
                3,
                || async { panic!("no argon2 for a recheck") },
                |_, _| async { Ok::<_, ()>(None) },
            )
            .await;
        assert_eq!(got, Ok(None));
        assert_eq!(c.get(&fp, 3), None);
    }

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next("/admin/"), "/admin/");
        assert_eq!(safe_next("//evil.org/"), "/");
        assert_eq!(safe_next("http://evil.org/"), "/");
        assert_eq!(safe_next("/\\evil.org"), "/");
        // The confirmed case: `next=/%09/evil.example/` arrives decoded as a tab.
        assert_eq!(safe_next("/\t/evil.example/"), "/");
        assert_eq!(safe_next("/%09/evil.example/"), "/");
        assert_eq!(safe_next("/%2F/evil.example/"), "/");
        assert_eq!(safe_next("/%5Cevil.example/"), "/");
        assert_eq!(safe_next("/\n/evil.example/"), "/");
        assert_eq!(safe_next(" //evil.example/"), "/");
        assert_eq!(safe_next("javascript:alert(1)"), "/");
        assert_eq!(
            safe_next("/admin/core/slice?q=a%20b"),
            "/admin/core/slice?q=a%20b"
        );
        assert_eq!(
            safe_next("/admin/dashboard/Hello%20World/"),
            "/admin/dashboard/Hello%20World/"
        );
    }

    #[test]
    fn same_origin_compares_origin_with_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8000".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8000".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "http://evil.org".parse().unwrap());
        assert!(!same_origin(&h));
    }
}
