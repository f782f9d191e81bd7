//! HelloWorld's models: the worked example of adding a service (see `docs/adding-a-service.md`).
//!
//! A `HelloWorldService` has tenants; each `HelloWorldTenant` carries a display message. The
//! synchronizer enacts a tenant on the local backend as a small HTTP server on a loopback port
//! that answers every request with the message; the port is written back to the tenant.

use registry::{Field, Model, OnDelete, ToscaEffect};

pub fn models() -> Vec<Model> {
    vec![
        // A Service: name, description, enabled, published, … come from `Service`; its rows
        // are listed in `/xos/services/` with kind `helloworld`.
        Model::new("HelloWorldService", "helloworldservices")
            .in_app("helloworld")
            .extends("Service", "helloworld")
            .verbose("hello world service", "hello world services")
            .help("The HelloWorld service: a provider of tenants that greet over HTTP")
            // Nothing to enact for the service itself; its tenants are what runs.
            .no_sync_by_default()
            .display("{name}")
            .search(&["name", "description"])
            .list(&["name", "enabled", "description"])
            .tosca("tosca.nodes.HelloWorldService", "name")
            .tosca_default("versionNumber", "1.0".into()),
        // A Tenant of a HelloWorldService (its `provider_service` narrowed to one): listed in
        // `/xos/tenants/` with kind `helloworld`.
        Model::new("HelloWorldTenant", "helloworldtenants")
            .in_app("helloworld")
            .extends("Tenant", "helloworld")
            .verbose("hello world tenant", "hello world tenants")
            .help("A tenant of the HelloWorld service: a loopback HTTP server that serves its message")
            .field(Field::schar("name", 200).unique().help("Name of the tenant"))
            .field(
                Field::fk(
                    "provider_service",
                    "HelloWorldService",
                    "helloworld_tenants",
                    OnDelete::Cascade,
                )
                .help("The HelloWorld service this tenant belongs to"),
            )
            .field(
                Field::char("display_message", 254)
                    .default_str("Hello World!")
                    .help("What the tenant's server answers"),
            )
            .field(
                Field::positive_integer("port")
                    .optional()
                    .backend_owned()
                    .help("The loopback port the tenant's server listens on (set by the synchronizer)"),
            )
            .field(
                Field::integer("pid")
                    .optional()
                    .backend_owned()
                    .help("The process id of the tenant's server (set by the synchronizer)"),
            )
            .display("{name}")
            .search(&["name", "display_message"])
            .list(&[
                "name",
                "provider_service",
                "display_message",
                "port",
                "backend_status",
            ])
            .tosca("tosca.nodes.HelloWorldTenant", "name")
            .tosca_required(
                "TenantOfService",
                "HelloWorldService",
                ToscaEffect::Field("provider_service".into()),
            ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn its_models_extend_the_cores_service_and_tenant() {
        registry::install(crate::models);
        let reg = registry::registry();
        let service = reg.model("Service").unwrap();
        let hw = reg.model("HelloWorldService").unwrap();
        for f in service.fields.iter() {
            assert!(
                hw.field_named(&f.name).is_some(),
                "HelloWorldService lacks {}",
                f.name
            );
        }
        let kind = hw.field_named("kind").unwrap();
        assert!(!kind.editable);
        assert_eq!(
            kind.default,
            Some(registry::FieldDefault::Value("helloworld".into()))
        );
        // A field the child declares wins: the tenant's provider is a HelloWorld service.
        let tenant = reg.model("HelloWorldTenant").unwrap();
        assert_eq!(
            tenant.field_named("provider_service").unwrap().fk_target(),
            Some("HelloWorldService")
        );
        assert_eq!(
            tenant
                .fields
                .iter()
                .filter(|f| f.name == "provider_service")
                .count(),
            1
        );
        assert!(
            tenant.rules.contains(&registry::Rule::TenantOneSubscriber),
            "the parent's rules apply"
        );
        let children: Vec<&str> = reg.children("Service").map(|m| m.name.as_str()).collect();
        // This crate's test binary installs HelloWorld alone.
        assert_eq!(children, vec!["HelloWorldService"]);
        assert_eq!(reg.services(), vec!["core", "helloworld"]);
    }
}
