//! The EC2 backend (the guide's "Developing a Synchronizer" example, as a real backend).
//!
//! A Controller with `backend_type` `EC2` selects it for its Deployment. The Controller carries
//! the connection: `auth_url` the endpoint (empty: the region's AWS endpoint), `admin_user` the
//! access key id, `admin_password` the secret access key (write-only, never logged), `domain`
//! the region, and `settings` a JSON object: `public_images` (public AMI ids to offer besides the
//! account's own) and `drift` (`recreate`, the default, or `report`).
//!
//! Steps:
//! - [`Ec2Catalog`] (external, on an interval): a Site, SiteDeployment and Node per availability
//!   zone (`login_base` = the zone), an Image per AMI (the account's own and the allowed public
//!   ones; `path` = the AMI id), and the Flavors of [`INSTANCE_TYPES`].
//! - [`Ec2Instances`] (internal, driven by changes): runs, resizes, replaces and terminates
//!   instances. Each EC2 instance is tagged with the model's id and looked up by that tag before
//!   anything is run, so a crash between RunInstances and the write of the instance id never
//!   leads to a second instance: the restarted synchronizer adopts the first.
//! - [`Ec2Drift`] (external, on an interval): one DescribeInstances per controller for all its
//!   instances; reflects state and addresses changed outside XOS and re-creates (or reports)
//!   instances terminated outside XOS.

mod catalog;
pub mod client;
mod drift;
mod instances;

pub use catalog::Ec2Catalog;
pub use drift::Ec2Drift;
pub use instances::Ec2Instances;

pub use backend_kit::Drift;
use client::{Ec2Client, Ec2Config, Ec2Error, Ec2Instance, RunRequest};
use registry::SqlType;
use registry::fields::{self, controller};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use std::collections::HashMap;

use std::sync::Arc;
use std::time::Duration;
use store::db::{Sql, Value};
use store::{Actor, Record, Store, StoreError};
use synchronizer::{Enacted, Step, StepContext, SyncError, and_where, default_fetch_pending};

/// The `backend_type` that selects this backend.
pub const BACKEND: &str = "EC2";
/// The tag carrying the model's id on each EC2 instance.
pub const TAG: &str = "xos-instance-id";
/// The instance types offered as Flavors: (type, vCPUs, memory in MiB).
pub const INSTANCE_TYPES: &[(&str, i64, i64)] = &[
    ("t2.micro", 1, 1024),
    ("t2.small", 1, 2048),
    ("t2.medium", 2, 4096),
    ("t2.large", 2, 8192),
    ("m5.large", 2, 8192),
    ("m5.xlarge", 4, 16384),
];

/// Instances of deployments whose controller is an EC2 one.
const EC2_INSTANCES: &str =
    "t.deployment_id IN (SELECT deployment_id FROM core_controller WHERE NOT deleted AND backend_type = ";

/// The JSON `settings` of an EC2 controller.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub public_images: Vec<String>,
    #[serde(default)]
    pub drift: Drift,
}

impl Settings {
    pub fn parse(text: Option<&str>) -> Result<Settings, String> {
        backend_kit::parse_settings(text)
    }
}

/// The EC2 backend's shared state: a client per controller, the count of API calls.
#[derive(Default)]
pub struct Ec2Backend {
    clients: backend_kit::ClientPool<Ec2Client>,
}

/// An EC2 controller and its client.
pub struct Controller {
    id: i64,
    deployment: i64,
    settings: Settings,
    client: Ec2Client,
}

impl Ec2Backend {
    /// EC2 API calls made so far (the idle-pass figure of `make bench`).
    pub fn api_calls(&self) -> u64 {
        self.clients.api_calls()
    }

    fn controller(&self, rec: &Record) -> Result<Controller, SyncError> {
        let region = rec.opt(controller::DOMAIN).unwrap_or_default().trim().to_string();
        let endpoint = rec
            .opt(controller::AUTH_URL)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| Ec2Client::default_endpoint(&region));
        let config = Ec2Config {
            endpoint,
            region,
            access_key: rec
                .opt(controller::ADMIN_USER)
                .unwrap_or_default()
                .trim()
                .to_string(),
            secret_key: rec
                .opt(controller::ADMIN_PASSWORD)
                .unwrap_or_default()
                .to_string(),
        };
        let settings = Settings::parse(rec.opt(controller::SETTINGS)).map_err(SyncError::Failed)?;
        // Reuse the client (its connections) while the connection settings stay the same.
        let fingerprint = format!(
            "{}|{}|{}|{}",
            config.endpoint,
            config.region,
            config.access_key,
            backend_kit::sha256_hex(&config.secret_key)
        );
        let client = self.clients.client(rec.id(), fingerprint, || {
            Ec2Client::new(config).map_err(|e| SyncError::Failed(e.to_string()))
        })?;
        Ok(Controller {
            id: rec.id(),
            deployment: rec.req(controller::DEPLOYMENT)?,
            settings,
            client,
        })
    }

    /// The live EC2 controllers.
    async fn controllers(store: &Store) -> Result<Vec<Record>, StoreError> {
        backend_kit::controllers(store, BACKEND).await
    }

    /// The controller of an instance's deployment.
    async fn controller_of(&self, store: &Store, instance: &Record) -> Result<Controller, SyncError> {
        let deployment = instance.req(fields::instance::DEPLOYMENT)?;
        let rec = Ec2Backend::controllers(store)
            .await?
            .into_iter()
            .find(|c| c.opt(controller::DEPLOYMENT) == Some(deployment))
            .ok_or_else(|| SyncError::Failed("the instance's deployment has no EC2 controller".into()))?;
        self.controller(&rec)
    }
}

fn failed(e: Ec2Error) -> SyncError {
    SyncError::Failed(e.to_string())
}

/// The steps of the EC2 backend, sharing one client per controller.
pub fn steps(
    backend: Arc<Ec2Backend>,
    catalog_interval: Duration,
    drift_interval: Duration,
) -> Vec<Arc<dyn Step>> {
    use backend_kit::{Link, LinkStep};
    vec![
        Arc::new(LinkStep::nothing(
            "ec2_sites",
            BACKEND,
            Link::Site,
            "OK, nothing to make in EC2 for a site",
        )),
        Arc::new(LinkStep::nothing(
            "ec2_slices",
            BACKEND,
            Link::Slice,
            "OK, nothing to make in EC2 for a slice (its instances carry their XOS ids as tags)",
        )),
        Arc::new(LinkStep::nothing(
            "ec2_users",
            BACKEND,
            Link::User,
            "OK, nothing to make in EC2 for a user (key pairs are made with the instances that carry them)",
        )),
        Arc::new(Ec2Catalog {
            backend: backend.clone(),
            interval: catalog_interval,
        }),
        Arc::new(Ec2Instances {
            backend: backend.clone(),
        }),
        Arc::new(Ec2Drift::new(
            Arc::new(drift::Ec2DriftSource(backend)),
            drift_interval,
        )),
    ]
}

#[cfg(test)]
mod backend_type_tests {
    #[test]
    fn its_backend_type_is_one_a_controller_may_name() {
        assert!(registry::BACKEND_TYPES.iter().any(|(v, _)| *v == super::BACKEND));
    }
}
