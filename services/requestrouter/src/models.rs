//! The Request Router: the CDN's DNS (`xos/services/requestrouter` in XOS). One
//! `RequestRouterService` per system runs an authoritative DNS server; each `ServiceMap` hands
//! it a zone (`prefix`) for a service's slice: every enabled CDN prefix of that service inside
//! the zone is answered with up to `maxAnswers` healthy caches of the slice, chosen by the
//! client's subnet (EDNS client subnet honoured) from the site maps.
//!
//! `defaultAction` is what answers a client no site-map line covers, `lastResortAction` what
//! answers when the caches chosen for a client are all unhealthy: `best` (the healthy caches in
//! the slice's order, the nearest first as the site map lists them) or `random` (healthy caches
//! in a pseudo-random order, fixed per name and subnet). A service map's `accessMap` is its zone's
//! query ACL, so it is an allow list.

use registry::{Field, Model, OnDelete, Rule, ToscaEffect, Validator};
use service_hpc::{ALLOW_LIST, SITE_MAP};

/// Every model of the Request Router service.
pub fn models() -> Vec<Model> {
    let actions = [("best", "best"), ("random", "random")];
    vec![
        Model::new("RequestRouterService", "requestrouterservices")
            .in_app("requestrouter")
            .extends("Service", "requestrouter")
            .verbose("Request Router service", "Request Router services")
            .help("The CDN's DNS: answers each prefix with the caches nearest the client")
            .field(Field::boolean("behindNat", false).help("Enables 'Behind NAT' mode."))
            .field(
                Field::positive_integer("defaultTTL")
                    .default_int(30)
                    .help("DNS response time-to-live(TTL)"),
            )
            .field(
                Field::char("defaultAction", 30)
                    .default_str("best")
                    .choices(&actions)
                    .help("How clients no site map covers are answered"),
            )
            .field(
                Field::char("lastResortAction", 30)
                    .default_str("random")
                    .choices(&actions)
                    .help("How clients are answered when their caches are all unhealthy"),
            )
            .field(
                Field::positive_integer("maxAnswers")
                    .default_int(3)
                    .help("Maximum number of answers in DNS response."),
            )
            .field(
                Field::ip("dns_address")
                    .default_str("127.0.0.1")
                    .help("The address the DNS server listens on"),
            )
            .field(
                Field::positive_integer("dns_port")
                    .default_int(5353)
                    .help("The port the DNS server listens on (UDP and TCP)"),
            )
            .rule(Rule::Singleton)
            .display("{name}")
            .search(&["name", "description"])
            .list(&["name", "enabled", "dns_address", "dns_port", "backend_status"])
            .tosca("tosca.nodes.RequestRouterService", "name")
            .tosca_default("versionNumber", "1.0".into()),
        Model::new("ServiceMap", "servicemaps")
            .in_app("requestrouter")
            .verbose("service map", "service maps")
            .help("A zone the Request Router answers for a service's slice")
            .field(Field::slug("name", 50).unique().help("name of this service map"))
            .field(
                Field::fk("owner", "Service", "servicemaps", OnDelete::Cascade)
                    .help("service which owns this map"),
            )
            .field(
                Field::fk("slice", "Slice", "servicemaps", OnDelete::Cascade)
                    .help("slice that implements this service"),
            )
            .field(
                Field::char("prefix", 256)
                    .unique()
                    .validator(Validator::DomainName)
                    .help("FQDN of the region of URI space managed by RR on behalf of this service"),
            )
            .field(
                Field::text("siteMap", Some(65536))
                    .optional()
                    .validator(SITE_MAP)
                    .help("maps client requests to service instances: `<subnet> <cache>…` per line"),
            )
            .field(
                Field::text("accessMap", Some(65536))
                    .optional()
                    .validator(ALLOW_LIST)
                    .help("specifies which client requests are allowed: `allow <subnet>` per line, then `deny all`"),
            )
            .display("{name}")
            .search(&["name", "prefix"])
            .list(&["name", "prefix", "owner", "slice", "backend_status"])
            .tosca("tosca.nodes.ServiceMap", "name")
            .tosca_required("MemberOfService", "Service", ToscaEffect::Field("owner".into()))
            .tosca_required("MemberOfSlice", "Slice", ToscaEffect::Field("slice".into())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XOS's own spelling of the Request Router's field names, kept for its clients.
    const LEGACY_CAMEL_CASE: &[&str] = &[
        "hpcService",
        "behindNat",
        "defaultTTL",
        "defaultAction",
        "lastResortAction",
        "maxAnswers",
        "siteMap",
        "accessMap",
    ];

    #[test]
    fn names_follow_the_conventions_but_for_xoss_own_spelling() {
        for m in models() {
            assert_eq!(m.app, "requestrouter", "{}", m.name);
            for f in &m.fields {
                let legacy = LEGACY_CAMEL_CASE.contains(&f.name.as_str());
                assert!(legacy || f.name == f.name.to_lowercase(), "{}.{}", m.name, f.name);
            }
        }
    }

    #[test]
    fn a_service_maps_access_map_is_an_allow_list() {
        let map = models().into_iter().find(|m| m.name == "ServiceMap").unwrap();
        let f = map.field_named("accessMap").unwrap();
        assert!(f.validators.contains(&service_hpc::ALLOW_LIST));
        assert!(map.rules.is_empty() || !map.rules.contains(&Rule::Singleton));
    }
}
