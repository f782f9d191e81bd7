//! XOS shared crate: the Leptos UI and the client store (and, re-exported, the model registry).
//!
//! The UI is built as *islands*: every page is rendered on the server (`ssr`), as HTML whose
//! links navigate and whose login and logout forms post without any script; only the parts that
//! must react in the browser are `#[island]` components, compiled into the wasm bundle
//! (`hydrate`) and made live there: the home page's tabs and Customize, an admin list (search,
//! filters, sorting, paging, live status) and an admin form (its widgets, inlines and history).
//! The model metadata an island needs travels in its props, as JSON the server writes into the
//! page ([`catalog`]); the registry itself is never compiled into the bundle, so a new model or
//! service neither grows nor rebuilds it. Server-only code sits behind
//! `#[cfg(feature = "ssr")]`, so sqlx, tokio, the router and the services never reach the
//! browser build.

#![recursion_limit = "256"]

pub mod catalog;
pub mod client;
pub mod meta;
pub mod pages;

/// The model registry crate, re-exported: pages and the server say `app::registry`. On the
/// server its `registry()` is the catalog's: the core's models and every service's. The browser
/// build has none of it but the status type; its models come from the server ([`catalog`]).
pub mod registry {
    #[cfg(not(feature = "ssr"))]
    pub use ::registry::BackendStatus;
    #[cfg(feature = "ssr")]
    pub use ::registry::*;
    #[cfg(feature = "ssr")]
    pub use xos_services::registry;
}

#[cfg(feature = "ssr")]
pub use server_side::*;

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

/// The document and its routes: rendered on the server only.
#[cfg(feature = "ssr")]
mod server_side {
    use crate::pages;
    use leptos::prelude::*;
    use leptos_meta::{MetaTags, Title, provide_meta_context};
    use leptos_router::components::{Route, Router, Routes};
    use leptos_router::path;

    /// The HTML document around the app.
    pub fn shell(options: LeptosOptions) -> impl IntoView {
        view! {
            <!DOCTYPE html>
            <html lang="en">
                <head>
                    <meta charset="utf-8"/>
                    <meta name="viewport" content="width=device-width, initial-scale=1"/>
                    <link rel="stylesheet" href="/pkg/xos.css"/>
                    <link rel="icon" href="/favicon.ico"/>
                    <HydrationScripts options islands=true/>
                    <MetaTags/>
                </head>
                <body>
                    <App/>
                </body>
            </html>
        }
    }

    /// The application: routes to pages (on the server; each answer is a whole page).
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
}
