//! Sites and people: Site, User, roles and privileges, Deployment, SiteDeployment.

use crate::{Access, Field, Model, OnDelete, Read, Rule, ToscaEffect, ToscaLink, Write};

pub fn models() -> Vec<Model> {
    vec![
        site(),
        user(),
        role_model("SiteRole", "site_roles", &[("admin", "Admin"), ("pi", "PI"), ("tech", "Tech"), ("billing", "Billing")]),
        Model::new("SitePrivilege", "siteprivileges")
            .access(Access::special(Read::SitePrivileges, Write::SitePrivileges))
            .verbose("site privilege", "site privileges")
            .field(Field::fk("user", "User", "siteprivileges", OnDelete::Cascade))
            .field(Field::fk("site", "Site", "siteprivileges", OnDelete::Cascade))
            .field(Field::fk("role", "SiteRole", "siteprivileges", OnDelete::Protect))
            .unique_together(&["user", "site", "role"])
            .display("{user} {site} {role}")
            .list(&["user", "site", "role"])
            .rule(Rule::PrivilegeActiveUser),
        Model::new("Deployment", "deployments")
            // XOS's Deployment.can_update: its admins (a DeploymentPrivilege) change it; only
            // admins create and delete deployments.
            .access(Access::special(
                Read::All,
                Write::Members {
                    path: Vec::new(),
                    through: "DeploymentPrivilege".into(),
                },
            ))
            .verbose("deployment", "deployments")
            .help("A set of nodes and the controllers that manage them (e.g. an OpenStack cluster, Amazon EC2)")
            .no_sync_by_default()
            .field(Field::schar("name", 200).unique().help("Name of the Deployment"))
            .field(
                Field::text("accessControl", None)
                    .default_str("allow all")
                    .verbose("access control")
                    .help("Access control list that specifies which sites/users may use nodes in this deployment"),
            )
            .display("{name}")
            .search(&["name"])
            .list(&["name", "accessControl"])
            // XOS's DeploymentAdmin inlines.
            .inline("DeploymentPrivilege", "deployment")
            .inline("ImageDeployments", "deployment")
            .inline("SiteDeployment", "deployment")
            .tosca("tosca.nodes.Deployment", "name")
            .tosca_requirement(
                "SupportsImage",
                "Image",
                ToscaEffect::Link(ToscaLink::new("ImageDeployments", "deployment", "image")),
            )
            .tosca_list("flavors", ToscaLink::new("FlavorDeployment", "deployment", "flavor")),
        role_model("DeploymentRole", "deploymentroles", &[("admin", "Admin")]),
        Model::new("DeploymentPrivilege", "deploymentprivileges")
            // A deployment's admins see and grant its privileges (one's own are among them).
            .access(Access::members("deployment", "DeploymentPrivilege"))
            .verbose("deployment privilege", "deployment privileges")
            .field(Field::fk("user", "User", "deploymentprivileges", OnDelete::Cascade))
            .field(Field::fk("deployment", "Deployment", "deploymentprivileges", OnDelete::Cascade))
            .field(Field::fk("role", "DeploymentRole", "deploymentprivileges", OnDelete::Protect))
            .unique_together(&["user", "deployment", "role"])
            .display("{user} {deployment} {role}")
            .list(&["user", "deployment", "role"])
            .rule(Rule::PrivilegeActiveUser),
        Model::new("ApiToken", "apitokens")
            .access(Access::owner("user", false))
            .verbose("API token", "API tokens")
            .help("A key for scripts: `Authorization: Token <key>`. Created at /xoslib/tokens/, which shows the key once")
            .field(Field::fk("user", "User", "apitokens", OnDelete::Cascade))
            .field(Field::schar("name", 100).help("What the token is for"))
            .field(Field::char("key_prefix", 8).read_only().blank().default_str("").help("The first characters of the key, to tell tokens apart"))
            .field(Field::char("key_hash", 64).read_only().secret().blank().default_str("").db_index().help("SHA-256 of the key"))
            .field(Field::datetime("expires").optional().help("When the token stops working; empty: never"))
            .display("{name}")
            .list(&["name", "user", "key_prefix", "expires"])
            .rule(Rule::ApiTokenKey),
        Model::new("SiteDeployment", "sitedeployments")
            .verbose("site deployment", "site deployments")
            .help("A site's membership in a deployment, and the controller that serves it")
            .field(Field::fk("site", "Site", "sitedeployments", OnDelete::Cascade))
            .field(Field::fk("deployment", "Deployment", "sitedeployments", OnDelete::Cascade))
            .field(Field::fk("controller", "Controller", "sitedeployments", OnDelete::SetNull).optional())
            .field(Field::schar("availability_zone", 200).optional().help("OpenStack availability zone"))
            .unique_together(&["site", "deployment", "controller"])
            .display("{site} {deployment}")
            .list(&["site", "deployment", "controller", "availability_zone"]),
    ]
}

