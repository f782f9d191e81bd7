//! What a service is to XOS: one folder (`services/<name>/`), one crate, one [`Service`].
//!
//! A service brings its models (plain registry data, in the crate's wasm-safe part, so the
//! browser knows them too), its synchronizer steps and model policies, the `xos` subcommands its
//! instances run, the processes it leaves on this host, its dashboard templates and the rows it
//! seeds. The core defines this trait and knows no service; the server takes the list of
//! services in one place (`services/catalog`) and asks each for its parts. A configuration loads
//! a service by its [`Service::name`] (`services = ["helloworld"]` in `xos.toml`).
//!
//! Adding a service: a folder with this crate shape, one line in the catalog, and the migration
//! `xos makemigrations` writes (`docs/adding-a-service.md`).

use std::path::Path;
use std::sync::Arc;

pub use registry::Model;
pub use store::{Actor, Store};
pub use synchronizer::{ModelPolicy, Step, StepContext};

/// A subcommand of `xos` a service adds: a small server its instances or tenants run
/// (`xos helloworld-serve`). It runs before the async runtime starts, reads what it needs from
/// its environment, and never returns: the process is that server.
#[derive(Clone, Copy)]
pub struct Command {
    /// The subcommand's name (`helloworld-serve`).
    pub name: &'static str,
    pub run: fn() -> !,
}

/// A row a service seeds when the database is set up (`xos setup`): created when no row of
/// `model` has `key` equal to the value in `values`, left alone otherwise.
#[derive(Clone, Debug)]
pub struct SeedRow {
    pub model: &'static str,
    pub key: &'static str,
    pub values: serde_json::Value,
}

/// A dashboard template a service ships (`template:<name>`): the file's text, compiled in, so
/// a service's views work wherever the binary runs.
#[derive(Clone, Copy, Debug)]
pub struct Template {
    pub name: &'static str,
    pub source: &'static str,
}

/// A static file a service ships, served at `/static/<path>` (a file of that path in the
/// configuration's `static_dir` wins), compiled in like its templates.
#[derive(Clone, Copy, Debug)]
pub struct StaticFile {
    pub path: &'static str,
    pub source: &'static str,
}

/// A request to a service's own endpoint, `/services/<name>/<path>`: XOS's sessions and tokens
/// do not apply there; the service authenticates the caller itself (Syndicate storage: an
/// instance proving itself with its slice's secret).
#[derive(Clone, Debug)]
pub struct EndpointRequest {
    pub method: String,
    /// The path after `/services/<name>/` (`slices/3/credentials`).
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// A service endpoint's answer.
#[derive(Clone, Debug)]
pub struct EndpointAnswer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl EndpointAnswer {
    /// A JSON answer.
    pub fn json(status: u16, value: &serde_json::Value) -> EndpointAnswer {
        EndpointAnswer {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
        }
    }
}

/// Everything of a service beyond its models, as the server and the synchronizer use it.
#[async_trait::async_trait]
pub trait Service: Send + Sync {
    /// The name configurations load it by; also the Django app of its models (`helloworld`).
    fn name(&self) -> &'static str;
    /// Its models (the same list the catalog gives the registry).
    fn models(&self) -> Vec<Model>;
    /// Its synchronizer steps (`xos sync --service NAME` runs them alone).
    fn steps(&self, _ctx: &StepContext) -> Vec<Arc<dyn Step>> {
        Vec::new()
    }
    /// Its model policies, run before each pass with the core's.
    fn policies(&self) -> Vec<Arc<dyn ModelPolicy>> {
        Vec::new()
    }
    /// The `xos` subcommands it adds.
    fn commands(&self) -> Vec<Command> {
        Vec::new()
    }
    /// The local backend kinds its processes run under (`xos backend-stop` counts and stops
    /// them with the core's instances).
    fn process_kinds(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Stop what it runs on this host that the local backend cannot find by its markers; the
    /// number stopped.
    fn stop_all(&self, _state_dir: &Path) -> usize {
        0
    }
    /// Its dashboard templates.
    fn templates(&self) -> Vec<Template> {
        Vec::new()
    }
    /// Its static files (the scripts its dashboards load).
    fn static_files(&self) -> Vec<StaticFile> {
        Vec::new()
    }
    /// Rows it seeds (a dashboard view of its own).
    fn seed(&self) -> Vec<SeedRow> {
        Vec::new()
    }
    /// Values every dashboard view's template gets (the CDN's `cdnData`), as `reader` may see
    /// them. `loaded`: whether the configuration loads the service; when not, the values a
    /// template can still render with (empty ones). A failure is the service's to log: it shows
    /// as those empty values, never as a broken page.
    async fn view_context(
        &self,
        _store: &Store,
        _state_dir: &Path,
        _reader: &Actor,
        _loaded: bool,
    ) -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }
    /// Values the Tenant view's model (`/xoslib/tenantview/`) gets from the service, as
    /// `reader` may see them (Syndicate's `public_volumes` and `public_volume_names`); asked
    /// only when the configuration loads the service. A failure shows as the view's defaults.
    async fn tenant_view(&self, _store: &Store, _reader: &Actor) -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }
    /// Answer a request to the service's own endpoint (see [`EndpointRequest`]); None: 404.
    /// Asked only when the configuration loads the service.
    async fn endpoint(
        &self,
        _store: &Store,
        _state_dir: &Path,
        _req: &EndpointRequest,
    ) -> Option<EndpointAnswer> {
        None
    }
}

/// The head of an HTTP request on `stream` (up to 8 KiB, until the blank line), with read and
/// write timeouts set: what the small servers of services (a HelloWorld tenant, the sample
/// origin) read before they answer.
pub fn read_request_head(stream: &mut std::net::TcpStream, timeout: std::time::Duration) -> String {
    use std::io::Read;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let mut buf = [0u8; 8192];
    let mut seen = 0;
    while seen < buf.len() {
        match stream.read(&mut buf[seen..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen += n;
                if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&buf[..seen]).into_owned()
}

/// A server program services run (nginx, knotd): `$var` when set, else the first of the
/// system directories that has it (Debian installs them in /usr/sbin, which a cleared `PATH`
/// lacks), else the bare name for the `PATH` to find.
pub fn sbin_binary(name: &str, var: &str) -> std::path::PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    ["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/nginx/sbin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| name.into())
}
