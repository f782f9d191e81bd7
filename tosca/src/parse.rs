//! Reading recipes: YAML with line numbers (`marked-yaml`), checked against the registry's
//! TOSCA annotations, and put in dependency order. Every problem found is reported, not only the
//! first, each with its file, line and node.

use crate::Problem;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{LoadError, LoaderOptions, Node};
use registry::{Field, FieldKind, Model, Registry, Tosca, ToscaEffect, ToscaLink, ToscaRequirement};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};

/// A recipe file's name (for messages) and text.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
}

/// A property value as the database will take it.
#[derive(Clone, Debug, PartialEq)]
pub enum PropValue {
    Json(Json),
    /// A foreign key given by the target's key (`default_flavor: m1.small`).
    Ref {
        model: String,
        key: String,
    },
}

/// One property of a node template.
#[derive(Clone, Debug)]
pub struct Property {
    /// As the recipe spells it.
    pub property: String,
    /// The field it sets.
    pub field: String,
    pub value: PropValue,
    pub line: usize,
}

/// A requirement of a node template, matched to the relationship its type declares.
#[derive(Clone, Debug)]
pub struct Requirement {
    /// The requirement's name in the recipe (`site`).
    pub name: String,
    /// The target node template.
    pub target: String,
    pub line: usize,
    pub spec: &'static ToscaRequirement,
    /// Nested requirements setting fields of a link row: (field, target node, line).
    pub nested: Vec<(String, String, usize)>,
}

/// A list property kept as link rows.
#[derive(Clone, Debug)]
pub struct ListProperty {
    pub property: String,
    pub link: &'static ToscaLink,
    pub names: Vec<String>,
    pub line: usize,
}

/// A capability's properties (`host: {num_cpus: 1}`): name → (value, line).
#[derive(Clone, Debug, Default)]
pub struct Capability {
    pub line: usize,
    pub properties: BTreeMap<String, (String, usize)>,
}

/// A node template, checked.
#[derive(Clone, Debug)]
pub struct Template {
    pub name: String,
    pub file: String,
    pub line: usize,
    /// The node type as written (`tosca.nodes.Compute.Container`).
    pub type_name: String,
    pub model: &'static Model,
    pub tosca: &'static Tosca,
    /// Values the node type fixes (an alias's).
    pub fixed: Vec<(String, Json)>,
    pub properties: Vec<Property>,
    pub no_create: bool,
    pub no_update: bool,
    pub no_delete: bool,
    pub requirements: Vec<Requirement>,
    pub lists: Vec<ListProperty>,
    pub capabilities: BTreeMap<String, Capability>,
}

impl Template {
    /// A problem located at this node.
    pub fn problem(&self, line: usize, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.clone(),
            line,
            node: Some(self.name.clone()),
            message: message.into(),
        }
    }

    /// The names of the node templates this one needs first.
    pub fn depends_on(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().flat_map(|r| {
            std::iter::once(r.target.as_str()).chain(r.nested.iter().map(|(_, t, _)| t.as_str()))
        })
    }
}

/// Node templates in dependency order (every node after the nodes it requires).
#[derive(Clone, Debug, Default)]
pub struct Recipe {
    pub templates: Vec<Template>,
}

/// Base properties every node type has (XOS's `no-create`, `no-update`, `no-delete`).
const FLAGS: [&str; 3] = ["no-create", "no-update", "no-delete"];
/// What the compute capabilities accept.
const HOST_PROPERTIES: [&str; 3] = ["num_cpus", "disk_size", "mem_size"];
const OS_PROPERTIES: [&str; 4] = ["architecture", "type", "distribution", "version"];

/// A requirement before the target's type is known.
struct RawRequirement {
    name: String,
    target: String,
    relationship: Option<String>,
    line: usize,
    nested: Vec<(String, Option<String>, usize)>,
}

