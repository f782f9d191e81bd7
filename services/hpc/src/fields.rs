//! Typed names of the HPC fields its code (and the Request Router's) reads (see
//! `registry::typed`), proven against the declarations in `models.rs` by the test below.

registry::fields! {
    hpc_service "HpcService" {
        NAME: Text = "name",
        CACHE_PORT: Int = "cache_port",
    }
    service_provider "ServiceProvider" {
        HPC_SERVICE: Fk = "hpcService",
        ENABLED: Bool = "enabled",
    }
    content_provider "ContentProvider" {
        NAME: Text = "name",
        ENABLED: Bool = "enabled",
        SERVICE_PROVIDER: Fk = "serviceProvider",
    }
    origin_server "OriginServer" {
        URL: Text = "url",
        CONTENT_PROVIDER: Fk = "contentProvider",
        ENABLED: Bool = "enabled",
    }
    cdn_prefix "CDNPrefix" {
        PREFIX: Text = "prefix",
        CONTENT_PROVIDER: Fk = "contentProvider",
        DEFAULT_ORIGIN_SERVER: Fk = "defaultOriginServer",
        ENABLED: Bool = "enabled",
    }
    access_map "AccessMap" {
        CONTENT_PROVIDER: Fk = "contentProvider",
        MAP: Text = "map",
    }
    site_map "SiteMap" {
        CONTENT_PROVIDER: Fk = "contentProvider",
        SERVICE_PROVIDER: Fk = "serviceProvider",
        CDN_PREFIX: Fk = "cdnPrefix",
        HPC_SERVICE: Fk = "hpcService",
        MAP: Text = "map",
    }
    hpc_health_check "HpcHealthCheck" {
        HPC_SERVICE: Fk = "hpcService",
        KIND: Text = "kind",
        RESOURCE_NAME: Text = "resource_name",
        RESULT_CONTAINS: Text = "result_contains",
        RESULT_MIN_SIZE: Int = "result_min_size",
        RESULT_MAX_SIZE: Int = "result_max_size",
        INTERVAL: Int = "interval",
        RESULTS: Text = "results",
    }
}

// The Request Router's service, whose DNS servers the dns and nameserver health checks ask. This
// crate cannot name the Request Router's (which builds on it), so its names are here; the
// Request Router's tests prove them, with its models.
registry::fields! {
    request_router_service "RequestRouterService" {
        DNS_ADDRESS: Text = "dns_address",
        DNS_PORT: Int = "dns_port",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_typed_name_is_a_declared_field_of_its_kind() {
        assert_eq!(
            registry::typed::check_with_core(
                crate::models(),
                &[
                    hpc_service::ALL,
                    service_provider::ALL,
                    content_provider::ALL,
                    origin_server::ALL,
                    cdn_prefix::ALL,
                    access_map::ALL,
                    site_map::ALL,
                    hpc_health_check::ALL
                ]
            ),
            Vec::<String>::new()
        );
    }
}
