//! The benchmark's ceiling: a bare axum server that does the same cached basic-auth check as
//! the API and answers fixed JSON bytes without touching a database (`xos bench-ceiling`). What
//! the real API reaches is measured against it (`make bench`).

use crate::auth::{CredentialCache, basic_credentials, password};
use crate::store::Principal;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

#[derive(Clone)]
struct Ceiling {
    cache: Arc<CredentialCache>,
    email: String,
    hash: String,
    body: Bytes,
}

async fn answer(State(c): State<Ceiling>, headers: HeaderMap) -> Response {
    let Some(Some((user, pass))) = basic_credentials(&headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    let fp = c.cache.fingerprint(&user, &pass);
    if c.cache.get(&fp).is_none() {
        let (hash, ok_user) = (c.hash.clone(), user == c.email);
        let ok = tokio::task::spawn_blocking(move || ok_user && password::verify(&pass, &hash))
            .await
            .unwrap_or(false);
        if !ok {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let p = Principal {
            id: 1,
            email: user,
            is_admin: true,
            is_readonly: false,
            site_id: 1,
        };
        c.cache.put(fp, p);
    }
    ([(header::CONTENT_TYPE, "application/json")], c.body.clone()).into_response()
}

/// Serve `body` at every path on `addr` behind basic auth as `email` / `password`.
pub async fn serve_ceiling(addr: &str, body: Vec<u8>, email: &str, pw: &str) -> std::io::Result<()> {
    let hash = password::hash(pw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let state = Ceiling {
        cache: Arc::new(CredentialCache::default()),
        email: email.to_string(),
        hash,
        body: body.into(),
    };
    let app = Router::new().fallback(get(answer)).with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!("ceiling server ready at http://{addr}/");
    axum::serve(listener, app).await
}
