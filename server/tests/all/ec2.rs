//! The EC2 backend against a real EC2 API emulator (`moto_server`, from the venv the Makefile
//! makes): zones → sites, images and flavors; instances run, resized, replaced and terminated;
//! a crash between RunInstances and the status write; drift; errors; the idle-pass call count.
//!
//! Without moto_server the tests are skipped, unless `XOS_REQUIRE_MOTO=1` (CI), which fails them.

use crate::common;

use common::TestApp;
use serde_json::{Value, json};
use server::store::Actor;
use server::sync::ec2::client::{Ec2Client, Ec2Config, RunRequest};
use server::sync::ec2::{self, Ec2Backend, TAG};
use server::sync::engine::{Engine, EngineOptions};
use server::sync::{StepContext, default_fetch_pending};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use testkit::{eventually, within};

const XOS: &str = env!("CARGO_BIN_EXE_xos");
/// moto's public Ubuntu 14.04 and Windows AMIs.
const UBUNTU: &str = "ami-1e749f67";
const WINDOWS: &str = "ami-12c6146b";
const REGION: &str = "us-east-1";
/// A real RSA public key (EC2 checks the format on ImportKeyPair); its private half was thrown away.
const PUBLIC_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDpKLV2UCf9KLgrrGaUHHehSs7KWX5hIvZeg0xNqQYqkk7N7ExlW1B2Kvg1ab2LZi8OSRcLYaOoPqye/m6oPMi7JjH72eAGPhZH374zFgPBF87uNndMMGHUjqC347dnzHhTF0XvvrSSwzV5A7yIm9HzBkBvCHpAMDWNfaAuZ1G86B/DzCYM695fpWYTNfZti+aHRcjI8ZNuA2DjE4fR1NKcDqugvNx4/c/YwQ8w2tzzAp0GgUKpfugUiWX5M6gK8P5d6IbzUnJQVEuokqoTDdiUWR/IKAe9nHzt2LYsjjm4JtP+7e0NybHcMBI+AiMYkNwkxYGq6osQjfTV9RbsHIOB padmin@xos";

fn moto_binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var("XOS_MOTO_SERVER").ok().map(PathBuf::from),
        std::env::var("HOME")
            .ok()
            .map(|h| PathBuf::from(h).join(".cache/xos/moto-venv/bin/moto_server")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.exists());
    if found.is_none() {
        assert!(
            !std::env::var("XOS_REQUIRE_MOTO").is_ok_and(|v| v == "1"),
            "moto_server required (make moto) but not found"
        );
        eprintln!("skipping: no moto_server (make moto installs it)");
    }
    found
}