/// A role table (`role` unique, from a fixed list of choices).
pub fn role_model(name: &str, plural: &str, choices: &[(&str, &str)]) -> Model {
    let singular: String = name
        .chars()
        .flat_map(|c| {
            if c.is_ascii_uppercase() {
                vec![' ', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .collect::<String>()
        .trim()
        .to_string();
    Model::new(name, plural)
        .verbose(&singular, &format!("{singular}s"))
        .field(Field::schar("role", 30).unique().choices(choices))
        .display("{role}")
        .list(&["role"])
}

fn site() -> Model {
    Model::new("Site", "sites")
        .access(Access::site_role(&[""], &["admin", "pi"], false))
        .verbose("site", "sites")
        .help("An organization that hosts nodes and/or users")
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
            Field::slug("login_base", 50)
                .unique()
                .verbose("Login Base")
                .help("Prefix for Slices associated with this Site"),
        )
        .field(
            Field::boolean("is_public", true).help("Indicates the visibility of this site to other members"),
        )
        .field(Field::schar("abbreviated_name", 80).verbose("Abbreviated Name"))
        .many_to_many("deployments", "Deployment", "SiteDeployment", "sites")
        .display("{name}")
        .search(&["name", "login_base", "abbreviated_name"])
        .list(&["name", "login_base", "site_url", "enabled", "backend_status"])
        // XOS's SiteAdmin inlines (and its admin-only ControllerSite one).
        .inline("Slice", "site")
        .inline("User", "site")
        .inline("SitePrivilege", "site")
        .inline("ControllerSite", "site")
        .tosca("tosca.nodes.Site", "login_base")
        .tosca_rename("display_name", "name")
        .tosca_name_default("name")
        .tosca_name_default("abbreviated_name")
        .tosca_requirement(
            "SiteDeployment",
            "Deployment",
            ToscaEffect::Link(ToscaLink::new("SiteDeployment", "site", "deployment").nested(
                "UsesController",
                "Controller",
                "controller",
            )),
        )
}

fn user() -> Model {
    Model::new_user_like("User", "users")
        .access(Access::special(Read::Users, Write::Users))
        .verbose("user", "users")
        .help("A person who logs in; identified by their email address")
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
        .many_to_many("dashboards", "DashboardView", "UserDashboardView", "users")
        .display("{email}")
        .search(&["email", "firstname", "lastname"])
        .list(&["email", "firstname", "lastname", "site", "is_admin", "is_active"])
        // XOS's UserAdmin inlines (and its admin-only ControllerUser one).
        .inline("SlicePrivilege", "user")
        .inline("SitePrivilege", "user")
        .inline("ControllerUser", "user")
        .rule(Rule::UserUsername)
        .tosca("tosca.nodes.User", "email")
        .tosca_requirement("MemberOfSite", "Site", ToscaEffect::Field("site".into()))
        .tosca_requirement(
            "AdminPrivilege",
            "Slice",
            privilege("SlicePrivilege", "slice", "admin"),
        )
        .tosca_requirement(
            "AccessPrivilege",
            "Slice",
            privilege("SlicePrivilege", "slice", "access"),
        )
        .tosca_requirement(
            "AdminPrivilege",
            "Site",
            privilege("SitePrivilege", "site", "admin"),
        )
        .tosca_requirement("PIPrivilege", "Site", privilege("SitePrivilege", "site", "pi"))
        .tosca_requirement(
            "TechPrivilege",
            "Site",
            privilege("SitePrivilege", "site", "tech"),
        )
        .tosca_requirement(
            "UsesDashboard",
            "DashboardView",
            ToscaEffect::Link(ToscaLink::new("UserDashboardView", "user", "dashboardView").ordered("order")),
        )
}

/// A privilege row of `through` for the user on the target, with the named role.
fn privilege(through: &str, target_field: &str, role: &str) -> ToscaEffect {
    ToscaEffect::Link(ToscaLink::new(through, "user", target_field).role("role", role))
}
