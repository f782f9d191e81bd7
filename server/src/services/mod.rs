//! The services, as the server uses them: each is a folder of its own (`services/*`) listed in
//! the catalog (`services/catalog`); the server knows them only through the `Service` trait. A
//! service is loaded when the configuration lists it (`services` in `xos.toml`), and each can run
//! as its own synchronizer (`xos sync --service NAME`).

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
    catalog().iter().map(|s| s.stop_all(state_dir)).sum::<usize>()
}

/// The local backend kinds services run their processes under.
pub fn process_kinds() -> Vec<&'static str> {
    catalog().iter().flat_map(|s| s.process_kinds()).collect()
}

/// The synchronizer steps of the service `name` (none for a service without behaviour).
pub fn steps(name: &str, ctx: &StepContext) -> Vec<Arc<dyn Step>> {
    find(name).map(|s| s.steps(ctx)).unwrap_or_default()
}