/// A moto_server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    async fn start(env: &[(&str, &str)]) -> Option<Moto> {
        let mut env = env.to_vec();
        env.push(("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true"));
        let bin = moto_binary()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Owned by `Moto` at once, so its Drop kills and reaps it on every path.
        let moto = Moto {
            child: Command::new(bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server"),
            url: format!("http://127.0.0.1:{port}/"),
        };
        eventually(
            &format!("moto_server to listen on {port}"),
            Duration::from_secs(10),
            || async { std::net::TcpStream::connect(("127.0.0.1", port)).ok() },
        )
        .await;
        Some(moto)
    }
    fn client(&self) -> Ec2Client {
        Ec2Client::new(Ec2Config {
            endpoint: self.url.clone(),
            region: REGION.into(),
            access_key: "AKIDXOSTEST".into(),
            secret_key: "secret-for-tests".into(),
        })
        .unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn make(app: &TestApp, model: &str, v: Value) -> i64 {
    app.store
        .create(Actor::System, app.store.model(model), v.as_object().unwrap())
        .await
        .unwrap_or_else(|e| panic!("{model} {v}: {e}"))
        .id()
}

struct World {
    moto: Moto,
    backend: Arc<Ec2Backend>,
    engine: Engine,
    controller: i64,
    slice: i64,
}

/// A deployment "Amazon EC2" with an EC2 controller pointing at moto, and the engine.
async fn world(app: &TestApp, settings: Value) -> Option<World> {
    let moto = Moto::start(&[]).await?;
    let dep = make(app, "Deployment", json!({"name": "Amazon EC2"})).await;
    let controller = make(
        app,
        "Controller",
        json!({"name": "ec2", "backend_type": "EC2", "version": "2016-11-15", "deployment": dep,
               "auth_url": moto.url, "admin_user": "AKIDXOSTEST", "admin_password": "secret-for-tests",
               "domain": REGION, "settings": settings.to_string()}),
    )
    .await;
    let site = app.site_id().await;
    let slice = make(app, "Slice", json!({"name": "mysite_ec2", "site": site})).await;
    let backend = Arc::new(Ec2Backend::default());
    // The catalog runs on the first pass, then only when its controller is saved.
    let engine = engine(app, &backend, Duration::from_secs(3600)).await;
    // The admin has a public key: instances get it as their key pair.
    let admin = app
        .store
        .find(
            &Actor::System,
            app.store.model("User"),
            "email",
            server::db::Value::Text("padmin@vicci.org".into()),
        )
        .await
        .unwrap()[0]
        .id();
    app.system_update("User", admin, json!({"public_key": PUBLIC_KEY}))
        .await;
    Some(World {
        moto,
        backend,
        engine,
        controller,
        slice,
    })
}

async fn engine(app: &TestApp, backend: &Arc<Ec2Backend>, catalog_interval: Duration) -> Engine {
    let ctx = StepContext::new(app.store.clone(), std::env::temp_dir());
    let steps = ec2::steps(backend.clone(), catalog_interval, Duration::ZERO);
    let opts = EngineOptions {
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_millis(1),
        ..Default::default()
    };
    Engine::new(ctx, steps, opts).await.unwrap()
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (s, v) = app.get(path).await;
    assert_eq!(s, axum::http::StatusCode::OK, "{path}: {v}");
    v
}

async fn id_of(app: &TestApp, path: &str) -> i64 {
    let v = get(app, path).await;
    v[0]["id"].as_i64().unwrap_or_else(|| panic!("{path}: {v}"))
}

/// An instance of the test slice in `zone` with the image of `ami` and the flavor `itype`.
async fn new_instance(app: &TestApp, w: &World, name: &str, ami: &str, itype: &str) -> i64 {
    let node = id_of(app, &format!("/xos/nodes/?name={REGION}a")).await;
    let image = id_of(app, &format!("/xos/images/?path={ami}")).await;
    let flavor = id_of(app, &format!("/xos/flavors/?name={itype}")).await;
    let admin = id_of(app, "/xos/users/?email=padmin@vicci.org").await;
    make(
        app,
        "Instance",
        json!({"name": name, "slice": w.slice, "node": node, "image": image, "flavor": flavor, "creator": admin}),
    )
    .await
}

async fn instance(app: &TestApp, id: i64) -> Value {
    get(app, &format!("/xos/instances/{id}/?no_hyperlinks=1")).await
}

/// The live EC2 instances tagged with the model id.
async fn tagged(w: &World, id: i64) -> Vec<server::sync::ec2::client::Ec2Instance> {
    w.moto
        .client()
        .instances_tagged(TAG, Some(&id.to_string()))
        .await
        .unwrap()
        .into_iter()
        .filter(|i| !i.is_gone())
        .collect()
}

fn status(v: &Value) -> &str {
    v["backend_status"].as_str().unwrap_or_default()
}

both!(
    zones_become_sites_with_images_and_flavors,
    async |app: &TestApp| {
        let Some(w) = world(app, json!({"public_images": [UBUNTU]})).await else {
            return;
        };
        // An image of the account's own (Owners=self): made from an instance run directly.
        let client = w.moto.client();
        let tags = [("purpose", "own-image".to_string())];
        let vm = client
            .run(&RunRequest {
                image_id: UBUNTU,
                instance_type: "t2.micro",
                zone: None,
                key_name: None,
                user_data: "",
                client_token: "own-image",
                tags: &tags,
            })
            .await
            .unwrap();
        let xml = client
            .call(
                "CreateImage",
                &[
                    ("InstanceId".into(), vm.id.clone()),
                    ("Name".into(), "xos-own-image".into()),
                ],
            )
            .await
            .unwrap();
        assert!(xml.contains("imageId"), "{xml}");

        let r = w.engine.run_once().await.unwrap();
        assert_eq!(r.failed, 0, "{r:?}");
        let zones = client.zones().await.unwrap();
        assert!(zones.len() >= 3, "{zones:?}");
        for z in &zones {
            let site = get(app, &format!("/xos/sites/?login_base={z}&no_hyperlinks=1")).await;
            assert_eq!(site.as_array().unwrap().len(), 1, "site of {z}");
            let node = get(app, &format!("/xos/nodes/?name={z}&no_hyperlinks=1")).await;
            assert_eq!(node[0]["site"], site[0]["id"], "node of {z}");
        }
        // Images: the allowed public one and the account's own, and nothing else of moto's 40-odd.
        let images = get(app, "/xos/images/").await;
        let paths: Vec<&str> = images
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["path"].as_str())
            .collect();
        assert!(paths.contains(&UBUNTU), "{paths:?}");
        assert!(
            get(app, "/xos/images/?name=xos-own-image").await[0]["path"]
                .as_str()
                .unwrap()
                .starts_with("ami-")
        );
        assert_eq!(paths.len(), 2, "{paths:?}");
        for (itype, vcpus, memory) in ec2::INSTANCE_TYPES {
            let f = get(app, &format!("/xos/flavors/?name={itype}")).await;
            assert_eq!(f[0]["vcpus"], *vcpus);
            assert_eq!(f[0]["memory_mb"], *memory);
        }
        let controller = get(app, &format!("/xos/controllers/{}/", w.controller)).await;
        assert!(status(&controller).starts_with("1 - OK, "), "{controller}");
        // Not due again within the interval; a save of the controller asks for a refresh.
        let r = w.engine.run_once().await.unwrap();
        assert_eq!(r.enacted, 0, "{r:?}");
        let before = app.count("core_site").await;
        let settings = json!({"public_images": [UBUNTU, WINDOWS]}).to_string();
        app.system_update("Controller", w.controller, json!({"settings": settings}))
            .await;
        let r = w.engine.run_once().await.unwrap();
        assert_eq!(r.enacted, 1, "{r:?}");
        assert_eq!(
            get(app, &format!("/xos/images/?path={WINDOWS}"))
                .await
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // Due on a zero interval, saved or not.
        let eager = engine(app, &w.backend, Duration::ZERO).await;
        let r = eager.run_once().await.unwrap();
        assert_eq!(r.enacted, 1, "{r:?}");

        assert_eq!(app.count("core_site").await, before);
        let controller = get(app, &format!("/xos/controllers/{}/", w.controller)).await;
        assert!(
            status(&controller).contains("(0 objects created)"),
            "{controller}"
        );
    }
);

both!(
    instances_run_resize_replace_and_terminate,
    async |app: &TestApp| {
        let Some(w) = world(app, json!({"public_images": [UBUNTU, WINDOWS]})).await else {
            return;
        };
        w.engine.run_once().await.unwrap();
        let id = new_instance(app, &w, "web-1", UBUNTU, "t2.micro").await;
        let r = w.engine.run_once().await.unwrap();
        assert_eq!((r.enacted, r.failed), (1, 0), "{r:?} {}", instance(app, id).await);
        let live = tagged(&w, id).await;
        assert_eq!(live.len(), 1);
        let first = live[0].clone();
        assert_eq!(first.image_id, UBUNTU);
        assert_eq!(first.instance_type, "t2.micro");
        assert_eq!(first.zone.as_deref(), Some("us-east-1a"));
        let v = instance(app, id).await;
        assert_eq!(v["instance_id"], first.id.as_str());
        assert!(v["ip"].as_str().is_some_and(|ip| !ip.is_empty()), "{v}");
        assert!(status(&v).starts_with("1 - OK: "), "{v}");
        // The creator's key was imported and used.
        let keys = w.moto.client().call("DescribeKeyPairs", &[]).await.unwrap();
        assert!(keys.contains("xos-user-"), "{keys}");

        // A new flavor: the same EC2 instance, stopped, resized and started.
        let small = id_of(app, "/xos/flavors/?name=t2.small").await;
        app.patch(&format!("/xos/instances/{id}/"), json!({"flavor": small}))
            .await;
        let r = w.engine.run_once().await.unwrap();
        assert_eq!((r.enacted, r.failed), (1, 0), "{r:?}");
        let live = tagged(&w, id).await;
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].id, first.id, "resized in place");
        assert_eq!(live[0].instance_type, "t2.small");
        let v = instance(app, id).await;
        assert!(status(&v).contains("resized from t2.micro to t2.small"), "{v}");

        // A new image: the instance is replaced.
        let windows = id_of(app, &format!("/xos/images/?path={WINDOWS}")).await;
        app.patch(&format!("/xos/instances/{id}/"), json!({"image": windows}))
            .await;
        let r = w.engine.run_once().await.unwrap();
        assert_eq!((r.enacted, r.failed), (1, 0), "{r:?}");
        let live = tagged(&w, id).await;
        assert_eq!(live.len(), 1, "the old one is terminated");
        assert_ne!(live[0].id, first.id);
        assert_eq!(live[0].image_id, WINDOWS);
        let v = instance(app, id).await;
        assert!(status(&v).contains(&format!("replaced {}", first.id)), "{v}");
        assert_eq!(v["instance_id"], live[0].id.as_str());

        // Delete: terminated, then the row is purged.
        app.delete(&format!("/xos/instances/{id}/")).await;
        let r = w.engine.run_once().await.unwrap();
        assert_eq!(r.deleted, 1, "{r:?}");
        assert!(tagged(&w, id).await.is_empty());
        assert_eq!(app.count("core_instance").await, 0);
    }
);

