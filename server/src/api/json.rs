//! Objects as the API shows them: `humanReadableName`, `validators`, `id`, then every readable
//! field; foreign keys as hyperlinks (`http://host/xos/sites/1/`) or, with `?no_hyperlinks=1`,
//! as integer ids. Write-only and internal fields never appear.

use crate::db::Value;
use crate::store::Record;
use crate::store::m2m::M2mValues;
use app::registry::Registry;
use serde_json::{Map, Value as Json};

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

/// The object as the API returns it; `m2m` holds its many-to-many ids (see `Store::m2m_values`).
pub fn render(reg: &Registry, rec: &Record, links: &Links, m2m: &M2mValues) -> Json {
    let model = rec.model;
    let mut m = Map::with_capacity(model.fields.len() + 2);
    let plain = plain_map(rec);
    m.insert(
        "humanReadableName".into(),
        Json::String(model.human_readable_name(&plain)),
    );
    m.insert("validators".into(), Json::Object(model.validators()));
    for (f, v) in model.fields.iter().zip(&rec.values) {
        if !f.is_readable() {
            continue;
        }
        let out = match (f.fk_target(), v, links) {
            (Some(to), Value::Int(id), Links::Hyperlinks(base)) => {
                let plural = reg.model(to).map(|t| t.plural.as_str()).unwrap_or("");
                Json::String(format!("{base}/xos/{plural}/{id}/"))
            }
            _ => v.to_json(),
        };
        m.insert(f.name.clone(), out);
    }
    let id = rec.id();
    for (name, values) in m2m {
        let Some(relation) = model.many_to_many.iter().find(|r| &r.name == name) else {
            continue;
        };
        let ids = values.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        let plural = reg.model(&relation.to).map(|t| t.plural.as_str()).unwrap_or("");
        let items = ids
            .iter()
            .map(|t| match links {
                Links::Ids => Json::from(*t),
                Links::Hyperlinks(base) => Json::String(format!("{base}/xos/{plural}/{t}/")),
            })
            .collect();
        m.insert(name.clone(), Json::Array(items));
    }
    Json::Object(m)
}
