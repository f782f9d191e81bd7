//! The behaviour of services beyond the core, one module each: its synchronizer steps (its
//! models, with their TOSCA types, are declared in `registry::services`). Registered here, once:
//! a service is loaded when the configuration lists it (`services` in `xos.toml`), and each can
//! run as its own synchronizer (`xos sync --service NAME`).

pub mod helloworld;

use crate::sync::{Step, StepContext};
use std::sync::Arc;

/// The synchronizer steps of the service `name` (none for a service without behaviour).
pub fn steps(name: &str, ctx: &StepContext) -> Vec<Arc<dyn Step>> {
    match name {
        "helloworld" => helloworld::steps(ctx),
        _ => Vec::new(),
    }
}
