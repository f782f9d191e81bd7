//! Every kind of recipe error is reported with file, line and node.

use tosca::{Problem, Source};

pub(crate) fn source(text: &str) -> Source {
    Source {
        name: "r.yaml".into(),
        text: text.to_string(),
    }
}

/// Parse problems, in the recipe's file, at the expected line.
fn problems(text: &str) -> Vec<Problem> {
    match tosca::parse(registry::registry(), &[source(text)]) {
        Ok(_) => panic!("recipe accepted:\n{text}"),
        Err(p) => p,
    }
}

fn assert_problem(text: &str, line: usize, node: Option<&str>, needle: &str) {
    let found = problems(text);
    assert!(
        found.iter().any(|p| p.file == "r.yaml"
            && p.line == line
            && p.node.as_deref() == node
            && p.message.contains(needle)),
        "expected line {line} node {node:?} '{needle}' in {found:#?}"
    );
}

pub(crate) const HEAD: &str =
    "tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates:\n";

#[test]
fn yaml_syntax_errors_name_the_line() {
    assert_problem(
        &format!("{HEAD}    a:\n      type: [tosca.nodes.Site\n"),
        6,
        None,
        "YAML syntax error",
    );
    assert_problem(
        &format!("{HEAD}    a:\n   type: x\n  - b\n"),
        5,
        None,
        "YAML syntax error",
    );
    assert_problem(
        &format!("{HEAD}    a:\n      type: tosca.nodes.Image\n    a:\n      type: tosca.nodes.Image\n"),
        6,
        None,
        "duplicate key 'a'",
    );
    assert_problem("description: no topology\n", 1, None, "no topology_template");
    assert_problem(
        "tosca_definitions_version: tosca_simple_yaml_2_0\ntopology_template:\n  node_templates: {}\n",
        1,
        None,
        "unsupported tosca_definitions_version",
    );
}

#[test]
fn unknown_types_and_properties_are_named() {
    assert_problem(
        &format!("{HEAD}    w:\n      type: tosca.nodes.Widget\n"),
        5,
        Some("w"),
        "unknown node type 'tosca.nodes.Widget'",
    );
    assert_problem(
        &format!("{HEAD}    s:\n      type: tosca.nodes.Site\n      properties:\n        colour: blue\n"),
        7,
        Some("s"),
        "unknown property 'colour'",
    );
    assert_problem(
        &format!("{HEAD}    s:\n      type: tosca.nodes.Site\n      properties:\n        enabled: maybe\n"),
        7,
        Some("s"),
        "'maybe' is not true or false",
    );
    assert_problem(
        &format!(
            "{HEAD}    s:\n      type: tosca.nodes.Site\n      properties:\n        login_base: other\n"
        ),
        7,
        Some("s"),
        "is the node's name",
    );
    assert_problem(
        &format!(
            "{HEAD}    c:\n      type: tosca.nodes.Image\n      capabilities:\n        host:\n          properties:\n            num_cpus: 1\n"
        ),
        7,
        Some("c"),
        "unknown capability 'host'",
    );
    assert_problem(
        &format!("{HEAD}    i:\n      type: tosca.nodes.Image\n      colour: red\n"),
        6,
        Some("i"),
        "unknown key 'colour'",
    );
}

#[test]
fn missing_wrong_and_cyclic_requirements_are_named() {
    // A required relationship left out.
    assert_problem(
        &format!("{HEAD}    s_x:\n      type: tosca.nodes.Slice\n"),
        4,
        Some("s_x"),
        "requires a MemberOfSite requirement",
    );
    // A target the recipe does not define.
    assert_problem(
        &format!(
            "{HEAD}    s_x:\n      type: tosca.nodes.Slice\n      requirements:\n        - site:\n            node: nowhere\n            relationship: tosca.relationships.MemberOfSite\n"
        ),
        7,
        Some("s_x"),
        "names node 'nowhere', which the recipe does not define",
    );
    // A relationship the type does not take.
    assert_problem(
        &format!(
            "{HEAD}    img:\n      type: tosca.nodes.Image\n    s:\n      type: tosca.nodes.Site\n      requirements:\n        - x:\n            node: img\n            relationship: tosca.relationships.MemberOfSlice\n"
        ),
        9,
        Some("s"),
        "has no MemberOfSlice requirement",
    );
    // A cycle.
    let text = format!(
        "{HEAD}    a:\n      type: tosca.nodes.Service\n      requirements:\n        - b:\n            node: b\n            relationship: tosca.relationships.TenantOfService\n    b:\n      type: tosca.nodes.Service\n      requirements:\n        - a:\n            node: a\n            relationship: tosca.relationships.TenantOfService\n"
    );
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].message.contains("cycle: a → b → a"), "{found:#?}");
    assert_eq!(found[0].line, 4);
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!(
        "{HEAD}    w:\n      type: tosca.nodes.Widget\n    s:\n      type: tosca.nodes.Site\n      properties:\n        colour: blue\n    sl:\n      type: tosca.nodes.Slice\n"
    );
    let found = problems(&text);
    assert_eq!(found.len(), 3, "{found:#?}");
    let lines: Vec<usize> = found.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![5, 9, 10]);
}

/// (The recipes of the configurations, some of which take the services' node types, are held
/// far from this limit by the server's test `tosca::the_configurations_recipes_parse`.)
#[test]
fn a_deeply_nested_recipe_is_refused_with_its_line_not_a_stack_overflow() {
    // Flow collections nested a hundred thousand deep, on the ninth line.
    let deep = format!(
        "{HEAD}    s:\n      type: tosca.nodes.Site\n      properties:\n        display_name: x\n        x: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let found = problems(&deep);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].message.contains("nests deeper than 64 levels"),
        "{found:#?}"
    );
    assert_eq!(found[0].line, 8);
    // Block mappings nested deeper than the limit.
    let mut block = format!("{HEAD}    s:\n      type: tosca.nodes.Site\n      properties:\n");
    for i in 0..100 {
        block.push_str(&format!("{}k{i}:\n", " ".repeat(8 + 2 * i)));
    }
    let found = problems(&block);
    assert!(found[0].message.contains("nests deeper"), "{found:#?}");
    // Sequences of sequences on one line.
    let dashes = format!(
        "{HEAD}    s:\n      type: tosca.nodes.Site\n{}x\n",
        "- ".repeat(200)
    );
    let found = problems(&dashes);
    assert!(found[0].message.contains("nests deeper"), "{found:#?}");
}
