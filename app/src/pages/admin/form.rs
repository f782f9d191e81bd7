//! The add and edit form of one object, with its related objects (inlines).

use super::history::History;
use super::list::cell_text;
use super::widgets::{FieldInput, M2mInput};
use super::*;
use crate::client::{Collection, Object, SaveError, go, id_of, request, send_object, str_of};
use crate::meta::{Field, Kind, Model};
#[cfg(feature = "ssr")]
use crate::pages::Frame;
use leptos::either::EitherOf3;
use leptos::prelude::*;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// `/admin/<app>/<model>/add/` and `/admin/<app>/<model>/<id>/`: the page around the form, on
/// the server.
#[cfg(feature = "ssr")]
#[component]
pub fn AdminForm() -> impl IntoView {
    let params = leptos_router::hooks::use_params_map();
    let (app, slug, id) = params.with_untracked(|p| {
        (
            p.get("app").unwrap_or_default(),
            p.get("model").unwrap_or_default(),
            p.get("id").unwrap_or_default(),
        )
    });
    let body = match (
        model_by_slug(&app, &slug).and_then(|m| crate::catalog::model(&m.name)),
        id.as_str(),
    ) {
        (Some(m), "add") => {
            view! { <AdminFormIsland models=crate::catalog::for_island(m) id=None/> }.into_any()
        }
        (Some(m), id) => match id.parse::<i64>() {
            Ok(id) => {
                view! { <AdminFormIsland models=crate::catalog::for_island(m) id=Some(id)/> }.into_any()
            }
            Err(_) => view! { <p class="error">"There is no such object."</p> }.into_any(),
        },
        (None, _) => view! { <p class="error">"There is no such model."</p> }.into_any(),
    };
    view! { <Frame>{body}</Frame> }
}

/// The form, live in the browser: `models` is its model first, then those it refers to.
#[island]
pub fn AdminFormIsland(models: Vec<Model>, id: Option<i64>) -> impl IntoView {
    let name = models.first().map(|m| m.name.clone()).unwrap_or_default();
    crate::catalog::install(models);
    crate::catalog::model(&name).map(|model| view! { <ModelForm model id/> })
}

/// The synchronizer's flags every model carries, shown under "Advanced".
fn is_internal(f: &Field) -> bool {
    matches!(f.name.as_str(), "write_protect" | "lazy_blocked" | "no_sync")
}

/// The fields a form shows: what users may write.
pub(super) fn form_fields(model: &Model) -> Vec<&Field> {
    model.fields.iter().filter(|f| f.writable).collect()
}

/// What a form sends: the draft's values of `fields`, an empty password left out (unchanged).
fn body_of<'a>(fields: impl IntoIterator<Item = &'a Field>, draft: &Object) -> Map<String, Value> {
    let mut body = Map::new();
    for f in fields {
        match (draft.get(&f.name), &f.kind) {
            (Some(Value::String(s)), Kind::Password) if s.is_empty() => {}
            (Some(v), _) => {
                body.insert(f.name.clone(), v.clone());
            }
            (None, _) => {}
        }
    }
    body
}

