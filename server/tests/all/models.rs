//! Every core model through the API, on SQLite and Postgres: create, read, update, delete,
//! many-to-many writes, on-delete rules and the XOS rules the store enforces.

use crate::common;

use axum::http::StatusCode;
use common::{TestApp, make};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Create an object as admin (ids form), panicking with the answer when refused.
async fn id_of(app: &TestApp, plural: &str, query: &str) -> i64 {
    let (_, v) = app.get(&format!("/xos/{plural}/?{query}")).await;
    v[0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no {plural} with {query}: {v}"))
}

/// One object of every model, in dependency order: plural → id.
async fn fixture(app: &TestApp) -> BTreeMap<String, i64> {
    let mut ids = BTreeMap::new();
    let site = app.site_id().await;
    let admin = id_of(app, "users", "email=padmin@vicci.org").await;
    ids.insert("sites".into(), site);
    ids.insert("users".into(), admin);
    for (plural, role) in [
        ("site_roles", "pi"),
        ("slice_roles", "admin"),
        ("deploymentroles", "admin"),
    ] {
        ids.insert(plural.into(), id_of(app, plural, &format!("role={role}")).await);
    }
    ids.insert("flavors".into(), id_of(app, "flavors", "name=m1.small").await);
    ids.insert(
        "networktemplates".into(),
        id_of(app, "networktemplates", "name=Private").await,
    );
    let dep = make(app, "deployments", json!({"name": "local"})).await;
    ids.insert("deployments".into(), dep);
    let ctl = make(app, "controllers", json!({"name": "local-ctl", "backend_type": "local", "version": "1", "deployment": dep, "admin_password": "s3cret"})).await;
    ids.insert("controllers".into(), ctl);
    let sd = make(
        app,
        "sitedeployments",
        json!({"site": site, "deployment": dep, "controller": ctl}),
    )
    .await;
    ids.insert("sitedeployments".into(), sd);
    let node = make(
        app,
        "nodes",
        json!({"name": "node1.mysite.org", "site_deployment": sd}),
    )
    .await;
    ids.insert("nodes".into(), node);
    let image = make(
        app,
        "images",
        json!({"name": "ubuntu", "disk_format": "qcow2", "container_format": "bare", "deployments": [dep]}),
    )
    .await;
    ids.insert("images".into(), image);
    ids.insert(
        "imagedeploymentses".into(),
        id_of(app, "imagedeploymentses", &format!("image={image}")).await,
    );
    let service = make(
        app,
        "services",
        json!({"name": "helloworld", "versionNumber": "1.0"}),
    )
    .await;
    ids.insert("services".into(), service);
    let slice = make(app, "slices", json!({"name": "mysite_fixture", "site": site, "service": service, "default_image": image, "default_flavor": ids["flavors"]})).await;
    ids.insert("slices".into(), slice);
    ids.insert(
        "slice_privileges".into(),
        make(
            app,
            "slice_privileges",
            json!({"user": admin, "slice": slice, "role": ids["slice_roles"]}),
        )
        .await,
    );
    ids.insert(
        "siteprivileges".into(),
        make(
            app,
            "siteprivileges",
            json!({"user": admin, "site": site, "role": ids["site_roles"]}),
        )
        .await,
    );
    ids.insert(
        "deploymentprivileges".into(),
        make(
            app,
            "deploymentprivileges",
            json!({"user": admin, "deployment": dep, "role": ids["deploymentroles"]}),
        )
        .await,
    );
    let inst = make(
        app,
        "instances",
        json!({"slice": slice, "image": image, "node": node}),
    )
    .await;
    ids.insert("instances".into(), inst);
    let net = make(app, "networks", json!({"name": "mysite_fixture-net", "template": ids["networktemplates"], "owner": slice, "ports": "tcp 80, udp 5000:5010"})).await;
    ids.insert("networks".into(), net);
    ids.insert(
        "networkslices".into(),
        make(app, "networkslices", json!({"network": net, "slice": slice})).await,
    );
    ids.insert(
        "ports".into(),
        make(app, "ports", json!({"network": net, "instance": inst})).await,
    );
    let other = make(app, "slices", json!({"name": "mysite_other", "site": site})).await;
    ids.insert(
        "networkpermittedslices".into(),
        make(
            app,
            "networkpermittedslices",
            json!({"network": net, "slice": other}),
        )
        .await,
    );
    ids.insert(
        "controllersites".into(),
        make(app, "controllersites", json!({"site": site, "controller": ctl})).await,
    );
    ids.insert(
        "controllerslices".into(),
        make(
            app,
            "controllerslices",
            json!({"slice": slice, "controller": ctl}),
        )
        .await,
    );
    ids.insert(
        "controllerusers".into(),
        make(app, "controllerusers", json!({"user": admin, "controller": ctl})).await,
    );
    ids.insert(
        "controllerimages".into(),
        make(
            app,
            "controllerimages",
            json!({"image": image, "controller": ctl}),
        )
        .await,
    );
    ids.insert(
        "controllernetworks".into(),
        make(
            app,
            "controllernetworks",
            json!({"network": net, "controller": ctl}),
        )
        .await,
    );
    ids.insert(
        "tenants".into(),
        make(
            app,
            "tenants",
            json!({"provider_service": service, "subscriber_user": admin}),
        )
        .await,
    );
    let view = make(
        app,
        "dashboardviews",
        json!({"name": "hello world", "url": "template:helloworld", "deployments": [dep]}),
    )
    .await;
    ids.insert("dashboardviews".into(), view);
    ids.insert(
        "dashboardviewdeployments".into(),
        id_of(app, "dashboardviewdeployments", &format!("dashboardView={view}")).await,
    );
    ids.insert(
        "userdashboardviews".into(),
        make(
            app,
            "userdashboardviews",
            json!({"user": admin, "dashboardView": view, "order": 1}),
        )
        .await,
    );
    ids.insert("tags".into(), make(app, "tags", json!({"service": service, "name": "owner-team", "value": "xos", "content_type": "Slice", "object_id": slice})).await);
    ids.insert(
        "roles".into(),
        make(
            app,
            "roles",
            json!({"role_type": "site_admin", "description": "Site admin", "content_type": "Site"}),
        )
        .await,
    );
    let fd = make(
        app,
        "flavordeployments",
        json!({"flavor": ids["flavors"], "deployment": dep}),
    )
    .await;
    ids.insert("flavordeployments".into(), fd);
    let hw = make(
        app,
        "helloworldservices",
        json!({"name": "hwsvc", "versionNumber": "1.0"}),
    )
    .await;
    ids.insert("helloworldservices".into(), hw);
    ids.insert(
        "helloworldtenants".into(),
        make(
            app,
            "helloworldtenants",
            json!({"name": "hello", "provider_service": hw, "display_message": "Hi"}),
        )
        .await,
    );
    // The example service's model.
    ids.insert(
        "examplenotes".into(),
        make(app, "examplenotes", json!({"title": "note", "body": "b"})).await,
    );
    // The CDN services' models.
    let hpc = make(
        app,
        "hpcservices",
        json!({"name": "hpcsvc", "versionNumber": "1.0"}),
    )
    .await;
    ids.insert("hpcservices".into(), hpc);
    let sp = make(app, "serviceproviders", json!({"name": "sp", "hpcService": hpc})).await;
    ids.insert("serviceproviders".into(), sp);
    let cp = make(
        app,
        "contentproviders",
        json!({"name": "cp", "serviceProvider": sp}),
    )
    .await;
    ids.insert("contentproviders".into(), cp);
    ids.insert(
        "contentproviderusers".into(),
        make(
            app,
            "contentproviderusers",
            json!({"contentprovider": cp, "user": admin}),
        )
        .await,
    );
    let origin = make(
        app,
        "originservers",
        json!({"url": "http://127.0.0.1:9/", "contentProvider": cp}),
    )
    .await;
    ids.insert("originservers".into(), origin);
    let prefix = make(
        app,
        "cdnprefixs",
        json!({"prefix": "cdn.example.org", "contentProvider": cp, "defaultOriginServer": origin}),
    )
    .await;
    ids.insert("cdnprefixs".into(), prefix);
    ids.insert(
        "accessmaps".into(),
        make(
            app,
            "accessmaps",
            json!({"name": "am", "contentProvider": cp, "map": "allow all"}),
        )
        .await,
    );
    ids.insert(
        "sitemaps".into(),
        make(
            app,
            "sitemaps",
            json!({"name": "sm", "cdnPrefix": prefix, "map": "0.0.0.0/0 c1"}),
        )
        .await,
    );
    ids.insert(
        "hpchealthchecks".into(),
        make(
            app,
            "hpchealthchecks",
            json!({"hpcService": hpc, "kind": "http", "resource_name": "/"}),
        )
        .await,
    );
    let rr = make(
        app,
        "requestrouterservices",
        json!({"name": "rr", "versionNumber": "1.0"}),
    )
    .await;
    ids.insert("requestrouterservices".into(), rr);
    ids.insert(
        "servicemaps".into(),
        make(
            app,
            "servicemaps",
            json!({"name": "cdn", "owner": hpc, "slice": ids["slices"], "prefix": "cdn.example.org"}),
        )
        .await,
    );
    // Syndicate storage's models.
    ids.insert(
        "syndicateservices".into(),
        make(
            app,
            "syndicateservices",
            json!({"name": "syndicate", "versionNumber": "1.0"}),
        )
        .await,
    );
    ids.insert(
        "syndicateprincipals".into(),
        make(
            app,
            "syndicateprincipals",
            json!({"principal_id": "padmin@vicci.org"}),
        )
        .await,
    );
    let vol = make(
        app,
        "volumes",
        json!({"name": "vol", "owner_id": admin, "blocksize": 4096}),
    )
    .await;
    ids.insert("volumes".into(), vol);
    ids.insert(
        "volumeaccessrights".into(),
        make(
            app,
            "volumeaccessrights",
            json!({"owner_id": admin, "volume": vol}),
        )
        .await,
    );
    ids.insert(
        "slicesecrets".into(),
        make(
            app,
            "slicesecrets",
            json!({"slice_id": ids["slices"], "secret": "s3cret"}),
        )
        .await,
    );
    ids.insert(
        "volumeslices".into(),
        make(
            app,
            "volumeslices",
            json!({"volume_id": vol, "slice_id": ids["slices"], "UG_portnum": 32000, "RG_portnum": 32001}),
        )
        .await,
    );
    let (s, tok) = app.post("/xoslib/tokens/", json!({"name": "fixture"})).await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    ids.insert("apitokens".into(), tok["id"].as_i64().unwrap());
    ids
}

both!(
    every_model_is_served_and_covered_by_this_test,
    async |app: &TestApp| {
        let ids = fixture(app).await;
        let declared: Vec<String> = app
            .store
            .registry()
            .models
            .iter()
            .map(|m| m.plural.clone())
            .collect();
        for plural in &declared {
            assert!(
                ids.contains_key(plural),
                "the fixture does not create any {plural}"
            );
            let id = ids[plural];
            let (s, list) = app.get(&format!("/xos/{plural}/")).await;
            assert_eq!(s, StatusCode::OK, "{plural}");
            assert!(
                list.as_array().unwrap().iter().any(|o| o["id"] == id),
                "{plural} list lacks {id}"
            );
            let (s, obj) = app.get(&format!("/xos/{plural}/{id}/")).await;
            assert_eq!(s, StatusCode::OK, "{plural}/{id}");
            assert!(obj["humanReadableName"].is_string(), "{plural}: {obj}");
            // PUT back what was read (hyperlinks and all): accepted, nothing changes.
            let (s, v) = app.put(&format!("/xos/{plural}/{id}/"), obj.clone()).await;
            assert_eq!(s, StatusCode::OK, "PUT {plural}/{id}: {v}");
            assert_eq!(
                v["updated"], obj["updated"],
                "{plural}: a PUT of the same values is not a change"
            );
        }
        let (_, ctl) = app
            .get(&format!("/xos/controllers/{}/", ids["controllers"]))
            .await;
        assert!(
            ctl.get("admin_password").is_none(),
            "secrets are write-only: {ctl}"
        );
        // Delete everything, children before parents.
        let order = [
            "volumeslices",
            "slicesecrets",
            "volumeaccessrights",
            "volumes",
            "syndicateprincipals",
            "syndicateservices",
            "servicemaps",
            "requestrouterservices",
            "hpchealthchecks",
            "sitemaps",
            "accessmaps",
            "cdnprefixs",
            "originservers",
            "contentproviderusers",
            "contentproviders",
            "serviceproviders",
            "hpcservices",
            "apitokens",
            "flavordeployments",
            "roles",
            "tags",
            "userdashboardviews",
            "dashboardviewdeployments",
            "dashboardviews",
            "tenants",
            "controllernetworks",
            "controllerimages",
            "controllerusers",
            "controllerslices",
            "controllersites",
            "networkpermittedslices",
            "ports",
            "networkslices",
            "networks",
            "instances",
            "deploymentprivileges",
            "siteprivileges",
            "slice_privileges",
            "slices",
            "services",
            "imagedeploymentses",
            "images",
            "nodes",
            "sitedeployments",
            "controllers",
            "deployments",
        ];
        for plural in order {
            let (s, v) = app.delete(&format!("/xos/{plural}/{}/", ids[plural])).await;
            assert_eq!(s, StatusCode::NO_CONTENT, "DELETE {plural}: {v}");
        }
    }
);

both!(
    many_to_many_writes_add_and_remove_through_rows,
    async |app: &TestApp| {
        let site = app.site_id().await;
        let d1 = make(app, "deployments", json!({"name": "one"})).await;
        let d2 = make(app, "deployments", json!({"name": "two"})).await;
        let (s, v) = app
            .patch(
                &format!("/xos/sites/{site}/?no_hyperlinks=1"),
                json!({"deployments": [d1, d2]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["deployments"], json!([d1, d2]));
        assert_eq!(app.count("core_sitedeployment").await, 2);
        let (_, v) = app.get(&format!("/xos/sites/{site}/")).await;
        assert_eq!(
            v["deployments"],
            json!([
                format!("http://testserver/xos/deployments/{d1}/"),
                format!("http://testserver/xos/deployments/{d2}/")
            ])
        );
        // Hyperlinks are accepted on write; d1 is removed, d2 kept (same through row).
        let (_, before) = app.get(&format!("/xos/sitedeployments/?deployment={d2}")).await;
        let (s, v) = app
            .patch(
                &format!("/xos/sites/{site}/?no_hyperlinks=1"),
                json!({"deployments": [format!("http://testserver/xos/deployments/{d2}/")]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["deployments"], json!([d2]));
        let (_, after) = app.get(&format!("/xos/sitedeployments/?deployment={d2}")).await;
        assert_eq!(before[0]["id"], after[0]["id"]);
        // Bad lists are refused and change nothing.
        for bad in [
            json!({"deployments": [999_999]}),
            json!({"deployments": "one"}),
            json!({"deployments": [null]}),
        ] {
            let (s, v) = app.patch(&format!("/xos/sites/{site}/"), bad.clone()).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
            assert!(v["deployments"].is_array(), "{v}");
        }
        let (_, v) = app.get(&format!("/xos/sites/{site}/?no_hyperlinks=1")).await;
        assert_eq!(v["deployments"], json!([d2]));
        // Deleting the deployment removes the through row (cascade).
        app.delete(&format!("/xos/deployments/{d2}/")).await;
        let (_, v) = app.get(&format!("/xos/sites/{site}/?no_hyperlinks=1")).await;
        assert_eq!(v["deployments"], json!([]));
    }
);

both!(
    on_delete_rules_protect_cascade_and_set_null,
    async |app: &TestApp| {
        let ids = fixture(app).await;
        // PROTECT: an image used by an instance, a role used by a privilege.
        let before = app.count("core_image").await;
        let (s, v) = app.delete(&format!("/xos/images/{}/", ids["images"])).await;
        assert_eq!(s, StatusCode::CONFLICT, "{v}");
        assert!(v["detail"].as_str().unwrap().contains("instances"), "{v}");
        assert_eq!(app.count("core_image").await, before);
        let (s, _) = app
            .delete(&format!("/xos/slice_roles/{}/", ids["slice_roles"]))
            .await;
        assert_eq!(s, StatusCode::CONFLICT);
        // SET_NULL: a slice's default flavor.
        let spare = make(app, "flavors", json!({"name": "tiny", "flavor": "tiny"})).await;
        let (s, _) = app
            .patch(
                &format!("/xos/slices/{}/", ids["slices"]),
                json!({"default_flavor": spare}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = app.delete(&format!("/xos/flavors/{spare}/")).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let (_, slice) = app.get(&format!("/xos/slices/{}/", ids["slices"])).await;
        assert_eq!(slice["default_flavor"], Value::Null);
        // CASCADE: deleting the slice takes its instances, privileges, networks and their ports.
        let (s, v) = app.delete(&format!("/xos/slices/{}/", ids["slices"])).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        for (plural, id) in [
            ("instances", ids["instances"]),
            ("slice_privileges", ids["slice_privileges"]),
            ("networks", ids["networks"]),
            ("ports", ids["ports"]),
            ("controllerslices", ids["controllerslices"]),
        ] {
            let (s, _) = app.get(&format!("/xos/{plural}/{id}/")).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{plural} {id} should be gone");
        }
        // Now the image is free to go.
        let (s, v) = app.delete(&format!("/xos/images/{}/", ids["images"])).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    }
);

both!(
    soft_deleted_parents_wait_for_their_children,
    async |app: &TestApp| {
        // With a synchronizer observing instances, a cascaded instance stays soft-deleted, so its
        // slice is kept (soft-deleted too) until the instance is purged.
        let ids = fixture(app).await;
        app.store.set_observed("Instance", true);
        let (s, v) = app.delete(&format!("/xos/slices/{}/", ids["slices"])).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let (s, _) = app.get(&format!("/xos/slices/{}/", ids["slices"])).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "hidden at once");
        assert!(
            app.count("core_instance").await >= 1,
            "instance kept for the backend delete"
        );
        // The slice's name is free again even though its row remains.
        let site = app.site_id().await;
        make(app, "slices", json!({"name": "mysite_fixture", "site": site})).await;
        // Purging the instance (after the backend delete) is possible; the store refuses to purge
        // the slice first.
        let slice = app.store.model("Slice");
        let instance = app.store.model("Instance");
        let mut unit = app.store.begin(server::store::Actor::System).await.unwrap();
        assert!(matches!(
            unit.purge(slice, ids["slices"]).await,
            Err(server::store::StoreError::Conflict(_))
        ));
        drop(unit);
        let mut unit = app.store.begin(server::store::Actor::System).await.unwrap();
        unit.purge(instance, ids["instances"]).await.unwrap();
        unit.commit().await.unwrap();
    }
);

both!(xos_rules_are_enforced, async |app: &TestApp| {
    let ids = fixture(app).await;
    // Node: site defaults to the site deployment's site.
    let (_, node) = app
        .get(&format!("/xos/nodes/{}/?no_hyperlinks=1", ids["nodes"]))
        .await;
    assert_eq!(node["site"], ids["sites"]);
    // Instance: name, deployment and flavor defaults; creator = caller.
    let (_, inst) = app
        .get(&format!("/xos/instances/{}/?no_hyperlinks=1", ids["instances"]))
        .await;
    assert_eq!(inst["name"], "mysite_fixture");
    assert_eq!(inst["deployment"], ids["deployments"]);
    assert_eq!(inst["flavor"], ids["flavors"], "m1.small is the default flavor");
    assert_eq!(inst["creator"], ids["users"]);

    let container = make(
        app,
        "images",
        json!({"name": "nginx", "kind": "container", "disk_format": "none", "container_format": "docker"}),
    )
    .await;
    let bad: Vec<(&str, Value, &str)> = vec![
        (
            "instances",
            json!({"slice": ids["slices"], "image": container, "node": ids["nodes"]}),
            "image",
        ),
        (
            "instances",
            json!({"slice": ids["slices"], "image": container, "node": ids["nodes"], "isolation": "container_vm"}),
            "parent",
        ),
        (
            "instances",
            json!({"slice": ids["slices"], "image": ids["images"], "node": ids["nodes"], "parent": ids["instances"]}),
            "parent",
        ),
        (
            "networks",
            json!({"name": "n2", "template": ids["networktemplates"], "owner": ids["slices"], "ports": "tcp eighty"}),
            "ports",
        ),
        (
            "tenants",
            json!({"provider_service": ids["services"], "subscriber_user": ids["users"], "subscriber_service": ids["services"]}),
            "non_field_errors",
        ),
        (
            "tags",
            json!({"service": ids["services"], "name": "t", "value": "v", "content_type": "Nonsense", "object_id": 1}),
            "content_type",
        ),
        (
            "tags",
            json!({"service": ids["services"], "name": "t", "value": "v", "content_type": "Slice", "object_id": 999_999}),
            "object_id",
        ),
        (
            "tags",
            json!({"service": ids["services"], "name": "not a slug", "value": "v", "content_type": "Slice", "object_id": ids["slices"]}),
            "name",
        ),
        (
            "dashboardviews",
            json!({"name": "hello, world", "url": "template:x"}),
            "name",
        ),
        (
            "dashboardviews",
            json!({"name": "ftp view", "url": "ftp://x"}),
            "url",
        ),
        (
            "slices",
            json!({"name": "mysite_neg", "site": ids["sites"], "max_instances": -1}),
            "max_instances",
        ),
        (
            "roles",
            json!({"role_type": "r", "description": "d", "content_type": "Nothing"}),
            "content_type",
        ),
        (
            "ports",
            json!({"network": ids["networks"], "instance": ids["instances"], "ip": "300.1.1.1"}),
            "ip",
        ),
        (
            "sitedeployments",
            json!({"site": ids["sites"], "deployment": ids["deployments"], "controller": ids["controllers"]}),
            "non_field_errors",
        ),
        (
            "images",
            json!({"name": "ubuntu", "disk_format": "qcow2", "container_format": "bare"}),
            "name",
        ),
    ];
    for (plural, body, field) in bad {
        let (s, v) = app.post(&format!("/xos/{plural}/"), body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{plural} {body}: {v}");
        assert!(v[field].is_array(), "{plural} {body}: expected {field} in {v}");
    }
    // A slice joins only networks it owns, is permitted on, or that permit all slices.
    let stranger = make(
        app,
        "slices",
        json!({"name": "mysite_stranger", "site": ids["sites"]}),
    )
    .await;
    let (s, v) = app
        .post(
            "/xos/networkslices/",
            json!({"network": ids["networks"], "slice": stranger}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    app.patch(
        &format!("/xos/networks/{}/", ids["networks"]),
        json!({"permit_all_slices": true}),
    )
    .await;
    let (s, v) = app
        .post(
            "/xos/networkslices/",
            json!({"network": ids["networks"], "slice": stranger}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Privileges are not granted to inactive users.
    let uid = app.make_user("inactive@x.org", "pw-inactive").await;
    app.patch(&format!("/xos/users/{uid}/"), json!({"is_active": false}))
        .await;
    let (s, v) = app
        .post(
            "/xos/slice_privileges/",
            json!({"user": uid, "slice": ids["slices"], "role": ids["slice_roles"]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["user"].is_array(), "{v}");
});

both!(
    large_and_unusual_strings_are_stored_exactly,
    async |app: &TestApp| {
        let site = app.site_id().await;
        let service = make(app, "services", json!({"name": "s", "versionNumber": "1"})).await;
        let big = "x".repeat(1024 * 1024);
        let (s, v) = app
            .patch(
                &format!("/xos/services/{service}/"),
                json!({"service_specific_attribute": big}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            v["service_specific_attribute"].as_str().unwrap().len(),
            1024 * 1024
        );
        let emoji = "🚀 naïve 日本語 ' \" ; -- /* */ \\";
        let slice = make(
            app,
            "slices",
            json!({"name": "mysite_u", "site": site, "description": emoji}),
        )
        .await;
        let (_, v) = app.get(&format!("/xos/slices/{slice}/")).await;
        assert_eq!(v["description"], emoji);
    }
);

both!(a_slice_runs_at_most_max_instances, async |app: &TestApp| {
    let ids = fixture(app).await;
    let slice = ids["slices"];
    let (s, _) = app
        .patch(&format!("/xos/slices/{slice}/"), json!({"max_instances": 2}))
        .await;
    assert_eq!(s, StatusCode::OK);
    // The fixture has one instance: one more fits, the third does not.
    let body = json!({"slice": slice, "image": ids["images"], "node": ids["nodes"]});
    let (s, v) = app.post("/xos/instances/", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let before = app.count("core_instance").await;
    let (s, v) = app.post("/xos/instances/", body.clone()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["slice"][0].as_str().unwrap().contains("max_instances"), "{v}");
    assert_eq!(app.count("core_instance").await, before);
    // An instance already in the slice may still be changed.
    let (s, v) = app
        .patch(
            &format!("/xos/instances/{}/", ids["instances"]),
            json!({"userData": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // SlicePlus allocations are bounded before anything is made.
    let (s, v) = app
        .put(
            &format!("/xoslib/slicesplus/{slice}/"),
            json!({"name": "mysite_fixture", "site": ids["sites"], "site_allocation": {"MySite": 1_000_000}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["site_allocation"].is_array(), "{v}");
});
