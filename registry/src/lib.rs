//! The model registry: every model is declared once, as plain data.
//!
//! REST routes and (de)serialization, validation, migrations (`xos makemigrations`), the admin
//! pages, the client store's collections and (later) TOSCA types and the synchronizer's
//! dependency graph all read these declarations. The registry is deliberately data, not one
//! generated Rust type per model, so that a service's models can one day be loaded at run time.
//!
//! Field types and attributes follow the XOS guide's "Data Model Conventions" (Django's field
//! vocabulary): see [`FieldKind`] and [`Field`].

mod access;
mod models;
mod rules;
pub mod services;
mod status;

pub use access::{Access, Read, Write};
pub use rules::{Rule, Validator};
pub use status::BackendStatus;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// What happens to rows pointing at an object when that object is deleted.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum OnDelete {
    /// Delete the referring rows too (Django's default, as XOS used it).
    Cascade,
    /// Refuse the delete while referring rows exist (409 with the reason).
    Protect,
    /// Clear the reference (the field must be nullable).
    SetNull,
}

/// The type of a field, in the vocabulary of the guide's "Data Model Conventions".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum FieldKind {
    /// The integer primary key every model has.
    AutoId,
    Boolean,
    /// A boolean that may also be null.
    NullBoolean,
    Char {
        max_length: u32,
    },
    Text {
        max_length: Option<u32>,
    },
    DateTime {
        auto_now: bool,
        auto_now_add: bool,
    },
    Email {
        max_length: u32,
    },
    Float,
    Integer,
    PositiveInteger,
    GenericIpAddress,
    Url {
        max_length: u32,
    },
    Slug {
        max_length: u32,
    },
    ForeignKey {
        to: String,
        related_name: String,
        on_delete: OnDelete,
    },
    /// A password: hashed with argon2 on write, never returned.
    Password,
}

/// The storage class of a value: what a column holds in either database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Bool,
    Int,
    Float,
    Text,
    Time,
}

impl FieldKind {
    /// How the value is stored.
    pub fn sql_type(&self) -> SqlType {
        match self {
            FieldKind::AutoId
            | FieldKind::Integer
            | FieldKind::PositiveInteger
            | FieldKind::ForeignKey { .. } => SqlType::Int,
            FieldKind::Boolean | FieldKind::NullBoolean => SqlType::Bool,
            FieldKind::Float => SqlType::Float,
            FieldKind::DateTime { .. } => SqlType::Time,
            FieldKind::Char { .. }
            | FieldKind::Text { .. }
            | FieldKind::Email { .. }
            | FieldKind::GenericIpAddress
            | FieldKind::Url { .. }
            | FieldKind::Slug { .. }
            | FieldKind::Password => SqlType::Text,
        }
    }

    /// The maximum length of a string value, if the type has one.
    pub fn max_length(&self) -> Option<u32> {
        match self {
            FieldKind::Char { max_length }
            | FieldKind::Email { max_length }
            | FieldKind::Url { max_length }
            | FieldKind::Slug { max_length } => Some(*max_length),
            FieldKind::Text { max_length } => *max_length,
            FieldKind::GenericIpAddress => Some(39),
            _ => None,
        }
    }

    /// The name of the type as the guide spells it (for docs and the admin).
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::AutoId => "AutoField",
            FieldKind::Boolean => "BooleanField",
            FieldKind::NullBoolean => "NullBooleanField",
            FieldKind::Char { .. } => "CharField",
            FieldKind::Text { .. } => "TextField",
            FieldKind::DateTime { .. } => "DateTimeField",
            FieldKind::Email { .. } => "EmailField",
            FieldKind::Float => "FloatField",
            FieldKind::Integer => "IntegerField",
            FieldKind::PositiveInteger => "PositiveIntegerField",
            FieldKind::GenericIpAddress => "GenericIPAddressField",
            FieldKind::Url { .. } => "URLField",
            FieldKind::Slug { .. } => "SlugField",
            FieldKind::ForeignKey { .. } => "ForeignKey",
            FieldKind::Password => "PasswordField",
        }
    }
}

/// A field's default value.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum FieldDefault {
    /// A constant (JSON) value.
    Value(serde_json::Value),
    /// The current time.
    Now,
}

