//! The REST contract, on SQLite and Postgres: shapes, status codes, queries, and bad input that
//! must be refused with a field-named 4xx and change nothing.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, TestApp, build};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::eventually;

both!(
    lists_are_plain_arrays_with_or_without_trailing_slash,
    async |app: &TestApp| {
        for path in ["/xos/sites/", "/xos/sites", "/xos/users/", "/xos/slices"] {
            let (s, v) = app.get(path).await;
            assert_eq!(s, StatusCode::OK, "{path}");
            assert!(v.is_array(), "{path}: {v}");
        }
        let (s, v) = app.get("/xos/users/").await;
        assert_eq!(s, StatusCode::OK);
        let admin = &v[0];
        assert_eq!(admin["email"], "padmin@vicci.org");
        assert_eq!(admin["humanReadableName"], "padmin@vicci.org");
        assert!(
            admin.get("password").is_none(),
            "password must never be returned: {admin}"
        );
        assert!(
            admin.get("row_version").is_none(),
            "internal counters stay internal"
        );
        assert!(
            admin["site"]
                .as_str()
                .unwrap()
                .starts_with("http://testserver/xos/sites/")
        );
        let (s, root) = app.get("/xos/").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(root["slices"], "http://testserver/xos/slices/");
    }
);

both!(
    a_slice_goes_through_create_read_update_delete,
    async |app: &TestApp| {
        let site = app.site_id().await;
        let (s, created) = app
            .post(
                "/xos/slices/",
                json!({"name": "mysite_crud", "site": site, "description": "first"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let id = created["id"].as_i64().unwrap();
        assert_eq!(created["site"], format!("http://testserver/xos/sites/{site}/"));
        assert_eq!(created["backend_status"], "0 - Provisioning in progress");
        assert_eq!(created["max_instances"], 10);
        assert_eq!(created["humanReadableName"], "mysite_crud");
        assert_eq!(created["validators"]["name"], json!(["notBlank"]));
        // The creator defaults to the caller.
        assert!(created["creator"].as_str().unwrap().contains("/xos/users/"));

        let (s, got) = app.get(&format!("/xos/slices/{id}/?no_hyperlinks=1")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(got["site"], site);

        // PUT back what was fetched (read-only keys included) with one change: accepted.
        let mut full = got.clone();
        full["description"] = json!("second");
        let (s, put) = app.put(&format!("/xos/slices/{id}?no_hyperlinks=1"), full).await;
        assert_eq!(s, StatusCode::OK, "{put}");
        assert_eq!(put["description"], "second");
        assert_ne!(put["updated"], got["updated"]);

        let (s, patched) = app
            .patch(&format!("/xos/slices/{id}/"), json!({"max_instances": "3"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{patched}");
        assert_eq!(patched["max_instances"], 3);
        assert_eq!(patched["description"], "second");

        // A foreign key may be written as the hyperlink the API emits.
        let (s, v) = app
            .patch(
                &format!("/xos/slices/{id}/"),
                json!({"site": format!("http://testserver/xos/sites/{site}/")}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");

        let (s, _) = app.delete(&format!("/xos/slices/{id}/")).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, v) = app.get(&format!("/xos/slices/{id}/")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v, json!({"detail": "Not found."}));
        let (s, _) = app.delete(&format!("/xos/slices/{id}/")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
);

both!(
    indent_pretty_prints_with_the_requested_width,
    async |app: &TestApp| {
        let req = axum::http::Request::builder()
            .uri("/xos/sites/")
            .header("host", "testserver")
            .header("accept", "application/json; indent=4")
            .header("authorization", "Basic cGFkbWluQHZpY2NpLm9yZzpsZXRtZWlu")
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(app.router.clone(), req).await.unwrap();
        let text = String::from_utf8(
            axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert!(
            text.starts_with("[\n    {\n        \"humanReadableName\""),
            "{text}"
        );
    }
);

both!(queries_filter_search_order_and_page, async |app: &TestApp| {
    for (n, d) in [("a", "alpha"), ("b", "beta"), ("c", "gamma beta")] {
        let site = app.site_id().await;
        let (s, v) = app
            .post(
                "/xos/slices/",
                json!({"name": format!("mysite_{n}"), "site": site, "description": d}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let names = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (_, v) = app.get("/xos/slices/?name=mysite_b").await;
    assert_eq!(names(&v), ["mysite_b"]);
    let (_, v) = app
        .get("/xos/slices/?name__in=mysite_a,mysite_c&ordering=-name")
        .await;
    assert_eq!(names(&v), ["mysite_c", "mysite_a"]);
    let (_, v) = app
        .get("/xos/slices/?description__icontains=BETA&ordering=name")
        .await;
    assert_eq!(names(&v), ["mysite_b", "mysite_c"]);
    let (_, v) = app.get("/xos/slices/?search=gamma").await;
    assert_eq!(names(&v), ["mysite_c"]);
    let (_, v) = app.get("/xos/slices/?search=100%25").await;
    assert_eq!(names(&v), Vec::<String>::new(), "% is literal in search");

    let (s, h, v) = app
        .call(build(
            Method::GET,
            "/xos/slices/?ordering=name&limit=2&offset=1",
            Some(ADMIN),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(names(&v), ["mysite_b", "mysite_c"]);
    assert_eq!(h["x-total-count"], "3");

    let (s, v) = app.get("/xos/slices/?max_instances=lots").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["max_instances"].is_array(), "{v}");
    let (s, v) = app.get("/xos/slices/?ordering=nonsense").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["ordering"].is_array(), "{v}");
    let (s, v) = app.get("/xos/slices/?limit=-1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
});

// Each bad input gets a 400 naming the field, and the table is unchanged.
both!(
    bad_input_is_refused_with_field_errors_and_changes_nothing,
    async |app: &TestApp| {
        let site = app.site_id().await;
        let existing = app.make_slice("taken").await;
        let before = app.count("core_slice").await;
        let long = "x".repeat(81);
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"name": "mysite_x", "site": site, "max_instances": "many"}),
                "max_instances",
            ),
            (
                json!({"name": "mysite_x", "site": site, "enabled": "perhaps"}),
                "enabled",
            ),
            (
                json!({"name": "mysite_x", "site": site, "description": ["a"]}),
                "description",
            ),
            (json!({"site": site}), "name"),
            (json!({"name": "mysite_x"}), "site"),
            (
                json!({"name": "mysite_x", "site": site, "colour": "red"}),
                "colour",
            ),
            (json!({"name": format!("mysite_{long}"), "site": site}), "name"),
            (json!({"name": "mysite_x", "site": 999_999}), "site"),
            (json!({"name": "mysite_taken", "site": site}), "name"),
            (json!({"name": "othersite_x", "site": site}), "name"),
            (json!({"name": "mysite_", "site": site}), "name"),
            (json!({"name": "mysite_x y", "site": site}), "name"),
            (
                json!({"name": "mysite_x", "site": site, "max_instances": -1}),
                "max_instances",
            ),
            (
                json!({"name": "mysite_x", "site": site, "network": "bogus"}),
                "network",
            ),
            (
                json!({"name": "mysite_x", "site": site, "slice_url": "not a url"}),
                "slice_url",
            ),
            (
                json!({"name": "mysite_x", "site": "http://testserver/xos/users/1/"}),
                "site",
            ),
            (json!({"name": null, "site": site}), "name"),
        ];
        for (body, field) in cases {
            let (s, v) = app.post("/xos/slices/", body.clone()).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{body} → {v}");
            assert!(
                v[field].is_array() && !v[field][0].as_str().unwrap().is_empty(),
                "{body}: expected {field} in {v}"
            );
        }
        assert_eq!(app.count("core_slice").await, before, "nothing may be written");

        // Malformed JSON, a non-object body, and a wrong content type.
        let (s, _, v) = app
            .call(build(
                Method::POST,
                "/xos/slices/",
                Some(ADMIN),
                Some("{\"name\": ".into()),
            ))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(
            v["detail"].as_str().unwrap().starts_with("JSON parse error"),
            "{v}"
        );
        let (s, _, v) = app
            .call(build(
                Method::POST,
                "/xos/slices/",
                Some(ADMIN),
                Some("[1, 2]".into()),
            ))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["non_field_errors"].is_array(), "{v}");
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/xos/slices/")
            .header("host", "testserver")
            .header("content-type", "text/plain")
            .header("authorization", "Basic cGFkbWluQHZpY2NpLm9yZzpsZXRtZWlu")
            .body(axum::body::Body::from("name=x"))
            .unwrap();
        let (s, _, _) = app.call(req).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);

        // Updates: bad values, unknown ids, duplicate values; the row is unchanged.
        let id = existing["id"].as_i64().unwrap();
        let other = app.make_slice("other").await;
        let (s, v) = app
            .patch(
                &format!("/xos/slices/{}/", other["id"]),
                json!({"name": "mysite_taken"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["name"][0].as_str().unwrap().contains("already exists"), "{v}");
        let (s, v) = app
            .patch(
                &format!("/xos/slices/{id}/"),
                json!({"max_instances": [], "description": "changed"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        let (_, now) = app.get(&format!("/xos/slices/{id}/?no_hyperlinks=1")).await;
        assert_eq!(now["description"], existing["description"]);
        assert_eq!(now["updated"], existing["updated"]);
        let (s, _) = app
            .patch("/xos/slices/424242/", json!({"description": "x"}))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app.get("/xos/slices/not-a-number/").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app.get("/xos/nonsense/").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // PUT without the required fields is refused; PATCH is not.
        let (s, v) = app
            .put(&format!("/xos/slices/{id}/"), json!({"description": "x"}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(v["name"].is_array(), "{v}");
    }
);

both!(strings_are_stored_exactly, async |app: &TestApp| {
    let site = app.site_id().await;
    let tricky = "Robert'); DROP TABLE core_slice;-- \u{1F600} ünïcødé \"quoted\" \\ back\nline";
    let (s, v) = app
        .post(
            "/xos/slices/",
            json!({"name": "mysite_tricky", "site": site, "description": tricky}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, got) = app.get(&format!("/xos/slices/{}/", v["id"])).await;
    assert_eq!(got["description"], tricky);
    let (s, v) = app.get("/xos/slices/?description__icontains=DROP%20TABLE").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
});

both!(
    a_unique_name_can_be_reused_after_delete_even_when_soft_deleted,
    async |app: &TestApp| {
        // Observed models are soft-deleted: hidden at once, the row kept for the synchronizer.
        app.store.set_observed("Slice", true);
        let first = app.make_slice("again").await;
        let (s, _) = app.delete(&format!("/xos/slices/{}/", first["id"])).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(app.count("core_slice").await, 1, "soft-deleted row kept");
        let (_, v) = app.get("/xos/slices/").await;
        assert_eq!(v.as_array().unwrap().len(), 0, "and hidden");
        let second = app.make_slice("again").await;
        assert_ne!(first["id"], second["id"]);
        // Unobserved models are deleted at once.
        app.store.set_observed("Slice", false);
        let (s, _) = app.delete(&format!("/xos/slices/{}/", second["id"])).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(app.count("core_slice").await, 1);
    }
);

both!(
    deleting_a_site_cascades_and_clears_references,
    async |app: &TestApp| {
        let (s, site) = app
            .post(
                "/xos/sites/",
                json!({"name": "Other", "login_base": "other", "abbreviated_name": "o"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{site}");
        let sid = site["id"].as_i64().unwrap();
        let (s, user) = app
            .post(
                "/xos/users/",
                json!({"email": "u@other.org", "firstname": "U", "lastname": "O", "site": sid}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{user}");
        let uid = user["id"].as_i64().unwrap();
        let home = app.site_id().await;
        let (s, slice) = app
            .post(
                "/xos/slices/?no_hyperlinks=1",
                json!({"name": "mysite_kept", "site": home, "creator": uid}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{slice}");
        let (s, v) = app
            .post("/xos/slices/", json!({"name": "other_gone", "site": sid}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        // Site → users and slices cascade; the kept slice's creator (SET_NULL) is cleared.
        let (s, _) = app.delete(&format!("/xos/sites/{sid}/")).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = app.get(&format!("/xos/users/{uid}/")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, v) = app.get("/xos/slices/?name=other_gone").await;
        assert_eq!(v, json!([]));
        let (_, kept) = app
            .get(&format!("/xos/slices/{}/?no_hyperlinks=1", slice["id"]))
            .await;
        assert_eq!(kept["creator"], Value::Null);
    }
);

both!(
    authentication_answers_401_and_only_offers_basic_to_basic_clients,
    async |app: &TestApp| {
        let (s, h, v) = app.call(build(Method::GET, "/xos/slices/", None, None)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(v["detail"], "Authentication credentials were not provided.");
        assert!(
            h.get("www-authenticate").is_none(),
            "no browser pop-up for session clients"
        );
        let (s, h, v) = app
            .call(build(
                Method::GET,
                "/xos/slices/",
                Some(("padmin@vicci.org", "wrong")),
                None,
            ))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(v["detail"], "Invalid username/password.");
        assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic"));
        let (s, _, _) = app
            .call(build(
                Method::GET,
                "/xos/slices/",
                Some(("nobody@x.org", "letmein")),
                None,
            ))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // The cached credential stops working when the password changes.
        let uid = app.make_user("pw@x.org", "old-password").await;
        let (s, _) = app
            .req(
                Method::GET,
                "/xos/users/",
                Some(("pw@x.org", "old-password")),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app
            .patch(&format!("/xos/users/{uid}/"), json!({"password": "new-password"}))
            .await;
        assert_eq!(s, StatusCode::OK);
        eventually(
            "the old password to be refused",
            Duration::from_secs(5),
            || async {
                let who = Some(("pw@x.org", "old-password"));
                let (s, _) = app.req(Method::GET, "/xos/users/", who, None).await;
                (s == StatusCode::UNAUTHORIZED).then_some(())
            },
        )
        .await;
        let (s, _) = app
            .req(
                Method::GET,
                "/xos/users/",
                Some(("pw@x.org", "new-password")),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        // A deactivated user is refused.
        let (s, _) = app
            .patch(&format!("/xos/users/{uid}/"), json!({"is_active": false}))
            .await;
        assert_eq!(s, StatusCode::OK);
        eventually(
            "the deactivated user to be refused",
            Duration::from_secs(5),
            || async {
                let who = Some(("pw@x.org", "new-password"));
                let (s, _) = app.req(Method::GET, "/xos/users/", who, None).await;
                (s == StatusCode::UNAUTHORIZED).then_some(())
            },
        )
        .await;
    }
);

both!(
    plain_users_see_their_own_objects_and_cannot_escalate,
    async |app: &TestApp| {
        let me = app.make_user("user@x.org", "secret-pass").await;
        let who = Some(("user@x.org", "secret-pass"));
        let (s, v) = app.req(Method::GET, "/xos/users/", who, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 1, "only themselves: {v}");
        let (s, _) = app.req(Method::GET, "/xos/users/1/", who, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "other users are invisible");
        let (s, v) = app
            .req(
                Method::PATCH,
                &format!("/xos/users/{me}/"),
                who,
                Some(json!({"phone": "555"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = app
            .req(
                Method::PATCH,
                &format!("/xos/users/{me}/"),
                who,
                Some(json!({"is_admin": true})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        let (_, v) = app.get(&format!("/xos/users/{me}/")).await;
        assert_eq!(v["is_admin"], false);
        assert_eq!(v["phone"], "555");
        let (s, _) = app
            .req(
                Method::POST,
                "/xos/sites/",
                who,
                Some(json!({"name": "N", "login_base": "n", "abbreviated_name": "n"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let slice = app.make_slice("admins").await;
        let (s, _) = app
            .req(Method::GET, &format!("/xos/slices/{}/", slice["id"]), who, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app
            .req(
                Method::DELETE,
                &format!("/xos/slices/{}/", slice["id"]),
                who,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(app.count("core_slice").await, 1);
    }
);

both!(
    a_nul_character_is_a_field_error_on_both_databases,
    async |app: &TestApp| {
        // The confirmed case: on Postgres a dashboard view named "nul\u0000x" answered 500.
        let before = app.count("core_dashboardview").await;
        let (s, v) = app
            .post(
                "/xos/dashboardviews/",
                json!({"name": "nul\u{0}x", "url": "template:x"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["name"][0], "Null characters are not allowed.");
        assert_eq!(
            app.count("core_dashboardview").await,
            before,
            "nothing was written"
        );
        // In a filter, a search, a login name and a dashboard path: never a 500.
        for path in [
            "/xos/slices/?name=a%00b",
            "/xos/slices/?search=a%00b",
            "/xos/slices/?name__icontains=%00",
        ] {
            let (s, v) = app.get(path).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {v}");
        }
        let (s, _) = app
            .req(
                Method::GET,
                "/xos/slices/",
                Some(("pad\u{0}min@vicci.org", "letmein")),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, _, _) = app
            .call(build(Method::GET, "/admin/dashboard/a%00b/", Some(ADMIN), None))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
);

both!(login_base_is_a_slug, async |app: &TestApp| {
    for bad in [json!(123), json!("my site"), json!("x/y"), json!(true)] {
        let (s, v) = app
            .post(
                "/xos/sites/",
                json!({"name": "S", "login_base": bad, "abbreviated_name": "s"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["login_base"].is_array(), "{v}");
    }
    let (s, v) = app
        .post(
            "/xos/sites/",
            json!({"name": "S", "login_base": "site-2_b", "abbreviated_name": "s"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
});

both!(one_answer_names_every_bad_field, async |app: &TestApp| {
    let (s, v) = app
            .post(
                "/xos/sites/",
                json!({"name": "", "login_base": "a b", "site_url": "not a url", "latitude": "north", "colour": 1}),
            )
            .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        vec![
            "abbreviated_name",
            "colour",
            "latitude",
            "login_base",
            "name",
            "site_url"
        ],
        "{v}"
    );
});

both!(
    every_answer_carries_the_security_headers_and_the_document_lists_every_status,
    async |app: &TestApp| {
        let (_, h, _) = app.call(build(Method::GET, "/login", None, None)).await;
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["x-frame-options"], "SAMEORIGIN");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'self'") && csp.contains("object-src 'none'"),
            "{csp}"
        );
        let (_, h, _) = app
            .call(build(Method::GET, "/xos/sites/", Some(ADMIN), None))
            .await;
        assert_eq!(h["x-content-type-options"], "nosniff");
        // A page's policy names its nonce; a JSON answer's is the same without a nonce source.
        assert!(csp.contains("'nonce-"), "{csp}");
        let api_csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            api_csp.contains("object-src 'none'") && api_csp.contains("script-src 'self'"),
            "{api_csp}"
        );
        let script = api_csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .unwrap();
        assert!(
            !script.contains("nonce") && !script.contains("unsafe-inline"),
            "{api_csp}"
        );
        // The 409 of a PATCH that drops a relation still in use, the 400 of a foreign Host.
        let (_, doc) = app.get("/openapi.json").await;
        let one = &doc["paths"]["/xos/sites/{id}/"];
        for (method, code) in [
            ("patch", "409"),
            ("put", "409"),
            ("get", "400"),
            ("delete", "400"),
        ] {
            assert!(one[method]["responses"][code].is_object(), "{method} {code}");
        }
    }
);

both!(a_controller_names_a_backend_that_exists, async |app: &TestApp| {
    let (s, dep) = app.post("/xos/deployments/", json!({"name": "typo"})).await;
    assert_eq!(s, StatusCode::CREATED, "{dep}");
    let body = |kind: &str| {
        json!({"name": format!("c-{kind}"), "backend_type": kind, "version": "1",
                   "deployment": dep["id"]})
    };
    // A misspelt type would select no backend and sit "in progress" forever: refused.
    let before = app.count("core_controller").await;
    let (s, v) = app.post("/xos/controllers/", body("Openstack")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["backend_type"][0]
            .as_str()
            .is_some_and(|m| m.contains("Openstack")),
        "{v}"
    );
    assert_eq!(app.count("core_controller").await, before);
    let (s, v) = app.post("/xos/controllers/", body("OpenStack")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
});
