//! The model registry: every model is declared once, as plain data.
//!
//! REST routes and (de)serialization, validation, migrations (`xos makemigrations`), the admin
//! pages, the client store's collections and (later) TOSCA types and the synchronizer's
//! dependency graph all read these declarations. The registry is deliberately data, not one
//! generated Rust type per model, so that a service's models can one day be loaded at run time.
//!
//! Field types and attributes follow the XOS guide's "Data Model Conventions" (Django's field
//! vocabulary): see [`FieldKind`] and [`Field`].

mod access;
mod field;
pub mod fields;
mod model;
mod models;
mod rules;
mod status;
mod tosca;
pub mod typed;

pub use access::{Access, Read, Write};
pub use field::{Choice, Field, FieldDefault, FieldKind, OnDelete, SqlType};
pub use model::{Base, Extends, ManyToMany, Model};
pub use models::BACKEND_TYPES;
pub use rules::{Rule, TextCheck, Validator, domain_name_error};
pub use status::BackendStatus;
pub use tosca::{Tosca, ToscaEffect, ToscaLink, ToscaRequirement};

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Every model the system knows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registry {
    pub models: Vec<Model>,
    #[serde(skip)]
    by_name: HashMap<String, usize>,
    #[serde(skip)]
    by_plural: HashMap<String, usize>,
}

impl Registry {
    /// Build a registry from declarations: resolve inheritance ([`Model::extends`]), index
    /// names and plurals.
    pub fn new(mut models: Vec<Model>) -> Registry {
        model::inherit(&mut models);
        let by_name = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        let by_plural = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.plural.clone(), i))
            .collect();
        Registry {
            models,
            by_name,
            by_plural,
        }
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.by_name.get(name).map(|&i| &self.models[i])
    }

    pub fn by_plural(&self, plural: &str) -> Option<&Model> {
        self.by_plural.get(plural).map(|&i| &self.models[i])
    }

    /// The through model's foreign keys of a many-to-many: (to this side, to the other side).
    pub fn through_fields<'a>(&'a self, owner: &str, m2m: &'a ManyToMany) -> Option<(&'a Field, &'a Field)> {
        let through = self.model(&m2m.through)?;
        let source = through.foreign_keys().find(|f| f.fk_target() == Some(owner))?;
        let target = through
            .foreign_keys()
            .find(|f| f.fk_target() == Some(m2m.to.as_str()) && f.name != source.name)?;
        Some((source, target))
    }

    /// The models that extend `model` (`HelloWorldService` for `Service`).
    pub fn children<'a>(&'a self, model: &str) -> impl Iterator<Item = &'a Model> + 'a {
        let model = model.to_string();
        self.models
            .iter()
            .filter(move |m| m.extends.as_ref().is_some_and(|e| e.parent == model))
    }

    /// The services whose models this registry holds (`core` first), from the models' apps.
    pub fn services(&self) -> Vec<&str> {
        let mut out: Vec<&str> = vec!["core"];
        for m in &self.models {
            if !out.contains(&m.app.as_str()) {
                out.push(&m.app);
            }
        }
        out
    }

    /// Foreign keys elsewhere that point at `model`: (referring model, field).
    pub fn referrers<'a>(&'a self, model: &'a str) -> impl Iterator<Item = (&'a Model, &'a Field)> + 'a {
        self.models.iter().flat_map(move |m| {
            m.foreign_keys()
                .filter(move |f| f.fk_target() == Some(model))
                .map(move |f| (m, f))
        })
    }
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();
static SERVICE_MODELS: OnceLock<fn() -> Vec<Model>> = OnceLock::new();

/// Give the registry the models of the services XOS is built with. The registry knows no
/// service: the catalog (`services/catalog`) calls this once, before the registry's first use.
///
/// # Panics
/// When the registry was already built without them, or they were given before: either is a
/// wiring mistake that would otherwise show as missing tables and routes.
pub fn install(service_models: fn() -> Vec<Model>) {
    assert!(
        REGISTRY.get().is_none(),
        "the registry was used before the services' models were installed: reach it through \
         the catalog (`xos_services::registry()`, `app::registry::registry()`)"
    );
    assert!(
        SERVICE_MODELS.set(service_models).is_ok(),
        "the services' models were installed twice"
    );
}

/// The core's models alone, as declared (for a service's tests, which build a [`Registry`] of
/// them and the service's own without installing anything).
pub fn core_models() -> Vec<Model> {
    models::models()
}

