//! HPC, the High-Performance Cache service of XOS's content delivery network, all of it in this
//! folder:
//!
//! - `src/models.rs`: its models and TOSCA types, with the checks of their formats (origin URLs,
//!   access and site maps: `src/maps.rs`), plain data and code the browser shares;
//! - `src/fields.rs`: typed names of the fields the server part reads (`registry::typed`);
//! - `src/server/` (feature `server`): the caches on real nginx (`nginx.rs`), their health checks
//!   (`health.rs`, with a small DNS client, `dns.rs`), the sample origin (`origin.rs`,
//!   `xos origin-serve`), the CDN's dashboard context (`stats.rs`: `cdnData`), the steps;
//! - `dashboards/cdn.html`: the CDN view.
//!
//! The Request Router (`services/requestrouter`) builds on it.

pub mod fields;
pub mod maps;
mod models;

pub use models::{ACCESS_MAP, ALLOW_LIST, ORIGIN_URL, SITE_MAP, models};

/// The name configurations load it by, and its models' app.
pub const NAME: &str = "hpc";

#[cfg(feature = "server")]
pub mod server;

/// The service, as the server sees it.
#[cfg(feature = "server")]
pub struct Service;

/// `xos origin-serve ADDRESS`: the sample origin server.
#[cfg(feature = "server")]
fn origin_serve() -> ! {
    let address = std::env::args().nth(2).unwrap_or_else(|| {
        eprintln!("usage: xos origin-serve ADDRESS (127.0.0.1:8890)");
        std::process::exit(2)
    });
    server::origin::serve(&address)
}

#[cfg(feature = "server")]
#[async_trait::async_trait]
impl xos_service::Service for Service {
    fn name(&self) -> &'static str {
        NAME
    }
    fn models(&self) -> Vec<registry::Model> {
        models()
    }
    fn steps(&self, ctx: &xos_service::StepContext) -> Vec<std::sync::Arc<dyn xos_service::Step>> {
        server::steps(ctx)
    }
    fn commands(&self) -> Vec<xos_service::Command> {
        vec![xos_service::Command {
            name: "origin-serve",
            run: origin_serve,
        }]
    }
    fn stop_all(&self, state_dir: &std::path::Path) -> usize {
        server::nginx::stop_all(&state_dir.join("hpc"))
    }
    fn templates(&self) -> Vec<xos_service::Template> {
        vec![xos_service::Template {
            name: "cdn",
            source: include_str!("../dashboards/cdn.html"),
        }]
    }
    fn static_files(&self) -> Vec<xos_service::StaticFile> {
        vec![xos_service::StaticFile {
            path: "js/cdn.js",
            source: include_str!("../static/js/cdn.js"),
        }]
    }
    async fn view_context(
        &self,
        store: &xos_service::Store,
        state_dir: &std::path::Path,
        reader: &xos_service::Actor,
        loaded: bool,
    ) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        let (data, providers) = if loaded {
            let data = server::stats::cdn_data(store, state_dir, reader).await;
            let providers = server::stats::cdn_content_providers(store, reader).await;
            match (data, providers) {
                (Ok(d), Ok(c)) => (d, c),
                (d, c) => {
                    tracing::warn!(error = ?d.err().or(c.err()), "the CDN's dashboard context could not be read");
                    (json!({}), json!([]))
                }
            }
        } else {
            (json!({}), json!([]))
        };
        vec![("cdnData", data), ("cdnContentProviders", providers)]
    }
}