/// Parse and check recipe files; several files form one recipe.
pub fn parse(reg: &'static Registry, sources: &[Source]) -> Result<Recipe, Vec<Problem>> {
    let types = node_types(reg);
    let mut problems = Vec::new();
    let mut templates: Vec<(Template, Vec<RawRequirement>)> = Vec::new();
    let mut seen: HashMap<String, (String, usize)> = HashMap::new();
    for (index, source) in sources.iter().enumerate() {
        let file = source.name.clone();
        if let Some(problem) = too_deep(&file, &source.text) {
            problems.push(problem);
            continue;
        }
        let options = LoaderOptions::default().error_on_duplicate_keys(true);
        let root = match marked_yaml::parse_yaml_with_options(index, &source.text, options) {
            Ok(root) => root,
            Err(e) => {
                problems.push(load_problem(&file, &e));
                continue;
            }
        };
        let Some(nodes) = node_templates(&file, &root, &mut problems) else {
            continue;
        };
        for (key, node) in nodes.iter() {
            let name = key.as_str().to_string();
            let line = scalar_line(key);
            if let Some((f, l)) = seen.get(&name) {
                problems.push(Problem {
                    file: file.clone(),
                    line,
                    node: Some(name.clone()),
                    message: format!("defined twice (first at {f}:{l})"),
                });
                continue;
            }
            seen.insert(name.clone(), (file.clone(), line));
            if let Some(t) = template(&types, &file, &name, line, node, &mut problems) {
                templates.push(t);
            }
        }
    }
    // Requirements need every node's type.
    let model_of: HashMap<String, &'static Model> =
        templates.iter().map(|(t, _)| (t.name.clone(), t.model)).collect();
    let mut checked = Vec::with_capacity(templates.len());
    for (mut t, raw) in templates {
        // A requirement that names the relationship but fails to resolve is reported once.
        let named: Vec<String> = raw.iter().filter_map(|r| r.relationship.clone()).collect();
        for r in raw {
            if let Some(req) = requirement(&t, &model_of, r, &mut problems) {
                t.requirements.push(req);
            }
        }
        for spec in t.tosca.requirements.iter().filter(|s| s.required) {
            if !t.requirements.iter().any(|r| std::ptr::eq(r.spec, spec))
                && !named.contains(&spec.relationship)
            {
                problems.push(t.problem(
                    t.line,
                    format!(
                        "{} requires a {} requirement to a {}",
                        t.type_name,
                        spec.relationship,
                        type_name_of(reg, &spec.target)
                    ),
                ));
            }
        }
        checked.push(t);
    }
    match order(checked) {
        Ok(templates) if problems.is_empty() => Ok(Recipe { templates }),
        Ok(_) => Err(sorted(problems)),
        Err(cycles) => {
            problems.extend(cycles);
            Err(sorted(problems))
        }
    }
}

fn sorted(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    problems
}

/// Node type name → (model, fixed values).
type NodeTypes = HashMap<&'static str, (&'static Model, &'static [(String, Json)])>;

/// Node type name → (model, fixed values).
fn node_types(reg: &'static Registry) -> NodeTypes {
    let mut out = HashMap::new();
    for m in &reg.models {
        if let Some(t) = &m.tosca {
            out.insert(t.node_type.as_str(), (m, &[][..]));
            for (alias, fixed) in &t.aliases {
                out.insert(alias.as_str(), (m, fixed.as_slice()));
            }
        }
    }
    out
}

fn type_name_of(reg: &Registry, model: &str) -> String {
    reg.model(model)
        .and_then(|m| m.tosca.as_ref())
        .map(|t| t.node_type.clone())
        .unwrap_or_else(|| model.to_string())
}

fn node_line(node: &Node) -> usize {
    node.span().start().map(|m| m.line()).unwrap_or(1)
}

fn scalar_line(node: &MarkedScalarNode) -> usize {
    node.span().start().map(|m| m.line()).unwrap_or(1)
}

/// How deeply a recipe may nest (block levels, `- ` entries and `[`/`{` flow collections
/// together). A TOSCA recipe needs about eight; the YAML loader builds its tree recursively, so a
/// hostile document nested thousands of levels deep must be refused before it is loaded.
pub const MAX_DEPTH: usize = 64;

