//! The client store: Backbone-like collections of one model's objects, fetched from the REST
//! API (`/xos/<plural>/?no_hyperlinks=1`), held in signals so Leptos components re-render when
//! they change; `fetch`, `start_polling` (every 10 s, as xoslib), pushes from `/xos/events`
//! (server-sent events, so changes made elsewhere show within a second), `save` / `create` /
//! `destroy` with the CSRF header cookie-authenticated writes need, and field errors returned to
//! the caller. User-view JavaScript has the same store as `window.xos` (see docs/views.md).
//!
//! On the server (SSR) collections stay empty and show their loading state; the browser fetches
//! once hydrated.

use leptos::prelude::*;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One object as the API returns it.
pub type Object = Map<String, Value>;

/// Why a save failed: field messages from a 400, or another error.
#[derive(Clone, Debug, PartialEq)]
pub enum SaveError {
    Fields(BTreeMap<String, Vec<String>>),
    Other(String),
}

impl SaveError {
    /// The messages for `field` (or the general ones), joined for display.
    pub fn message_for(&self, field: &str) -> String {
        match self {
            SaveError::Fields(f) => f
                .get(field)
                .or_else(|| f.get("non_field_errors"))
                .or_else(|| f.get("detail"))
                .map(|m| m.join(" "))
                .unwrap_or_else(|| f.values().flatten().cloned().collect::<Vec<_>>().join(" ")),
            SaveError::Other(m) => m.clone(),
        }
    }

    /// Messages of one field only.
    pub fn field(&self, field: &str) -> Option<String> {
        match self {
            SaveError::Fields(f) => f.get(field).map(|m| m.join(" ")),
            SaveError::Other(_) => None,
        }
    }

    /// Messages not tied to a field the form shows.
    pub fn general(&self, shown: &[String]) -> Option<String> {
        match self {
            SaveError::Fields(f) => {
                let rest: Vec<String> = f
                    .iter()
                    .filter(|(k, _)| !shown.contains(k))
                    .map(|(k, v)| match k.as_str() {
                        "detail" | "non_field_errors" => v.join(" "),
                        _ => format!("{k}: {}", v.join(" ")),
                    })
                    .collect();
                (!rest.is_empty()).then(|| rest.join(" "))
            }
            SaveError::Other(m) => Some(m.clone()),
        }
    }

    fn from_response(status: u16, body: Value) -> SaveError {
        match (status, body) {
            (400, Value::Object(errs)) => SaveError::Fields(
                errs.into_iter()
                    .map(|(k, v)| {
                        let msgs = match v {
                            Value::Array(a) => a
                                .into_iter()
                                .map(|m| m.as_str().unwrap_or("").to_string())
                                .collect(),
                            Value::String(s) => vec![s],
                            other => vec![other.to_string()],
                        };
                        (k, msgs)
                    })
                    .collect(),
            ),
            (status, body) => SaveError::Other(
                body.get("detail")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("HTTP {status}")),
            ),
        }
    }
}

/// A change event from `/xos/events`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct ChangeEvent {
    pub model: String,
    pub id: i64,
    pub kind: String,
}

/// The `id` of an object.
pub fn id_of(o: &Object) -> i64 {
    o.get("id").and_then(Value::as_i64).unwrap_or_default()
}

/// A string field of an object ("" when missing or null).
pub fn str_of<'a>(o: &'a Object, field: &str) -> &'a str {
    o.get(field).and_then(Value::as_str).unwrap_or("")
}

/// A collection of one model's objects.
#[derive(Clone, Copy)]
pub struct Collection {
    pub plural: &'static str,
    /// The model's name, to match change events (`Slice`).
    pub model: &'static str,
    pub models: RwSignal<Vec<Object>>,
    pub loaded: RwSignal<bool>,
    pub error: RwSignal<Option<String>>,
    /// The total the server reported for the last paged fetch (`X-Total-Count`).
    pub total: RwSignal<Option<i64>>,
}

impl Collection {
    pub fn new(model: &'static crate::meta::Model) -> Collection {
        Collection {
            plural: model.plural.as_str(),
            model: model.name.as_str(),
            models: RwSignal::new(Vec::new()),
            loaded: RwSignal::new(false),
            error: RwSignal::new(None),
            total: RwSignal::new(None),
        }
    }

    fn object_url(&self, id: i64) -> String {
        format!("/xos/{}/{id}/?no_hyperlinks=1", self.plural)
    }

