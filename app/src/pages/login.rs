//! The login page: a plain HTML form posted to `/login`, so it works before (or without) wasm.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let failed = move || query.read().get("error").is_some();
    let next = move || query.read().get("next").unwrap_or_else(|| "/".to_string());
    view! {
        <main class="login">
            <form method="post" action="/login" class="card login-card">
                <h1>"XOS"</h1>
                <p class="subtitle">"Sign in to manage your cloud"</p>
                <Show when=failed>
                    <p class="error" role="alert">"Wrong email or password."</p>
                </Show>
                <label for="username">"Email"</label>
                <input id="username" name="username" type="email" autocomplete="username" required autofocus/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" required/>
                <input type="hidden" name="next" prop:value=next/>
                <button type="submit" class="primary">"Log in"</button>
            </form>
        </main>
    }
}
