//! The list of a model's objects: search, filters, sorting, paging, status and bulk delete.

use super::*;
use crate::catalog;
use crate::client::{Collection, id_of, str_of};
use crate::meta::{Field, Kind, Model};
#[cfg(feature = "ssr")]
use crate::pages::Frame;
use leptos::either::Either;
use leptos::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

pub(super) fn cell_text(f: &Field, v: &Value, fk_names: &HashMap<String, HashMap<i64, String>>) -> String {
    match (f.fk_target(), v) {
        (Some(_), Value::Number(n)) => {
            let id = n.as_i64().unwrap_or(0);
            fk_names
                .get(&f.name)
                .and_then(|m| m.get(&id))
                .cloned()
                .unwrap_or_else(|| format!("#{id}"))
        }
        (_, Value::Null) => "—".into(),
        (_, Value::Bool(b)) => {
            if *b {
                "yes".into()
            } else {
                "no".into()
            }
        }
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// `/admin/<app>/<model>/`: the page around the list, on the server.
#[cfg(feature = "ssr")]
#[component]
pub fn AdminList() -> impl IntoView {
    let params = leptos_router::hooks::use_params_map();
    let (app, slug) = params.with_untracked(|p| {
        (
            p.get("app").unwrap_or_default(),
            p.get("model").unwrap_or_default(),
        )
    });
    let first = use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<FirstPage>().cloned());
    let body = match model_by_slug(&app, &slug).and_then(|m| catalog::model(&m.name)) {
        Some(m) => view! { <AdminListIsland models=catalog::for_island(m) first/> }.into_any(),
        None => view! { <p class="error">"There is no such model."</p> }.into_any(),
    };
    view! { <Frame>{body}</Frame> }
}

/// The list, live in the browser: `models` is its model first, then those it refers to;
/// `first` the first page the server read, when it could.
#[island]
pub fn AdminListIsland(models: Vec<Model>, first: Option<FirstPage>) -> impl IntoView {
    let name = models.first().map(|m| m.name.clone()).unwrap_or_default();
    catalog::install(models);
    catalog::model(&name).map(|model| view! { <ModelList model first/> })
}

#[component]
pub(super) fn ModelList(model: &'static Model, first: Option<FirstPage>) -> impl IntoView {
    let coll = Collection::new(model);
    let search = RwSignal::new(String::new());
    let typed = RwSignal::new(String::new());
    let ordering = RwSignal::new(String::new());
    let page = RwSignal::new(0i64);
    let filters = RwSignal::new(BTreeMap::<String, String>::new());
    let caps = RwSignal::new(Caps::default());
    let fk_names = RwSignal::new(HashMap::<String, HashMap<i64, String>>::new());
    if let Some(first) = first {
        coll.models.set(first.rows);
        coll.total.set(first.total);
        coll.loaded.set(true);
        caps.set(Caps {
            create: first.create,
            objects: first.objects.into_iter().map(|(id, c, d)| (id, (c, d))).collect(),
        });
    }
    let status_field = model.field_named("backend_status").filter(|f| f.readable);
    let columns: Vec<&'static Field> = {
        let mut cols: Vec<&'static Field> = model
            .list_fields
            .iter()
            .filter_map(|n| model.field_named(n))
            .collect();
        if cols.is_empty() {
            cols = model
                .readable_fields()
                .filter(|f| f.name != "id")
                .take(5)
                .collect();
        }
        // A synchronized model always shows its status: whether the backend made it is what
        // an operator looks for first.
        if let Some(status) = status_field
            && !cols.iter().any(|f| f.name == "backend_status")
        {
            cols.push(status);
        }
        cols
    };
    let filterable: Vec<&'static Field> = model
        .fields
        .iter()
        .filter(|f| f.readable && (matches!(f.kind, Kind::Boolean) || !f.choices.is_empty()))
        .filter(|f| {
            !matches!(
                f.name.as_str(),
                "deleted" | "write_protect" | "lazy_blocked" | "no_sync"
            )
        })
        .collect();
    let query = move || {
        let mut q = vec![format!("limit={PAGE}"), format!("offset={}", page.get() * PAGE)];
        if !search.get().is_empty() {
            q.push(format!("search={}", urlencode(&search.get())));
        }
        if !ordering.get().is_empty() {
            q.push(format!("ordering={}", ordering.get()));
        }
        for (k, v) in filters.get() {
            if !v.is_empty() {
                q.push(format!("{k}={}", urlencode(&v)));
            }
        }
        q.join("&")
    };
    Effect::new(move |_| coll.fetch_query(query()));
    #[cfg(feature = "hydrate")]
    crate::client::events::subscribe(model.name.as_str(), move |_| coll.fetch_query(query()));
    // Capabilities and related names whenever the rows change.
    let fk_columns: Vec<&'static Field> = columns
        .iter()
        .copied()
        .filter(|f| f.fk_target().is_some())
        .collect();
    Effect::new(move |_| {
        let rows = coll.models.get();
        let ids: Vec<i64> = rows.iter().map(id_of).collect();
        let fks = fk_columns.clone();
        leptos::task::spawn_local(async move {
            caps.set(capabilities(&model.plural, &ids).await);
            let mut all = HashMap::new();
            for f in fks {
                let target = f.fk_target().and_then(catalog::model);
                let Some(target) = target else { continue };
                let ids: Vec<i64> = rows
                    .iter()
                    .filter_map(|r| r.get(&f.name).and_then(Value::as_i64))
                    .collect();
                all.insert(f.name.clone(), names(&target.plural, &ids).await);
            }
            fk_names.set(all);
        });
    });
    let headers = columns
        .iter()
        .map(|f| {
            let name = f.name.clone();
            let label = capitalize(&f.verbose_name);
            let sort_name = name.clone();
            let aria = move || {
                let o = ordering.get();
                if o == sort_name {
                    "ascending"
                } else if o == format!("-{sort_name}") {
                    "descending"
                } else {
                    "none"
                }
            };
            view! {
                <th scope="col" aria-sort=aria>
                    <button class="sort" on:click=move |_| {
                        let o = ordering.get_untracked();
                        ordering.set(if o == name { format!("-{name}") } else { name.clone() });
                        page.set(0);
                    }>{label}</button>
                </th>
            }
        })
        .collect_view();
    let filter_controls = filterable
        .iter()
        .map(|f| {
            let name = f.name.clone();
            let id = format!("filter-{name}");
            let options: Vec<(String, String)> = if f.choices.is_empty() {
                vec![("true".into(), "yes".into()), ("false".into(), "no".into())]
            } else {
                f.choices.clone()
            };
            view! {
                <div class="filter">
                    <label for=id.clone()>{capitalize(&f.verbose_name)}</label>
                    <select id=id on:change=move |ev| {
                        let v = event_target_value(&ev);
                        filters.update(|m| { m.insert(name.clone(), v); });
                        page.set(0);
                    }>
                        <option value="">"All"</option>
                        {options.into_iter().map(|(v, l)| view! { <option value=v>{l}</option> }).collect_view()}
                    </select>
                </div>
            }
        })
        .collect_view();
    // Pending, OK or in error: the code the status starts with (`backend_status__startswith`).
    let status_filter = status_field.map(|_| {
        view! {
            <div class="filter">
                <label for="filter-status">"Status"</label>
                <select id="filter-status" data-testid="status-filter" on:change=move |ev| {
                    let v = event_target_value(&ev);
                    filters.update(|m| { m.insert("backend_status__startswith".into(), v); });
                    page.set(0);
                }>
                    <option value="">"All"</option>
                    <option value="0">"Pending"</option>
                    <option value="1">"OK"</option>
                    <option value="2">"Error"</option>
                </select>
            </div>
        }
    });
    let cols = columns.clone();
    let rows = move || {
        let names = fk_names.get();
        let caps = caps.get();
        coll.models
            .get()
            .into_iter()
            .map(|o| {
                let id = id_of(&o);
                let href = format!("{}{id}/", admin_path(model));
                let title = str_of(&o, "humanReadableName").to_string();
                let cells = cols
                    .iter()
                    .map(|f| {
                        let v = o.get(&f.name).cloned().unwrap_or(Value::Null);
                        if f.name == "backend_status" {
                            Either::Left(view! { <td><StatusMark status=cell_text(f, &v, &names)/></td> })
                        } else {
                            Either::Right(view! { <td>{cell_text(f, &v, &names)}</td> })
                        }
                    })
                    .collect_view();
                let may_change = caps.objects.get(&id).map(|c| c.0).unwrap_or(false);
                view! {
                    <tr data-id=id.to_string()>
                        <th scope="row"><a href=href>{if title.is_empty() { format!("#{id}") } else { title }}</a></th>
                        {cells}
                        <td class="muted">{if may_change { "" } else { "read only" }}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    let pager = move || {
        let total = coll.total.get().unwrap_or(0);
        let first = page.get() * PAGE;
        let last = (first + PAGE).min(total);
        let at_start = first == 0;
        let at_end = first + PAGE >= total;
        let shown = if total == 0 {
            "No objects".to_string()
        } else {
            format!("{}–{last} of {total}", first + 1)
        };
        view! {
            <nav class="pager" aria-label="Pages">
                <button class="link" disabled=at_start on:click=move |_| page.update(|p| *p -= 1)>"Previous"</button>
                <span>{shown}</span>
                <button class="link" disabled=at_end on:click=move |_| page.update(|p| *p += 1)>"Next"</button>
            </nav>
        }
    };
    let add_href = format!("{}add/", admin_path(model));
    view! {
        <section class="card admin-list">
            <div class="card-head">
                <h1>{capitalize(&model.verbose_name_plural)}</h1>
                {move || caps.get().create.then(|| view! {
                    <a class="button primary" href=add_href.clone()>{format!("Add {}", model.verbose_name)}</a>
                })}
            </div>
            <form class="search" role="search" on:submit=move |ev| { ev.prevent_default(); search.set(typed.get_untracked()); page.set(0); }>
                <label for="admin-search" class="visually-hidden">"Search"</label>
                <input id="admin-search" type="search" placeholder="Search" bind:value=typed/>
                <button type="submit">"Search"</button>
            </form>
            <div class="filters">{status_filter}{filter_controls}</div>
            {move || coll.error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <div class="table-wrap">
                <table class="grid" data-testid="admin-list">
                    <thead><tr><th scope="col">{capitalize(&model.verbose_name)}</th>{headers}<th scope="col"><span class="visually-hidden">"Access"</span></th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            {pager}
        </section>
    }
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
