//! TOSCA recipes applied through the store: every core node type loads, re-applies as a no-op,
//! deletes and re-applies; failing nodes are all reported and nothing is written; the
//! no-create/no-update/no-delete directives; recipes run with their user's permissions.

use crate::common;
use crate::parse::{HEAD, source};

use common::TestStore;
use registry::SqlType;
use store::db::{Sql, Value};
use store::{Actor, Record};
use tosca::{Entry, Mode, Source, ToscaError};

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

async fn run(t: &TestStore, sources: &[Source], mode: Mode, dry_run: bool) -> Result<Vec<Entry>, ToscaError> {
    let recipe = tosca::parse(registry::registry(), sources).map_err(ToscaError::Problems)?;
    tosca::run(&t.store, Actor::System, &recipe, mode, dry_run).await
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
async fn live_counts(t: &TestStore) -> Vec<(String, i64)> {
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
        let sql = Sql::new(format!("SELECT COUNT(*) FROM {table} WHERE NOT deleted"));
        let rows = t.store.db().fetch(&sql, &[SqlType::Int]).await.expect("count");
        out.push((table.to_string(), rows[0][0].as_int().unwrap()));
    }
    out
}

/// The live objects of the model served at `/xos/<plural>/` whose `field` is `value` (what
/// `/xos/<plural>/?<field>=<value>` lists for an admin).
async fn rows(t: &TestStore, plural: &str, field: &str, value: Value) -> Vec<Record> {
    let model = t
        .store
        .registry()
        .by_plural(plural)
        .unwrap_or_else(|| panic!("no model is served at {plural}"));
    t.store
        .find(&Actor::System, model, field, value)
        .await
        .expect("find")
}

/// The one such object.
async fn one(t: &TestStore, plural: &str, field: &str, value: Value) -> Record {
    let found = rows(t, plural, field, value.clone()).await;
    assert_eq!(found.len(), 1, "{plural} with {field} = {value:?}: {found:?}");
    found.into_iter().next().unwrap()
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

both!(
    every_core_type_loads_reapplies_and_deletes,
    async |t: &TestStore| {
        let sources = [core_recipe()];
        let before = live_counts(t).await;

        // A dry run plans every node as a create and writes nothing.
        let plan = run(t, &sources, Mode::Apply, true).await.expect("dry run");
        assert_eq!(plan.len(), 19, "{:?}", actions(&plan));
        assert!(all(&plan, "create"), "{:?}", actions(&plan));
        assert_eq!(live_counts(t).await, before, "a dry run wrote");

        let applied = run(t, &sources, Mode::Apply, false).await.expect("apply");
        assert_eq!(
            actions(&applied),
            actions(&plan),
            "the dry run's plan is what apply did"
        );

        // What the relationships and capabilities wrote.
        let site = one(t, "sites", "login_base", text("testsite")).await;
        assert_eq!(
            site.get_str("name"),
            Some("Test Site"),
            "display_name sets the site's name"
        );
        assert_eq!(site.get_str("abbreviated_name"), Some("testsite"));
        let dep = one(t, "deployments", "name", text("test-deployment")).await;
        let ctl = one(t, "controllers", "name", text("test-controller")).await;
        assert_eq!(ctl.get_int("deployment"), Some(dep.id()));
        let sd = one(t, "sitedeployments", "site", Value::Int(site.id())).await;
        assert_eq!(sd.get_int("deployment"), Some(dep.id()));
        assert_eq!(
            sd.get_int("controller"),
            Some(ctl.id()),
            "nested UsesController sets the controller"
        );
        let node = one(t, "nodes", "name", text("test-node-1")).await;
        assert_eq!(node.get_int("site_deployment"), Some(sd.id()));
        let user = one(t, "users", "email", text("testuser@example.org")).await;
        assert_eq!(user.get_int("site"), Some(site.id()));
        let privs = rows(t, "siteprivileges", "user", Value::Int(user.id())).await;
        assert_eq!(privs.len(), 2, "pi and tech: {privs:?}");
        let slice_privs = rows(t, "slice_privileges", "user", Value::Int(user.id())).await;
        assert_eq!(slice_privs.len(), 2, "{slice_privs:?}");
        let dashboards = rows(t, "userdashboardviews", "user", Value::Int(user.id())).await;
        let mut orders: Vec<i64> = dashboards.iter().map(|d| d.get_int("order").unwrap()).collect();
        orders.sort();
        assert_eq!(orders, vec![10, 20]);
        let vm = one(t, "instances", "name", text("test-vm-1")).await;
        let flavor = t
            .store
            .get(
                &Actor::System,
                t.store.model("Flavor"),
                vm.get_int("flavor").expect("a flavor"),
            )
            .await
            .unwrap();
        assert_eq!(
            flavor.get_str("name"),
            Some("m1.medium"),
            "2 CPUs and 3 GB pick the smallest fitting flavor"
        );
        let image = t
            .store
            .get(
                &Actor::System,
                t.store.model("Image"),
                vm.get_int("image").expect("an image"),
            )
            .await
            .unwrap();
        assert_eq!(image.get_str("name"), Some("test-ubuntu-14.04"));
        assert_eq!(vm.get_int("node"), Some(node.id()));
        let container = one(t, "instances", "name", text("test-container-1")).await;
        assert_eq!(container.get_str("isolation"), Some("container"));
        let net = one(t, "networks", "name", text("testsite_net1")).await;
        assert_eq!(
            net.get("permit_all_slices").as_bool(),
            Some(true),
            "the TOSCA default"
        );
        let netslices = rows(t, "networkslices", "network", Value::Int(net.id())).await;
        assert_eq!(netslices.len(), 2, "{netslices:?}");
        let sub = one(t, "services", "name", text("test-subscriber-service")).await;
        let coarse = one(t, "tenants", "subscriber_service", Value::Int(sub.id())).await;
        assert_eq!(coarse.get_str("kind"), Some("coarse"));
        let fd = rows(t, "flavordeployments", "deployment", Value::Int(dep.id())).await;
        assert_eq!(fd.len(), 2);

        // Re-applying changes nothing: same rows, same versions.
        let counts = live_counts(t).await;
        let again = run(t, &sources, Mode::Apply, false).await.expect("re-apply");
        assert!(all(&again, "unchanged"), "{:?}", actions(&again));
        assert_eq!(live_counts(t).await, counts);

        // An edited property updates exactly that node.
        let edited = Source {
            name: "core.yaml".into(),
            text: sources[0]
                .text
                .replace("description: The first test slice", "description: Edited"),
        };
        let updated = run(t, &[edited], Mode::Apply, false).await.expect("update");
        let changed: Vec<_> = updated
            .iter()
            .filter(|e| e.action.as_str() != "unchanged")
            .collect();
        assert_eq!(changed.len(), 1, "{:?}", actions(&updated));
        assert_eq!(changed[0].node, "testsite_slice1");
        assert_eq!(changed[0].changes, vec!["description".to_string()]);

        // Delete removes everything, dependents first; deleting again finds nothing.
        let deleted = run(t, &sources, Mode::Delete, false).await.expect("delete");
        assert!(all(&deleted, "delete"), "{:?}", actions(&deleted));
        assert_eq!(
            deleted.first().map(|e| e.node.as_str()),
            Some("testadmin@example.org")
        );
        assert_eq!(live_counts(t).await, before, "delete left rows behind");
        let absent = run(t, &sources, Mode::Delete, false).await.expect("delete again");
        assert!(all(&absent, "absent"), "{:?}", actions(&absent));

        // And the recipe applies again after a delete.
        let recreated = run(t, &sources, Mode::Apply, false).await.expect("re-create");
        assert!(all(&recreated, "create"), "{:?}", actions(&recreated));
        assert_eq!(live_counts(t).await, counts);
    }
);

both!(
    failing_nodes_are_all_reported_and_nothing_is_written,
    async |t: &TestStore| {
        let before = live_counts(t).await;
        let text = format!(
            "{HEAD}    good:\n      type: tosca.nodes.Site\n    bad_url:\n      type: tosca.nodes.Site\n      properties:\n        site_url: not a url\n    badslice:\n      type: tosca.nodes.Slice\n      properties:\n        max_instances: -3\n      requirements:\n        - site:\n            node: good\n            relationship: tosca.relationships.MemberOfSite\n    good_child:\n      type: tosca.nodes.Slice\n      requirements:\n        - site:\n            node: bad_url\n            relationship: tosca.relationships.MemberOfSite\n"
        );
        let err = run(t, &[source(&text)], Mode::Apply, false)
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
        assert_eq!(live_counts(t).await, before, "a failed recipe wrote");

        // References given by name that do not exist.
        let text = format!(
            "{HEAD}    s:\n      type: tosca.nodes.Site\n    s_one:\n      type: tosca.nodes.Slice\n      properties:\n        default_flavor: m9.huge\n      requirements:\n        - site:\n            node: s\n            relationship: tosca.relationships.MemberOfSite\n"
        );
        let Err(ToscaError::Problems(found)) = run(t, &[source(&text)], Mode::Apply, false).await else {
            panic!("accepted an unknown flavor")
        };
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].line, 9);
        assert!(found[0].message.contains("no flavor 'm9.huge'"), "{found:#?}");
        assert_eq!(live_counts(t).await, before);
    }
);