/// One choice of a field with `choices`: the stored value and its human label.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// One field of a model, with Django's attributes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Field {
    pub name: String,
    pub kind: FieldKind,
    pub verbose_name: String,
    pub help_text: String,
    /// The column may hold NULL.
    pub null: bool,
    /// An empty value is accepted.
    pub blank: bool,
    pub default: Option<FieldDefault>,
    pub choices: Vec<Choice>,
    pub unique: bool,
    /// `editable=False`: returned by the API but never written by users.
    pub editable: bool,
    pub db_index: bool,
    /// Write-only: never returned by the API, masked in logs and history.
    pub secret: bool,
    /// Internal bookkeeping (version counters): never part of the API.
    pub hidden: bool,
    /// Trim surrounding whitespace on write (XOS's `StrippedCharField`).
    pub strip: bool,
    /// Overrides of the standard error messages, keyed like Django's (`blank`, `unique`, …).
    pub error_messages: Vec<(String, String)>,
    /// Checks beyond the kind's own that the store runs on the field's text.
    pub validators: Vec<Validator>,
}

impl Field {
    fn new(name: &str, kind: FieldKind) -> Field {
        Field {
            name: name.to_string(),
            kind,
            verbose_name: name.replace('_', " "),
            help_text: String::new(),
            null: false,
            blank: false,
            default: None,
            choices: Vec::new(),
            unique: false,
            editable: true,
            db_index: false,
            secret: false,
            hidden: false,
            strip: false,
            error_messages: Vec::new(),
            validators: Vec::new(),
        }
    }

    pub fn auto_id() -> Field {
        let mut f = Field::new("id", FieldKind::AutoId);
        f.verbose_name = "ID".into();
        f.editable = false;
        f.blank = true;
        f
    }
    /// A boolean (Django makes these `blank=True`: false is a value, not a blank).
    pub fn boolean(name: &str, default: bool) -> Field {
        Field::new(name, FieldKind::Boolean)
            .default(serde_json::Value::Bool(default))
            .blank()
    }
    pub fn null_boolean(name: &str) -> Field {
        Field::new(name, FieldKind::NullBoolean).null().blank()
    }
    pub fn char(name: &str, max_length: u32) -> Field {
        Field::new(name, FieldKind::Char { max_length })
    }
    /// XOS's `StrippedCharField`: a char field trimmed on write.
    pub fn schar(name: &str, max_length: u32) -> Field {
        let mut f = Field::char(name, max_length);
        f.strip = true;
        f
    }
    pub fn text(name: &str, max_length: Option<u32>) -> Field {
        Field::new(name, FieldKind::Text { max_length })
    }
    pub fn datetime(name: &str) -> Field {
        Field::new(
            name,
            FieldKind::DateTime {
                auto_now: false,
                auto_now_add: false,
            },
        )
    }
    pub fn email(name: &str, max_length: u32) -> Field {
        Field::new(name, FieldKind::Email { max_length })
    }
    pub fn float(name: &str) -> Field {
        Field::new(name, FieldKind::Float)
    }
    pub fn integer(name: &str) -> Field {
        Field::new(name, FieldKind::Integer)
    }
    pub fn positive_integer(name: &str) -> Field {
        Field::new(name, FieldKind::PositiveInteger)
    }
    pub fn ip(name: &str) -> Field {
        Field::new(name, FieldKind::GenericIpAddress)
    }
    pub fn url(name: &str, max_length: u32) -> Field {
        let mut f = Field::new(name, FieldKind::Url { max_length });
        f.verbose_name = f.verbose_name.replace("url", "URL");
        f
    }
    pub fn slug(name: &str, max_length: u32) -> Field {
        Field::new(name, FieldKind::Slug { max_length })
    }
    pub fn password(name: &str) -> Field {
        let mut f = Field::new(name, FieldKind::Password);
        f.secret = true;
        f
    }
    /// A foreign key to `to` (a model name); `related_name` names the reverse relation.
    pub fn fk(name: &str, to: &str, related_name: &str, on_delete: OnDelete) -> Field {
        Field::new(
            name,
            FieldKind::ForeignKey {
                to: to.to_string(),
                related_name: related_name.to_string(),
                on_delete,
            },
        )
    }

