//! Compute: Node, Image, ImageDeployments, Flavor, Slice, slice roles and privileges, Instance.

use super::people::role_model;
use crate::{Access, Field, Model, OnDelete, Read, Rule, ToscaEffect, ToscaLink, Validator, Write};

const ISOLATION: &[(&str, &str)] = &[
    ("vm", "Virtual Machine"),
    ("container", "Container"),
    ("container_vm", "Container In VM"),
];

pub fn models() -> Vec<Model> {
    vec![
        Model::new("Node", "nodes")
            .access(Access::site_role(
                &["site", "site_deployment.site"],
                &["admin", "tech"],
                true,
            ))
            .verbose("node", "nodes")
            .help("A physical server that instances run on")
            .no_sync_by_default()
            .field(Field::schar("name", 200).unique().help("Name of the Node"))
            .field(Field::fk(
                "site_deployment",
                "SiteDeployment",
                "nodes",
                OnDelete::Cascade,
            ))
            .field(
                Field::fk("site", "Site", "nodes", OnDelete::SetNull)
                    .optional()
                    .help("Defaults to the site of the site deployment"),
            )
            .display("{name}")
            .search(&["name"])
            .list(&["name", "site", "site_deployment"])
            .inline("Instance", "node")
            .rule(Rule::NodeSiteDefault)
            .tosca("tosca.nodes.Node", "name")
            .tosca_required("MemberOfSite", "Site", site_deployment_lookup("site"))
            .tosca_required(
                "MemberOfDeployment",
                "Deployment",
                site_deployment_lookup("deployment"),
            ),
        Model::new("Image", "images")
            .verbose("image", "images")
            .help("A disk or container image that instances boot from")
            .field(Field::schar("name", 256).unique())
            .field(
                Field::char("kind", 30)
                    .choices(&[("vm", "Virtual Machine"), ("container", "Container")])
                    .default_str("vm"),
            )
            .field(Field::schar("disk_format", 256))
            .field(Field::schar("container_format", 256))
            .field(
                Field::schar("path", 256)
                    .optional()
                    .help("Path to image on local disk"),
            )
            .field(
                Field::schar("tag", 256)
                    .optional()
                    .help("For Docker Images, tag of image"),
            )
            .many_to_many("deployments", "Deployment", "ImageDeployments", "images")
            .display("{name}")
            .search(&["name"])
            .list(&["name", "kind", "disk_format", "container_format"])
            // XOS's ImageAdmin inlines.
            .inline("Instance", "image")
            .inline("ControllerImages", "image")
            .tosca("tosca.nodes.Image", "name"),
        Model::new("ImageDeployments", "imagedeploymentses")
            // A deployment's admins choose the images it offers.
            .access(Access::special(
                Read::All,
                Write::Members {
                    path: vec!["deployment".into()],
                    through: "DeploymentPrivilege".into(),
                },
            ))
            .verbose("image deployment", "image deployments")
            .field(Field::fk("image", "Image", "imagedeployments", OnDelete::Cascade))
            .field(Field::fk(
                "deployment",
                "Deployment",
                "imagedeployments",
                OnDelete::Cascade,
            ))
            .unique_together(&["image", "deployment"])
            .display("{image} {deployment}")
            .list(&["image", "deployment"]),
        Model::new("Flavor", "flavors")
            .verbose("flavor", "flavors")
            .help("A size of instance: CPUs, memory and disk as the backend names it")
            .no_sync_by_default()
            .field(
                Field::schar("name", 32)
                    .unique()
                    .help("name of this flavor, as displayed to users"),
            )
            .field(Field::schar("description", 1024).optional())
            .field(Field::schar("flavor", 32).help("flavor string used to configure deployments"))
            .field(
                Field::integer("order")
                    .default_int(0)
                    .help("used to order flavors when displayed in a list"),
            )
            .field(
                Field::boolean("default", false)
                    .help("make this a default flavor to use when creating new instances"),
            )
            .field(
                Field::positive_integer("memory_mb")
                    .default_int(0)
                    .verbose("memory (MiB)")
                    .help("Memory of an instance; the local backend's address-space limit (0: no limit)"),
            )
            .field(
                Field::positive_integer("vcpus")
                    .default_int(0)
                    .verbose("virtual CPUs")
                    .help(
                        "CPUs of an instance; the local backend pins the process to this many (0: no limit)",
                    ),
            )
            .many_to_many("deployments", "Deployment", "FlavorDeployment", "flavors")
            .ordering(&["order", "name"])
            .display("{name}")
            .search(&["name", "flavor"])
            .list(&["name", "flavor", "order", "default"]),
        Model::new("FlavorDeployment", "flavordeployments")
            // …and the flavors.
            .access(Access::special(
                Read::All,
                Write::Members {
                    path: vec!["deployment".into()],
                    through: "DeploymentPrivilege".into(),
                },
            ))
            .verbose("flavor deployment", "flavor deployments")
            .help("The deployments a flavor is offered in (Django's implicit Flavor.deployments table)")
            .field(Field::fk(
                "flavor",
                "Flavor",
                "flavordeployments",
                OnDelete::Cascade,
            ))
            .field(Field::fk(
                "deployment",
                "Deployment",
                "flavordeployments",
                OnDelete::Cascade,
            ))
            .unique_together(&["flavor", "deployment"])
            .display("{flavor} {deployment}")
            .list(&["flavor", "deployment"]),
        slice(),
        role_model(
            "SliceRole",
            "slice_roles",
            &[("admin", "Admin"), ("access", "Access"), ("default", "Default")],
        ),
        Model::new("SlicePrivilege", "slice_privileges")
            .access(Access::special(Read::SlicePrivileges, Write::SlicePrivileges))
            .verbose("slice privilege", "slice privileges")
            .field(Field::fk("user", "User", "sliceprivileges", OnDelete::Cascade))
            .field(Field::fk("slice", "Slice", "sliceprivileges", OnDelete::Cascade))
            .field(Field::fk(
                "role",
                "SliceRole",
                "sliceprivileges",
                OnDelete::Protect,
            ))
            .unique_together(&["user", "slice", "role"])
            .display("{user} {slice} {role}")
            .list(&["user", "slice", "role"])
            .rule(Rule::PrivilegeActiveUser),
        instance(),
    ]
}

