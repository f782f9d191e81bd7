//! Declarations of the XOS core models (facts from `xos/core/models/*.py`, Burwell era; see
//! `shared/reference/xos-core-model.md`). HPC/CDN and HelloWorld are services (`services/<name>/`). Out
//! of scope for now: billing (accounts, invoices, charges, payments), CORD subscriber models,
//! reservations, credentials, routers, network parameters, projects/programs, service classes
//! and tenant roots.

mod compute;
mod controllers;
pub use controllers::BACKEND_TYPES;
mod network;
mod people;
mod services;
mod ui;

use super::Model;

/// The core models, each after the models it points at.
pub fn models() -> Vec<Model> {
    let mut v = Vec::new();
    v.extend(people::models());
    v.extend(services::models());
    v.extend(compute::models());
    v.extend(controllers::models());
    v.extend(network::models());
    v.extend(ui::models());
    v
}
