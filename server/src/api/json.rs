//! Objects as the API shows them: `humanReadableName`, `validators`, `id`, then every readable
//! field; foreign keys as hyperlinks (`http://host/xos/sites/1/`) or, with `?no_hyperlinks=1`,
//! as integer ids. Write-only and internal fields never appear.

use crate::db::Value;
use crate::store::Record;
use crate::store::m2m::M2mValues;
use app::registry::Registry;
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// How foreign keys are rendered.
#[derive(Clone, Debug)]
pub enum Links {
    /// Integer ids (`?no_hyperlinks=1`, what xoslib always asks for).
    Ids,
    /// Hyperlinks under this base (`http://host:port`).
    Hyperlinks(String),
}

/// The object's readable fields with foreign keys as ids (for templates and names).
pub fn plain_map(rec: &Record) -> Map<String, Json> {
    let mut m = Map::new();
    for (f, v) in rec.model.fields.iter().zip(&rec.values) {
        if f.is_readable() {
            m.insert(f.name.clone(), v.to_json());
        }
    }
    m
}

/// The model's `validators` map as JSON text, built once per model.
fn validators_json(model: &app::registry::Model) -> std::sync::Arc<str> {
    static CACHE: OnceLock<Mutex<HashMap<String, std::sync::Arc<str>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut map = cache.lock().expect("validators cache");
    map.entry(model.name.clone())
        .or_insert_with(|| {
            serde_json::to_string(&model.validators())
                .unwrap_or_else(|_| "{}".into())
                .into()
        })
        .clone()
}

/// `humanReadableName`: the model's display template filled from the record's values.
pub use crate::store::human_readable_name;

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    use std::io::Write as _;
    match v {
        Value::Null(_) => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, f);
        }
        Value::Float(_) => out.extend_from_slice(b"null"),
        Value::Text(s) => write_str(out, s),
        Value::Time(t) => {
            out.push(b'"');
            out.extend_from_slice(crate::db::format_time(t).as_bytes());
            out.push(b'"');
        }
    }
}

/// Write the object as the API returns it (compact JSON): the one serializer of objects, so
/// lists, single objects and extensions agree byte for byte.
pub fn write_record(out: &mut Vec<u8>, reg: &Registry, rec: &Record, links: &Links, m2m: &M2mValues) {
    let model = rec.model;
    out.extend_from_slice(b"{\"humanReadableName\":");
    write_str(out, &human_readable_name(rec));
    out.extend_from_slice(b",\"validators\":");
    out.extend_from_slice(validators_json(model).as_bytes());
    for (f, v) in model.fields.iter().zip(&rec.values) {
        if !f.is_readable() {
            continue;
        }
        out.push(b',');
        write_str(out, &f.name);
        out.push(b':');
        match (f.fk_target(), v, links) {
            (Some(to), Value::Int(id), Links::Hyperlinks(base)) => {
                let plural = reg.model(to).map(|t| t.plural.as_str()).unwrap_or("");
                write_str(out, &format!("{base}/xos/{plural}/{id}/"));
            }
            _ => write_value(out, v),
        }
    }
    let id = rec.id();
    for (name, values) in m2m {
        let Some(relation) = model.many_to_many.iter().find(|r| &r.name == name) else {
            continue;
        };
        out.push(b',');
        write_str(out, name);
        out.extend_from_slice(b":[");
        let plural = reg.model(&relation.to).map(|t| t.plural.as_str()).unwrap_or("");
        for (i, t) in values
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            if i > 0 {
                out.push(b',');
            }
            match links {
                Links::Ids => write_value(out, &Value::Int(*t)),
                Links::Hyperlinks(base) => write_str(out, &format!("{base}/xos/{plural}/{t}/")),
            }
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// The object as a JSON value (for extensions that add to it).
pub fn render(reg: &Registry, rec: &Record, links: &Links, m2m: &M2mValues) -> Json {
    let mut out = Vec::with_capacity(1024);
    write_record(&mut out, reg, rec, links, m2m);
    serde_json::from_slice(&out).unwrap_or(Json::Null)
}