fn slice() -> Model {
    Model::new("Slice", "slices")
        .access(Access::special(Read::Slice(Vec::new()), Write::Slices))
        .verbose("slice", "slices")
        .help("A named allocation of resources across sites: the unit users get instances in")
        .field(
            Field::schar("name", 80)
                .unique()
                .help("The Name of the Slice")
                .validator(Validator::NoSpaces),
        )
        .field(Field::boolean("enabled", true).help("Status for this Slice"))
        .field(Field::boolean("omf_friendly", false))
        .field(
            Field::text("description", Some(1024))
                .blank()
                .default_str("")
                .help("High level description of the slice and expected activities"),
        )
        .field(Field::url("slice_url", 512).blank().default_str(""))
        .field(Field::fk("site", "Site", "slices", OnDelete::Cascade).help("The Site this Slice belongs to"))
        .field(Field::positive_integer("max_instances").default_int(10))
        .field(Field::fk("service", "Service", "slices", OnDelete::SetNull).optional())
        .field(
            Field::char("network", 256)
                .optional()
                .choices(&[
                    ("nat", "Private and NAT"),
                    ("host", "Host"),
                    ("bridged", "Bridged"),
                ])
                .help(
                    "The networks the slice's instances attach to: empty is the default private network, \
                     nat adds a port on the shared NAT network, host and bridged make none",
                ),
        )
        .field(
            Field::fk("creator", "User", "slices", OnDelete::SetNull)
                .optional()
                .help("The user who created the slice; set automatically, changed only by admins"),
        )
        .field(Field::fk("default_flavor", "Flavor", "slices", OnDelete::SetNull).optional())
        .field(Field::fk("default_image", "Image", "slices", OnDelete::SetNull).optional())
        .field(
            Field::schar("mount_data_sets", 256)
                .optional()
                .default_str("GenBank"),
        )
        .field(
            Field::char("default_isolation", 30)
                .default_str("vm")
                .choices(ISOLATION),
        )
        .display("{name}")
        .search(&["name", "description"])
        .list(&[
            "name",
            "site",
            "description",
            "max_instances",
            "enabled",
            "backend_status",
        ])
        .inline("Instance", "slice")
        .inline("Network", "owner")
        .inline("SlicePrivilege", "slice")
        .inline("ControllerSlice", "slice")
        .rule(Rule::SliceNamePrefix)
        .rule(Rule::CreatorDefault)
        .tosca("tosca.nodes.Slice", "name")
        .tosca_required("MemberOfSite", "Site", ToscaEffect::Field("site".into()))
        .tosca_requirement("MemberOfService", "Service", ToscaEffect::Field("service".into()))
        .tosca_requirement(
            "DefaultImage",
            "Image",
            ToscaEffect::Field("default_image".into()),
        )
        .tosca_requirement(
            "ConnectsToNetwork",
            "Network",
            ToscaEffect::Link(ToscaLink::new("NetworkSlice", "slice", "network")),
        )
}

