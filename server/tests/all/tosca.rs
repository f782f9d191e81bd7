//! TOSCA recipes: every core node type loads, re-applies as a no-op, deletes and re-applies;
//! every kind of recipe error is reported with file, line and node, and writes nothing.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::TestApp;
use serde_json::{Value, json};
use server::store::Actor;
use server::tosca::{self, Entry, Mode, Problem, Source, ToscaError};

fn core_recipe() -> Source {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configurations/test/recipes/core.yaml"
    );
    Source {
        name: "core.yaml".into(),
        text: std::fs::read_to_string(path).expect("core recipe"),
    }
}

fn source(text: &str) -> Source {
    Source {
        name: "r.yaml".into(),
        text: text.to_string(),
    }
}

async fn run(app: &TestApp, sources: &[Source], mode: Mode, dry_run: bool) -> Result<Vec<Entry>, ToscaError> {
    let recipe = tosca::parse(app::registry::registry(), sources).map_err(ToscaError::Problems)?;
    tosca::run(&app.store, Actor::System, &recipe, mode, dry_run).await
}

fn actions(entries: &[Entry]) -> Vec<(String, &'static str)> {
    entries
        .iter()
        .map(|e| (e.node.clone(), e.action.as_str()))
        .collect()
}

fn all(entries: &[Entry], action: &str) -> bool {
    entries.iter().all(|e| e.action.as_str() == action)
}

/// Row counts of the tables the core recipe writes (live rows only).
async fn live_counts(app: &TestApp) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for table in [
        "core_site",
        "core_user",
        "core_slice",
        "core_instance",
        "core_network",
        "core_networkslice",
        "core_siteprivilege",
        "core_sliceprivilege",
        "core_userdashboardview",
        "core_sitedeployment",
        "core_flavordeployment",
        "core_imagedeployments",
        "core_tenant",
        "core_service",
        "core_node",
        "core_controller",
        "core_deployment",
        "core_image",
        "core_dashboardview",
        "core_networktemplate",
    ] {
        let sql = server::db::Sql::new(format!("SELECT COUNT(*) FROM {table} WHERE NOT deleted"));
        let rows = app
            .store
            .db()
            .fetch(&sql, &[app::registry::SqlType::Int])
            .await
            .expect("count");
        out.push((table.to_string(), rows[0][0].as_int().unwrap()));
    }
    out
}

async fn one(app: &TestApp, path: &str) -> Value {
    let (s, v) = app.get(path).await;
    assert_eq!(s, StatusCode::OK, "{path}: {v}");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{path}: {v}");
    v[0].clone()
}