    pub fn verbose(mut self, v: &str) -> Field {
        self.verbose_name = v.to_string();
        self
    }
    pub fn help(mut self, h: &str) -> Field {
        self.help_text = h.to_string();
        self
    }
    pub fn null(mut self) -> Field {
        self.null = true;
        self
    }
    pub fn blank(mut self) -> Field {
        self.blank = true;
        self
    }
    /// `null=True, blank=True`: the common "optional" pair.
    pub fn optional(self) -> Field {
        self.null().blank()
    }
    pub fn default(mut self, v: serde_json::Value) -> Field {
        self.default = Some(FieldDefault::Value(v));
        self
    }
    pub fn default_str(self, v: &str) -> Field {
        self.default(serde_json::Value::String(v.to_string()))
    }
    pub fn default_int(self, v: i64) -> Field {
        self.default(serde_json::Value::from(v))
    }
    pub fn choices(mut self, choices: &[(&str, &str)]) -> Field {
        self.choices = choices
            .iter()
            .map(|(v, l)| Choice {
                value: v.to_string(),
                label: l.to_string(),
            })
            .collect();
        self
    }
    pub fn unique(mut self) -> Field {
        self.unique = true;
        self.db_index = true;
        self
    }
    pub fn read_only(mut self) -> Field {
        self.editable = false;
        self
    }
    pub fn db_index(mut self) -> Field {
        self.db_index = true;
        self
    }
    pub fn secret(mut self) -> Field {
        self.secret = true;
        self
    }
    pub fn hidden(mut self) -> Field {
        self.hidden = true;
        self.editable = false;
        self
    }
    pub fn auto_now(mut self) -> Field {
        self.kind = FieldKind::DateTime {
            auto_now: true,
            auto_now_add: false,
        };
        self.editable = false;
        self.blank = true;
        self
    }
    pub fn auto_now_add(mut self) -> Field {
        self.kind = FieldKind::DateTime {
            auto_now: false,
            auto_now_add: true,
        };
        self.editable = false;
        self.blank = true;
        self
    }
    pub fn error_message(mut self, key: &str, message: &str) -> Field {
        self.error_messages.push((key.to_string(), message.to_string()));
        self
    }
    pub fn validator(mut self, v: Validator) -> Field {
        self.validators.push(v);
        self
    }

    /// The database column's name: the field name, or `<name>_id` for a foreign key (Django's
    /// rule).
    pub fn column_name(&self) -> String {
        match self.kind {
            FieldKind::ForeignKey { .. } => format!("{}_id", self.name),
            _ => self.name.clone(),
        }
    }

    /// The column as SQL writes it: quoted, because XOS has columns named `order`, `default`
    /// and camelCase ones (`numberCores`) that must keep their case.
    pub fn column(&self) -> String {
        format!("\"{}\"", self.column_name())
    }

    /// The model a foreign key points at.
    pub fn fk_target(&self) -> Option<&str> {
        match &self.kind {
            FieldKind::ForeignKey { to, .. } => Some(to),
            _ => None,
        }
    }

    /// Part of the public API (not an internal counter).
    pub fn is_public(&self) -> bool {
        !self.hidden
    }

    /// Returned by reads (public and not write-only).
    pub fn is_readable(&self) -> bool {
        !self.hidden && !self.secret
    }

    /// Users may write it.
    pub fn is_writable(&self) -> bool {
        self.editable && !self.hidden
    }

    /// Must be given on create: not blank, not nullable and without a default.
    pub fn is_required(&self) -> bool {
        self.is_writable() && !self.blank && !self.null && self.default.is_none()
    }

    /// A custom message for `key`, if the declaration overrides it.
    pub fn message(&self, key: &str) -> Option<&str> {
        self.error_messages
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, m)| m.as_str())
    }
}

/// A many-to-many relation kept in a named through model (`Site.deployments` through
/// `SiteDeployment`). Not a column: writing a list of ids adds and removes through rows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManyToMany {
    pub name: String,
    /// The model at the other end.
    pub to: String,
    /// The through model, holding a foreign key to each side.
    pub through: String,
    pub related_name: String,
    pub verbose_name: String,
    pub help_text: String,
}

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

/// Which set of bookkeeping fields a model carries.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Base {
    /// XOS's `PlCoreBase`: created … no_sync, plus hidden version counters.
    PlCore,
    /// XOS's User: its own subset (no backend_register, lazy_blocked, no_sync).
    User,
}

