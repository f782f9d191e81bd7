//! The change log: every create, update and delete through the one write path, with who, when
//! and the changed fields (secrets masked), in the writing transaction; nothing for a refused or
//! rolled-back write; `/xos/changes/` filters, limits and visibility (retention is the store's
//! test: `store/tests/all/changelog.rs`).

use crate::common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, TestApp};
use serde_json::{Value, json};

async fn log(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, v) = app.get(&format!("/xos/changes/{query}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

both!(writes_are_logged_with_who_and_what, async |app: &TestApp| {
    let slice = app.make_slice("logged").await;
    let id = slice["id"].as_i64().unwrap();
    let q = format!("?model=Slice&object={id}");
    let entries = log(app, &q).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(e["kind"], "create");
    assert_eq!(e["actor"], ADMIN.0);
    assert!(e["user"].is_i64());
    assert_eq!(e["changes"]["name"], json!({"old": null, "new": "mysite_logged"}));
    assert!(
        e["changes"].get("updated").is_none(),
        "bookkeeping is not logged: {e}"
    );
    assert!(e["changes"].get("row_version").is_none());

    // An update logs only what changed.
    let (s, v) = app
        .patch(&format!("/xos/slices/{id}/"), json!({"description": "new words"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let entries = log(app, &q).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["kind"], "update", "newest first");
    assert_eq!(
        entries[0]["changes"],
        json!({"description": {"old": "d", "new": "new words"}})
    );
    // Saving the same values changes nothing and logs nothing.
    app.patch(&format!("/xos/slices/{id}/"), json!({"description": "new words"}))
        .await;
    assert_eq!(log(app, &q).await.len(), 2);

    // A refused write (validation) records nothing.
    let before = app.count("xos_change").await;
    let (s, _) = app
        .patch(&format!("/xos/slices/{id}/"), json!({"name": "no-site-prefix"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = app.post("/xos/slices/", json!({"name": ""})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(app.count("xos_change").await, before);

    // A TOSCA dry run is rolled back: its writes leave no entry either.
    let recipe = "tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n    dry-image:\n      type: tosca.nodes.Image\n      properties:\n        disk_format: raw\n        container_format: bare\n";
    let (s, v) = app
        .post(
            "/api/utility/tosca/run/",
            json!({"recipe": recipe, "dry_run": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(app.count("xos_change").await, before);

    // Passwords are masked.
    let user = app.make_user("logged@example.org", "first-secret").await;
    let (s, v) = app
        .patch(
            &format!("/xos/users/{user}/"),
            json!({"password": "second-secret"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let entries = log(app, &format!("?model=User&object={user}")).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["changes"]["password"],
        json!({"old": "********", "new": "********"})
    );
    assert_eq!(entries[1]["changes"]["password"]["new"], "********");
    let all = serde_json::to_string(&log(app, "?limit=1000").await).unwrap();
    assert!(!all.contains("secret"), "{all}");

    // A delete, and the cascade it caused, are logged too.
    let (s, _) = app.delete(&format!("/xos/slices/{id}/")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let entries = log(app, &q).await;
    assert_eq!(entries[0]["kind"], "delete");
    assert_eq!(entries[0]["changes"]["name"]["old"], "mysite_logged");
});

both!(
    the_log_filters_pages_and_refuses_bad_queries,
    async |app: &TestApp| {
        for i in 0..5 {
            app.make_slice(&format!("page{i}")).await;
        }
        let (s, h, v) = app
            .call(common::build(
                Method::GET,
                "/xos/changes/?model=slices&kind=create&limit=2",
                Some(ADMIN),
                None,
            ))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 2);
        let total: i64 = h["x-total-count"].to_str().unwrap().parse().unwrap();
        assert!(total >= 5, "{total}");
        let page2 = log(app, "?model=Slice&kind=create&limit=2&offset=2").await;
        assert_ne!(page2[0]["id"], v[0]["id"]);
        assert!(log(app, "?since=2999-01-01T00:00:00Z").await.is_empty());
        assert!(log(app, "?until=2000-01-01T00:00:00Z").await.is_empty());
        let admin = app.get("/xos/users/?email=padmin@vicci.org").await.1[0]["id"]
            .as_i64()
            .unwrap();
        let mine = log(app, &format!("?user={admin}&limit=1000")).await;
        assert!(mine.iter().all(|e| e["user"] == admin));
        for bad in [
            "?limit=0",
            "?limit=5000",
            "?offset=-1",
            "?since=yesterday",
            "?model=Widget",
            "?object=x",
            "?kind=purge",
        ] {
            let (s, v) = app.get(&format!("/xos/changes/{bad}")).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
            assert!(v.as_object().is_some_and(|o| !o.is_empty()), "{bad}: {v}");
        }
        let (s, _) = app.req(Method::GET, "/xos/changes/", None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
);

both!(
    users_see_the_history_of_what_they_may_read,
    async |app: &TestApp| {
        app.make_slice("hidden").await;
        let me = app.make_user("reader@example.org", "reader-pass").await;
        let who = Some(("reader@example.org", "reader-pass"));
        let (s, v) = app.req(Method::GET, "/xos/changes/?limit=1000", who, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mine = v.as_array().unwrap();
        let everything = log(app, "?limit=1000").await;
        assert!(
            mine.len() < everything.len(),
            "{} of {}",
            mine.len(),
            everything.len()
        );
        assert!(
            mine.iter().any(|e| e["model"] == "User" && e["object_id"] == me),
            "{v}"
        );
        // Every entry shown is of an object the user may read.
        for e in mine {
            let model = e["model"].as_str().unwrap();
            let plural = app.state.store.model(model).plural.clone();
            let (s, _) = app
                .req(
                    Method::GET,
                    &format!("/xos/{plural}/{}/", e["object_id"]),
                    who,
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{e}");
        }
    }
);

both!(
    a_non_admin_reads_the_log_of_what_it_may_see_with_authors_it_may_see,
    async |app: &TestApp| {
        // A slice of the admin's that a member may see, and one it may not.
        let member = app.make_user("member@mysite.org", "member-password").await;
        let seen = app.make_slice("seen").await["id"].as_i64().unwrap();
        let hidden = app.make_slice("hidden").await["id"].as_i64().unwrap();
        let (_, roles) = app.get("/xos/slice_roles/?role=access").await;
        let (s, _) = app
            .post(
                "/xos/slice_privileges/",
                json!({"user": member, "slice": seen, "role": roles[0]["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        for i in 0..3 {
            app.patch(
                &format!("/xos/slices/{seen}/"),
                json!({"description": format!("s{i}")}),
            )
            .await;
            app.patch(
                &format!("/xos/slices/{hidden}/"),
                json!({"description": format!("h{i}")}),
            )
            .await;
        }
        let who = Some(("member@mysite.org", "member-password"));
        let (s, h, v) = app
            .call(common::build(
                Method::GET,
                "/xos/changes/?model=Slice&limit=2",
                who,
                None,
            ))
            .await;
        assert_eq!(s, StatusCode::OK);
        let entries = v.as_array().unwrap();
        assert!(entries.iter().all(|e| e["object_id"] == seen), "{v}");
        // The total counts only what it may see: the create and three updates.
        assert_eq!(h["x-total-count"], "4");
        assert_eq!(entries.len(), 2);
        // The admin is not a user the member may see: its email is not shown.
        assert_eq!(entries[0]["actor"], format!("user {}", entries[0]["user"]), "{v}");
        let (_, all) = app.get("/xos/changes/?model=Slice&limit=1").await;
        assert_eq!(all[0]["actor"], ADMIN.0, "admins see authors");
    }
);
