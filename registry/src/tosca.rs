//! TOSCA annotations: how recipes name and fill a model.

use serde::{Deserialize, Serialize};

/// How TOSCA recipes name and fill a model (see the server's `tosca` module and
/// `docs/tosca.md`). The engine reads only these annotations: a model without one has no node
/// type, and a new service's models become TOSCA types by declaring one.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Tosca {
    /// The node type (`tosca.nodes.Site`).
    pub node_type: String,
    /// The field a node template's name matches (`login_base` for Site, `email` for User).
    pub key: String,
    /// TOSCA property → field renames (`display_name` → `name`).
    pub renames: Vec<(String, String)>,
    /// Fields that take the node template's name when the recipe does not set them (a site's
    /// `name`, from `display_name` or else the node name).
    pub name_defaults: Vec<String>,
    /// Values an object created from a recipe gets unless the recipe sets them, where the TOSCA
    /// types' defaults differ from the model's (a network's `permit_all_slices`).
    pub defaults: Vec<(String, serde_json::Value)>,
    /// Further node types for this model that fix some fields (`tosca.nodes.Compute.Container`
    /// sets `isolation: container`).
    pub aliases: Vec<(String, Vec<(String, serde_json::Value)>)>,
    /// The requirement relationships this type accepts.
    pub requirements: Vec<ToscaRequirement>,
    /// List-valued properties that keep link rows to objects named by key (a deployment's
    /// `flavors: [m1.small]`).
    pub list_properties: Vec<(String, ToscaLink)>,
    /// Named capabilities handled by the engine (`compute`: `host` picks a node and flavor, `os`
    /// an image).
    pub capabilities: Option<String>,
}

/// One requirement relationship a node type accepts (`MemberOfSite` → `Site`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ToscaRequirement {
    /// The relationship's short name (`tosca.relationships.MemberOfSite` → `MemberOfSite`).
    pub relationship: String,
    /// The model of the target node.
    pub target: String,
    /// A node of this type must have one.
    pub required: bool,
    pub effect: ToscaEffect,
}

/// What a requirement does to the database.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum ToscaEffect {
    /// Set this foreign key to the target.
    Field(String),
    /// Keep a row of a through model joining this object and the target.
    Link(ToscaLink),
    /// Set `field` to the `through` row whose `column` is the target and whose other lookup
    /// columns match this node's other `Lookup` requirements for the same field (a node's site
    /// deployment, from its MemberOfSite and MemberOfDeployment requirements).
    Lookup {
        field: String,
        through: String,
        column: String,
    },
}

/// A row of `through` joining a node's object (`own`) and a target (`other`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ToscaLink {
    pub through: String,
    pub own: String,
    pub other: String,
    /// (field, role name): a privilege's role, looked up by name.
    pub role: Option<(String, String)>,
    /// A field that numbers the node's rows 10, 20, … in requirement order (dashboards).
    pub order: Option<String>,
    /// Fixed values of the row (a coarse tenant's `kind`).
    pub values: Vec<(String, serde_json::Value)>,
    /// Nested requirements that set fields of the row: (relationship, target model, field)
    /// (a SiteDeployment's `UsesController`).
    pub nested: Vec<(String, String, String)>,
}

impl ToscaLink {
    /// A link row of `through` from `own` (this object) to `other` (the target).
    pub fn new(through: &str, own: &str, other: &str) -> ToscaLink {
        ToscaLink {
            through: through.into(),
            own: own.into(),
            other: other.into(),
            ..ToscaLink::default()
        }
    }
    pub fn role(mut self, field: &str, role: &str) -> ToscaLink {
        self.role = Some((field.into(), role.into()));
        self
    }
    pub fn ordered(mut self, field: &str) -> ToscaLink {
        self.order = Some(field.into());
        self
    }
    pub fn value(mut self, field: &str, v: serde_json::Value) -> ToscaLink {
        self.values.push((field.into(), v));
        self
    }
    pub fn nested(mut self, relationship: &str, target: &str, field: &str) -> ToscaLink {
        self.nested
            .push((relationship.into(), target.into(), field.into()));
        self
    }
}
