//! Scripts only from the server: every answer's `Content-Security-Policy` allows inline scripts
//! by a nonce made for that answer alone, never by `'unsafe-inline'`. The server puts the nonce
//! on the `<script>` tags it writes itself (the Leptos shell, the page around a view, and the
//! tags of a view's template file, added to the template's *source* before any data is filled
//! in). Data is escaped when it is filled in, so markup a tenant stored (a slice description
//! with `<img onerror=…>` or `<script>`) can never carry the nonce: the browser refuses to run
//! it even where a view's own script inserts it unescaped.

use base64::Engine as _;
use std::sync::{Arc, OnceLock};

/// The nonce of one answer (in the request's extensions; the security-headers middleware
/// puts it there and writes it into the answer's policy). Made when first asked for: an answer
/// that writes no script (every JSON answer) never pays for it, and gets the policy without a
/// nonce source ([`without_nonce`]).
#[derive(Clone, Debug, Default)]
pub struct CspNonce(Arc<OnceLock<Arc<str>>>);

impl CspNonce {
    /// A nonce made on first use.
    pub fn new() -> CspNonce {
        CspNonce::default()
    }

    /// A given value (tests).
    pub fn fixed(value: &str) -> CspNonce {
        CspNonce(Arc::new(OnceLock::from(Arc::<str>::from(value))))
    }

    /// 128 random bits, URL-safe base64 (a CSP nonce must be unguessable and fresh per answer).
    fn fresh() -> Arc<str> {
        let bytes: [u8; 16] = rand::random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(bytes)
            .into()
    }

    pub fn as_str(&self) -> &str {
        self.0.get_or_init(CspNonce::fresh)
    }

    /// The value, shared (for Leptos's own `Nonce`).
    pub fn value(&self) -> Arc<str> {
        self.0.get_or_init(CspNonce::fresh).clone()
    }

    /// Whether anything of the answer was given the nonce.
    pub fn used(&self) -> bool {
        self.0.get().is_some()
    }
}

/// The placeholder a configured policy names the nonce by (`script-src 'nonce-{nonce}'`).
pub const NONCE_PLACEHOLDER: &str = "{nonce}";

/// The policy of one answer: the configured one with its `{nonce}` filled in.
pub fn policy(configured: &str, nonce: &CspNonce) -> String {
    configured.replace(NONCE_PLACEHOLDER, nonce.as_str())
}

/// The configured policy for an answer that carries no nonce: its nonce sources dropped, the
/// rest as configured (a directive left without sources allows none).
pub fn without_nonce(configured: &str) -> String {
    configured
        .split(';')
        .map(|directive| {
            directive
                .split_whitespace()
                .filter(|source| !source.contains(NONCE_PLACEHOLDER))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|directive| !directive.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Give every `<script` opening tag of `html` the nonce. Only for text the server itself wrote
/// (a template file's source, before rendering): never for rendered output that holds data.
pub fn nonce_scripts(html: &str, nonce: &CspNonce) -> String {
    let mut out = String::with_capacity(html.len() + 64);
    let mut rest = html;
    while let Some(i) = find_script_tag(rest) {
        let end = i + "<script".len();
        out.push_str(&rest[..end]);
        out.push_str(" nonce=\"");
        out.push_str(nonce.as_str());
        out.push('"');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The byte index of the next `<script` tag (any case) followed by whitespace, `>` or `/`.
fn find_script_tag(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(off) = s[from..].find('<') {
        let i = from + off;
        let tag = bytes.get(i + 1..i + 7);
        let after = bytes.get(i + 7).copied();
        if tag.is_some_and(|t| t.eq_ignore_ascii_case(b"script"))
            && matches!(after, Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' | b'>' | b'/'))
        {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_tag_of_a_template_gets_the_nonce_and_nothing_else_changes() {
        let n = CspNonce::fixed("abc");
        let src = "<p>x</p><script src=\"/a.js\"></script>\n<SCRIPT>go()</SCRIPT><scripts></scripts>\
                   <script\ttype=\"text/template\">t</script>";
        assert_eq!(
            nonce_scripts(src, &n),
            "<p>x</p><script nonce=\"abc\" src=\"/a.js\"></script>\n<SCRIPT nonce=\"abc\">go()</SCRIPT>\
             <scripts></scripts><script nonce=\"abc\"\ttype=\"text/template\">t</script>"
        );
        assert_eq!(nonce_scripts("no tags <scr", &n), "no tags <scr");
    }

    #[test]
    fn nonces_are_fresh_and_fill_the_policy() {
        let (a, b) = (CspNonce::new(), CspNonce::new());
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 22);
        let (fresh, unused) = (CspNonce::new(), CspNonce::new());
        let p = policy("script-src 'self' 'nonce-{nonce}'", &fresh);
        assert_eq!(p, format!("script-src 'self' 'nonce-{}'", fresh.as_str()));
        assert!(fresh.used() && !unused.used(), "made only when asked for");
        assert_eq!(
            without_nonce(
                "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; object-src 'none'"
            ),
            "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'"
        );
        assert_eq!(
            without_nonce("script-src 'nonce-{nonce}'; img-src 'self'"),
            "script-src; img-src 'self'"
        );
    }
}