/// One model: a table, a REST collection, an admin page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    /// CamelCase singular name (`Slice`).
    pub name: String,
    /// The REST collection name (`slices`).
    pub plural: String,
    /// The Django app the model belongs to (`core`); the table is `<app>_<name lowercased>`.
    pub app: String,
    pub verbose_name: String,
    pub verbose_name_plural: String,
    pub base: Base,
    /// All fields: `id`, the base fields, then the model's own.
    pub fields: Vec<Field>,
    pub unique_together: Vec<Vec<String>>,
    /// Default ordering (`name`, `-created`); `id` when empty.
    pub ordering: Vec<String>,
    /// The `humanReadableName` template: `{field}` placeholders.
    pub display: String,
    /// Fields `?search=` looks in.
    pub search_fields: Vec<String>,
    /// Fields the generated admin list shows.
    pub list_fields: Vec<String>,
    /// Model-level rules the store runs on every write (the server's `store::rules`).
    pub rules: Vec<Rule>,
    /// Who besides admins reads and writes the rows.
    pub access: Access,
    pub many_to_many: Vec<ManyToMany>,
    pub tosca: Option<Tosca>,
    pub help_text: String,
    /// Related objects the admin form lists below the object, with their status: (model, the
    /// foreign key of that model pointing here), e.g. a slice's instances (`Instance`, `slice`).
    pub inlines: Vec<(String, String)>,
    /// The core model this one extends (a service's `HelloWorldService` is a `Service`), as
    /// Django's multi-table inheritance did: see [`Extends`].
    #[serde(default)]
    pub extends: Option<Extends>,
}

/// A model that extends another: it has the parent's fields too (declared once, in the
/// parent), each of its rows is also a row of the parent with the same id and `kind`, so it
/// appears in the parent's collection (`/xos/services/`) as XOS showed subclasses. The store
/// keeps both rows one object: a write through either reaches the other in the same transaction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Extends {
    /// The parent model (`Service`, `Tenant`).
    pub parent: String,
    /// The parent's `kind` for these rows (`helloworld`); fixed, not writable.
    pub kind: String,
}

impl Model {
    /// Declare a model with the `PlCoreBase` fields.
    pub fn new(name: &str, plural: &str) -> Model {
        let mut m = Model {
            name: name.to_string(),
            plural: plural.to_string(),
            app: "core".into(),
            verbose_name: name.to_lowercase(),
            verbose_name_plural: format!("{}s", name.to_lowercase()),
            base: Base::PlCore,
            fields: vec![Field::auto_id()],
            unique_together: Vec::new(),
            ordering: Vec::new(),
            display: "{id}".into(),
            search_fields: Vec::new(),
            list_fields: Vec::new(),
            rules: Vec::new(),
            access: Access::default(),
            many_to_many: Vec::new(),
            tosca: None,
            help_text: String::new(),
            inlines: Vec::new(),
            extends: None,
        };
        m.fields.extend(base_fields(Base::PlCore));
        m
    }

    /// Declare a model with XOS's User bookkeeping instead of `PlCoreBase`.
    pub fn new_user_like(name: &str, plural: &str) -> Model {
        let mut m = Model::new(name, plural);
        m.base = Base::User;
        m.fields = vec![Field::auto_id()];
        m.fields.extend(base_fields(Base::User));
        m
    }

