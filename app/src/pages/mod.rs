//! Pages of the web UI: rendered on the server, with islands where they must react.

pub mod admin;
pub mod home;
#[cfg(feature = "ssr")]
pub mod login;

#[cfg(feature = "ssr")]
pub use server_side::*;

/// The navigation panel's links (also used by the server-rendered view pages).
pub const NAV: &[(&str, &str)] = &[("/", "Home"), ("/admin/", "Admin"), ("/docs/", "REST API")];

#[cfg(feature = "ssr")]
mod server_side {
    use super::NAV;
    use crate::UserInfo;
    use leptos::prelude::*;

    /// The user of the request being rendered (the server's login check put it there).
    pub fn current_user() -> Option<UserInfo> {
        use_context::<http::request::Parts>().and_then(|parts| parts.extensions.get::<UserInfo>().cloned())
    }

    /// The title bar and navigation panel around every signed-in page.
    #[component]
    pub fn Frame(children: Children) -> impl IntoView {
        let user = current_user();
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
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::NOT_FOUND);
        }
        view! {
            <main class="content narrow">
                <h1>"Page not found"</h1>
                <p><a href="/">"Back to the home page"</a></p>
            </main>
        }
    }
}
