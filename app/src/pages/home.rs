//! The home page: one tab per dashboard the user chose (or the default one), in their order,
//! and the Customize tab last, where they choose and order them.
//!
//! A `template:` view is shown in a same-origin frame of its standalone page
//! (`/admin/dashboard/<name>/?embed=1`), so its scripts run each time the tab opens; an
//! `http(s)://` view in a sandboxed frame.

use crate::client::request;
use leptos::either::{Either, EitherOf4};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A dashboard view as `/xoslib/dashboards/` lists it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ViewInfo {
    pub name: String,
    pub url: String,
}

/// The caller's tabs, their choice and what else they could add: what `/xoslib/dashboards/`
/// answers, and what the server puts in the home page's request before rendering it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Dashboards {
    pub tabs: Vec<ViewInfo>,
    pub chosen: Vec<ViewInfo>,
    pub available: Vec<ViewInfo>,
}

async fn load_dashboards() -> Result<Dashboards, String> {
    let (status, body) = request("GET", "/xoslib/dashboards/", None).await?;
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    serde_json::from_value(body).map_err(|e| e.to_string())
}

/// `/`: the tabs are in the page the server sends (no request waits for the wasm bundle); the
/// bundle makes them switch and the Customize tab work.
#[cfg(feature = "ssr")]
#[component]
pub fn HomePage() -> impl IntoView {
    let dashboards = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Result<Dashboards, String>>().cloned())
        .unwrap_or_else(|| Err("The dashboards could not be loaded.".into()));
    view! {
        <super::Frame>
            {match dashboards {
                Ok(dashboards) => view! { <HomeTabs dashboards/> }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
            }}
        </super::Frame>
    }
}

/// The tabs and the Customize tab, live in the browser.
#[island]
pub fn HomeTabs(dashboards: Dashboards) -> impl IntoView {
    let dashboards = RwSignal::new(dashboards);
    let error = RwSignal::new(None::<String>);
    let selected = RwSignal::new(0usize);
    // The Customize tab's message survives the reload of the tabs its save causes.
    let notice = RwSignal::new(None::<(bool, String)>);
    // Set once the bundle made the tabs live (`data-live`, which tests and `make bench` wait for).
    let live = RwSignal::new(false);
    // Once live, the URL's hash names a tab (#customize, #dashtab-2).
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        live.set(true);
        let Some(hash) = web_sys::window().and_then(|w| w.location().hash().ok()) else {
            return;
        };
        let want = hash.trim_start_matches('#').to_string();
        let tabs = dashboards.with_untracked(|d| d.tabs.clone());
        if want == "customize" {
            selected.set(tabs.iter().position(|t| t.name == "Customize").unwrap_or(0));
        } else if let Some(i) = want
            .strip_prefix("dashtab-")
            .and_then(|n| n.parse::<usize>().ok())
        {
            selected.set(i.min(tabs.len().saturating_sub(1)));
        }
    });
    let reload = move || {
        leptos::task::spawn_local(async move {
            match load_dashboards().await {
                Ok(d) => {
                    // After a save, stay on the Customize tab.
                    if notice.get_untracked().is_some() {
                        selected.set(d.tabs.iter().position(|t| t.name == "Customize").unwrap_or(0));
                    }
                    dashboards.set(d);
                }
                Err(e) => error.set(Some(e)),
            }
        })
    };
    view! {
        <div class="home" data-live=move || live.get().then_some("1")>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || view! { <Tabs dashboards=dashboards.get() selected notice reload=Callback::new(move |_| reload())/> }}
        </div>
    }
}