    pub fn verbose(mut self, singular: &str, plural: &str) -> Model {
        self.verbose_name = singular.to_string();
        self.verbose_name_plural = plural.to_string();
        self
    }
    pub fn field(mut self, f: Field) -> Model {
        self.fields.push(f);
        self
    }
    pub fn unique_together(mut self, fields: &[&str]) -> Model {
        self.unique_together
            .push(fields.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn ordering(mut self, fields: &[&str]) -> Model {
        self.ordering = fields.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn display(mut self, template: &str) -> Model {
        self.display = template.to_string();
        self
    }
    pub fn search(mut self, fields: &[&str]) -> Model {
        self.search_fields = fields.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn list(mut self, fields: &[&str]) -> Model {
        self.list_fields = fields.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn access(mut self, access: Access) -> Model {
        self.access = access;
        self
    }
    pub fn rule(mut self, rule: Rule) -> Model {
        self.rules.push(rule);
        self
    }
    /// List the `model` objects whose `fk` points here below this model's admin form.
    pub fn inline(mut self, model: &str, fk: &str) -> Model {
        self.inlines.push((model.to_string(), fk.to_string()));
        self
    }
    pub fn help(mut self, text: &str) -> Model {
        self.help_text = text.to_string();
        self
    }
    /// A many-to-many relation through the named model.
    pub fn many_to_many(mut self, name: &str, to: &str, through: &str, related_name: &str) -> Model {
        self.many_to_many.push(ManyToMany {
            name: name.to_string(),
            to: to.to_string(),
            through: through.to_string(),
            related_name: related_name.to_string(),
            verbose_name: name.replace('_', " "),
            help_text: String::new(),
        });
        self
    }
    /// The TOSCA node type and the field its node names match.
    pub fn tosca(mut self, node_type: &str, key: &str) -> Model {
        self.tosca = Some(Tosca {
            node_type: node_type.to_string(),
            key: key.to_string(),
            ..Tosca::default()
        });
        self
    }
    fn tosca_mut(&mut self) -> &mut Tosca {
        self.tosca
            .as_mut()
            .expect("declare .tosca(node_type, key) before other TOSCA annotations")
    }
    /// A TOSCA property that sets a differently named field.
    pub fn tosca_rename(mut self, property: &str, field: &str) -> Model {
        self.tosca_mut()
            .renames
            .push((property.to_string(), field.to_string()));
        self
    }
    /// `field` takes the node template's name unless the recipe sets it.
    pub fn tosca_name_default(mut self, field: &str) -> Model {
        self.tosca_mut().name_defaults.push(field.to_string());
        self
    }
    /// A TOSCA default that differs from the model's.
    pub fn tosca_default(mut self, field: &str, value: serde_json::Value) -> Model {
        self.tosca_mut().defaults.push((field.to_string(), value));
        self
    }
    /// A further node type for this model, fixing some fields.
    pub fn tosca_alias(mut self, node_type: &str, values: &[(&str, serde_json::Value)]) -> Model {
        let values = values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        self.tosca_mut().aliases.push((node_type.to_string(), values));
        self
    }
    /// A requirement relationship: `relationship` to a node of model `target` does `effect`.
    pub fn tosca_requirement(mut self, relationship: &str, target: &str, effect: ToscaEffect) -> Model {
        self.tosca_mut().requirements.push(ToscaRequirement {
            relationship: relationship.to_string(),
            target: target.to_string(),
            required: false,
            effect,
        });
        self
    }
    /// Like [`Model::tosca_requirement`], and every node of the type must have it.
    pub fn tosca_required(self, relationship: &str, target: &str, effect: ToscaEffect) -> Model {
        let mut m = self.tosca_requirement(relationship, target, effect);
        if let Some(r) = m.tosca_mut().requirements.last_mut() {
            r.required = true;
        }
        m
    }
    /// A list property naming objects by key, kept as link rows.
    pub fn tosca_list(mut self, property: &str, link: ToscaLink) -> Model {
        self.tosca_mut()
            .list_properties
            .push((property.to_string(), link));
        self
    }
    /// Capabilities the engine handles by name.
    pub fn tosca_capabilities(mut self, name: &str) -> Model {
        self.tosca_mut().capabilities = Some(name.to_string());
        self
    }
    /// Extend a core model (`Service`, `Tenant`): inherit its fields (a field declared here of
    /// the same name overrides the parent's, e.g. a narrower foreign key) and share its rows,
    /// whose `kind` is `kind`. The parent's fields are added when the registry is built.
    pub fn extends(mut self, parent: &str, kind: &str) -> Model {
        self.extends = Some(Extends {
            parent: parent.to_string(),
            kind: kind.to_string(),
        });
        self
    }
    /// Put the model in another Django app (a service's own models: `helloworld_…` tables).
    /// The app is also the service the model belongs to (`core` for the core models).
    pub fn in_app(mut self, app: &str) -> Model {
        self.app = app.to_string();
        self
    }
    /// `no_sync` defaults to true (XOS set it in `__init__` for Deployment, Controller, Node, Flavor).
    pub fn no_sync_by_default(mut self) -> Model {
        if let Some(f) = self.fields.iter_mut().find(|f| f.name == "no_sync") {
            f.default = Some(FieldDefault::Value(serde_json::Value::Bool(true)));
        }
        self
    }
    /// Change an inherited field's declaration (e.g. a base field's default).
    pub fn alter(mut self, name: &str, change: impl FnOnce(Field) -> Field) -> Model {
        if let Some(i) = self.fields.iter().position(|f| f.name == name) {
            let f = self.fields.remove(i);
            self.fields.insert(i, change(f));
        }
        self
    }

    /// The database table (`core_slice`), as Django named it.
    pub fn table(&self) -> String {
        format!("{}_{}", self.app, self.name.to_lowercase())
    }

    pub fn field_named(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Fields the API returns, in order.
    pub fn readable_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.is_readable())
    }

    /// Foreign keys of this model.
    pub fn foreign_keys(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.fk_target().is_some())
    }

    /// The XOS `getValidators()` map: `notBlank` for required fields, `url` for URL fields.
    pub fn validators(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        for f in self.fields.iter().filter(|f| f.is_writable()) {
            let mut v = Vec::new();
            if !f.blank {
                v.push(serde_json::Value::from("notBlank"));
            }
            if matches!(f.kind, FieldKind::Url { .. }) {
                v.push(serde_json::Value::from("url"));
            }
            if !v.is_empty() {
                out.insert(f.name.clone(), serde_json::Value::Array(v));
            }
        }
        out
    }

    /// Render `humanReadableName` from an object's JSON fields.
    pub fn human_readable_name(&self, obj: &serde_json::Map<String, serde_json::Value>) -> String {
        self.display_with(|key| match obj.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Null) | None => None,
            Some(v) => Some(v.to_string()),
        })
    }

    /// Fill the display template (`{field}` placeholders) from `lookup`.
    pub fn display_with(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        let mut rest = self.display.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else { break };
            if let Some(v) = lookup(&rest[start + 1..start + end]) {
                out.push_str(&v);
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Has the synchronizer bookkeeping (`enacted`, `backend_status`, version counters).
    pub fn is_synchronized(&self) -> bool {
        self.field_named("enacted_version").is_some()
    }
}

/// Give each extending model its parent's own fields (after its bookkeeping, before its own
/// fields; a field it declares itself wins) and fix its `kind`.
fn inherit(models: &mut [Model]) {
    for i in 0..models.len() {
        let Some(ext) = models[i].extends.clone() else {
            continue;
        };
        let Some(parent) = models.iter().find(|m| m.name == ext.parent) else {
            panic!("{} extends {}, which is not declared", models[i].name, ext.parent);
        };
        assert!(
            parent.extends.is_none() && parent.base == models[i].base,
            "{} may extend only a core model of the same base",
            models[i].name
        );
        let parent_own = 1 + base_fields(parent.base).len();
        let inherited: Vec<Field> = parent.fields[parent_own..]
            .iter()
            .filter(|f| models[i].field_named(&f.name).is_none())
            .cloned()
            .collect();
        let rules: Vec<Rule> = parent.rules.clone();
        let child = &mut models[i];
        for r in rules {
            if !child.rules.contains(&r) {
                child.rules.push(r);
            }
        }
        let at = 1 + base_fields(child.base).len();
        child.fields.splice(at..at, inherited);
        if let Some(kind) = child.fields.iter_mut().find(|f| f.name == "kind") {
            kind.default = Some(FieldDefault::Value(ext.kind.clone().into()));
            kind.editable = false;
        }
    }
}

/// The bookkeeping fields of a base.
fn base_fields(base: Base) -> Vec<Field> {
    let mut v = vec![
        Field::datetime("created").auto_now_add(),
        Field::datetime("updated").auto_now(),
        Field::datetime("enacted").optional().read_only(),
        Field::datetime("policed").optional().read_only(),
    ];
    if base == Base::PlCore {
        v.push(
            Field::char("backend_register", 140)
                .optional()
                .default_str("{}")
                .read_only(),
        );
    }
    v.push(
        Field::char("backend_status", 1024)
            .default_str(BackendStatus::PROVISIONING)
            .read_only(),
    );
    v.push(Field::boolean("deleted", false).read_only());
    v.push(Field::boolean("write_protect", false));
    if base == Base::PlCore {
        v.push(Field::boolean("lazy_blocked", false));
        v.push(Field::boolean("no_sync", false));
    }
    // Change counters: "changed since enacted" must not depend on clock resolution. The row's
    // counter is `row_version`, not `version`, because Controller has a real `version` field.
    v.push(Field::integer("row_version").default_int(1).hidden());
    v.push(Field::integer("enacted_version").default_int(0).hidden());
    v.push(Field::integer("policed_version").default_int(0).hidden());
    v
}

/// Every model the system knows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registry {
    pub models: Vec<Model>,
    #[serde(skip)]
    by_name: HashMap<String, usize>,
    #[serde(skip)]
    by_plural: HashMap<String, usize>,
}

impl Registry {
    /// Build a registry from declarations: resolve inheritance ([`Model::extends`]), index
    /// names and plurals.
    pub fn new(mut models: Vec<Model>) -> Registry {
        inherit(&mut models);
        let by_name = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let by_plural = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.plural.clone(), i))
            .collect();
        Registry {
            models,
            by_name,
            by_plural,
        }
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }

