//! API tokens: created with their key shown once, used with `Authorization: Token`, expiring,
//! revocable, and never readable afterwards.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ADMIN, TestApp};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::{eventually, within};

fn with_token(method: Method, path: &str, key: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "testserver")
        .header(header::AUTHORIZATION, format!("Token {key}"))
        .body(Body::empty())
        .unwrap()
}

both!(
    tokens_authenticate_until_revoked_or_expired,
    async |app: &TestApp| {
        let uid = app.make_user("script@mysite.org", "script-password").await;
        let who = Some(("script@mysite.org", "script-password"));
        let (s, tok) = app
            .req(Method::POST, "/xoslib/tokens/", who, Some(json!({"name": "ci"})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{tok}");
        let key = tok["key"].as_str().unwrap().to_string();
        assert_eq!(key.len(), 40);
        assert_eq!(tok["user"], uid);
        assert_eq!(tok["key_prefix"], &key[..8]);
        assert!(tok.get("key_hash").is_none(), "the hash is never shown: {tok}");

        let (s, _, v) = app.call(with_token(Method::GET, "/xos/users/", &key)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v[0]["email"], "script@mysite.org", "acts as its user");
        // Listing shows the token without its key; the admin's list includes it.
        let (_, mine) = app.req(Method::GET, "/xoslib/tokens/", who, None).await;
        assert_eq!(mine.as_array().unwrap().len(), 1);
        assert!(mine[0].get("key").is_none());
        // A wrong key is a 401 without a basic-auth challenge.
        let (s, h, _) = app.call(with_token(Method::GET, "/xos/users/", "nope")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(h.get("www-authenticate").is_none());
        // Other users cannot revoke it; its owner can, and it stops working at once.
        app.make_user("other@mysite.org", "other-password").await;
        let id = tok["id"].as_i64().unwrap();
        let (s, _) = app
            .req(
                Method::DELETE,
                &format!("/xoslib/tokens/{id}/"),
                Some(("other@mysite.org", "other-password")),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app
            .req(Method::DELETE, &format!("/xoslib/tokens/{id}/"), who, None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        eventually(
            "the revoked token to be refused",
            Duration::from_secs(5),
            || async {
                let (s, _, _) = app.call(with_token(Method::GET, "/xos/users/", &key)).await;
                (s == StatusCode::UNAUTHORIZED).then_some(())
            },
        )
        .await;

        // An expired token does not work.
        let (s, tok) = app
            .req(
                Method::POST,
                "/xoslib/tokens/",
                who,
                Some(json!({"name": "old", "expires": "2020-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{tok}");
        let (s, _, _) = app
            .call(with_token(
                Method::GET,
                "/xos/users/",
                tok["key"].as_str().unwrap(),
            ))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (s, tok) = app
            .req(
                Method::POST,
                "/xoslib/tokens/",
                who,
                Some(json!({"name": "week", "expires_in_days": 7})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{tok}");
        let (s, _, _) = app
            .call(with_token(
                Method::GET,
                "/xos/users/",
                tok["key"].as_str().unwrap(),
            ))
            .await;
        assert_eq!(s, StatusCode::OK);

        // Bad requests; and tokens cannot be made or changed through the generic API.
        for bad in [
            json!({}),
            json!({"name": "x", "expires_in_days": 0}),
            json!({"name": "x", "colour": 1}),
            json!({"name": "x", "expires": "soon"}),
        ] {
            let (s, v) = app
                .req(Method::POST, "/xoslib/tokens/", who, Some(bad.clone()))
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        }
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/apitokens/",
                who,
                Some(json!({"name": "x", "user": uid})),
            )
            .await;
        // Its own token, but without the key only /xoslib/tokens/ computes: refused.
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["key_hash"].is_array(), "{v}");
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/apitokens/",
                Some(ADMIN),
                Some(json!({"name": "x", "user": uid, "key_hash": "ab"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["key_hash"].is_array());
        // A deactivated user's tokens stop working.
        app.patch(&format!("/xos/users/{uid}/"), json!({"is_active": false}))
            .await;
        let key = tok["key"].as_str().unwrap();
        eventually(
            "the deactivated user's token to be refused",
            Duration::from_secs(5),
            || async {
                let (s, _, _) = app.call(with_token(Method::GET, "/xos/users/", key)).await;
                (s == StatusCode::UNAUTHORIZED).then_some(())
            },
        )
        .await;
        let _: Value = Value::Null;
    }
);

/// Ask `twin` until `want` or a second has passed (the promise: within one second); the status
/// it ended with.
async fn settles(twin: &common::Twin, req: impl Fn() -> Request<Body>, want: StatusCode) -> StatusCode {
    let settled = within(Duration::from_millis(1000), || async {
        let s = twin.call(req()).await;
        (s == want).then_some(s)
    })
    .await;
    match settled {
        Some(s) => s,
        None => twin.call(req()).await,
    }
}

both!(
    credentials_changed_on_one_server_stop_working_on_every_server,
    async |app: &TestApp| {
        let twin = app.twin().await;
        let uid = app.make_user("ops@mysite.org", "ops-password").await;
        let who = Some(("ops@mysite.org", "ops-password"));
        app.patch(&format!("/xos/users/{uid}/"), json!({"is_admin": true}))
            .await;
        let (s, tok) = app
            .req(Method::POST, "/xoslib/tokens/", who, Some(json!({"name": "ci"})))
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let key = tok["key"].as_str().unwrap().to_string();
        let basic = |path: &str| common::build(Method::GET, path, who, None);
        // Both credentials work on the second server and are cached there.
        for _ in 0..2 {
            assert_eq!(
                twin.call(with_token(Method::GET, "/xos/users/", &key)).await,
                StatusCode::OK
            );
            assert_eq!(twin.call(basic("/xos/deployments/")).await, StatusCode::OK);
        }
        // is_admin removed on the first server: the second sees a non-admin within a second.
        let (s, _) = app
            .patch(&format!("/xos/users/{uid}/"), json!({"is_admin": false}))
            .await;
        assert_eq!(s, StatusCode::OK);
        let post = || {
            common::build(
                Method::POST,
                "/xos/deployments/",
                who,
                Some(json!({"name": format!("d{}", rand_suffix())}).to_string()),
            )
        };
        assert_eq!(
            settles(&twin, post, StatusCode::FORBIDDEN).await,
            StatusCode::FORBIDDEN
        );
        // The token revoked on the first server.
        let id = tok["id"].as_i64().unwrap();
        let (s, _) = app
            .req(Method::DELETE, &format!("/xoslib/tokens/{id}/"), who, None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let by_token = || with_token(Method::GET, "/xos/users/", &key);
        assert_eq!(
            settles(&twin, by_token, StatusCode::UNAUTHORIZED).await,
            StatusCode::UNAUTHORIZED
        );
        // The password changed on the first server.
        let (s, _) = app
            .patch(&format!("/xos/users/{uid}/"), json!({"password": "new-password"}))
            .await;
        assert_eq!(s, StatusCode::OK);
        let old = || basic("/xos/deployments/");
        assert_eq!(
            settles(&twin, old, StatusCode::UNAUTHORIZED).await,
            StatusCode::UNAUTHORIZED
        );
        // Deactivated on the first server (the new password was cached on the second first).
        let new = || {
            common::build(
                Method::GET,
                "/xos/deployments/",
                Some(("ops@mysite.org", "new-password")),
                None,
            )
        };
        assert_eq!(twin.call(new()).await, StatusCode::OK);
        let (s, _) = app
            .patch(&format!("/xos/users/{uid}/"), json!({"is_active": false}))
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            settles(&twin, new, StatusCode::UNAUTHORIZED).await,
            StatusCode::UNAUTHORIZED
        );
        twin.store.db().close().await;
    }
);

fn rand_suffix() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

both!(read_only_users_cannot_create_tokens, async |app: &TestApp| {
    let uid = app.make_user("ro@mysite.org", "ro-password").await;
    app.patch(&format!("/xos/users/{uid}/"), json!({"is_readonly": true}))
        .await;
    let (s, v) = app
        .req(
            Method::POST,
            "/xoslib/tokens/",
            Some(("ro@mysite.org", "ro-password")),
            Some(json!({"name": "sneaky"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(app.count("core_apitoken").await, 0);
});

both!(
    a_token_mints_no_token_and_creation_is_logged_under_its_user,
    async |app: &TestApp| {
        app.make_user("script@mysite.org", "script-password").await;
        let who = Some(("script@mysite.org", "script-password"));
        let (s, tok) = app
            .req(
                Method::POST,
                "/xoslib/tokens/",
                who,
                Some(json!({"name": "short", "expires_in_days": 1})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        let key = tok["key"].as_str().unwrap();
        let mut req = with_token(Method::POST, "/xoslib/tokens/", key);
        req.headers_mut()
            .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        *req.body_mut() = Body::from(json!({"name": "forever"}).to_string());
        let (s, _, _) = app.call(req).await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a leaked short-lived token does not become a permanent one"
        );
        let (_, log) = app.get("/xos/changes/?model=ApiToken&kind=create").await;
        assert_eq!(log[0]["actor"], "script@mysite.org", "{log}");
        assert_eq!(log[0]["changes"]["key_hash"]["new"], "********", "{log}");
        // Nobody writes a key through the generic API.
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/apitokens/",
                who,
                Some(json!({"name": "x", "user": tok["user"], "key_hash": "00"})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    }
);
