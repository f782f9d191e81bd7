//! HPC: the High-Performance Cache service of XOS's content delivery network (`xos/services/hpc`
//! in XOS). A service provider runs the CDN for content providers; each content provider has
//! origin servers and CDN prefixes (the domain names its content is served under), access maps
//! (which clients may fetch) and site maps (which caches serve which clients). The caches are
//! the instances of the HPC service's slices; the HPC synchronizer configures an nginx cache on
//! each, and the Request Router (`requestrouter`) answers DNS for the prefixes with them.
//!
//! Field names keep XOS's spelling (`hpcService`, `contentProvider`, …): XOS's views and
//! clients used them, and the guide's `cdnContentProviders` context carries them.
//!
//! XOS kept access and site maps as uploaded files; here they are validated text, so the API,
//! the admin and TOSCA write them like any other field:
//! - an access map: one rule per line, `allow <subnet>` or `deny <subnet>` (`all` for every
//!   client), first match wins, `#` starts a comment; what matches no rule is denied;
//! - a site map: one line per client subnet, `<subnet> <cache> [<cache> …]`, the caches named by
//!   their instance names; the longest matching subnet chooses.

use crate::maps;
use registry::{Access, Field, Model, OnDelete, Rule, TextCheck, ToscaEffect, Validator, Write};

/// The link model whose rows make a user one of a content provider's users.
const PROVIDER_USERS: &str = "ContentProviderUser";

/// `http://host[:port][/path]`: where a cache fetches from.
pub const ORIGIN_URL: Validator = Validator::Check(TextCheck {
    name: "originUrl",
    check: maps::origin_url_error,
});

/// `allow|deny <subnet>|all` per line (an access map; see [`maps`]).
pub const ACCESS_MAP: Validator = Validator::Check(TextCheck {
    name: "accessMap",
    check: |s| maps::parse_access_map(s).err(),
});

/// `<subnet> <cache> [<cache> …]` per line (a site map; see [`maps`]).
pub const SITE_MAP: Validator = Validator::Check(TextCheck {
    name: "siteMap",
    check: |s| maps::parse_site_map(s).err(),
});

/// An access map that is an allow list: `allow <subnet>|all` lines, then at most a final
/// `deny all` (what a DNS server's query ACL can hold).
pub const ALLOW_LIST: Validator = Validator::Check(TextCheck {
    name: "allowList",
    check: |s| maps::parse_allow_list(s).err(),
});

