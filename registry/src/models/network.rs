//! Networking: NetworkTemplate, Network, NetworkSlice, Port.

use crate::{Access, Field, Model, OnDelete, Read, Rule, ToscaEffect, ToscaLink, Validator};

pub fn models() -> Vec<Model> {
    vec![
        Model::new("NetworkTemplate", "networktemplates")
            .verbose("network template", "network templates")
            .help("A kind of network (private, NAT, public) that networks are made from")
            .field(Field::char("name", 32).unique())
            .field(Field::char("description", 1024).optional())
            .field(Field::integer("guaranteed_bandwidth").default_int(0))
            .field(
                Field::char("visibility", 30)
                    .choices(&[("public", "public"), ("private", "private")])
                    .default_str("private"),
            )
            .field(
                Field::char("translation", 30)
                    .choices(&[("none", "none"), ("NAT", "NAT")])
                    .default_str("none"),
            )
            .field(
                Field::char("access", 30)
                    .optional()
                    .choices(&[("indirect", "Indirect"), ("direct", "Direct")]),
            )
            .field(Field::char("shared_network_name", 30).optional())
            .field(
                Field::char("shared_network_id", 256)
                    .optional()
                    .backend_owned()
                    .help("Quantum network"),
            )
            .field(
                Field::char("topology_kind", 30)
                    .choices(&[
                        ("bigswitch", "BigSwitch"),
                        ("physical", "Physical"),
                        ("custom", "Custom"),
                    ])
                    .default_str("bigswitch"),
            )
            .field(
                Field::char("controller_kind", 30)
                    .optional()
                    .choices(&[("onos", "ONOS Controller"), ("custom", "Custom Controller")]),
            )
            .display("{name}")
            .search(&["name"])
            .list(&["name", "visibility", "translation", "shared_network_name"])
            .tosca("tosca.nodes.NetworkTemplate", "name"),
        Model::new("Network", "networks")
            .access(Access::slice("owner").read(Read::Networks))
            .verbose("network", "networks")
            .help("A network owned by a slice, possibly shared with other slices")
            .field(Field::char("name", 32).unique())
            .field(Field::fk(
                "template",
                "NetworkTemplate",
                "network",
                OnDelete::Protect,
            ))
            .field(Field::char("subnet", 32).blank().default_str(""))
            .field(
                Field::char("ports", 1024)
                    .optional()
                    .validator(Validator::PortList)
                    .help("NAT ports, e.g. \"tcp 123, tcp 201:206, udp 333\""),
            )
            .field(Field::char("labels", 1024).optional())
            .field(
                Field::fk("owner", "Slice", "ownedNetworks", OnDelete::Cascade)
                    .help("Slice that owns control of this Network"),
            )
            .field(Field::integer("guaranteed_bandwidth").default_int(0))
            .field(Field::boolean("permit_all_slices", false))
            .field(Field::text("topology_parameters", None).optional())
            .field(
                Field::char("controller_url", 1024)
                    .optional()
                    .verbose("controller URL"),
            )
            .field(Field::text("controller_parameters", None).optional())
            .field(
                Field::char("network_id", 256)
                    .optional()
                    .backend_owned()
                    .help("Quantum network"),
            )
            .field(
                Field::char("router_id", 256)
                    .optional()
                    .backend_owned()
                    .help("Quantum router id"),
            )
            .field(
                Field::char("subnet_id", 256)
                    .optional()
                    .backend_owned()
                    .help("Quantum subnet id"),
            )
            .field(
                Field::boolean("autoconnect", true)
                    .help("This network can be autoconnected to the slice that owns it"),
            )
            .many_to_many(
                "permitted_slices",
                "Slice",
                "NetworkPermittedSlice",
                "availableNetworks",
            )
            .many_to_many("slices", "Slice", "NetworkSlice", "networks")
            .display("{name}")
            .search(&["name", "labels"])
            .list(&["name", "owner", "template", "subnet", "backend_status"])
            // XOS's NetworkAdmin inlines (ports, slices) and its admin-only ControllerNetwork one.
            .inline("Port", "network")
            .inline("NetworkSlice", "network")
            .inline("ControllerNetwork", "network")
            .tosca("tosca.nodes.network.Network", "name")
            .tosca_alias("tosca.nodes.network.Network.XOS", &[])
            .tosca_default("permit_all_slices", true.into())
            .tosca_requirement("MemberOfSlice", "Slice", ToscaEffect::Field("owner".into()))
            .tosca_requirement(
                "UsesNetworkTemplate",
                "NetworkTemplate",
                ToscaEffect::Field("template".into()),
            )
            .tosca_requirement(
                "ConnectsToSlice",
                "Slice",
                ToscaEffect::Link(ToscaLink::new("NetworkSlice", "network", "slice")),
            ),
        Model::new("NetworkPermittedSlice", "networkpermittedslices")
            .access(
                Access::slice("network.owner")
                    .sees("slice", "Slice")
                    .read(Read::Slice(vec!["slice".into()])),
            )
            .verbose("network permitted slice", "network permitted slices")
            .help("Slices allowed to join a network (Django's implicit Network.permitted_slices table)")
            .field(Field::fk(
                "network",
                "Network",
                "networkpermittedslices",
                OnDelete::Cascade,
            ))
            .field(Field::fk(
                "slice",
                "Slice",
                "networkpermittedslices",
                OnDelete::Cascade,
            ))
            .unique_together(&["network", "slice"])
            .display("{network} {slice}")
            .list(&["network", "slice"]),
        Model::new("NetworkSlice", "networkslices")
            .access(Access::slice("slice").sees("network", "Network"))
            .verbose("network slice", "network slices")
            .field(Field::fk(
                "network",
                "Network",
                "networkslices",
                OnDelete::Cascade,
            ))
            .field(Field::fk("slice", "Slice", "networkslices", OnDelete::Cascade))
            .unique_together(&["network", "slice"])
            .display("{network} {slice}")
            .list(&["network", "slice", "backend_status"])
            .rule(Rule::NetworkSlicePermitted),
        Model::new("Port", "ports")
            .access(Access::slice("instance.slice").sees("network", "Network"))
            .verbose("port", "ports")
            .help("An instance's attachment to a network")
            .field(Field::fk("network", "Network", "links", OnDelete::Cascade))
            .field(Field::fk("instance", "Instance", "ports", OnDelete::Cascade).optional())
            .field(
                Field::ip("ip")
                    .optional()
                    .backend_owned()
                    .help("Instance ip address"),
            )
            .field(
                Field::char("port_id", 256)
                    .optional()
                    .backend_owned()
                    .help("Quantum port id"),
            )
            .field(
                Field::char("mac", 256)
                    .optional()
                    .backend_owned()
                    .help("MAC address associated with this port"),
            )
            .unique_together(&["network", "instance"])
            .display("{network} {instance}")
            .list(&["network", "instance", "ip", "mac", "backend_status"])
            .rule(Rule::NetworkSlicePermitted),
    ]
}
