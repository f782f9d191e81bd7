//! The local backend: instances as supervised processes, with flavor limits, drift repair,
//! adoption after a restart, and clean deletes.

use crate::common;

use common::{TestApp, make};
use serde_json::{Value, json};
use server::sync::engine::{Engine, EngineOptions};
use server::sync::{StepContext, local};
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::{eventually, within};

const XOS: &str = env!("CARGO_BIN_EXE_xos");

struct Local {
    state: PathBuf,
    slice: i64,
    node: i64,
    image: i64,
}

impl Drop for Local {
    fn drop(&mut self) {
        local::stop_all(&self.state);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// Whether process `pid` runs, as the local backend sees it: it exists and is no zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

async fn setup(app: &TestApp, tag: &str) -> Local {
    let state = std::env::temp_dir().join(format!(
        "xos-local-{}-{tag}-{:?}",
        std::process::id(),
        app.backend
    ));
    let _ = std::fs::remove_dir_all(&state);
    let site = app.site_id().await;
    let dep = make(app, "deployments", json!({"name": "local"})).await;
    make(
        app,
        "controllers",
        json!({"name": "local", "backend_type": "local", "version": "1", "deployment": dep}),
    )
    .await;
    let sd = make(app, "sitedeployments", json!({"site": site, "deployment": dep})).await;
    let node = make(app, "nodes", json!({"name": "localhost", "site_deployment": sd})).await;
    let image = make(app, "images", json!({"name": "workload", "disk_format": "none", "container_format": "none", "path": format!("{XOS} workload")})).await;
    let slice = app.make_slice("local").await["id"].as_i64().unwrap();
    Local {
        state,
        slice,
        node,
        image,
    }
}

async fn engine(app: &TestApp, l: &Local) -> Engine {
    engine_in(app, &l.state, |_| {}).await
}

/// An engine of the local backend on `state`, its settings changed by `tweak`.
async fn engine_in(app: &TestApp, state: &Path, tweak: impl FnOnce(&mut StepContext)) -> Engine {
    let mut ctx = StepContext::new(app.store.clone(), state.to_path_buf());
    ctx.xos_binary = XOS.into();
    tweak(&mut ctx);
    let steps = local::steps(&ctx, Duration::ZERO);
    let opts = EngineOptions {
        backoff_base: Duration::from_millis(200),
        ..Default::default()
    };
    let e = Engine::new(ctx, steps, opts).await.unwrap();
    // The local controller is checked on the first pass; the tests count instances only.
    e.run_once().await.unwrap();
    e
}

async fn instance(app: &TestApp, id: i64) -> Value {
    app.get(&format!("/xos/instances/{id}/?no_hyperlinks=1")).await.1
}

both!(instances_run_as_processes_until_deleted, async |app: &TestApp| {
    let l = setup(app, "run").await;
    let e = engine(app, &l).await;
    let id = make(
        app,
        "instances",
        json!({"slice": l.slice, "node": l.node, "image": l.image}),
    )
    .await;
    let r = e.run_once().await.unwrap();
    assert_eq!(r.enacted, 1, "{r:?}");
    let v = instance(app, id).await;
    assert!(
        v["backend_status"]
            .as_str()
            .unwrap()
            .starts_with("1 - OK, running as pid"),
        "{v}"
    );
    let pid: i32 = v["instance_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(local::running_processes(&l.state).get(&id), Some(&vec![pid]));
    let log = std::fs::read_to_string(l.state.join(format!("instances/{id}.log"))).unwrap();
    assert!(log.contains("xos workload started"), "{log}");
    // Nothing changes on the next passes (no second process).
    e.run_once().await.unwrap();
    assert_eq!(local::running_processes(&l.state).get(&id).map(Vec::len), Some(1));
    // Delete: the process stops, then the row is purged.
    app.delete(&format!("/xos/instances/{id}/")).await;
    let r = e.run_once().await.unwrap();
    assert_eq!(r.deleted, 1, "{r:?}");
    assert!(local::running_processes(&l.state).is_empty());
    assert_eq!(app.count("core_instance").await, 0);
});

both!(
    a_flavor_memory_limit_stops_a_greedy_process_with_its_reason,
    async |app: &TestApp| {
        let l = setup(app, "mem").await;
        let e = engine(app, &l).await;
        let tiny = make(
            app,
            "flavors",
            json!({"name": "tiny", "flavor": "tiny", "memory_mb": 64}),
        )
        .await;
        let greedy = make(app, "images", json!({"name": "greedy", "disk_format": "none", "container_format": "none", "path": format!("{XOS} workload --allocate-mb 512")})).await;
        let id = make(
            app,
            "instances",
            json!({"slice": l.slice, "node": l.node, "image": greedy, "flavor": tiny}),
        )
        .await;
        let r = e.run_once().await.unwrap();
        assert_eq!(r.failed, 1, "{r:?}");
        let status = instance(app, id).await["backend_status"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(status.starts_with("2 - the process exited at start"), "{status}");
        assert!(
            status.contains("memory allocation of") && status.contains("memory limit 64 MiB"),
            "{status}"
        );
        // With enough memory it runs.
        let big = make(
            app,
            "flavors",
            json!({"name": "big", "flavor": "big", "memory_mb": 4096}),
        )
        .await;
        app.patch(&format!("/xos/instances/{id}/"), json!({"flavor": big}))
            .await;
        // Deliberate: the failure's backoff (200 ms, `backoff_base`) runs out before the pass.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let r = e.run_once().await.unwrap();
        assert_eq!(
            r.enacted,
            1,
            "{r:?}: {}",
            instance(app, id).await["backend_status"]
        );
    }
);

both!(
    dead_processes_are_restarted_and_running_ones_adopted,
    async |app: &TestApp| {
        let l = setup(app, "drift").await;
        let e = engine(app, &l).await;
        let id = make(
            app,
            "instances",
            json!({"slice": l.slice, "node": l.node, "image": l.image}),
        )
        .await;
        e.run_once().await.unwrap();
        let v = instance(app, id).await;
        let pid: i32 = v["instance_id"]
            .as_str()
            .unwrap_or_else(|| panic!("not started: {v}"))
            .parse()
            .unwrap();
        // Drift: the process dies behind our back.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        eventually("the killed process to die", Duration::from_secs(5), || async {
            (!alive(pid)).then_some(())
        })
        .await;
        let r = e.run_once().await.unwrap();
        assert_eq!(r.enacted, 1, "{r:?}");
        let v = instance(app, id).await;
        assert!(
            v["backend_status"].as_str().unwrap().contains("drift repaired"),
            "{v}"
        );
        let pid2: i32 = v["instance_id"].as_str().unwrap().parse().unwrap();
        assert_ne!(pid, pid2);
        // A new synchronizer (a restart) adopts the running process instead of starting another.
        drop(e);
        let e2 = engine(app, &l).await;
        app.patch(&format!("/xos/instances/{id}/"), json!({"userData": "touch"}))
            .await;
        e2.run_once().await.unwrap();
        let v = instance(app, id).await;
        assert_eq!(v["instance_id"], pid2.to_string(), "{v}");
        assert_eq!(local::running_processes(&l.state).get(&id), Some(&vec![pid2]));
        // A changed image restarts it with the new command.
        let other = make(app, "images", json!({"name": "other", "disk_format": "none", "container_format": "none", "path": format!("{XOS} workload --allocate-mb 1")})).await;
        app.patch(&format!("/xos/instances/{id}/"), json!({"image": other}))
            .await;
        e2.run_once().await.unwrap();
        let v = instance(app, id).await;
        assert!(
            v["backend_status"]
                .as_str()
                .unwrap()
                .contains("restarted with the new image"),
            "{v}"
        );
        assert_eq!(local::running_processes(&l.state).get(&id).map(Vec::len), Some(1));
        // A process whose instance is gone (deleted while no synchronizer ran) is stopped.
        app.store.set_observed("Instance", false);
        app.delete(&format!("/xos/instances/{id}/")).await;
        e2.run_once().await.unwrap();
        assert!(local::running_processes(&l.state).is_empty(), "orphan stopped");
    }
);

both!(
    only_allowed_commands_run_with_a_cleared_environment_and_limits,
    async |app: &TestApp| {
        let l = setup(app, "policy").await;
        let e = engine(app, &l).await;
        // A command that is not on the allow-list: refused, nothing runs.
        let shell = make(
            app,
            "images",
            json!({"name": "shell", "disk_format": "none", "container_format": "none", "path": "/bin/sh -c sleep 600"}),
        )
        .await;
        let bad = make(
            app,
            "instances",
            json!({"slice": l.slice, "node": l.node, "image": shell}),
        )
        .await;
        e.run_once().await.unwrap();
        let v = instance(app, bad).await;
        let status = v["backend_status"].as_str().unwrap();
        assert!(
            status.starts_with("2 - ") && status.contains("is not allowed"),
            "{v}"
        );
        assert!(!local::running_processes(&l.state).contains_key(&bad));
        // An allowed one runs without the server's environment (this test process has
        // CARGO_MANIFEST_DIR, as a server has its DATABASE_URL), within the limits.
        assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
        let id = make(
            app,
            "instances",
            json!({"slice": l.slice, "node": l.node, "image": l.image}),
        )
        .await;
        e.run_once().await.unwrap();
        let pid = local::running_processes(&l.state)[&id][0];
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| {
                String::from_utf8_lossy(v)
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert!(!vars.contains(&"CARGO_MANIFEST_DIR".to_string()), "{vars:?}");
        assert!(
            vars.contains(&"PATH".to_string()) && vars.contains(&"XOS_OBJECT_ID".to_string()),
            "{vars:?}"
        );
        // … and with its slice's directory, where services deliver what it needs.
        let slice_dir = String::from_utf8_lossy(&environ)
            .split('\0')
            .find_map(|v| v.strip_prefix("XOS_SLICE_DIR=").map(str::to_string));
        assert_eq!(
            slice_dir,
            Some(
                l.state
                    .join("slices")
                    .join(l.slice.to_string())
                    .display()
                    .to_string()
            )
        );
        // XOS as root: the workload runs as nobody, not root (the image is a tenant's command).
        if common::root() {
            assert_eq!(common::uid_of(pid), common::nobody());
        }
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = |name: &str| limits.lines().find(|l| l.starts_with(name)).unwrap().to_string();
        assert!(line("Max open files").contains("1024"), "{limits}");
        assert!(
            line("Max core file size").split_whitespace().any(|w| w == "0"),
            "{limits}"
        );
        assert!(
            line("Max file size").contains(&(1024u64 * 1024 * 1024).to_string()),
            "{limits}"
        );
        app.delete(&format!("/xos/instances/{id}/")).await;
        app.delete(&format!("/xos/instances/{bad}/")).await;
        e.run_once().await.unwrap();
        local::stop_all(&l.state);
    }
);

both!(
    a_missing_user_to_run_as_fails_the_instance_rather_than_run_it_as_root,
    async |app: &TestApp| {
        if !common::root() {
            return; // Not root: workloads run as the tests' user, and run_as is not used.
        }
        let l = setup(app, "runas").await;
        let e = engine_in(app, &l.state, |ctx| {
            ctx.setting_mut::<local::LocalBackendConfig>().run_as = "no-such-user-xos".into()
        })
        .await;
        let id = make(
            app,
            "instances",
            json!({"slice": l.slice, "node": l.node, "image": l.image}),
        )
        .await;
        e.run_once().await.unwrap();
        let v = instance(app, id).await;
        let status = v["backend_status"].as_str().unwrap();
        assert!(
            status.starts_with("2 - ")
                && status.contains("no-such-user-xos")
                && status.contains("does not exist"),
            "{v}"
        );
        assert!(!local::running_processes(&l.state).contains_key(&id));
        local::stop_all(&l.state);
    }
);

both!(
    a_state_directory_the_workloads_user_cannot_enter_is_opened_or_named,
    async |app: &TestApp| {
        use std::os::unix::fs::PermissionsExt;
        if !common::root() {
            return;
        }
        // XOS's own state directory, closed (as mkdtemp makes it): opened to search, and the
        // workload runs as nobody.
        let l = setup(app, "closed").await;
        std::fs::create_dir_all(&l.state).unwrap();
        std::fs::set_permissions(&l.state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = engine(app, &l).await;
        let id = make(
            app,
            "instances",
            json!({"slice": l.slice, "node": l.node, "image": l.image}),
        )
        .await;
        e.run_once().await.unwrap();
        let v = instance(app, id).await;
        assert!(v["backend_status"].as_str().unwrap().starts_with("1 - "), "{v}");
        let mode = std::fs::metadata(&l.state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o701, "search only, no listing");
        let pid = local::running_processes(&l.state)[&id][0];
        assert_eq!(common::uid_of(pid), common::nobody());
        app.delete(&format!("/xos/instances/{id}/")).await;
        e.run_once().await.unwrap();
        // One above it that is closed: an error naming it, nothing runs.
        let outer = l.state.join("outer");
        let inner = outer.join("state");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::set_permissions(&outer, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = engine_in(app, &inner, |_| {}).await;
        let id = make(
            app,
            "instances",
            json!({"slice": l.slice, "node": l.node, "image": l.image}),
        )
        .await;
        e.run_once().await.unwrap();
        let v = instance(app, id).await;
        let status = v["backend_status"].as_str().unwrap();
        assert!(
            status.starts_with("2 - ")
                && status.contains(&outer.display().to_string())
                && status.contains("cannot be entered by nobody"),
            "{v}"
        );
        assert!(!local::running_processes(&inner).contains_key(&id));
    }
);

both!(
    a_site_runs_at_most_its_cap_of_local_instances,
    async |app: &TestApp| {
        let l = setup(app, "cap").await;
        let e = engine_in(app, &l.state, |ctx| {
            ctx.setting_mut::<local::LocalBackendConfig>()
                .max_instances_per_site = 1
        })
        .await;
        let first = make(
            app,
            "instances",
            json!({"slice": l.slice, "node": l.node, "image": l.image}),
        )
        .await;
        e.run_once().await.unwrap();
        // Another slice of the same site: the site's cap counts every slice's instances.
        let other = app.make_slice("cap2").await["id"].as_i64().unwrap();
        let second = make(
            app,
            "instances",
            json!({"slice": other, "node": l.node, "image": l.image}),
        )
        .await;
        e.run_once().await.unwrap();
        assert!(
            instance(app, first).await["backend_status"]
                .as_str()
                .unwrap()
                .starts_with("1 - OK"),
            "the first runs"
        );
        let v = instance(app, second).await;
        let status = v["backend_status"].as_str().unwrap();
        assert!(
            status.starts_with("2 - ") && status.contains("max_instances_per_site"),
            "{v}"
        );
        assert!(v["instance_id"].is_null(), "{v}");
        // Room again once the first goes (the second runs once its backoff has run out; the
        // assertion below shows what it says when it does not).
        app.delete(&format!("/xos/instances/{first}/")).await;
        within(Duration::from_secs(10), || async {
            e.run_once().await.unwrap();
            instance(app, second).await["backend_status"]
                .as_str()
                .unwrap()
                .starts_with("1 - OK")
                .then_some(())
        })
        .await;
        let v = instance(app, second).await;
        assert!(v["backend_status"].as_str().unwrap().starts_with("1 - OK"), "{v}");
    }
);
