//! The HelloWorld service: a tenant loaded by TOSCA is enacted as a loopback HTTP server that
//! serves its message; a new message is served after the next pass (same port); deleting the
//! tenant stops the server.

use crate::common;

use axum::http::StatusCode;
use common::TestApp;
use serde_json::{Value, json};
use server::store::Actor;
use server::sync::engine::{Engine, EngineOptions};
use server::sync::{StepContext, local};
use server::tosca::{self, Mode, Source};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

struct State(PathBuf);

impl Drop for State {
    fn drop(&mut self) {
        local::stop_all(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const RECIPE: &str = include_str!("../../../configurations/devel/recipes/helloworld.yaml");

/// The devel configuration's HelloWorld recipe, parsed.
fn devel_recipe() -> tosca::Recipe {
    tosca::parse(
        app::registry::registry(),
        &[Source {
            name: "helloworld.yaml".into(),
            text: RECIPE.into(),
        }],
    )
    .expect("recipe parses")
}

async fn engine(app: &TestApp, state: &State) -> Engine {
    let mut ctx = StepContext::new(app.store.clone(), state.0.clone());
    ctx.xos_binary = env!("CARGO_BIN_EXE_xos").into();
    let mut steps = local::steps(&ctx, Duration::ZERO);
    steps.extend(server::services::steps("helloworld", &ctx));
    let opts = EngineOptions {
        backoff_base: Duration::from_millis(200),
        ..Default::default()
    };
    Engine::new(ctx, steps, opts).await.unwrap()
}

/// GET / on a loopback port: the body, or None when nothing answers.
fn fetch(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.trim_end().to_string())
}

async fn tenant(app: &TestApp) -> Value {
    let (s, v) = app
        .get("/xos/helloworldtenants/?name=hello-tenant&no_hyperlinks=1")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v[0].clone()
}

both!(
    tenants_serve_their_message_until_deleted,
    async |app: &TestApp| {
        let state =
            State(std::env::temp_dir().join(format!("xos-hello-{}-{:?}", std::process::id(), app.backend)));
        let _ = std::fs::remove_dir_all(&state.0);
        let recipe = devel_recipe();
        let plan = tosca::run(&app.store, Actor::System, &recipe, Mode::Apply, false)
            .await
            .expect("apply");
        assert!(
            plan.iter()
                .any(|e| e.node == "hello-tenant" && e.action.as_str() == "create")
        );
        let e = engine(app, &state).await;

        let r = e.run_once().await.unwrap();
        assert_eq!(r.enacted, 1, "{r:?}");
        let t = tenant(app).await;
        let port = t["port"].as_u64().expect("port recorded") as u16;
        assert!(
            t["backend_status"]
                .as_str()
                .unwrap()
                .starts_with("1 - OK, serving on"),
            "{t}"
        );
        assert_eq!(fetch(port).as_deref(), Some("Hello World!"));

        // A new message is served on the same port after the next pass.
        let (s, v) = app
            .patch(
                &format!("/xos/helloworldtenants/{}/", t["id"]),
                json!({"display_message": "Bonjour le monde"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let r = e.run_once().await.unwrap();
        assert_eq!(r.enacted, 1, "{r:?}");
        let t2 = tenant(app).await;
        assert_eq!(t2["port"], t["port"]);
        assert_ne!(t2["pid"], t["pid"], "restarted");
        assert_eq!(fetch(port).as_deref(), Some("Bonjour le monde"));
        assert_eq!(local::running_of(&state.0, "helloworld").len(), 1);

        // Nothing changed: nothing to do, still serving.
        let r = e.run_once().await.unwrap();
        assert_eq!(r.enacted, 0, "{r:?}");
        assert_eq!(fetch(port).as_deref(), Some("Bonjour le monde"));

        // Deleting the tenant stops its server and purges the row.
        let (s, v) = app.delete(&format!("/xos/helloworldtenants/{}/", t["id"])).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        e.run_once().await.unwrap();
        assert_eq!(fetch(port), None, "still serving after the delete");
        assert!(local::running_of(&state.0, "helloworld").is_empty());
        assert_eq!(app.count("helloworld_helloworldtenant").await, 0, "purged");
    }
);

/// Create an object through the API (201 expected) and return it.
async fn created(app: &TestApp, plural: &str, body: Value) -> Value {
    let (s, v) = app.post(&format!("/xos/{plural}/?no_hyperlinks=1"), body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

both!(bad_tenants_are_refused, async |app: &TestApp| {
    let v = created(
        app,
        "helloworldservices",
        json!({"name": "hw", "versionNumber": "1.0"}),
    )
    .await;
    let hw = v["id"].as_i64().unwrap();
    let (s, v) = app
        .post(
            "/xos/helloworldtenants/",
            json!({"name": "t", "display_message": "x".repeat(300)}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["provider_service"].is_array() && v["display_message"].is_array(),
        "{v}"
    );
    // A plain Service is not a HelloWorld service.
    let v = created(app, "services", json!({"name": "plain", "versionNumber": "1"})).await;
    let plain = v["id"].as_i64().unwrap();
    let (s, v) = app
        .post(
            "/xos/helloworldtenants/",
            json!({"name": "t", "provider_service": plain}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["provider_service"].is_array(), "{v}");
    // The port is the synchronizer's to set (a 400 naming it); the kind is the service's.
    let (s, v) = app
        .post(
            "/xos/helloworldtenants/",
            json!({"name": "t", "provider_service": hw, "port": 80}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["port"][0].as_str().unwrap_or_default().contains("synchronizer"),
        "{v}"
    );
    let v = created(
        app,
        "helloworldtenants",
        json!({"name": "t", "provider_service": hw, "port": null, "kind": "other"}),
    )
    .await;
    assert_eq!(v["port"], Value::Null, "{v}");
    assert_eq!(v["kind"], "helloworld", "{v}");
    // Nothing half-written by the refused ones: one tenant, one Tenant row.
    assert_eq!(app.count("helloworld_helloworldtenant").await, 1);
    assert_eq!(app.count("core_tenant").await, 1);
});

// HelloWorld's models extend Service and Tenant: their rows are Service and Tenant rows with
// the same id and kind `helloworld`, and stay one object through either collection.
both!(helloworld_rows_are_services_and_tenants, async |app: &TestApp| {
    let v = created(app, "services", json!({"name": "plain", "versionNumber": "1"})).await;
    let plain = v["id"].as_i64().unwrap();
    let v = created(
        app,
        "helloworldservices",
        json!({"name": "hello", "versionNumber": "2.0", "description": "greets"}),
    )
    .await;
    let hw = v["id"].as_i64().unwrap();
    assert_ne!(hw, plain, "ids come from one sequence");
    assert_eq!(v["kind"], "helloworld", "{v}");
    let (s, v) = app.get("/xos/services/?kind=helloworld&no_hyperlinks=1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["id"], hw, "{v}");
    assert_eq!(v[0]["name"], "hello", "{v}");
    assert_eq!(v[0]["description"], "greets", "{v}");
    // A name is unique among all services, whatever their kind.
    let (s, v) = app
        .post(
            "/xos/helloworldservices/",
            json!({"name": "plain", "versionNumber": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["name"].is_array(), "{v}");
    assert_eq!(
        app.count("helloworld_helloworldservice").await,
        1,
        "nothing half-written"
    );

    let v = created(
        app,
        "helloworldtenants",
        json!({"name": "t1", "provider_service": hw, "display_message": "hi"}),
    )
    .await;
    let t1 = v["id"].as_i64().unwrap();
    let (s, v) = app.get(&format!("/xos/tenants/{t1}/?no_hyperlinks=1")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["kind"], "helloworld", "{v}");
    assert_eq!(v["provider_service"], hw, "{v}");

    // A write through the parent's collection reaches the child, and the other way round.
    let (s, v) = app
        .patch(
            &format!("/xos/services/{hw}/"),
            json!({"description": "via services"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = app.get(&format!("/xos/helloworldservices/{hw}/")).await;
    assert_eq!(v["description"], "via services", "{v}");
    let (s, v) = app
        .patch(
            &format!("/xos/helloworldservices/{hw}/"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = app.get(&format!("/xos/services/{hw}/")).await;
    assert_eq!(v["enabled"], false, "{v}");
    // The kind of a HelloWorld service is fixed.
    let (s, v) = app
        .patch(&format!("/xos/services/{hw}/"), json!({"kind": "generic"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["kind"].is_array(), "{v}");
    let (_, v) = app.get(&format!("/xos/helloworldservices/{hw}/")).await;
    assert_eq!(v["kind"], "helloworld", "{v}");
    // A tenant moved to a plain service through /xos/tenants/ would no longer be a HelloWorld
    // tenant's: refused by the tenant's own foreign key.
    let (s, v) = app
        .patch(&format!("/xos/tenants/{t1}/"), json!({"provider_service": plain}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Deleting through the parent deletes the object: both rows and its tenants' rows.
    let (s, v) = app.delete(&format!("/xos/services/{hw}/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = app.get(&format!("/xos/helloworldservices/{hw}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get(&format!("/xos/helloworldtenants/{t1}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get(&format!("/xos/tenants/{t1}/")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = app.get("/xos/services/?no_hyperlinks=1").await;
    assert_eq!(
        v.as_array().unwrap().len(),
        1,
        "only the plain service is left: {v}"
    );
});

// A child deleted through its own collection takes its parent row along.
both!(
    deleting_a_helloworld_tenant_removes_its_tenant_row,
    async |app: &TestApp| {
        let (_, v) = app
            .post(
                "/xos/helloworldservices/?no_hyperlinks=1",
                json!({"name": "hw", "versionNumber": "1"}),
            )
            .await;
        let hw = v["id"].as_i64().unwrap();
        let (_, v) = app
            .post(
                "/xos/helloworldtenants/?no_hyperlinks=1",
                json!({"name": "t", "provider_service": hw}),
            )
            .await;
        let t = v["id"].as_i64().unwrap();
        let (s, v) = app.delete(&format!("/xos/helloworldtenants/{t}/")).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let (s, _) = app.get(&format!("/xos/tenants/{t}/")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app.get(&format!("/xos/services/{hw}/")).await;
        assert_eq!(s, StatusCode::OK, "the service stays");
    }
);

/// A configuration that does not load HelloWorld: its tables stay, but it has no routes,
/// no TOSCA types and no synchronizer steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_not_loaded_has_no_routes_types_or_steps() {
    let app = TestApp::with_config(common::Backend::Sqlite, |c| c.services = Some(Vec::new()))
        .await
        .unwrap();
    let (s, _) = app.get("/xos/helloworldtenants/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .post(
            "/xos/helloworldservices/",
            json!({"name": "hw", "versionNumber": "1"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = app.get("/xos/").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v.get("helloworldtenants").is_none() && v.get("services").is_some(),
        "{v}"
    );
    let (_, doc) = app.get("/openapi.json").await;
    let paths = doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(paths.iter().any(|p| p == "/xos/services/"), "{paths:?}");
    assert!(
        !paths.iter().any(|p| p.starts_with("/xos/helloworld")),
        "{paths:?}"
    );
    // The tables are there (a later configuration may load the service again).
    assert_eq!(app.count("helloworld_helloworldtenant").await, 0);
    let recipe = devel_recipe();
    let err = tosca::run(&app.store, Actor::System, &recipe, Mode::Apply, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not load") && err.contains("helloworld"),
        "{err}"
    );
    assert_eq!(app.count("core_service").await, 0, "nothing applied");
    let engine = server::synchronizer(&app.store, &app.state.config).await.unwrap();
    let steps: Vec<&str> = engine.order().into_iter().flatten().collect();
    assert!(
        steps.contains(&"local_instances") && !steps.contains(&"helloworld_tenants"),
        "{steps:?}"
    );
    // A service the build does not have is a configuration error naming the known ones.
    let mut bad = app.state.config.as_ref().clone();
    bad.services = Some(vec!["nope".into()]);
    let err = bad.loaded_services().unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("helloworld"), "{err}");
    app.finish().await;
}

// Each service's synchronizer runs alone (`xos sync --service NAME`); side by side they enact
// each their own models.
both!(each_service_has_its_own_synchronizer, async |app: &TestApp| {
    let config = app.state.config.as_ref().clone();
    let state =
        State(std::env::temp_dir().join(format!("xos-hello-svc-{}-{:?}", std::process::id(), app.backend)));
    let _ = std::fs::remove_dir_all(&state.0);
    let mut config = config;
    config.state_dir = state.0.clone();
    config.model_policies = false;
    let mut ctx = StepContext::new(app.store.clone(), state.0.clone());
    ctx.xos_binary = env!("CARGO_BIN_EXE_xos").into();
    let hello = server::synchronizer_in(ctx, &config, Some("helloworld"))
        .await
        .unwrap();
    let core = server::synchronizer_for(&app.store, &config, Some("core"))
        .await
        .unwrap();
    let hello_steps: Vec<&str> = hello.order().into_iter().flatten().collect();
    let core_steps: Vec<&str> = core.order().into_iter().flatten().collect();
    assert_eq!(hello_steps, vec!["helloworld_tenants"]);
    assert!(
        core_steps.contains(&"local_instances") && !core_steps.contains(&"helloworld_tenants"),
        "{core_steps:?}"
    );
    let err = server::synchronizer_for(&app.store, &config, Some("nope"))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not loaded"), "{err}");

    let (_, v) = app
        .post(
            "/xos/helloworldservices/?no_hyperlinks=1",
            json!({"name": "hw", "versionNumber": "1"}),
        )
        .await;
    let (s, t) = app
        .post(
            "/xos/helloworldtenants/?no_hyperlinks=1",
            json!({"name": "t", "provider_service": v["id"], "display_message": "side by side"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    // The core's synchronizer leaves the tenant alone; HelloWorld's enacts it.
    core.run_once().await.unwrap();
    let (_, after_core) = app.get(&format!("/xos/helloworldtenants/{}/", t["id"])).await;
    assert_eq!(after_core["port"], Value::Null, "{after_core}");
    assert!(
        after_core["backend_status"].as_str().unwrap().starts_with("0 - "),
        "{after_core}"
    );
    let r = hello.run_once().await.unwrap();
    assert_eq!(r.enacted, 1, "{r:?}");
    let (_, t) = app.get(&format!("/xos/helloworldtenants/{}/", t["id"])).await;
    let port = t["port"].as_u64().expect("port") as u16;
    assert_eq!(fetch(port).as_deref(), Some("side by side"));
    // The Tenant row shows the tenant's status.
    let (_, row) = app.get(&format!("/xos/tenants/{}/", t["id"])).await;
    assert_eq!(row["backend_status"], t["backend_status"], "{row}");
    // A deleted tenant waits for HelloWorld's synchronizer, not the core's purge.
    app.delete(&format!("/xos/helloworldtenants/{}/", t["id"])).await;
    core.run_once().await.unwrap();
    assert_eq!(
        app.count("helloworld_helloworldtenant").await,
        1,
        "still awaiting its backend delete"
    );
    hello.run_once().await.unwrap();
    assert_eq!(fetch(port), None, "stopped");
    assert_eq!(app.count("helloworld_helloworldtenant").await, 0, "purged");
});
