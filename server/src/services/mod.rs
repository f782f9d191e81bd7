//! The behaviour of services beyond the core: each service module contributes synchronizer
//! steps (its models are declared in `app::registry::services`). Registered here, once.

pub mod helloworld;

use crate::sync::{Step, StepContext};
use std::sync::Arc;

/// Every service's synchronizer steps.
pub fn steps(ctx: &StepContext) -> Vec<Arc<dyn Step>> {
    helloworld::steps(ctx)
}
