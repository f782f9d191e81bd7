//! One object's change log.

use crate::client::request;
use crate::meta::Model;
use leptos::either::EitherOf4;
use leptos::prelude::*;
use serde_json::Value;

/// A value of the change log as text (strings without quotes, nothing as an em dash).
pub(super) fn change_text(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The object's change log (`/xos/changes/?model=…&object=…`), newest first.
#[component]
pub(super) fn History(model: &'static Model, id: i64, reload: RwSignal<u32>) -> impl IntoView {
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
                None => EitherOf4::A(view! { <p class="muted">"Loading…"</p> }),
                Some(Err(e)) => EitherOf4::B(view! { <p class="error" role="alert">{e}</p> }),
                Some(Ok(list)) if list.is_empty() => EitherOf4::C(view! { <p class="muted">"No recorded changes."</p> }),
                Some(Ok(list)) => EitherOf4::D(view! {
                    <div class="table-wrap" tabindex="0" role="region" aria-label="Change history">
                        <table class="grid history-table">
                        <thead>
                            <tr><th scope="col">"When (UTC)"</th><th scope="col">"Who"</th><th scope="col">"What"</th><th scope="col">"Changes"</th></tr>
                        </thead>
                        <tbody>{list.into_iter().map(row).collect_view()}</tbody>
                    </table></div>
                }),
            }}
        </section>
    }
}
