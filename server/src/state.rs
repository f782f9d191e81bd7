//! The state every handler shares, composed from the layers' own parts ([`AuthState`] and the
//! others reach handlers through `FromRef`).

// The configuration's types, under the paths callers always used.
use crate::auth::{AuthState, CredentialCache};
pub use crate::config::{
    Bootstrap, Config, ConfigError, DEFAULT_CSP, LocalBackendConfig, SESSION_COOKIE, WELL_KNOWN_PASSWORD,
};
use crate::store::Store;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use std::sync::Arc;

/// State shared by every handler: one pointer, because axum clones it for every middleware
/// layer and extractor of every request (a struct of eight fields, the Leptos options among
/// them, cost a few per cent of a cached GET in the profile).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to.
#[derive(Clone)]
pub struct Shared {
    pub store: Store,
    pub config: Arc<Config>,
    pub leptos: LeptosOptions,
    pub credentials: Arc<CredentialCache>,
    pub responses: Arc<crate::cache::ResponseCache>,
    pub events: Arc<crate::events::EventHub>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub throttle: Arc<crate::auth::throttle::Throttle>,
    /// The browser sessions' store (set when the router is built; open event streams check
    /// that their session still exists).
    pub sessions: Arc<std::sync::OnceLock<crate::auth::session_store::DbSessionStore>>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(s: &AppState) -> LeptosOptions {
        s.leptos.clone()
    }
}

impl FromRef<AppState> for AuthState {
    fn from_ref(s: &AppState) -> AuthState {
        s.auth()
    }
}

impl AppState {
    /// What authentication needs of the state.
    pub fn auth(&self) -> AuthState {
        AuthState {
            store: self.store.clone(),
            config: self.config.clone(),
            credentials: self.credentials.clone(),
            throttle: self.throttle.clone(),
        }
    }
}
