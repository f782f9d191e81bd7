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

use crate::{Access, Field, Model, OnDelete, Rule, ToscaEffect, Validator, Write};

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
            .access(Access::content_provider(""))
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
            .access(Access::content_provider("contentprovider").write(Write::Admins))
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
            .access(Access::content_provider("contentProvider"))
            .verbose("origin server", "origin servers")
            .help("Where a content provider's content comes from")
            .field(Field::integer("origin_server_id").optional())
            .field(
                Field::char("url", 1024)
                    .validator(Validator::OriginUrl)
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
            .access(Access::content_provider("contentProvider"))
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
            .rule(Rule::SameContentProvider("defaultOriginServer".into()))
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
            .access(Access::content_provider("contentProvider"))
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
                    .validator(Validator::AccessMap)
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
                    .validator(Validator::SiteMap)
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