both!(drift_is_repaired_or_reported, async |app: &TestApp| {
    let Some(w) = world(app, json!({"public_images": [UBUNTU]})).await else {
        return;
    };
    w.engine.run_once().await.unwrap();
    let id = new_instance(app, &w, "drifty", UBUNTU, "t2.micro").await;
    w.engine.run_once().await.unwrap();
    let first = tagged(&w, id).await[0].clone();
    // Terminated behind XOS's back: the next interval re-creates it and says so.
    w.moto.client().terminate(&first.id).await.unwrap();
    w.engine.run_once().await.unwrap();
    let live = tagged(&w, id).await;
    assert_eq!(live.len(), 1);
    assert_ne!(live[0].id, first.id);
    let v = instance(app, id).await;
    assert!(
        status(&v).contains(&format!("re-created: {} was terminated outside XOS", first.id)),
        "{v}"
    );
    assert_eq!(v["instance_id"], live[0].id.as_str());
    // Stopped behind XOS's back: the state is reflected, nothing is run.
    w.moto.client().stop(&live[0].id).await.unwrap();
    w.engine.run_once().await.unwrap();
    let v = instance(app, id).await;
    assert!(status(&v).contains(&format!("stopped as {}", live[0].id)), "{v}");
    assert_eq!(tagged(&w, id).await.len(), 1);
    // With drift = report, a terminated instance is reported, not re-created.
    app.patch(
        &format!("/xos/controllers/{}/", w.controller),
        json!({"settings": json!({"public_images": [UBUNTU], "drift": "report"}).to_string()}),
    )
    .await;
    w.moto.client().terminate(&live[0].id).await.unwrap();
    w.engine.run_once().await.unwrap();
    assert!(tagged(&w, id).await.is_empty());
    let v = instance(app, id).await;
    assert!(
        status(&v).starts_with(&format!(
            "2 - {} was terminated outside XOS (drift: report",
            live[0].id
        )),
        "{v}"
    );
    // The state is data on the instance, not status text: `gone`, and a second pass leaves it.
    assert_eq!(v["observed_state"], "gone", "{v}");
    let r = w.engine.run_once().await.unwrap();
    assert_eq!(
        (r.enacted, r.failed),
        (0, 0),
        "a reported instance is not re-reported: {r:?}"
    );
    assert!(tagged(&w, id).await.is_empty());
    // Back to recreate: the next interval makes the reported instance again.
    app.patch(
        &format!("/xos/controllers/{}/", w.controller),
        json!({"settings": json!({"public_images": [UBUNTU], "drift": "recreate"}).to_string()}),
    )
    .await;
    w.engine.run_once().await.unwrap();
    let again = tagged(&w, id).await;
    assert_eq!(again.len(), 1, "re-created once the setting says recreate");
    let v = instance(app, id).await;
    assert!(status(&v).starts_with("1 - re-created:"), "{v}");
    assert_eq!(v["instance_id"], again[0].id.as_str());
    assert_ne!(v["observed_state"], "gone", "{v}");
});

