//! Change events for everyone who waits on them: the `/xos/events` stream (server-sent events),
//! the synchronizer's wake-ups and caches.
//!
//! Events enter the hub from this process's store (after each commit) and, on Postgres, from
//! `LISTEN` on the notifications every process's commits send (`pg_notify` inside the
//! transaction, so they are delivered exactly when the data is visible). Each event gets a
//! process-local sequence number; a client reconnecting with `Last-Event-ID` gets what it missed
//! from a bounded replay buffer, or a `reset` event telling it to fetch again.

use crate::api::error::ApiError;
use crate::auth::AuthContext;
use crate::state::AppState;
use crate::store::{Actor, ChangeEvent, ChangeKind, Store};
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::{Deserialize, Serialize};
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
    epoch: String,
    seq: AtomicU64,
    buffer: Mutex<VecDeque<Numbered>>,
    tx: broadcast::Sender<Numbered>,
}

impl Default for EventHub {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(8192);
        EventHub {
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
            ChangeEvent {
                model: String::new(),
                id: 0,
                kind: crate::store::ChangeKind::Status,
            },
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

/// What a commit announces to other processes.
#[derive(Serialize, Deserialize)]
pub struct Notification {
    pub origin: String,
    /// `[model, id, kind]` triples (compact: a batch of status writes sends thousands).
    pub events: Vec<(String, i64, crate::store::ChangeKind)>,
}

impl Notification {
    /// The payloads announcing `events`, each at most `max` bytes.
    pub fn payloads(origin: &str, events: &[ChangeEvent], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut batch: Vec<(String, i64, crate::store::ChangeKind)> = Vec::new();
        let mut size = origin.len() + 40;
        for e in events {
            let item = (e.model.clone(), e.id, e.kind);
            let len = e.model.len() + 32;
            if size + len > max && !batch.is_empty() {
                let note = Notification {
                    origin: origin.to_string(),
                    events: std::mem::take(&mut batch),
                };
                out.push(serde_json::to_string(&note).unwrap_or_default());
                size = origin.len() + 40;
            }
            size += len;
            batch.push(item);
        }
        if !batch.is_empty() {
            out.push(
                serde_json::to_string(&Notification {
                    origin: origin.to_string(),
                    events: batch,
                })
                .unwrap_or_default(),
            );
        }
        out
    }
}

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
            .any(|(m, _, k)| *k != ChangeKind::Status && matches!(m.as_str(), "User" | "ApiToken"));
        store.note_external_change(credentials);
        for (model, id, kind) in note.events {
            hub.publish(ChangeEvent { model, id, kind });
        }
    }
}

/// Whether the actor may hear of this event: deletes (an id only) go to every user; other events
/// only to those who may read the object.
async fn visible(state: &AppState, actor: &Actor, e: &ChangeEvent) -> bool {
    if actor.is_root() || e.kind == ChangeKind::Delete {
        return true;
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

/// `GET /xos/events`: change events as server-sent events, for objects the caller may read;
/// resumes after `Last-Event-ID`.
pub async fn stream(
    State(state): State<AppState>,
    Extension(auth): Extension<AuthContext>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let actor = auth.require()?;
    let hub = state.events.clone();
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
    let stream = event_stream(state, actor, epoch, replay, rx);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The events after the replay, filtered to what the actor may read.
fn event_stream(
    state: AppState,
    actor: Actor,
    epoch: String,
    replay: Option<Vec<Numbered>>,
    rx: broadcast::Receiver<Numbered>,
) -> impl Stream<Item = Result<Event, std::convert::Infallible>> {
    futures::stream::unfold(
        (state, actor, epoch, replay.map(VecDeque::from), rx, false),
        |(state, actor, epoch, mut replay, mut rx, mut reset_sent)| async move {
            loop {
                // A resume the buffer cannot serve: tell the client to fetch everything again.
                if replay.is_none() && !reset_sent {
                    reset_sent = true;
                    let ev = Event::default().event("reset").data("{}");
                    return Some((
                        Ok(ev),
                        (state, actor, epoch, Some(VecDeque::new()), rx, reset_sent),
                    ));
                }
                let next = match replay.as_mut().and_then(VecDeque::pop_front) {
                    Some(n) => n,
                    None => match rx.recv().await {
                        Ok(n) => n,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            replay = None;
                            reset_sent = false;
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                };
                if next.reset {
                    let ev = Event::default()
                        .id(format!("{epoch}-{}", next.seq))
                        .event("reset")
                        .data("{}");
                    return Some((Ok(ev), (state, actor, epoch, replay, rx, reset_sent)));
                }
                if visible(&state, &actor, &next.event).await {
                    let ev = sse_event(&epoch, &next);
                    return Some((Ok(ev), (state, actor, epoch, replay, rx, reset_sent)));
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64) -> ChangeEvent {
        ChangeEvent {
            model: "Slice".into(),
            id,
            kind: ChangeKind::Update,
        }
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
