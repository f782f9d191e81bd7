//! Browser sessions: the login form, the session cookie, CSRF on cookie-authenticated writes.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use common::TestApp;
use serde_json::json;

fn login_request(origin: Option<&str>, user: &str, password: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::HOST, "testserver")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    let body = format!(
        "username={}&password={}&next=%2F",
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
