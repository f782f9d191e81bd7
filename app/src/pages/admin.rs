//! Admin pages generated from the registry for every model (`/admin/<app>/<model>/`, as Django's
//! admin had them): a list with search, filters, sorting, paging and each object's backend
//! status; add and edit forms with a widget per field type and the server's field errors next to
//! the fields; delete with confirmation. Buttons appear only for what the user may do
//! (`/xoslib/capabilities/`); the server enforces the same rules on every write.

use super::Frame;
use crate::client::{Collection, Object, SaveError, id_of, request, send_object, str_of};
use crate::registry::{Field, FieldKind, Model, registry};
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_params_map};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

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

/// `backend_status` as a mark and its text: ok (`1 -`), pending (`0 -`), error.
#[component]
pub fn StatusMark(status: String) -> impl IntoView {
    use crate::registry::BackendStatus as S;
    let (class, word) = match S::parse(&status) {
        S::Ok(_) => ("badge ok", "ok"),
        S::Pending(_) | S::Unset => ("badge pending", "pending"),
        S::Failed(_) => ("badge error", "error"),
    };
    view! {
        <span class=class title=status.clone()>
            <span class="mark">{word}</span>
            " "
            <span class="status-text">{status.clone()}</span>
        </span>
    }
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

fn cell_text(f: &Field, v: &Value, fk_names: &HashMap<String, HashMap<i64, String>>) -> String {
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

/// `/admin/<app>/<model>/`: the list.
#[component]
pub fn AdminList() -> impl IntoView {
    let params = use_params_map();
    let user = user_resource();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let slug = params.read().get("model").unwrap_or_default();
                let app = params.read().get("app").unwrap_or_default();
                Suspend::new(async move {
                    let u = user.await.ok().flatten();
                    let body = match model_by_slug(&app, &slug) {
                        Some(m) => view! { <ModelList model=m/> }.into_any(),
                        None => view! { <p class="error">"There is no such model."</p> }.into_any(),
                    };
                    view! { <Frame user=u>{body}</Frame> }.into_any()
                })
            }}
        </Suspense>
    }
}

