//! The synchronizer as the server wires it: the runtime (`synchronizer` crate) and the backends
//! (`backends/*` crates) under the paths the server always used (`server::sync::engine`,
//! `server::sync::local`, …). The server is the one place that names the backends.

pub use backend_ec2 as ec2;
pub use backend_local as local;
pub use backend_openstack as openstack;
pub use synchronizer::*;
