//! The OpenStack backend: XOS's first synchronizer, against the real REST APIs.
//!
//! A Controller with `backend_type` `OpenStack` selects it for its Deployment: `auth_url` is
//! Keystone, `admin_user` / `admin_password` an account with the `admin` role in
//! `admin_tenant`, `domain` the Keystone domain (`Default` when empty).
//!
//! Steps, in dependency order (each `provides` the model it enacts and the core model it makes
//! real, so instances wait for their slice's project and image, and deletions run in reverse):
//! - [`OsControllers`]: logs in; a wrong password or an unreachable `auth_url` says so on the
//!   Controller.
//! - [`OsSites`] (ControllerSite → a project per site, named by its login base) and
//!   [`OsSlices`] (ControllerSlice → a project per slice, named like the slice, with the slice's
//!   `max_instances` as its Nova instance quota and the admin account as its admin). Deleting one
//!   removes what is left in its project (servers, ports, routers, networks), then the project.
//! - [`OsPrivileges`] (SitePrivilege and SlicePrivilege → role assignments on the project).
//! - [`OsUsers`] (ControllerUser → a Keystone user named by email, with its public key as a Nova
//!   key pair; a disabled user is purged from Keystone).
//! - [`OsImages`] (ControllerImages → a Glance image of the same name, uploaded from
//!   `Image.path`, or an existing one of that name adopted).
//! - [`OsNetworks`] (ControllerNetwork → a Neutron network and subnet in the owner slice's
//!   project, with a router to the external network for NAT templates; a template's
//!   `shared_network_name` names an existing network instead).
//! - [`OsInstances`] (Instance → a Nova server with its flavor, image, networks, key pair and user
//!   data; waits for ACTIVE and writes back its ids and address) and [`OsPorts`] (Port → the
//!   server's Neutron port on that network: `port_id`, `ip`, `mac`).
//! - [`OsDrift`]: on an interval, one list of servers and one of networks per controller;
//!   servers and networks deleted behind XOS's back are made again.
//!
//! Every OpenStack object carries the XOS id (server metadata `xos_instance_id`, descriptions
//! `xos <model> <id>`), so a synchronizer killed at any point finds what it made instead of
//! making it twice.

pub mod client;
mod controllers;
mod drift;
mod images;
mod instances;
mod networks;
mod policies;
mod ports;
mod privileges;
mod projects;
mod queries;
mod users;

use client::{
    Image, Network, OsClient, OsConfig, OsError, Port, Project, Ref, Router, Server, Service, Stamped,
    Subnet, User, q, seg,
};
use registry::fields::{
    common, controller, controller_images, controller_network, controller_site, controller_slice,
    controller_user, instance, port, site_privilege, slice_privilege,
};
use registry::{BackendStatus, Model, SqlType};
use serde_json::json;
use std::collections::{HashMap, HashSet};

use std::sync::Arc;
use std::time::Duration;

pub use controllers::*;
pub use drift::*;
pub use images::*;
pub use instances::*;
pub use networks::*;
pub use policies::*;
pub use ports::*;
pub use privileges::*;
pub use projects::*;
pub use queries::*;
use store::db::{Sql, Value};
use store::{Actor, Record, Store, StoreError, select_sql, types};
use synchronizer::{Enacted, Step, StepContext, SyncError, and_where, default_fetch_pending};
pub use users::*;

/// The `backend_type` that selects this backend.
pub const BACKEND: &str = "OpenStack";
/// The server metadata key carrying the XOS instance id.
pub const META_KEY: &str = "xos_instance_id";
/// How long a sync waits for a new server to become ACTIVE before trying again later.
const BOOT_WAIT: Duration = Duration::from_secs(120);

/// The OpenStack backend's shared state: a client per controller, the count of API calls.
#[derive(Default)]
pub struct OsBackend {
    clients: backend_kit::ClientPool<OsClient>,
}

/// The JSON `settings` of an OpenStack controller.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// What to do about a server deleted outside XOS (as on every backend).
    #[serde(default)]
    pub drift: backend_kit::Drift,
}

/// An OpenStack controller and its client.
#[derive(Clone)]
pub struct Controller {
    pub id: i64,
    pub deployment: i64,
    pub settings: Settings,
    pub client: OsClient,
}

