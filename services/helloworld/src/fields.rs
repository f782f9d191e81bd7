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
        assert_eq!(
            registry::typed::check_with_core(crate::models(), &[hello_world_tenant::ALL]),
            Vec::<String>::new()
        );
    }
}
