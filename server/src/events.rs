//! Change events for everyone who waits on them: the `/xos/events` stream (server-sent events),
//! the synchronizer's wake-ups and caches.
//!
//! Events enter the hub from this process's store (after each commit) and, on Postgres, from
//! `LISTEN` on the notifications every process's commits send (`pg_notify` inside the
//! transaction, so they are delivered exactly when the data is visible). Each event gets a
//! process-local sequence number; a client reconnecting with `Last-Event-ID` gets what it missed
//! from a bounded replay buffer, or a `reset` event telling it to fetch again.

use crate::store::{ChangeEvent, ChangeKind, Store};
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
            // The listener holds a pooled connection: it lets go as soon as the pool is closed,
            // so closing the pool (shutdown, `xos bench-sync`) does not wait for it.
            while !pool.is_closed() {
                match pool
                    .close_event()
                    .do_until(listen(&pool, &channel, &store, &hub))
                    .await
                {
                    Err(_closed) => break,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "event listener lost its connection; reconnecting")
                    }
                    Ok(Ok(())) => {}
                }
                let _ = pool
                    .close_event()
                    .do_until(tokio::time::sleep(Duration::from_secs(1)))
                    .await;
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
