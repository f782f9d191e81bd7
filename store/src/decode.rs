//! Decoding API-shaped JSON into a draft row: pure (no database), so the fuzz target drives it.

use crate::db::Value;
use crate::{FieldErrors, Record, StoreError, m2m, validate};
use chrono::Utc;
use registry::{FieldKind, Model, Registry, SqlType};

pub(crate) fn merge_errors(into: &mut FieldErrors, from: FieldErrors) {
    for (k, v) in from {
        into.entry(k).or_default().extend(v);
    }
}

/// Decode API-shaped JSON input into a draft row: each known field parsed by its kind, unknown
/// fields and (with `full`, a PUT or a create) missing required ones as field errors. Returns
/// the indexes of the fields set. `system` may also set non-editable fields (a token's key hash,
/// backend ids). Pure: no database, so the fuzz target drives it directly.
pub fn decode_input(
    reg: &registry::Registry,
    model: &'static Model,
    input: &serde_json::Map<String, serde_json::Value>,
    draft: &mut [Option<Value>],
    full: bool,
    system: bool,
) -> Result<Vec<usize>, StoreError> {
    let mut errors = FieldErrors::new();
    let changed = decode_fields(reg, model, input, draft, full, system, &mut errors);
    if errors.is_empty() {
        Ok(changed)
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// [`decode_input`], adding to `errors` instead of failing, so one answer names every bad field.
pub(crate) fn decode_fields(
    reg: &registry::Registry,
    model: &'static Model,
    input: &serde_json::Map<String, serde_json::Value>,
    draft: &mut [Option<Value>],
    full: bool,
    system: bool,
    errors: &mut FieldErrors,
) -> Vec<usize> {
    let mut changed = Vec::new();
    for (key, v) in input {
        match model.fields.iter().position(|f| &f.name == key) {
            Some(i) if model.fields[i].is_writable() || (system && !model.fields[i].hidden && i > 0) => {
                match validate::parse_value(reg, &model.fields[i], v) {
                    Ok(val) => {
                        draft[i] = Some(val);
                        changed.push(i);
                    }
                    Err(m) => errors.entry(key.clone()).or_default().push(m),
                }
            }
            // A backend-owned field: its current value may come back (a client saving what it
            // read), a different one may not.
            Some(i) if model.fields[i].backend => {
                let f = &model.fields[i];
                let same = match validate::parse_value(reg, f, v) {
                    Ok(val) => match &draft[i] {
                        Some(current) => same_backend_value(current, &val),
                        None => matches!(val, Value::Null(_)),
                    },
                    Err(_) => false,
                };
                if !same {
                    errors.entry(key.clone()).or_default().push(BACKEND_OWNED.into());
                }
            }
            Some(i) if !model.fields[i].hidden => {} // read-only fields the API emits
            _ if is_emitted_key(reg, model, key) => {}
            _ => errors
                .entry(key.clone())
                .or_default()
                .push("Unknown field.".into()),
        }
    }
    if full {
        for f in &model.fields {
            if f.is_required() && !input.contains_key(&f.name) && !f.secret {
                errors
                    .entry(f.name.clone())
                    .or_default()
                    .push("This field is required.".into());
            }
        }
    }
    changed
}

/// The message of a write that changes a backend-owned field.
pub const BACKEND_OWNED: &str =
    "This field is set by the synchronizer from the backend and cannot be changed.";

/// Whether a value sent for a backend-owned field is the one it holds (an empty text and no
/// value are the same: the API shows an unset optional text either way).
fn same_backend_value(current: &Value, sent: &Value) -> bool {
    let blank = |v: &Value| match v {
        Value::Null(_) => true,
        Value::Text(t) => t.is_empty(),
        _ => false,
    };
    current == sent || (blank(current) && blank(sent))
}

/// Decode a whole API body for `model` the way a create does before it reaches the database:
/// many-to-many keys split off, defaults, each field parsed and checked. The fuzz target's entry
/// to the generic model layer; field errors as the API would report them.
pub fn decode_body(
    model: &'static Model,
    input: &serde_json::Map<String, serde_json::Value>,
    full: bool,
) -> Result<Vec<Value>, StoreError> {
    let (input, _m2m) = m2m::take_m2m(model, input)?;
    let mut draft = validate::defaults(model, Utc::now());
    decode_input(registry::registry(), model, &input, &mut draft, full, false)?;
    let mut errors = FieldErrors::new();
    let values = finish_draft(model, draft, None, &mut errors);
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(StoreError::Invalid(errors))
    }
}

/// Check required fields and every field's value (messages go to `errors`); produce the row.
pub(crate) fn finish_draft(
    model: &'static Model,
    draft: Vec<Option<Value>>,
    before: Option<&Record>,
    errors: &mut FieldErrors,
) -> Vec<Value> {
    let mut values = Vec::with_capacity(draft.len());
    for (f, v) in model.fields.iter().zip(draft) {
        let reported = errors.contains_key(&f.name);
        match v {
            Some(v) if reported => values.push(v),
            None if reported => values.push(Value::Null(f.kind.sql_type())),
            Some(v) => {
                if !matches!(f.kind, FieldKind::AutoId) && (before.is_none() || f.is_writable()) {
                    validate::check_field(f, &v, errors);
                }
                values.push(v);
            }
            None if matches!(f.kind, FieldKind::AutoId) => values.push(Value::Null(SqlType::Int)),
            None => {
                errors
                    .entry(f.name.clone())
                    .or_default()
                    .push("This field is required.".into());
                values.push(Value::Null(f.kind.sql_type()));
            }
        }
    }
    values
}

/// Keys the API itself emits that a client may send back: ignored on write.
fn is_emitted_key(reg: &Registry, model: &Model, key: &str) -> bool {
    matches!(key, "humanReadableName" | "validators" | "id")
        || reg.models.iter().any(|m| {
            m.many_to_many
                .iter()
                .any(|r| r.to == model.name && r.related_name == key)
        })
        || reg.referrers(&model.name).any(
            |(_, f)| matches!(&f.kind, FieldKind::ForeignKey { related_name, .. } if related_name == key),
        )
}
