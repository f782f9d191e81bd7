//! Nothing a tenant writes may run in an admin's browser or steer a backend as admin, tried from
//! the tenant's side (issue 21): script nonces, backend-owned fields, controllers, slices of
//! services, the CDN's rows and origins. On SQLite and Postgres.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{TestApp, make};
use serde_json::{Value, json};
use server::store::Actor;
use tower::ServiceExt;

const PI: (&str, &str) = ("pi@mysite.org", "pi-password");
const OTHER: (&str, &str) = ("other@mysite.org", "other-password");

/// A PI of the bootstrap site.
async fn pi(app: &TestApp) -> i64 {
    let site = app.site_id().await;
    let pi = app.make_user(PI.0, PI.1).await;
    let (_, roles) = app.get("/xos/site_roles/?role=pi").await;
    make(
        app,
        "siteprivileges",
        json!({"user": pi, "site": site, "role": roles[0]["id"]}),
    )
    .await;
    pi
}

/// A slice of the PI's site with one instance on a node: (slice, instance, network, port).
async fn instance_world(app: &TestApp) -> (i64, i64, i64, i64) {
    let site = app.site_id().await;
    let slice = app.make_slice("tenant").await["id"].as_i64().unwrap();
    let dep = make(app, "deployments", json!({"name": "d"})).await;
    let sd = make(app, "sitedeployments", json!({"site": site, "deployment": dep})).await;
    let node = make(app, "nodes", json!({"name": "n1", "site_deployment": sd})).await;
    let image = make(
        app,
        "images",
        json!({"name": "img", "disk_format": "qcow2", "container_format": "bare"}),
    )
    .await;
    let inst = make(
        app,
        "instances",
        json!({"slice": slice, "image": image, "node": node}),
    )
    .await;
    let (_, t) = app.get("/xos/networktemplates/?name=Private").await;
    let net = make(
        app,
        "networks",
        json!({"name": "tnet", "template": t[0]["id"], "owner": slice}),
    )
    .await;
    let port = make(app, "ports", json!({"network": net, "instance": inst})).await;
    (slice, inst, net, port)
}

/// The synchronizer's own write (the system actor may set backend-owned fields).
async fn system_sets(app: &TestApp, model: &str, id: i64, fields: Value) {
    let m = app.store.model(model);
    let mut unit = app.store.begin(Actor::System).await.unwrap();
    unit.update(m, id, fields.as_object().unwrap(), true)
        .await
        .unwrap();
    unit.commit().await.unwrap();
}