fn instance() -> Model {
    Model::new("Instance", "instances")
        .access(Access::slice("slice"))
        .verbose("instance", "instances")
        .help("A virtual machine or container of a slice on a node (formerly Sliver)")
        .field(
            Field::schar("instance_id", 200)
                .optional()
                .backend_owned()
                .verbose("Instance ID")
                .help("Backend id of the instance"),
        )
        .field(
            Field::schar("instance_uuid", 200)
                .optional()
                .backend_owned()
                .verbose("Instance UUID"),
        )
        .field(
            Field::schar("name", 200)
                .blank()
                .help("Instance name; defaults to the slice's name"),
        )
        .field(
            Field::schar("instance_name", 200)
                .optional()
                .backend_owned()
                .help("Name the backend gave the instance"),
        )
        .field(
            Field::ip("ip")
                .optional()
                .backend_owned()
                .verbose("Instance ip address"),
        )
        .field(
            Field::schar("observed_state", 64)
                .optional()
                .backend_owned()
                .verbose("Observed state")
                .help("The instance's state at its backend when last looked at (ACTIVE, running; gone: deleted outside XOS and reported)"),
        )
        .field(Field::fk("image", "Image", "instances", OnDelete::Protect))
        .field(Field::fk("creator", "User", "instances", OnDelete::SetNull).optional())
        .field(Field::fk("slice", "Slice", "instances", OnDelete::Cascade))
        .field(
            Field::fk(
                "deployment",
                "Deployment",
                "instance_deployment",
                OnDelete::Cascade,
            )
            .blank()
            .help("Defaults to the deployment of the node"),
        )
        .field(Field::fk("node", "Node", "instances", OnDelete::Protect))
        .field(
            Field::integer("numberCores")
                .default_int(0)
                .verbose("Number of Cores")
                .help("Number of cores for instance"),
        )
        .field(
            Field::fk("flavor", "Flavor", "instances", OnDelete::Protect)
                .blank()
                .help("Defaults to the default flavor"),
        )
        .field(
            Field::text("userData", None)
                .optional()
                .verbose("user data")
                .help("user_data passed to instance during creation"),
        )
        .field(Field::char("isolation", 30).default_str("vm").choices(ISOLATION))
        .field(
            Field::text("volumes", None)
                .optional()
                .help("Comma-separated list of directories to expose to parent context"),
        )
        .field(
            Field::fk("parent", "Instance", "children", OnDelete::Cascade)
                .optional()
                .help("Parent Instance for containers nested inside of VMs"),
        )
        .display("{name}")
        .search(&["name", "instance_name", "ip"])
        .list(&["name", "slice", "node", "image", "flavor", "ip", "backend_status"])
        .inline("Port", "instance")
        .rule(Rule::CreatorDefault)
        .rule(Rule::InstanceDefaults)
        .rule(Rule::InstanceIsolation)
        .rule(Rule::InstanceCreatorPrivilege)
        .rule(Rule::InstanceSliceQuota)
        .tosca("tosca.nodes.Compute", "name")
        .tosca_alias(
            "tosca.nodes.Compute.Container",
            &[("isolation", "container".into())],
        )
        .tosca_required("MemberOfSlice", "Slice", ToscaEffect::Field("slice".into()))
        .tosca_requirement("UsesImage", "Image", ToscaEffect::Field("image".into()))
        .tosca_capabilities("compute")
}

/// A node's site deployment is the one joining its site and its deployment.
fn site_deployment_lookup(column: &str) -> ToscaEffect {
    ToscaEffect::Lookup {
        field: "site_deployment".into(),
        through: "SiteDeployment".into(),
        column: column.into(),
    }
}
