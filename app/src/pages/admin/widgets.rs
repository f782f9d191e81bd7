//! Field widgets: one input per field kind, the foreign-key select, the status mark.

use super::*;
use crate::client::{Object, SaveError, request};
use crate::meta::{Field, Kind, ManyToMany};
use leptos::either::EitherOf5;
use leptos::prelude::*;
use serde_json::Value;

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

/// One field's widget, label, help and error.
#[component]
pub(super) fn FieldInput(
    field: &'static Field,
    draft: RwSignal<Object>,
    error: RwSignal<Option<SaveError>>,
    /// Before the element ids, for a second form on the page (an inline's add form).
    #[prop(optional, into)]
    prefix: Option<String>,
) -> impl IntoView {
    let name = field.name.clone();
    let id = format!("{}field-{name}", prefix.unwrap_or_default());
    let help_id = format!("{id}-help");
    let err_id = format!("{id}-error");
    let label = capitalize(&field.verbose_name);
    let required = field.required;
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
        Kind::Boolean => {
            let set = set.clone();
            let get = get.clone();
            EitherOf5::A(view! {
                <input type="checkbox" id=id.clone() aria-describedby=described.clone()
                    prop:checked=move || get().as_bool().unwrap_or(false)
                    on:change=move |ev| set(Value::Bool(event_target_checked(&ev)))/>
            })
        }
        Kind::ForeignKey(to) => EitherOf5::B(
            view! { <FkSelect id=id.clone() target=to.clone() nullable=field.null value=Signal::derive(get.clone()) set=Callback::new(set.clone()) described=described.clone()/> },
        ),
        _ if !field.choices.is_empty() => {
            let set = set.clone();
            let get = get.clone();
            let opts = field.choices.clone();
            let nullable = field.null || field.blank;
            EitherOf5::C(view! {
                <select id=id.clone() aria-describedby=described.clone()
                    prop:value=move || as_text(&get())
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        set(if v.is_empty() { Value::Null } else { Value::String(v) })
                    }>
                    {nullable.then(|| view! { <option value="">"---------"</option> })}
                    {opts.into_iter().map(|(v, l)| view! { <option value=v.clone()>{l}</option> }).collect_view()}
                </select>
            })
        }
        Kind::Text => {
            let set = set.clone();
            let get = get.clone();
            EitherOf5::D(view! {
                <textarea id=id.clone() rows="4" aria-describedby=described.clone()
                    prop:value=move || as_text(&get())
                    on:input=move |ev| set(Value::String(event_target_value(&ev)))></textarea>
            })
        }
        kind => {
            let input_type = match kind {
                Kind::Integer | Kind::Float => "number",
                Kind::Email => "email",
                Kind::Url => "url",
                Kind::Password => "password",
                _ => "text",
            };
            let step = matches!(kind, Kind::Float).then_some("any");
            let set = set.clone();
            let get = get.clone();
            let nullable = field.null;
            EitherOf5::E(view! {
                <input type=input_type id=id.clone() step=step aria-describedby=described.clone()
                    autocomplete=if input_type == "password" { "new-password" } else { "off" }
                    prop:value=move || if input_type == "password" { String::new() } else { as_text(&get()) }
                    on:input=move |ev| {
                        let v = event_target_value(&ev);
                        set(if v.is_empty() && nullable { Value::Null } else { Value::String(v) })
                    }/>
            })
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
pub(super) fn FkSelect(
    id: String,
    target: String,
    nullable: bool,
    value: Signal<Value>,
    set: Callback<Value>,
    described: String,
) -> impl IntoView {
    let options = choices(&target);
    let filter = RwSignal::new(String::new());
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

/// The objects of model `target` a user may choose from (id, name), loaded once.
fn choices(target: &str) -> RwSignal<Vec<(i64, String)>> {
    let options = RwSignal::new(Vec::<(i64, String)>::new());
    let plural = crate::catalog::model(target)
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
    options
}

/// A many-to-many relation (XOS's `filter_horizontal`, e.g. a site's deployments): the other
/// side's objects as a filterable list of checkboxes, saved with the object as a list of ids
/// (the API adds and removes the through rows in the same write).
#[component]
pub(super) fn M2mInput(
    relation: &'static ManyToMany,
    draft: RwSignal<Object>,
    error: RwSignal<Option<SaveError>>,
) -> impl IntoView {
    let name = relation.name.clone();
    let id = format!("field-{name}");
    let err_id = format!("{id}-error");
    let options = choices(&relation.to);
    let filter = RwSignal::new(String::new());
    let chosen = {
        let name = name.clone();
        move || {
            draft.with(|d| {
                d.get(&name)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_i64).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
        }
    };
    let toggle = {
        let name = name.clone();
        let chosen = chosen.clone();
        move |target: i64, on: bool| {
            let mut ids = chosen();
            ids.retain(|&i| i != target);
            if on {
                ids.push(target);
            }
            draft.update(|d| {
                d.insert(name.clone(), Value::from(ids));
            });
        }
    };
    let label = capitalize(if relation.verbose_name.is_empty() {
        &relation.name
    } else {
        &relation.verbose_name
    });
    let summary = {
        let chosen = chosen.clone();
        move || {
            let ids = chosen();
            let names: Vec<String> = options.with(|o| {
                ids.iter()
                    .map(|i| {
                        o.iter()
                            .find(|(id, _)| id == i)
                            .map(|(_, n)| n.clone())
                            .unwrap_or_else(|| format!("#{i}"))
                    })
                    .collect()
            });
            match names.len() {
                0 => "None chosen.".to_string(),
                n => format!("{n} chosen: {}", names.join(", ")),
            }
        }
    };
    let err_name = name.clone();
    let has_error = move || error.with(|e| e.as_ref().and_then(|e| e.field(&err_name)).is_some());
    let prefix = id.clone();
    let described = err_id.clone();
    let relation_name = name.clone();
    view! {
        <fieldset class="field m2m" class:has-error=has_error aria-describedby=described data-relation=relation_name>
            <legend>{label}</legend>
            {(!relation.help_text.is_empty()).then(|| view! { <p class="help">{relation.help_text.clone()}</p> })}
            <input type="search" aria-label=format!("Filter the choices of {}", relation.name) placeholder="Filter…"
                bind:value=filter/>
            <p class="m2m-summary" aria-live="polite">{summary}</p>
            <ul class="m2m-choices">
                {move || {
                    let f = filter.get().to_lowercase();
                    let ids = chosen();
                    let toggle = toggle.clone();
                    let prefix = prefix.clone();
                    options
                        .get()
                        .into_iter()
                        .filter(|(i, n)| f.is_empty() || n.to_lowercase().contains(&f) || ids.contains(i))
                        .map(|(i, n)| {
                            let toggle = toggle.clone();
                            let box_id = format!("{prefix}-{i}");
                            view! {
                                <li>
                                    <input type="checkbox" id=box_id.clone() prop:checked=ids.contains(&i)
                                        on:change=move |ev| toggle(i, event_target_checked(&ev))/>
                                    <label for=box_id>{format!("{n} (#{i})")}</label>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
            <p class="field-error" id=err_id role="alert">
                {move || error.with(|e| e.as_ref().and_then(|e| e.field(&name)).unwrap_or_default())}
            </p>
        </fieldset>
    }
}