    /// Replace the contents with what the server has now (browser only).
    pub fn fetch(self) {
        self.fetch_query(String::new());
    }

    /// Fetch with query parameters (`search=…&ordering=…&limit=…`); the total goes to `total`.
    pub fn fetch_query(self, query: String) {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let url = format!(
                "/xos/{}/?no_hyperlinks=1{}{query}",
                self.plural,
                if query.is_empty() { "" } else { "&" }
            );
            match http::send_full("GET", &url, None).await {
                Ok((200, Value::Array(items), total)) => {
                    let objs = items.into_iter().filter_map(|v| v.as_object().cloned()).collect();
                    self.models.set(objs);
                    self.total.set(total);
                    self.error.set(None);
                }
                Ok((status, body, _)) => self
                    .error
                    .set(Some(SaveError::from_response(status, body).message_for(""))),
                Err(e) => self.error.set(Some(e)),
            }
            self.loaded.set(true);
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = query;
    }

    /// Fetch now, every 10 s, and whenever `/xos/events` reports a change of this model.
    pub fn start_polling(self) {
        self.fetch();
        #[cfg(feature = "hydrate")]
        {
            if let Ok(handle) =
                set_interval_with_handle(move || self.fetch(), std::time::Duration::from_secs(10))
            {
                on_cleanup(move || handle.clear());
            }
            let model = self.model;
            events::subscribe(model, move |e| self.apply(e));
        }
    }

    /// Bring one change into the collection: refetch the object, or drop it when deleted.
    pub fn apply(self, e: ChangeEvent) {
        if e.kind == "delete" {
            self.models.update(|ms| ms.retain(|m| id_of(m) != e.id));
        } else {
            self.refetch(e.id);
        }
    }

    /// Fetch one object again into the collection (browser only).
    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    fn refetch(self, id: i64) {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let e = ChangeEvent {
                model: String::new(),
                id,
                kind: String::new(),
            };
            match http::send("GET", &self.object_url(e.id), None).await {
                Ok((200, Value::Object(obj))) => {
                    self.models
                        .update(|ms| match ms.iter_mut().find(|m| id_of(m) == e.id) {
                            Some(m) => *m = obj,
                            None => {
                                ms.push(obj);
                                ms.sort_by_key(id_of);
                            }
                        })
                }
                Ok((404, _)) => self.models.update(|ms| ms.retain(|m| id_of(m) != e.id)),
                _ => {}
            }
        });
    }

    /// Save `changes` to object `id` (PATCH) and update the collection with the server's answer.
    pub async fn save(self, id: i64, changes: Object) -> Result<Object, SaveError> {
        let obj = send_object("PATCH", &self.object_url(id), changes).await?;
        self.models.update(|ms| {
            if let Some(m) = ms.iter_mut().find(|m| id_of(m) == id) {
                *m = obj.clone();
            }
        });
        Ok(obj)
    }

    /// Create an object (POST) and add it to the collection.
    pub async fn create(self, fields: Object) -> Result<Object, SaveError> {
        let obj = send_object("POST", &format!("/xos/{}/?no_hyperlinks=1", self.plural), fields).await?;
        self.models.update(|ms| ms.push(obj.clone()));
        Ok(obj)
    }

    /// Delete an object and drop it from the collection.
    pub async fn destroy(self, id: i64) -> Result<(), SaveError> {
        let (status, body) = request("DELETE", &self.object_url(id), None)
            .await
            .map_err(SaveError::Other)?;
        if status != 204 {
            return Err(SaveError::from_response(status, body));
        }
        self.models.update(|ms| ms.retain(|m| id_of(m) != id));
        Ok(())
    }
}

/// Send a JSON object and expect one back (200/201).
pub async fn send_object(method: &str, url: &str, body: Object) -> Result<Object, SaveError> {
    let (status, answer) = request(method, url, Some(Value::Object(body)))
        .await
        .map_err(SaveError::Other)?;
    match (status, answer) {
        (200 | 201, Value::Object(obj)) => Ok(obj),
        (status, body) => Err(SaveError::from_response(status, body)),
    }
}

