//! Pages of the web UI.

pub mod admin;
pub mod home;
pub mod login;

use crate::UserInfo;
use leptos::prelude::*;

/// The navigation panel's links (also used by the server-rendered view pages).
pub const NAV: &[(&str, &str)] = &[("/", "Home"), ("/admin/", "Admin"), ("/docs/", "REST API")];

/// The title bar and navigation panel around every signed-in page.
#[component]
pub fn Frame(user: Option<UserInfo>, children: Children) -> impl IntoView {
    view! {
        <header class="titlebar">
            <a class="brand" href="/">"XOS"</a>
            <span class="spacer"></span>
            {user.map(|u| view! {
                <span class="whoami" data-testid="whoami">{u.email}</span>
                <form method="post" action="/logout" class="logout">
                    <button type="submit" class="link">"Log out"</button>
                </form>
            })}
        </header>
        <div class="layout">
            <nav class="navpanel" aria-label="Main">
                <ul>
                    {NAV.iter().map(|(href, label)| view! { <li><a href=*href>{*label}</a></li> }).collect_view()}
                </ul>
            </nav>
            <main class="content">{children()}</main>
        </div>
    }
}

/// Shown for unknown paths.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <main class="content narrow">
            <h1>"Page not found"</h1>
            <p><a href="/">"Back to the home page"</a></p>
        </main>
    }
}
