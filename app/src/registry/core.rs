//! Declarations of the XOS core models (facts from `xos/core/models/*.py`, Burwell era).

use super::{Field, Model, OnDelete};

/// The core models, in dependency order.
pub fn models() -> Vec<Model> {
    vec![site(), user(), slice()]
}

fn site() -> Model {
    Model::new("Site", "sites")
        .verbose("site", "sites")
        .field(
            Field::schar("name", 200)
                .verbose("Site Name")
                .help("Name for this Site"),
        )
        .field(
            Field::url("site_url", 512)
                .optional()
                .verbose("Site URL")
                .help("Site's Home URL Page"),
        )
        .field(Field::boolean("enabled", true).help("Status for this Site"))
        .field(Field::boolean("hosts_nodes", true).help("Indicates whether or not the site host nodes"))
        .field(
            Field::boolean("hosts_users", true)
                .help("Indicates whether or not the site manages user accounts"),
        )
        .field(Field::float("longitude").optional())
        .field(Field::float("latitude").optional())
        .field(
            Field::schar("login_base", 50)
                .unique()
                .verbose("Login Base")
                .help("Prefix for Slices associated with this Site"),
        )
        .field(
            Field::boolean("is_public", true).help("Indicates the visibility of this site to other members"),
        )
        .field(Field::schar("abbreviated_name", 80).verbose("Abbreviated Name"))
        .display("{name}")
        .search(&["name", "login_base", "abbreviated_name"])
        .list(&["name", "login_base", "site_url", "enabled", "backend_status"])
}

fn user() -> Model {
    Model::new_user_like("User", "users")
        .verbose("user", "users")
        .field(
            Field::email("email", 255)
                .unique()
                .verbose("email address")
                .help("The user's email address; also the login name"),
        )
        .field(Field::schar("username", 255).default_str("Something").read_only())
        .field(
            Field::password("password")
                .blank()
                .default_str("")
                .help("Write-only; stored as an argon2 hash. Empty: the user cannot log in"),
        )
        .field(
            Field::datetime("last_login")
                .optional()
                .read_only()
                .verbose("last login"),
        )
        .field(
            Field::schar("firstname", 200)
                .verbose("first name")
                .help("person's given name"),
        )
        .field(
            Field::schar("lastname", 200)
                .verbose("last name")
                .help("person's surname"),
        )
        .field(
            Field::schar("phone", 100)
                .optional()
                .verbose("phone number")
                .help("phone number contact"),
        )
        .field(Field::url("user_url", 200).optional().verbose("User URL"))
        .field(Field::fk("site", "Site", "users", OnDelete::Cascade).help("Site this user will be homed too"))
        .field(
            Field::text("public_key", Some(1024))
                .optional()
                .verbose("Public Key")
                .help("Public key string"),
        )
        .field(Field::boolean("is_active", true))
        .field(Field::boolean("is_admin", false))
        .field(Field::boolean("is_staff", true))
        .field(Field::boolean("is_readonly", false))
        .field(Field::boolean("is_registering", false))
        .field(Field::boolean("is_appuser", false))
        .field(
            Field::schar("login_page", 200)
                .optional()
                .help("send this user to a specific page on login"),
        )
        .field(
            Field::char("timezone", 100)
                .default_str("UTC")
                .help("The user's time zone"),
        )
        .display("{email}")
        .rule("user_username")
        .search(&["email", "firstname", "lastname"])
        .list(&["email", "firstname", "lastname", "site", "is_admin", "is_active"])
}

fn slice() -> Model {
    Model::new("Slice", "slices")
        .verbose("slice", "slices")
        .field(
            Field::schar("name", 80)
                .unique()
                .help("The Name of the Slice")
                .validator("no_spaces"),
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
        .field(
            Field::char("network", 256)
                .optional()
                .choices(&[("host", "Host"), ("bridged", "Bridged")])
                .help("The network the slice's instances attach to; empty is the default private network"),
        )
        .field(
            Field::fk("creator", "User", "slices", OnDelete::SetNull)
                .optional()
                .help("The user who created the slice; set automatically, changed only by admins"),
        )
        .field(
            Field::schar("mount_data_sets", 256)
                .optional()
                .default_str("GenBank"),
        )
        .field(Field::char("default_isolation", 30).default_str("vm").choices(&[
            ("vm", "Virtual Machine"),
            ("container", "Container"),
            ("container_vm", "Container In VM"),
        ]))
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
        .rule("slice_name_prefix")
        .rule("creator_default")
}