/// Go to another page (a whole page load: pages are rendered by the server).
pub fn go(url: &str) {
    #[cfg(feature = "hydrate")]
    if let Some(w) = web_sys::window() {
        let _ = w.location().assign(url);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = url;
}

/// One request from the browser (status and JSON body); on the server, an error.
pub async fn request(method: &str, url: &str, body: Option<Value>) -> Result<(u16, Value), String> {
    #[cfg(feature = "hydrate")]
    {
        http::send(method, url, body).await
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (method, url, body);
        Err("requests are made by the browser".into())
    }
}

#[cfg(feature = "hydrate")]
mod http {
    use serde_json::Value;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    /// The CSRF token the server set at login (`xoscsrftoken` cookie).
    fn csrf_token() -> Option<String> {
        let doc = web_sys::window()?
            .document()?
            .dyn_into::<web_sys::HtmlDocument>()
            .ok()?;
        let cookies = doc.cookie().ok()?;
        cookies.split(';').find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == "xoscsrftoken").then(|| v.to_string())
        })
    }

    /// A failed call into the browser, as text.
    fn js_error(e: JsValue) -> String {
        e.dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .or_else(|| e.as_string())
            .unwrap_or_else(|| "the request failed".into())
    }

    /// Status, JSON body and `X-Total-Count` of a request with the session cookie (and the CSRF
    /// header for writes), made with the browser's own `fetch`.
    pub async fn send_full(
        method: &str,
        url: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value, Option<i64>), String> {
        let headers = web_sys::Headers::new().map_err(js_error)?;
        headers.set("Accept", "application/json").map_err(js_error)?;
        if method != "GET"
            && let Some(t) = csrf_token()
        {
            headers.set("X-CSRFToken", &t).map_err(js_error)?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        if let Some(v) = body {
            headers
                .set("Content-Type", "application/json")
                .map_err(js_error)?;
            init.set_body(&JsValue::from_str(&v.to_string()));
        }
        init.set_headers(&headers);
        let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(js_error)?;
        let window = web_sys::window().ok_or("no window")?;
        let resp: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .map_err(js_error)?
            .unchecked_into();
        let status = resp.status();
        let total = resp
            .headers()
            .get("x-total-count")
            .ok()
            .flatten()
            .and_then(|t| t.parse().ok());
        let text = JsFuture::from(resp.text().map_err(js_error)?)
            .await
            .map_err(js_error)?
            .as_string()
            .unwrap_or_default();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, json, total))
    }

    pub async fn send(method: &str, url: &str, body: Option<Value>) -> Result<(u16, Value), String> {
        send_full(method, url, body).await.map(|(s, v, _)| (s, v))
    }
}

/// The page's one connection to `/xos/events`, shared by every subscriber.
#[cfg(feature = "hydrate")]
pub mod events {
    use super::ChangeEvent;
    use std::cell::RefCell;
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::Closure;

    type Listener = (u64, &'static str, Box<dyn Fn(ChangeEvent)>);

    thread_local! {
        static LISTENERS: RefCell<Vec<Listener>> = const { RefCell::new(Vec::new()) };
        static SOURCE: RefCell<Option<web_sys::EventSource>> = const { RefCell::new(None) };
        static NEXT: RefCell<u64> = const { RefCell::new(0) };
    }

    fn connect() {
        SOURCE.with(|s| {
            if s.borrow().is_some() {
                return;
            }
            let Ok(source) = web_sys::EventSource::new("/xos/events") else {
                return;
            };
            let on_change = Closure::<dyn Fn(web_sys::MessageEvent)>::new(|m: web_sys::MessageEvent| {
                let Some(text) = m.data().as_string() else { return };
                let Ok(e) = serde_json::from_str::<ChangeEvent>(&text) else {
                    return;
                };
                LISTENERS.with(|l| {
                    for (_, model, f) in l.borrow().iter() {
                        if *model == e.model || model.is_empty() {
                            f(e.clone());
                        }
                    }
                });
            });
            let _ = source.add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref());
            on_change.forget();
            *s.borrow_mut() = Some(source);
        });
    }

    /// Call `f` for every change of `model` ("" for all) while the calling component lives.
    pub fn subscribe(model: &'static str, f: impl Fn(ChangeEvent) + 'static) {
        connect();
        let id = NEXT.with(|n| {
            *n.borrow_mut() += 1;
            *n.borrow()
        });
        LISTENERS.with(|l| l.borrow_mut().push((id, model, Box::new(f))));
        leptos::prelude::on_cleanup(move || LISTENERS.with(|l| l.borrow_mut().retain(|(i, _, _)| *i != id)));
    }
}
