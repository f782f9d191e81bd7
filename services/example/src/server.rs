//! The example service's step: each note is a file in `<state_dir>/example/`.

use crate::fields::example_note;
use store::Record;
use store::db::Value;
use synchronizer::{Enacted, Step, StepContext, SyncError};

/// Makes each note a file.
pub struct NoteFiles;

fn path_of(ctx: &StepContext, note: &Record) -> std::path::PathBuf {
    ctx.state_dir.join("example").join(format!("{}.txt", note.id()))
}

#[async_trait::async_trait]
impl Step for NoteFiles {
    fn name(&self) -> &'static str {
        "example_notes"
    }
    fn provides(&self) -> Vec<&'static str> {
        vec!["ExampleNote"]
    }
    fn observes(&self) -> &'static str {
        "ExampleNote"
    }
    async fn sync_record(&self, ctx: &StepContext, note: &Record) -> Result<Enacted, SyncError> {
        let path = path_of(ctx, note);
        // A note without a body is an empty file.
        let body = note.opt(example_note::BODY).unwrap_or_default().to_string();
        let failed = |e: std::io::Error| SyncError::Failed(format!("cannot write {}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(failed)?;
        }
        // Written aside and renamed: a reader never sees half a note.
        let aside = path.with_extension("tmp");
        tokio::fs::write(&aside, body.as_bytes()).await.map_err(failed)?;
        tokio::fs::rename(&aside, &path).await.map_err(failed)?;
        let shown = path.display().to_string();
        Ok(Enacted::with_status(format!("OK, written to {shown}")).field("path", Value::Text(shown)))
    }
    async fn delete_record(&self, ctx: &StepContext, note: &Record) -> Result<(), SyncError> {
        let path = path_of(ctx, note);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SyncError::Failed(format!(
                "cannot remove {}: {e}",
                path.display()
            ))),
        }
    }
}
