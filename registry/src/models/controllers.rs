//! Controllers and the per-controller link rows the synchronizer enacts and fills with backend ids.

use crate::{Access, Field, Model, OnDelete, Rule, ToscaEffect};

/// The backends a Controller can select (`backends/*`: each matches its own value).
pub const BACKEND_TYPES: &[(&str, &str)] = &[
    ("local", "Local processes"),
    ("EC2", "Amazon EC2 (or an EC2 API)"),
    ("OpenStack", "OpenStack"),
];

pub fn models() -> Vec<Model> {
    vec![
        Model::new("Controller", "controllers")
            .access(Access::admins_only())
            .verbose("controller", "controllers")
            .help("A backend that manages a deployment (e.g. `local`, `EC2`, an OpenStack endpoint)")
            .no_sync_by_default()
            .field(Field::schar("name", 200).unique().help("Name of the Controller"))
            .field(
                Field::schar("backend_type", 200)
                    .choices(BACKEND_TYPES)
                    .help("Type of compute controller: local, EC2 or OpenStack (another value would select no backend, so it is refused)"),
            )
            .field(Field::schar("version", 200).help("Controller version"))
            .field(
                Field::schar("auth_url", 200)
                    .optional()
                    .help("Auth url for the compute controller (EC2: the endpoint URL)"),
            )
            .field(
                Field::schar("admin_user", 200)
                    .optional()
                    .help("Username of an admin user at this controller (EC2: access key id)"),
            )
            .field(
                Field::schar("admin_password", 200).optional().secret().help(
                    "Password of the admin user at this controller (EC2: secret access key); write-only",
                ),
            )
            .field(
                Field::schar("admin_tenant", 200)
                    .optional()
                    .help("Name of the tenant the admin user belongs to"),
            )
            .field(
                Field::schar("domain", 200)
                    .optional()
                    .help("Name of the domain this controller belongs to (EC2: region)"),
            )
            .field(
                Field::schar("rabbit_host", 200)
                    .optional()
                    .help("IP address of rabbitmq server at this controller"),
            )
            .field(
                Field::schar("rabbit_user", 200)
                    .optional()
                    .help("Username of rabbitmq server at this controller"),
            )
            .field(
                Field::schar("rabbit_password", 200)
                    .optional()
                    .secret()
                    .help("Password of rabbitmq server; write-only"),
            )
            .field(Field::fk(
                "deployment",
                "Deployment",
                "controllerdeployments",
                OnDelete::Cascade,
            ))
            .field(Field::text("settings", None).optional().help(
                "Backend settings, a JSON object (EC2: {\"public_images\": [\"ami-…\"], \"drift\": \"recreate\" or \"report\"})",
            ))
            .rule(Rule::json_object("settings"))
            .display("{name}")
            .search(&["name", "backend_type"])
            .list(&["name", "backend_type", "version", "deployment", "auth_url"])
            .inline("ControllerSite", "controller")
            .tosca("tosca.nodes.Controller", "name")
            .tosca_required(
                "ControllerDeployment",
                "Deployment",
                ToscaEffect::Field("deployment".into()),
            ),
        Model::new("ControllerSite", "controllersites")
            .access(Access::admins_only())
            .verbose("controller site", "controller sites")
            .field(Field::fk("site", "Site", "controllersite", OnDelete::Cascade))
            .field(Field::fk("controller", "Controller", "controllersite", OnDelete::Cascade).optional())
            .field(
                Field::schar("tenant_id", 200)
                    .optional()
                    .backend_owned()
                    .db_index()
                    .help("Keystone tenant id"),
            )
            .unique_together(&["site", "controller"])
            .display("{site} {controller}")
            .list(&["site", "controller", "tenant_id", "backend_status"]),
        Model::new("ControllerSlice", "controllerslices")
            .access(Access::slice_read_only("slice"))
            .verbose("controller slice", "controller slices")
            .field(Field::fk(
                "controller",
                "Controller",
                "controllerslices",
                OnDelete::Cascade,
            ))
            .field(Field::fk("slice", "Slice", "controllerslices", OnDelete::Cascade))
            .field(
                Field::schar("tenant_id", 200)
                    .optional()
                    .backend_owned()
                    .help("Keystone tenant id"),
            )
            .unique_together(&["controller", "slice"])
            .display("{slice} {controller}")
            .list(&["slice", "controller", "tenant_id", "backend_status"]),
        Model::new("ControllerUser", "controllerusers")
            .access(Access::owner_read_only("user"))
            .verbose("controller user", "controller users")
            .field(Field::fk("user", "User", "controllerusers", OnDelete::Cascade))
            .field(Field::fk(
                "controller",
                "Controller",
                "controllersusers",
                OnDelete::Cascade,
            ))
            .field(Field::schar("kuser_id", 200).optional().backend_owned().help("Keystone user id"))
            .unique_together(&["user", "controller"])
            .display("{user} {controller}")
            .list(&["user", "controller", "kuser_id", "backend_status"]),
        Model::new("ControllerImages", "controllerimages")
            .access(Access::admins_only())
            .verbose("controller image", "controller images")
            .field(Field::fk("image", "Image", "controllerimages", OnDelete::Cascade))
            .field(Field::fk(
                "controller",
                "Controller",
                "controllerimages",
                OnDelete::Cascade,
            ))
            .field(
                Field::schar("glance_image_id", 200)
                    .optional()
                    .backend_owned()
                    .help("Glance image id"),
            )
            .unique_together(&["image", "controller"])
            .display("{image} {controller}")
            .list(&["image", "controller", "glance_image_id", "backend_status"]),
        Model::new("ControllerNetwork", "controllernetworks")
            .access(Access::slice_read_only("network.owner"))
            .verbose("controller network", "controller networks")
            .field(Field::fk(
                "network",
                "Network",
                "controllernetworks",
                OnDelete::Cascade,
            ))
            .field(Field::fk(
                "controller",
                "Controller",
                "controllernetworks",
                OnDelete::Cascade,
            ))
            .field(Field::char("net_id", 256).optional().backend_owned().help("Neutron network"))
            .field(Field::char("router_id", 256).optional().backend_owned().help("Neutron router id"))
            .field(Field::char("subnet_id", 256).optional().backend_owned().help("Neutron subnet id"))
            .field(Field::char("subnet", 32).blank().default_str(""))
            .unique_together(&["network", "controller"])
            .display("{network} {controller}")
            .list(&["network", "controller", "net_id", "subnet", "backend_status"]),
    ]
}
