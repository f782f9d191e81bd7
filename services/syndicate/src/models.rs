//! Syndicate storage's models, with XOS's field names (`xos/syndicate_storage/models.py` at the
//! guide's commit): volumes on an object store, the rights users hold on them, the slices they are
//! delivered to. Here the store is Garage: a volume is a bucket, a principal (a user or a slice) a
//! key, a capability a bucket permission. Quotas and the Garage ids are ours.

use registry::{Access, Field, Model, OnDelete, Read, Rule, ToscaEffect, ToscaLink};

/// The Django app of the models, and the name configurations load the service by.
pub const APP: &str = "syndicate_storage";

/// The capabilities XOS gave a volume, an access right and a volume-slice.
fn caps(m: Model) -> Model {
    m.field(Field::boolean("cap_read_data", true).help("VM can read Volume data"))
        .field(Field::boolean("cap_write_data", true).help("VM can write Volume data"))
        .field(
            Field::boolean("cap_host_data", true)
                .help("VM can host Volume data (kept for XOS's API; Garage has no such permission)"),
        )
}

/// A backend-owned Garage id.
fn garage_id(name: &str, help: &str) -> Field {
    Field::char(name, 64).optional().backend_owned().help(help)
}

pub fn models() -> Vec<Model> {
    vec![
        Model::new("SyndicateService", "syndicateservices")
            .in_app(APP)
            .extends("Service", APP)
            .verbose("Syndicate Service", "Syndicate Service")
            .help("The Syndicate storage service: volumes on a Garage object store (one per system)")
            .rule(Rule::Singleton)
            .no_sync_by_default()
            .display("{name}")
            .list(&["name", "enabled", "description"])
            .tosca("tosca.nodes.SyndicateService", "name"),
        Model::new("SyndicatePrincipal", "syndicateprincipals")
            .in_app(APP)
            .verbose("syndicate principal", "syndicate principals")
            .help("Who holds keys to volumes: a user (by email) or a slice; written by the synchronizer")
            .field(
                Field::schar("principal_id", 255)
                    .unique()
                    .help("A user's email address, or slice:<name>"),
            )
            .field(Field::text("public_key_pem", None).optional())
            .field(Field::text("sealed_private_key", None).optional().secret())
            .field(garage_id("key_id", "The principal's Garage access key id (set by the synchronizer)"))
            .access(Access::admins_only())
            .no_sync_by_default()
            .display("{principal_id}")
            .search(&["principal_id"])
            .list(&["principal_id", "key_id"]),
        caps(
            Model::new("Volume", "volumes")
                .in_app(APP)
                .verbose("volume", "volumes")
                .help("A storage volume: a bucket of the object store, shared with users and slices")
                .field(Field::schar("name", 64).help("Human-readable, searchable name of the Volume"))
                .field(
                    Field::fk("owner_id", "User", "volumes", OnDelete::Cascade)
                        .verbose("Owner")
                        .help("The user who owns the volume (its bucket's owner key)"),
                )
                .field(
                    Field::text("description", Some(130))
                        .optional()
                        .help("Human-readable description of what this Volume is used for."),
                )
                .field(Field::positive_integer("blocksize").help("Number of bytes per block."))
                .field(Field::boolean("private", true).help(
                    "Indicates if the Volume is visible to users other than the Volume Owner and Syndicate Administrators.",
                ))
                .field(Field::boolean("archive", false).help(
                    "Indicates if this Volume is read-only: only its owner (or an admin) can write to it.",
                )),
        )
        .field(
            Field::positive_integer("max_size_bytes")
                .optional()
                .help("Most bytes the volume holds (Garage refuses writes past it); empty: no limit"),
        )
        .field(
            Field::positive_integer("max_objects")
                .optional()
                .help("Most objects the volume holds (Garage refuses writes past it); empty: no limit"),
        )
        .field(garage_id("bucket_id", "The Garage bucket (set by the synchronizer)"))
        .field(garage_id("owner_key_id", "The owner's Garage access key (set by the synchronizer)"))
        .field(
            Field::integer("size_bytes")
                .optional()
                .backend_owned()
                .help("Bytes stored, as Garage last reported (set by the synchronizer)"),
        )
        .field(
            Field::integer("object_count")
                .optional()
                .backend_owned()
                .help("Objects stored, as Garage last reported (set by the synchronizer)"),
        )
        .rule(Rule::IntRange {
            field: "blocksize".into(),
            min: 1,
            max: i64::from(u32::MAX),
        })
        // Users create and change their own volumes; they see those and every public one.
        .access(Access::owner("owner_id", true).read(Read::OwnerOrPublic {
            owner: "owner_id".into(),
            private: "private".into(),
        }))
        .display("{name}")
        .search(&["name", "description"])
        .list(&["name", "owner_id", "private", "archive", "object_count", "size_bytes", "backend_status"])
        .inline("VolumeAccessRight", "volume")
        .inline("VolumeSlice", "volume_id")
        .tosca("tosca.nodes.SyndicateVolume", "name")
        .tosca_required("OwnedBy", "User", ToscaEffect::Field("owner_id".into()))
        // A slice the volume is delivered to (gateway ports 32000 and 32001; set others in
        // the admin or the API), and a user granted the volume's default caps.
        .tosca_requirement(
            "DeliveredToSlice",
            "Slice",
            ToscaEffect::Link(ToscaLink {
                through: "VolumeSlice".into(),
                own: "volume_id".into(),
                other: "slice_id".into(),
                values: vec![
                    ("UG_portnum".into(), serde_json::json!(32000)),
                    ("RG_portnum".into(), serde_json::json!(32001)),
                ],
                ..ToscaLink::default()
            }),
        )
        .tosca_requirement(
            "AccessedBy",
            "User",
            ToscaEffect::Link(ToscaLink {
                through: "VolumeAccessRight".into(),
                own: "volume".into(),
                other: "owner_id".into(),
                ..ToscaLink::default()
            }),
        ),
        caps(
            Model::new("VolumeAccessRight", "volumeaccessrights")
                .in_app(APP)
                .verbose("volume access right", "volume access rights")
                .help("A user's capabilities on a volume: its key's read and write permissions")
                .field(
                    Field::fk("owner_id", "User", "volumeaccessrights", OnDelete::Cascade)
                        .verbose("user")
                        .help("The user who gets the capabilities"),
                )
                .field(Field::fk("volume", "Volume", "accessrights", OnDelete::Cascade)),
        )
        .field(garage_id("key_id", "The user's Garage access key (set by the synchronizer)"))
        .unique_together(&["owner_id", "volume"])
        .access(Access::owner_read_only("owner_id"))
        .display("{owner_id}-{volume}")
        .list(&["owner_id", "volume", "cap_read_data", "cap_write_data", "backend_status"]),
        Model::new("SliceSecret", "slicesecrets")
            .in_app(APP)
            .verbose("slice secret", "slice secrets")
            .help("The secret a slice's instances prove themselves with to fetch their volumes' credentials")
            .field(Field::fk("slice_id", "Slice", "slicesecrets", OnDelete::Cascade).unique())
            .field(
                Field::char("secret", 64)
                    .optional()
                    .secret()
                    .help("Shared secret between XOS and this slice's instances (never returned)"),
            )
            .access(Access::slice_read_only("slice_id"))
            .no_sync_by_default()
            .display("{slice_id}"),
        caps(
            Model::new("VolumeSlice", "volumeslices")
                .in_app(APP)
                .verbose("volume slice", "volume slices")
                .help("A volume delivered to a slice: the slice's key gets the capabilities on the volume's bucket")
                .field(Field::fk("volume_id", "Volume", "volumeslices", OnDelete::Cascade).verbose("Volume"))
                .field(Field::fk("slice_id", "Slice", "volumeslices", OnDelete::Cascade).verbose("Slice")),
        )
        .field(
            Field::positive_integer("UG_portnum")
                .verbose("UG port")
                .help("User Gateway port. Any port above 1024 will work, but it must be available slice-wide."),
        )
        .field(
            Field::positive_integer("RG_portnum")
                .verbose("RG port")
                .help("Replica Gateway port. Any port above 1024 will work, but it must be available slice-wide."),
        )
        .field(
            Field::text("credentials_blob", None)
                .optional()
                .backend_owned()
                .help("Where the slice's credentials were delivered (set by the synchronizer)"),
        )
        .field(garage_id("key_id", "The slice's Garage access key (set by the synchronizer)"))
        .rule(Rule::IntRange {
            field: "UG_portnum".into(),
            min: 1025,
            max: 65534,
        })
        .rule(Rule::IntRange {
            field: "RG_portnum".into(),
            min: 1025,
            max: 65534,
        })
        .rule(Rule::Differ(vec!["UG_portnum".into(), "RG_portnum".into()]))
        .unique_together(&["volume_id", "slice_id"])
        .access(Access::slice("slice_id").sees("volume_id", "Volume"))
        .display("{volume_id}-{slice_id}")
        .list(&["volume_id", "slice_id", "cap_read_data", "cap_write_data", "backend_status"]),
    ]
}
