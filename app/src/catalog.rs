//! The models the UI can look up by name or plural.
//!
//! On the server that is the registry (the core's models and every service's). In the browser it
//! is only what the server sent: an island's props carry the model it shows and the models that
//! model refers to (foreign-key targets, related objects), as JSON written into the page
//! ([`for_island`]); the island [`install`]s them when it starts. So the registry is not
//! compiled into the wasm bundle, and a new model or service changes no byte of it. Both sides
//! see models as [`crate::meta`] has them.

use crate::meta::Model;

/// Make `models` known to lookups (browser); on the server the registry already knows them.
pub fn install(models: Vec<Model>) {
    #[cfg(not(feature = "ssr"))]
    browser::install(models);
    #[cfg(feature = "ssr")]
    drop(models);
}

/// The model named `name` (`Slice`).
pub fn model(name: &str) -> Option<&'static Model> {
    #[cfg(feature = "ssr")]
    return server::all().iter().find(|m| m.name == name);
    #[cfg(not(feature = "ssr"))]
    browser::find(|m| m.name == name)
}

/// The model of an API plural (`slices`).
pub fn by_plural(plural: &str) -> Option<&'static Model> {
    #[cfg(feature = "ssr")]
    return server::all().iter().find(|m| m.plural == plural);
    #[cfg(not(feature = "ssr"))]
    browser::find(|m| m.plural == plural)
}

/// What an island showing `model` needs to know: the model itself first, in full; the models
/// listed on its page (its inlines), in full, since their rows are added and changed in place;
/// and, reduced to their names, the models any of these refer to (the options of a foreign-key
/// select, a many-to-many list, a list's related names).
#[cfg(feature = "ssr")]
pub fn for_island(model: &Model) -> Vec<Model> {
    let mut full: Vec<&Model> = vec![model];
    full.extend(model.inlines.iter().filter_map(|(child, _)| self::model(child)));
    let mut out: Vec<Model> = full.iter().map(|m| (*m).clone()).collect();
    let referred = full.iter().flat_map(|m| {
        m.fields
            .iter()
            .filter_map(|f| f.fk_target())
            .chain(m.many_to_many.iter().map(|r| r.to.as_str()))
    });
    for name in referred {
        if out.iter().any(|m| m.name == name) {
            continue;
        }
        if let Some(target) = self::model(name) {
            out.push(Model {
                fields: Vec::new(),
                list_fields: Vec::new(),
                many_to_many: Vec::new(),
                inlines: Vec::new(),
                ..target.clone()
            });
        }
    }
    out
}

#[cfg(feature = "ssr")]
mod server {
    use crate::meta::Model;
    use std::sync::OnceLock;

    /// The registry's models as the UI sees them, derived once.
    pub(super) fn all() -> &'static [Model] {
        static ALL: OnceLock<Vec<Model>> = OnceLock::new();
        ALL.get_or_init(|| {
            crate::registry::registry()
                .models
                .iter()
                .map(Model::from)
                .collect()
        })
    }
}

#[cfg(not(feature = "ssr"))]
mod browser {
    use crate::meta::Model;
    use std::cell::RefCell;

    thread_local! {
        /// Every model an island of this page was given; a page lives until the next navigation.
        static MODELS: RefCell<Vec<&'static Model>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn install(models: Vec<Model>) {
        MODELS.with(|known| {
            let mut known = known.borrow_mut();
            for m in models {
                match known.iter().position(|k| k.name == m.name) {
                    // A fuller copy (another island's own model) replaces a name-only one.
                    Some(i) if known[i].fields.len() < m.fields.len() => known[i] = Box::leak(Box::new(m)),
                    Some(_) => {}
                    None => known.push(Box::leak(Box::new(m))),
                }
            }
        });
    }

    pub(super) fn find(pred: impl Fn(&Model) -> bool) -> Option<&'static Model> {
        MODELS.with(|known| known.borrow().iter().copied().find(|m| pred(m)))
    }
}
