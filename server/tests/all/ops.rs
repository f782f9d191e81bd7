//! Operations endpoints: health, readiness (and its failure when a migration is missing) and the
//! Prometheus metrics, including the synchronizer's when it runs in the process.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{TestApp, build};
use serde_json::json;
use tower::ServiceExt;

async fn text(app: &TestApp, path: &str) -> (StatusCode, String) {
    let resp = app
        .router
        .clone()
        .oneshot(build(Method::GET, path, None, None))
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The value of the sample line starting with `prefix` (labels included), if any.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

both!(health_and_readiness, async |app: &TestApp| {
    // No login needed: probes have none.
    let (s, v) = app.req(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": "ok"})));
    let (s, v) = app.req(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["migrations"], "current");
    // A migration the database has not applied: not ready, and it says why.
    let sql = server::db::Sql::new(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    );
    app.store.db().execute(&sql).await.unwrap();
    let (s, v) = app.req(Method::GET, "/readyz", None, None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["migrations"].as_str().unwrap().starts_with("pending"), "{v}");
    assert_eq!(v["database"], "ok");
});

both!(
    probes_ignore_credentials_and_metrics_are_not_public,
    async |app: &TestApp| {
        // An account throttled by failed logins from this address…
        let bad = Some(("padmin@vicci.org", "wrong"));
        let mut last = StatusCode::OK;
        for _ in 0..12 {
            last = app.req(Method::GET, "/xos/sites/", bad, None).await.0;
        }
        assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
        // …does not make a probe or a scrape that carries its header fail.
        for path in ["/healthz", "/readyz", "/metrics"] {
            let (s, _) = app.req(Method::GET, path, bad, None).await;
            assert_eq!(s, StatusCode::OK, "{path}");
        }
        // Through the proxy (a forwarded client), metrics are refused; with the token, served.
        let proxied = || {
            let mut r = build(Method::GET, "/metrics", None, None);
            r.headers_mut()
                .insert("x-real-ip", "203.0.113.9".parse().unwrap());
            r
        };
        assert_eq!(app.call(proxied()).await.0, StatusCode::FORBIDDEN);
        let twin =
            common::TestApp::with_config(app.backend, |c| c.metrics_token = Some("s3cret-token".into()))
                .await
                .unwrap();
        let with = |token: &str| {
            let mut r = proxied();
            r.headers_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            r
        };
        assert_eq!(twin.call(with("wrong-token!")).await.0, StatusCode::FORBIDDEN);
        assert_eq!(twin.call(with("s3cret-token")).await.0, StatusCode::OK);
        twin.finish().await;
    }
);

both!(
    metrics_count_requests_by_route_and_status,
    async |app: &TestApp| {
        for _ in 0..3 {
            assert_eq!(app.get("/xos/sites/").await.0, StatusCode::OK);
        }
        assert_eq!(app.get("/xos/sites/999999/").await.0, StatusCode::NOT_FOUND);
        let (s, body) = text(app, "/metrics").await;
        assert_eq!(s, StatusCode::OK);
        let ok = r#"xos_http_requests_total{method="GET",route="/xos/{plural}/",status="200"}"#;
        assert_eq!(sample(&body, ok), Some(3.0), "{body}");
        let missing = r#"xos_http_requests_total{method="GET",route="/xos/{plural}/{id}/",status="404"}"#;
        assert_eq!(sample(&body, missing), Some(1.0), "{body}");
        let count = r#"xos_http_request_duration_seconds_count{method="GET",route="/xos/{plural}/"}"#;
        assert_eq!(sample(&body, count), Some(3.0), "{body}");
        // Unknown paths share one label, whatever the path.
        text(app, "/no/such/thing/1").await;
        text(app, "/no/such/thing/2").await;
        let (_, body) = text(app, "/metrics").await;
        assert!(!body.contains("/no/such"), "{body}");
        assert!(body.contains("xos_db_connections{"), "{body}");
        assert!(
            !body.contains("xos_sync_passes"),
            "no synchronizer in this process yet"
        );

        // With the synchronizer in the process: its passes and per-step counts.
        let engine = server::synchronizer(&app.store, &app.state.config).await.unwrap();
        engine.run_once().await.unwrap();
        engine.run_once().await.unwrap();
        app.state.metrics.set_engine(engine.clone());
        let (_, body) = text(app, "/metrics").await;
        assert_eq!(sample(&body, "xos_sync_passes_total"), Some(2.0), "{body}");
        for step in ["ec2_instances", "ec2_catalog"] {
            for family in [
                "xos_sync_enacted_total",
                "xos_sync_failed_total",
                "xos_sync_backlog",
            ] {
                let line = format!("{family}{{step=\"{step}\"}}");
                assert!(sample(&body, &line).is_some(), "{line}: {body}");
            }
        }

        assert!(body.trim_end().ends_with("# EOF"));
    }
);

/// A synchronizer worker (`xos sync --metrics-addr`) has no API, but serves its own health,
/// readiness and metrics, with its passes counted; SIGTERM stops both.
#[tokio::test]
async fn a_sync_worker_serves_its_own_metrics() {
    let dir = std::env::temp_dir().join(format!("xos-worker-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("xos.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"worker-metrics\"\ndatabase_url = \"sqlite://{}/xos.db\"\nstate_dir = \"{}/state\"\n",
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xos"))
        .args(["--config", config.to_str().unwrap(), "sync", "--metrics-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start xos sync");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let metrics = async || match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap(),
        Err(_) => String::new(),
    };
    let passed = |body: &str| sample(body, "xos_sync_passes_total").is_some_and(|n| n >= 1.0);
    let reported = testkit::within(std::time::Duration::from_secs(30), || async {
        let body = metrics().await;
        passed(&body).then_some(body)
    })
    .await;
    let stopped = |child: &mut std::process::Child| {
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    };
    let Some(body) = reported else {
        let body = metrics().await;
        stopped(&mut child);
        panic!("the worker reports no pass: {body}");
    };
    assert!(
        body.contains("xos_sync_backlog{step=\"helloworld_tenants\"}"),
        "{body}"
    );
    assert!(body.contains("xos_db_connections{"), "{body}");
    for (path, want) in [("/healthz", 200), ("/readyz", 200), ("/xos/sites/", 404)] {
        let s = http.get(format!("{base}{path}")).send().await.unwrap().status();
        assert_eq!(s.as_u16(), want, "{path}");
    }
    let status = stopped(&mut child);
    assert!(
        status.success(),
        "the worker did not stop cleanly on SIGTERM: {status}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the metrics port still answers after the worker stopped"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