    pub fn by_plural(&self, plural: &str) -> Option<&Model> {
        self.by_plural.get(plural).map(|&i| &self.models[i])
    }

    /// The through model's foreign keys of a many-to-many: (to this side, to the other side).
    pub fn through_fields<'a>(&'a self, owner: &str, m2m: &'a ManyToMany) -> Option<(&'a Field, &'a Field)> {
        let through = self.model(&m2m.through)?;
        let source = through.foreign_keys().find(|f| f.fk_target() == Some(owner))?;
        let target = through
            .foreign_keys()
            .find(|f| f.fk_target() == Some(m2m.to.as_str()) && f.name != source.name)?;
        Some((source, target))
    }

    /// The models that extend `model` (`HelloWorldService` for `Service`).
    pub fn children<'a>(&'a self, model: &str) -> impl Iterator<Item = &'a Model> + 'a {
        let model = model.to_string();
        self.models
            .iter()
            .filter(move |m| m.extends.as_ref().is_some_and(|e| e.parent == model))
    }

    /// The services whose models this registry holds (`core` first), from the models' apps.
    pub fn services(&self) -> Vec<&str> {
        let mut out: Vec<&str> = vec!["core"];
        for m in &self.models {
            if !out.contains(&m.app.as_str()) {
                out.push(&m.app);
            }
        }
        out
    }

    /// Foreign keys elsewhere that point at `model`: (referring model, field).
    pub fn referrers<'a>(&'a self, model: &'a str) -> impl Iterator<Item = (&'a Model, &'a Field)> + 'a {
        self.models.iter().flat_map(move |m| {
            m.foreign_keys()
                .filter(move |f| f.fk_target() == Some(model))
                .map(move |f| (m, f))
        })
    }
}

