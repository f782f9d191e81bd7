//! Every integration test of the server in one binary: one link instead of one per file. Each
//! module is one area (REST, permissions, sessions, the synchronizer and its backends, TOSCA…);
//! `cargo test -p server --test all <module>::` runs one of them. What needs only the store (units
//! of work, the schema, TOSCA recipes applied through it) is tested beside it, in `store/tests/`
//! and `tosca/tests/`; waits for a condition use `testkit::eventually`, not a fixed sleep.

#[macro_use]
mod common;

mod cdn;
mod changes;
mod crash;
mod ec2;
mod helloworld;
mod layers;
mod limits;
mod local;
mod migrations;
mod models;
mod openstack;
mod ops;
mod permissions;
mod rest;
mod services;
mod session;
mod status;
mod sync;
mod syndicate;
mod tenant_input;
mod tokens;
mod tosca;
mod xoslib;
