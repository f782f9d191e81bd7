//! Admin pages generated from the registry for every model (`/admin/<app>/<model>/`, as Django's
//! admin had them): a list with search, filters, sorting, paging and each object's backend
//! status; add and edit forms with a widget per field type and the server's field errors next to
//! the fields; delete with confirmation. Buttons appear only for what the user may do
//! (`/xoslib/capabilities/`); the server enforces the same rules on every write.

mod form;
mod history;
mod list;
mod widgets;

pub use form::AdminForm;
pub use list::AdminList;
pub use widgets::StatusMark;

use super::Frame;
use crate::client::request;
use crate::registry::{Model, registry};
use leptos::prelude::*;
use serde_json::Value;
use std::collections::HashMap;

/// Rows per page of a list.
const PAGE: i64 = 25;

/// The model of an admin URL's segments (`core`, `dashboardview` → DashboardView), as Django
/// named them: the model's app, then its name in lower case.
pub fn model_by_slug(app: &str, slug: &str) -> Option<&'static Model> {
    registry()
        .models
        .iter()
        .find(|m| m.app == app && m.name.to_lowercase() == slug.to_lowercase())
}

/// The admin list of a model.
pub fn admin_path(m: &Model) -> String {
    format!("/admin/{}/{}/", m.app, m.name.to_lowercase())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn user_resource() -> Resource<Result<Option<crate::UserInfo>, ServerFnError>> {
    Resource::new(|| (), |_| crate::current_user())
}

/// `/admin/`: every model.
#[component]
pub fn AdminIndex() -> impl IntoView {
    let user = user_resource();
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let u = user.await.ok().flatten();
                // The core's models and those of the services this server loads.
                let loaded = u.as_ref().map(|u| u.services.clone()).unwrap_or_default();
                let rows = registry()
                    .models
                    .iter()
                    .filter(|m| m.app == "core" || loaded.contains(&m.app))
                    .map(|m| view! {
                        <li>
                            <a href=admin_path(m)>{capitalize(&m.verbose_name_plural)}</a>
                            <span class="muted">{m.help_text.clone()}</span>
                        </li>
                    })
                    .collect_view();
                view! {
                    <Frame user=u>
                        <section class="card">
                            <h1>"Administration"</h1>
                            <ul class="model-index">{rows}</ul>
                        </section>
                    </Frame>
                }
                .into_any()
            })}
        </Suspense>
    }
}

/// Capabilities of the caller on a model and some of its objects.
#[derive(Clone, Debug, Default, PartialEq)]
struct Caps {
    create: bool,
    objects: HashMap<i64, (bool, bool)>,
}

async fn capabilities(plural: &str, ids: &[i64]) -> Caps {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let url = format!("/xoslib/capabilities/{plural}/?ids={}", list.join(","));
    let Ok((200, body)) = request("GET", &url, None).await else {
        return Caps::default();
    };
    let objects = body["objects"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.parse().ok()?,
                        (
                            v["change"].as_bool().unwrap_or(false),
                            v["delete"].as_bool().unwrap_or(false),
                        ),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Caps {
        create: body["create"].as_bool().unwrap_or(false),
        objects,
    }
}

/// Names (`humanReadableName`) of objects of `plural`, by id.
async fn names(plural: &str, ids: &[i64]) -> HashMap<i64, String> {
    if ids.is_empty() {
        return HashMap::new();
    }
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let url = format!("/xos/{plural}/?no_hyperlinks=1&id__in={}", list.join(","));
    match request("GET", &url, None).await {
        Ok((200, Value::Array(items))) => items
            .iter()
            .filter_map(|o| {
                Some((
                    o["id"].as_i64()?,
                    o["humanReadableName"].as_str().unwrap_or("").to_string(),
                ))
            })
            .collect(),
        _ => HashMap::new(),
    }
}
