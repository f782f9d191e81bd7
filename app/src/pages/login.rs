//! The login page: a plain HTML form posted to `/login`, rendered on the server; no script.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let failed = query.read_untracked().get("error").is_some();
    let next = query
        .read_untracked()
        .get("next")
        .unwrap_or_else(|| "/".to_string());
    view! {
        <main class="login">
            <form method="post" action="/login" class="card login-card">
                <h1>"XOS"</h1>
                <p class="subtitle">"Sign in to manage your cloud"</p>
                {failed.then(|| view! { <p class="error" role="alert">"Wrong email or password."</p> })}
                <label for="username">"Email"</label>
                <input id="username" name="username" type="email" autocomplete="username" required autofocus/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" required/>
                <input type="hidden" name="next" value=next/>
                <button type="submit" class="primary">"Log in"</button>
            </form>
        </main>
    }
}
