//! The checks a declaration names, as types: a misspelled rule or validator does not compile, and
//! the store's `match` over them is exhaustive, so a new one cannot be declared without being
//! implemented (`store/src/rules.rs`, `store/src/validate.rs`). The core's are general; a
//! service brings the checks of its own formats as [`TextCheck`]s, which the core runs without
//! knowing them.

use serde::{Deserialize, Serialize};

/// A check of a text field that a service brings (a CDN access map's format): a name for
/// clients and logs, and the function, which returns the error message of a bad value. It lives
/// in the service's model part, so the browser and the server run the same code.
#[derive(Clone, Copy)]
pub struct TextCheck {
    pub name: &'static str,
    pub check: fn(&str) -> Option<String>,
}

impl std::fmt::Debug for TextCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextCheck({})", self.name)
    }
}

impl PartialEq for TextCheck {
    fn eq(&self, other: &TextCheck) -> bool {
        self.name == other.name
    }
}

impl Eq for TextCheck {}

impl Serialize for TextCheck {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name)
    }
}

impl<'de> Deserialize<'de> for TextCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TextCheck, D::Error> {
        let name = String::deserialize(d)?;
        Err(serde::de::Error::custom(format!(
            "the check {name:?} is code of its service: models with it are built from their crate, not read"
        )))
    }
}

/// A check of one text field beyond what its kind implies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Validator {
    /// No whitespace (a slice name).
    NoSpaces,
    /// No comma (a dashboard name: XOS kept the user's dashboard order as a comma list).
    NoComma,
    /// `template:<name>`, `http://…` or `https://…` (a dashboard view's URL).
    DashboardUrl,
    /// `tcp 80, udp 53, tcp 8000:8010`: a network's ports.
    PortList,
    /// A DNS name (`cdn.example.org`): labels of letters, digits and `-`, at most 253 long.
    DomainName,
    /// A service's own check.
    Check(TextCheck),
}

/// A model-level rule: it sees the whole object (and the database), fills in defaults or
/// reports field errors, as Django's `save()` and DRF's `validate()` did in XOS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rule {
    /// A slice's name starts with its site's `login_base` and `_`.
    SliceNamePrefix,
    /// `creator` defaults to the caller on create.
    CreatorDefault,
    /// A user's `username` follows its email.
    UserUsername,
    /// A node's `site` follows its site deployment.
    NodeSiteDefault,
    /// An instance's deployment, flavor, image and name default from its slice and node.
    InstanceDefaults,
    /// An instance's isolation (vm, container, container in VM) matches its parent.
    InstanceIsolation,
    /// An instance's creator may create instances in its slice.
    InstanceCreatorPrivilege,
    /// A slice holds at most `max_instances` instances.
    InstanceSliceQuota,
    /// A privilege's user is active.
    PrivilegeActiveUser,
    /// A network joins only slices it permits.
    NetworkSlicePermitted,
    /// A tenant has one subscriber at most.
    TenantOneSubscriber,
    /// `content_type` + `object_id` name an existing object.
    GenericReference,
    /// A new API token gets its key and hash.
    ApiTokenKey,
    /// `content_type` names a model.
    ContentTypeModel,
    /// The named text field holds nothing or a JSON object (controller `settings`).
    JsonObject(String),
    /// At most one of these foreign keys is set (a site map's owner).
    AtMostOneOf(Vec<String>),
    /// The row the foreign key `field` points at has the same `via` as this row (a CDN
    /// prefix's default origin belongs to the prefix's own content provider).
    SameAs { field: String, via: String },
    /// One live row of the model in the whole system (XOS's `SingletonModel`).
    Singleton,
    /// The integer field, when set, lies in `min..=max` (a port, a block size).
    IntRange { field: String, min: i64, max: i64 },
    /// The fields, when set, hold different values (a volume-slice's two gateway ports).
    Differ(Vec<String>),
}

impl Rule {
    pub fn json_object(field: &str) -> Rule {
        Rule::JsonObject(field.to_string())
    }
}

/// A DNS name without the final dot: labels of letters, digits and `-` (not first or last),
/// each 1–63 long, 253 in all.
pub fn domain_name_error(s: &str) -> Option<String> {
    if s.is_empty() || s.len() > 253 {
        return Some("Enter a domain name of at most 253 characters.".into());
    }
    for label in s.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Some(format!(
                "\"{label}\" is not a valid label of a domain name (letters, digits and -, like cdn.example.org)."
            ));
        }
    }
    None
}
