//! The example service: the smallest whole service, and the template for a new one. Everything
//! of it is in this folder; XOS's core knows it only through the catalog's list.
//!
//! An `ExampleNote` is a title and a text. Its synchronizer step makes the note real as a file,
//! `<state_dir>/example/<id>.txt`, whose path it writes back (a backend-owned field); deleting
//! the note removes the file. A title is checked by the service's own rule (no `/`: it names a
//! file in the listing), which the core runs without knowing it. A configuration loads it with
//! `services = ["example"]`; the test configuration of `server/tests/all/services.rs` does.

use registry::{Field, Model, TextCheck, Validator};

/// The name configurations load it by, and its models' app.
pub const NAME: &str = "example";

/// A title is one line without `/`.
pub const TITLE: Validator = Validator::Check(TextCheck {
    name: "exampleTitle",
    check: |s| {
        (s.contains('/') || s.contains('\n')).then(|| "A title is one line without \"/\".".to_string())
    },
});

/// The service's models.
pub fn models() -> Vec<Model> {
    vec![
        Model::new("ExampleNote", "examplenotes")
            .in_app(NAME)
            .verbose("example note", "example notes")
            .help("A note the example service writes to a file")
            .field(
                Field::schar("title", 100)
                    .unique()
                    .validator(TITLE)
                    .help("One line, no /"),
            )
            .field(Field::text("body", None).optional().help("What the file holds"))
            .field(
                Field::char("path", 1024)
                    .optional()
                    .backend_owned()
                    .help("The file the synchronizer wrote (set by the synchronizer)"),
            )
            .display("{title}")
            .search(&["title", "body"])
            .list(&["title", "path", "backend_status"])
            .tosca("tosca.nodes.ExampleNote", "title"),
    ]
}

/// Typed names of the fields its code reads (`note.opt(fields::example_note::BODY)`), proven
/// against the declarations above by the test below.
pub mod fields {
    registry::fields! {
        example_note "ExampleNote" {
            BODY: Text = "body",
        }
    }
}

#[cfg(feature = "server")]
mod server;

/// The service, as the server sees it.
#[cfg(feature = "server")]
pub struct Service;

#[cfg(feature = "server")]
impl xos_service::Service for Service {
    fn name(&self) -> &'static str {
        NAME
    }
    fn models(&self) -> Vec<registry::Model> {
        models()
    }
    fn steps(&self, _ctx: &xos_service::StepContext) -> Vec<std::sync::Arc<dyn xos_service::Step>> {
        vec![std::sync::Arc::new(server::NoteFiles)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_one_line_without_a_slash() {
        let Validator::Check(check) = TITLE else {
            panic!("the title's check is the service's own")
        };
        assert!((check.check)("groceries").is_none());
        assert!((check.check)("a/b").is_some());
        assert!((check.check)("a\nb").is_some());
        let note = models().remove(0);
        assert_eq!(note.app, NAME);
        assert!(note.field_named("title").unwrap().validators.contains(&TITLE));
    }

    #[test]
    fn every_typed_name_is_a_declared_field_of_its_kind() {
        assert_eq!(
            registry::typed::check_with_core(models(), &[fields::example_note::ALL]),
            Vec::<String>::new()
        );
    }
}
