//! The client store, first version: Backbone-like collections of objects fetched from the REST
//! API (`/xos/<plural>/?no_hyperlinks=1`), held in signals so components re-render on change, and
//! saved back with the CSRF header the server expects for cookie-authenticated writes.
//!
//! On the server (SSR) collections stay empty and show their loading state; the browser fetches
//! once hydrated.

use leptos::prelude::*;
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
}

/// A collection of one model's objects.
#[derive(Clone, Copy)]
pub struct Collection {
    pub plural: &'static str,
    pub models: RwSignal<Vec<Object>>,
    pub loaded: RwSignal<bool>,
    pub error: RwSignal<Option<String>>,
}

/// The `id` of an object.
pub fn id_of(o: &Object) -> i64 {
    o.get("id").and_then(Value::as_i64).unwrap_or_default()
}

/// A string field of an object ("" when missing or null).
pub fn str_of<'a>(o: &'a Object, field: &str) -> &'a str {
    o.get(field).and_then(Value::as_str).unwrap_or("")
}

impl Collection {
    pub fn new(plural: &'static str) -> Collection {
        Collection {
            plural,
            models: RwSignal::new(Vec::new()),
            loaded: RwSignal::new(false),
            error: RwSignal::new(None),
        }
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn list_url(&self) -> String {
        format!("/xos/{}/?no_hyperlinks=1", self.plural)
    }

    fn object_url(&self, id: i64) -> String {
        format!("/xos/{}/{id}/?no_hyperlinks=1", self.plural)
    }

    /// Replace the contents with what the server has now (browser only).
    pub fn fetch(self) {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            match http::send("GET", &self.list_url(), None).await {
                Ok((200, Value::Array(items))) => {
                    let objs = items.into_iter().filter_map(|v| v.as_object().cloned()).collect();
                    self.models.set(objs);
                    self.error.set(None);
                }
                Ok((status, body)) => self.error.set(Some(format!("HTTP {status}: {body}"))),
                Err(e) => self.error.set(Some(e)),
            }
            self.loaded.set(true);
        });
    }

    /// Save `changes` to object `id` (PATCH) and update the collection with the server's answer.
    pub async fn save(self, id: i64, changes: Object) -> Result<Object, SaveError> {
        #[cfg(feature = "hydrate")]
        {
            let (status, body) = http::send("PATCH", &self.object_url(id), Some(Value::Object(changes)))
                .await
                .map_err(SaveError::Other)?;
            match (status, body) {
                (200, Value::Object(obj)) => {
                    self.models.update(|ms| {
                        if let Some(m) = ms.iter_mut().find(|m| id_of(m) == id) {
                            *m = obj.clone();
                        }
                    });
                    Ok(obj)
                }
                (400, Value::Object(errs)) => Err(SaveError::Fields(
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
                )),
                (status, body) => Err(SaveError::Other(
                    body.get("detail")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("HTTP {status}")),
                )),
            }
        }
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (id, changes, self.object_url(id));
            Err(SaveError::Other("saving needs the browser".into()))
        }
    }
}

#[cfg(feature = "hydrate")]
mod http {
    use gloo_net::http::Request;
    use serde_json::Value;
    use wasm_bindgen::JsCast;

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

    /// Send a request with the session cookie (and CSRF header for writes); status and JSON body.
    pub async fn send(method: &str, url: &str, body: Option<Value>) -> Result<(u16, Value), String> {
        let mut b = match method {
            "GET" => Request::get(url),
            "PATCH" => Request::patch(url),
            "PUT" => Request::put(url),
            "POST" => Request::post(url),
            "DELETE" => Request::delete(url),
            other => return Err(format!("unsupported method {other}")),
        }
        .header("Accept", "application/json");
        if method != "GET"
            && let Some(t) = csrf_token()
        {
            b = b.header("X-CSRFToken", &t);
        }
        let resp = match body {
            Some(v) => b.json(&v).map_err(|e| e.to_string())?.send().await,
            None => b.send().await,
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, json))
    }
}
