//! `GET /xos/events`: the change stream as server-sent events, for what the reader may see
//! (the hub itself, below the HTTP layers, is `crate::events`).

use crate::auth::{AuthContext, AuthMethod};
use crate::error::ApiError;
use crate::events::{Numbered, StreamSlot};
use crate::state::AppState;
use crate::store::{Actor, ChangeEvent, ChangeKind};
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::broadcast;

/// Whether the reader may hear of this event: other events only when it may read the object
/// now; a delete (the object is gone) only when it was among those who could see it just
/// before (the event's audience).
async fn visible(state: &AppState, actor: &Actor, e: &ChangeEvent) -> bool {
    if actor.is_root() {
        return true;
    }
    if e.kind == ChangeKind::Delete {
        return match (&e.audience, actor.user_id()) {
            (None, _) => true,
            (Some(ids), Some(me)) => ids.binary_search(&me).is_ok(),
            (Some(_), None) => false,
        };
    }
    let Some(model) = state.store.registry().model(&e.model) else {
        return false;
    };
    state.store.get(actor, model, e.id).await.is_ok()
}

fn sse_event(epoch: &str, n: &Numbered) -> Event {
    Event::default()
        .id(format!("{epoch}-{}", n.seq))
        .event("change")
        .data(serde_json::to_string(&n.event).unwrap_or_default())
}

/// How often an open stream checks that its reader still may read (logged out, deactivated,
/// demoted, token revoked), besides whenever credentials change anywhere.
const READER_CHECK: Duration = Duration::from_secs(5);

/// Who reads a stream and how it authenticated, to check again while the stream is open.
struct Reader {
    actor: Actor,
    method: AuthMethod,
    session: Option<tower_sessions::session::Id>,
    token: Option<String>,
    /// The password stamp when the stream opened (a password change ends a password or
    /// session stream).
    password: Option<String>,
    /// The credential generation of the last check.
    generation: u64,
}

impl Reader {
    /// Check the reader's rights again: `false` when it may read no more (the stream ends);
    /// otherwise the actor takes its current flags (a demoted admin reads as a user).
    async fn still_allowed(&mut self, state: &AppState) -> bool {
        self.generation = state.store.auth_generation();
        let Some(id) = self.actor.user_id() else {
            return true;
        };
        let principal = match self.method {
            AuthMethod::Token => match &self.token {
                Some(key) => crate::auth::token_principal(&state.auth(), key)
                    .await
                    .ok()
                    .flatten(),
                None => None,
            },
            _ => match crate::auth::active_user(&state.auth(), id).await.ok().flatten() {
                Some((p, stamp)) if self.password.as_deref() == Some(stamp.as_str()) => Some(p),
                _ => None,
            },
        };
        let Some(p) = principal.filter(|p| p.id == id) else {
            return false;
        };
        if self.method == AuthMethod::Session {
            let live = match (&self.session, state.sessions.get(), &self.password) {
                (Some(sid), Some(store), Some(stamp)) => {
                    crate::auth::session_alive(&state.auth(), store, sid, id, stamp).await
                }
                _ => false,
            };
            if !live {
                return false;
            }
        }
        self.actor = Actor::User(p);
        true
    }
}

/// `GET /xos/events`: change events as server-sent events, for objects the caller may read;
/// resumes after `Last-Event-ID`. At most `max_event_streams_per_user` streams per user and
/// `max_event_streams` in all (429 past them); an open stream checks its reader's rights
/// again whenever credentials change and every few seconds, and ends when they are gone.
pub async fn stream(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    session: Option<Extension<tower_sessions::Session>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let actor = auth.require()?;
    let hub = state.events.clone();
    let user = actor.user_id().unwrap_or(0);
    let Some(slot) = hub.admit(
        user,
        state.config.max_event_streams_per_user,
        state.config.max_event_streams,
    ) else {
        return Ok(
            ApiError::TooManyRequests("Too many open event streams; close one first.".into()).into_response(),
        );
    };
    let password = match actor.user_id() {
        Some(id) if auth.method != AuthMethod::Token => crate::auth::active_user(&state.auth(), id)
            .await?
            .map(|(_, stamp)| stamp),
        _ => None,
    };
    let reader = Reader {
        actor,
        method: auth.method,
        session: session.and_then(|s| s.0.id()),
        token: crate::auth::token_credentials(&headers),
        password,
        generation: state.store.auth_generation(),
    };
    let rx = hub.subscribe();
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let epoch = hub.epoch().to_string();
    let replay: Option<Vec<Numbered>> = match last.as_deref().and_then(|l| l.split_once('-')) {
        Some((e, seq)) if e == epoch => seq.parse::<u64>().ok().and_then(|s| hub.since(s)),
        Some(_) => None,
        None => Some(Vec::new()),
    };
    let stream = event_stream(StreamState {
        state,
        reader,
        epoch,
        replay: replay.map(VecDeque::from),
        rx,
        reset_sent: false,
        tick: tokio::time::interval_at(tokio::time::Instant::now() + READER_CHECK, READER_CHECK),
        _slot: slot,
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// What an open stream carries from one event to the next.
struct StreamState {
    state: AppState,
    reader: Reader,
    epoch: String,
    replay: Option<VecDeque<Numbered>>,
    rx: broadcast::Receiver<Numbered>,
    reset_sent: bool,
    tick: tokio::time::Interval,
    _slot: StreamSlot,
}

/// What the stream waits for next.
enum Next {
    Event(Numbered),
    Lagged,
    Closed,
    Check,
}

/// The events after the replay, filtered to what the reader may read.
fn event_stream(st: StreamState) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    futures::stream::unfold(st, |mut st| async move {
        loop {
            // A resume the buffer cannot serve: tell the client to fetch everything again.
            if st.replay.is_none() && !st.reset_sent {
                st.reset_sent = true;
                st.replay = Some(VecDeque::new());
                let ev = Event::default().event("reset").data("{}");
                return Some((Ok(ev), st));
            }
            let next = match st.replay.as_mut().and_then(VecDeque::pop_front) {
                Some(n) => Next::Event(n),
                None => tokio::select! {
                    r = st.rx.recv() => match r {
                        Ok(n) => Next::Event(n),
                        Err(broadcast::error::RecvError::Lagged(_)) => Next::Lagged,
                        Err(broadcast::error::RecvError::Closed) => Next::Closed,
                    },
                    _ = st.tick.tick() => Next::Check,
                },
            };
            let stale = st.reader.generation != st.state.store.auth_generation();
            if (matches!(next, Next::Check) || stale) && !st.reader.still_allowed(&st.state).await {
                tracing::info!(user = ?st.reader.actor.user_id(), "event stream closed: the reader's rights are gone");
                return None;
            }
            let n = match next {
                Next::Event(n) => n,
                Next::Lagged => {
                    st.replay = None;
                    st.reset_sent = false;
                    continue;
                }
                Next::Closed => return None,
                Next::Check => continue,
            };
            if n.reset {
                let ev = Event::default()
                    .id(format!("{}-{}", st.epoch, n.seq))
                    .event("reset")
                    .data("{}");
                return Some((Ok(ev), st));
            }
            if visible(&st.state, &st.reader.actor, &n.event).await {
                let ev = sse_event(&st.epoch, &n);
                return Some((Ok(ev), st));
            }
        }
    })
}
