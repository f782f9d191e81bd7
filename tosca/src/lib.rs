//! TOSCA recipes: the XOS node types (TOSCA Simple Profile YAML) applied to the data model.
//!
//! A recipe is parsed with line numbers ([`parse`]), checked against the registry's TOSCA
//! annotations (node types, properties, requirement relationships, capabilities), ordered by its
//! requirements, and then applied ([`run`]) as one unit of work of the store: permissions,
//! validation and hooks apply as for any other write. Each node runs inside a savepoint, so a
//! failing node is reported and the others still run, and then nothing is kept when any failed.
//! `--dry-run` runs the same unit and rolls it back, so the plan it prints is exactly what an
//! apply would do.
//!
//! See `docs/tosca.md` for the node types and what each relationship writes.

mod apply;
mod parse;

pub use apply::{Entry, Mode, run};
pub use parse::{Recipe, Source, parse};

use registry::fields;
use serde::Serialize;
use std::fmt;
use store::StoreError;

/// One thing wrong with a recipe, located in its file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The node template, when the problem belongs to one.
    pub node: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "{}:{}: node '{}': {}", self.file, self.line, n, self.message),
            None => write!(f, "{}:{}: {}", self.file, self.line, self.message),
        }
    }
}

/// Why a recipe was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ToscaError {
    /// The recipe is wrong: every problem found, nothing written.
    #[error("{}", list(.0))]
    Problems(Vec<Problem>),
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(problems: &[Problem]) -> String {
    let mut out = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    out.push_str(&format!(
        "\n{} problem{}; nothing was written",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    ));
    out
}

/// Read recipe files from disk.
pub fn read_sources(paths: &[std::path::PathBuf]) -> Result<Vec<Source>, ToscaError> {
    paths
        .iter()
        .map(|p| {
            let name = p.display().to_string();
            std::fs::read_to_string(p)
                .map(|text| Source {
                    name: name.clone(),
                    text,
                })
                .map_err(|e| ToscaError::Read(name, e))
        })
        .collect()
}

/// A plan as text: one line per node, then a summary.
pub fn format_plan(entries: &[Entry], dry_run: bool) -> String {
    let mut out = String::new();
    let width = entries.iter().map(|e| e.node_type.len()).max().unwrap_or(0);
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for e in entries {
        match counts.iter_mut().find(|(a, _)| *a == e.action.as_str()) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.action.as_str(), 1)),
        }
        out.push_str(&format!(
            "{:<9} {:<width$}  {}",
            e.action.as_str(),
            e.node_type,
            e.node
        ));
        if !e.changes.is_empty() {
            out.push_str(&format!("  ({})", e.changes.join(", ")));
        }
        out.push('\n');
    }
    let summary: Vec<String> = counts.iter().map(|(a, n)| format!("{n} {a}")).collect();
    out.push_str(&summary.join(", "));
    if dry_run {
        out.push_str(" (dry run: nothing written)");
    }
    out.push('\n');
    out
}

/// The actor a recipe runs as: the user with this email (their permissions apply).
pub async fn actor_for(store: &store::Store, email: &str) -> Result<store::Actor, ToscaError> {
    let users = store
        .find(
            &store::Actor::System,
            store.model("User"),
            "email",
            store::db::Value::Text(email.to_string()),
        )
        .await?;
    let user = users
        .first()
        .ok_or_else(|| ToscaError::Store(StoreError::field("user", format!("There is no user {email}."))))?;
    Ok(store::Actor::User(store::Principal {
        id: user.id(),
        email: email.to_string(),
        is_admin: user.opt(fields::user::IS_ADMIN) == Some(true),
        is_readonly: user.opt(fields::user::IS_READONLY) == Some(true),
        site_id: user
            .req(fields::user::SITE)
            .map_err(|e| ToscaError::Store(StoreError::field("user", e.to_string())))?,
    }))
}
