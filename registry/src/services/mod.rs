//! The models of services beyond the core, one module per service. A service's models are
//! registered here (so the browser, which shares this crate, knows them too); its behaviour
//! (synchronizer steps) is registered in the server's `services` module.

pub mod helloworld;
pub mod hpc;
pub mod requestrouter;

use super::Model;

/// Every service's models.
pub fn models() -> Vec<Model> {
    let mut models = helloworld::models();
    models.extend(hpc::models());
    models.extend(requestrouter::models());
    models
}
