//! The dependency graph: models depend on the models their foreign keys point at (from the
//! registry); steps depend on the steps providing what their models depend on, through models
//! no step provides. Steps run in layers of this order (independent steps of a layer at once);
//! deletions run in the reverse order. `xos dmdot` prints the model graph.

use crate::Step;
use registry::Registry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Model → the models it points at (self-references left out).
pub fn model_dependencies(reg: &Registry) -> BTreeMap<String, BTreeSet<String>> {
    reg.models
        .iter()
        .map(|m| {
            // An extending model's rows are rows of its parent too: written after them.
            let deps = m
                .foreign_keys()
                .filter_map(|f| f.fk_target())
                .chain(m.extends.as_ref().map(|e| e.parent.as_str()))
                .filter(|t| *t != m.name)
                .map(str::to_string)
                .collect();
            (m.name.clone(), deps)
        })
        .collect()
}

/// The graph as text: one line per model with what it depends on.
pub fn dmdot_text(reg: &Registry, service: Option<&str>) -> String {
    let mut out = String::new();
    for (m, deps) in service_dependencies(reg, service) {
        let list: Vec<&str> = deps.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "{m} -> {}\n",
            if list.is_empty() {
                "(none)".into()
            } else {
                list.join(", ")
            }
        ));
    }
    out
}

/// The graph in Graphviz's language (`xos dmdot --dot | dot -Tsvg`).
pub fn dmdot_graphviz(reg: &Registry, service: Option<&str>) -> String {
    let mut out = String::from("digraph xos {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n");
    for (m, deps) in service_dependencies(reg, service) {
        out.push_str(&format!("  \"{m}\";\n"));
        for d in deps {
            out.push_str(&format!("  \"{m}\" -> \"{d}\";\n"));
        }
    }
    out.push_str("}\n");
    out
}

/// The dependencies of one service's models (all models without a service).
fn service_dependencies(reg: &Registry, service: Option<&str>) -> Vec<(String, BTreeSet<String>)> {
    model_dependencies(reg)
        .into_iter()
        .filter(|(m, _)| service.is_none_or(|s| reg.model(m).is_some_and(|m| m.app == s)))
        .collect()
}

/// A cycle among steps.
#[derive(Debug, thiserror::Error)]
#[error("the synchronizer steps depend on each other in a cycle: {0}")]
pub struct CycleError(pub String);

/// Layers of step indexes: every step comes after the steps it depends on.
pub fn step_layers(reg: &Registry, steps: &[Arc<dyn Step>]) -> Result<Vec<Vec<usize>>, CycleError> {
    let deps = model_dependencies(reg);
    // Models each step's models reach, passing through models no step provides.
    let provided: BTreeSet<&str> = steps.iter().flat_map(|s| s.provides()).collect();
    let reach = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = deps.get(start).into_iter().flatten().cloned().collect();
        while let Some(m) = todo.pop() {
            if seen.insert(m.clone()) && !provided.contains(m.as_str()) {
                todo.extend(deps.get(&m).into_iter().flatten().cloned());
            }
        }
        seen
    };
    let mut needs: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); steps.len()];
    for (a, sa) in steps.iter().enumerate() {
        let mut reached = BTreeSet::new();
        for m in sa.provides().into_iter().chain([sa.observes()]) {
            reached.extend(reach(m));
        }
        for (b, sb) in steps.iter().enumerate() {
            if a != b
                && sb
                    .provides()
                    .iter()
                    .any(|p| reached.contains(*p) && !sa.provides().contains(p))
            {
                needs[a].insert(b);
            }
        }
    }
    let mut layers = Vec::new();
    let mut done: BTreeSet<usize> = BTreeSet::new();
    while done.len() < steps.len() {
        let layer: Vec<usize> = (0..steps.len())
            .filter(|i| !done.contains(i) && needs[*i].iter().all(|d| done.contains(d)))
            .collect();
        if layer.is_empty() {
            let stuck: Vec<&str> = (0..steps.len())
                .filter(|i| !done.contains(i))
                .map(|i| steps[i].name())
                .collect();
            return Err(CycleError(stuck.join(", ")));
        }
        done.extend(layer.iter().copied());
        layers.push(layer);
    }
    Ok(layers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Enacted, StepContext, SyncError};
    use store::Record;

    struct Fake(&'static str, &'static str);

    #[async_trait::async_trait]
    impl Step for Fake {
        fn name(&self) -> &'static str {
            self.0
        }
        fn provides(&self) -> Vec<&'static str> {
            vec![self.1]
        }
        fn observes(&self) -> &'static str {
            self.1
        }
        async fn sync_record(&self, _: &StepContext, _: &Record) -> Result<Enacted, SyncError> {
            Ok(Enacted::ok())
        }
        async fn delete_record(&self, _: &StepContext, _: &Record) -> Result<(), SyncError> {
            Ok(())
        }
    }

    #[test]
    fn instances_come_after_slices_and_sites_and_independent_steps_share_a_layer() {
        let reg = registry::registry();
        let steps: Vec<Arc<dyn Step>> = vec![
            Arc::new(Fake("instances", "Instance")),
            Arc::new(Fake("slices", "Slice")),
            Arc::new(Fake("sites", "Site")),
            Arc::new(Fake("images", "Image")),
        ];
        let layers = step_layers(reg, &steps).unwrap();
        let layer_of = |name: &str| {
            layers
                .iter()
                .position(|l| l.iter().any(|&i| steps[i].name() == name))
                .unwrap()
        };
        assert!(layer_of("sites") < layer_of("slices"));
        assert!(layer_of("slices") < layer_of("instances"));
        assert!(layer_of("images") < layer_of("instances"));
        assert_eq!(
            layer_of("images"),
            layer_of("sites"),
            "unrelated steps run together"
        );
    }

    #[test]
    fn dmdot_names_the_dependencies() {
        let text = dmdot_text(registry::registry(), None);
        assert!(text.contains("Instance -> "), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("Slice -> ") && l.contains("Site"))
        );
        let dot = dmdot_graphviz(registry::registry(), None);
        assert!(dot.starts_with("digraph xos {") && dot.contains("\"Instance\" -> \"Slice\";"));
    }
}
