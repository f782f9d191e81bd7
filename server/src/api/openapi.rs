//! The OpenAPI 3.0 document of the API (`/openapi.json`), generated from the registry: every
//! path, a read schema and a write schema per model (types, lengths, choices, required fields,
//! verbose names as titles, help text as descriptions), the error shapes, the query parameters
//! and the three ways to authenticate. `/docs/` renders it with a vendored Swagger UI.

use crate::state::AppState;
use app::registry::{Field, FieldKind, Model, Registry};
use axum::Json as AxumJson;
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use serde_json::{Map, Value as Json, json};

/// `GET /openapi.json`.
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    AxumJson(document(state.store.registry(), &|m| state.store.is_loaded(m)))
}

/// `GET /docs/`: the API reference, rendered in the browser by Swagger UI (served from our own
/// `/vendor/`, never a CDN).
pub async fn docs_page() -> Html<&'static str> {
    Html(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>XOS REST API</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/vendor/swagger-ui/swagger-ui.css">
<style>body { margin: 0; } .topbar { display: none; }</style>
</head>
<body>
<main id="swagger-ui" aria-label="XOS REST API reference"></main>
<script src="/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"#,
    )
}

/// The page's start-up script (a file of its own, so the page needs no inline script).
pub async fn docs_init() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/javascript")],
        "window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n",
    )
}

fn field_schema(reg: &Registry, f: &Field, write: bool) -> Json {
    let mut s = Map::new();
    let (ty, format): (&str, Option<&str>) = match &f.kind {
        FieldKind::AutoId | FieldKind::Integer | FieldKind::PositiveInteger => ("integer", Some("int64")),
        FieldKind::Boolean | FieldKind::NullBoolean => ("boolean", None),
        FieldKind::Float => ("number", Some("double")),
        FieldKind::DateTime { .. } => ("string", Some("date-time")),
        FieldKind::Email { .. } => ("string", Some("email")),
        FieldKind::Url { .. } => ("string", Some("uri")),
        FieldKind::GenericIpAddress => ("string", Some("ip")),
        FieldKind::Password => ("string", Some("password")),
        FieldKind::Char { .. } | FieldKind::Text { .. } | FieldKind::Slug { .. } => ("string", None),
        FieldKind::ForeignKey { to, .. } => {
            let target = reg.model(to).map(|m| m.plural.as_str()).unwrap_or("");
            let mut any = json!({
                "anyOf": [
                    {"type": "integer", "format": "int64", "description": "an id"},
                    {"type": "string", "description": format!("a hyperlink like http://host/xos/{target}/1/")}
                ]
            });
            let m = any.as_object_mut().expect("object");
            m.insert("title".into(), Json::String(f.verbose_name.clone()));
            if !f.help_text.is_empty() {
                m.insert("description".into(), Json::String(f.help_text.clone()));
            }
            if f.null {
                m.insert("nullable".into(), Json::Bool(true));
            }
            return any;
        }
    };
    s.insert("type".into(), Json::String(ty.into()));
    if let Some(fmt) =
        format.filter(|_| write || !matches!(f.kind, FieldKind::Url { .. } | FieldKind::Email { .. }))
    {
        s.insert("format".into(), Json::String(fmt.into()));
    }
    s.insert("title".into(), Json::String(f.verbose_name.clone()));
    if !f.help_text.is_empty() {
        s.insert("description".into(), Json::String(f.help_text.clone()));
    }
    if f.null {
        s.insert("nullable".into(), Json::Bool(true));
    }
    if write {
        if let Some(max) = f.kind.max_length() {
            s.insert("maxLength".into(), Json::from(max));
        }
        if !f.blank && ty == "string" {
            s.insert("minLength".into(), Json::from(1));
        }
        if !f.choices.is_empty() {
            let mut values: Vec<Json> = f.choices.iter().map(|c| Json::String(c.value.clone())).collect();
            if f.null {
                values.push(Json::Null);
            }
            s.insert("enum".into(), Json::Array(values));
        }
        if matches!(f.kind, FieldKind::PositiveInteger) {
            s.insert("minimum".into(), Json::from(0));
        }
        if matches!(f.kind, FieldKind::Integer | FieldKind::PositiveInteger) {
            s.insert("maximum".into(), Json::from(i64::MAX));
        }
    } else if !f.editable || f.hidden {
        s.insert("readOnly".into(), Json::Bool(true));
    }
    Json::Object(s)
}

