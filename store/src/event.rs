//! Change events: what a committed unit of work announces, in this process and to others.

use serde::Serialize;
use std::sync::Arc;

/// What kind of change an event reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
    /// A synchronizer status write (backend_status, enacted, backend ids).
    Status,
}

/// A change published after its unit of work committed.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ChangeEvent {
    pub model: String,
    pub id: i64,
    pub kind: ChangeKind,
    /// For a delete of a model with visibility rules: the non-admin users who could see the
    /// object just before (`None`: everyone could). Never sent to clients.
    #[serde(skip)]
    pub audience: Option<Arc<Vec<i64>>>,
}

impl ChangeEvent {
    pub fn new(model: impl Into<String>, id: i64, kind: ChangeKind) -> ChangeEvent {
        ChangeEvent {
            model: model.into(),
            id,
            kind,
            audience: None,
        }
    }

    /// Whether the change may alter who a credential stands for (a user's password, flags or
    /// deactivation; a token revoked).
    pub fn touches_credentials(&self) -> bool {
        self.kind != ChangeKind::Status && matches!(self.model.as_str(), "User" | "ApiToken")
    }
}

/// One event in a notification: `[model, id, kind, audience]` (compact: a batch of status
/// writes sends thousands).
pub type NoteEvent = (String, i64, ChangeKind, Option<std::sync::Arc<Vec<i64>>>);

/// What a commit announces to other processes.
#[derive(Serialize, serde::Deserialize)]
pub struct Notification {
    pub origin: String,
    pub events: Vec<NoteEvent>,
}

impl Notification {
    /// The payloads announcing `events`, each at most `max` bytes.
    pub fn payloads(origin: &str, events: &[ChangeEvent], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut batch: Vec<NoteEvent> = Vec::new();
        let mut size = origin.len() + 40;
        for e in events {
            let item = (e.model.clone(), e.id, e.kind, e.audience.clone());
            let len = e.model.len() + 40 + e.audience.as_ref().map_or(0, |a| a.len() * 21);
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