both!(an_idle_pass_makes_one_describe_call, async |app: &TestApp| {
    let Some(w) = world(app, json!({"public_images": [UBUNTU]})).await else {
        return;
    };
    w.engine.run_once().await.unwrap();
    for i in 0..5 {
        new_instance(app, &w, &format!("idle-{i}"), UBUNTU, "t2.micro").await;
    }
    w.engine.run_once().await.unwrap();
    // The drift pass after the runs reflects "running" (moto reports "pending" at first).
    w.engine.run_once().await.unwrap();
    // An engine whose catalog already ran and is not due: only the drift step talks to EC2.
    // moto moves instances from "pending" to "running" on its own clock, so a pass may still
    // reflect a late transition: settle first (bounded), then measure an idle pass.
    let quiet = engine(app, &w.backend, Duration::from_secs(3600)).await;
    for _ in 0..10 {
        if quiet.run_once().await.unwrap().enacted == 0 {
            break;
        }
    }
    let before = w.backend.api_calls();
    let r = quiet.run_once().await.unwrap();
    assert_eq!((r.enacted, r.failed), (0, 0), "{r:?}");
    let calls = w.backend.api_calls() - before;
    eprintln!("EC2 API calls in an idle pass with 5 instances: {calls}");
    assert_eq!(calls, 1, "one DescribeInstances per controller and interval");
});

