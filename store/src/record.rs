//! A stored object and one write of it, as hooks see them.

use crate::ChangeKind;
use crate::db::Value;
use registry::Model;
use registry::typed::{Bool, FieldName, Fk, Int, Kind, Text};

/// An object lacks a value code needs (null, or a field its model does not have).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{model} {id} has no {field}")]
pub struct MissingField {
    pub model: String,
    pub id: i64,
    pub field: &'static str,
}

/// How a typed field's value is read from a stored [`Value`].
pub trait ReadField: Kind {
    type Out<'a>;
    fn read(v: &Value) -> Option<Self::Out<'_>>;
}

impl ReadField for Text {
    type Out<'a> = &'a str;
    fn read(v: &Value) -> Option<&str> {
        v.as_str()
    }
}
impl ReadField for Int {
    type Out<'a> = i64;
    fn read(v: &Value) -> Option<i64> {
        v.as_int()
    }
}
impl ReadField for Fk {
    type Out<'a> = i64;
    fn read(v: &Value) -> Option<i64> {
        v.as_int()
    }
}
impl ReadField for Bool {
    type Out<'a> = bool;
    fn read(v: &Value) -> Option<bool> {
        v.as_bool()
    }
}

/// A stored object: its values aligned with `model.fields`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub model: &'static Model,
    pub values: Vec<Value>,
}

impl Record {
    pub fn id(&self) -> i64 {
        self.values[0].as_int().unwrap_or_default()
    }
    /// The value of field `name` (panics on a name the model does not declare: a programming error).
    pub fn get(&self, name: &str) -> &Value {
        let i = self
            .model
            .fields
            .iter()
            .position(|f| f.name == name)
            .unwrap_or_else(|| {
                panic!("{} has no field {name}", self.model.name);
            });
        &self.values[i]
    }
    pub fn try_get(&self, name: &str) -> Option<&Value> {
        self.model
            .fields
            .iter()
            .position(|f| f.name == name)
            .map(|i| &self.values[i])
    }
    /// The value of typed field `f`; null, or a field the model lacks, is an error naming both.
    pub fn req<K: ReadField>(&self, f: FieldName<K>) -> Result<K::Out<'_>, MissingField> {
        self.opt(f).ok_or_else(|| MissingField {
            model: self.model.name.clone(),
            id: self.id(),
            field: f.name,
        })
    }
    /// The value of typed field `f`, None when null (for fields that may be empty).
    pub fn opt<K: ReadField>(&self, f: FieldName<K>) -> Option<K::Out<'_>> {
        debug_assert!(
            f.model
                .is_none_or(|m| m == self.model.name || self.try_get(f.name).is_some()),
            "{} read as a {}",
            self.model.name,
            f.model.unwrap_or_default()
        );
        self.try_get(f.name).and_then(K::read)
    }
    pub fn get_int(&self, name: &str) -> Option<i64> {
        self.try_get(name).and_then(Value::as_int)
    }
    pub fn get_bool(&self, name: &str) -> bool {
        self.try_get(name).and_then(Value::as_bool).unwrap_or(false)
    }
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.try_get(name).and_then(Value::as_str)
    }
}

/// One write, as hooks see it.
#[derive(Clone, Debug)]
pub struct Change {
    pub kind: ChangeKind,
    pub before: Option<Record>,
    pub after: Option<Record>,
}

impl Change {
    pub fn model(&self) -> &'static Model {
        self.after
            .as_ref()
            .or(self.before.as_ref())
            .map(|r| r.model)
            .expect("a change has a record")
    }
}

/// `humanReadableName`: the model's display template filled from the record (the API shows it,
/// the change log and delete messages name objects by it).
pub fn human_readable_name(rec: &Record) -> String {
    rec.model.display_with(|key| match rec.try_get(key) {
        Some(Value::Text(s)) => Some(s.clone()),
        Some(Value::Null(_)) | None => None,
        Some(v) => Some(v.to_json().to_string()),
    })
}

/// `s` as a lowercase SQL identifier or file name part: every other character becomes `_`.
pub(crate) fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}