both!(no_create_no_update_and_no_delete, async |t: &TestStore| {
    let text = |extra: &str| {
        format!(
            "{HEAD}    mysite:\n      type: tosca.nodes.Site\n      properties:\n        display_name: Renamed\n{extra}"
        )
    };
    // The fixture's site exists: no-update leaves it alone, no-delete keeps it.
    let e = run(
        t,
        &[source(&text("        no-update: true\n"))],
        Mode::Apply,
        false,
    )
    .await
    .unwrap();
    assert_eq!(e[0].action.as_str(), "unchanged");
    let site = one(t, "sites", "login_base", Value::Text("mysite".into())).await;
    assert_ne!(site.get_str("name"), Some("Renamed"));
    let e = run(
        t,
        &[source(&text("        no-delete: true\n"))],
        Mode::Delete,
        false,
    )
    .await
    .unwrap();
    assert_eq!(e[0].action.as_str(), "kept");
    one(t, "sites", "login_base", Value::Text("mysite".into())).await;
    // no-create: a missing object stays missing.
    let text = format!(
        "{HEAD}    nosite:\n      type: tosca.nodes.Site\n      properties:\n        no-create: true\n"
    );
    let e = run(t, &[source(&text)], Mode::Apply, false).await.unwrap();
    assert_eq!(e[0].action.as_str(), "absent");
    let found = rows(t, "sites", "login_base", Value::Text("nosite".into())).await;
    assert!(found.is_empty(), "{found:?}");
});

both!(recipes_run_with_the_users_permissions, async |t: &TestStore| {
    t.make_user("plain@example.org", "pw-plain-123").await;
    let actor = tosca::actor_for(&t.store, "plain@example.org").await.unwrap();
    let recipe = tosca::parse(
        registry::registry(),
        &[source(&format!(
            "{HEAD}    newsite:\n      type: tosca.nodes.Site\n"
        ))],
    )
    .unwrap();
    let Err(ToscaError::Problems(found)) = tosca::run(&t.store, actor, &recipe, Mode::Apply, false).await
    else {
        panic!("a plain user created a site")
    };
    assert!(found[0].message.contains("permission denied"), "{found:#?}");
});
