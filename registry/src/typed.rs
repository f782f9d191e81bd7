//! Typed names of model fields, for code that reads stored objects (synchronizer steps,
//! backends, services): `rec.req(instance::SLICE)?` instead of `rec.get_int("slice")`, so a
//! misspelt field is a compile error and a missing value an error, not a silent default.
//!
//! The registry stays data (a service's models are declarations, not Rust types); these
//! constants only name fields of it, and [`check`] proves every one of them against the
//! declarations (the registry's tests run it for the core's, a service's tests for its own).

use crate::{FieldKind, Registry, SqlType};
use std::marker::PhantomData;

/// What a field holds, as a type: [`Text`], [`Int`], [`Bool`] or [`Fk`] (the id of the object
/// a foreign key points at).
pub trait Kind {
    /// How the field is stored.
    const SQL: SqlType;
    /// Whether the field must be a foreign key.
    const FOREIGN_KEY: bool = false;
}

/// A text field (char, text, email, URL, IP address, …).
pub struct Text;
/// An integer field that is not a foreign key.
pub struct Int;
/// A boolean field.
pub struct Bool;
/// A foreign key: the id it points at.
pub struct Fk;

impl Kind for Text {
    const SQL: SqlType = SqlType::Text;
}
impl Kind for Int {
    const SQL: SqlType = SqlType::Int;
}
impl Kind for Bool {
    const SQL: SqlType = SqlType::Bool;
}
impl Kind for Fk {
    const SQL: SqlType = SqlType::Int;
    const FOREIGN_KEY: bool = true;
}

/// Field `name` of model `model` (None: a field of many models, such as `row_version`),
/// holding a `K`.
pub struct FieldName<K> {
    pub model: Option<&'static str>,
    pub name: &'static str,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for FieldName<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for FieldName<K> {}

impl<K> FieldName<K> {
    pub const fn of(model: &'static str, name: &'static str) -> FieldName<K> {
        FieldName {
            model: Some(model),
            name,
            kind: PhantomData,
        }
    }
    pub const fn common(name: &'static str) -> FieldName<K> {
        FieldName {
            model: None,
            name,
            kind: PhantomData,
        }
    }
}

/// One typed field name with its kind, erased (what [`check`] proves).
#[derive(Clone, Copy, Debug)]
pub struct Declared {
    pub model: Option<&'static str>,
    pub name: &'static str,
    pub sql: SqlType,
    pub foreign_key: bool,
}

impl<K: Kind> FieldName<K> {
    pub const fn declared(self) -> Declared {
        Declared {
            model: self.model,
            name: self.name,
            sql: K::SQL,
            foreign_key: K::FOREIGN_KEY,
        }
    }
}

/// Declares modules of typed field names: `fields! { instance "Instance" { SLICE: Fk = "slice", … } }`
/// makes `instance::SLICE` and `instance::ALL` (for [`check`]).
#[macro_export]
macro_rules! fields {
    ($($module:ident $model:literal { $($konst:ident : $kind:ident = $name:literal),* $(,)? })*) => {
        $(
            #[allow(missing_docs)]
            pub mod $module {
                #[allow(unused_imports)]
                use $crate::typed::{Bool, FieldName, Fk, Int, Text};
                $(pub const $konst: FieldName<$kind> = FieldName::of($model, $name);)*
                /// Every name above, for `registry::typed::check`.
                pub const ALL: &[$crate::typed::Declared] = &[$($konst.declared()),*];
            }
        )*
    };
}

/// [`check`] against the core's models and a service's `models` (its own test of its names:
/// `assert_eq!(check_with_core(models(), &[volume::ALL]), Vec::<String>::new())`).
pub fn check_with_core(models: Vec<crate::Model>, declared: &[&[Declared]]) -> Vec<String> {
    let mut all = crate::core_models();
    all.extend(models);
    check(&Registry::new(all), &declared.concat())
}

/// Every name in `declared` that the registry does not declare as said: unknown model or field,
/// or another kind. Empty when all hold.
pub fn check(registry: &Registry, declared: &[Declared]) -> Vec<String> {
    let mut wrong = Vec::new();
    for d in declared {
        let models: Vec<_> = match d.model {
            Some(m) => match registry.model(m) {
                Some(model) => vec![model],
                None => {
                    wrong.push(format!("{m}: no such model"));
                    continue;
                }
            },
            // A field many models have: wherever it is, of its kind; somewhere, at least.
            None => {
                let having: Vec<_> = registry
                    .models
                    .iter()
                    .filter(|m| m.fields.iter().any(|f| f.name == d.name))
                    .collect();
                if having.is_empty() {
                    wrong.push(format!("{}: no model has it", d.name));
                }
                having
            }
        };
        for model in models {
            let what = format!("{}.{}", model.name, d.name);
            match model.fields.iter().find(|f| f.name == d.name) {
                None => wrong.push(format!("{what}: no such field")),
                Some(f) if f.kind.sql_type() != d.sql => wrong.push(format!(
                    "{what}: stored as {:?}, named as {:?}",
                    f.kind.sql_type(),
                    d.sql
                )),
                Some(f) if matches!(f.kind, FieldKind::ForeignKey { .. }) != d.foreign_key => {
                    wrong.push(format!("{what}: a foreign key only if named as Fk"))
                }
                Some(_) => {}
            }
        }
    }
    wrong
}

/// The synchronizer's bookkeeping fields (every synchronized model has them).
pub mod common {
    use super::{Bool, FieldName, Int, Text};
    pub const ROW_VERSION: FieldName<Int> = FieldName::common("row_version");
    pub const ENACTED_VERSION: FieldName<Int> = FieldName::common("enacted_version");
    pub const BACKEND_STATUS: FieldName<Text> = FieldName::common("backend_status");
    pub const BACKEND_REGISTER: FieldName<Text> = FieldName::common("backend_register");
    pub const DELETED: FieldName<Bool> = FieldName::common("deleted");
    pub const WRITE_PROTECT: FieldName<Bool> = FieldName::common("write_protect");
    pub const ALL: &[super::Declared] = &[
        ROW_VERSION.declared(),
        ENACTED_VERSION.declared(),
        BACKEND_STATUS.declared(),
        BACKEND_REGISTER.declared(),
        DELETED.declared(),
        WRITE_PROTECT.declared(),
    ];
}
