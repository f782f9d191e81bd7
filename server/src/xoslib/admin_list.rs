//! The first page of an admin list, read before the page is rendered: its rows, total and
//! buttons are then in the HTML the server sends (rows link to their objects), so a list shows
//! and navigates before the wasm bundle loads; the list's island takes over from there. The
//! rows are what `GET /xos/<plural>/` gives the same user (same permission filter), the buttons
//! what `/xoslib/capabilities/` answers.

use crate::auth::AuthContext;
use crate::state::AppState;
use app::pages::admin::{FirstPage, PAGE};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// For `/admin/<app>/<model>` (the list; the trailing slash is already gone), put the
/// [`FirstPage`] in the request for the page to render.
pub async fn with_first_page(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let mut segments = req.uri().path().split('/').skip(1);
    if let (Some("admin"), Some(app), Some(slug), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
        && let Some(model) = state
            .store
            .registry()
            .models
            .iter()
            .find(|m| m.app == app && m.name.eq_ignore_ascii_case(slug))
        && let Some(actor) = req
            .extensions()
            .get::<AuthContext>()
            .and_then(|a| a.require().ok())
    {
        let first = async {
            let (rows, total) = crate::api::first_page(&state, &actor, model, PAGE as usize).await?;
            let ids: Vec<i64> = rows.iter().filter_map(|r| r.get("id")?.as_i64()).collect();
            let (create, objects) = super::capabilities::of(&state, actor, model, &ids).await?;
            Ok::<_, crate::error::ApiError>(FirstPage {
                rows,
                total,
                create,
                objects,
            })
        };
        match first.await {
            Ok(page) => {
                req.extensions_mut().insert(page);
            }
            // The island loads the rows itself then; the page still renders.
            Err(e) => {
                tracing::warn!(error = %e, model = %model.name, "an admin list's first page could not be read")
            }
        }
    }
    next.run(req).await
}
