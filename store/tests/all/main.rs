//! The store's integration tests in one binary, each on SQLite and on Postgres (see `common`):
//! the one write path below HTTP (units of work, events, status writes, hooks), the schema the
//! migrations produce, and the change log's retention. They build the store and the core's
//! registry only: `cargo test -p store` runs them without building the server.

#[macro_use]
mod common;

mod changelog;
mod schema;
mod unit;