/// The schema of an object as the API returns it.
fn read_schema(reg: &Registry, m: &Model) -> Json {
    let mut props = Map::new();
    props.insert(
        "humanReadableName".into(),
        json!({"type": "string", "readOnly": true}),
    );
    props.insert(
        "validators".into(),
        json!({"type": "object", "readOnly": true, "additionalProperties": {"type": "array", "items": {"type": "string"}}}),
    );
    for f in m.readable_fields() {
        props.insert(f.name.clone(), field_schema(reg, f, false));
    }
    for r in &m.many_to_many {
        props.insert(
            r.name.clone(),
            json!({"type": "array", "items": {"anyOf": [{"type": "integer"}, {"type": "string"}]}, "title": r.verbose_name}),
        );
    }
    let required: Vec<Json> = props.keys().map(|k| Json::String(k.clone())).collect();
    json!({"type": "object", "title": m.verbose_name, "description": m.help_text, "properties": props, "required": required})
}

/// The schema of a create (`required` set) or update body.
fn write_schema(reg: &Registry, m: &Model, create: bool) -> Json {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in m.fields.iter().filter(|f| f.is_writable()) {
        props.insert(f.name.clone(), field_schema(reg, f, true));
        if create && f.is_required() {
            required.push(Json::String(f.name.clone()));
        }
    }
    for r in &m.many_to_many {
        props.insert(
            r.name.clone(),
            json!({"type": "array", "items": {"type": "integer", "format": "int64"}, "title": r.verbose_name, "description": format!("ids of {} (through {})", r.to, r.through)}),
        );
    }
    let mut s = json!({"type": "object", "properties": props, "additionalProperties": false});
    if !required.is_empty() {
        s["required"] = Json::Array(required);
    }
    s
}

/// The error answers of an operation: the given codes, plus those any request may get (400 for
/// a Host this server does not answer to, 429 for a throttled login, 503 when the request timed
/// out).
fn error_responses(codes: &[&str]) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert(
        "503".into(),
        json!({"description": "The request did not finish within the server's request timeout"}),
    );
    for code in codes.iter().chain(&["400", "429"]) {
        let (desc, schema) = match *code {
            "400" => (
                "Invalid input: messages per field, or a detail for a body that is not JSON or a \
                 Host header this server does not answer to",
                "#/components/schemas/BadRequest",
            ),
            "429" => (
                "Too many failed logins from this address (see Retry-After)",
                "#/components/schemas/Detail",
            ),
            "401" => (
                "Authentication credentials were not provided or are wrong",
                "#/components/schemas/Detail",
            ),
            "403" => ("Permission denied", "#/components/schemas/Detail"),
            "404" => (
                "Not found (or not visible to the caller)",
                "#/components/schemas/Detail",
            ),
            "409" => (
                "Conflict: the object is protected or write-protected, or the write would remove \
                 a relation that protected objects still use",
                "#/components/schemas/Detail",
            ),
            "413" => ("Request body too large", "#/components/schemas/Detail"),
            "415" => ("Unsupported media type", "#/components/schemas/Detail"),
            _ => continue,
        };
        m.insert(
            (*code).into(),
            json!({"description": desc, "content": {"application/json": {"schema": {"$ref": schema}}}}),
        );
    }
    m
}

