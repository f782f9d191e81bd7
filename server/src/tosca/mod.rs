//! TOSCA recipes over HTTP (`/api/utility/tosca/run/`); the recipes themselves (parse, check,
//! apply) are the `tosca` crate, which knows no HTTP and so builds alone for its fuzz target.

pub mod http;

pub use ::tosca::*;