/// Every model of the HPC service.
pub fn models() -> Vec<Model> {
    vec![
        Model::new("HpcService", "hpcservices")
            .in_app("hpc")
            .extends("Service", "hpc")
            .verbose("HPC service", "HPC services")
            .help("The High-Performance Cache service: HTTP caches for content providers")
            .field(Field::schar("cmi_hostname", 254).optional())
            .field(Field::boolean("hpc_port80", true).help("Enable port 80 for HPC"))
            .field(
                Field::schar("watcher_hpc_network", 254)
                    .optional()
                    .help("Network for hpc_watcher to contact hpc instance"),
            )
            .field(
                Field::schar("watcher_dnsdemux_network", 254)
                    .optional()
                    .help("Network for hpc_watcher to contact dnsdemux instance"),
            )
            .field(
                Field::schar("watcher_dnsredir_network", 254)
                    .optional()
                    .help("Network for hpc_watcher to contact dnsredir instance"),
            )
            .field(
                Field::positive_integer("cache_port")
                    .default_int(8880)
                    .help("The port each cache serves HTTP on (each cache on its own address)"),
            )
            .display("{name}")
            .search(&["name", "description"])
            .list(&["name", "enabled", "cache_port", "backend_status"])
            .tosca("tosca.nodes.HpcService", "name")
            .tosca_default("versionNumber", "1.0".into()),
        Model::new("ServiceProvider", "serviceproviders")
            .in_app("hpc")
            .verbose("service provider", "service providers")
            .help("Who runs the CDN on an HPC service for its content providers")
            .field(Field::fk("hpcService", "HpcService", "serviceproviders", OnDelete::Cascade))
            .field(Field::integer("service_provider_id").optional())
            .field(Field::char("name", 254).unique().help("Service Provider Name"))
            .field(
                Field::text("description", Some(254))
                    .optional()
                    .help("Description of Service Provider"),
            )
            .field(Field::boolean("enabled", true))
            .display("{name}")
            .search(&["name", "description"])
            .list(&["name", "hpcService", "enabled"])
            .tosca("tosca.nodes.ServiceProvider", "name")
            .tosca_required("MemberOfService", "HpcService", ToscaEffect::Field("hpcService".into())),
        Model::new("ContentProvider", "contentproviders")
            .in_app("hpc")
            .access(Access::members("", PROVIDER_USERS))
            .verbose("content provider", "content providers")
            .help("A customer of the CDN: its origin servers, prefixes and maps")
            .field(Field::integer("content_provider_id").optional())
            .field(Field::char("name", 254).unique())
            .field(Field::boolean("enabled", true))
            .field(
                Field::text("description", Some(254))
                    .optional()
                    .help("Description of Content Provider"),
            )
            .field(Field::fk(
                "serviceProvider",
                "ServiceProvider",
                "contentproviders",
                OnDelete::Cascade,
            ))
            .many_to_many("users", "User", "ContentProviderUser", "contentproviders")
            .display("{name}")
            .search(&["name", "description"])
            .list(&["name", "serviceProvider", "enabled"])
            .tosca("tosca.nodes.ContentProvider", "name")
            .tosca_required(
                "MemberOfServiceProvider",
                "ServiceProvider",
                ToscaEffect::Field("serviceProvider".into()),
            ),
        // XOS's implicit many-to-many table, named so the write path can check it.
        Model::new("ContentProviderUser", "contentproviderusers")
            .in_app("hpc")
            .access(Access::members("contentprovider", PROVIDER_USERS).write(Write::Admins))
            .verbose("content provider user", "content provider users")
            .field(Field::fk(
                "contentprovider",
                "ContentProvider",
                "contentprovider_users",
                OnDelete::Cascade,
            ))
            .field(Field::fk("user", "User", "contentprovider_users", OnDelete::Cascade))
            .unique_together(&["contentprovider", "user"])
            .no_sync_by_default()
            .display("{contentprovider} {user}"),
        Model::new("OriginServer", "originservers")
            .in_app("hpc")
            .access(Access::members("contentProvider", PROVIDER_USERS))
            .verbose("origin server", "origin servers")
            .help("Where a content provider's content comes from")
            .field(Field::integer("origin_server_id").optional())
            .field(
                Field::char("url", 1024)
                    .validator(ORIGIN_URL)
                    .help("http://host[:port][/path] of the origin"),
            )
            .field(Field::fk(
                "contentProvider",
                "ContentProvider",
                "originservers",
                OnDelete::Cascade,
            ))
            .field(Field::boolean("authenticated", false).help("Status for this Site"))
            .field(Field::boolean("enabled", true).help("Status for this Site"))
            .field(
                Field::char("protocol", 12)
                    .default_str("http")
                    .choices(&[
                        ("http", "HTTP"),
                        ("rtmp", "RTMP"),
                        ("rtp", "RTP"),
                        ("shout", "SHOUTcast"),
                    ]),
            )
            .field(Field::boolean("redirects", true).help(
                "Indicates whether Origin Server redirects should be used for this Origin Server",
            ))
            .field(Field::text("description", Some(255)).optional())
            .display("{url}")
            .search(&["url", "description"])
            .list(&["url", "contentProvider", "protocol", "enabled"])
            .tosca("tosca.nodes.OriginServer", "url")
            .tosca_required(
                "MemberOfContentProvider",
                "ContentProvider",
                ToscaEffect::Field("contentProvider".into()),
            ),
        Model::new("CDNPrefix", "cdnprefixs")
            .in_app("hpc")
            .access(Access::members("contentProvider", PROVIDER_USERS))
            .verbose("CDN prefix", "CDN prefixes")
            .help("A domain name a content provider's content is served under")
            .field(Field::integer("cdn_prefix_id").optional())
            .field(
                Field::char("prefix", 200)
                    .unique()
                    .validator(Validator::DomainName)
                    .help("Registered Prefix for Domain"),
            )
            .field(Field::fk(
                "contentProvider",
                "ContentProvider",
                "cdnprefixes",
                OnDelete::Cascade,
            ))
            .field(
                Field::text("description", Some(254))
                    .optional()
                    .help("Description of Content Provider"),
            )
            .field(
                Field::fk(
                    "defaultOriginServer",
                    "OriginServer",
                    "cdnprefixes",
                    OnDelete::SetNull,
                )
                .optional(),
            )
            .field(Field::boolean("enabled", true))
            .rule(Rule::SameAs {
                field: "defaultOriginServer".into(),
                via: "contentProvider".into(),
            })
            .display("{prefix}")
            .search(&["prefix", "description"])
            .list(&["prefix", "contentProvider", "defaultOriginServer", "enabled"])
            .tosca("tosca.nodes.CDNPrefix", "prefix")
            .tosca_required(
                "MemberOfContentProvider",
                "ContentProvider",
                ToscaEffect::Field("contentProvider".into()),
            )
            .tosca_requirement(
                "DefaultOriginServer",
                "OriginServer",
                ToscaEffect::Field("defaultOriginServer".into()),
            ),
        Model::new("AccessMap", "accessmaps")
            .in_app("hpc")
            .access(Access::members("contentProvider", PROVIDER_USERS))
            .verbose("access map", "access maps")
            .help("Which clients may fetch a content provider's content")
            .field(Field::fk(
                "contentProvider",
                "ContentProvider",
                "accessmaps",
                OnDelete::Cascade,
            ))
            .field(Field::char("name", 64).help("Name of the Access Map"))
            .field(Field::text("description", Some(130)).optional())
            .field(
                Field::text("map", Some(65536))
                    .validator(ACCESS_MAP)
                    .help("specifies which client requests are allowed: `allow|deny <subnet>|all` per line"),
            )
            .unique_together(&["contentProvider", "name"])
            .display("{name}")
            .search(&["name", "description"])
            .list(&["name", "contentProvider"])
            .tosca("tosca.nodes.AccessMap", "name")
            .tosca_required(
                "MemberOfContentProvider",
                "ContentProvider",
                ToscaEffect::Field("contentProvider".into()),
            ),
        Model::new("SiteMap", "sitemaps")
            .in_app("hpc")
            .access(Access::admins_only())
            .verbose("site map", "site maps")
            .help("Which caches serve which clients (one of its four owners, or none)")
            .field(
                Field::fk(
                    "contentProvider",
                    "ContentProvider",
                    "sitemaps",
                    OnDelete::Cascade,
                )
                .optional(),
            )
            .field(
                Field::fk(
                    "serviceProvider",
                    "ServiceProvider",
                    "sitemaps",
                    OnDelete::Cascade,
                )
                .optional(),
            )
            .field(Field::fk("cdnPrefix", "CDNPrefix", "sitemaps", OnDelete::Cascade).optional())
            .field(Field::fk("hpcService", "HpcService", "sitemaps", OnDelete::Cascade).optional())
            .field(Field::char("name", 64).unique().help("Name of the Site Map"))
            .field(Field::text("description", Some(130)).optional())
            .field(
                Field::text("map", Some(65536))
                    .validator(SITE_MAP)
                    .help("specifies how to map requests to hpc instances: `<subnet> <cache>…` per line"),
            )
            .field(Field::integer("map_id").optional())
            .rule(Rule::AtMostOneOf(vec![
                "contentProvider".into(),
                "serviceProvider".into(),
                "cdnPrefix".into(),
                "hpcService".into(),
            ]))
            .no_sync_by_default()
            .display("{name}")
            .search(&["name", "description"])
            .list(&["name", "cdnPrefix", "contentProvider", "serviceProvider", "hpcService"])
            .tosca("tosca.nodes.SiteMap", "name")
            .tosca_requirement(
                "MemberOfContentProvider",
                "ContentProvider",
                ToscaEffect::Field("contentProvider".into()),
            )
            .tosca_requirement(
                "MemberOfServiceProvider",
                "ServiceProvider",
                ToscaEffect::Field("serviceProvider".into()),
            )
            .tosca_requirement("MemberOfCDNPrefix", "CDNPrefix", ToscaEffect::Field("cdnPrefix".into()))
            .tosca_requirement("MemberOfService", "HpcService", ToscaEffect::Field("hpcService".into())),
        Model::new("HpcHealthCheck", "hpchealthchecks")
            .in_app("hpc")
            .access(Access::admins_only())
            .verbose("HPC health check", "HPC health checks")
            .help("A check run against every cache (http), the DNS server (dns) or its name server (nameserver)")
            .field(Field::fk("hpcService", "HpcService", "healthchecks", OnDelete::Cascade).optional())
            .field(
                Field::char("kind", 30)
                    .default_str("dns")
                    .choices(&[("dns", "DNS"), ("http", "HTTP"), ("nameserver", "Name Server")]),
            )
            .field(Field::schar("resource_name", 1024).help(
                "http: the path fetched through each cache (with the first prefix's Host); dns: the name resolved; nameserver: the zone asked for its SOA",
            ))
            .field(Field::schar("result_contains", 1024).optional())
            .field(Field::integer("result_min_size").optional())
            .field(Field::integer("result_max_size").optional())
            .field(
                Field::positive_integer("interval")
                    .default_int(5)
                    .help("Seconds between two runs of the check"),
            )
            .field(
                Field::text("results", None)
                    .optional()
                    .read_only()
                    .help("The last run's result per target, as JSON (set by the synchronizer)"),
            )
            .display("{kind} {resource_name}")
            .search(&["resource_name"])
            .list(&["kind", "resource_name", "hpcService", "interval", "backend_status"])
            .tosca("tosca.nodes.HpcHealthCheck", "resource_name")
            .tosca_requirement("MemberOfService", "HpcService", ToscaEffect::Field("hpcService".into())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XOS's own spelling of the CDN's field names, kept for its views and clients.
    const LEGACY_CAMEL_CASE: &[&str] = &[
        "hpcService",
        "serviceProvider",
        "contentProvider",
        "defaultOriginServer",
        "cdnPrefix",
        "siteMap",
        "accessMap",
    ];

    #[test]
    fn names_follow_the_conventions_but_for_xoss_own_spelling() {
        for m in models() {
            assert_eq!(m.app, "hpc", "{}", m.name);
            assert!(m.name.chars().next().unwrap().is_ascii_uppercase(), "{}", m.name);
            assert_eq!(m.plural, m.plural.to_lowercase(), "{}", m.plural);
            for f in &m.fields {
                let legacy = LEGACY_CAMEL_CASE.contains(&f.name.as_str());
                assert!(legacy || f.name == f.name.to_lowercase(), "{}.{}", m.name, f.name);
            }
        }
    }

    #[test]
    fn the_format_checks_are_the_services_own() {
        let check = |v: Validator| match v {
            Validator::Check(c) => c,
            other => panic!("{other:?} is a core validator"),
        };
        let origin = check(ORIGIN_URL);
        assert!((origin.check)("http://127.0.0.1:8080/video").is_none());
        assert!((origin.check)("http://x.org/;rm").is_some());
        assert!((check(ACCESS_MAP).check)("allow all").is_none());
        assert!((check(ACCESS_MAP).check)("permit all").is_some());
        assert!((check(SITE_MAP).check)("10.0.0.0/8 mysite_hpc-1").is_none());
        assert!((check(SITE_MAP).check)("10.0.0.0/8").is_some());
        assert!((check(ALLOW_LIST).check)("allow 10.0.0.0/8\ndeny all").is_none());
        assert!((check(ALLOW_LIST).check)("deny 10.0.0.0/8").is_some());
        // Each field names its check, so the client and the errors can tell them apart.
        let names: Vec<&str> = models()
            .iter()
            .flat_map(|m| m.fields.iter().flat_map(|f| f.validators.iter()))
            .filter_map(|v| match v {
                Validator::Check(c) => Some(c.name),
                _ => None,
            })
            .collect();
        for name in ["originUrl", "accessMap", "siteMap"] {
            assert!(names.contains(&name), "{name} is used by no field");
        }
    }
}
