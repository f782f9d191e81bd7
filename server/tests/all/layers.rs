//! The server crate's modules import only downward: each module names its layer here, and a
//! module that reaches one of its own layer or above (`crate::state` from `auth`, say) fails this
//! test, so no two modules can import each other (`docs/architecture.md` pictures the layers).
//! The crates below (`registry`, `store`) are held by the compiler; this holds the modules of
//! the server crate, read from its sources (test modules left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first. `db` and `store` are the store crate, below all of them.
const LAYERS: &[&[&str]] = &[
    &["csp"],
    &["config", "cache", "error"],
    &["events"],
    &["auth"],
    &["sync"],
    &["services", "metrics"],
    &["state"],
    &["api", "web", "ops"],
    &["tosca", "xoslib"],
    &["dashboards", "seed"],
];

const BELOW_ALL: &[&str] = &["db", "store"];

/// The `crate::…` modules a source file names (`crate::a::b`, `crate::{a, b::c}`).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            walk(&p, files);
        } else if p.extension().is_some_and(|e| e == "rs") {
            files.push(p);
        }
    }
}

/// Top-level module → the modules it imports.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "bin" {
            continue; // the crate root and the `xos` binary assemble everything
        }
        let refs = crate_refs(&std::fs::read_to_string(&f).unwrap());
        graph
            .entry(top.clone())
            .or_default()
            .extend(refs.into_iter().filter(|r| *r != top));
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

#[test]
fn every_module_imports_only_lower_layers() {
    let graph = module_graph();
    let mut wrong = Vec::new();
    for (module, refs) in &graph {
        let Some(mine) = layer_of(module) else {
            wrong.push(format!("{module} has no layer in LAYERS"));
            continue;
        };
        for r in refs {
            if BELOW_ALL.contains(&r.as_str()) {
                continue;
            }
            match layer_of(r) {
                Some(theirs) if theirs < mine => {}
                Some(_) => wrong.push(format!("{module} imports {r}, which is not below it")),
                None => wrong.push(format!("{module} imports {r}, which has no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_reader_sees_braced_and_plain_imports() {
    let refs =
        crate_refs("use crate::{api::x, auth};\nfn f() { crate::state::g() }\n#[cfg(test)]\nuse crate::web;");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec!["api", "auth", "state"]);
}