both!(
    backend_owned_fields_are_written_by_the_synchronizer_only,
    async |app: &TestApp| {
        pi(app).await;
        let (_, inst, net, port) = instance_world(app).await;
        let uuid = "2f6e3c1a-0b7d-4a61-9a3e-5d7f0c1b2a39";
        system_sets(
            app,
            "Instance",
            inst,
            json!({"instance_uuid": uuid, "instance_id": uuid, "ip": "10.0.0.5"}),
        )
        .await;
        system_sets(
            app,
            "Port",
            port,
            json!({"port_id": "p-1", "mac": "fa:16:3e:00:00:01"}),
        )
        .await;
        let path = format!("/xos/instances/{inst}/");
        // A tenant (and an admin too) pointing the instance at another server: 400 naming it.
        for who in [PI, common::ADMIN] {
            for (field, value) in [
                ("instance_uuid", json!("11111111-2222-3333-4444-555555555555")),
                ("instance_id", json!("x")),
                ("instance_name", json!("instance-00000001")),
                ("ip", json!("10.9.9.9")),
                ("instance_uuid", Value::Null),
            ] {
                let (s, v) = app
                    .req(Method::PATCH, &path, Some(who), Some(json!({ field: value })))
                    .await;
                assert_eq!(s, StatusCode::BAD_REQUEST, "{who:?} {field}: {v}");
                assert!(
                    v[field][0]
                        .as_str()
                        .unwrap_or_default()
                        .contains("set by the synchronizer"),
                    "{v}"
                );
            }
        }
        let (_, now) = app.get(&path).await;
        assert_eq!(now["instance_uuid"], uuid);
        assert_eq!(now["ip"], "10.0.0.5");
        // Backbone's save(): the whole object back, backend fields unchanged, is accepted.
        let mut back = now.clone();
        back["userData"] = json!("changed");
        let (s, v) = app.req(Method::PUT, &path, Some(PI), Some(back)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["userData"], "changed");
        let (s, v) = app
            .req(
                Method::PATCH,
                &path,
                Some(PI),
                Some(json!({"instance_name": null, "ip": "10.0.0.5"})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::OK,
            "an unset field sent as null, the ip as it is: {v}"
        );
        // Ports: the id and mac; a new port may not bring its own.
        for body in [
            json!({"port_id": "../networks/x"}),
            json!({"mac": "00:00:00:00:00:00"}),
            json!({"ip": "10.0.0.7"}),
        ] {
            let (s, v) = app
                .req(
                    Method::PATCH,
                    &format!("/xos/ports/{port}/"),
                    Some(PI),
                    Some(body.clone()),
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        }
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/ports/",
                Some(PI),
                Some(json!({"network": net, "instance": inst, "port_id": "p-2"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["port_id"].is_array(), "{v}");
        let (_, p) = app.get(&format!("/xos/ports/{port}/")).await;
        assert_eq!(p["port_id"], "p-1");
        // The API's description says so.
        let (s, v) = app.req(Method::GET, "/openapi.json", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let schemas = &v["components"]["schemas"];
        for write in ["InstanceCreate", "InstanceUpdate"] {
            let props = schemas[write]["properties"].as_object().expect(write);
            assert!(
                props.contains_key("userData") && !props.contains_key("instance_uuid"),
                "{write}: {props:?}"
            );
        }
        assert_eq!(
            schemas["Instance"]["properties"]["instance_uuid"]["readOnly"],
            true
        );
    }
);

both!(controllers_are_read_by_admins_only, async |app: &TestApp| {
    pi(app).await;
    let dep = make(app, "deployments", json!({"name": "d"})).await;
    let id = make(
        app,
        "controllers",
        json!({"name": "os", "deployment": dep, "backend_type": "OpenStack", "version": "v",
                   "auth_url": "http://127.0.0.1:1/v3", "admin_user": "admin", "admin_tenant": "admin"}),
    )
    .await;
    let (s, v) = app.req(Method::GET, "/xos/controllers/", Some(PI), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!([]), "a tenant lists no controller");
    let (s, _) = app
        .req(Method::GET, &format!("/xos/controllers/{id}/"), Some(PI), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app
        .req(Method::GET, "/xos/controllersites/", Some(PI), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = app.get(&format!("/xos/controllers/{id}/")).await;
    assert_eq!(v["auth_url"], "http://127.0.0.1:1/v3");
});

both!(only_admins_attach_a_slice_to_a_service, async |app: &TestApp| {
    pi(app).await;
    let slice = app.make_slice("svc").await["id"].as_i64().unwrap();
    let hpc = make(app, "hpcservices", json!({"name": "cdn", "versionNumber": "1"})).await;
    let path = format!("/xos/slices/{slice}/");
    let (s, v) = app
        .req(Method::PATCH, &path, Some(PI), Some(json!({"service": hpc})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = app
        .req(
            Method::POST,
            "/xos/slices/",
            Some(PI),
            Some(json!({"name": "mysite_cache", "site": app.site_id().await, "service": hpc})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = app.patch(&path, json!({"service": hpc})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The PI still runs the slice: the service sent back unchanged is no attachment.
    let (s, v) = app
        .req(
            Method::PATCH,
            &path,
            Some(PI),
            Some(json!({"service": hpc, "description": "mine"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .req(Method::PATCH, &path, Some(PI), Some(json!({"service": null})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
});

both!(
    a_content_providers_users_run_its_rows_and_nobody_else_sees_them,
    async |app: &TestApp| {
        let cp_user = app.make_user(PI.0, PI.1).await;
        app.make_user(OTHER.0, OTHER.1).await;
        let hpc = make(app, "hpcservices", json!({"name": "cdn", "versionNumber": "1"})).await;
        let sp = make(app, "serviceproviders", json!({"name": "sp", "hpcService": hpc})).await;
        let cp = make(
            app,
            "contentproviders",
            json!({"name": "cp", "serviceProvider": sp, "users": [cp_user]}),
        )
        .await;
        let origin = make(
            app,
            "originservers",
            json!({"url": "http://127.0.0.1:8890/", "contentProvider": cp}),
        )
        .await;
        make(
            app,
            "accessmaps",
            json!({"name": "m", "contentProvider": cp, "map": "allow 10.0.0.0/8"}),
        )
        .await;
        make(
            app,
            "hpchealthchecks",
            json!({"hpcService": hpc, "kind": "dns", "resource_name": "x"}),
        )
        .await;
        // Another user sees none of it.
        for plural in [
            "contentproviders",
            "originservers",
            "accessmaps",
            "contentproviderusers",
            "hpchealthchecks",
        ] {
            let (s, v) = app
                .req(Method::GET, &format!("/xos/{plural}/"), Some(OTHER), None)
                .await;
            assert_eq!((s, v.clone()), (StatusCode::OK, json!([])), "{plural}: {v}");
        }
        let (s, _) = app
            .req(
                Method::PATCH,
                &format!("/xos/originservers/{origin}/"),
                Some(OTHER),
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // The provider's user reads and runs its origins, prefixes and maps (XOS's can_update).
        let (_, v) = app.req(Method::GET, "/xos/originservers/", Some(PI), None).await;
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/originservers/",
                Some(PI),
                Some(json!({"url": "http://origin.example.org/", "contentProvider": cp})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/cdnprefixs/",
                Some(PI),
                Some(json!({"prefix": "cdn.example.org", "contentProvider": cp})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = app
            .req(
                Method::PATCH,
                &format!("/xos/contentproviders/{cp}/"),
                Some(PI),
                Some(json!({"description": "ours"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // …but neither makes providers, adds users, nor reads the health checks.
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/contentproviders/",
                Some(PI),
                Some(json!({"name": "cp2", "serviceProvider": sp})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let other = app.make_user("third@mysite.org", "third-password").await;
        let (s, v) = app
            .req(
                Method::PATCH,
                &format!("/xos/contentproviders/{cp}/"),
                Some(PI),
                Some(json!({"users": [cp_user, other]})),
            )
            .await;
        assert!(
            s == StatusCode::FORBIDDEN || s == StatusCode::BAD_REQUEST,
            "{s} {v}"
        );
        let (_, v) = app
            .get(&format!("/xos/contentproviderusers/?contentprovider={cp}"))
            .await;
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
        let (_, v) = app
            .req(Method::GET, "/xos/hpchealthchecks/", Some(PI), None)
            .await;
        assert_eq!(v, json!([]));
        // Origins: the host is an address or a domain name; nothing reaches nginx.conf raw.
        for bad in [
            "http://127.0.0.1:8890/ }",
            "http://a;b.org/",
            "http://x.org}/",
            "http://$host/",
            "http://a'b/",
        ] {
            let (s, v) = app
                .req(
                    Method::PATCH,
                    &format!("/xos/originservers/{origin}/"),
                    Some(PI),
                    Some(json!({"url": bad})),
                )
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
            assert!(v["url"].is_array(), "{v}");
        }
    }
);

/// A page's text and its Content-Security-Policy.
async fn page(app: &TestApp, path: &str, who: Option<(&str, &str)>) -> (StatusCode, String, String) {
    let req = common::build(Method::GET, path, who, None);
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let csp = resp
        .headers()
        .get(header::CONTENT_SECURITY_POLICY)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), csp)
}

/// The nonce of a policy's `script-src`.
fn nonce_of(csp: &str) -> String {
    let script = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap_or_else(|| panic!("no script-src in {csp}"));
    assert!(!script.contains("'unsafe-inline'"), "{script}");
    assert!(!script.contains("'unsafe-eval'"), "{script}");
    script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("'nonce-").and_then(|n| n.strip_suffix('\'')))
        .unwrap_or_else(|| panic!("no nonce in {script}"))
        .to_string()
}

/// Every `<script` tag of `html` carries `nonce`; how many there are.
fn scripts_carry(html: &str, nonce: &str) -> usize {
    let lower = html.to_ascii_lowercase();
    let mut n = 0;
    for (i, _) in lower.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').unwrap_or(html.len() - i)];
        assert!(
            tag.contains(&format!("nonce=\"{nonce}\"")),
            "{tag} has no nonce:\n{html}"
        );
        n += 1;
    }
    n
}

/// The pages test on one database, with the repository's dashboard templates.
async fn pages_on(backend: common::Backend) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    let Some(app) = TestApp::with_config(backend, |c| c.dashboards_dir = dir).await else {
        return;
    };
    every_page_runs_only_the_scripts_the_server_wrote(&app).await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_run_only_server_scripts_sqlite() {
    pages_on(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_run_only_server_scripts_postgres() {
    pages_on(common::Backend::Postgres).await;
}

async fn every_page_runs_only_the_scripts_the_server_wrote(app: &TestApp) {
    {
        // Markup in a tenant's text is data: it never gets the nonce.
        let payload = "<script>alert(1)</script><img src=x onerror=alert(2)>";
        let slice = app.make_slice("xss").await["id"].as_i64().unwrap();
        let (s, v) = app
            .patch(&format!("/xos/slices/{slice}/"), json!({"description": payload}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (_, login, csp) = page(app, "/login", None).await;
        let n1 = nonce_of(&csp);
        assert!(scripts_carry(&login, &n1) > 0, "the hydration script");
        let (_, _, csp2) = page(app, "/login", None).await;
        assert_ne!(n1, nonce_of(&csp2), "a nonce per answer");
        for path in [
            "/",
            "/admin/core/slice/",
            &format!("/admin/core/slice/{slice}/"),
            "/admin/dashboard/helloworld/",
            "/admin/dashboard/Hello%20World/",
            "/admin/dashboard/Developer/",
            "/admin/dashboard/Tenant/",
            "/admin/dashboard/CDN/",
            "/admin/dashboard/nosuchview/",
        ] {
            let (s, html, csp) = page(app, path, Some(common::ADMIN)).await;
            assert!(s == StatusCode::OK || s == StatusCode::NOT_FOUND, "{path}: {s}");
            let nonce = nonce_of(&csp);
            scripts_carry(&html, &nonce);
            assert!(!html.contains(payload), "{path} shows the payload as markup");
        }
        let (_, view, csp) = page(app, "/admin/dashboard/helloworld/", Some(common::ADMIN)).await;
        let nonce = nonce_of(&csp);
        assert!(
            view.contains(&format!(
                "<script nonce=\"{nonce}\" src=\"&#x2f;static/helloworld.js\""
            )),
            "the template's own scripts run: {view}"
        );
        // The scripts the services' templates load come from the services' own folders.
        for (path, text) in [
            ("/static/helloworld.js", "helloworld.js"),
            ("/static/js/helloWorldService.js", "HelloWorld service dashboard"),
            ("/static/js/cdn.js", "cdn-view"),
        ] {
            let req = common::build(Method::GET, path, None, None);
            let resp = app.router.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert!(
                resp.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/javascript"),
                "{path}"
            );
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
            assert!(String::from_utf8_lossy(&body).contains(text), "{path}");
        }
        for path in [
            "/static/js/nothere.js",
            "/static/../Cargo.toml",
            "/static/js/cdn.js/",
        ] {
            let (s, _, _) = page(app, path, None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        }
        let req = Request::builder()
            .uri("/xos/slices/")
            .header(header::HOST, "testserver")
            .body(Body::empty())
            .unwrap();
        let resp = app.router.clone().oneshot(req).await.unwrap();
        assert!(resp.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }
}
