//! The HelloWorld service (the guide's worked example), all of it in this folder:
//!
//! - `src/models.rs`: `HelloWorldService` and `HelloWorldTenant`, with their TOSCA types;
//! - `src/fields.rs`: typed names of the fields its step reads;
//! - `src/server.rs` (feature `server`): the synchronizer step that runs each tenant as a small
//!   HTTP server on the local backend, and that server (`xos helloworld-serve`);
//! - `dashboards/`: the "Hello World" views; the seed registers one of them.
//!
//! The server loads it through the catalog (`services/catalog`); a configuration turns it on
//! with `services = ["helloworld"]`.

pub mod fields;
mod models;

pub use models::models;

/// The name configurations load it by, and its models' app.
pub const NAME: &str = "helloworld";

#[cfg(feature = "server")]
mod server;

#[cfg(feature = "server")]
pub use server::{HelloWorldTenants, serve};

/// The service, as the server sees it.
#[cfg(feature = "server")]
pub struct Service;

#[cfg(feature = "server")]
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
            name: "helloworld-serve",
            run: serve,
        }]
    }
    fn process_kinds(&self) -> Vec<&'static str> {
        vec![NAME]
    }
    fn templates(&self) -> Vec<xos_service::Template> {
        vec![
            xos_service::Template {
                name: "helloworld",
                source: include_str!("../dashboards/helloworld.html"),
            },
            xos_service::Template {
                name: "helloWorldService",
                source: include_str!("../dashboards/helloWorldService.html"),
            },
        ]
    }
    fn static_files(&self) -> Vec<xos_service::StaticFile> {
        vec![
            xos_service::StaticFile {
                path: "helloworld.js",
                source: include_str!("../static/helloworld.js"),
            },
            xos_service::StaticFile {
                path: "js/helloWorldService.js",
                source: include_str!("../static/js/helloWorldService.js"),
            },
        ]
    }
    fn seed(&self) -> Vec<xos_service::SeedRow> {
        vec![xos_service::SeedRow {
            model: "DashboardView",
            key: "name",
            values: serde_json::json!({"name": "Hello World", "url": "template:helloworld"}),
        }]
    }
}
