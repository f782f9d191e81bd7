//! Typed names of the Request Router fields its server part reads (see `registry::typed`),
//! proven against the declarations in `models.rs` by the test below (with the names of its
//! model that HPC's health checks read, which HPC declares).

registry::fields! {
    request_router_service "RequestRouterService" {
        MAX_ANSWERS: Int = "maxAnswers",
        DEFAULT_ACTION: Text = "defaultAction",
        LAST_RESORT_ACTION: Text = "lastResortAction",
        DEFAULT_TTL: Int = "defaultTTL",
        DNS_ADDRESS: Text = "dns_address",
        DNS_PORT: Int = "dns_port",
    }
    service_map "ServiceMap" {
        OWNER: Fk = "owner",
        SLICE: Fk = "slice",
        PREFIX: Text = "prefix",
        SITE_MAP: Text = "siteMap",
        ACCESS_MAP: Text = "accessMap",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_typed_name_is_a_declared_field_of_its_kind() {
        assert_eq!(
            registry::typed::check_with_core(
                [service_hpc::models(), crate::models()].concat(),
                &[
                    request_router_service::ALL,
                    service_map::ALL,
                    service_hpc::fields::request_router_service::ALL
                ]
            ),
            Vec::<String>::new()
        );
    }
}
