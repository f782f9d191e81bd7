//! One model: its table, REST collection and admin page, its bookkeeping base, access rules,
//! model rules and what it extends.

use crate::{
    Access, BackendStatus, Field, FieldDefault, FieldKind, Rule, Tosca, ToscaEffect, ToscaLink,
    ToscaRequirement,
};
use serde::{Deserialize, Serialize};

/// A many-to-many relation kept in a named through model (`Site.deployments` through
/// `SiteDeployment`). Not a column: writing a list of ids adds and removes through rows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManyToMany {
    pub name: String,
    /// The model at the other end.
    pub to: String,
    /// The through model, holding a foreign key to each side.
    pub through: String,
    pub related_name: String,
    pub verbose_name: String,
    pub help_text: String,
}

/// Which set of bookkeeping fields a model carries.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Base {
    /// XOS's `PlCoreBase`: created … no_sync, plus hidden version counters.
    PlCore,
    /// XOS's User: its own subset (no backend_register, lazy_blocked, no_sync).
    User,
}

/// One model: a table, a REST collection, an admin page.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Model {
    /// CamelCase singular name (`Slice`).
    pub name: String,
    /// The REST collection name (`slices`).
    pub plural: String,
    /// The Django app the model belongs to (`core`); the table is `<app>_<name lowercased>`.
    pub app: String,
    pub verbose_name: String,
    pub verbose_name_plural: String,
    pub base: Base,
    /// All fields: `id`, the base fields, then the model's own.
    pub fields: Vec<Field>,
    pub unique_together: Vec<Vec<String>>,
    /// Default ordering (`name`, `-created`); `id` when empty.
    pub ordering: Vec<String>,
    /// The `humanReadableName` template: `{field}` placeholders.
    pub display: String,
    /// Fields `?search=` looks in.
    pub search_fields: Vec<String>,
    /// Fields the generated admin list shows.
    pub list_fields: Vec<String>,
    /// Model-level rules the store runs on every write (the server's `store::rules`).
    pub rules: Vec<Rule>,
    /// Who besides admins reads and writes the rows.
    pub access: Access,
    pub many_to_many: Vec<ManyToMany>,
    pub tosca: Option<Tosca>,
    pub help_text: String,
    /// Related objects the admin form lists below the object, with their status: (model, the
    /// foreign key of that model pointing here), e.g. a slice's instances (`Instance`, `slice`).
    pub inlines: Vec<(String, String)>,
    /// The core model this one extends (a service's `HelloWorldService` is a `Service`), as
    /// Django's multi-table inheritance did: see [`Extends`].
    #[serde(default)]
    pub extends: Option<Extends>,
}

/// A model that extends another: it has the parent's fields too (declared once, in the
/// parent), each of its rows is also a row of the parent with the same id and `kind`, so it
/// appears in the parent's collection (`/xos/services/`) as XOS showed subclasses. The store
/// keeps both rows one object: a write through either reaches the other in the same transaction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Extends {
    /// The parent model (`Service`, `Tenant`).
    pub parent: String,
    /// The parent's `kind` for these rows (`helloworld`); fixed, not writable.
    pub kind: String,
}

impl Model {
    /// Declare a model with the `PlCoreBase` fields.
    pub fn new(name: &str, plural: &str) -> Model {
        let mut m = Model {
            name: name.to_string(),
            plural: plural.to_string(),
            app: "core".into(),
            verbose_name: name.to_lowercase(),
            verbose_name_plural: format!("{}s", name.to_lowercase()),
            base: Base::PlCore,
            fields: vec![Field::auto_id()],
            unique_together: Vec::new(),
            ordering: Vec::new(),
            display: "{id}".into(),
            search_fields: Vec::new(),
            list_fields: Vec::new(),
            rules: Vec::new(),
            access: Access::default(),
            many_to_many: Vec::new(),
            tosca: None,
            help_text: String::new(),
            inlines: Vec::new(),
            extends: None,
        };
        m.fields.extend(base_fields(Base::PlCore));
        m
    }

    /// Declare a model with XOS's User bookkeeping instead of `PlCoreBase`.
    pub fn new_user_like(name: &str, plural: &str) -> Model {
        let mut m = Model::new(name, plural);
        m.base = Base::User;
        m.fields = vec![Field::auto_id()];
        m.fields.extend(base_fields(Base::User));
        m
    }