both!(
    ec2_errors_become_status_and_stop_nothing_else,
    async |app: &TestApp| {
        let Some(w) = world(app, json!({"public_images": [UBUNTU]})).await else {
            return;
        };
        w.engine.run_once().await.unwrap();
        // A bad AMI: a clear status, with a backoff; the good instance of the same pass runs.
        let node = id_of(app, &format!("/xos/nodes/?name={REGION}b")).await;
        let bad_image = make(
            app,
            "Image",
            json!({"name": "gone", "disk_format": "ami", "container_format": "ami", "path": "ami-00000000"}),
        )
        .await;
        let bad = make(
            app,
            "Instance",
            json!({"name": "bad", "slice": w.slice, "node": node, "image": bad_image}),
        )
        .await;
        let good = new_instance(app, &w, "good", UBUNTU, "t2.micro").await;
        let r = w.engine.run_once().await.unwrap();
        assert_eq!((r.enacted, r.failed), (1, 1), "{r:?}");
        let v = instance(app, bad).await;
        assert!(
            status(&v).starts_with("2 - EC2 refused DescribeImages: InvalidAMIID.NotFound"),
            "{v}"
        );
        assert!(status(&instance(app, good).await).starts_with("1 - OK"));
        // An instance type EC2 does not have (this moto validates them).
        let bogus = make(app, "Flavor", json!({"name": "t9.bogus", "flavor": "t9.bogus"})).await;
        let image = id_of(app, &format!("/xos/images/?path={UBUNTU}")).await;
        let badtype = make(
            app,
            "Instance",
            json!({"name": "badtype", "slice": w.slice, "node": node, "image": image, "flavor": bogus}),
        )
        .await;
        w.engine.run_once().await.unwrap();
        let v = instance(app, badtype).await;
        assert!(status(&v).contains("InvalidInstanceType.NotFound"), "{v}");
        // An image without an AMI id.
        let plain = make(
            app,
            "Image",
            json!({"name": "plain", "disk_format": "raw", "container_format": "bare"}),
        )
        .await;
        let noami = make(
            app,
            "Instance",
            json!({"name": "noami", "slice": w.slice, "node": node, "image": plain}),
        )
        .await;
        w.engine.run_once().await.unwrap();
        assert!(status(&instance(app, noami).await).contains("image 'plain' has no AMI id"));

        // An unreachable endpoint, and bad credentials (a moto that enforces authentication): each
        // a clear status on the objects of that controller only.
        let strict = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
            .await
            .expect("second moto");
        let cases = [
            ("down", "http://127.0.0.1:9/".to_string(), "unreachable"),
            ("badkeys", strict.url.clone(), "AuthFailure"),
        ];
        let site = app.site_id().await;
        for (name, url, expect) in cases {
            let dep = make(app, "Deployment", json!({"name": format!("ec2-{name}")})).await;
            let ctl = make(
            app,
            "Controller",
            json!({"name": format!("ec2-{name}"), "backend_type": "EC2", "version": "1", "deployment": dep,
                   "auth_url": url, "admin_user": "AKIDWRONG", "admin_password": "wrong", "domain": REGION}),
        )
        .await;
            let sd = make(
                app,
                "SiteDeployment",
                json!({"site": site, "deployment": dep, "controller": ctl}),
            )
            .await;
            let n = make(
                app,
                "Node",
                json!({"name": format!("node-{name}"), "site_deployment": sd}),
            )
            .await;
            let image = id_of(app, &format!("/xos/images/?path={UBUNTU}")).await;
            let i = make(
                app,
                "Instance",
                json!({"name": name, "slice": w.slice, "node": n, "image": image}),
            )
            .await;
            w.engine.run_once().await.unwrap();
            let v = instance(app, i).await;
            assert!(
                status(&v).starts_with("2 - ") && status(&v).contains(expect),
                "{name}: {v}"
            );
            let c = get(app, &format!("/xos/controllers/{ctl}/")).await;
            assert!(
                status(&c).starts_with("2 - ") && status(&c).contains(expect),
                "{name}: {c}"
            );
            // The secret never shows in a status.
            assert!(
                !status(&v).contains("wrong") || status(&v).contains("AKIDWRONG"),
                "{v}"
            );
        }
        // The good instance is untouched by all this.
        assert!(status(&instance(app, good).await).starts_with("1 - OK"));
        assert_eq!(tagged(&w, good).await.len(), 1);
    }
);

