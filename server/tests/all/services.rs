//! A service written only in its folder (`services/example`, listed in the catalog): loaded by a
//! configuration, served by the API, the admin and TOSCA, checked by its own rule and
//! synchronized, with nothing of it in XOS's core crates.

use crate::common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use serde_json::json;
use server::store::Actor;
use server::sync::StepContext;
use server::sync::engine::{Engine, EngineOptions};
use server::tosca::{self, Mode, Source};
use std::time::Duration;
use tower::ServiceExt;

const RECIPE: &str = include_str!("../../../services/example/recipes/notes.yaml");

fn recipe() -> tosca::Recipe {
    tosca::parse(
        app::registry::registry(),
        &[Source {
            name: "notes.yaml".into(),
            text: RECIPE.into(),
        }],
    )
    .expect("the example's recipe parses")
}

/// A page's status and text, as the admin sees it.
async fn page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let req = common::build(Method::GET, path, Some(common::ADMIN), None);
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

both!(
    a_service_from_its_own_folder_is_served_and_synchronized,
    async |app: &TestApp| {
        // The API, with the service's own check on the title: a 400 naming the field, nothing
        // written.
        let (s, v) = app
            .post("/xos/examplenotes/", json!({"title": "a/b", "body": "x"}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["title"][0].as_str().unwrap().contains("without"), "{v}");
        assert_eq!(app.count("example_examplenote").await, 0);

        // TOSCA: its type, from its folder's recipe.
        tosca::run(&app.store, Actor::System, &recipe(), Mode::Apply, false)
            .await
            .expect("the recipe applies");
        let (s, v) = app
            .get("/xos/examplenotes/?title=groceries&no_hyperlinks=1")
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let id = v[0]["id"].as_i64().unwrap();
        assert_eq!(app.count("example_examplenote").await, 2);

        // OpenAPI and the admin know it.
        let (_, doc) = app.get("/openapi.json").await;
        assert!(doc["paths"].get("/xos/examplenotes/").is_some());
        let (s, html) = page(app, "/admin/example/examplenote/").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("Example notes"), "{html}");

        // Synchronized: each note a file, its path written back; a client cannot set the path.
        let state =
            std::env::temp_dir().join(format!("xos-example-{}-{:?}", std::process::id(), app.backend));
        let _ = std::fs::remove_dir_all(&state);
        let ctx = StepContext::new(app.store.clone(), state.clone());
        let steps = server::services::steps("example", &ctx);
        assert_eq!(steps.len(), 1);
        let opts = EngineOptions {
            backoff_base: Duration::from_millis(50),
            ..Default::default()
        };
        let engine = Engine::new(ctx, steps, opts).await.unwrap();
        let r = engine.run_once().await.unwrap();
        assert_eq!((r.enacted, r.failed), (2, 0), "{r:?}");
        let file = state.join("example").join(format!("{id}.txt"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "milk, bread");
        let (_, v) = app.get(&format!("/xos/examplenotes/{id}/?no_hyperlinks=1")).await;
        assert!(
            v["backend_status"]
                .as_str()
                .unwrap()
                .starts_with("1 - OK, written to"),
            "{v}"
        );
        assert_eq!(v["path"], file.display().to_string());
        let (s, v) = app
            .patch(
                &format!("/xos/examplenotes/{id}/"),
                json!({"path": "/etc/passwd"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

        // A change is enacted; a pass with nothing changed does nothing.
        let (s, v) = app
            .patch(
                &format!("/xos/examplenotes/{id}/"),
                json!({"body": "milk, bread, tea"}),
            )
            .await;
        assert!(s.is_success(), "{v}");
        assert_eq!(engine.run_once().await.unwrap().enacted, 1);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "milk, bread, tea");
        assert_eq!(engine.run_once().await.unwrap().enacted, 0);

        // A delete removes the file, then the row.
        let (s, v) = app.delete(&format!("/xos/examplenotes/{id}/")).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let r = engine.run_once().await.unwrap();
        assert_eq!(r.deleted, 1, "{r:?}");
        assert!(!file.exists());
        assert_eq!(app.count("example_examplenote").await, 1);
        let _ = std::fs::remove_dir_all(&state);
    }
);

/// A configuration that does not load it: no routes, no admin page, no TOSCA type, no steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_not_loaded_is_not_served() {
    let app = TestApp::with_config(common::Backend::Sqlite, |c| {
        c.services = Some(vec!["helloworld".into()])
    })
    .await
    .unwrap();
    let (s, _) = app.get("/xos/examplenotes/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, html) = page(&app, "/admin/").await;
    assert!(!html.contains("Example notes"));
    let err = tosca::run(&app.store, Actor::System, &recipe(), Mode::Apply, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not load") && err.contains("example"), "{err}");
    app.finish().await;
}