/// The registry of every compiled-in model.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut models = models::models();
        models.extend(services::models());
        Registry::new(models)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XOS field names that are not snake_case; kept for API compatibility.
    const LEGACY_CAMEL_CASE: &[&str] = &[
        "accessControl",
        "numberCores",
        "userData",
        "versionNumber",
        "dashboardView",
    ];

    #[test]
    fn an_extending_model_has_its_parents_fields_and_a_fixed_kind() {
        let reg = registry();
        let service = reg.model("Service").unwrap();
        let hw = reg.model("HelloWorldService").unwrap();
        for f in service.fields.iter() {
            assert!(
                hw.field_named(&f.name).is_some(),
                "HelloWorldService lacks {}",
                f.name
            );
        }
        let kind = hw.field_named("kind").unwrap();
        assert!(!kind.editable);
        assert_eq!(kind.default, Some(FieldDefault::Value("helloworld".into())));
        // A field the child declares wins: the tenant's provider is a HelloWorld service.
        let tenant = reg.model("HelloWorldTenant").unwrap();
        assert_eq!(
            tenant.field_named("provider_service").unwrap().fk_target(),
            Some("HelloWorldService")
        );
        assert_eq!(
            tenant
                .fields
                .iter()
                .filter(|f| f.name == "provider_service")
                .count(),
            1
        );
        assert!(
            tenant.rules.contains(&Rule::TenantOneSubscriber),
            "the parent's rules apply"
        );
        let children: Vec<&str> = reg.children("Service").map(|m| m.name.as_str()).collect();
        assert_eq!(children, vec!["HelloWorldService"]);
        assert_eq!(reg.services(), vec!["core", "helloworld"]);
    }

    #[test]
    fn every_foreign_key_points_at_a_declared_model() {
        let reg = registry();
        for m in &reg.models {
            for f in m.foreign_keys() {
                let to = f.fk_target().unwrap();
                assert!(
                    reg.model(to).is_some(),
                    "{}.{} points at unknown {to}",
                    m.name,
                    f.name
                );
            }
        }
    }

    #[test]
    fn every_inline_names_a_model_and_its_key_pointing_back() {
        let reg = registry();
        for m in &reg.models {
            for (child, fk) in &m.inlines {
                let c = reg
                    .model(child)
                    .unwrap_or_else(|| panic!("{} inlines unknown {child}", m.name));
                let f = c
                    .fields
                    .iter()
                    .find(|f| &f.name == fk)
                    .unwrap_or_else(|| panic!("{child} has no field {fk}"));
                assert_eq!(
                    f.fk_target(),
                    Some(m.name.as_str()),
                    "{child}.{fk} does not point at {}",
                    m.name
                );
            }
        }
    }

    /// Where a dotted access path of foreign keys leads from `m` (None: a step is not a key).
    fn walk<'a>(reg: &'a Registry, m: &'a Model, path: &[String]) -> Option<&'a Model> {
        let mut here = m;
        for step in path {
            here = reg.model(here.field_named(step)?.fk_target()?)?;
        }
        Some(here)
    }

    #[test]
    fn every_access_path_leads_where_its_rule_says() {
        let reg = registry();
        let leads_to = |m: &Model, path: &[String], to: &str| {
            let end = walk(reg, m, path).map(|e| e.name.clone());
            assert_eq!(
                end.as_deref(),
                Some(to),
                "{}: path {path:?} must lead to {to}",
                m.name
            );
        };
        let mut special = 0;
        for m in &reg.models {
            match &m.access.read {
                Read::Slice(p) => leads_to(m, p, "Slice"),
                Read::Owner(f) => leads_to(m, std::slice::from_ref(f), "User"),
                Read::All => {}
                Read::Users | Read::SitePrivileges | Read::SlicePrivileges | Read::Networks => special += 1,
            }
            match &m.access.write {
                Write::Slice { slice, sees, .. } => {
                    leads_to(m, slice, "Slice");
                    for (field, model) in sees {
                        leads_to(m, std::slice::from_ref(field), model);
                    }
                }
                Write::Owner { field, .. } => leads_to(m, std::slice::from_ref(field), "User"),
                Write::SiteRole { sites, roles, .. } => {
                    for p in sites {
                        leads_to(m, p, "Site");
                    }
                    assert!(!roles.is_empty(), "{}", m.name);
                }
                Write::Admins => {}
                Write::Users | Write::Slices | Write::SitePrivileges | Write::SlicePrivileges => special += 1,
            }
        }
        // The special cases belong to one model each (User, Slice, the two privileges, Network).
        assert_eq!(special, 8);
        assert_eq!(registry().model("Deployment").unwrap().access, Access::default());
    }

    #[test]
    fn names_follow_the_conventions() {
        for m in &registry().models {
            assert!(m.name.chars().next().unwrap().is_ascii_uppercase(), "{}", m.name);
            assert!(!m.name.contains('_'), "{}", m.name);
            assert_eq!(m.plural, m.plural.to_lowercase(), "{}", m.plural);
            for f in &m.fields {
                let legacy = LEGACY_CAMEL_CASE.contains(&f.name.as_str());
                assert!(legacy || f.name == f.name.to_lowercase(), "{}.{}", m.name, f.name);
            }
        }
    }

    #[test]
    fn every_many_to_many_has_a_through_model_with_both_keys() {
        let reg = registry();
        for m in &reg.models {
            for r in &m.many_to_many {
                assert!(
                    reg.through_fields(&m.name, r).is_some(),
                    "{}.{} through {}",
                    m.name,
                    r.name,
                    r.through
                );
            }
        }
    }

    #[test]
    fn human_readable_name_fills_placeholders() {
        let m = registry().model("Slice").unwrap();
        let mut obj = serde_json::Map::new();
        obj.insert("name".into(), "mysite_test".into());
        assert_eq!(m.human_readable_name(&obj), "mysite_test");
    }

    #[test]
    fn validators_name_required_and_url_fields() {
        let v = registry().model("Site").unwrap().validators();
        assert_eq!(v["name"], serde_json::json!(["notBlank"]));
        assert_eq!(v["site_url"], serde_json::json!(["url"]));
        assert!(!v.contains_key("created"));
    }
}
