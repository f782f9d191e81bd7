//! `/services/<name>/<path>`: each loaded service's own endpoint (`Service::endpoint`).

use crate::state::AppState;

/// `/services/<name>/<path>`: the loaded service's own endpoint (`Service::endpoint`), which
/// authenticates its callers itself; 404 when the service is not loaded or does not answer.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/services/{name}/{*path}",
        axum::routing::get(endpoint).post(endpoint),
    )
}

async fn endpoint(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path((name, path)): axum::extract::Path<(String, String)>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let not_found = || axum::http::StatusCode::NOT_FOUND.into_response();
    if !state.store.services().contains(&name) {
        return not_found();
    }
    let Some(service) = crate::services::find(&name) else {
        return not_found();
    };
    let req = xos_service::EndpointRequest {
        method: method.to_string(),
        path,
        authorization: headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    match service
        .endpoint(&state.store, &state.config.state_dir, &req)
        .await
    {
        Some(a) => (
            axum::http::StatusCode::from_u16(a.status)
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            [
                (axum::http::header::CONTENT_TYPE, a.content_type),
                (axum::http::header::CACHE_CONTROL, "no-store"),
            ],
            a.body,
        )
            .into_response(),
        None => not_found(),
    }
}