/// `xos sync --once` on the app's database; with a crash point, it must die of SIGKILL.
fn sync_once(config: &std::path::Path, crash: Option<&str>) {
    let mut cmd = Command::new(XOS);
    cmd.args(["--config", config.to_str().unwrap(), "sync", "--once"])
        .env("RUST_LOG", "warn");
    if let Some(c) = crash {
        cmd.env("XOS_SYNC_CRASH", c);
    }
    let out = cmd.output().expect("xos sync");
    let status = out.status;
    // Shown when the test fails.
    eprintln!(
        "xos sync --once ({crash:?}): {status}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    match crash {
        Some(_) => assert_eq!(status.signal(), Some(9), "xos sync should have crashed: {status}"),
        None => assert!(status.success(), "xos sync failed: {status}"),
    }
}

both!(
    a_crash_between_run_and_record_leaves_one_instance,
    async |app: &TestApp| {
        let Some(w) = world(app, json!({"public_images": [UBUNTU]})).await else {
            return;
        };
        w.engine.run_once().await.unwrap();
        let id = new_instance(app, &w, "crashy", UBUNTU, "t2.micro").await;
        let dir =
            std::env::temp_dir().join(format!("xos-ec2-crash-{}-{:?}", std::process::id(), app.backend));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("xos.toml");
        std::fs::write(
            &config,
            format!(
                "name = \"ec2-crash\"\ndatabase_url = \"{}\"\nstate_dir = \"{}\"\nmodel_policies = false\n",
                app.state.config.database_url,
                dir.display()
            ),
        )
        .unwrap();
        // The catalog ran a moment ago (not due), so the instance is the first object to pass the
        // point: killed after RunInstances returned, before its id was written.
        sync_once(&config, Some("after_backend:1"));
        assert_eq!(tagged(&w, id).await.len(), 1, "the instance was run");
        let v = instance(app, id).await;
        assert!(
            v["instance_id"].is_null() || v["instance_id"] == "",
            "not recorded: {v}"
        );
        // A restarted synchronizer finds it by its tag and adopts it: still exactly one.
        sync_once(&config, None);
        let live = tagged(&w, id).await;
        assert_eq!(live.len(), 1, "{live:?}");
        // The API sees another process's write once its SQLite watch (or Postgres LISTEN) has.
        let seen = within(Duration::from_secs(5), || async {
            let v = instance(app, id).await;
            v["instance_id"].is_string().then_some(v)
        })
        .await;
        let v = match seen {
            Some(v) => v,
            None => instance(app, id).await,
        };
        assert_eq!(v["instance_id"], live[0].id.as_str(), "{v}");
        assert!(status(&v).starts_with("1 - OK"), "{v}");
        let pending = default_fetch_pending(&app.store, "Instance", false, None)
            .await
            .unwrap();
        assert!(pending.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
);

both!(
    an_instance_boots_with_the_keys_of_its_slice_members_in_its_user_data,
    async |app: &TestApp| {
        let Some(w) = world(app, json!({"public_images": [UBUNTU]})).await else {
            return;
        };
        w.engine.run_once().await.unwrap();
        // A member of the slice with a key of its own (the creator's is PUBLIC_KEY).
        let member_key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPydY7BXiZuui6HdqO3lWFz2GrlV+qB7l0RP/lqjV5fZ member@xos";
        let member = app
            .make_user_with_key("ec2-member@mysite.org", "member-password", member_key)
            .await;
        app.add_slice_member(w.slice, member).await;
        let id = new_instance(app, &w, "keyed-1", UBUNTU, "t2.micro").await;
        let r = w.engine.run_once().await.unwrap();
        assert_eq!(r.failed, 0, "{r:?} {}", instance(app, id).await);
        let ec2_id = instance(app, id).await["instance_id"]
            .as_str()
            .unwrap()
            .to_string();
        // What EC2 holds: the user data RunInstances was given.
        let xml = w
            .moto
            .client()
            .call(
                "DescribeInstanceAttribute",
                &[
                    ("InstanceId".into(), ec2_id),
                    ("Attribute".into(), "userData".into()),
                ],
            )
            .await
            .unwrap();
        let encoded = xml
            .split("<value>")
            .nth(1)
            .and_then(|v| v.split("</value>").next())
            .unwrap_or_else(|| panic!("no user data: {xml}"));
        use base64::Engine as _;
        let user_data = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            user_data,
            format!("#cloud-config\nssh_authorized_keys:\n  - \"{member_key}\"\n  - \"{PUBLIC_KEY}\"\n")
        );
    }
);