    pub fn verbose(mut self, singular: &str, plural: &str) -> Model {
        self.verbose_name = singular.to_string();
        self.verbose_name_plural = plural.to_string();
        self
    }
    pub fn field(mut self, f: Field) -> Model {
        self.fields.push(f);
        self
    }
    pub fn unique_together(mut self, fields: &[&str]) -> Model {
        self.unique_together
            .push(fields.iter().map(|s| s.to_string()).collect());
        self
    }
    pub fn ordering(mut self, fields: &[&str]) -> Model {
        self.ordering = fields.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn display(mut self, template: &str) -> Model {
        self.display = template.to_string();
        self
    }
    pub fn search(mut self, fields: &[&str]) -> Model {
        self.search_fields = fields.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn list(mut self, fields: &[&str]) -> Model {
        self.list_fields = fields.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn access(mut self, access: Access) -> Model {
        self.access = access;
        self
    }
    pub fn rule(mut self, rule: Rule) -> Model {
        self.rules.push(rule);
        self
    }
    /// List the `model` objects whose `fk` points here below this model's admin form.
    pub fn inline(mut self, model: &str, fk: &str) -> Model {
        self.inlines.push((model.to_string(), fk.to_string()));
        self
    }
    pub fn help(mut self, text: &str) -> Model {
        self.help_text = text.to_string();
        self
    }
    /// A many-to-many relation through the named model.
    pub fn many_to_many(mut self, name: &str, to: &str, through: &str, related_name: &str) -> Model {
        self.many_to_many.push(ManyToMany {
            name: name.to_string(),
            to: to.to_string(),
            through: through.to_string(),
            related_name: related_name.to_string(),
            verbose_name: name.replace('_', " "),
            help_text: String::new(),
        });
        self
    }
    /// The TOSCA node type and the field its node names match.
    pub fn tosca(mut self, node_type: &str, key: &str) -> Model {
        self.tosca = Some(Tosca {
            node_type: node_type.to_string(),
            key: key.to_string(),
            ..Tosca::default()
        });
        self
    }
    fn tosca_mut(&mut self) -> &mut Tosca {
        self.tosca
            .as_mut()
            .expect("declare .tosca(node_type, key) before other TOSCA annotations")
    }
    /// A TOSCA property that sets a differently named field.
    pub fn tosca_rename(mut self, property: &str, field: &str) -> Model {
        self.tosca_mut()
            .renames
            .push((property.to_string(), field.to_string()));
        self
    }
    /// `field` takes the node template's name unless the recipe sets it.
    pub fn tosca_name_default(mut self, field: &str) -> Model {
        self.tosca_mut().name_defaults.push(field.to_string());
        self
    }
    /// A TOSCA default that differs from the model's.
    pub fn tosca_default(mut self, field: &str, value: serde_json::Value) -> Model {
        self.tosca_mut().defaults.push((field.to_string(), value));
        self
    }
    /// A further node type for this model, fixing some fields.
    pub fn tosca_alias(mut self, node_type: &str, values: &[(&str, serde_json::Value)]) -> Model {
        let values = values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        self.tosca_mut().aliases.push((node_type.to_string(), values));
        self
    }
    /// A requirement relationship: `relationship` to a node of model `target` does `effect`.
    pub fn tosca_requirement(mut self, relationship: &str, target: &str, effect: ToscaEffect) -> Model {
        self.tosca_mut().requirements.push(ToscaRequirement {
            relationship: relationship.to_string(),
            target: target.to_string(),
            required: false,
            effect,
        });
        self
    }
    /// Like [`Model::tosca_requirement`], and every node of the type must have it.
    pub fn tosca_required(self, relationship: &str, target: &str, effect: ToscaEffect) -> Model {
        let mut m = self.tosca_requirement(relationship, target, effect);
        if let Some(r) = m.tosca_mut().requirements.last_mut() {
            r.required = true;
        }
        m
    }
    /// A list property naming objects by key, kept as link rows.
    pub fn tosca_list(mut self, property: &str, link: ToscaLink) -> Model {
        self.tosca_mut()
            .list_properties
            .push((property.to_string(), link));
        self
    }
    /// Capabilities the engine handles by name.
    pub fn tosca_capabilities(mut self, name: &str) -> Model {
        self.tosca_mut().capabilities = Some(name.to_string());
        self
    }
    /// Extend a core model (`Service`, `Tenant`): inherit its fields (a field declared here of
    /// the same name overrides the parent's, e.g. a narrower foreign key) and share its rows,
    /// whose `kind` is `kind`. The parent's fields are added when the registry is built.
    pub fn extends(mut self, parent: &str, kind: &str) -> Model {
        self.extends = Some(Extends {
            parent: parent.to_string(),
            kind: kind.to_string(),
        });
        self
    }
    /// Put the model in another Django app (a service's own models: `helloworld_…` tables).
    /// The app is also the service the model belongs to (`core` for the core models).
    pub fn in_app(mut self, app: &str) -> Model {
        self.app = app.to_string();
        self
    }
    /// `no_sync` defaults to true (XOS set it in `__init__` for Deployment, Controller, Node, Flavor).
    pub fn no_sync_by_default(mut self) -> Model {
        if let Some(f) = self.fields.iter_mut().find(|f| f.name == "no_sync") {
            f.default = Some(FieldDefault::Value(serde_json::Value::Bool(true)));
        }
        self
    }
    /// Change an inherited field's declaration (e.g. a base field's default).
    pub fn alter(mut self, name: &str, change: impl FnOnce(Field) -> Field) -> Model {
        if let Some(i) = self.fields.iter().position(|f| f.name == name) {
            let f = self.fields.remove(i);
            self.fields.insert(i, change(f));
        }
        self
    }

    /// The database table (`core_slice`), as Django named it.
    pub fn table(&self) -> String {
        format!("{}_{}", self.app, self.name.to_lowercase())
    }

    pub fn field_named(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Fields the API returns, in order.
    pub fn readable_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.is_readable())
    }

    /// Foreign keys of this model.
    pub fn foreign_keys(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.fk_target().is_some())
    }

    /// The XOS `getValidators()` map: `notBlank` for required fields, `url` for URL fields.
    pub fn validators(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        for f in self.fields.iter().filter(|f| f.is_writable()) {
            let mut v = Vec::new();
            if !f.blank {
                v.push(serde_json::Value::from("notBlank"));
            }
            if matches!(f.kind, FieldKind::Url { .. }) {
                v.push(serde_json::Value::from("url"));
            }
            if !v.is_empty() {
                out.insert(f.name.clone(), serde_json::Value::Array(v));
            }
        }
        out
    }

    /// Render `humanReadableName` from an object's JSON fields.
    pub fn human_readable_name(&self, obj: &serde_json::Map<String, serde_json::Value>) -> String {
        self.display_with(|key| match obj.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Null) | None => None,
            Some(v) => Some(v.to_string()),
        })
    }

    /// Fill the display template (`{field}` placeholders) from `lookup`.
    pub fn display_with(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        let mut rest = self.display.as_str();
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else { break };
            if let Some(v) = lookup(&rest[start + 1..start + end]) {
                out.push_str(&v);
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Has the synchronizer bookkeeping (`enacted`, `backend_status`, version counters).
    pub fn is_synchronized(&self) -> bool {
        self.field_named("enacted_version").is_some()
    }
}

/// Give each extending model its parent's own fields (after its bookkeeping, before its own
/// fields; a field it declares itself wins) and fix its `kind`.
pub(crate) fn inherit(models: &mut [Model]) {
    for i in 0..models.len() {
        let Some(ext) = models[i].extends.clone() else {
            continue;
        };
        let Some(parent) = models.iter().find(|m| m.name == ext.parent) else {
            panic!("{} extends {}, which is not declared", models[i].name, ext.parent);
        };
        assert!(
            parent.extends.is_none() && parent.base == models[i].base,
            "{} may extend only a core model of the same base",
            models[i].name
        );
        let parent_own = 1 + base_fields(parent.base).len();
        let inherited: Vec<Field> = parent.fields[parent_own..]
            .iter()
            .filter(|f| models[i].field_named(&f.name).is_none())
            .cloned()
            .collect();
        let rules: Vec<Rule> = parent.rules.clone();
        let child = &mut models[i];
        for r in rules {
            if !child.rules.contains(&r) {
                child.rules.push(r);
            }
        }
        let at = 1 + base_fields(child.base).len();
        child.fields.splice(at..at, inherited);
        if let Some(kind) = child.fields.iter_mut().find(|f| f.name == "kind") {
            kind.default = Some(FieldDefault::Value(ext.kind.clone().into()));
            kind.editable = false;
        }
    }
}

/// The bookkeeping fields of a base.
fn base_fields(base: Base) -> Vec<Field> {
    let mut v = vec![
        Field::datetime("created").auto_now_add(),
        Field::datetime("updated").auto_now(),
        Field::datetime("enacted").optional().read_only(),
        Field::datetime("policed").optional().read_only(),
    ];
    if base == Base::PlCore {
        v.push(
            Field::char("backend_register", 140)
                .optional()
                .default_str("{}")
                .read_only(),
        );
    }
    v.push(
        Field::char("backend_status", 1024)
            .default_str(BackendStatus::PROVISIONING)
            .read_only(),
    );
    v.push(Field::boolean("deleted", false).read_only());
    v.push(Field::boolean("write_protect", false));
    if base == Base::PlCore {
        v.push(Field::boolean("lazy_blocked", false));
        v.push(Field::boolean("no_sync", false));
    }
    // Change counters: "changed since enacted" must not depend on clock resolution. The row's
    // counter is `row_version`, not `version`, because Controller has a real `version` field.
    v.push(Field::integer("row_version").default_int(1).hidden());
    v.push(Field::integer("enacted_version").default_int(0).hidden());
    v.push(Field::integer("policed_version").default_int(0).hidden());
    v
}
