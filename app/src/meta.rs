//! A model as the UI needs it: what a list shows and a form edits, nothing the store or the
//! synchronizer needs (rules, access, TOSCA, validators). The server derives it from the
//! registry ([`From<&registry::Model>`](Model)) and sends it to the browser in an island's
//! props; the bundle only ever decodes these few small types, never the registry's.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One model: its names, the fields users see, its relations.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    /// CamelCase singular name (`Slice`).
    pub name: String,
    /// The REST collection (`slices`).
    pub plural: String,
    /// The Django app (`core`): the admin path is `/admin/<app>/<name lowercased>/`.
    pub app: String,
    pub verbose_name: String,
    pub verbose_name_plural: String,
    /// The fields the API returns or takes, in order (internal counters left out).
    pub fields: Vec<Field>,
    /// Fields the admin list shows.
    pub list_fields: Vec<String>,
    pub many_to_many: Vec<ManyToMany>,
    /// Related objects listed below an object's form: (model, its foreign key pointing here).
    pub inlines: Vec<(String, String)>,
}

/// One field.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    pub verbose_name: String,
    pub help_text: String,
    /// It may be null.
    pub null: bool,
    /// It may be empty.
    pub blank: bool,
    /// The value a new object's form starts with.
    pub default: Option<Value>,
    /// (stored value, label).
    pub choices: Vec<(String, String)>,
    /// The API returns it (not a write-only secret).
    pub readable: bool,
    /// Users may write it.
    pub writable: bool,
    /// A create must give it.
    pub required: bool,
    /// Written by the synchronizer only (shown read-only).
    pub backend: bool,
}

/// What widget a field gets.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Kind {
    Boolean,
    /// Multi-line text.
    Text,
    Integer,
    Float,
    Email,
    Url,
    Password,
    /// A reference to an object of the named model.
    ForeignKey(String),
    /// Any other one-line value.
    Line,
}

/// A many-to-many relation, written as a list of ids.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManyToMany {
    pub name: String,
    /// The model at the other end.
    pub to: String,
    pub verbose_name: String,
    pub help_text: String,
}

impl Model {
    pub fn field_named(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Fields the API returns, in order.
    pub fn readable_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.readable)
    }
}

impl Field {
    /// The model a foreign key points to.
    pub fn fk_target(&self) -> Option<&str> {
        match &self.kind {
            Kind::ForeignKey(to) => Some(to),
            _ => None,
        }
    }
}

#[cfg(feature = "ssr")]
impl From<&registry::Model> for Model {
    fn from(m: &registry::Model) -> Model {
        Model {
            name: m.name.clone(),
            plural: m.plural.clone(),
            app: m.app.clone(),
            verbose_name: m.verbose_name.clone(),
            verbose_name_plural: m.verbose_name_plural.clone(),
            fields: m
                .fields
                .iter()
                .filter(|f| f.is_public())
                .map(Field::from)
                .collect(),
            list_fields: m.list_fields.clone(),
            many_to_many: m
                .many_to_many
                .iter()
                .map(|r| ManyToMany {
                    name: r.name.clone(),
                    to: r.to.clone(),
                    verbose_name: r.verbose_name.clone(),
                    help_text: r.help_text.clone(),
                })
                .collect(),
            inlines: m.inlines.clone(),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<&registry::Field> for Field {
    fn from(f: &registry::Field) -> Field {
        use registry::FieldKind as K;
        Field {
            name: f.name.clone(),
            kind: match &f.kind {
                K::Boolean => Kind::Boolean,
                K::Text { .. } => Kind::Text,
                K::Integer | K::PositiveInteger => Kind::Integer,
                K::Float => Kind::Float,
                K::Email { .. } => Kind::Email,
                K::Url { .. } => Kind::Url,
                K::Password => Kind::Password,
                K::ForeignKey { to, .. } => Kind::ForeignKey(to.clone()),
                _ => Kind::Line,
            },
            verbose_name: f.verbose_name.clone(),
            help_text: f.help_text.clone(),
            null: f.null,
            blank: f.blank,
            default: match &f.default {
                Some(registry::FieldDefault::Value(v)) => Some(v.clone()),
                _ => None,
            },
            choices: f
                .choices
                .iter()
                .map(|c| (c.value.clone(), c.label.clone()))
                .collect(),
            readable: f.is_readable(),
            writable: f.is_writable(),
            required: f.is_required(),
            backend: f.backend,
        }
    }
}
