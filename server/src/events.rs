//! Change events for everyone who waits on them: the `/xos/events` stream (server-sent events),
//! the synchronizer's wake-ups and caches.
//!
//! Events enter the hub from this process's store (after each commit) and, on Postgres, from
//! `LISTEN` on the notifications every process's commits send (`pg_notify` inside the
//! transaction, so they are delivered exactly when the data is visible). Each event gets a
//! process-local sequence number; a client reconnecting with `Last-Event-ID` gets what it missed
//! from a bounded replay buffer, or a `reset` event telling it to fetch again.

use crate::api::error::ApiError;
use crate::auth::{AuthContext, AuthMethod};
use crate::state::AppState;
use crate::store::{Actor, ChangeEvent, ChangeKind, Store};
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

/// Events kept for replay after a reconnect.
const REPLAY: usize = 10_000;

/// An event with its sequence number in this process.
#[derive(Clone, Debug, Serialize)]
pub struct Numbered {
    pub seq: u64,
    pub event: ChangeEvent,
    /// Events were lost before this one (a burst overran the channel): clients must refetch.
    pub reset: bool,
}

/// The hub every event passes through.
pub struct EventHub {
    /// Open `/xos/events` streams per user.
    open: Mutex<std::collections::HashMap<i64, usize>>,
    epoch: String,
    seq: AtomicU64,
    buffer: Mutex<VecDeque<Numbered>>,
    tx: broadcast::Sender<Numbered>,
}

impl Default for EventHub {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(8192);
        EventHub {
            open: Mutex::new(Default::default()),
            epoch: format!("{:x}", rand::random::<u32>()),
            seq: AtomicU64::new(0),
            buffer: Mutex::new(VecDeque::new()),
            tx,
        }
    }
}

impl EventHub {
    /// Number and deliver one event.
    pub fn publish(&self, event: ChangeEvent) {
        self.deliver(event, false);
    }

    /// Tell every client that events were lost and it must fetch again.
    pub fn publish_reset(&self) {
        self.deliver(
            ChangeEvent::new(String::new(), 0, crate::store::ChangeKind::Status),
            true,
        );
    }

    fn deliver(&self, event: ChangeEvent, reset: bool) {
        let mut buf = self.buffer.lock().expect("event buffer lock");
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        let n = Numbered { seq, event, reset };
        buf.push_back(n.clone());
        if buf.len() > REPLAY {
            buf.pop_front();
        }
        drop(buf);
        let _ = self.tx.send(n);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.tx.subscribe()
    }

    /// Events after `seq`, if the buffer still holds all of them.
    pub fn since(&self, seq: u64) -> Option<Vec<Numbered>> {
        let buf = self.buffer.lock().expect("event buffer lock");
        match buf.front() {
            Some(first) if first.seq > seq + 1 => None,
            _ => Some(buf.iter().filter(|n| n.seq > seq).cloned().collect()),
        }
    }

    /// Identifies this process's numbering (part of every event id).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }
}

pub use crate::store::{NoteEvent, Notification};

