//! Admin pages generated from the registry for every model (`/admin/<app>/<model>/`, as Django's
//! admin had them): a list with search, filters, sorting, paging and each object's backend
//! status; add and edit forms with a widget per field type and the server's field errors next to
//! the fields; delete with confirmation. Buttons appear only for what the user may do
//! (`/xoslib/capabilities/`); the server enforces the same rules on every write.
//!
//! The page around a list or a form (title bar, navigation, the model index) is rendered on the
//! server; the list and the form themselves are islands, given their model's metadata as props.

mod form;
mod history;
mod list;
mod widgets;

#[cfg(feature = "ssr")]
pub use form::AdminForm;
#[cfg(feature = "ssr")]
pub use list::AdminList;
pub use widgets::StatusMark;

use crate::client::request;
use crate::meta::Model;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

#[cfg(feature = "ssr")]
pub use server_side::*;

/// Rows per page of a list.
pub const PAGE: i64 = 25;

/// The first page of a list, read by the server before it renders the page, so the rows (and
/// their links) are in the HTML before any script runs: the rows as the API gives them, the
/// total, whether the user may add, and per row whether they may change and delete it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FirstPage {
    pub rows: Vec<crate::client::Object>,
    pub total: Option<i64>,
    pub create: bool,
    pub objects: Vec<(i64, bool, bool)>,
}

/// The admin list of a model.
pub fn admin_path(m: &Model) -> String {
    path_of(&m.app, &m.name)
}

/// The admin list of model `name` of `app`, as Django named it.
fn path_of(app: &str, name: &str) -> String {
    format!("/admin/{app}/{}/", name.to_lowercase())
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

#[cfg(feature = "ssr")]
mod server_side {
    use super::{capitalize, path_of};
    use crate::pages::{Frame, current_user};
    use crate::registry::{Model, registry};
    use leptos::prelude::*;

    /// The model of an admin URL's segments (`core`, `dashboardview` → DashboardView), as Django
    /// named them: the model's app, then its name in lower case.
    pub fn model_by_slug(app: &str, slug: &str) -> Option<&'static Model> {
        registry()
            .models
            .iter()
            .find(|m| m.app == app && m.name.to_lowercase() == slug.to_lowercase())
    }

    /// `/admin/`: every model.
    #[component]
    pub fn AdminIndex() -> impl IntoView {
        // The core's models and those of the services this server loads.
        let loaded = current_user().map(|u| u.services).unwrap_or_default();
        let rows = registry()
            .models
            .iter()
            .filter(|m| m.app == "core" || loaded.contains(&m.app))
            .map(|m| {
                view! {
                    <li>
                        <a href=path_of(&m.app, &m.name)>{capitalize(&m.verbose_name_plural)}</a>
                        <span class="muted">{m.help_text.clone()}</span>
                    </li>
                }
            })
            .collect_view();
        view! {
            <Frame>
                <section class="card">
                    <h1>"Administration"</h1>
                    <ul class="model-index">{rows}</ul>
                </section>
            </Frame>
        }
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