/// The registry of the core's models and the installed services' ([`install`]).
pub fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| {
        let mut models = models::models();
        if let Some(service_models) = SERVICE_MODELS.get() {
            models.extend(service_models());
        }
        Registry::new(models)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XOS field names that are not snake_case; kept for API compatibility.
    const LEGACY_CAMEL_CASE: &[&str] = &[
        "accessControl",
        "numberCores",
        "userData",
        "versionNumber",
        "dashboardView",
    ];

    #[test]
    fn without_installed_services_the_registry_is_the_core() {
        // This crate's own test binary installs no service.
        let reg = registry();
        assert_eq!(reg.services(), vec!["core"]);
        assert_eq!(reg.children("Service").count(), 0);
        assert!(
            reg.models.iter().all(|m| m.app == "core"),
            "a core model outside the core app"
        );
    }

    #[test]
    fn every_foreign_key_points_at_a_declared_model() {
        let reg = registry();
        for m in &reg.models {
            for f in m.foreign_keys() {
                let to = f.fk_target().unwrap();
                assert!(
                    reg.model(to).is_some(),
                    "{}.{} points at unknown {to}",
                    m.name,
                    f.name
                );
            }
        }
    }

    #[test]
    fn every_inline_names_a_model_and_its_key_pointing_back() {
        let reg = registry();
        for m in &reg.models {
            for (child, fk) in &m.inlines {
                let c = reg
                    .model(child)
                    .unwrap_or_else(|| panic!("{} inlines unknown {child}", m.name));
                let f = c
                    .fields
                    .iter()
                    .find(|f| &f.name == fk)
                    .unwrap_or_else(|| panic!("{child} has no field {fk}"));
                assert_eq!(
                    f.fk_target(),
                    Some(m.name.as_str()),
                    "{child}.{fk} does not point at {}",
                    m.name
                );
            }
        }
    }

    /// Where a dotted access path of foreign keys leads from `m` (None: a step is not a key).
    fn walk<'a>(reg: &'a Registry, m: &'a Model, path: &[String]) -> Option<&'a Model> {
        let mut here = m;
        for step in path {
            here = reg.model(here.field_named(step)?.fk_target()?)?;
        }
        Some(here)
    }

    #[test]
    fn every_access_path_leads_where_its_rule_says() {
        let reg = registry();
        let leads_to = |m: &Model, path: &[String], to: &str| {
            let end = walk(reg, m, path).map(|e| e.name.clone());
            assert_eq!(
                end.as_deref(),
                Some(to),
                "{}: path {path:?} must lead to {to}",
                m.name
            );
        };
        let mut special = 0;
        for m in &reg.models {
            match &m.access.read {
                Read::Slice(p) => leads_to(m, p, "Slice"),
                Read::Owner(f) => leads_to(m, std::slice::from_ref(f), "User"),
                Read::OwnerOrPublic { owner, private } => {
                    leads_to(m, std::slice::from_ref(owner), "User");
                    assert!(m.field_named(private).is_some(), "{}.{private}", m.name);
                }
                Read::Members { path, through } => {
                    let end = walk(reg, m, path).expect("the path leads somewhere");
                    let link = reg.model(through).expect("the link model exists");
                    assert!(
                        link.foreign_keys()
                            .any(|f| f.fk_target() == Some(end.name.as_str()))
                    );
                    assert!(link.foreign_keys().any(|f| f.fk_target() == Some("User")));
                }
                Read::All | Read::Admins => {}
                Read::Users | Read::SitePrivileges | Read::SlicePrivileges | Read::Networks => special += 1,
            }
            match &m.access.write {
                Write::Slice { slice, sees, .. } => {
                    leads_to(m, slice, "Slice");
                    for (field, model) in sees {
                        leads_to(m, std::slice::from_ref(field), model);
                    }
                }
                Write::Owner { field, .. } => leads_to(m, std::slice::from_ref(field), "User"),
                Write::SiteRole { sites, roles, .. } => {
                    for p in sites {
                        leads_to(m, p, "Site");
                    }
                    assert!(!roles.is_empty(), "{}", m.name);
                }
                Write::Members { .. } => {}
                Write::Admins => {}
                Write::Users | Write::Slices | Write::SitePrivileges | Write::SlicePrivileges => special += 1,
            }
        }
        // The special cases belong to one model each (User, Slice, the two privileges, Network).
        assert_eq!(special, 8);
        assert_eq!(registry().model("Image").unwrap().access, Access::default());
        assert!(matches!(
            &registry().model("Deployment").unwrap().access.write,
            Write::Members { path, through } if path.is_empty() && through == "DeploymentPrivilege"
        ));
    }

    #[test]
    fn names_follow_the_conventions() {
        for m in &registry().models {
            assert!(m.name.chars().next().unwrap().is_ascii_uppercase(), "{}", m.name);
            assert!(!m.name.contains('_'), "{}", m.name);
            assert_eq!(m.plural, m.plural.to_lowercase(), "{}", m.plural);
            for f in &m.fields {
                let legacy = LEGACY_CAMEL_CASE.contains(&f.name.as_str());
                assert!(legacy || f.name == f.name.to_lowercase(), "{}.{}", m.name, f.name);
            }
        }
    }

    #[test]
    fn every_many_to_many_has_a_through_model_with_both_keys() {
        let reg = registry();
        for m in &reg.models {
            for r in &m.many_to_many {
                assert!(
                    reg.through_fields(&m.name, r).is_some(),
                    "{}.{} through {}",
                    m.name,
                    r.name,
                    r.through
                );
            }
        }
    }

    #[test]
    fn human_readable_name_fills_placeholders() {
        let m = registry().model("Slice").unwrap();
        let mut obj = serde_json::Map::new();
        obj.insert("name".into(), "mysite_test".into());
        assert_eq!(m.human_readable_name(&obj), "mysite_test");
    }

    #[test]
    fn validators_name_required_and_url_fields() {
        let v = registry().model("Site").unwrap().validators();
        assert_eq!(v["name"], serde_json::json!(["notBlank"]));
        assert_eq!(v["site_url"], serde_json::json!(["url"]));
        assert!(!v.contains_key("created"));
    }
}