#[component]
fn Tabs(
    dashboards: Dashboards,
    selected: RwSignal<usize>,
    notice: RwSignal<Option<(bool, String)>>,
    reload: Callback<()>,
) -> impl IntoView {
    let tabs = dashboards.tabs.clone();
    let count = tabs.len();
    let choose = move |i: usize| {
        selected.set(i);
        notice.set(None);
        #[cfg(feature = "hydrate")]
        if let Some(w) = web_sys::window() {
            let _ = w.location().set_hash(&format!("dashtab-{i}"));
        }
    };
    let buttons = tabs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let name = t.name.clone();
            // A link to the tab's hash: chosen before the bundle is live, it is the tab the
            // island opens when it starts.
            view! {
                <a
                    role="tab"
                    id=format!("tab-{i}")
                    class="tab"
                    href=format!("#dashtab-{i}")
                    aria-controls=format!("panel-{i}")
                    aria-selected=move || (selected.get() == i).to_string()
                    tabindex=move || if selected.get() == i { "0" } else { "-1" }
                    on:click=move |ev| {
                        ev.prevent_default();
                        choose(i)
                    }
                    on:keydown=move |ev| match ev.key().as_str() {
                        "ArrowRight" => choose((i + 1) % count.max(1)),
                        "ArrowLeft" => choose((i + count.max(1) - 1) % count.max(1)),
                        _ => {}
                    }
                >
                    {name}
                </a>
            }
        })
        .collect_view();
    let panel = move || {
        let i = selected.get().min(tabs.len().saturating_sub(1));
        let Some(t) = tabs.get(i).cloned() else {
            return Either::Left(view! { <p class="muted">"You have no dashboards."</p> });
        };
        let content = if t.name == "Customize" {
            EitherOf4::A(view! { <Customize dashboards=dashboards.clone() status=notice reload/> })
        } else if t.url.starts_with("template:") {
            let src = format!("/admin/dashboard/{}/?embed=1", urlencode(&t.name));
            EitherOf4::B(view! { <iframe class="dashboard-frame" title=t.name.clone() src=src></iframe> })
        } else if t.url.starts_with("http://") || t.url.starts_with("https://") {
            EitherOf4::C(view! {
                <iframe
                    class="dashboard-frame"
                    title=t.name.clone()
                    src=t.url.clone()
                    sandbox="allow-scripts allow-forms allow-popups"
                    referrerpolicy="no-referrer"
                ></iframe>
            })
        } else {
            EitherOf4::D(
                view! { <p class="error">{format!("Don't know how to load dashboard {}", t.url)}</p> },
            )
        };
        Either::Right(view! {
            <div role="tabpanel" class="tabpanel" id=format!("panel-{i}") aria-labelledby=format!("tab-{i}")>
                {content}
            </div>
        })
    };
    view! {
        <div id="hometabs">
            <div class="tabs" role="tablist" aria-label="Dashboards">{buttons}</div>
            {panel}
        </div>
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Customize tab: choose dashboards, order them (buttons or drag), save.
#[component]
fn Customize(
    dashboards: Dashboards,
    status: RwSignal<Option<(bool, String)>>,
    reload: Callback<()>,
) -> impl IntoView {
    let all: Vec<String> = dashboards
        .chosen
        .iter()
        .chain(dashboards.available.iter())
        .map(|v| v.name.clone())
        .collect();
    let chosen = RwSignal::new(
        dashboards
            .chosen
            .iter()
            .map(|v| v.name.clone())
            .collect::<Vec<String>>(),
    );
    let dragging = RwSignal::new(None::<usize>);
    let available = move || {
        let c = chosen.get();
        all.iter()
            .filter(|n| !c.contains(n))
            .cloned()
            .collect::<Vec<String>>()
    };
    let move_item = move |from: usize, to: usize| {
        chosen.update(|c| {
            if from < c.len() && to < c.len() {
                let item = c.remove(from);
                c.insert(to, item);
            }
        })
    };
    let save = move |_| {
        let names = chosen.get_untracked();
        leptos::task::spawn_local(async move {
            match request(
                "POST",
                "/xoslib/dashboards/",
                Some(json!({ "dashboards": names })),
            )
            .await
            {
                Ok((200, _)) => {
                    status.set(Some((
                        true,
                        "Saved. Your home page now shows these dashboards.".into(),
                    )));
                    reload.run(());
                }
                Ok((_, body)) => status.set(Some((false, body.to_string()))),
                Err(e) => status.set(Some((false, e))),
            }
        });
    };
    view! {
        <section class="card customize" aria-labelledby="customize-title">
            <h2 id="customize-title">"Customize your home page"</h2>
            <div class="columns">
                <div>
                    <h3 id="available-title">"Available dashboards"</h3>
                    <ul class="picklist" aria-labelledby="available-title" data-testid="available">
                        <For each=available key=|n| n.clone() let:name>
                            <li>
                                <span>{name.clone()}</span>
                                <button
                                    class="link"
                                    aria-label=format!("Add {name}")
                                    on:click={
                                        let name = name.clone();
                                        move |_| chosen.update(|c| c.push(name.clone()))
                                    }
                                >
                                    "Add"
                                </button>
                            </li>
                        </For>
                    </ul>
                </div>
                <div>
                    <h3 id="selected-title">"Your dashboards, in order"</h3>
                    <ol class="picklist" aria-labelledby="selected-title" data-testid="selected">
                        {move || {
                            let list = chosen.get();
                            let n = list.len();
                            list.into_iter()
                                .enumerate()
                                .map(|(i, name)| {
                                    view! {
                                        <li
                                            draggable="true"
                                            class:drop-target=move || dragging.get().is_some_and(|d| d != i)
                                            on:dragstart=move |_| dragging.set(Some(i))
                                            on:dragover=move |ev| ev.prevent_default()
                                            on:drop=move |ev| {
                                                ev.prevent_default();
                                                if let Some(from) = dragging.get_untracked() {
                                                    move_item(from, i);
                                                }
                                                dragging.set(None)
                                            }
                                            on:dragend=move |_| dragging.set(None)
                                        >
                                            <span class="drag-handle" aria-hidden="true">"⠿"</span>
                                            <span>{name.clone()}</span>
                                            <button class="link" aria-label=format!("Move {name} up") disabled=i == 0
                                                on:click=move |_| move_item(i, i.saturating_sub(1))>"Up"</button>
                                            <button class="link" aria-label=format!("Move {name} down") disabled=i + 1 == n
                                                on:click=move |_| move_item(i, i + 1)>"Down"</button>
                                            <button class="link" aria-label=format!("Remove {name}")
                                                on:click=move |_| chosen.update(|c| { c.remove(i); })>"Remove"</button>
                                        </li>
                                    }
                                })
                                .collect_view()
                        }}
                    </ol>
                </div>
            </div>
            <button class="primary" on:click=save>"Save"</button>
            {move || status.get().map(|(ok, m)| view! {
                <p class=if ok { "ok-message" } else { "error" } role="status">{m}</p>
            })}
        </section>
    }
}
