//! The checks a declaration names, as types: a misspelled rule or validator does not compile, and
//! the store's `match` over them is exhaustive, so a new one cannot be declared without being
//! implemented (`store/src/rules.rs`, `store/src/validate.rs`).

use serde::{Deserialize, Serialize};

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
    /// `http://host[:port][/path]`: where a cache fetches from.
    OriginUrl,
    /// `allow|deny <subnet>|all` per line (a CDN access map; see `store::maps`).
    AccessMap,
    /// `<subnet> <cache> [<cache> …]` per line (a CDN site map; see `store::maps`).
    SiteMap,
    /// An access map that is an allow list: `allow <subnet>|all` lines, then at most a final
    /// `deny all` (what a DNS server's query ACL can hold).
    AllowList,
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
    /// The origin server the named foreign key points at belongs to the row's own
    /// `contentProvider` (a CDN prefix's default origin).
    SameContentProvider(String),
    /// One live row of the model in the whole system (XOS's `SingletonModel`).
    Singleton,
}

impl Rule {
    pub fn json_object(field: &str) -> Rule {
        Rule::JsonObject(field.to_string())
    }
}
