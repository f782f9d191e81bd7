//! XOS shared crate: the Leptos UI and the client store (and, re-exported, the model registry).
//!
//! Compiled twice: with `ssr` into the server (rendering pages) and with `hydrate` into the wasm
//! bundle (making them live). Server-only code sits behind `#[cfg(feature = "ssr")]` so sqlx and
//! tokio never reach the browser build.

#![recursion_limit = "256"]

pub mod client;
pub mod pages;
/// The model registry crate, re-exported: pages and the server say `app::registry`. Its
/// `registry()` is the catalog's: the core's models and every service's.
pub mod registry {
    pub use ::registry::*;
    pub use xos_services::registry;
}

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;
use serde::{Deserialize, Serialize};

/// The logged-in user as pages see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
    /// The services beyond the core this server loads (their models have admin pages).
    pub services: Vec<String>,
}

/// The HTML document around the app (rendered on the server only).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="stylesheet" href="/pkg/xos.css"/>
                <link rel="icon" href="/favicon.ico"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: routes to pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="XOS"/>
        <Router>
            <Routes fallback=|| view! { <pages::NotFound/> }>
                <Route path=path!("/login") view=pages::login::LoginPage/>
                <Route path=path!("/") view=pages::home::HomePage/>
                <Route path=path!("/admin") view=pages::admin::AdminIndex/>
                <Route path=path!("/admin/:app/:model") view=pages::admin::AdminList/>
                <Route path=path!("/admin/:app/:model/:id") view=pages::admin::AdminForm/>
            </Routes>
        </Router>
    }
}

/// The user of the current request (read from the request on the server). A GET: it changes
/// nothing, so it needs no CSRF token when the browser calls it after a client-side navigation.
#[server(input = leptos::server_fn::codec::GetUrl)]
pub async fn current_user() -> Result<Option<UserInfo>, ServerFnError> {
    let parts: http::request::Parts = leptos_axum::extract().await?;
    Ok(parts.extensions.get::<UserInfo>().cloned())
}
