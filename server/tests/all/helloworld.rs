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

async fn engine(app: &TestApp, state: &State) -> Engine {
    let mut ctx = StepContext::new(app.store.clone(), state.0.clone());
    ctx.xos_binary = env!("CARGO_BIN_EXE_xos").into();
    let mut steps = local::steps(&ctx, Duration::ZERO);
    steps.extend(server::services::steps(&ctx));
    let opts = EngineOptions {
        backoff_base: Duration::from_millis(200),
        model_policies: false,
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
        let recipe = tosca::parse(
            app::registry::registry(),
            &[Source {
                name: "helloworld.yaml".into(),
                text: RECIPE.into(),
            }],
        )
        .expect("recipe");
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

both!(bad_tenants_are_refused, async |app: &TestApp| {
    let (s, v) = app.post("/xos/helloworldservices/", json!({"name": "hw"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = app
        .post(
            "/xos/helloworldtenants/",
            json!({"name": "t", "display_message": "x".repeat(300)}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["service"].is_array() && v["display_message"].is_array(), "{v}");
    // The port is the synchronizer's to set.
    let (s, v) = app
        .post(
            "/xos/helloworldtenants/?no_hyperlinks=1",
            json!({"name": "t", "service": 1, "port": 80}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["port"], Value::Null, "{v}");
});
