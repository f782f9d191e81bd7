//! The home page: the user's slices from the client store, with an inline description editor.

use super::Frame;
use crate::client::{Collection, Object, SaveError, id_of, str_of};
use leptos::prelude::*;

#[component]
pub fn HomePage() -> impl IntoView {
    let user = Resource::new(|| (), |_| crate::current_user());
    let slices = Collection::new("slices");
    Effect::new(move |_| slices.fetch());
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let u = user.await.ok().flatten();
                view! {
                    <Frame user=u>
                        <SliceTable slices/>
                    </Frame>
                }
                .into_any()
            })}
        </Suspense>
    }
}

/// `0 - …` pending, `1 - …` ok, anything else an error (XOS's backend_status codes).
fn status_class(status: &str) -> &'static str {
    if status.starts_with("1 -") {
        "badge ok"
    } else if status.starts_with("0 -") || status.is_empty() {
        "badge pending"
    } else {
        "badge error"
    }
}

#[component]
fn SliceTable(slices: Collection) -> impl IntoView {
    view! {
        <section class="card">
            <div class="card-head">
                <h1>"Your slices"</h1>
                <button class="link" on:click=move |_| slices.fetch()>"Refresh"</button>
            </div>
            {move || slices.error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <Show
                when=move || slices.loaded.get()
                fallback=|| view! { <p class="muted" data-testid="slices-loading">"Loading slices…"</p> }
            >
                <Show
                    when=move || !slices.models.read().is_empty()
                    fallback=|| view! { <p class="muted">"You have no slices yet."</p> }
                >
                    <div class="table-wrap">
                        <table class="grid" data-testid="slices">
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Description"</th>
                                    <th scope="col">"Max instances"</th>
                                    <th scope="col">"Status"</th>
                                </tr>
                            </thead>
                            <tbody>
                                <For
                                    each=move || slices.models.get()
                                    key=|o| serde_json::to_string(o).unwrap_or_default()
                                    children=move |o| view! { <SliceRow slices obj=o/> }.into_any()
                                />
                            </tbody>
                        </table>
                    </div>
                </Show>
            </Show>
        </section>
    }
}

#[component]
fn SliceRow(slices: Collection, obj: Object) -> impl IntoView {
    let id = id_of(&obj);
    let name = str_of(&obj, "name").to_string();
    let description = str_of(&obj, "description").to_string();
    let status = str_of(&obj, "backend_status").to_string();
    let max_instances = obj
        .get("max_instances")
        .map(|v| v.to_string())
        .unwrap_or_default();
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(description.clone());
    let error = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    let save = move || {
        saving.set(true);
        let mut changes = Object::new();
        changes.insert("description".into(), draft.get_untracked().into());
        leptos::task::spawn_local(async move {
            match slices.save(id, changes).await {
                Ok(_) => {
                    error.set(None);
                    editing.set(false);
                }
                Err(e @ SaveError::Fields(_)) | Err(e @ SaveError::Other(_)) => {
                    error.set(Some(e.message_for("description")))
                }
            }
            saving.set(false);
        });
    };
    let input_id = format!("description-{id}");
    view! {
        <tr data-slice=name.clone()>
            <th scope="row">{name.clone()}</th>
            <td class="description">
                <Show
                    when=move || editing.get()
                    fallback={
                        let description = description.clone();
                        let name = name.clone();
                        move || view! {
                            <span class="text">{description.clone()}</span>
                            <button
                                class="link edit"
                                aria-label=format!("Edit the description of {name}")
                                on:click=move |_| editing.set(true)
                            >"Edit"</button>
                        }
                    }
                >
                    <form class="inline-edit" on:submit=move |ev| { ev.prevent_default(); save(); }>
                        <label class="visually-hidden" for=input_id.clone()>"Description"</label>
                        <input id=input_id.clone() type="text" bind:value=draft/>
                        <button type="submit" class="primary" disabled=move || saving.get()>"Save"</button>
                        <button type="button" class="link" on:click=move |_| editing.set(false)>"Cancel"</button>
                        {move || error.get().map(|e| view! { <p class="field-error" role="alert">{e}</p> })}
                    </form>
                </Show>
            </td>
            <td class="num">{max_instances}</td>
            <td><span class=status_class(&status) title=status.clone()>{status.clone()}</span></td>
        </tr>
    }
}
