//! A cache of rendered GET responses (lists and objects), the way XOS clients use the API: they
//! poll the same lists every few seconds (xoslib's `startPolling`) while writes are rare.
//!
//! Correctness rests on the store's change generation (`Store::generation`), bumped synchronously
//! by every commit that changed something (and by changes other processes announce). An entry is
//! stored with the generation read *before* its data was read and is served only while the
//! generation is unchanged, so a read that raced a commit is never served after that commit
//! returned, and a client always reads its own writes. Entries are per caller (visibility differs between users), per URL, per
//! formatting (indent, hyperlink base).

use axum::body::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept at most; past it the cache is emptied (simple and bounded).
const MAX_ENTRIES: usize = 4096;
/// Responses larger than this are not kept.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A cached response body with the `X-Total-Count` it carried.
#[derive(Clone)]
pub struct Cached {
    pub body: Bytes,
    pub total: Option<i64>,
}

/// The response cache.
pub struct ResponseCache {
    enabled: bool,
    entries: Mutex<HashMap<String, (u64, Cached)>>,
}

impl ResponseCache {
    pub fn new(enabled: bool) -> ResponseCache {
        ResponseCache {
            enabled,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A live entry for `key` at the store's `current` generation.
    pub fn get(&self, key: &str, current: u64) -> Option<Cached> {
        if !self.enabled {
            return None;
        }
        let map = self.entries.lock().expect("response cache lock");
        map.get(key)
            .filter(|(g, _)| *g == current)
            .map(|(_, c)| c.clone())
    }

    /// Keep a response whose data was read at generation `read_at` (now `current`).
    pub fn put(&self, key: String, read_at: u64, current: u64, value: Cached) {
        if !self.enabled || value.body.len() > MAX_BODY || read_at != current {
            return;
        }
        let mut map = self.entries.lock().expect("response cache lock");
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (read_at, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Cached {
        Cached {
            body: Bytes::from_static(b"[]"),
            total: None,
        }
    }

    #[test]
    fn entries_die_with_their_generation() {
        let c = ResponseCache::new(true);
        c.put("k".into(), 5, 5, body());
        assert!(c.get("k", 5).is_some());
        assert!(c.get("k", 6).is_none(), "a change makes every entry stale");
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let c = ResponseCache::new(true);
        c.put("k".into(), 5, 6, body()); // a commit landed while the read ran
        assert!(c.get("k", 6).is_none());
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let c = ResponseCache::new(false);
        c.put("k".into(), 1, 1, body());
        assert!(c.get("k", 1).is_none());
    }
}
