//! Status that tells the truth (issue 24): the local backend enacts its controller and link
//! rows, the link rows tell their Site, Slice and User, a row nothing handles says so, a failed
//! or waiting parent holds its dependents with a status naming it, a parent's change re-enacts
//! its dependents, `write_protect` propagates, and every instance carries the keys of its
//! slice's members.

use crate::common;

use common::{TestApp, make};
use http::StatusCode;
use serde_json::{Value, json};
use server::sync::engine::{Engine, EngineOptions};
use server::sync::{StepContext, local};
use std::path::PathBuf;
use std::time::Duration;

const XOS: &str = env!("CARGO_BIN_EXE_xos");

/// A local deployment of the bootstrap site, its state directory removed (with its processes)
/// when the test ends.
struct Cloud {
    state: PathBuf,
    dep: i64,
    node: i64,
    image: i64,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        local::stop_all(&self.state);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

async fn cloud(app: &TestApp, tag: &str) -> Cloud {
    let state = std::env::temp_dir().join(format!(
        "xos-status-{}-{tag}-{:?}",
        std::process::id(),
        app.backend
    ));
    let _ = std::fs::remove_dir_all(&state);
    let site = app.site_id().await;
    let dep = make(app, "deployments", json!({"name": format!("local-{tag}")})).await;
    make(
        app,
        "controllers",
        json!({"name": format!("local-{tag}"), "backend_type": "local", "version": "1", "deployment": dep}),
    )
    .await;
    let sd = make(app, "sitedeployments", json!({"site": site, "deployment": dep})).await;
    let node = make(
        app,
        "nodes",
        json!({"name": format!("host-{tag}"), "site_deployment": sd}),
    )
    .await;
    let image = make(app, "images", json!({"name": format!("workload-{tag}"), "disk_format": "none", "container_format": "none", "path": format!("{XOS} workload")})).await;
    Cloud {
        state,
        dep,
        node,
        image,
    }
}

/// The synchronizer of the devel configuration: the core's policies and the local backend.
async fn engine(app: &TestApp, c: &Cloud) -> Engine {
    let mut ctx = StepContext::new(app.store.clone(), c.state.clone());
    ctx.xos_binary = XOS.into();
    let steps = local::steps(&ctx, Duration::ZERO);
    let opts = EngineOptions {
        backoff_base: Duration::from_millis(200),
        policies: server::sync::policies::core(),
        ..Default::default()
    };
    Engine::new(ctx, steps, opts).await.unwrap()
}

async fn get(app: &TestApp, plural: &str, id: i64) -> Value {
    app.get(&format!("/xos/{plural}/{id}/?no_hyperlinks=1")).await.1
}

async fn status(app: &TestApp, plural: &str, id: i64) -> String {
    get(app, plural, id).await["backend_status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn passes(e: &Engine, n: usize) {
    for _ in 0..n {
        e.run_once().await.unwrap();
    }
}

/// A new slice of the bootstrap site with one instance on the cloud's node and image.
async fn slice_with_instance(app: &TestApp, c: &Cloud, name: &str) -> (i64, i64) {
    let slice = app.make_slice(name).await["id"].as_i64().unwrap();
    let inst = make(
        app,
        "instances",
        json!({"slice": slice, "node": c.node, "image": c.image}),
    )
    .await;
    (slice, inst)
}

/// Run passes until instance `inst` runs (at most 10 s: a backoff may have to run out first).
async fn until_running(app: &TestApp, e: &Engine, inst: i64) {
    testkit::eventually("the instance to run", Duration::from_secs(10), || async {
        e.run_once().await.unwrap();
        status(app, "instances", inst)
            .await
            .starts_with("1 - OK, running")
            .then_some(())
    })
    .await;
}

async fn ids(app: &TestApp, path: &str) -> Vec<i64> {
    app.get(path)
        .await
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect()
}

both!(
    every_row_of_a_local_cloud_tells_its_state,
    async |app: &TestApp| {
        let c = cloud(app, "told").await;
        let e = engine(app, &c).await;
        let slice = app.make_slice("told").await["id"].as_i64().unwrap();
        let site = app.site_id().await;
        let (_, me) = app
            .get("/xos/users/?email=padmin@vicci.org&no_hyperlinks=1")
            .await;
        let user = me[0]["id"].as_i64().unwrap();
        passes(&e, 3).await;
        let st = status(app, "slices", slice).await;
        let dir = c.state.join("slices").join(slice.to_string());
        assert_eq!(st, format!("1 - OK, slice directory {}", dir.display()));
        assert!(dir.is_dir(), "the slice's directory is made");
        assert_eq!(
            status(app, "sites", site).await,
            "1 - OK, nothing to make on this host for a site"
        );
        assert!(
            status(app, "users", user)
                .await
                .starts_with("1 - OK, nothing to make on this host for a user")
        );
        for plural in [
            "controllersites",
            "controllerslices",
            "controllerusers",
            "controllers",
        ] {
            for id in ids(app, &format!("/xos/{plural}/?no_hyperlinks=1")).await {
                let st = status(app, plural, id).await;
                assert!(st.starts_with("1 - OK"), "{plural} {id}: {st}");
            }
        }
        let (_, ctl) = app.get("/xos/controllers/?name=local-told&no_hyperlinks=1").await;
        assert!(
            ctl[0]["backend_status"]
                .as_str()
                .unwrap()
                .starts_with("1 - OK, instances run as processes on"),
            "{ctl}"
        );
        // Idle: nothing more to write (a status write would wake the engine again).
        let r = e.run_once().await.unwrap();
        assert_eq!((r.enacted, r.failed, r.policed), (0, 0, 0), "{r:?}");
        // The slice deleted: its directory goes with its link row.
        app.delete(&format!("/xos/slices/{slice}/")).await;
        passes(&e, 3).await;
        assert!(!dir.exists(), "the slice's directory is removed");
    }
);

both!(
    a_row_nothing_handles_says_so_instead_of_in_progress,
    async |app: &TestApp| {
        let c = cloud(app, "lone").await;
        let e = engine(app, &c).await;
        // A deployment without a controller: nothing here can run its instances.
        let bare = make(app, "deployments", json!({"name": "bare"})).await;
        let slice = app.make_slice("lone").await["id"].as_i64().unwrap();
        let orphan = make(
            app,
            "instances",
            json!({"slice": slice, "node": c.node, "image": c.image, "deployment": bare}),
        )
        .await;
        let held = make(
            app,
            "instances",
            json!({"slice": slice, "node": c.node, "image": c.image, "deployment": c.dep, "no_sync": true}),
        )
        .await;
        passes(&e, 2).await;
        let st = status(app, "instances", orphan).await;
        assert!(
            st.starts_with(
                "0 - not handled here: no synchronizer step of this configuration enacts this Instance"
            ),
            "{st}"
        );
        assert_eq!(
            status(app, "instances", held).await,
            "0 - not synchronized: no_sync is set"
        );
        // Written once: further passes write nothing.
        let before = app.store.generation();
        passes(&e, 2).await;
        assert_eq!(app.store.generation(), before, "idle passes wrote statuses");
        // Once the deployment gets a controller, the instance runs.
        make(
            app,
            "controllers",
            json!({"name": "bare-local", "backend_type": "local", "version": "1", "deployment": bare}),
        )
        .await;
        passes(&e, 2).await;
        let st = status(app, "instances", orphan).await;
        assert!(st.starts_with("1 - OK, running as pid"), "{st}");
        // A user of a site that no deployment serves waits for a controller, and says so.
        let (_, other) = app
            .post(
                "/xos/sites/?no_hyperlinks=1",
                json!({"name": "Other", "login_base": "other", "abbreviated_name": "o"}),
            )
            .await;
        let other = other["id"].as_i64().unwrap();
        passes(&e, 1).await;
        let st = status(app, "sites", other).await;
        assert!(
            st.starts_with("0 - waiting for a controller: none serves this site's deployments"),
            "{st}"
        );
    }
);

both!(
    a_failed_parent_holds_its_instances_and_says_which,
    async |app: &TestApp| {
        let c = cloud(app, "held").await;
        let e = engine(app, &c).await;
        passes(&e, 1).await;
        // The slices' directory cannot be made: a file stands where it goes.
        std::fs::create_dir_all(&c.state).unwrap();
        std::fs::write(c.state.join("slices"), b"in the way").unwrap();
        let (slice, inst) = slice_with_instance(app, &c, "held").await;
        passes(&e, 1).await;
        let link = ids(
            app,
            &format!("/xos/controllerslices/?slice={slice}&no_hyperlinks=1"),
        )
        .await[0];
        let st = status(app, "controllerslices", link).await;
        assert!(st.starts_with("2 - cannot create"), "{st}");
        assert_eq!(
            status(app, "instances", inst).await,
            "2 - Failed dependency: Slice mysite_held"
        );
        // While the link backs off, the instance stays held (and is not started).
        passes(&e, 1).await;
        assert_eq!(
            status(app, "slices", slice).await,
            st,
            "the slice tells its link's error"
        );
        assert_eq!(
            status(app, "instances", inst).await,
            "2 - Failed dependency: Slice mysite_held"
        );
        assert!(local::running_processes(&c.state).is_empty());
        // Fixed: after the backoff the slice is made and the instance runs.
        std::fs::remove_file(c.state.join("slices")).unwrap();
        until_running(app, &e, inst).await;
        // The policies run at the start of a pass: the next one tells the slice.
        passes(&e, 1).await;
        assert!(
            status(app, "slices", slice)
                .await
                .starts_with("1 - OK, slice directory")
        );
    }
);

both!(
    a_parent_change_reenacts_dependents_and_protection_propagates,
    async |app: &TestApp| {
        let c = cloud(app, "dirty").await;
        let e = engine(app, &c).await;
        let (slice, inst) = slice_with_instance(app, &c, "dirty").await;
        passes(&e, 2).await;
        let enacted = |k: &'static str| e.stats[k].enacted.load(std::sync::atomic::Ordering::Relaxed);
        let (links, instances) = (enacted("local_slices"), enacted("local_instances"));
        // The slice changes: its link row and its instance are enacted again (XOS's dirtying).
        app.patch(
            &format!("/xos/slices/{slice}/"),
            json!({"description": "changed"}),
        )
        .await;
        passes(&e, 1).await;
        assert_eq!(enacted("local_slices"), links + 1);
        assert_eq!(enacted("local_instances"), instances + 1);
        let pid = get(app, "instances", inst).await["instance_id"].clone();
        passes(&e, 1).await;
        assert_eq!(enacted("local_instances"), instances + 1, "once per change");
        assert_eq!(
            get(app, "instances", inst).await["instance_id"],
            pid,
            "adopted, not restarted"
        );
        // A protected instance protects its slice and the slice's site (XOS's walk_deps).
        app.patch(&format!("/xos/instances/{inst}/"), json!({"write_protect": true}))
            .await;
        passes(&e, 1).await;
        assert_eq!(get(app, "slices", slice).await["write_protect"], true);
        assert_eq!(
            get(app, "sites", app.site_id().await).await["write_protect"],
            true
        );
        let (s, _) = app.delete(&format!("/xos/slices/{slice}/")).await;
        assert_eq!(s, StatusCode::CONFLICT, "a protected slice is not deleted");
        // Another slice, unprotected, is untouched.
        let free = app.make_slice("free").await["id"].as_i64().unwrap();
        passes(&e, 1).await;
        assert_eq!(get(app, "slices", free).await["write_protect"], false);
    }
);

both!(
    an_instance_carries_the_keys_of_its_slice_members,
    async |app: &TestApp| {
        let c = cloud(app, "keys").await;
        let e = engine(app, &c).await;
        let (_, me) = app
            .get("/xos/users/?email=padmin@vicci.org&no_hyperlinks=1")
            .await;
        let admin = me[0]["id"].as_i64().unwrap();
        app.patch(
            &format!("/xos/users/{admin}/"),
            json!({"public_key": "ssh-ed25519 AAAAadmin padmin"}),
        )
        .await;
        let (slice, inst) = slice_with_instance(app, &c, "keys").await;
        passes(&e, 2).await;
        let v = get(app, "instances", inst).await;
        let pid: i32 = v["instance_id"]
            .as_str()
            .unwrap_or_else(|| panic!("not running: {v}"))
            .parse()
            .unwrap();
        // The process is pointed at its keys.
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let keys_path = local::keys_path(&c.state, inst);
        let want = format!("XOS_AUTHORIZED_KEYS={}", keys_path.display());
        assert!(
            env.split(|b| *b == 0).any(|v| v == want.as_bytes()),
            "the environment names the keys file"
        );
        assert_eq!(
            std::fs::read_to_string(&keys_path).unwrap(),
            "ssh-ed25519 AAAAadmin padmin\n"
        );
        // A member joins the slice: its key reaches the running instance, without a restart.
        let member = app
            .make_user_with_key(
                "member@mysite.org",
                "member-password",
                "ssh-rsa AAAAmember member",
            )
            .await;
        app.add_slice_member(slice, member).await;
        passes(&e, 2).await;
        assert_eq!(
            std::fs::read_to_string(&keys_path).unwrap(),
            "ssh-rsa AAAAmember member\nssh-ed25519 AAAAadmin padmin\n",
            "members first, then the creators (XOS's order)"
        );
        assert_eq!(
            get(app, "instances", inst).await["instance_id"].as_str(),
            Some(pid.to_string().as_str())
        );
        // A user outside the slice is not in it.
        let outsider = app.make_user("outsider@mysite.org", "outsider-password").await;
        app.patch(
            &format!("/xos/users/{outsider}/"),
            json!({"public_key": "ssh-rsa AAAAoutsider o"}),
        )
        .await;
        passes(&e, 2).await;
        assert!(!std::fs::read_to_string(&keys_path).unwrap().contains("outsider"));
        // The member leaves the slice: its key leaves the running instance too.
        let (_, privs) = app
            .get(&format!(
                "/xos/slice_privileges/?slice={slice}&user={member}&no_hyperlinks=1"
            ))
            .await;
        let (st, _) = app
            .delete(&format!("/xos/slice_privileges/{}/", privs[0]["id"]))
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        passes(&e, 2).await;
        assert_eq!(
            std::fs::read_to_string(&keys_path).unwrap(),
            "ssh-ed25519 AAAAadmin padmin\n",
            "a removed member's key is gone"
        );
    }
);

both!(
    a_failing_instance_tells_its_slice_until_it_is_fixed,
    async |app: &TestApp| {
        let c = cloud(app, "sick").await;
        let e = engine(app, &c).await;
        let slice = app.make_slice("sick").await["id"].as_i64().unwrap();
        // An image whose command this host does not allow: the instance fails on its own.
        let bad = make(app, "images", json!({"name": "not-allowed", "disk_format": "none", "container_format": "none", "path": "/bin/sh -c true"})).await;
        let inst = make(
            app,
            "instances",
            json!({"name": "sick-1", "slice": slice, "node": c.node, "image": bad}),
        )
        .await;
        passes(&e, 3).await;
        let st = status(app, "instances", inst).await;
        assert!(st.starts_with("2 - the image's command"), "{st}");
        let st = status(app, "slices", slice).await;
        assert!(st.starts_with("2 - instance sick-1: the image's command"), "{st}");
        // Stable: further passes do not flip it between the link's OK and the instance's error
        // (the policies write nothing).
        for _ in 0..2 {
            let r = e.run_once().await.unwrap();
            assert_eq!(r.policed, 0, "{r:?}");
        }
        // Fixed: the instance runs, and the slice tells its link's OK again.
        app.patch(&format!("/xos/instances/{inst}/"), json!({"image": c.image}))
            .await;
        until_running(app, &e, inst).await;
        passes(&e, 1).await;
        let st = status(app, "slices", slice).await;
        assert!(st.starts_with("1 - OK, slice directory"), "{st}");
    }
);