both!(
    every_core_type_loads_reapplies_and_deletes,
    async |app: &TestApp| {
        let sources = [core_recipe()];
        let before = live_counts(app).await;

        // A dry run plans every node as a create and writes nothing.
        let plan = run(app, &sources, Mode::Apply, true).await.expect("dry run");
        assert_eq!(plan.len(), 19, "{:?}", actions(&plan));
        assert!(all(&plan, "create"), "{:?}", actions(&plan));
        assert_eq!(live_counts(app).await, before, "a dry run wrote");

        let applied = run(app, &sources, Mode::Apply, false).await.expect("apply");
        assert_eq!(
            actions(&applied),
            actions(&plan),
            "the dry run's plan is what apply did"
        );

        // What the relationships and capabilities wrote.
        let site = one(app, "/xos/sites/?login_base=testsite&no_hyperlinks=1").await;
        assert_eq!(site["name"], "Test Site", "display_name sets the site's name");
        assert_eq!(site["abbreviated_name"], "testsite");
        let dep = one(app, "/xos/deployments/?name=test-deployment&no_hyperlinks=1").await;
        let ctl = one(app, "/xos/controllers/?name=test-controller&no_hyperlinks=1").await;
        assert_eq!(ctl["deployment"], dep["id"]);
        let sd = one(
            app,
            &format!("/xos/sitedeployments/?site={}&no_hyperlinks=1", site["id"]),
        )
        .await;
        assert_eq!(sd["deployment"], dep["id"]);
        assert_eq!(
            sd["controller"], ctl["id"],
            "nested UsesController sets the controller"
        );
        let node = one(app, "/xos/nodes/?name=test-node-1&no_hyperlinks=1").await;
        assert_eq!(node["site_deployment"], sd["id"]);
        let user = one(app, "/xos/users/?email=testuser@example.org&no_hyperlinks=1").await;
        assert_eq!(user["site"], site["id"]);
        let (_, privs) = app
            .get(&format!(
                "/xos/siteprivileges/?user={}&no_hyperlinks=1",
                user["id"]
            ))
            .await;
        assert_eq!(privs.as_array().unwrap().len(), 2, "pi and tech: {privs}");
        let (_, slice_privs) = app
            .get(&format!(
                "/xos/slice_privileges/?user={}&no_hyperlinks=1",
                user["id"]
            ))
            .await;
        assert_eq!(slice_privs.as_array().unwrap().len(), 2, "{slice_privs}");
        let (_, dashboards) = app
            .get(&format!(
                "/xos/userdashboardviews/?user={}&ordering=order&no_hyperlinks=1",
                user["id"]
            ))
            .await;
        let orders: Vec<i64> = dashboards
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["order"].as_i64().unwrap())
            .collect();
        assert_eq!(orders, vec![10, 20]);
        let vm = one(app, "/xos/instances/?name=test-vm-1&no_hyperlinks=1").await;
        let flavor = one(app, &format!("/xos/flavors/?id={}", vm["flavor"])).await;
        assert_eq!(
            flavor["name"], "m1.medium",
            "2 CPUs and 3 GB pick the smallest fitting flavor"
        );
        let image = one(app, &format!("/xos/images/?id={}", vm["image"])).await;
        assert_eq!(image["name"], "test-ubuntu-14.04");
        assert_eq!(vm["node"], node["id"]);
        let container = one(app, "/xos/instances/?name=test-container-1&no_hyperlinks=1").await;
        assert_eq!(container["isolation"], "container");
        let net = one(app, "/xos/networks/?name=testsite_net1&no_hyperlinks=1").await;
        assert_eq!(net["permit_all_slices"], true, "the TOSCA default");
        let (_, netslices) = app
            .get(&format!(
                "/xos/networkslices/?network={}&no_hyperlinks=1",
                net["id"]
            ))
            .await;
        assert_eq!(netslices.as_array().unwrap().len(), 2, "{netslices}");
        let sub = one(app, "/xos/services/?name=test-subscriber-service&no_hyperlinks=1").await;
        let coarse = one(
            app,
            &format!("/xos/tenants/?subscriber_service={}&no_hyperlinks=1", sub["id"]),
        )
        .await;
        assert_eq!(coarse["kind"], "coarse");
        let (_, fd) = app
            .get(&format!("/xos/flavordeployments/?deployment={}", dep["id"]))
            .await;
        assert_eq!(fd.as_array().unwrap().len(), 2);

        // Re-applying changes nothing: same rows, same versions.
        let counts = live_counts(app).await;
        let again = run(app, &sources, Mode::Apply, false).await.expect("re-apply");
        assert!(all(&again, "unchanged"), "{:?}", actions(&again));
        assert_eq!(live_counts(app).await, counts);

        // An edited property updates exactly that node.
        let edited = Source {
            name: "core.yaml".into(),
            text: sources[0]
                .text
                .replace("description: The first test slice", "description: Edited"),
        };
        let updated = run(app, &[edited], Mode::Apply, false).await.expect("update");
        let changed: Vec<_> = updated
            .iter()
            .filter(|e| e.action.as_str() != "unchanged")
            .collect();
        assert_eq!(changed.len(), 1, "{:?}", actions(&updated));
        assert_eq!(changed[0].node, "testsite_slice1");
        assert_eq!(changed[0].changes, vec!["description".to_string()]);

        // Delete removes everything, dependents first; deleting again finds nothing.
        let deleted = run(app, &sources, Mode::Delete, false).await.expect("delete");
        assert!(all(&deleted, "delete"), "{:?}", actions(&deleted));
        assert_eq!(
            deleted.first().map(|e| e.node.as_str()),
            Some("testadmin@example.org")
        );
        assert_eq!(live_counts(app).await, before, "delete left rows behind");
        let absent = run(app, &sources, Mode::Delete, false)
            .await
            .expect("delete again");
        assert!(all(&absent, "absent"), "{:?}", actions(&absent));

        // And the recipe applies again after a delete.
        let recreated = run(app, &sources, Mode::Apply, false).await.expect("re-create");
        assert!(all(&recreated, "create"), "{:?}", actions(&recreated));
        assert_eq!(live_counts(app).await, counts);
    }
);

