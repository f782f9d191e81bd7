#![recursion_limit = "256"]
//! The wasm bundle: the islands of the server-rendered pages (`app`'s `#[island]` components),
//! made live where the page has them.

// The islands are exported from `app` (each one a wasm-bindgen function the page's island
// script calls); naming the crate links them in.
pub use app::pages;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