/// The first line where `text` nests deeper than [`MAX_DEPTH`], as a problem. A conservative
/// scan of the text (quotes and comments skipped), not a YAML parse.
fn too_deep(file: &str, text: &str) -> Option<Problem> {
    let mut blocks: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if flow == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            let indent = line.len() - trimmed.len();
            while blocks.last().is_some_and(|&w| w >= indent) {
                blocks.pop();
            }
            blocks.push(indent);
        }
        let mut rest = trimmed;
        let mut dashes = 0;
        while let Some(r) = rest.strip_prefix("- ").or_else(|| (rest == "-").then_some("")) {
            dashes += 1;
            rest = r.trim_start();
        }
        let mut quote: Option<char> = None;
        let mut deepest = flow;
        for c in rest.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    flow += 1;
                    deepest = deepest.max(flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
        let depth = blocks.len() + dashes + deepest;
        if depth > MAX_DEPTH {
            return Some(Problem {
                file: file.to_string(),
                line: i + 1,
                node: None,
                message: format!("the recipe nests deeper than {MAX_DEPTH} levels"),
            });
        }
    }
    None
}

fn load_problem(file: &str, e: &LoadError) -> Problem {
    let (line, message) = match e {
        LoadError::TopLevelMustBeMapping(m) => (m.line(), "the recipe must be a mapping".to_string()),
        LoadError::TopLevelMustBeSequence(m) => (m.line(), "the recipe must be a mapping".to_string()),
        LoadError::UnexpectedAnchor(m) => (m.line(), "YAML anchors are not supported".to_string()),
        LoadError::MappingKeyMustBeScalar(m) => (m.line(), "mapping keys must be plain values".to_string()),
        LoadError::UnexpectedTag(m) => (m.line(), "YAML tags are not supported".to_string()),
        LoadError::ScanError(m, _) => {
            let text = e.to_string();
            let reason = text.split_once(": ").map(|(_, r)| r.to_string()).unwrap_or(text);
            (m.line(), format!("YAML syntax error: {reason}"))
        }
        LoadError::DuplicateKey(inner) => (
            scalar_line(&inner.key),
            format!(
                "duplicate key '{}' (first at line {})",
                inner.key.as_str(),
                scalar_line(&inner.prev_key)
            ),
        ),
        // A future marked-yaml error kind.
        #[allow(unreachable_patterns)]
        _ => (1, e.to_string()),
    };
    Problem {
        file: file.to_string(),
        line,
        node: None,
        message,
    }
}

/// The `topology_template.node_templates` mapping, after checking the top-level keys.
fn node_templates<'a>(
    file: &str,
    root: &'a Node,
    problems: &mut Vec<Problem>,
) -> Option<&'a MarkedMappingNode> {
    let at = |line: usize, message: String| Problem {
        file: file.to_string(),
        line,
        node: None,
        message,
    };
    let Some(top) = root.as_mapping() else {
        problems.push(at(node_line(root), "the recipe must be a mapping".into()));
        return None;
    };
    for (k, v) in top.iter() {
        match k.as_str() {
            "tosca_definitions_version" => {
                let version = v.as_scalar().map(|s| s.as_str()).unwrap_or_default();
                if version != "tosca_simple_yaml_1_0" {
                    problems.push(at(
                        node_line(v),
                        format!("unsupported tosca_definitions_version '{version}' (expected tosca_simple_yaml_1_0)"),
                    ));
                }
            }
            "description" | "imports" | "metadata" | "topology_template" => {}
            other => problems.push(at(
                scalar_line(k),
                format!(
                    "unknown top-level key '{other}' (expected tosca_definitions_version, description, imports, metadata, topology_template)"
                ),
            )),
        }
    }
    let Some(topology) = top.get_node("topology_template") else {
        problems.push(at(node_line(root), "the recipe has no topology_template".into()));
        return None;
    };
    let Some(topology) = topology.as_mapping() else {
        problems.push(at(
            node_line(topology),
            "topology_template must be a mapping".into(),
        ));
        return None;
    };
    for (k, _) in topology.iter() {
        if !matches!(k.as_str(), "node_templates" | "description") {
            problems.push(at(
                scalar_line(k),
                format!(
                    "unsupported key '{}' in topology_template (expected node_templates, description)",
                    k.as_str()
                ),
            ));
        }
    }
    match topology.get_node("node_templates") {
        Some(n) => match n.as_mapping() {
            Some(m) => Some(m),
            None => {
                problems.push(at(
                    node_line(n),
                    "node_templates must be a mapping of node names to templates".into(),
                ));
                None
            }
        },
        None => {
            problems.push(at(
                node_line(topology_node(root)),
                "topology_template has no node_templates".into(),
            ));
            None
        }
    }
}

