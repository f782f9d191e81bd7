//! Controller link rows (ControllerSite, ControllerSlice, ControllerUser) on a backend that has
//! nothing to make for some of them: the local host has no projects or accounts per site or
//! user, EC2 none per site, slice or user. XOS left such rows "Provisioning in progress" forever,
//! and so their Site, Slice and User; here the backend enacts them, saying what it did (nothing,
//! and why), so the model policy [`synchronizer::policies::LinkStatus`] can tell the parent.

use std::future::Future;
use std::pin::Pin;
use store::Record;
use store::db::{Sql, Value};
use synchronizer::{Enacted, Step, StepContext, SyncError, and_where, default_fetch_pending};

/// The link models, each with the parent it tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Site,
    Slice,
    User,
}

impl Link {
    /// (link model, parent model).
    pub fn models(self) -> (&'static str, &'static str) {
        match self {
            Link::Site => ("ControllerSite", "Site"),
            Link::Slice => ("ControllerSlice", "Slice"),
            Link::User => ("ControllerUser", "User"),
        }
    }
}

/// What enacting one link row does on the backend (nothing, by default); its status message.
pub type LinkAction = for<'a> fn(
    &'a StepContext,
    &'a Record,
) -> Pin<Box<dyn Future<Output = Result<String, SyncError>> + Send + 'a>>;

/// Enacts the link rows of one model whose controller is of one backend type.
pub struct LinkStep {
    pub name: &'static str,
    pub backend: &'static str,
    pub link: Link,
    /// The status of an enacted row (`1 - <note>`) when there is no action.
    pub note: &'static str,
    /// What to do on the backend, if anything (the local backend's slice directory).
    pub enact: Option<LinkAction>,
    pub remove: Option<LinkAction>,
}

impl LinkStep {
    /// A link step with nothing to do on the backend.
    pub fn nothing(name: &'static str, backend: &'static str, link: Link, note: &'static str) -> LinkStep {
        LinkStep {
            name,
            backend,
            link,
            note,
            enact: None,
            remove: None,
        }
    }
}

/// ` AND t.controller_id IN (controllers of backend type `backend`)`.
pub fn links_of(backend: &str) -> Sql {
    let mut extra = and_where(
        "t.controller_id IN (SELECT id FROM core_controller WHERE backend_type = ",
        Value::Text(backend.into()),
    );
    extra.push(")");
    extra
}

#[async_trait::async_trait]
impl Step for LinkStep {
    fn name(&self) -> &'static str {
        self.name
    }
    fn provides(&self) -> Vec<&'static str> {
        let (link, parent) = self.link.models();
        vec![link, parent]
    }
    fn observes(&self) -> &'static str {
        self.link.models().0
    }
    async fn fetch_pending(&self, ctx: &StepContext, deletion: bool) -> Result<Vec<Record>, SyncError> {
        Ok(default_fetch_pending(
            &ctx.store,
            self.observes(),
            deletion,
            Some(links_of(self.backend)),
        )
        .await?)
    }
    async fn sync_record(&self, ctx: &StepContext, obj: &Record) -> Result<Enacted, SyncError> {
        match self.enact {
            Some(f) => Ok(Enacted::with_status(f(ctx, obj).await?)),
            None => Ok(Enacted::with_status(self.note)),
        }
    }
    async fn delete_record(&self, ctx: &StepContext, obj: &Record) -> Result<(), SyncError> {
        if let Some(f) = self.remove {
            f(ctx, obj).await?;
        }
        Ok(())
    }
}
