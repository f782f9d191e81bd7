//! Browser sessions: the login form, the session cookie, CSRF on cookie-authenticated writes.

use crate::common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use common::TestApp;
use serde_json::json;
use testkit::eventually;

fn login_request(origin: Option<&str>, user: &str, password: &str) -> Request<Body> {
    login_with_next(origin, user, password, "%2F")
}

/// POST /login with `next` as the form sends it (already percent-encoded text).
fn login_with_next(origin: Option<&str>, user: &str, password: &str, next_encoded: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::HOST, "testserver")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    let body = format!(
        "username={}&password={}&next={next_encoded}",
        urlencode(user),
        urlencode(password)
    );
    b.body(Body::from(body)).unwrap()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `name=value` pairs of the Set-Cookie headers.
fn cookies(h: &HeaderMap) -> Vec<(String, String, String)> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=')?;
            Some((k.to_string(), val.to_string(), attrs.to_string()))
        })
        .collect()
}

fn with_cookies(mut b: axum::http::request::Builder, jar: &str) -> axum::http::request::Builder {
    b = b.header(header::HOST, "testserver").header(header::COOKIE, jar);
    b
}

both!(
    login_starts_a_session_and_writes_need_the_csrf_token,
    async |app: &TestApp| {
        let (s, h, _) = app
            .call(login_request(
                Some("http://testserver"),
                "padmin@vicci.org",
                "letmein",
            ))
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/");
        let set = cookies(&h);
        let session = set
            .iter()
            .find(|(k, _, _)| k == "sessionid")
            .expect("session cookie");
        assert!(session.2.contains("HttpOnly"), "{}", session.2);
        assert!(session.2.contains("SameSite=Lax"), "{}", session.2);
        let csrf = set
            .iter()
            .find(|(k, _, _)| k == "xoscsrftoken")
            .expect("csrf cookie");
        assert!(!csrf.2.contains("HttpOnly"), "the CSRF cookie is read by scripts");
        let jar = format!("sessionid={}; xoscsrftoken={}", session.1, csrf.1);

        let get = with_cookies(Request::builder().uri("/xos/slices/"), &jar)
            .body(Body::empty())
            .unwrap();
        let (s, _, v) = app.call(get).await;
        assert_eq!(s, StatusCode::OK, "{v}");

        let slice = app.make_slice("csrf").await;
        let path = format!("/xos/slices/{}/", slice["id"]);
        let body = json!({"description": "from the browser"}).to_string();
        let no_token = with_cookies(Request::builder().method(Method::PATCH).uri(&path), &jar)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let (s, _, v) = app.call(no_token).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(v["detail"].as_str().unwrap().contains("CSRF"), "{v}");
        let wrong = with_cookies(Request::builder().method(Method::PATCH).uri(&path), &jar)
            .header(header::CONTENT_TYPE, "application/json")
            .header("X-CSRFToken", "0000")
            .body(Body::from(body.clone()))
            .unwrap();
        assert_eq!(app.call(wrong).await.0, StatusCode::FORBIDDEN);
        let (_, unchanged) = app.get(&path).await;
        assert_eq!(unchanged["description"], "d");
        let good = with_cookies(Request::builder().method(Method::PATCH).uri(&path), &jar)
            .header(header::CONTENT_TYPE, "application/json")
            .header("X-CSRFToken", &csrf.1)
            .body(Body::from(body))
            .unwrap();
        let (s, _, v) = app.call(good).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["description"], "from the browser");

        // Logging out ends the session.
        let out = with_cookies(Request::builder().method(Method::POST).uri("/logout"), &jar)
            .header(header::ORIGIN, "http://testserver")
            .body(Body::empty())
            .unwrap();
        let (s, _, _) = app.call(out).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let get = with_cookies(Request::builder().uri("/xos/slices/"), &jar)
            .body(Body::empty())
            .unwrap();
        let (s, h, _) = app.call(get).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(h.get("www-authenticate").is_none());
    }
);

both!(
    login_refuses_other_origins_and_wrong_passwords,
    async |app: &TestApp| {
        let (s, h, _) = app
            .call(login_request(
                Some("http://evil.example"),
                "padmin@vicci.org",
                "letmein",
            ))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(cookies(&h).iter().all(|(k, _, _)| k != "xoscsrftoken"));
        let (s, _, _) = app.call(login_request(None, "padmin@vicci.org", "letmein")).await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a login without Origin or Referer is refused"
        );
        let (s, h, _) = app
            .call(login_request(
                Some("http://testserver"),
                "padmin@vicci.org",
                "nope",
            ))
            .await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert!(
            h[header::LOCATION]
                .to_str()
                .unwrap()
                .starts_with("/login?error=1")
        );
        assert!(cookies(&h).iter().all(|(k, _, _)| k != "xoscsrftoken"));
    }
);

