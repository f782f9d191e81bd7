//! Services and tenants (the coarse service-to-service tenancy TOSCA creates is a Tenant of kind
//! `coarse`).

use crate::{Field, Model, OnDelete, Rule, ToscaEffect, ToscaLink};

pub fn models() -> Vec<Model> {
    vec![
        Model::new("Service", "services")
            .verbose("service", "services")
            .help("A service offered on XOS; tenants subscribe to it")
            .field(
                Field::text("description", Some(254))
                    .optional()
                    .help("Description of Service"),
            )
            .field(Field::boolean("enabled", true))
            .field(
                Field::schar("kind", 30)
                    .default_str("generic")
                    .help("Kind of service"),
            )
            .field(Field::schar("name", 30).unique().help("Service Name"))
            .field(
                Field::schar("versionNumber", 30)
                    .verbose("version number")
                    .help("Version of Service Definition"),
            )
            .field(Field::boolean("published", true))
            .field(Field::schar("view_url", 1024).optional())
            .field(Field::schar("icon_url", 1024).optional())
            .field(
                Field::text("public_key", Some(1024))
                    .optional()
                    .help("Public key string"),
            )
            .field(Field::schar("private_key_fn", 1024).optional())
            .field(Field::schar("service_specific_id", 30).optional())
            .field(
                Field::text("service_specific_attribute", None)
                    .optional()
                    .help("A JSON dictionary of service attributes"),
            )
            .display("{name}")
            .search(&["name", "kind", "description"])
            .list(&["name", "kind", "versionNumber", "enabled", "published"])
            // XOS's ServiceAdmin inlines: its slices and the tenants it provides.
            .inline("Slice", "service")
            .inline("Tenant", "provider_service")
            .tosca("tosca.nodes.Service", "name")
            .tosca_default("versionNumber", "1.0".into())
            .tosca_requirement(
                "TenantOfService",
                "Service",
                ToscaEffect::Link(
                    ToscaLink::new("Tenant", "subscriber_service", "provider_service")
                        .value("kind", "coarse".into()),
                ),
            ),
        Model::new("Tenant", "tenants")
            .verbose("tenant", "tenants")
            .help("A subscription of a service, a tenant or a user to a provider service")
            .field(Field::schar("kind", 30).default_str("generic"))
            .field(Field::fk(
                "provider_service",
                "Service",
                "provided_tenants",
                OnDelete::Cascade,
            ))
            .field(
                Field::fk(
                    "subscriber_service",
                    "Service",
                    "subscribed_tenants",
                    OnDelete::Cascade,
                )
                .optional(),
            )
            .field(
                Field::fk(
                    "subscriber_tenant",
                    "Tenant",
                    "subscribed_tenants",
                    OnDelete::Cascade,
                )
                .optional(),
            )
            .field(Field::fk("subscriber_user", "User", "subscribed_tenants", OnDelete::Cascade).optional())
            .field(Field::schar("service_specific_id", 30).optional())
            .field(Field::text("service_specific_attribute", None).optional())
            .field(
                Field::char("connect_method", 30)
                    .choices(&[
                        ("public", "Public"),
                        ("private", "Private"),
                        ("na", "Not Applicable"),
                    ])
                    .default_str("na"),
            )
            .display("{kind} {provider_service}")
            .search(&["kind", "service_specific_id"])
            .list(&[
                "kind",
                "provider_service",
                "subscriber_service",
                "subscriber_user",
                "connect_method",
            ])
            .rule(Rule::TenantOneSubscriber)
            .tosca("tosca.nodes.Tenant", "service_specific_id")
            .tosca_required(
                "TenantOfService",
                "Service",
                ToscaEffect::Field("provider_service".into()),
            ),
    ]
}
