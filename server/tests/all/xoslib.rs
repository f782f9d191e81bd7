//! xoslib extension objects: SlicePlus (figures, site allocation, members) and TenantView.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{TestApp, make};
use serde_json::{Value, json};

struct Setup {
    slice: i64,
    image: i64,
    image2: i64,
}

async fn setup(app: &TestApp) -> Setup {
    let site = app.site_id().await;
    let dep = make(app, "deployments", json!({"name": "local"})).await;
    let sd = make(app, "sitedeployments", json!({"site": site, "deployment": dep})).await;
    make(app, "nodes", json!({"name": "node1", "site_deployment": sd})).await;
    make(app, "nodes", json!({"name": "node2", "site_deployment": sd})).await;
    let image = make(
        app,
        "images",
        json!({"name": "ubuntu", "disk_format": "qcow2", "container_format": "bare", "deployments": [dep]}),
    )
    .await;
    let image2 = make(
        app,
        "images",
        json!({"name": "centos", "disk_format": "qcow2", "container_format": "bare"}),
    )
    .await;
    let slice = make(
        app,
        "slices",
        json!({"name": "mysite_plus", "site": site, "default_image": image}),
    )
    .await;
    // The Tenant view (initial data) blesses the deployment.
    let (_, tenant) = app.get("/xos/dashboardviews/?name=Tenant").await;
    let (st, v) = app
        .patch(
            &format!("/xos/dashboardviews/{}/", tenant[0]["id"]),
            json!({"deployments": [dep]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    Setup { slice, image, image2 }
}

async fn instances(app: &TestApp, slice: i64) -> Vec<Value> {
    let (_, v) = app
        .get(&format!("/xos/instances/?slice={slice}&no_hyperlinks=1"))
        .await;
    v.as_array().unwrap().clone()
}

both!(sliceplus_allocates_instances_per_site, async |app: &TestApp| {
    let s = setup(app).await;
    let path = format!("/xoslib/slicesplus/{}/", s.slice);
    let (st, v) = app.get(&path).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["sliceInfo"]["instanceCount"], 0);
    assert_eq!(v["site"], app.site_id().await, "SlicePlus always uses ids");

    let (st, v) = app
        .patch(&path, json!({"site_allocation": "{\"MySite\": 3}"}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["sliceInfo"]["instanceCount"], 3);
    assert_eq!(v["sliceInfo"]["siteCount"], 1);
    assert_eq!(v["sliceInfo"]["sitesUsed"], json!({"MySite": 3}));
    assert_eq!(v["site_allocation"], "{\"MySite\":3}");
    let nodes: Vec<String> = instances(app, s.slice)
        .await
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        nodes,
        ["node1", "node2", "node1"],
        "spread over the least used nodes"
    );

    let (st, v) = app.patch(&path, json!({"site_allocation": {"MySite": 1}})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(instances(app, s.slice).await.len(), 1);

    // A changed default image replaces every instance.
    let before = instances(app, s.slice).await[0]["id"].clone();
    let (st, v) = app
        .patch(
            &path,
            json!({"default_image": s.image2, "site_allocation": {"MySite": 1}}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let now = instances(app, s.slice).await;
    assert_eq!(now.len(), 1);
    assert_ne!(now[0]["id"], before);
    assert_eq!(now[0]["image"], s.image2);
    let _ = s.image;

    // Errors roll everything back.
    let (st, v) = app
        .patch(
            &path,
            json!({"description": "changed", "site_allocation": {"Nowhere": 2}}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["site_allocation"].is_array(), "{v}");
    let (_, slice) = app.get(&format!("/xos/slices/{}/", s.slice)).await;
    assert_ne!(slice["description"], "changed");
    let (st, v) = app.patch(&path, json!({"site_allocation": {"MySite": -1}})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
});

both!(sliceplus_members_and_roles, async |app: &TestApp| {
    let s = setup(app).await;
    let path = format!("/xoslib/slicesplus/{}/", s.slice);
    let alice = app.make_user("alice@mysite.org", "alice-password").await;
    let bob = app.make_user("bob@mysite.org", "bob-password").await;
    let (st, v) = app
        .patch(&path, json!({"users": format!("[{alice}, {bob}]")}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let users: Vec<i64> = serde_json::from_str(v["users"].as_str().unwrap()).unwrap();
    assert_eq!(users, [alice, bob]);
    assert_eq!(
        v["sliceInfo"]["users"][alice.to_string()]["roles"],
        json!(["access"])
    );

    // Alice sees her role and the slice; the admin holds no role on it.
    let (st, mine) = app
        .req(
            Method::GET,
            &path,
            Some(("alice@mysite.org", "alice-password")),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(mine["sliceInfo"]["roles"], json!(["access"]));
    assert_eq!(mine["current_user_can_see"], true);
    let (_, list) = app
        .req(
            Method::GET,
            "/xoslib/slicesplus/?current_user_can_see=1",
            Some(("alice@mysite.org", "alice-password")),
            None,
        )
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Removing Bob removes his access privilege only.
    let (st, v) = app.patch(&path, json!({"users": [alice]})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, privs) = app
        .get(&format!("/xos/slice_privileges/?slice={}", s.slice))
        .await;
    assert_eq!(privs.as_array().unwrap().len(), 1);
    let (st, _) = app
        .req(Method::GET, &path, Some(("bob@mysite.org", "bob-password")), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "Bob no longer sees the slice");
    // Members cannot change the slice through SlicePlus either.
    let (st, _) = app
        .req(
            Method::PATCH,
            &path,
            Some(("alice@mysite.org", "alice-password")),
            Some(json!({"users": [alice, bob]})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = app.patch(&path, json!({"users": [999_999]})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
});

/// The privileges a user holds on a slice, by role name.
async fn roles_of(app: &TestApp, slice: i64, user: i64) -> Vec<String> {
    let (_, privs) = app
        .get(&format!(
            "/xos/slice_privileges/?slice={slice}&user={user}&no_hyperlinks=1"
        ))
        .await;
    let (_, roles) = app.get("/xos/slice_roles/?no_hyperlinks=1").await;
    let mut names: Vec<String> = privs
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let role = roles
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == p["role"])
                .unwrap();
            role["role"].as_str().unwrap().to_string()
        })
        .collect();
    names.sort();
    names
}

both!(sliceplus_sets_each_members_role, async |app: &TestApp| {
    let s = setup(app).await;
    let path = format!("/xoslib/slicesplus/{}/", s.slice);
    let alice = app.make_user("alice@mysite.org", "alice-password").await;
    let bob = app.make_user("bob@mysite.org", "bob-password").await;
    let alice_login = Some(("alice@mysite.org", "alice-password"));
    // Alice joins with the default role, Bob as the slice's admin, in one write.
    let (st, v) = app
        .patch(
            &path,
            json!({"users": [alice, bob], "user_roles": format!("{{\"{bob}\": \"admin\"}}")}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(roles_of(app, s.slice, alice).await, ["access"]);
    assert_eq!(roles_of(app, s.slice, bob).await, ["admin"]);
    let shown: Value = serde_json::from_str(v["user_roles"].as_str().unwrap()).unwrap();
    assert_eq!(
        shown,
        json!({alice.to_string(): "access", bob.to_string(): "admin"})
    );

    // A role change replaces the member's role; a plain `users` list leaves the admin alone.
    let (st, v) = app
        .patch(&path, json!({"user_roles": {bob.to_string(): "access"}}))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(roles_of(app, s.slice, bob).await, ["access"]);
    let (st, _) = app
        .patch(&path, json!({"user_roles": {bob.to_string(): "admin"}}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = app.patch(&path, json!({"users": [alice]})).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        roles_of(app, s.slice, bob).await,
        ["admin"],
        "admins are not removed by `users`"
    );

    // Bad input: a clear 400 on the field, and nothing changes.
    for bad in [
        json!({"user_roles": {alice.to_string(): "emperor"}}),
        json!({"user_roles": "[1, 2]"}),
        json!({"user_roles": {"not-an-id": "admin"}}),
        json!({"user_roles": {"999999": "access"}}),
    ] {
        let (st, v) = app.patch(&path, bad.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["user_roles"].is_array(), "{bad}: {v}");
    }
    assert_eq!(roles_of(app, s.slice, alice).await, ["access"]);

    // The attacker's side: a member cannot make herself admin, nor can she make another one.
    for attempt in [
        json!({"user_roles": {alice.to_string(): "admin"}}),
        json!({"user_roles": {bob.to_string(): "access"}}),
    ] {
        let (st, v) = app
            .req(Method::PATCH, &path, alice_login, Some(attempt.clone()))
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{attempt}: {v}");
    }
    assert_eq!(roles_of(app, s.slice, alice).await, ["access"]);
    assert_eq!(roles_of(app, s.slice, bob).await, ["admin"]);
    // A slice admin grants roles to others but not to himself.
    let bob_login = Some(("bob@mysite.org", "bob-password"));
    let (st, v) = app
        .req(
            Method::PATCH,
            &path,
            bob_login,
            Some(json!({"user_roles": {alice.to_string(): "admin"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(roles_of(app, s.slice, alice).await, ["admin"]);
    let (st, v) = app
        .req(
            Method::PATCH,
            &path,
            bob_login,
            Some(json!({"user_roles": {bob.to_string(): "admin"}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "holding the role already grants nothing: {v}");
    let (st, v) = app
        .req(
            Method::PATCH,
            &path,
            bob_login,
            Some(json!({"user_roles": {bob.to_string(): "access"}})),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(roles_of(app, s.slice, bob).await, ["admin"]);
});

both!(sliceplus_creates_and_sets_network_ports, async |app: &TestApp| {
    let s = setup(app).await;
    let site = app.site_id().await;
    let (st, v) = app.post("/xoslib/slicesplus/", json!({"name": "mysite_new", "site": site, "default_image": s.image, "site_allocation": {"MySite": 2}})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["sliceInfo"]["instanceCount"], 2);
    let id = v["id"].as_i64().unwrap();
    let path = format!("/xoslib/slicesplus/{id}/");
    let (st, v) = app.patch(&path, json!({"network_ports": "tcp 80"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "no network yet: {v}");
    let (_, t) = app
        .get("/xos/networktemplates/?name=Public%20shared%20IPv4")
        .await;
    let net = make(
        app,
        "networks",
        json!({"name": "natnet", "template": t[0]["id"], "owner": id}),
    )
    .await;
    make(app, "networkslices", json!({"network": net, "slice": id})).await;
    let (st, v) = app.patch(&path, json!({"network_ports": "tcp 80, udp 53"})).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["network_ports"], "tcp 80, udp 53");
    assert_eq!(v["networks"], json!([net]));
    // PUT back what was read is accepted.
    let (st, v2) = app.put(&path, v.clone()).await;
    assert_eq!(st, StatusCode::OK, "{v2}");
    let (st, _) = app.delete(&path).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
});

both!(
    tenantview_lists_blessed_resources_and_the_callers_site,
    async |app: &TestApp| {
        let s = setup(app).await;
        let (st, v) = app.get("/xoslib/tenantview/").await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["blessed_deployment_names"], json!(["local"]));
        assert_eq!(v["blessed_site_names"], json!(["MySite"]));
        assert_eq!(
            v["blessed_images"],
            json!([s.image]),
            "centos is not offered in the deployment"
        );
        assert_eq!(v["current_user_login_base"], "mysite");
        assert_eq!(v["current_user_can_create_slice"], true);
        app.make_user("plain@mysite.org", "plain-password").await;
        let (_, v) = app
            .req(
                Method::GET,
                "/xoslib/tenantview/",
                Some(("plain@mysite.org", "plain-password")),
                None,
            )
            .await;
        assert_eq!(v["current_user_can_create_slice"], false);
        let (st, _) = app.req(Method::GET, "/xoslib/tenantview/", None, None).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
);

async fn dashboard_previews(backend: common::Backend) {
    let dir = std::env::temp_dir().join(format!("xos-dashboards-{}-{backend:?}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("helloworld.html"), "<p>hello from the template</p>").unwrap();
    std::fs::write(dir.join("preview.html"), "<p>unregistered preview</p>").unwrap();
    let Some(app) = TestApp::with_config(backend, |c| c.dashboards_dir = dir.clone()).await else {
        return;
    };
    app.make_user("plain@mysite.org", "plain-password").await;
    let page = async |path: &str, who: (&str, &str)| {
        let resp = tower::ServiceExt::oneshot(
            app.router.clone(),
            common::build(axum::http::Method::GET, path, Some(who), None),
        )
        .await
        .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&body).to_string())
    };
    let plain = ("plain@mysite.org", "plain-password");
    // The guide's preview URL: the registered view whose template is `helloworld`.
    for who in [common::ADMIN, plain] {
        for path in ["/admin/dashboard/helloworld/", "/admin/dashboard/Hello%20World/"] {
            let (s, body) = page(path, who).await;
            assert_eq!(s, axum::http::StatusCode::OK, "{path} {who:?}");
            assert!(body.contains("hello from the template"), "{body}");
        }
    }
    // An unregistered template: admins preview it by its file name, nobody else sees it.
    let (s, body) = page("/admin/dashboard/preview/", common::ADMIN).await;
    assert_eq!(s, axum::http::StatusCode::OK);
    assert!(body.contains("unregistered preview"), "{body}");
    let (s, body) = page("/admin/dashboard/preview/", plain).await;
    assert_eq!(s, axum::http::StatusCode::NOT_FOUND);
    assert!(!body.contains("unregistered preview"));
    // Nothing outside the directory, nothing that is not a template name.
    let (s, _) = page("/admin/dashboard/..%2Fsecret/", common::ADMIN).await;
    assert_eq!(s, axum::http::StatusCode::NOT_FOUND);
    app.finish().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_are_shown_by_name_or_template_and_admins_preview_unregistered_ones_sqlite() {
    dashboard_previews(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_are_shown_by_name_or_template_and_admins_preview_unregistered_ones_postgres() {
    dashboard_previews(common::Backend::Postgres).await;
}

both!(nul_text_in_xoslib_objects_is_a_400, async |app: &TestApp| {
    let (s, v) = app
        .post("/xoslib/dashboards/", json!({"dashboards": ["Developer\u{0}"]}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let many: Vec<String> = (0..101).map(|i| format!("v{i}")).collect();
    let (s, _) = app.post("/xoslib/dashboards/", json!({"dashboards": many})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let slice = app.make_slice("nul").await["id"].as_i64().unwrap();
    let (s, v) = app
        .patch(
            &format!("/xoslib/slicesplus/{slice}/"),
            json!({"site_allocation": {"My\u{0}Site": 1}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
});

/// The HTML of a page as `who` (basic auth).
async fn page(app: &TestApp, path: &str, who: (&str, &str)) -> String {
    use tower::ServiceExt;
    let resp = app
        .router
        .clone()
        .oneshot(common::build(Method::GET, path, Some(who), None))
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

/// The ids of the objects an admin list page links to (`/admin/core/slice/<id>/`).
fn linked_ids(html: &str, prefix: &str) -> std::collections::BTreeSet<i64> {
    html.match_indices(prefix)
        .filter_map(|(i, _)| {
            let rest = &html[i + prefix.len()..];
            let end = rest.find('/')?;
            rest[..end].parse().ok()
        })
        .collect()
}

both!(
    an_admin_list_page_holds_the_rows_its_user_may_see,
    async |app: &TestApp| {
        // Two slices; a user of the site who is a member of one of them.
        let mine = app.make_slice("listed").await["id"].as_i64().unwrap();
        let other = app.make_slice("unlisted").await["id"].as_i64().unwrap();
        let user = app.make_user("lister@mysite.org", "lister-password").await;
        app.add_slice_member(mine, user).await;
        let who = ("lister@mysite.org", "lister-password");
        let (s, api) = app
            .req(Method::GET, "/xos/slices/?no_hyperlinks=1", Some(who), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let visible: std::collections::BTreeSet<i64> = api
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["id"].as_i64())
            .collect();
        assert!(
            visible.contains(&mine) && !visible.contains(&other),
            "{visible:?}"
        );
        // The page the server sends has exactly those rows, linked, and no button the user may not
        // use; the admin's has every slice and the Add button.
        let html = page(app, "/admin/core/slice/", who).await;
        assert_eq!(linked_ids(&html, "/admin/core/slice/"), visible);
        let (_, caps) = app
            .req(Method::GET, "/xoslib/capabilities/slices/", Some(who), None)
            .await;
        assert_eq!(
            html.contains("href=\"/admin/core/slice/add/\""),
            caps["create"] == true,
            "{caps}"
        );
        let html = page(app, "/admin/core/slice/", common::ADMIN).await;
        let all = linked_ids(&html, "/admin/core/slice/");
        assert!(all.contains(&mine) && all.contains(&other), "{all:?}");
        assert!(html.contains("href=\"/admin/core/slice/add/\""));
        // A list of no model, and a form page, render without a first page.
        assert!(
            page(app, "/admin/core/nosuchmodel/", common::ADMIN)
                .await
                .contains("There is no such model.")
        );
        let form = page(app, &format!("/admin/core/slice/{mine}/"), common::ADMIN).await;
        assert!(form.contains("Change slice"), "the form page renders");
    }
);
