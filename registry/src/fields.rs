//! Typed names of the core models' fields that code reads (see [`crate::typed`]); the test below
//! proves each against the declarations in `models/`.

pub use crate::typed::common;

crate::fields! {
    controller "Controller" {
        NAME: Text = "name",
        BACKEND_TYPE: Text = "backend_type",
        AUTH_URL: Text = "auth_url",
        ADMIN_USER: Text = "admin_user",
        ADMIN_PASSWORD: Text = "admin_password",
        ADMIN_TENANT: Text = "admin_tenant",
        DOMAIN: Text = "domain",
        SETTINGS: Text = "settings",
        DEPLOYMENT: Fk = "deployment",
    }
    instance "Instance" {
        NAME: Text = "name",
        INSTANCE_ID: Text = "instance_id",
        IP: Text = "ip",
        OBSERVED_STATE: Text = "observed_state",
        USER_DATA: Text = "userData",
        SLICE: Fk = "slice",
        DEPLOYMENT: Fk = "deployment",
        IMAGE: Fk = "image",
        FLAVOR: Fk = "flavor",
        CREATOR: Fk = "creator",
        NODE: Fk = "node",
    }
    slice "Slice" {
        NAME: Text = "name",
        SITE: Fk = "site",
        SERVICE: Fk = "service",
        CREATOR: Fk = "creator",
        DEFAULT_IMAGE: Fk = "default_image",
        DEFAULT_FLAVOR: Fk = "default_flavor",
    }
    user "User" {
        EMAIL: Text = "email",
        PASSWORD: Text = "password",
        SITE: Fk = "site",
        IS_ADMIN: Bool = "is_admin",
        IS_READONLY: Bool = "is_readonly",
    }
    controller_site "ControllerSite" {
        CONTROLLER: Fk = "controller",
        SITE: Fk = "site",
        TENANT_ID: Text = "tenant_id",
    }
    controller_slice "ControllerSlice" {
        CONTROLLER: Fk = "controller",
        SLICE: Fk = "slice",
        TENANT_ID: Text = "tenant_id",
    }
    controller_user "ControllerUser" {
        CONTROLLER: Fk = "controller",
        USER: Fk = "user",
        KUSER_ID: Text = "kuser_id",
    }
    controller_images "ControllerImages" {
        CONTROLLER: Fk = "controller",
        IMAGE: Fk = "image",
    }
    controller_network "ControllerNetwork" {
        CONTROLLER: Fk = "controller",
        NETWORK: Fk = "network",
    }
    port "Port" {
        INSTANCE: Fk = "instance",
        NETWORK: Fk = "network",
    }
    site_privilege "SitePrivilege" {
        USER: Fk = "user",
        SITE: Fk = "site",
        ROLE: Fk = "role",
    }
    slice_privilege "SlicePrivilege" {
        USER: Fk = "user",
        SLICE: Fk = "slice",
        ROLE: Fk = "role",
    }
    node "Node" {
        SITE: Fk = "site",
    }
    site "Site" {
        NAME: Text = "name",
        SITE_URL: Text = "site_url",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    #[test]
    fn every_typed_name_is_a_declared_field_of_its_kind() {
        let registry = Registry::new(crate::models::models());
        let all = [
            common::ALL,
            controller::ALL,
            instance::ALL,
            slice::ALL,
            user::ALL,
            controller_site::ALL,
            controller_slice::ALL,
            controller_user::ALL,
            controller_images::ALL,
            controller_network::ALL,
            port::ALL,
            site_privilege::ALL,
            slice_privilege::ALL,
            node::ALL,
            site::ALL,
        ]
        .concat();
        assert_eq!(crate::typed::check(&registry, &all), Vec::<String>::new());
    }

    crate::fields! {
        wrong "Instance" {
            SLIC: Fk = "slic",
            NAME_AS_INT: Int = "name",
            SLICE_AS_INT: Int = "slice",
        }
        nothing "Nothing" { X: Text = "x" }
    }

    #[test]
    fn a_misnamed_field_is_found() {
        let registry = Registry::new(crate::models::models());
        let wrong = crate::typed::check(&registry, &[wrong::ALL, nothing::ALL].concat());
        assert_eq!(
            wrong,
            [
                "Instance.slic: no such field",
                "Instance.name: stored as Text, named as Int",
                "Instance.slice: a foreign key only if named as Fk",
                "Nothing: no such model",
            ]
        );
    }
}
