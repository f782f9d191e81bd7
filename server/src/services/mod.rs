//! The behaviour of services beyond the core, one module each: its synchronizer steps (its
//! models, with their TOSCA types, are declared in `registry::services`). Registered here, once:
//! a service is loaded when the configuration lists it (`services` in `xos.toml`), and each can
//! run as its own synchronizer (`xos sync --service NAME`).

pub mod dns;
pub mod helloworld;
pub mod hpc;
pub mod requestrouter;

use crate::sync::{Step, StepContext};
use std::sync::Arc;

/// Stop what services run on this host that the local backend cannot find by its markers (the
/// HPC caches: nginx rewrites its environment); the number stopped.
pub fn stop_all(state_dir: &std::path::Path) -> usize {
    hpc::nginx::stop_all(&state_dir.join("hpc"))
}

/// The synchronizer steps of the service `name` (none for a service without behaviour).
pub fn steps(name: &str, ctx: &StepContext) -> Vec<Arc<dyn Step>> {
    match name {
        "helloworld" => helloworld::steps(ctx),
        "hpc" => hpc::steps(ctx),
        "requestrouter" => requestrouter::steps(ctx),
        _ => Vec::new(),
    }
}
