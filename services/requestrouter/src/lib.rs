//! The Request Router, the CDN's DNS, all of it in this folder:
//!
//! - `src/models.rs`: `RequestRouterService` (one per system) and `ServiceMap`, with TOSCA types;
//! - `src/fields.rs`: typed names of the fields the server part reads;
//! - `src/server.rs` (feature `server`): one Knot DNS server answering each CDN prefix with the
//!   caches of the HPC service (`services/hpc`) nearest the client.

pub mod fields;
mod models;

pub use models::models;

/// The name configurations load it by, and its models' app.
pub const NAME: &str = "requestrouter";

#[cfg(feature = "server")]
pub mod server;

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
    fn process_kinds(&self) -> Vec<&'static str> {
        vec![NAME]
    }
}
