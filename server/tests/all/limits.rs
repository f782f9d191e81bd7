//! Request limits: body size, explicit page size, filters, request timeout, and failed-login
//! throttling (429) that never locks the real user out from elsewhere.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ADMIN, TestApp, build};
use serde_json::json;
use server::store::Actor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

both!(bodies_pages_and_filters_are_bounded, async |app: &TestApp| {
    // 2 MB of text in a body fits; 5 MB does not (413), and nothing is written.
    let big = "y".repeat(2 * 1024 * 1024);
    let (s, v) = app
        .post(
            "/xos/services/?no_hyperlinks=1",
            json!({"name": "big", "versionNumber": "1", "service_specific_attribute": big}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().unwrap();
    let huge = "z".repeat(5 * 1024 * 1024);
    let (s, _) = app
        .patch(
            &format!("/xos/services/{id}/"),
            json!({"service_specific_attribute": huge}),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, v) = app.get(&format!("/xos/services/{id}/")).await;
    assert_eq!(v["service_specific_attribute"].as_str().unwrap().len(), big.len());
    // The change log keeps the beginning and the length of such a value, not two megabytes.
    let (_, log) = app.get(&format!("/xos/changes/?model=Service&object={id}")).await;
    let logged = log[0]["changes"]["service_specific_attribute"]["new"]
        .as_str()
        .unwrap();
    assert!(
        logged.len() < 300 && logged.ends_with("(2097152 characters)"),
        "{logged}"
    );

    // A list without a limit returns everything; an explicit limit is capped.
    let (s, v) = app.get("/xos/sites/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(!v.as_array().unwrap().is_empty());
    let (s, _) = app.get("/xos/sites/?limit=10000").await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.get("/xos/sites/?limit=10001").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["limit"][0].as_str().unwrap().contains("10000"), "{v}");

    // Filters: at most 32 in one request, each value at most 1024 characters.
    let many: Vec<String> = (0..33).map(|i| format!("name=s{i}")).collect();
    let (s, v) = app.get(&format!("/xos/sites/?{}", many.join("&"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = app.get(&format!("/xos/sites/?{}", many[..32].join("&"))).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.get(&format!("/xos/sites/?search={}", "q".repeat(1025))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["search"].is_array(), "{v}");
});

both!(
    a_request_that_cannot_finish_in_time_gets_503,
    async |app: &TestApp| {
        let mut config = (*app.state.config).clone();
        config.request_timeout_secs = 1;
        let mut shared = (*app.state).clone();
        shared.config = Arc::new(config);
        let router = server::router(server::state::AppState::new(shared))
            .await
            .unwrap();
        let slice = app.make_slice("locked").await["id"].as_i64().unwrap();
        // Another writer holds the slice (Postgres: its row lock; SQLite: the one write connection).
        let mut unit = app.store.begin(Actor::System).await.unwrap();
        unit.load(app.store.model("Slice"), slice).await.unwrap();
        let started = Instant::now();
        let req = build(
            Method::PATCH,
            &format!("/xos/slices/{slice}/"),
            Some(ADMIN),
            Some(json!({"description": "late"}).to_string()),
        );
        let resp = router.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < Duration::from_secs(5));
        unit.rollback().await.unwrap();
        // The abandoned write left nothing behind, and the slice can be written again.
        let (s, v) = app
            .patch(
                &format!("/xos/slices/{slice}/"),
                json!({"description": "on time"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
);

fn basic_from(address: &str, user: &str, password: &str) -> Request<Body> {
    let mut req = build(Method::GET, "/xos/sites/", Some((user, password)), None);
    req.headers_mut().insert("x-real-ip", address.parse().unwrap());
    req
}

fn login_form(address: &str, user: &str, password: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::HOST, "testserver")
        .header(header::ORIGIN, "http://testserver")
        .header("x-real-ip", address)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("username={user}&password={password}&next=/")))
        .unwrap()
}

both!(
    failed_logins_are_throttled_per_account_and_address,
    async |app: &TestApp| {
        app.make_user("victim@example.org", "right-pass").await;
        for _ in 0..10 {
            let (s, _, _) = app
                .call(basic_from("10.0.0.1", "victim@example.org", "guess"))
                .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
        }
        // The guesser is stopped, even with the right password, and told when to come back.
        let (s, h, v) = app
            .call(basic_from("10.0.0.1", "victim@example.org", "right-pass"))
            .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
        let wait: u64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!(wait > 0 && wait <= 15 * 60, "{wait}");
        assert!(v["detail"].as_str().unwrap().contains("Too many failed logins"));
        // The login form is throttled the same way.
        let (s, _, _) = app
            .call(login_form("10.0.0.1", "victim%40example.org", "right-pass"))
            .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        // The real user elsewhere is not locked out, by basic auth or by the form.
        let (s, _, _) = app
            .call(basic_from("10.0.0.2", "victim@example.org", "right-pass"))
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, h, _) = app
            .call(login_form("10.0.0.3", "victim%40example.org", "right-pass"))
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{h:?}");
        // Other accounts from the guesser's address still work.
        let (s, _, _) = app.call(basic_from("10.0.0.1", ADMIN.0, ADMIN.1)).await;
        assert_eq!(s, StatusCode::OK);
    }
);
