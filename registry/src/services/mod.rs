//! The models of the CDN's services (HPC, Request Router), not yet moved into folders of their
//! own as HelloWorld is (`services/helloworld`): registered here (so the browser, which shares
//! this crate, knows them too); their behaviour is registered in the server's `services` module.

pub mod hpc;
pub mod requestrouter;

use super::Model;

/// Every service's models.
pub fn models() -> Vec<Model> {
    let mut models = hpc::models();
    models.extend(requestrouter::models());
    models
}
