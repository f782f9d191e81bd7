//! The behaviour of services beyond the core. Services in folders of their own (`services/*`,
//! HelloWorld) come from the catalog (`services/catalog`) and bring everything with them; the
//! CDN's two (HPC, Request Router) are still modules here, their models in `registry::services`.
//! Registered here, once:
//! a service is loaded when the configuration lists it (`services` in `xos.toml`), and each can
//! run as its own synchronizer (`xos sync --service NAME`).

pub mod dns;
pub mod hpc;
pub mod requestrouter;

use crate::sync::{Step, StepContext};
use std::sync::Arc;
pub use xos_service::{read_request_head, sbin_binary};

/// The services in their own folders (`services/*`), from the catalog.
pub fn catalog() -> &'static [Arc<dyn xos_service::Service>] {
    static ALL: std::sync::OnceLock<Vec<Arc<dyn xos_service::Service>>> = std::sync::OnceLock::new();
    ALL.get_or_init(xos_services::all)
}

/// The service `name` of the catalog.
pub fn find(name: &str) -> Option<&'static Arc<dyn xos_service::Service>> {
    catalog().iter().find(|s| s.name() == name)
}

/// Stop what services run on this host that the local backend cannot find by its markers (the
/// HPC caches: nginx rewrites its environment); the number stopped.
pub fn stop_all(state_dir: &std::path::Path) -> usize {
    hpc::nginx::stop_all(&state_dir.join("hpc"))
        + catalog().iter().map(|s| s.stop_all(state_dir)).sum::<usize>()
}

/// The local backend kinds services run their processes under.
pub fn process_kinds() -> Vec<&'static str> {
    let mut kinds = vec!["requestrouter"];
    kinds.extend(catalog().iter().flat_map(|s| s.process_kinds()));
    kinds
}

/// The synchronizer steps of the service `name` (none for a service without behaviour).
pub fn steps(name: &str, ctx: &StepContext) -> Vec<Arc<dyn Step>> {
    if let Some(service) = find(name) {
        return service.steps(ctx);
    }
    match name {
        "hpc" => hpc::steps(ctx),
        "requestrouter" => requestrouter::steps(ctx),
        _ => Vec::new(),
    }
}