/// Parse problems, in the recipe's file, at the expected line.
fn problems(text: &str) -> Vec<Problem> {
    match tosca::parse(app::registry::registry(), &[source(text)]) {
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

const HEAD: &str =
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

both!(
    failing_nodes_are_all_reported_and_nothing_is_written,
    async |app: &TestApp| {
        let before = live_counts(app).await;
        let text = format!(
            "{HEAD}    good:\n      type: tosca.nodes.Site\n    bad_url:\n      type: tosca.nodes.Site\n      properties:\n        site_url: not a url\n    badslice:\n      type: tosca.nodes.Slice\n      properties:\n        max_instances: -3\n      requirements:\n        - site:\n            node: good\n            relationship: tosca.relationships.MemberOfSite\n    good_child:\n      type: tosca.nodes.Slice\n      requirements:\n        - site:\n            node: bad_url\n            relationship: tosca.relationships.MemberOfSite\n"
        );
        let err = run(app, &[source(&text)], Mode::Apply, false)
            .await
            .expect_err("invalid");
        let ToscaError::Problems(found) = err else {
            panic!("{err}")
        };
        let summary: Vec<(usize, Option<String>)> = found.iter().map(|p| (p.line, p.node.clone())).collect();
        assert_eq!(
            summary,
            vec![
                (9, Some("bad_url".to_string())),
                (13, Some("badslice".to_string())),
                (18, Some("good_child".to_string())),
            ],
            "{found:#?}"
        );
        assert!(found[0].message.contains("site_url"), "{found:#?}");
        assert!(found[1].message.contains("max_instances"), "{found:#?}");
        // The slice-name rule is a model rule: as in DRF it runs once every field is valid.
        assert!(
            !found[1].message.contains("must begin with"),
            "model rules wait for valid fields: {found:#?}"
        );
        assert!(
            found[2].message.contains("requires 'bad_url', which failed"),
            "{found:#?}"
        );
        assert_eq!(live_counts(app).await, before, "a failed recipe wrote");

        // References given by name that do not exist.
        let text = format!(
            "{HEAD}    s:\n      type: tosca.nodes.Site\n    s_one:\n      type: tosca.nodes.Slice\n      properties:\n        default_flavor: m9.huge\n      requirements:\n        - site:\n            node: s\n            relationship: tosca.relationships.MemberOfSite\n"
        );
        let Err(ToscaError::Problems(found)) = run(app, &[source(&text)], Mode::Apply, false).await else {
            panic!("accepted an unknown flavor")
        };
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].line, 9);
        assert!(found[0].message.contains("no flavor 'm9.huge'"), "{found:#?}");
        assert_eq!(live_counts(app).await, before);
    }
);

both!(no_create_no_update_and_no_delete, async |app: &TestApp| {
    let text = |extra: &str| {
        format!(
            "{HEAD}    mysite:\n      type: tosca.nodes.Site\n      properties:\n        display_name: Renamed\n{extra}"
        )
    };
    // The bootstrap site exists: no-update leaves it alone, no-delete keeps it.
    let e = run(
        app,
        &[source(&text("        no-update: true\n"))],
        Mode::Apply,
        false,
    )
    .await
    .unwrap();
    assert_eq!(e[0].action.as_str(), "unchanged");
    let site = one(app, "/xos/sites/?login_base=mysite").await;
    assert_ne!(site["name"], "Renamed");
    let e = run(
        app,
        &[source(&text("        no-delete: true\n"))],
        Mode::Delete,
        false,
    )
    .await
    .unwrap();
    assert_eq!(e[0].action.as_str(), "kept");
    one(app, "/xos/sites/?login_base=mysite").await;
    // no-create: a missing object stays missing.
    let text = format!(
        "{HEAD}    nosite:\n      type: tosca.nodes.Site\n      properties:\n        no-create: true\n"
    );
    let e = run(app, &[source(&text)], Mode::Apply, false).await.unwrap();
    assert_eq!(e[0].action.as_str(), "absent");
    let (_, v) = app.get("/xos/sites/?login_base=nosite").await;
    assert_eq!(v, json!([]));
});

