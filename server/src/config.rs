//! The configuration: `configurations/<name>/xos.toml` with environment overrides. Apart from
//! the state handlers share (`state`), so every layer may read it without depending on that.

pub use backend_kit::ImagesConfig;
pub use backend_local::LocalBackendConfig;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "sessionid";

/// A configuration file (`configurations/<name>/xos.toml`); environment variables override it:
/// `DATABASE_URL`, `PORT`, `XOS_BIND`, `XOS_SITE_ROOT`, `XOS_STATE_DIR`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The configuration's name (devel, test, frontend-only, production…).
    pub name: String,
    /// A production installation: `xos setup` and `xos serve` refuse the well-known default
    /// admin password (`letmein`); leave `admin_password` empty to have one generated at the
    /// first start (printed once) or give it in `XOS_ADMIN_PASSWORD`.
    pub production: bool,
    /// `sqlite://path` (the embedded default) or `postgres://…`.
    pub database_url: String,
    pub bind: String,
    pub port: u16,
    /// Where the built UI lives (wasm bundle under `pkg/`, CSS, favicon).
    pub site_root: PathBuf,
    /// Static files served under `/static/` (dashboard scripts; vendored libraries come from
    /// the site root's `static/`).
    pub static_dir: PathBuf,
    /// Templates of `template:NAME` dashboard views (`NAME.html`).
    pub dashboards_dir: PathBuf,
    /// Mark cookies `Secure` (behind HTTPS).
    pub secure_cookies: bool,
    /// Keep rendered GET responses until the next change (`XOS_RESPONSE_CACHE=0` turns it off).
    pub response_cache: bool,
    /// Where the synchronizer runs (a misspelt value is an error, not another mode).
    pub synchronizer: SynchronizerMode,
    /// Run model policies (with the synchronizer).
    pub model_policies: bool,
    /// Backend state on this host (the local backend's process logs).
    pub state_dir: PathBuf,
    /// TOSCA recipes applied (as one recipe) at every start of `xos serve`, after the bootstrap;
    /// relative paths are relative to the configuration file.
    pub recipes: Vec<PathBuf>,
    /// Days the change log keeps its entries (0: forever).
    pub change_log_days: u32,
    /// Seconds a request may take before it is answered with 503.
    pub request_timeout_secs: u64,
    /// Seconds a browser session lasts from its login, however active (default 14 days).
    pub session_lifetime_secs: u64,
    /// Host names this server answers to (Django's `ALLOWED_HOSTS`): a name, `.example.org` for
    /// the domain and its subdomains, or `*` for any. The loopback names and the bind address
    /// are always allowed. Any other `Host` gets 400 before authentication (no DNS rebinding).
    /// `XOS_ALLOWED_HOSTS` (comma-separated) adds to it.
    pub allowed_hosts: Vec<String>,
    /// The `Content-Security-Policy` of every answer (empty: none); `{nonce}` is replaced by
    /// the answer's own script nonce (`crate::csp`). The default keeps scripts, styles, frames'
    /// parents and connections on this site; inline scripts run only with the nonce the server
    /// gives the `<script>` tags it writes (a view template's own tags included), never markup
    /// from data, and there is no `eval`. `http(s)` views are sandboxed iframes.
    pub content_security_policy: String,
    /// `/metrics` answers loopback clients that are not proxied; with this set, also requests
    /// that carry `Authorization: Bearer <metrics_token>`.
    pub metrics_token: Option<String>,
    /// Open event streams (`/xos/events`) one user may hold, and all users together; past it
    /// a new stream gets 429.
    pub max_event_streams_per_user: usize,
    pub max_event_streams: usize,
    /// The services beyond the core this configuration loads (`["helloworld"]`); absent: every
    /// compiled-in service. Models of services not loaded keep their tables but get no routes,
    /// admin pages, TOSCA types or synchronizer steps.
    pub services: Option<Vec<String>>,
    pub bootstrap: Bootstrap,
    pub local_backend: LocalBackendConfig,
    pub images: ImagesConfig,
}

/// Where the synchronizer runs (`synchronizer = "…"`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SynchronizerMode {
    /// In `xos serve`'s own process.
    #[default]
    Embedded,
    /// In separate `xos sync` workers; deletes here are still soft.
    External,
    /// Nowhere (frontend-only): deletes are immediate.
    None,
}