both!(
    pages_redirect_to_login_without_a_session,
    async |app: &TestApp| {
        let req = Request::builder()
            .uri("/")
            .header(header::HOST, "testserver")
            .body(Body::empty())
            .unwrap();
        let (s, h, _) = app.call(req).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/login?next=%2F");
    }
);

fn login_next(next_encoded: &str) -> Request<Body> {
    login_with_next(
        Some("http://testserver"),
        "padmin@vicci.org",
        "letmein",
        next_encoded,
    )
}

both!(login_follows_only_paths_on_this_site, async |app: &TestApp| {
    // The confirmed case: a tab after the first slash (browsers drop it: `//evil.example/`).
    for next in [
        "%2F%09%2Fevil.example%2F",
        "%2F%2Fevil.example%2F",
        "%2F%5Cevil.example",
        "https%3A%2F%2Fevil.example%2F",
        "%2F%250A%2Fevil.example",
        "%2F%0D%0A%2Fevil.example",
    ] {
        let (s, h, _) = app.call(login_next(next)).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(h[header::LOCATION], "/", "{next}");
    }
    let (_, h, _) = app.call(login_next("%2Fadmin%2Fcore%2Fslice%2F")).await;
    assert_eq!(h[header::LOCATION], "/admin/core/slice/");
});

both!(
    only_allowed_hosts_are_answered_before_authentication,
    async |app: &TestApp| {
        let with_host = |host: &str, path: &str, who: Option<(&str, &str)>| {
            let mut r = common::build(Method::GET, path, who, None);
            r.headers_mut().insert(header::HOST, host.parse().unwrap());
            r
        };
        // A DNS-rebinding page reaches the server under its own name: refused, whatever the
        // credentials (good, bad or none), before they are checked.
        for who in [Some(common::ADMIN), Some(("padmin@vicci.org", "wrong")), None] {
            let (s, _, v) = app
                .call(with_host("evil.example:8000", "/xos/slices/", who))
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{who:?} {v}");
        }
        let (s, _, _) = app.call(with_host("evil.example", "/login", None)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        // The loopback names and the configured ones are answered; probes answer any host.
        for host in ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "testserver"] {
            let (s, _, _) = app
                .call(with_host(host, "/xos/slices/", Some(common::ADMIN)))
                .await;
            assert_eq!(s, StatusCode::OK, "{host}");
        }
        let (s, _, _) = app.call(with_host("10.0.0.7:8000", "/healthz", None)).await;
        assert_eq!(s, StatusCode::OK);
    }
);

async fn sessions_end_at_their_absolute_lifetime(backend: common::Backend) {
    let Some(app) = TestApp::with_config(backend, |c| c.session_lifetime_secs = 2).await else {
        return;
    };
    let (jar, _) = common::login_jar(&app, common::ADMIN).await;
    let get = || {
        with_cookies(Request::builder().uri("/xos/slices/"), &jar)
            .body(Body::empty())
            .unwrap()
    };
    // Used all along (never idle), it still ends two seconds after the login.
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(1500) {
        assert_eq!(app.call(get()).await.0, StatusCode::OK);
        // Deliberate: the session is used every 250 ms, never idle, for 1.5 s.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let h = eventually(
        "the session to end at its absolute lifetime",
        std::time::Duration::from_millis(1500),
        || async {
            let (s, h, _) = app.call(get()).await;
            (s == StatusCode::UNAUTHORIZED).then_some(h)
        },
    )
    .await;
    assert!(h.get("www-authenticate").is_none());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_their_absolute_lifetime_sqlite() {
    sessions_end_at_their_absolute_lifetime(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_at_their_absolute_lifetime_postgres() {
    sessions_end_at_their_absolute_lifetime(common::Backend::Postgres).await;
}

both!(a_password_change_ends_the_sessions, async |app: &TestApp| {
    let uid = app.make_user("u@mysite.org", "first-password").await;
    let (jar, _) = common::login_jar(app, ("u@mysite.org", "first-password")).await;
    let get = || {
        with_cookies(Request::builder().uri("/xos/slices/"), &jar)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(app.call(get()).await.0, StatusCode::OK);
    let (s, _) = app
        .patch(
            &format!("/xos/users/{uid}/"),
            json!({"password": "second-password"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        app.call(get()).await.0,
        StatusCode::UNAUTHORIZED,
        "the old session ended"
    );
});
