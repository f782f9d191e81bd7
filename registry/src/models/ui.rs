//! UI and miscellany: DashboardView, UserDashboardView, DashboardViewDeployment, Tag, Role.

use crate::{Access, Field, Model, OnDelete, Rule, ToscaEffect, ToscaLink, Validator};

pub fn models() -> Vec<Model> {
    vec![
        Model::new("DashboardView", "dashboardviews")
            .verbose("dashboard view", "dashboard views")
            .help("A user view: a server-rendered template (template:NAME) or a web page in a frame (http(s)://…)")
            .field(Field::schar("name", 200).unique().help("Name of the View").validator(Validator::NoComma))
            .field(
                Field::schar("url", 1024)
                    .verbose("URL")
                    .validator(Validator::DashboardUrl)
                    .help("URL of Dashboard: template:NAME or http(s)://…"),
            )
            .field(Field::boolean("enabled", true))
            .many_to_many("deployments", "Deployment", "DashboardViewDeployment", "dashboardviews")
            .display("{name}")
            .search(&["name", "url"])
            .list(&["name", "url", "enabled"])
            .tosca("tosca.nodes.DashboardView", "name")
            // The deployments whose sites the Tenant view offers (XOS's blessed deployments).
            .tosca_requirement(
                "SupportsDeployment",
                "Deployment",
                ToscaEffect::Link(ToscaLink::new("DashboardViewDeployment", "dashboardView", "deployment")),
            ),
        Model::new("DashboardViewDeployment", "dashboardviewdeployments")
            .verbose("dashboard view deployment", "dashboard view deployments")
            .help("The deployments a view is meant for (Django's implicit DashboardView.deployments table)")
            .field(Field::fk("dashboardView", "DashboardView", "dashboardviewdeployments", OnDelete::Cascade))
            .field(Field::fk("deployment", "Deployment", "dashboardviewdeployments", OnDelete::Cascade))
            .unique_together(&["dashboardView", "deployment"])
            .display("{dashboardView} {deployment}")
            .list(&["dashboardView", "deployment"]),
        Model::new("UserDashboardView", "userdashboardviews")
            .access(Access::owner("user", true))
            .verbose("user dashboard view", "user dashboard views")
            .help("A dashboard a user chose for their home page, in order")
            .field(Field::fk("user", "User", "userdashboardviews", OnDelete::Cascade))
            .field(Field::fk("dashboardView", "DashboardView", "userdashboardviews", OnDelete::Cascade))
            .field(Field::integer("order").default_int(0))
            .ordering(&["order"])
            .display("{user} {dashboardView}")
            .list(&["user", "dashboardView", "order"]),
        Model::new("Tag", "tags")
            .verbose("tag", "tags")
            .help("A name/value pair attached to any object")
            .field(Field::fk("service", "Service", "tags", OnDelete::Cascade).help("The Service this Tag is part of"))
            .field(Field::slug("name", 128).help("The name of this tag"))
            .field(Field::schar("value", 1024).help("The value of this tag"))
            .field(Field::char("content_type", 100).help("The model of the tagged object (e.g. Slice)"))
            .field(Field::positive_integer("object_id").help("The id of the tagged object"))
            .display("{name}")
            .search(&["name", "value"])
            .list(&["name", "value", "content_type", "object_id", "service"])
            .rule(Rule::GenericReference),
        Model::new("Role", "roles")
            .verbose("role", "roles")
            .help("A role scoped to a kind of object")
            .field(Field::schar("role_type", 80).verbose("Name"))
            .field(Field::schar("role", 80).optional().verbose("Keystone role id"))
            .field(Field::schar("description", 120).verbose("Description"))
            .field(Field::char("content_type", 100).verbose("Role Scope").help("The model this role applies to (e.g. Site)"))
            .display("{role_type}")
            .search(&["role_type", "description"])
            .list(&["role_type", "role", "description", "content_type"])
            .rule(Rule::ContentTypeModel),
    ]
}