fn ok(desc: &str, schema: Json) -> Json {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn query_param(name: &str, desc: &str, schema: Json) -> Json {
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": schema})
}

/// The whole document.
pub fn document(reg: &Registry, loaded: &dyn Fn(&Model) -> bool) -> Json {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "FieldErrors".into(),
        json!({"type": "object", "description": "Field name (or non_field_errors) → messages", "additionalProperties": {"type": "array", "items": {"type": "string"}}}),
    );
    schemas.insert(
        "BadRequest".into(),
        json!({"anyOf": [{"$ref": "#/components/schemas/FieldErrors"}, {"$ref": "#/components/schemas/Detail"}]}),
    );
    schemas.insert(
        "Detail".into(),
        json!({"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}),
    );
    let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX}});
    let links = query_param(
        "no_hyperlinks",
        "1: foreign keys as ids instead of hyperlinks",
        json!({"type": "integer", "enum": [0, 1]}),
    );
    for m in reg.models.iter().filter(|m| loaded(m)) {
        let name = &m.name;
        schemas.insert(name.clone(), read_schema(reg, m));
        schemas.insert(format!("{name}Create"), write_schema(reg, m, true));
        schemas.insert(format!("{name}Update"), write_schema(reg, m, false));
        let one = json!({"$ref": format!("#/components/schemas/{name}")});
        let mut list_params = vec![
            links.clone(),
            query_param(
                "limit",
                "page size (the total is in X-Total-Count); at most 10000",
                json!({"type": "integer", "minimum": 0, "maximum": crate::store::MAX_PAGE}),
            ),
            query_param(
                "offset",
                "rows to skip",
                json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
            ),
            query_param(
                "ordering",
                "field to order by; -field for descending",
                json!({"type": "string", "enum": ordering_values(m)}),
            ),
            query_param(
                "search",
                &format!("text to look for in {}", m.search_fields.join(", ")),
                json!({"type": "string", "maxLength": crate::store::MAX_FILTER_CHARS}),
            ),
        ];
        for f in m
            .readable_fields()
            .filter(|f| !matches!(f.kind, FieldKind::DateTime { .. }))
        {
            let schema = match field_schema(reg, f, true) {
                s if f.fk_target().is_some() => {
                    let _ = s;
                    json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX})
                }
                mut s => {
                    if let Some(o) = s.as_object_mut() {
                        o.remove("nullable");
                        o.remove("title");
                        o.remove("description");
                        if let Some(Json::Array(e)) = o.get_mut("enum") {
                            e.retain(|v| !v.is_null());
                        }
                        if o.get("type").and_then(Json::as_str) == Some("string") {
                            let max = o
                                .get("maxLength")
                                .and_then(Json::as_u64)
                                .map_or(crate::store::MAX_FILTER_CHARS as u64, |n| {
                                    n.min(crate::store::MAX_FILTER_CHARS as u64)
                                });
                            o.insert("maxLength".into(), max.into());
                        }
                    }
                    s
                }
            };
            list_params.push(query_param(
                &f.name,
                &format!("only objects whose {} equals this", f.name),
                schema,
            ));
        }
        let list_resp = {
            let mut r = ok(
                &format!("The {} the caller may see", m.verbose_name_plural),
                json!({"type": "array", "items": one}),
            );
            r["headers"] = json!({"X-Total-Count": {"description": "total before limit/offset (with limit or offset)", "schema": {"type": "integer"}}});
            r
        };
        let mut list_responses = error_responses(&["400", "401"]);
        list_responses.insert("200".into(), list_resp);
        let mut create_responses = error_responses(&["400", "401", "403", "409", "413", "415"]);
        create_responses.insert(
            "201".into(),
            ok(&format!("The new {}", m.verbose_name), one.clone()),
        );
        let body = |schema: &str| json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}{schema}")}}}});
        let tag = json!([m.verbose_name_plural]);
        paths.insert(
            format!("/xos/{}/", m.plural),
            json!({
                "get": {"tags": tag, "summary": format!("List {}", m.verbose_name_plural), "description": m.help_text,
                        "operationId": format!("list{name}"), "parameters": list_params, "responses": list_responses},
                "post": {"tags": tag, "summary": format!("Create a {}", m.verbose_name), "operationId": format!("create{name}"),
                         "parameters": [links], "requestBody": body("Create"), "responses": create_responses},
            }),
        );
        let mut get_responses = error_responses(&["401", "404"]);
        get_responses.insert("200".into(), ok(&format!("The {}", m.verbose_name), one.clone()));
        let mut update_responses = error_responses(&["400", "401", "403", "404", "409", "413", "415"]);
        update_responses.insert(
            "200".into(),
            ok(&format!("The changed {}", m.verbose_name), one.clone()),
        );
        let mut delete_responses = error_responses(&["401", "403", "404", "409"]);
        delete_responses.insert("204".into(), json!({"description": "Deleted"}));
        paths.insert(
            format!("/xos/{}/{{id}}/", m.plural),
            json!({
                "parameters": [id_param],
                "get": {"tags": tag, "summary": format!("Get a {}", m.verbose_name), "operationId": format!("get{name}"),
                        "parameters": [links], "responses": get_responses},
                "put": {"tags": tag, "summary": format!("Replace a {} (required fields must be given)", m.verbose_name),
                        "operationId": format!("replace{name}"), "parameters": [links], "requestBody": body("Create"), "responses": update_responses},
                "patch": {"tags": tag, "summary": format!("Change some fields of a {}", m.verbose_name),
                          "operationId": format!("update{name}"), "parameters": [links], "requestBody": body("Update"), "responses": update_responses},
                "delete": {"tags": tag, "summary": format!("Delete a {}", m.verbose_name), "operationId": format!("delete{name}"),
                           "responses": delete_responses},
            }),
        );
    }
    let mut plus_responses = error_responses(&["400", "401"]);
    plus_responses.insert(
        "200".into(),
        ok(
            "Slices with their figures (see docs/extending-the-api.md)",
            json!({"type": "array", "items": {"type": "object"}}),
        ),
    );
    paths.insert(
        "/xoslib/slicesplus/".into(),
        json!({"get": {"tags": ["xoslib"], "summary": "Slices with instance and site counts and the caller's roles",
                       "operationId": "listSlicePlus", "responses": plus_responses}}),
    );
    let mut tv_responses = error_responses(&["401"]);
    tv_responses.insert(
        "200".into(),
        ok("What the Tenant dashboard needs", json!({"type": "object"})),
    );
    paths.insert(
        "/xoslib/tenantview/".into(),
        json!({"get": {"tags": ["xoslib"], "summary": "Blessed deployments, sites, images and flavors; the caller's site",
                       "operationId": "getTenantView", "responses": tv_responses}}),
    );
    operations_paths(&mut paths, &mut schemas);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "XOS REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Generated from the XOS model registry. Lists are plain JSON arrays; foreign keys are hyperlinks unless ?no_hyperlinks=1; errors are {\"field\": [\"message\"]} (400) or {\"detail\": \"…\"}. Services (HelloWorld, HPC, Request Router, Syndicate storage, …) add their models when a configuration loads them. Out of scope for now: billing, CORD subscriber models, reservations, credentials, routers, network parameters, projects/programs."
        },
        "servers": [{"url": "/"}],
        "security": [{"basicAuth": []}, {"tokenAuth": []}, {"sessionCookie": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basicAuth": {"type": "http", "scheme": "basic"},
                "tokenAuth": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Authorization: Token <key>"},
                "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "sessionid", "description": "Browser session; writes also need the X-CSRFToken header"}
            }
        }
    })
}

