//! xoslib: extension objects under `/xoslib/…`, beside the generated `/xos/` API. Each is a
//! module with its own `router()`, merged here (see `docs/extending-the-api.md`):
//!
//! - `slicesplus`: a slice plus instance count, site count and the caller's role, with writable
//!   `site_allocation` (instances per site) and `users` (the slice's members).
//! - `tenantview`: what the Tenant dashboard needs in one call (blessed sites, images, flavors,
//!   the caller's site and whether they may create slices).
//! - `tokens`: API tokens for scripts (create shows the key once; list; revoke).
//!
//! Both read and write through the store, so permissions and validation are the core API's.

pub mod admin_list;
pub mod capabilities;
pub mod sliceplus;
pub mod tenantview;
pub mod tokens;

use crate::state::AppState;
use axum::Router;

/// The `/xoslib/…` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(sliceplus::router())
        .merge(tenantview::router())
        .merge(tokens::router())
        .merge(capabilities::router())
}

/// XOS's backend icon for an object: `success` when enacted and good, `clock` while pending,
/// `error` otherwise; with the tooltip text (`PlCoreBase.get_backend_icon`).
pub fn backend_icon(status: &str, enacted_after_update: bool) -> (&'static str, String) {
    use app::registry::BackendStatus as S;
    let parsed = S::parse(status);
    let good = matches!(parsed, S::Pending(_) | S::Ok(_));
    if (enacted_after_update && good) || parsed.is_ok() {
        ("success", "successfully enacted".into())
    } else if good || parsed == S::Unset {
        ("clock", format!("Pending sync, last_status = {status}"))
    } else {
        ("error", status.to_string())
    }
}

/// Minimal HTML escaping for attribute and text content.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_icons_follow_xos() {
        assert_eq!(backend_icon("1 - OK", false).0, "success");
        assert_eq!(backend_icon("0 - Provisioning in progress", true).0, "success");
        assert_eq!(backend_icon("0 - Provisioning in progress", false).0, "clock");
        assert_eq!(backend_icon("2 - boom", true).0, "error");
        assert_eq!(
            escape_html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }
}
