//! TOSCA over HTTP (`/api/utility/tosca/run/`), and the recipes of the configurations, which take
//! the services' node types. Recipes parsed, checked and applied through the store (every core
//! node type, every kind of problem, the directives, the user's permissions) are the `tosca`
//! crate's tests (`tosca/tests/`), which need neither the server nor the services.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::TestApp;
use serde_json::{Value, json};
use server::tosca::{self, Source};

fn source(text: &str) -> Source {
    Source {
        name: "r.yaml".into(),
        text: text.to_string(),
    }
}

async fn one(app: &TestApp, path: &str) -> Value {
    let (s, v) = app.get(path).await;
    assert_eq!(s, StatusCode::OK, "{path}: {v}");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{path}: {v}");
    v[0].clone()
}

const HEAD: &str =
    "tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n";

fn yaml_request(path: &str, who: (&str, &str), body: &str) -> Request<Body> {
    let mut req = common::build(Method::POST, path, Some(who), None);
    *req.body_mut() = Body::from(body.to_string());
    req.headers_mut()
        .insert(header::CONTENT_TYPE, "application/x-yaml".parse().unwrap());
    req
}

both!(
    the_http_endpoint_runs_recipes_for_admins,
    async |app: &TestApp| {
        let recipe = format!(
            "{HEAD}    api-image:\n      type: tosca.nodes.Image\n      properties:\n        disk_format: raw\n        container_format: bare\n"
        );
        let path = "/api/utility/tosca/run/";
        // Dry run: the plan, nothing written.
        let (s, v) = app.post(path, json!({"recipe": recipe, "dry_run": true})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["entries"][0]["action"], "create");
        assert_eq!(v["dry_run"], true);
        let (_, images) = app.get("/xos/images/?name=api-image").await;
        assert_eq!(images, json!([]));
        // Apply, then again as YAML: unchanged.
        let (s, v) = app.post(path, json!({"recipe": recipe})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        one(app, "/xos/images/?name=api-image").await;
        let (s, _, v) = app.call(yaml_request(path, common::ADMIN, &recipe)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["entries"][0]["action"], "unchanged");
        // Delete.
        let (s, v) = app
            .post(path, json!({"recipe": recipe, "action": "delete"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["entries"][0]["action"], "delete");
        // A bad recipe: 400 with every problem located.
        let (s, v) = app
            .post(
                path,
                json!({"recipe": format!("{HEAD}    w:\n      type: tosca.nodes.Widget\n")}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["errors"][0]["line"], 5);
        assert_eq!(v["errors"][0]["node"], "w");
        // Bad requests.
        let (s, v) = app.post(path, json!({})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["recipe"].is_array(), "{v}");
        let (s, v) = app
            .post(path, json!({"recipe": recipe, "action": "explode"}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        // Not an admin: 403; anonymous: 401.
        app.make_user("plain@example.org", "pw-plain-123").await;
        let (s, _) = app
            .req(
                Method::POST,
                path,
                Some(("plain@example.org", "pw-plain-123")),
                Some(json!({"recipe": recipe})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .req(Method::POST, path, None, Some(json!({"recipe": recipe})))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
);

/// The ordinary recipes of the configurations parse with the registry of every service: far
/// from the nesting limit (`tosca` crate: `a_deeply_nested_recipe_is_refused_…`).
#[test]
fn the_configurations_recipes_parse() {
    for f in [
        "configurations/devel/recipes/devel.yaml",
        "configurations/devel/recipes/helloworld.yaml",
    ] {
        let text = std::fs::read_to_string(format!("{}/../{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let parsed = tosca::parse(app::registry::registry(), &[source(&text)]);
        assert!(parsed.is_ok(), "{f}: {:?}", parsed.err());
    }
}
