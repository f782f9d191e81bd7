//! Syndicate storage, the seed's fifth synchronizer ("activates file system volumes"): volumes
//! as buckets of a Garage object store, access rights as keys, volumes delivered to slices.
//! Everything of it is in this folder (`docs/syndicate.md`); XOS's core knows it only through
//! the catalog's list. Garage runs as its own process (`garage/garage.sh`, `make garage`).

mod models;
pub use models::{APP, models};

/// The name configurations load it by (`services = ["syndicate_storage"]`), its models' app.
pub const NAME: &str = APP;

/// Typed names of the fields its code reads, proven against its models by the test below.
pub mod fields {
    registry::fields! {
        volume "Volume" {
            NAME: Text = "name",
            OWNER_ID: Fk = "owner_id",
            ARCHIVE: Bool = "archive",
            PRIVATE: Bool = "private",
            MAX_SIZE_BYTES: Int = "max_size_bytes",
            MAX_OBJECTS: Int = "max_objects",
            BUCKET_ID: Text = "bucket_id",
            OWNER_KEY_ID: Text = "owner_key_id",
        }
        volume_access_right "VolumeAccessRight" {
            OWNER_ID: Fk = "owner_id",
            VOLUME: Fk = "volume",
            CAP_READ_DATA: Bool = "cap_read_data",
            CAP_WRITE_DATA: Bool = "cap_write_data",
            KEY_ID: Text = "key_id",
        }
        slice_secret "SliceSecret" {
            SLICE_ID: Fk = "slice_id",
            SECRET: Text = "secret",
        }
        volume_slice "VolumeSlice" {
            VOLUME_ID: Fk = "volume_id",
            SLICE_ID: Fk = "slice_id",
            CAP_READ_DATA: Bool = "cap_read_data",
            CAP_WRITE_DATA: Bool = "cap_write_data",
            KEY_ID: Text = "key_id",
        }
    }
}

#[cfg(feature = "server")]
pub mod server;

/// The service, as the server sees it.
#[cfg(feature = "server")]
pub struct Service;

#[cfg(feature = "server")]
#[async_trait::async_trait]
impl xos_service::Service for Service {
    fn name(&self) -> &'static str {
        NAME
    }
    fn models(&self) -> Vec<registry::Model> {
        models()
    }
    fn steps(&self, ctx: &xos_service::StepContext) -> Vec<std::sync::Arc<dyn xos_service::Step>> {
        server::steps(ctx.setting::<server::Settings>())
    }
    fn commands(&self) -> Vec<xos_service::Command> {
        vec![xos_service::Command {
            name: "syndicate-probe",
            run: server::probe,
        }]
    }
    async fn endpoint(
        &self,
        store: &xos_service::Store,
        state_dir: &std::path::Path,
        req: &xos_service::EndpointRequest,
    ) -> Option<xos_service::EndpointAnswer> {
        server::endpoint(store, state_dir, req).await
    }
    async fn tenant_view(
        &self,
        store: &xos_service::Store,
        reader: &xos_service::Actor,
    ) -> Vec<(&'static str, serde_json::Value)> {
        server::public_volumes(store, reader).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_typed_name_is_a_declared_field_of_its_kind() {
        assert_eq!(
            registry::typed::check_with_core(
                models(),
                &[
                    fields::volume::ALL,
                    fields::volume_access_right::ALL,
                    fields::volume_slice::ALL,
                    fields::slice_secret::ALL
                ]
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn its_models_keep_xos_field_names() {
        let all = models();
        let vs = all.iter().find(|m| m.name == "VolumeSlice").unwrap();
        for f in [
            "volume_id",
            "slice_id",
            "UG_portnum",
            "RG_portnum",
            "credentials_blob",
            "cap_host_data",
        ] {
            assert!(vs.field_named(f).is_some(), "VolumeSlice.{f}");
        }
        let v = all.iter().find(|m| m.name == "Volume").unwrap();
        for f in ["owner_id", "blocksize", "private", "archive", "cap_read_data"] {
            assert!(v.field_named(f).is_some(), "Volume.{f}");
        }
        assert!(all.iter().all(|m| m.app == APP));
    }
}