/// What `xos serve` creates in an empty database.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bootstrap {
    /// Create the first site and admin when no user exists.
    pub enabled: bool,
    pub admin_email: String,
    /// The first admin's password (`XOS_ADMIN_PASSWORD` overrides it); empty: a random one is
    /// generated and printed once.
    pub admin_password: String,
    pub site_name: String,
    pub site_login_base: String,
    /// Also create a few sample slices (devel).
    pub sample_data: bool,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            enabled: true,
            admin_email: "padmin@vicci.org".into(),
            admin_password: "letmein".into(),
            site_name: "MySite".into(),
            site_login_base: "mysite".into(),
            sample_data: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "devel".into(),
            production: false,
            database_url: "sqlite://data/xos.db".into(),
            bind: "127.0.0.1".into(),
            port: 8000,
            site_root: PathBuf::from("target/site"),
            static_dir: PathBuf::from("static"),
            dashboards_dir: PathBuf::from("dashboards"),
            secure_cookies: false,
            response_cache: true,
            synchronizer: SynchronizerMode::Embedded,
            model_policies: true,
            state_dir: PathBuf::from("data"),
            recipes: Vec::new(),
            change_log_days: 90,
            request_timeout_secs: 60,
            session_lifetime_secs: 14 * 24 * 3600,
            allowed_hosts: Vec::new(),
            metrics_token: None,
            content_security_policy: DEFAULT_CSP.into(),
            max_event_streams_per_user: 8,
            max_event_streams: 1000,
            services: None,
            bootstrap: Bootstrap::default(),
            local_backend: LocalBackendConfig::default(),
            images: ImagesConfig::default(),
        }
    }
}

/// The secret in the file the environment variable `var` names (trailing newline dropped),
/// if it names one. The file must be readable by its owner only.
fn secret_file(var: &str) -> Result<Option<String>, ConfigError> {
    let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let shown = path.display().to_string();
    let meta = std::fs::metadata(&path).map_err(|e| ConfigError::Read(shown.clone(), e))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(ConfigError::SecretFile(var.to_string(), shown, mode & 0o777));
        }
    }
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read(shown, e))?;
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()))
}

/// Errors reading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}: {1} may be read by others (mode {2:o}); make it readable by its owner only (chmod 600)")]
    SecretFile(String, String, u32),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: {1}")]
    Parse(String, toml::de::Error),
    #[error("unknown service {0:?} in `services`; this build has: {1}")]
    UnknownService(String, String),
    #[error("{0} is not a valid port: {1}")]
    Port(String, std::num::ParseIntError),
}

impl Config {
    /// Read a configuration file (or the defaults), then apply environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| ConfigError::Read(p.display().to_string(), e))?;
                let mut config: Config =
                    toml::from_str(&text).map_err(|e| ConfigError::Parse(p.display().to_string(), e))?;
                let base = p.parent().unwrap_or(Path::new("."));
                for r in config.recipes.iter_mut() {
                    if r.is_relative() {
                        *r = base.join(&*r);
                    }
                }
                config
            }
            None => Config::default(),
        };
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.is_empty()
        {
            config.database_url = url;
        }
        // Secrets in files only their owner reads (`DATABASE_URL_FILE`, `XOS_ADMIN_PASSWORD_FILE`):
        // long-lived processes then carry no secret in their environment, which their children
        // and anyone reading /proc could see.
        if let Some(url) = secret_file("DATABASE_URL_FILE")? {
            config.database_url = url;
        }
        if let Some(pw) = secret_file("XOS_ADMIN_PASSWORD_FILE")? {
            config.bootstrap.admin_password = pw;
        }
        if let Ok(port) = std::env::var("PORT")
            && !port.is_empty()
        {
            config.port = port.parse().map_err(|e| ConfigError::Port(port.clone(), e))?;
        }
        if let Ok(bind) = std::env::var("XOS_BIND")
            && !bind.is_empty()
        {
            config.bind = bind;
        }
        if let Ok(v) = std::env::var("XOS_RESPONSE_CACHE") {
            config.response_cache = !matches!(v.as_str(), "0" | "false" | "off");
        }
        if let Ok(dir) = std::env::var("XOS_STATE_DIR")
            && !dir.is_empty()
        {
            config.state_dir = PathBuf::from(dir);
        }
        if let Ok(pw) = std::env::var("XOS_ADMIN_PASSWORD")
            && !pw.is_empty()
        {
            config.bootstrap.admin_password = pw;
        }
        if let Ok(hosts) = std::env::var("XOS_ALLOWED_HOSTS") {
            config.allowed_hosts.extend(
                hosts
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(String::from),
            );
        }
        if let Ok(root) = std::env::var("XOS_SITE_ROOT")
            && !root.is_empty()
        {
            config.site_root = PathBuf::from(root);
        }
        config.loaded_services()?;
        Ok(config)
    }

    /// The services this configuration loads, checked against the compiled-in ones.
    pub fn loaded_services(&self) -> Result<Vec<String>, ConfigError> {
        let known = app::registry::registry().services();
        let extra: Vec<&str> = known.iter().copied().filter(|s| *s != "core").collect();
        match &self.services {
            None => Ok(extra.iter().map(|s| s.to_string()).collect()),
            Some(list) => {
                for s in list {
                    if !extra.contains(&s.as_str()) {
                        return Err(ConfigError::UnknownService(s.clone(), extra.join(", ")));
                    }
                }
                Ok(list.clone())
            }
        }
    }
}

/// The default `Content-Security-Policy` (see [`Config::content_security_policy`]).
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; frame-src 'self' http: https:; frame-ancestors 'self'; object-src 'none'; \
     base-uri 'self'; form-action 'self'";

/// The password of the devel configurations, which everyone knows.
pub const WELL_KNOWN_PASSWORD: &str = "letmein";