/// Feed the hub: this process's events, and on Postgres every process's notifications.
pub fn start(store: &Store, hub: std::sync::Arc<EventHub>) {
    let mut rx = store.subscribe();
    let local = hub.clone();
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(e) => local.publish(e),
                // A burst larger than the channel (a big batch of status writes): clients of the
                // stream get a reset; caches were bumped by the store itself.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "event hub lagged");
                    local.publish_reset();
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    if let Some(readers) = store.db().sqlite_readers().cloned() {
        tokio::spawn(watch_sqlite(readers, store.clone()));
    }
    if let (Some(pool), Some(channel)) = (store.db().pg_pool().cloned(), store.notify_channel()) {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = listen(&pool, &channel, &store, &hub).await {
                    tracing::warn!(error = %e, "event listener lost its connection; reconnecting");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// How often the SQLite database is checked for other processes' commits.
const SQLITE_WATCH: Duration = Duration::from_millis(250);

/// SQLite has no notifications, but `PRAGMA data_version` on a connection changes whenever
/// another connection commits, in this process or another (`xos sync` workers, `xos tosca
/// apply`, a second server on the same file). Seeing it change moves the store's generation on,
/// so cached API answers are not served after another process's write (within `SQLITE_WATCH`,
/// like the notification delay on Postgres). Our own commits show up here too: they cost one
/// more cache invalidation, never a stale answer.
async fn watch_sqlite(readers: sqlx::SqlitePool, store: Store) {
    // A connection of its own: data_version is per connection.
    let mut conn = match readers.acquire().await {
        Ok(c) => c.detach(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the SQLite database for other processes' writes");
            return;
        }
    };
    let mut last: Option<i64> = None;
    let mut tick = tokio::time::interval(SQLITE_WATCH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
            .fetch_one(&mut conn)
            .await
        {
            Ok(v) => {
                if last.is_some_and(|l| l != v) {
                    // SQLite does not say what changed: cached credentials are checked again.
                    store.note_external_change(true);
                }
                last = Some(v);
            }
            Err(e) => {
                tracing::warn!(error = %e, "SQLite data_version check failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn listen(
    pool: &sqlx::PgPool,
    channel: &str,
    store: &Store,
    hub: &EventHub,
) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    // Whatever happened while we were not listening is unknown: make caches drop everything.
    store.note_external_change(true);
    loop {
        let n = listener.recv().await?;
        let Ok(note) = serde_json::from_str::<Notification>(n.payload()) else {
            continue;
        };
        if note.origin == store.origin() {
            continue; // our own commits reached the hub directly
        }
        let credentials = note
            .events
            .iter()
            .any(|(m, _, k, _)| *k != ChangeKind::Status && matches!(m.as_str(), "User" | "ApiToken"));
        store.note_external_change(credentials);
        for (model, id, kind, audience) in note.events {
            let mut e = ChangeEvent::new(model, id, kind);
            e.audience = audience;
            hub.publish(e);
        }
    }
}

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
                Some(key) => crate::auth::token_principal(state, key).await.ok().flatten(),
                None => None,
            },
            _ => match crate::auth::active_user(state, id).await.ok().flatten() {
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
                    crate::auth::session_alive(state, store, sid, id, stamp).await
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

/// A place among the open streams, given back when the stream ends.
pub struct StreamSlot {
    hub: std::sync::Arc<EventHub>,
    user: i64,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock().expect("stream count lock");
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl EventHub {
    /// A slot for one more stream of `user`, unless it holds `per_user` already or all users
    /// together hold `total`.
    pub fn admit(
        self: &std::sync::Arc<Self>,
        user: i64,
        per_user: usize,
        total: usize,
    ) -> Option<StreamSlot> {
        let mut open = self.open.lock().expect("stream count lock");
        let all: usize = open.values().sum();
        let mine = open.get(&user).copied().unwrap_or(0);
        if mine >= per_user || all >= total {
            return None;
        }
        open.insert(user, mine + 1);
        Some(StreamSlot {
            hub: self.clone(),
            user,
        })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.open.lock().expect("stream count lock").values().sum()
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
        Some(id) if auth.method != AuthMethod::Token => crate::auth::active_user(&state, id)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64) -> ChangeEvent {
        ChangeEvent::new("Slice", id, ChangeKind::Update)
    }

    #[test]
    fn the_hub_replays_what_a_client_missed() {
        let hub = EventHub::default();
        for i in 1..=5 {
            hub.publish(ev(i));
        }
        let missed = hub.since(3).unwrap();
        assert_eq!(missed.iter().map(|n| n.event.id).collect::<Vec<_>>(), vec![4, 5]);
        assert!(hub.since(5).unwrap().is_empty());
    }

    #[test]
    fn notifications_stay_under_the_payload_limit() {
        let events: Vec<ChangeEvent> = (0..5000).map(ev).collect();
        let payloads = Notification::payloads("abc", &events, 7000);
        assert!(payloads.len() > 1);
        let mut n = 0;
        for p in &payloads {
            assert!(p.len() <= 7000, "{}", p.len());
            n += serde_json::from_str::<Notification>(p).unwrap().events.len();
        }
        assert_eq!(n, 5000);
    }

    #[test]
    fn a_resume_older_than_the_buffer_is_refused() {
        let hub = EventHub::default();
        for i in 0..(REPLAY as i64 + 10) {
            hub.publish(ev(i));
        }
        assert!(hub.since(1).is_none());
        assert!(hub.since(20).is_some());
    }
}