#[component]
pub(super) fn ModelForm(model: &'static Model, id: Option<i64>) -> impl IntoView {
    let draft = RwSignal::new(Object::new());
    let loaded = RwSignal::new(id.is_none());
    let error = RwSignal::new(None::<SaveError>);
    let message = RwSignal::new(None::<String>);
    let caps = RwSignal::new(Caps::default());
    let confirm = RwSignal::new(false);
    let status = RwSignal::new(String::new());
    // Bumped after each save, so the history shows the new entry.
    let saved = RwSignal::new(0u32);
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
                    if let Some(v) = &f.default {
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
    let shown: Vec<String> = form_fields(model)
        .iter()
        .map(|f| f.name.clone())
        .chain(model.many_to_many.iter().map(|r| r.name.clone()))
        .collect();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let d = draft.get_untracked();
        let mut body = body_of(form_fields(model), &d);
        for r in &model.many_to_many {
            if let Some(v) = d.get(&r.name) {
                body.insert(r.name.clone(), v.clone());
            }
        }
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
                        go(&format!("{}{}/", admin_path(model), id_of(&obj)));
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
    // Set while the object is being deleted: the page is about to go, and its live parts stop
    // reading an object that no longer exists.
    let leaving = RwSignal::new(false);
    let delete = move |_| {
        let Some(id) = id else { return };
        leaving.set(true);
        leptos::task::spawn_local(async move {
            match Collection::new(model).destroy(id).await {
                Ok(()) => go(&admin_path(model)),
                Err(e) => {
                    leaving.set(false);
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
    // The status follows the synchronizer live (the event stream), without touching what the
    // user is editing.
    #[cfg(feature = "hydrate")]
    if let Some(id) = id {
        crate::client::events::subscribe(model.name.as_str(), move |ev| {
            if ev.id != id || ev.kind == "delete" || leaving.get_untracked() {
                return;
            }
            leptos::task::spawn_local(async move {
                let url = format!("/xos/{}/{id}/?no_hyperlinks=1", model.plural);
                if let Ok((200, Value::Object(o))) = request("GET", &url, None).await {
                    status.set(str_of(&o, "backend_status").to_string());
                }
            });
        });
    }
    // Internal flags (XOS's `write_protect`, `lazy_blocked`, `no_sync`) are for operators:
    // folded away in an "Advanced" section rather than at the top of every form.
    let fields = move || {
        form_fields(model)
            .into_iter()
            .filter(|f| !is_internal(f))
            .map(|f| view! { <FieldInput field=f draft error/> })
            .collect_view()
    };
    let advanced = move || {
        let internal: Vec<&'static Field> = form_fields(model)
            .into_iter()
            .filter(|f| is_internal(f))
            .collect();
        (!internal.is_empty()).then(|| {
            view! {
                <details class="advanced">
                    <summary>"Advanced"</summary>
                    {internal.into_iter().map(|f| view! { <FieldInput field=f draft error/> }).collect_view()}
                </details>
            }
        })
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
                <form class="model-form" on:submit=submit novalidate>
                    <fieldset disabled=move || !can_change()>
                        {fields}
                        {model.many_to_many.iter().map(|relation| view! { <M2mInput relation draft error/> }).collect_view()}
                        {advanced}
                    </fieldset>
                    <div class="actions">
                        {move || can_change().then(|| view! { <button type="submit" class="primary">"Save"</button> })}
                        {move || can_delete().then(|| view! {
                            <button type="button" class="danger" on:click=move |_| confirm.set(true)>"Delete"</button>
                        })}
                    </div>
                </form>
            </Show>
            {id.is_some().then(|| view! { <BackendFields model draft/> })}
            {(model.name == "Instance").then(|| view! { <SshLine draft/> })}
            {id.map(|id| view! { <Inlines model id reload=saved/> })}
            {id.map(|id| view! { <History model id reload=saved/> })}
            {move || confirm.get().then(|| view! {
                <div class="confirm" role="alertdialog" aria-labelledby="confirm-text">
                    <p id="confirm-text">{format!("Delete this {}? This cannot be undone.", model.verbose_name)}</p>
                    <button type="button" class="danger" on:click=delete>"Yes, delete it"</button>
                    <button type="button" class="link" on:click=move |_| confirm.set(false)>"Cancel"</button>
                </div>
            })}
        </section>
    }
}

/// The backend-owned fields (ids and addresses the synchronizer writes), shown read-only: the
/// API refuses a change to them.
#[component]
fn BackendFields(model: &'static Model, draft: RwSignal<Object>) -> impl IntoView {
    let fields: Vec<&'static Field> = model.fields.iter().filter(|f| f.backend).collect();
    (!fields.is_empty()).then(|| {
        let none = HashMap::new();
        view! {
            <section class="backend-fields" aria-labelledby="backend-fields-title">
                <h2 id="backend-fields-title">"Set by the backend"</h2>
                <dl>
                    {fields
                        .into_iter()
                        .map(|f| {
                            let none = none.clone();
                            view! {
                                <dt>{capitalize(&f.verbose_name)}</dt>
                                <dd data-field=f.name.clone()>
                                    {move || draft.with(|d| cell_text(f, d.get(&f.name).unwrap_or(&Value::Null), &none))}
                                </dd>
                            }
                        })
                        .collect_view()}
                </dl>
            </section>
        }
    })
}

/// How to reach an instance: XOS's ssh command line (through the node, as the Developer view
/// shows it) once the backend has named the instance, and its address.
#[component]
pub(super) fn SshLine(draft: RwSignal<Object>) -> impl IntoView {
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
/// that are not foreign keys, and its backend status, linked to its own page; each row is
/// changed (its own fields, in a form under it) or deleted in place, and a new one added.
#[component]
pub(super) fn Inlines(model: &'static Model, id: i64, reload: RwSignal<u32>) -> impl IntoView {
    let sections = model
        .inlines
        .iter()
        .filter_map(|(child, fk)| crate::catalog::model(child).map(|c| (c, fk.clone())))
        .map(|(child, fk)| {
            let fk_add = fk.clone();
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
            // Add in place (XOS's editable inlines): the child's own fields, the parent given.
            let draft = RwSignal::new(Object::new());
            let error = RwSignal::new(None::<SaveError>);
            let note = RwSignal::new(None::<String>);
            let prefix = format!("inline-{}-", child.name.to_lowercase());
            let add_fields: Vec<&'static Field> = form_fields(child)
                .into_iter()
                .filter(|f| !is_internal(f) && f.name != fk_add)
                .collect();
            let fk_name = fk_add.clone();
            let add = move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let mut body = draft.get_untracked();
                body.insert(fk_name.clone(), Value::from(id));
                leptos::task::spawn_local(async move {
                    let url = format!("/xos/{}/?no_hyperlinks=1", child.plural);
                    match send_object("POST", &url, body).await {
                        Ok(_) => {
                            error.set(None);
                            note.set(Some(format!("The {} was added.", child.verbose_name)));
                            draft.set(Object::new());
                            reload.update(|n| *n += 1);
                        }
                        Err(e) => error.set(Some(e)),
                    }
                });
            };
            // Change in place: the row's own fields in a form under it, saved with a PATCH.
            let editing = RwSignal::new(None::<i64>);
            let edit_draft = RwSignal::new(Object::new());
            let edit_error = RwSignal::new(None::<SaveError>);
            let edit_fields = add_fields.clone();
            let save_edit = move |ev: leptos::ev::SubmitEvent| {
                ev.prevent_default();
                let Some(child_id) = editing.get_untracked() else { return };
                let body = body_of(edit_fields.iter().copied(), &edit_draft.get_untracked());
                leptos::task::spawn_local(async move {
                    let url = format!("/xos/{}/{child_id}/?no_hyperlinks=1", child.plural);
                    match send_object("PATCH", &url, body).await {
                        Ok(_) => {
                            edit_error.set(None);
                            editing.set(None);
                            note.set(Some(format!("The {} was saved.", child.verbose_name)));
                            reload.update(|n| *n += 1);
                        }
                        Err(e) => edit_error.set(Some(e)),
                    }
                });
            };
            let edit_prefix = format!("inline-{}-edit-", child.name.to_lowercase());
            let edit_view = {
                let fields = add_fields.clone();
                move |span: usize| {
                    let fields = fields.clone();
                    let prefix = edit_prefix.clone();
                    let save = save_edit.clone();
                    view! {
                        <tr class="inline-edit-row">
                            <td colspan=span.to_string()>
                                <form class="model-form" on:submit=save novalidate>
                                    {fields.iter().map(|f| view! { <FieldInput field=*f draft=edit_draft error=edit_error prefix=prefix.clone()/> }).collect_view()}
                                    {move || edit_error.get().and_then(|e| match e {
                                        SaveError::Other(m) => Some(m),
                                        SaveError::Fields(f) => f.get("detail").or_else(|| f.get("non_field_errors")).map(|m| m.join(" ")),
                                    }).map(|m| view! { <p class="error" role="alert">{m}</p> })}
                                    <div class="actions">
                                        <button type="submit" class="primary">"Save"</button>
                                        <button type="button" class="link" on:click=move |_| { editing.set(None); edit_error.set(None); }>"Cancel"</button>
                                    </div>
                                </form>
                            </td>
                        </tr>
                    }
                }
            };
            let remove = move |child_id: i64| {
                leptos::task::spawn_local(async move {
                    let url = format!("/xos/{}/{child_id}/", child.plural);
                    match request("DELETE", &url, None).await {
                        Ok((204 | 200, _)) => {
                            note.set(Some(format!("The {} was deleted.", child.verbose_name)));
                            reload.update(|n| *n += 1);
                        }
                        Ok((_, body)) => note.set(Some(
                            body["detail"]
                                .as_str()
                                .unwrap_or("It could not be deleted.")
                                .to_string(),
                        )),
                        Err(e) => note.set(Some(e)),
                    }
                });
            };
            view! {
                <section class="inline" data-model=child.name.clone()>
                    <h2>{capitalize(&child.verbose_name_plural)}</h2>
                    {move || match rows.get() {
                        None => EitherOf3::A(view! { <p class="muted">"Loading…"</p> }),
                        Some(r) if r.is_empty() => EitherOf3::B(view! { <p class="muted">"None."</p> }),
                        Some(r) => {
                            let columns = columns.clone();
                            let span = columns.len() + 2 + usize::from(has_status);
                            let edit_view = edit_view.clone();
                            EitherOf3::C(view! {
                                <table class="inline-table">
                                    <thead><tr>
                                        <th>{capitalize(&child.verbose_name)}</th>
                                        {heads.iter().map(|f| view! { <th>{f.name.clone()}</th> }).collect_view()}
                                        {has_status.then(|| view! { <th>"status"</th> })}
                                        <th><span class="visually-hidden">"Actions"</span></th>
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
                                            let child_id = id_of(&o);
                                            let label = format!("Delete {name}");
                                            let change_label = format!("Change {name}");
                                            let edit_view = edit_view.clone();
                                            view! {
                                                <tr>
                                                    <td><a href=href>{name}</a></td>
                                                    {cells}
                                                    {has_status.then(|| view! { <td><StatusMark status/></td> })}
                                                    <td class="row-actions">
                                                        <button type="button" class="link" aria-label=change_label
                                                            aria-expanded=move || (editing.get() == Some(child_id)).to_string()
                                                            on:click=move |_| {
                                                                edit_error.set(None);
                                                                edit_draft.set(o.clone());
                                                                editing.set(Some(child_id));
                                                            }>"Change"</button>
                                                        " "
                                                        <button type="button" class="link danger" aria-label=label
                                                            on:click=move |_| remove(child_id)>"Delete"</button>
                                                    </td>
                                                </tr>
                                                {move || (editing.get() == Some(child_id)).then(|| edit_view(span))}
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            })
                        }
                    }}
                    {move || note.get().map(|m| view! { <p class="muted" role="status">{m}</p> })}
                    <details class="inline-add">
                        <summary>{format!("Add {}", child.verbose_name)}</summary>
                        <form class="model-form" on:submit=add.clone() novalidate>
                            {add_fields.iter().map(|f| view! { <FieldInput field=*f draft error prefix=prefix.clone()/> }).collect_view()}
                            {move || error.get().and_then(|e| match e {
                                SaveError::Other(m) => Some(m),
                                SaveError::Fields(f) => f.get("detail").or_else(|| f.get("non_field_errors")).map(|m| m.join(" ")),
                            }).map(|m| view! { <p class="error" role="alert">{m}</p> })}
                            <button type="submit" class="primary">{format!("Add {}", child.verbose_name)}</button>
                        </form>
                    </details>
                </section>
            }
        })
        .collect_view();
    view! { <div class="inlines">{sections}</div> }
}