fn topology_node(root: &Node) -> &Node {
    root.as_mapping()
        .and_then(|m| m.get_node("topology_template"))
        .unwrap_or(root)
}

/// One node template's type, properties and capabilities (requirements come later).
fn template(
    types: &NodeTypes,
    file: &str,
    name: &str,
    line: usize,
    node: &Node,
    problems: &mut Vec<Problem>,
) -> Option<(Template, Vec<RawRequirement>)> {
    let at = |line: usize, message: String| Problem {
        file: file.to_string(),
        line,
        node: Some(name.to_string()),
        message,
    };
    let Some(body) = node.as_mapping() else {
        problems.push(at(
            node_line(node),
            "a node template must be a mapping with a type".into(),
        ));
        return None;
    };
    let Some(type_node) = body.get_scalar("type") else {
        problems.push(at(line, "the node template has no type".into()));
        return None;
    };
    let type_name = type_node.as_str();
    let Some(&(model, fixed)) = types.get(type_name) else {
        let mut known: Vec<&str> = types.keys().copied().collect();
        known.sort_unstable();
        problems.push(at(
            scalar_line(type_node),
            format!("unknown node type '{type_name}' (known: {})", known.join(", ")),
        ));
        return None;
    };
    let tosca = model
        .tosca
        .as_ref()
        .expect("node types come from TOSCA annotations");
    let mut t = Template {
        name: name.to_string(),
        file: file.to_string(),
        line,
        type_name: type_name.to_string(),
        model,
        tosca,
        fixed: fixed.to_vec(),
        properties: Vec::new(),
        no_create: false,
        no_update: false,
        no_delete: false,
        requirements: Vec::new(),
        lists: Vec::new(),
        capabilities: BTreeMap::new(),
    };
    let mut raw = Vec::new();
    for (k, v) in body.iter() {
        match k.as_str() {
            "type" | "description" => {}
            "properties" => properties(&mut t, v, problems),
            "requirements" => raw = requirements(&t, v, problems),
            "capabilities" => capabilities(&mut t, v, problems),
            other => problems.push(at(
                scalar_line(k),
                format!("unknown key '{other}' (expected type, description, properties, requirements, capabilities)"),
            )),
        }
    }
    Some((t, raw))
}

fn properties(t: &mut Template, v: &Node, problems: &mut Vec<Problem>) {
    let Some(map) = v.as_mapping() else {
        problems.push(t.problem(node_line(v), "properties must be a mapping"));
        return;
    };
    for (k, value) in map.iter() {
        let property = k.as_str();
        let line = scalar_line(k);
        if FLAGS.contains(&property) {
            match value.as_scalar().and_then(|s| parse_bool(s.as_str())) {
                Some(b) => match property {
                    "no-create" => t.no_create = b,
                    "no-update" => t.no_update = b,
                    _ => t.no_delete = b,
                },
                None => {
                    problems.push(t.problem(line, format!("property '{property}' must be true or false")))
                }
            }
            continue;
        }
        if let Some((_, link)) = t.tosca.list_properties.iter().find(|(p, _)| p == property) {
            let names = match value {
                Node::Sequence(items) => items
                    .iter()
                    .filter_map(|i| i.as_scalar().map(|s| s.as_str().to_string()))
                    .collect::<Vec<_>>(),
                // XOS also took a comma-separated string.
                Node::Scalar(s) => s
                    .as_str()
                    .split(',')
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect(),
                Node::Mapping(_) => {
                    problems.push(t.problem(line, format!("property '{property}' must be a list of names")));
                    continue;
                }
            };
            t.lists.push(ListProperty {
                property: property.to_string(),
                link,
                names,
                line,
            });
            continue;
        }
        let field_name = t
            .tosca
            .renames
            .iter()
            .find(|(p, _)| p == property)
            .map(|(_, f)| f.as_str())
            .unwrap_or(property);
        let field = t
            .model
            .field_named(field_name)
            .filter(|f| f.is_writable() && f.name != "id");
        let Some(field) = field else {
            problems.push(t.problem(
                line,
                format!(
                    "unknown property '{property}' for {} ({})",
                    t.type_name,
                    known_properties(t).join(", ")
                ),
            ));
            continue;
        };
        if field.name == t.tosca.key {
            problems.push(t.problem(
                line,
                format!(
                    "property '{property}' is the node's name: name the node template '{}' instead",
                    value.as_scalar().map(|s| s.as_str()).unwrap_or_default()
                ),
            ));
            continue;
        }
        let Some(scalar) = value.as_scalar() else {
            problems.push(t.problem(line, format!("property '{property}' must be a single value")));
            continue;
        };
        match coerce(field, scalar.as_str()) {
            Ok(value) => t.properties.push(Property {
                property: property.to_string(),
                field: field.name.clone(),
                value,
                line,
            }),
            Err(m) => problems.push(t.problem(line, format!("property '{property}': {m}"))),
        }
    }
}