#[component]
fn ModelList(model: &'static Model) -> impl IntoView {
    let coll = Collection::new(model.plural.as_str());
    let search = RwSignal::new(String::new());
    let typed = RwSignal::new(String::new());
    let ordering = RwSignal::new(String::new());
    let page = RwSignal::new(0i64);
    let filters = RwSignal::new(BTreeMap::<String, String>::new());
    let caps = RwSignal::new(Caps::default());
    let fk_names = RwSignal::new(HashMap::<String, HashMap<i64, String>>::new());
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
        cols
    };
    let filterable: Vec<&'static Field> = model
        .fields
        .iter()
        .filter(|f| f.is_readable() && (matches!(f.kind, FieldKind::Boolean) || !f.choices.is_empty()))
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
                let target = f.fk_target().and_then(|t| registry().model(t));
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
                f.choices.iter().map(|c| (c.value.clone(), c.label.clone())).collect()
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
                            view! { <td><StatusMark status=cell_text(f, &v, &names)/></td> }.into_any()
                        } else {
                            view! { <td>{cell_text(f, &v, &names)}</td> }.into_any()
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
            <div class="filters">{filter_controls}</div>
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

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/admin/<app>/<model>/add/` and `/admin/<app>/<model>/<id>/`: the form.
#[component]
pub fn AdminForm() -> impl IntoView {
    let params = use_params_map();
    let user = user_resource();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let slug = params.read().get("model").unwrap_or_default();
                let id = params.read().get("id").unwrap_or_default();
                let app = params.read().get("app").unwrap_or_default();
                Suspend::new(async move {
                    let u = user.await.ok().flatten();
                    let body = match (model_by_slug(&app, &slug), id.as_str()) {
                        (Some(m), "add") => view! { <ModelForm model=m id=None/> }.into_any(),
                        (Some(m), id) => match id.parse::<i64>() {
                            Ok(id) => view! { <ModelForm model=m id=Some(id)/> }.into_any(),
                            Err(_) => view! { <p class="error">"There is no such object."</p> }.into_any(),
                        },
                        (None, _) => view! { <p class="error">"There is no such model."</p> }.into_any(),
                    };
                    view! { <Frame user=u>{body}</Frame> }.into_any()
                })
            }}
        </Suspense>
    }
}

/// The fields a form shows: what users may write.
fn form_fields(model: &Model) -> Vec<&Field> {
    model.fields.iter().filter(|f| f.is_writable()).collect()
}

#[component]
fn ModelForm(model: &'static Model, id: Option<i64>) -> impl IntoView {
    let draft = RwSignal::new(Object::new());
    let loaded = RwSignal::new(id.is_none());
    let error = RwSignal::new(None::<SaveError>);
    let message = RwSignal::new(None::<String>);
    let caps = RwSignal::new(Caps::default());
    let confirm = RwSignal::new(false);
    let status = RwSignal::new(String::new());
    // Bumped after each save, so the history shows the new entry.
    let saved = RwSignal::new(0u32);
    let navigate = use_navigate();
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            if let Some(id) = id {
                match request(
                    "GET",
                    &format!("/xos/{}/{id}/?no_hyperlinks=1", model.plural),
                    None,
                )
                .await
                {
                    Ok((200, Value::Object(o))) => {
                        status.set(str_of(&o, "backend_status").to_string());
                        draft.set(o);
                    }
                    Ok((status, body)) => error.set(Some(SaveError::Other(
                        body["detail"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("HTTP {status}")),
                    ))),
                    Err(e) => error.set(Some(SaveError::Other(e))),
                }
                loaded.set(true);
            } else {
                // Defaults from the declaration.
                let mut o = Map::new();
                for f in form_fields(model) {
                    if let Some(crate::registry::FieldDefault::Value(v)) = &f.default {
                        o.insert(f.name.clone(), v.clone());
                    }
                }
                draft.set(o);
            }
            caps.set(capabilities(&model.plural, &id.into_iter().collect::<Vec<_>>()).await);
        })
    });
    let can_change = move || match id {
        None => caps.get().create,
        Some(id) => caps.get().objects.get(&id).map(|c| c.0).unwrap_or(false),
    };
    let can_delete = move || id.is_some_and(|id| caps.get().objects.get(&id).map(|c| c.1).unwrap_or(false));
    let shown: Vec<String> = form_fields(model).iter().map(|f| f.name.clone()).collect();
    let nav = navigate.clone();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let mut body = Map::new();
        let d = draft.get_untracked();
        for f in form_fields(model) {
            match (d.get(&f.name), &f.kind) {
                (Some(Value::String(s)), FieldKind::Password) if s.is_empty() => {}
                (Some(v), _) => {
                    body.insert(f.name.clone(), v.clone());
                }
                (None, _) => {}
            }
        }
        let nav = nav.clone();
        leptos::task::spawn_local(async move {
            let result = match id {
                Some(id) => {
                    send_object(
                        "PATCH",
                        &format!("/xos/{}/{id}/?no_hyperlinks=1", model.plural),
                        body,
                    )
                    .await
                }
                None => send_object("POST", &format!("/xos/{}/?no_hyperlinks=1", model.plural), body).await,
            };
            match result {
                Ok(obj) => {
                    error.set(None);
                    if id.is_none() {
                        nav(
                            &format!("{}{}/", admin_path(model), id_of(&obj)),
                            Default::default(),
                        );
                    } else {
                        message.set(Some(format!("The {} was saved.", model.verbose_name)));
                        saved.update(|n| *n += 1);
                        status.set(str_of(&obj, "backend_status").to_string());
                        draft.set(obj);
                    }
                }
                Err(e) => {
                    message.set(None);
                    error.set(Some(e));
                }
            }
        });
    };
    let delete = move |_| {
        let Some(id) = id else { return };
        let nav = navigate.clone();
        leptos::task::spawn_local(async move {
            match Collection::new(model.plural.as_str()).destroy(id).await {
                Ok(()) => nav(&admin_path(model), Default::default()),
                Err(e) => {
                    confirm.set(false);
                    error.set(Some(e));
                }
            }
        });
    };
    let title = match id {
        None => format!("Add {}", model.verbose_name),
        Some(_) => format!("Change {}", model.verbose_name),
    };
    let fields = move || {
        form_fields(model)
            .into_iter()
            .map(|f| view! { <FieldInput field=f draft error/> })
            .collect_view()
    };
    view! {
        <section class="card admin-form">
            <nav class="breadcrumbs" aria-label="Breadcrumbs">
                <a href="/admin/">"Admin"</a>" › "<a href=admin_path(model)>{capitalize(&model.verbose_name_plural)}</a>
            </nav>
            <h1>{title}</h1>
            {move || (!status.get().is_empty()).then(|| view! { <p>"Backend status: "<StatusMark status=status.get()/></p> })}
            {move || message.get().map(|m| view! { <p class="ok-message" role="status">{m}</p> })}
            {
                let shown = shown.clone();
                move || error.get().and_then(|e| e.general(&shown)).map(|m| view! { <p class="error" role="alert">{m}</p> })
            }
            <Show when=move || loaded.get() fallback=|| view! { <p class="muted">"Loading…"</p> }>
                <form class="model-form" on:submit=submit.clone() novalidate>
                    <fieldset disabled=move || !can_change()>
                        {fields}
                    </fieldset>
                    <div class="actions">
                        {move || can_change().then(|| view! { <button type="submit" class="primary">"Save"</button> })}
                        {move || can_delete().then(|| view! {
                            <button type="button" class="danger" on:click=move |_| confirm.set(true)>"Delete"</button>
                        })}
                    </div>
                </form>
            </Show>
            {(model.name == "Instance").then(|| view! { <SshLine draft/> })}
            {id.map(|id| view! { <Inlines model id reload=saved/> })}
            {id.map(|id| view! { <History model id reload=saved/> })}
            {move || confirm.get().then(|| view! {
                <div class="confirm" role="alertdialog" aria-labelledby="confirm-text">
                    <p id="confirm-text">{format!("Delete this {}? This cannot be undone.", model.verbose_name)}</p>
                    <button type="button" class="danger" on:click=delete.clone()>"Yes, delete it"</button>
                    <button type="button" class="link" on:click=move |_| confirm.set(false)>"Cancel"</button>
                </div>
            })}
        </section>
    }
}

/// How to reach an instance: XOS's ssh command line (through the node, as the Developer view
/// shows it) once the backend has named the instance, and its address.
#[component]
fn SshLine(draft: RwSignal<Object>) -> impl IntoView {
    let node_name = RwSignal::new(String::new());
    Effect::new(move |_| {
        let node = draft.with(|d| d.get("node").and_then(Value::as_i64));
        if let Some(node) = node {
            leptos::task::spawn_local(async move {
                if let Ok((200, v)) =
                    request("GET", &format!("/xos/nodes/{node}/?no_hyperlinks=1"), None).await
                {
                    node_name.set(v["name"].as_str().unwrap_or_default().to_string());
                }
            });
        }
    });
    move || {
        let d = draft.get();
        let (iid, iname, ip) = (
            str_of(&d, "instance_id"),
            str_of(&d, "instance_name"),
            str_of(&d, "ip"),
        );
        let node = node_name.get();
        let command = if !iid.is_empty() && !iname.is_empty() && !node.is_empty() {
            format!("ssh -o \"ProxyCommand ssh -q {iid}@{node}\" ubuntu@{iname}")
        } else if !ip.is_empty() {
            format!("ssh ubuntu@{ip}")
        } else {
            return None;
        };
        Some(view! {
            <section class="ssh-line" aria-label="Reaching the instance">
                <h2>"Reaching it"</h2>
                <p>"Address: "<code>{if ip.is_empty() { "—".to_string() } else { ip.to_string() }}</code>
                   " · backend id: "<code>{iid.to_string()}</code></p>
                <pre class="ssh-command">{command}</pre>
            </section>
        })
    }
}

/// The related objects a model declares (`Model::inlines`): each one's name, its list columns
/// that are not foreign keys, and its backend status, linked to its own page.
#[component]
fn Inlines(model: &'static Model, id: i64, reload: RwSignal<u32>) -> impl IntoView {
    let sections = model
        .inlines
        .iter()
        .filter_map(|(child, fk)| registry().model(child).map(|c| (c, fk.clone())))
        .map(|(child, fk)| {
            let rows = RwSignal::new(None::<Vec<Object>>);
            Effect::new(move |_| {
                reload.track();
                let fk = fk.clone();
                leptos::task::spawn_local(async move {
                    let url = format!("/xos/{}/?{fk}={id}&no_hyperlinks=1", child.plural);
                    if let Ok((200, Value::Array(a))) = request("GET", &url, None).await {
                        rows.set(Some(
                            a.into_iter()
                                .filter_map(|v| match v {
                                    Value::Object(o) => Some(o),
                                    _ => None,
                                })
                                .collect(),
                        ));
                    }
                });
            });
            let columns: Vec<&'static Field> = child
                .list_fields
                .iter()
                .filter_map(|n| child.fields.iter().find(|f| &f.name == n))
                .filter(|f| f.fk_target().is_none() && f.name != "backend_status")
                .take(4)
                .collect();
            let has_status = child.fields.iter().any(|f| f.name == "backend_status");
            let heads = columns.clone();
            view! {
                <section class="inline" data-model=child.name.clone()>
                    <h2>{capitalize(&child.verbose_name_plural)}</h2>
                    {move || match rows.get() {
                        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                        Some(r) if r.is_empty() => view! { <p class="muted">"None."</p> }.into_any(),
                        Some(r) => {
                            let columns = columns.clone();
                            view! {
                                <table class="inline-table">
                                    <thead><tr>
                                        <th>{capitalize(&child.verbose_name)}</th>
                                        {heads.iter().map(|f| view! { <th>{f.name.clone()}</th> }).collect_view()}
                                        {has_status.then(|| view! { <th>"status"</th> })}
                                    </tr></thead>
                                    <tbody>
                                        {r.into_iter().map(|o| {
                                            let href = format!("{}{}/", admin_path(child), id_of(&o));
                                            let name = o.get("humanReadableName").and_then(Value::as_str).map(str::to_string)
                                                .unwrap_or_else(|| format!("#{}", id_of(&o)));
                                            let cells = columns.iter().map(|f| {
                                                let v = o.get(&f.name).cloned().unwrap_or(Value::Null);
                                                view! { <td>{cell_text(f, &v, &HashMap::new())}</td> }
                                            }).collect_view();
                                            let status = str_of(&o, "backend_status").to_string();
                                            view! {
                                                <tr>
                                                    <td><a href=href>{name}</a></td>
                                                    {cells}
                                                    {has_status.then(|| view! { <td><StatusMark status/></td> })}
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }
                    }}
                </section>
            }
        })
        .collect_view();
    view! { <div class="inlines">{sections}</div> }
}

/// A value of the change log as text (strings without quotes, nothing as an em dash).
fn change_text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The object's change log (`/xos/changes/?model=…&object=…`), newest first.
#[component]
fn History(model: &'static Model, id: i64, reload: RwSignal<u32>) -> impl IntoView {
    let entries = RwSignal::new(None::<Result<Vec<Value>, String>>);
    Effect::new(move |_| {
        reload.track();
        leptos::task::spawn_local(async move {
            let url = format!("/xos/changes/?model={}&object={id}&limit=50", model.name);
            let r = match request("GET", &url, None).await {
                Ok((200, Value::Array(a))) => Ok(a),
                Ok((s, body)) => Err(body["detail"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("HTTP {s}"))),
                Err(e) => Err(e),
            };
            entries.set(Some(r));
        });
    });
    let row = |e: Value| {
        let changes: Vec<(String, String, String)> = e["changes"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), change_text(&v["old"]), change_text(&v["new"])))
                    .collect()
            })
            .unwrap_or_default();
        view! {
            <tr>
                <td><time datetime=e["at"].as_str().unwrap_or_default().to_string()>{e["at"].as_str().unwrap_or_default().replace('T', " ").chars().take(19).collect::<String>()}</time></td>
                <td>{e["actor"].as_str().unwrap_or_default().to_string()}</td>
                <td>{e["kind"].as_str().unwrap_or_default().to_string()}</td>
                <td>
                    <ul class="changes">
                        {changes.into_iter().map(|(k, old, new)| view! {
                            <li><strong>{k}</strong>": "<span class="old">{old}</span>" → "<span class="new">{new}</span></li>
                        }).collect_view()}
                    </ul>
                </td>
            </tr>
        }
    };
    view! {
        <section class="history" aria-labelledby="history-title">
            <h2 id="history-title">"History"</h2>
            {move || match entries.get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
                Some(Ok(list)) if list.is_empty() => view! { <p class="muted">"No recorded changes."</p> }.into_any(),
                Some(Ok(list)) => view! {
                    <div class="table-wrap" tabindex="0" role="region" aria-label="Change history">
                        <table class="grid history-table">
                        <thead>
                            <tr><th scope="col">"When (UTC)"</th><th scope="col">"Who"</th><th scope="col">"What"</th><th scope="col">"Changes"</th></tr>
                        </thead>
                        <tbody>{list.into_iter().map(row).collect_view()}</tbody>
                    </table></div>
                }.into_any(),
            }}
        </section>
    }
}

/// One field's widget, label, help and error.
#[component]
fn FieldInput(
    field: &'static Field,
    draft: RwSignal<Object>,
    error: RwSignal<Option<SaveError>>,
) -> impl IntoView {
    let name = field.name.clone();
    let id = format!("field-{name}");
    let help_id = format!("{id}-help");
    let err_id = format!("{id}-error");
    let label = capitalize(&field.verbose_name);
    let required = field.is_required();
    let get = {
        let name = name.clone();
        move || draft.with(|d| d.get(&name).cloned().unwrap_or(Value::Null))
    };
    let set = {
        let name = name.clone();
        move |v: Value| {
            draft.update(|d| {
                d.insert(name.clone(), v);
            })
        }
    };
    let as_text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let described = if field.help_text.is_empty() {
        err_id.clone()
    } else {
        format!("{help_id} {err_id}")
    };
    let widget = match &field.kind {
        FieldKind::Boolean => {
            let set = set.clone();
            let get = get.clone();
            view! {
                <input type="checkbox" id=id.clone() aria-describedby=described.clone()
                    prop:checked=move || get().as_bool().unwrap_or(false)
                    on:change=move |ev| set(Value::Bool(event_target_checked(&ev)))/>
            }
            .into_any()
        }
        FieldKind::ForeignKey { to, .. } => {
            view! { <FkSelect id=id.clone() target=to.clone() nullable=field.null value=Signal::derive(get.clone()) set=Callback::new(set.clone()) described=described.clone()/> }
                .into_any()
        }
        _ if !field.choices.is_empty() => {
            let set = set.clone();
            let get = get.clone();
            let opts = field.choices.iter().map(|c| (c.value.clone(), c.label.clone())).collect::<Vec<_>>();
            let nullable = field.null || field.blank;
            view! {
                <select id=id.clone() aria-describedby=described.clone()
                    prop:value=move || as_text(&get())
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        set(if v.is_empty() { Value::Null } else { Value::String(v) })
                    }>
                    {nullable.then(|| view! { <option value="">"---------"</option> })}
                    {opts.into_iter().map(|(v, l)| view! { <option value=v.clone()>{l}</option> }).collect_view()}
                </select>
            }
            .into_any()
        }
        FieldKind::Text { .. } => {
            let set = set.clone();
            let get = get.clone();
            view! {
                <textarea id=id.clone() rows="4" aria-describedby=described.clone()
                    prop:value=move || as_text(&get())
                    on:input=move |ev| set(Value::String(event_target_value(&ev)))></textarea>
            }
            .into_any()
        }
        kind => {
            let input_type = match kind {
                FieldKind::Integer | FieldKind::PositiveInteger | FieldKind::Float => "number",
                FieldKind::Email { .. } => "email",
                FieldKind::Url { .. } => "url",
                FieldKind::Password => "password",
                _ => "text",
            };
            let step = matches!(kind, FieldKind::Float).then_some("any");
            let set = set.clone();
            let get = get.clone();
            let nullable = field.null;
            view! {
                <input type=input_type id=id.clone() step=step aria-describedby=described.clone()
                    autocomplete=if input_type == "password" { "new-password" } else { "off" }
                    prop:value=move || if input_type == "password" { String::new() } else { as_text(&get()) }
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        set(if v.is_empty() && nullable { Value::Null } else { Value::String(v) })
                    }/>
            }
            .into_any()
        }
    };
    let err_name = name.clone();
    view! {
        <div class="field" class:has-error=move || error.with(|e| e.as_ref().and_then(|e| e.field(&err_name)).is_some())>
            <label for=id.clone()>{label}{required.then_some(" *")}</label>
            {widget}
            {(!field.help_text.is_empty()).then(|| view! { <p class="help" id=help_id.clone()>{field.help_text.clone()}</p> })}
            <p class="field-error" id=err_id.clone() role="alert">
                {move || error.with(|e| e.as_ref().and_then(|e| e.field(&name)).unwrap_or_default())}
            </p>
        </div>
    }
}

/// A foreign key: a filterable select of the target's objects.
#[component]
fn FkSelect(
    id: String,
    target: String,
    nullable: bool,
    value: Signal<Value>,
    set: Callback<Value>,
    described: String,
) -> impl IntoView {
    let options = RwSignal::new(Vec::<(i64, String)>::new());
    let filter = RwSignal::new(String::new());
    let plural = registry()
        .model(&target)
        .map(|m| m.plural.clone())
        .unwrap_or_default();
    Effect::new(move |_| {
        let plural = plural.clone();
        leptos::task::spawn_local(async move {
            let url = format!("/xos/{plural}/?no_hyperlinks=1&limit=500&ordering=id");
            if let Ok((200, Value::Array(items))) = request("GET", &url, None).await {
                options.set(
                    items
                        .iter()
                        .filter_map(|o| {
                            Some((
                                o["id"].as_i64()?,
                                o["humanReadableName"].as_str().unwrap_or("").to_string(),
                            ))
                        })
                        .collect(),
                );
            }
        })
    });
    let filter_id = format!("{id}-filter");
    view! {
        <div class="fk-select">
            <input type="search" id=filter_id aria-label=format!("Filter the choices of {target}") placeholder="Filter…"
                bind:value=filter/>
            <select id=id aria-describedby=described
                prop:value=move || value.get().as_i64().map(|i| i.to_string()).unwrap_or_default()
                on:change=move |ev| {
                    let v = event_target_value(&ev);
                    set.run(v.parse::<i64>().map(Value::from).unwrap_or(Value::Null))
                }>
                <option value="" disabled=!nullable>"---------"</option>
                {move || {
                    let f = filter.get().to_lowercase();
                    let current = value.get().as_i64();
                    options
                        .get()
                        .into_iter()
                        .filter(|(i, n)| f.is_empty() || n.to_lowercase().contains(&f) || Some(*i) == current)
                        .map(|(i, n)| view! { <option value=i.to_string() selected=Some(i) == current>{format!("{n} (#{i})")}</option> })
                        .collect_view()
                }}
            </select>
        </div>
    }
}