/// Passwords people pick first: refused for a production admin whatever their length.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// The shortest admin password a production configuration takes.
pub const MIN_ADMIN_PASSWORD: usize = 12;

/// Why `password` is too weak for a production admin, if it is.
pub fn weak_password(password: &str) -> Option<String> {
    let lower = password.to_lowercase();
    if password == WELL_KNOWN_PASSWORD {
        return Some(format!("the well-known password \"{WELL_KNOWN_PASSWORD}\""));
    }
    if password.chars().count() < MIN_ADMIN_PASSWORD {
        return Some(format!("a password shorter than {MIN_ADMIN_PASSWORD} characters"));
    }
    let common = COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|c| c == lower || (c.len() >= 6 && lower.contains(c) && lower.len() < c.len() + 4));
    let distinct: std::collections::HashSet<char> = lower.chars().collect();
    if common || distinct.len() < 4 {
        return Some("a common password".into());
    }
    None
}

impl Config {
    /// What a production configuration must not run with: a weak admin password (the
    /// well-known one, a short one, a common one).
    pub fn check_production(&self) -> Result<(), String> {
        let pw = &self.bootstrap.admin_password;
        if self.production
            && !pw.is_empty()
            && let Some(why) = weak_password(pw)
        {
            return Err(format!(
                "refusing {why} in the production configuration {}: set XOS_ADMIN_PASSWORD(_FILE) to \
                 a long, uncommon one, or leave admin_password empty to have one generated",
                self.name
            ));
        }
        Ok(())
    }

    /// Whether a request's `Host` (a name or address, with or without a port) is one this
    /// server answers to.
    pub fn host_allowed(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        let bind = self.bind.trim_matches(['[', ']']).to_ascii_lowercase();
        let builtin = ["localhost", "127.0.0.1", "::1"];
        if builtin.contains(&name.as_str())
            || name.ends_with(".localhost")
            || (name == bind && !matches!(bind.as_str(), "0.0.0.0" | "::"))
        {
            return true;
        }
        self.allowed_hosts.iter().any(|pattern| {
            let p = pattern.trim().to_ascii_lowercase();
            p == "*"
                || p == name
                || p.strip_prefix('.')
                    .is_some_and(|domain| name == domain || name.ends_with(&format!(".{domain}")))
        })
    }
}

/// The host part of a `Host` header value, lower-cased, without the port or an IPv6 address's
/// brackets; `None` when it is not a plausible host.
fn host_name(host: &str) -> Option<String> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok())) {
            return None;
        }
        addr
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if port.parse::<u16>().is_ok() => n,
            Some(_) => return None,
            None => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let plausible = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'));
    plausible.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_synchronizer_mode_is_an_error_with_its_line() {
        let ok: Config = toml::from_str("synchronizer = \"external\"").unwrap();
        assert_eq!(ok.synchronizer, SynchronizerMode::External);
        let e = toml::from_str::<Config>("name = \"x\"\nsynchronizer = \"embeded\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("embeded") && e.contains("embedded"),
            "{e}"
        );
    }

    #[test]
    fn production_refuses_weak_admin_passwords() {
        for weak in [
            "letmein",
            "short",
            "password1234",
            "Password123!",
            "qwertyuiop12",
            "aaaaaaaaaaaaaaaa",
            "abababababababab",
        ] {
            assert!(weak_password(weak).is_some(), "{weak}");
        }
        for strong in ["kX9vQ2mLr7TzwP4e", "correct horse battery staple"] {
            assert_eq!(weak_password(strong), None, "{strong}");
        }
        let mut c = Config {
            production: true,
            ..Config::default()
        };
        c.bootstrap.admin_password = "password1234".into();
        assert!(c.check_production().unwrap_err().contains("common password"));
        c.bootstrap.admin_password = String::new();
        assert!(c.check_production().is_ok(), "empty: one is generated");
        c.production = false;
        c.bootstrap.admin_password = "letmein".into();
        assert!(
            c.check_production().is_ok(),
            "devel keeps its well-known password"
        );
    }

    #[test]
    fn only_allowed_hosts_are_answered() {
        let mut c = Config::default();
        for ok in [
            "127.0.0.1:8000",
            "localhost",
            "LOCALHOST:80",
            "[::1]:8000",
            "app.localhost",
        ] {
            assert!(c.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8000",
            "127.0.0.1.evil.example",
            "",
            "a b",
            "x:y:z",
            "[::1]x",
        ] {
            assert!(!c.host_allowed(bad), "{bad}");
        }
        c.allowed_hosts = vec!["xos.example.org".into(), ".cloud.example".into()];
        assert!(c.host_allowed("xos.example.org:443"));
        assert!(c.host_allowed("a.cloud.example"));
        assert!(c.host_allowed("cloud.example"));
        assert!(!c.host_allowed("evilcloud.example"));
        c.bind = "10.1.2.3".into();
        assert!(c.host_allowed("10.1.2.3:8000"));
        c.allowed_hosts = vec!["*".into()];
        assert!(c.host_allowed("anything.example"));
    }
}