/// The properties a node type accepts, for messages.
fn known_properties(t: &Template) -> Vec<String> {
    let mut out: Vec<String> = t
        .model
        .fields
        .iter()
        .filter(|f| f.is_writable() && f.name != "id" && f.name != t.tosca.key)
        .map(|f| {
            t.tosca
                .renames
                .iter()
                .find(|(_, field)| *field == f.name)
                .map(|(p, _)| p.clone())
                .unwrap_or_else(|| f.name.clone())
        })
        .collect();
    out.extend(t.tosca.list_properties.iter().map(|(p, _)| p.clone()));
    out.extend(FLAGS.iter().map(|f| f.to_string()));
    out.sort();
    out
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A YAML scalar as the field's type (YAML scalars arrive as text).
fn coerce(field: &Field, raw: &str) -> Result<PropValue, String> {
    let null = matches!(raw, "~" | "null" | "Null" | "NULL");
    if null && (field.null || matches!(field.kind, FieldKind::ForeignKey { .. })) {
        return Ok(PropValue::Json(Json::Null));
    }
    Ok(PropValue::Json(match &field.kind {
        FieldKind::Boolean | FieldKind::NullBoolean => {
            Json::Bool(parse_bool(raw).ok_or_else(|| format!("'{raw}' is not true or false"))?)
        }
        FieldKind::Integer | FieldKind::PositiveInteger => Json::from(
            raw.parse::<i64>()
                .map_err(|_| format!("'{raw}' is not a whole number"))?,
        ),
        FieldKind::Float => {
            let f: f64 = raw.parse().map_err(|_| format!("'{raw}' is not a number"))?;
            serde_json::Number::from_f64(f)
                .map(Json::Number)
                .ok_or_else(|| format!("'{raw}' is not a finite number"))?
        }
        FieldKind::ForeignKey { to, .. } => {
            return Ok(PropValue::Ref {
                model: to.clone(),
                key: raw.to_string(),
            });
        }
        _ => Json::String(raw.to_string()),
    }))
}

fn requirements(t: &Template, v: &Node, problems: &mut Vec<Problem>) -> Vec<RawRequirement> {
    let Some(items) = v.as_sequence() else {
        problems.push(t.problem(node_line(v), "requirements must be a list"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        if let Some(r) = raw_requirement(t, item, problems) {
            out.push(r);
        }
    }
    out
}

/// `- name: {node: target, relationship: tosca.relationships.X, requirements: [...]}` or the
/// short form `- name: target`.
fn raw_requirement(t: &Template, item: &Node, problems: &mut Vec<Problem>) -> Option<RawRequirement> {
    let entry = item.as_mapping().filter(|m| m.len() == 1);
    let Some((key, body)) = entry.and_then(|m| m.iter().next()) else {
        problems.push(t.problem(
            node_line(item),
            "each requirement must be a single 'name: {node: …, relationship: …}' entry",
        ));
        return None;
    };
    let line = scalar_line(key);
    let (target, relationship, nested) = match body {
        Node::Scalar(s) => (s.as_str().to_string(), None, Vec::new()),
        Node::Mapping(m) => {
            let mut nested = Vec::new();
            for (k, v) in m.iter() {
                match k.as_str() {
                    "node" | "relationship" | "capability" => {}
                    "requirements" => match v.as_sequence() {
                        Some(items) => {
                            for i in items.iter() {
                                if let Some(r) = raw_requirement(t, i, problems) {
                                    nested.push((r.target, r.relationship, r.line));
                                }
                            }
                        }
                        None => problems.push(t.problem(node_line(v), "requirements must be a list")),
                    },
                    other => problems.push(t.problem(
                        scalar_line(k),
                        format!(
                            "unknown key '{other}' in requirement (expected node, relationship, requirements)"
                        ),
                    )),
                }
            }
            let Some(node) = m.get_scalar("node") else {
                problems.push(t.problem(line, format!("requirement '{}' names no node", key.as_str())));
                return None;
            };
            let relationship = m.get_scalar("relationship").map(|r| {
                let r = r.as_str();
                r.strip_prefix("tosca.relationships.").unwrap_or(r).to_string()
            });
            (node.as_str().to_string(), relationship, nested)
        }
        Node::Sequence(_) => {
            problems.push(t.problem(line, format!("requirement '{}' must name a node", key.as_str())));
            return None;
        }
    };
    Some(RawRequirement {
        name: key.as_str().to_string(),
        target,
        relationship,
        line,
        nested,
    })
}

/// Match a requirement to the relationship the node type declares for the target's type.
fn requirement(
    t: &Template,
    model_of: &HashMap<String, &'static Model>,
    r: RawRequirement,
    problems: &mut Vec<Problem>,
) -> Option<Requirement> {
    let Some(target) = model_of.get(&r.target) else {
        problems.push(t.problem(
            r.line,
            format!(
                "requirement '{}' names node '{}', which the recipe does not define",
                r.name, r.target
            ),
        ));
        return None;
    };
    // A node of an extending model (an HpcService) also fits a requirement on its parent
    // (a Service), as its row is one: the exact type is preferred.
    let parent = target.extends.as_ref().map(|e| e.parent.as_str());
    let (name, relationship) = (target.name.as_str(), r.relationship.as_deref());
    let fits = |exact: bool| {
        move |s: &&'static ToscaRequirement| {
            let model_fits = if exact {
                s.target == name
            } else {
                Some(s.target.as_str()) == parent
            };
            model_fits && relationship.is_none_or(|rel| rel == s.relationship)
        }
    };
    let mut candidates: Vec<&'static ToscaRequirement> =
        t.tosca.requirements.iter().filter(fits(true)).collect();
    if candidates.is_empty() {
        candidates = t.tosca.requirements.iter().filter(fits(false)).collect();
    }
    let spec = match candidates.as_slice() {
        [one] => *one,
        [] => {
            let accepted: Vec<String> = t
                .tosca
                .requirements
                .iter()
                .map(|s| format!("{} → {}", s.relationship, s.target))
                .collect();
            let rel = r.relationship.as_deref().unwrap_or("a relationship");
            problems.push(t.problem(
                r.line,
                format!(
                    "{} has no {rel} requirement to a {} ('{}'){}",
                    t.type_name,
                    target.name,
                    r.target,
                    if accepted.is_empty() {
                        "; it takes no requirements".to_string()
                    } else {
                        format!("; it accepts {}", accepted.join(", "))
                    }
                ),
            ));
            return None;
        }
        _ => {
            problems.push(t.problem(
                r.line,
                format!(
                    "requirement '{}' must name its relationship (several fit)",
                    r.name
                ),
            ));
            return None;
        }
    };
    let mut nested = Vec::new();
    let declared: &[(String, String, String)] = match &spec.effect {
        ToscaEffect::Link(link) => &link.nested,
        _ => &[],
    };
    for (target_name, rel, line) in r.nested {
        let Some(target_model) = model_of.get(&target_name) else {
            problems.push(t.problem(
                line,
                format!("nested requirement names node '{target_name}', which the recipe does not define"),
            ));
            continue;
        };
        let found = declared.iter().find(|(relationship, model, _)| {
            *model == target_model.name && rel.as_ref().is_none_or(|r| r == relationship)
        });
        match found {
            Some((_, _, field)) => nested.push((field.clone(), target_name, line)),
            None => problems.push(t.problem(
                line,
                format!(
                    "a {} requirement takes no nested {} requirement to a {}",
                    spec.relationship,
                    rel.as_deref().unwrap_or("relationship"),
                    target_model.name
                ),
            )),
        }
    }
    Some(Requirement {
        name: r.name,
        target: r.target,
        line: r.line,
        spec,
        nested,
    })
}

fn capabilities(t: &mut Template, v: &Node, problems: &mut Vec<Problem>) {
    let Some(map) = v.as_mapping() else {
        problems.push(t.problem(node_line(v), "capabilities must be a mapping"));
        return;
    };
    for (k, body) in map.iter() {
        let name = k.as_str();
        let line = scalar_line(k);
        let accepted: &[&str] = match (t.tosca.capabilities.as_deref(), name) {
            (Some("compute"), "host") => &HOST_PROPERTIES,
            (Some("compute"), "os") => &OS_PROPERTIES,
            _ => {
                let known = if t.tosca.capabilities.as_deref() == Some("compute") {
                    "host, os"
                } else {
                    "none"
                };
                problems.push(t.problem(
                    line,
                    format!(
                        "unknown capability '{name}' for {} (accepted: {known})",
                        t.type_name
                    ),
                ));
                continue;
            }
        };
        let mut cap = Capability {
            line,
            ..Capability::default()
        };
        let props = body
            .as_mapping()
            .and_then(|m| m.get_node("properties"))
            .and_then(Node::as_mapping);
        let Some(props) = props else {
            problems.push(t.problem(line, format!("capability '{name}' needs a properties mapping")));
            continue;
        };
        for (pk, pv) in props.iter() {
            let pline = scalar_line(pk);
            if !accepted.contains(&pk.as_str()) {
                problems.push(t.problem(
                    pline,
                    format!(
                        "unknown property '{}' of capability '{name}' (accepted: {})",
                        pk.as_str(),
                        accepted.join(", ")
                    ),
                ));
                continue;
            }
            match pv.as_scalar() {
                Some(s) => {
                    cap.properties
                        .insert(pk.as_str().to_string(), (s.as_str().to_string(), pline));
                }
                None => problems.push(t.problem(pline, format!("'{}' must be a single value", pk.as_str()))),
            }
        }
        t.capabilities.insert(name.to_string(), cap);
    }
}

/// Every node after the nodes it requires; a cycle is reported with its path.
fn order(templates: Vec<Template>) -> Result<Vec<Template>, Vec<Problem>> {
    let index: HashMap<String, usize> = templates
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let deps: Vec<Vec<usize>> = templates
        .iter()
        .map(|t| t.depends_on().filter_map(|n| index.get(n).copied()).collect())
        .collect();
    // 0 = not visited, 1 = on the current path, 2 = done.
    let mut state = vec![0u8; templates.len()];
    let mut out = Vec::with_capacity(templates.len());
    let mut problems = Vec::new();
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        state: &mut [u8],
        path: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        match state[i] {
            2 => return None,
            1 => {
                let start = path.iter().position(|&p| p == i).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(i);
                return Some(cycle);
            }
            _ => {}
        }
        state[i] = 1;
        path.push(i);
        for &d in &deps[i] {
            if let Some(cycle) = visit(d, deps, state, path, out) {
                return Some(cycle);
            }
        }
        path.pop();
        state[i] = 2;
        out.push(i);
        None
    }
    for i in 0..templates.len() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(i, &deps, &mut state, &mut path, &mut out) {
            // Nodes left on the abandoned path are visited again later.
            for s in state.iter_mut().filter(|s| **s == 1) {
                *s = 0;
            }
            let t = &templates[cycle[0]];
            let names: Vec<&str> = cycle.iter().map(|&c| templates[c].name.as_str()).collect();
            problems.push(t.problem(
                t.line,
                format!("requirements form a cycle: {}", names.join(" → ")),
            ));
            // Mark the cycle done so each cycle is reported once.
            for &c in &cycle {
                state[c] = 2;
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut slots: Vec<Option<Template>> = templates.into_iter().map(Some).collect();
    Ok(out.into_iter().filter_map(|i| slots[i].take()).collect())
}
