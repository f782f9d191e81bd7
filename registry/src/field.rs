//! Fields: their kinds (Django's vocabulary), SQL types, defaults, choices and attributes.

use crate::Validator;
use serde::{Deserialize, Serialize};

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
    /// Backend-owned: a cloud's id or address (an instance's uuid, a port's id, an ip) that
    /// only the synchronizer writes. The synchronizer calls the cloud as its admin with these
    /// values, so a user who could set one could point it at another tenant's objects: an API
    /// write that changes one is refused (400 naming the field); sending back the value it
    /// already has (Backbone's `save()`) is accepted.
    #[serde(default)]
    pub backend: bool,
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
            backend: false,
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
    /// Written by the synchronizer only (see [`Field::backend`]).
    pub fn backend_owned(mut self) -> Field {
        self.backend = true;
        self.editable = false;
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
