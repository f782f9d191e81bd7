//! Typed names of the HelloWorld fields its step reads (see `registry::typed`), proven against
//! the declarations in `models.rs` by the test below.

registry::fields! {
    hello_world_tenant "HelloWorldTenant" {
        DISPLAY_MESSAGE: Text = "display_message",
        PORT: Int = "port",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_typed_name_is_a_declared_field_of_its_kind() {
        let mut all = registry::core_models();
        all.extend(crate::models());
        let registry = registry::Registry::new(all);
        let names = [hello_world_tenant::ALL].concat();
        assert_eq!(registry::typed::check(&registry, &names), Vec::<String>::new());
    }
}