fn failed(e: OsError) -> SyncError {
    SyncError::Failed(e.to_string())
}

fn deferred(what: impl Into<String>) -> SyncError {
    SyncError::Deferred(what.into())
}

impl OsBackend {
    /// OpenStack API calls made so far (the idle-pass figure).
    pub fn api_calls(&self) -> u64 {
        self.clients.api_calls()
    }

    fn controller(&self, rec: &Record) -> Result<Controller, SyncError> {
        let config = OsConfig {
            auth_url: rec.opt(controller::AUTH_URL).unwrap_or_default().to_string(),
            user: rec
                .opt(controller::ADMIN_USER)
                .unwrap_or_default()
                .trim()
                .to_string(),
            password: rec
                .opt(controller::ADMIN_PASSWORD)
                .unwrap_or_default()
                .to_string(),
            project: rec
                .opt(controller::ADMIN_TENANT)
                .unwrap_or_default()
                .trim()
                .to_string(),
            domain: rec.opt(controller::DOMAIN).unwrap_or_default().trim().to_string(),
        };
        // Reuse the client (its tokens and connections) while the settings stay the same.
        let fingerprint = format!(
            "{}|{}|{}|{}|{}",
            config.auth_url,
            config.user,
            config.project,
            config.domain,
            backend_kit::sha256_hex(&config.password)
        );
        let settings =
            backend_kit::parse_settings(rec.opt(controller::SETTINGS)).map_err(SyncError::Failed)?;
        let client = self
            .clients
            .client(rec.id(), fingerprint, || OsClient::new(config).map_err(failed))?;
        Ok(Controller {
            id: rec.id(),
            deployment: rec.req(controller::DEPLOYMENT)?,
            settings,
            client,
        })
    }

    /// The live OpenStack controllers.
    pub async fn controllers(store: &Store) -> Result<Vec<Record>, StoreError> {
        backend_kit::controllers(store, BACKEND).await
    }

    /// Controller `id` (deleted ones too: a deletion still needs its client).
    async fn controller_by_id(&self, store: &Store, id: Option<i64>) -> Result<Controller, SyncError> {
        let rec = load_record(store, store.model("Controller"), id.unwrap_or(0))
            .await?
            .ok_or_else(|| SyncError::Failed("the controller is gone".into()))?;
        self.controller(&rec)
    }

    /// The controller of a deployment.
    async fn controller_of_deployment(
        &self,
        store: &Store,
        deployment: i64,
    ) -> Result<Controller, SyncError> {
        let rec = OsBackend::controllers(store)
            .await?
            .into_iter()
            .find(|c| c.opt(controller::DEPLOYMENT) == Some(deployment))
            .ok_or_else(|| SyncError::Failed("the deployment has no OpenStack controller".into()))?;
        self.controller(&rec)
    }
}

/// The steps of the OpenStack backend, sharing one client per controller.
pub fn steps(backend: Arc<OsBackend>, drift_interval: Duration) -> Vec<Arc<dyn Step>> {
    vec![
        Arc::new(OsControllers {
            backend: backend.clone(),
        }),
        Arc::new(OsSites {
            backend: backend.clone(),
        }),
        Arc::new(OsSlices {
            backend: backend.clone(),
        }),
        Arc::new(OsUsers {
            backend: backend.clone(),
        }),
        Arc::new(OsPrivileges {
            backend: backend.clone(),
            kind: "site",
        }),
        Arc::new(OsPrivileges {
            backend: backend.clone(),
            kind: "slice",
        }),
        Arc::new(OsImages {
            backend: backend.clone(),
        }),
        Arc::new(OsNetworks {
            backend: backend.clone(),
        }),
        Arc::new(OsInstances {
            backend: backend.clone(),
        }),
        Arc::new(OsPorts {
            backend: backend.clone(),
        }),
        Arc::new(OsDrift::new(Arc::new(OsDriftSource(backend)), drift_interval)),
    ]
}

#[cfg(test)]
mod backend_type_tests {
    #[test]
    fn its_backend_type_is_one_a_controller_may_name() {
        assert!(registry::BACKEND_TYPES.iter().any(|(v, _)| *v == super::BACKEND));
    }
}
