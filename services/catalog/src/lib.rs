//! The services XOS is built with, listed once. The registry gets their models from here (the
//! browser's bundle too, which takes the models alone); the server, with the `server` feature,
//! gets the services themselves. Adding a service is a folder under `services/`, its crate in
//! `Cargo.toml` here and one name in [`services!`] below (`docs/adding-a-service.md`).

/// The registry of the core's models and every service's: what the server, the browser and the
/// tools work with.
pub fn registry() -> &'static registry::Registry {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| registry::install(models));
    registry::registry()
}

macro_rules! services {
    ($($service:ident),* $(,)?) => {
        /// Every service's models, in the order of the list.
        pub fn models() -> Vec<registry::Model> {
            let mut models = Vec::new();
            $(models.extend($service::models());)*
            models
        }

        /// Every service, in the order of the list.
        #[cfg(feature = "server")]
        pub fn all() -> Vec<std::sync::Arc<dyn xos_service::Service>> {
            vec![$(std::sync::Arc::new($service::Service)),*]
        }
    };
}

services!(
    service_helloworld,
    service_hpc,
    service_requestrouter,
    service_example,
    service_syndicate,
);

#[cfg(test)]
mod tests {
    use std::path::Path;
    use store::migrations::{Outcome, make_migrations};

    /// The committed migrations hold every model of the core and of every service listed here:
    /// a service added without its migration fails this.
    #[test]
    fn the_committed_migrations_cover_the_registry() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let r = make_migrations(super::registry(), &dir, "check", true);
        assert!(
            matches!(r, Ok(Outcome::NoChanges)),
            "{r:?}: run `xos makemigrations`"
        );
    }

    #[test]
    fn every_listed_service_has_models_of_its_own_app() {
        let reg = super::registry();
        for m in super::models() {
            assert!(reg.model(&m.name).is_some(), "{} is not in the registry", m.name);
            assert_ne!(
                m.app, "core",
                "{}: a service's models live in its own app",
                m.name
            );
        }
    }
}
