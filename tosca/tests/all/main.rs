//! The TOSCA crate's integration tests in one binary: recipes parsed and checked against the
//! core's registry, and applied through a store on a fresh database, SQLite and Postgres. No
//! HTTP (`/api/utility/tosca/run/` is the server's test): `cargo test -p tosca` runs them
//! without building the server.

// The store's fixture (a fresh database, the core's registry and fixtures, `mysite` and its
// admin), shared rather than copied.
#[macro_use]
#[path = "../../../store/tests/all/common/mod.rs"]
mod common;

mod apply;
mod parse;