/// The change log and the operations endpoints.
fn operations_paths(paths: &mut Map<String, Json>, schemas: &mut Map<String, Json>) {
    use crate::store::changelog::MAX_LIMIT;
    schemas.insert(
        "Change".into(),
        json!({"type": "object", "required": ["id", "at", "actor", "model", "object_id", "kind", "changes"], "properties": {
            "id": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "user": {"type": "integer", "nullable": true, "description": "the user's id; null for the system"},
            "actor": {"type": "string", "description": "the user's email when the change was made, or \"system\""},
            "model": {"type": "string"},
            "object_id": {"type": "integer"},
            "kind": {"type": "string", "enum": ["create", "update", "delete"]},
            "changes": {"type": "object", "additionalProperties": {"type": "object", "properties": {"old": {}, "new": {}}}}
        }}),
    );
    let mut changes = error_responses(&["400", "401"]);
    let mut list = ok(
        "Change log entries, newest first",
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Change"}}),
    );
    list["headers"] =
        json!({"X-Total-Count": {"description": "entries matching", "schema": {"type": "integer"}}});
    changes.insert("200".into(), list);
    let int = json!({"type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX});
    let time = json!({"type": "string", "format": "date-time"});
    paths.insert(
        "/xos/changes/".into(),
        json!({"get": {"tags": ["operations"], "summary": "The change log (admins: every entry; others: objects they may read)",
            "operationId": "listChanges", "responses": changes, "parameters": [
                query_param("model", "model name or collection", json!({"type": "string", "maxLength": 64})),
                query_param("object", "object id", int.clone()),
                query_param("user", "user id", int.clone()),
                query_param("kind", "kind of change", json!({"type": "string", "enum": ["create", "update", "delete"]})),
                query_param("since", "at or after", time.clone()),
                query_param("until", "before", time),
                query_param("limit", "entries per page (100 by default)", json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT})),
                query_param("offset", "entries to skip", int),
            ]}}),
    );
    let probe = |desc: &str| json!({"description": desc, "content": {"application/json": {"schema": {"type": "object"}}}});
    paths.insert(
        "/healthz".into(),
        json!({"get": {"tags": ["operations"], "summary": "The process answers", "operationId": "healthz", "security": [],
            "responses": {"200": probe("Alive")}}}),
    );
    paths.insert(
        "/readyz".into(),
        json!({"get": {"tags": ["operations"], "summary": "The database answers and its migrations are current", "operationId": "readyz", "security": [],
            "responses": {"200": probe("Ready"), "503": probe("Not ready, and why")}}}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {"tags": ["operations"], "summary": "Prometheus metrics (OpenMetrics text)", "operationId": "metrics", "security": [],
            "responses": {"200": {"description": "Metrics", "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}},
                          "403": {"description": "Not a client on this machine, and no metrics token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}}}}}),
    );
}

fn ordering_values(m: &Model) -> Vec<Json> {
    m.readable_fields()
        .flat_map(|f| [Json::String(f.name.clone()), Json::String(format!("-{}", f.name))])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_has_its_paths_and_schemas() {
        let reg = app::registry::registry();
        let doc = document(reg, &|_| true);
        for m in &reg.models {
            assert!(
                doc["paths"][format!("/xos/{}/", m.plural)]["get"].is_object(),
                "{}",
                m.plural
            );
            assert!(
                doc["paths"][format!("/xos/{}/{{id}}/", m.plural)]["delete"].is_object(),
                "{}",
                m.plural
            );
            assert!(
                doc["components"]["schemas"][&m.name]["properties"]["id"].is_object(),
                "{}",
                m.name
            );
        }
        let slice = &doc["components"]["schemas"]["SliceCreate"];
        assert_eq!(slice["properties"]["name"]["maxLength"], 80);
        assert_eq!(slice["properties"]["max_instances"]["minimum"], 0);
        assert!(slice["required"].as_array().unwrap().contains(&json!("site")));
        let user = &doc["components"]["schemas"]["User"]["properties"];
        assert!(user.get("password").is_none(), "write-only fields are not read");
        assert_eq!(
            doc["components"]["schemas"]["Site"]["properties"]["login_base"]["title"],
            "Login Base"
        );
    }
}
