//! Every integration test of the server in one binary: one link instead of one per file. Each
//! module is one area (REST, permissions, sessions, the synchronizer and its backends, TOSCA…);
//! `cargo test -p server --test all <module>::` runs one of them.

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
mod store;
mod sync;
mod tenant_input;
mod tokens;
mod tosca;
mod xoslib;