both!(recipes_run_with_the_users_permissions, async |app: &TestApp| {
    app.make_user("plain@example.org", "pw-plain-123").await;
    let actor = tosca::actor_for(&app.store, "plain@example.org").await.unwrap();
    let recipe = tosca::parse(
        app::registry::registry(),
        &[source(&format!(
            "{HEAD}    newsite:\n      type: tosca.nodes.Site\n"
        ))],
    )
    .unwrap();
    let Err(ToscaError::Problems(found)) = tosca::run(&app.store, actor, &recipe, Mode::Apply, false).await
    else {
        panic!("a plain user created a site")
    };
    assert!(found[0].message.contains("permission denied"), "{found:#?}");
});

fn yaml_request(path: &str, who: (&str, &str), body: &str) -> Request<Body> {
    let mut req = common::build(Method::POST, path, Some(who), None);
    *req.body_mut() = Body::from(body.to_string());
    req.headers_mut()
        .insert(header::CONTENT_TYPE, "application/x-yaml".parse().unwrap());
    req
}

both!(
    the_http_endpoint_runs_recipes_for_admins,
    async |app: &TestApp| {
        let recipe = format!(
            "{HEAD}    api-image:\n      type: tosca.nodes.Image\n      properties:\n        disk_format: raw\n        container_format: bare\n"
        );
        let path = "/api/utility/tosca/run/";
        // Dry run: the plan, nothing written.
        let (s, v) = app.post(path, json!({"recipe": recipe, "dry_run": true})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["entries"][0]["action"], "create");
        assert_eq!(v["dry_run"], true);
        let (_, images) = app.get("/xos/images/?name=api-image").await;
        assert_eq!(images, json!([]));
        // Apply, then again as YAML: unchanged.
        let (s, v) = app.post(path, json!({"recipe": recipe})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        one(app, "/xos/images/?name=api-image").await;
        let (s, _, v) = app.call(yaml_request(path, common::ADMIN, &recipe)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["entries"][0]["action"], "unchanged");
        // Delete.
        let (s, v) = app
            .post(path, json!({"recipe": recipe, "action": "delete"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["entries"][0]["action"], "delete");
        // A bad recipe: 400 with every problem located.
        let (s, v) = app
            .post(
                path,
                json!({"recipe": format!("{HEAD}    w:\n      type: tosca.nodes.Widget\n")}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["errors"][0]["line"], 5);
        assert_eq!(v["errors"][0]["node"], "w");
        // Bad requests.
        let (s, v) = app.post(path, json!({})).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["recipe"].is_array(), "{v}");
        let (s, v) = app
            .post(path, json!({"recipe": recipe, "action": "explode"}))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        // Not an admin: 403; anonymous: 401.
        app.make_user("plain@example.org", "pw-plain-123").await;
        let (s, _) = app
            .req(
                Method::POST,
                path,
                Some(("plain@example.org", "pw-plain-123")),
                Some(json!({"recipe": recipe})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .req(Method::POST, path, None, Some(json!({"recipe": recipe})))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
);

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
    // The ordinary recipes of the configurations are far from it.
    for f in [
        "configurations/devel/recipes/devel.yaml",
        "configurations/devel/recipes/helloworld.yaml",
    ] {
        let text = std::fs::read_to_string(format!("{}/../{f}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let parsed = tosca::parse(app::registry::registry(), &[source(&text)]);
        assert!(parsed.is_ok(), "{f}: {:?}", parsed.err());
    }
}
