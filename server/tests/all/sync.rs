//! The synchronizer framework on SQLite and Postgres: pending objects, version-based enactment,
//! status write-back, backoff, failed dependencies, deletions and purges, model policies, the
//! event stream, and two workers sharing one Postgres database.

use crate::common;

use axum::http::StatusCode;
use common::{Backend, TestApp};
use serde_json::{Value, json};
use server::store::Record;
use server::sync::engine::{Engine, EngineOptions, ManualClock, NoopStep};
use server::sync::{Enacted, Step, StepContext, SyncError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::eventually;

fn opts() -> EngineOptions {
    EngineOptions {
        backoff_base: Duration::from_millis(300),
        ..Default::default()
    }
}

async fn engine(app: &TestApp, steps: Vec<Arc<dyn Step>>, opts: EngineOptions) -> Engine {
    let ctx = StepContext::new(app.store.clone(), std::env::temp_dir());
    Engine::new(ctx, steps, opts).await.expect("engine")
}

async fn obj(app: &TestApp, plural: &str, id: i64) -> Value {
    let (s, v) = app.get(&format!("/xos/{plural}/{id}/?no_hyperlinks=1")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Counts calls and fails for objects whose name contains "bad" (while `failing` holds).
struct Probe {
    model: &'static str,
    calls: Mutex<HashMap<i64, usize>>,
    deletes: Mutex<Vec<i64>>,
    failing: Mutex<bool>,
    delete_fails_once: Mutex<bool>,
    on_sync: Option<Box<dyn Fn(i64) + Send + Sync>>,
    delay: Duration,
}

impl Probe {
    fn new(model: &'static str) -> Probe {
        Probe {
            model,
            calls: Mutex::new(HashMap::new()),
            deletes: Mutex::new(Vec::new()),
            failing: Mutex::new(true),
            delete_fails_once: Mutex::new(false),
            on_sync: None,
            delay: Duration::ZERO,
        }
    }
    fn calls(&self, id: i64) -> usize {
        self.calls.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl Step for Probe {
    fn name(&self) -> &'static str {
        self.model
    }
    fn provides(&self) -> Vec<&'static str> {
        vec![self.model]
    }
    fn observes(&self) -> &'static str {
        self.model
    }
    async fn sync_record(&self, _: &StepContext, o: &Record) -> Result<Enacted, SyncError> {
        *self.calls.lock().unwrap().entry(o.id()).or_default() += 1;
        if !self.delay.is_zero() {
            // Deliberate: a slow backend, for tests of what happens while a pass runs.
            tokio::time::sleep(self.delay).await;
        }
        if let Some(f) = &self.on_sync {
            f(o.id());
        }
        let name = o.get_str("name").unwrap_or_default().to_string();
        if name.contains("bad") && *self.failing.lock().unwrap() {
            return Err(SyncError::Failed(format!("backend refused {name}")));
        }
        Ok(Enacted::ok())
    }
    async fn delete_record(&self, _: &StepContext, o: &Record) -> Result<(), SyncError> {
        let mut once = self.delete_fails_once.lock().unwrap();
        if *once {
            *once = false;
            return Err(SyncError::Failed("backend delete failed".into()));
        }
        self.deletes.lock().unwrap().push(o.id());
        Ok(())
    }
}

both!(
    changed_objects_are_enacted_once_per_change,
    async |app: &TestApp| {
        let probe = Arc::new(Probe::new("Slice"));
        let e = engine(app, vec![probe.clone()], opts()).await;
        let s = app.make_slice("one").await["id"].as_i64().unwrap();
        let r = e.run_once().await.unwrap();
        assert_eq!(r.enacted, 1);
        let v = obj(app, "slices", s).await;
        assert_eq!(v["backend_status"], "1 - OK");
        assert!(v["enacted"].is_string());
        // Nothing changed: nothing to do (status writes do not make it look changed).
        assert_eq!(e.run_once().await.unwrap().enacted, 0);
        assert_eq!(probe.calls(s), 1);
        app.patch(&format!("/xos/slices/{s}/"), json!({"description": "again"}))
            .await;
        assert_eq!(e.run_once().await.unwrap().enacted, 1);
        assert_eq!(probe.calls(s), 2);
        // lazy_blocked and no_sync objects are left alone.
        app.patch(&format!("/xos/slices/{s}/"), json!({"lazy_blocked": true}))
            .await;
        assert_eq!(e.run_once().await.unwrap().enacted, 0);
    }
);

both!(
    a_change_made_while_syncing_is_synced_again,
    async |app: &TestApp| {
        let s = app.make_slice("racy").await["id"].as_i64().unwrap();
        let store = app.store.clone();
        let mut probe = Probe::new("Slice");
        let changed = Arc::new(Mutex::new(false));
        let flag = changed.clone();
        probe.on_sync = Some(Box::new(move |id| {
            if !*flag.lock().unwrap() {
                *flag.lock().unwrap() = true;
                let store = store.clone();
                // A user edits the slice while the backend call runs.
                std::thread::spawn(move || {
                    tokio::runtime::Runtime::new().unwrap().block_on(async {
                        let m = store.model("Slice");
                        let input = json!({"description": "edited during sync"});
                        store
                            .update(
                                server::store::Actor::System,
                                m,
                                id,
                                input.as_object().unwrap(),
                                true,
                            )
                            .await
                            .unwrap();
                    })
                })
                .join()
                .unwrap();
            }
        }));
        let probe = Arc::new(probe);
        let e = engine(app, vec![probe.clone()], opts()).await;
        e.run_once().await.unwrap();
        assert_eq!(e.run_once().await.unwrap().enacted, 1, "the edit is enacted too");
        assert_eq!(probe.calls(s), 2);
        assert_eq!(e.run_once().await.unwrap().enacted, 0);
    }
);

both!(
    failures_back_off_per_object_and_never_stop_others,
    async |app: &TestApp| {
        let probe = Arc::new(Probe::new("Slice"));
        let clock = Arc::new(ManualClock::new());
        let e = engine(
            app,
            vec![probe.clone()],
            EngineOptions {
                clock: clock.clone(),
                ..opts()
            },
        )
        .await;
        let good = app.make_slice("good").await["id"].as_i64().unwrap();
        let bad = app.make_slice("bad").await["id"].as_i64().unwrap();
        let r = e.run_once().await.unwrap();
        assert_eq!((r.enacted, r.failed), (1, 1));
        let v = obj(app, "slices", bad).await;
        assert_eq!(v["backend_status"], "2 - backend refused mysite_bad");
        let register: Value = serde_json::from_str(v["backend_register"].as_str().unwrap()).unwrap();
        assert_eq!(register["exponent"], 1);
        assert_eq!(obj(app, "slices", good).await["backend_status"], "1 - OK");
        // Backing off: the next pass leaves it alone.
        let r = e.run_once().await.unwrap();
        assert_eq!((r.failed, r.skipped), (0, 1));
        assert_eq!(probe.calls(bad), 1);
        // Still backing off just before its time, by the engine's clock.
        clock.advance(Duration::from_millis(290));
        let r = e.run_once().await.unwrap();
        assert_eq!((r.failed, r.skipped), (0, 1));
        // After the backoff (300 ms, `opts`) it is retried; fixed, it is enacted and the
        // backoff resets.
        clock.advance(Duration::from_millis(20));
        *probe.failing.lock().unwrap() = false;
        assert_eq!(e.run_once().await.unwrap().enacted, 1);
        let v = obj(app, "slices", bad).await;
        assert_eq!(v["backend_status"], "1 - OK");
        let register: Value = serde_json::from_str(v["backend_register"].as_str().unwrap()).unwrap();
        assert_eq!(register["exponent"], 0);
    }
);

both!(
    objects_whose_dependency_failed_are_skipped,
    async |app: &TestApp| {
        let slices = Arc::new(Probe::new("Slice"));
        let images = Arc::new(NoopStep { model: "Image" });
        let instances = Arc::new(Probe::new("Instance"));
        let e = engine(app, vec![instances.clone(), slices.clone(), images], opts()).await;
        let order = e.order();
        let layer = |n: &str| order.iter().position(|l| l.contains(&n)).unwrap();
        assert!(
            layer("Slice") < layer("Instance") && layer("noop") < layer("Slice"),
            "{order:?}"
        );
        let site = app.site_id().await;
        let (_, dep) = app.post("/xos/deployments/", json!({"name": "d"})).await;
        let (_, sd) = app
            .post(
                "/xos/sitedeployments/",
                json!({"site": site, "deployment": dep["id"]}),
            )
            .await;
        let (_, node) = app
            .post("/xos/nodes/", json!({"name": "n", "site_deployment": sd["id"]}))
            .await;
        let (_, image) = app
            .post(
                "/xos/images/",
                json!({"name": "i", "disk_format": "raw", "container_format": "bare"}),
            )
            .await;
        let bad = app.make_slice("bad").await["id"].as_i64().unwrap();
        let (s, inst) = app
            .post(
                "/xos/instances/",
                json!({"slice": bad, "image": image["id"], "node": node["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{inst}");
        e.run_once().await.unwrap();
        let v = obj(app, "instances", inst["id"].as_i64().unwrap()).await;
        assert_eq!(v["backend_status"], "2 - Failed dependency: Slice mysite_bad");
        assert_eq!(instances.calls(inst["id"].as_i64().unwrap()), 0);
    }
);

both!(
    deleted_objects_are_purged_only_after_the_backend_delete,
    async |app: &TestApp| {
        let probe = Arc::new(Probe::new("Slice"));
        *probe.delete_fails_once.lock().unwrap() = true;
        let clock = Arc::new(ManualClock::new());
        let e = engine(
            app,
            vec![probe.clone()],
            EngineOptions {
                clock: clock.clone(),
                ..opts()
            },
        )
        .await;
        let s = app.make_slice("gone").await["id"].as_i64().unwrap();
        e.run_once().await.unwrap();
        app.delete(&format!("/xos/slices/{s}/")).await;
        assert_eq!(
            app.count("core_slice").await,
            1,
            "soft-deleted: the synchronizer observes slices"
        );
        let r = e.run_once().await.unwrap();
        assert_eq!((r.deleted, r.failed), (0, 1));
        assert_eq!(
            app.count("core_slice").await,
            1,
            "kept while the backend delete fails"
        );
        // The failed delete's backoff (300 ms, `opts`) runs out on the engine's clock.
        clock.advance(Duration::from_millis(350));
        assert_eq!(e.run_once().await.unwrap().deleted, 1);
        assert_eq!(
            app.count("core_slice").await,
            0,
            "purged after the backend delete"
        );
        assert_eq!(*probe.deletes.lock().unwrap(), vec![s]);
    }
);

both!(model_policies_keep_controller_links, async |app: &TestApp| {
    let e = engine(
        app,
        vec![],
        EngineOptions {
            policies: server::sync::policies::core(),
            ..opts()
        },
    )
    .await;
    let site = app.site_id().await;
    let (_, dep) = app
        .post("/xos/deployments/?no_hyperlinks=1", json!({"name": "local"}))
        .await;
    let (_, ctl) = app
        .post(
            "/xos/controllers/?no_hyperlinks=1",
            json!({"name": "c1", "backend_type": "local", "version": "1", "deployment": dep["id"]}),
        )
        .await;
    let (_, sd) = app
        .post(
            "/xos/sitedeployments/?no_hyperlinks=1",
            json!({"site": site, "deployment": dep["id"]}),
        )
        .await;
    let slice = app.make_slice("linked").await["id"].as_i64().unwrap();
    let r = e.run_once().await.unwrap();
    assert!(r.policed >= 3, "{r:?}");
    let (_, cs) = app
        .get(&format!("/xos/controllerslices/?slice={slice}&no_hyperlinks=1"))
        .await;
    assert_eq!(cs.as_array().unwrap().len(), 1, "{cs}");
    assert_eq!(cs[0]["controller"], ctl["id"]);
    let (_, sites) = app.get(&format!("/xos/controllersites/?site={site}")).await;
    assert_eq!(sites.as_array().unwrap().len(), 1);
    let (_, users) = app.get("/xos/controllerusers/").await;
    assert_eq!(users.as_array().unwrap().len(), 1, "the admin");
    // A second controller of the deployment: links for it too (the Controller policy).
    let (_, ctl2) = app
        .post(
            "/xos/controllers/?no_hyperlinks=1",
            json!({"name": "c2", "backend_type": "local", "version": "1", "deployment": dep["id"]}),
        )
        .await;
    e.run_once().await.unwrap();
    e.run_once().await.unwrap();
    let (_, cs) = app.get(&format!("/xos/controllerslices/?slice={slice}")).await;
    assert_eq!(cs.as_array().unwrap().len(), 2);
    // The site leaves the deployment: its links go.
    app.delete(&format!("/xos/sitedeployments/{}/", sd["id"])).await;
    app.patch(
        &format!("/xos/slices/{slice}/"),
        json!({"description": "re-police"}),
    )
    .await;
    e.run_once().await.unwrap();
    let (_, cs) = app.get(&format!("/xos/controllerslices/?slice={slice}")).await;
    assert_eq!(cs, json!([]));
    // Deleting a slice removes its links (cascade).
    let _ = ctl2;
});

both!(two_workers_never_enact_an_object_twice, async |app: &TestApp| {
    if app.backend != Backend::Postgres {
        return; // SQLite is the single-process embedded database
    }
    let mut p1 = Probe::new("Slice");
    p1.delay = Duration::from_millis(20);
    let mut p2 = Probe::new("Slice");
    p2.delay = Duration::from_millis(20);
    let (p1, p2) = (Arc::new(p1), Arc::new(p2));
    // The second worker has its own pool and connection, as a separate `xos sync` would.
    let store2 = server::store::Store::open(
        server::db::Db::connect(&app.state.config.database_url)
            .await
            .unwrap(),
        app::registry::registry(),
    )
    .await
    .unwrap();
    let e1 = engine(app, vec![p1.clone()], opts()).await;
    let ctx2 = StepContext::new(store2.clone(), std::env::temp_dir());
    let e2 = Engine::new(ctx2, vec![p2.clone() as Arc<dyn Step>], opts())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(app.make_slice(&format!("w{i}")).await["id"].as_i64().unwrap());
    }
    let (r1, r2) = tokio::join!(e1.run_once(), e2.run_once());
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(r1.enacted + r2.enacted, 40, "{r1:?} {r2:?}");
    assert!(
        r1.enacted > 0 && r2.enacted > 0,
        "both workers took part: {r1:?} {r2:?}"
    );
    for id in ids {
        assert_eq!(p1.calls(id) + p2.calls(id), 1, "slice {id} enacted once");
    }
    store2.db().close().await;
});

both!(
    the_event_stream_carries_changes_the_caller_may_see,
    async |app: &TestApp| {
        use axum::body::Body;
        use futures::StreamExt;
        let open = |who: (&'static str, &'static str), last: Option<String>| {
            let mut req = common::build(axum::http::Method::GET, "/xos/events", Some(who), None);
            if let Some(l) = last {
                req.headers_mut().insert("last-event-id", l.parse().unwrap());
            }
            let router = app.router.clone();
            async move { tower::ServiceExt::oneshot(router, req).await.unwrap() }
        };
        // The watcher belongs to one slice (set up before its stream opens).
        let watcher_id = app.make_user("watcher@mysite.org", "watcher-password").await;
        let theirs = app.make_slice("theirs").await["id"].as_i64().unwrap();
        let (_, roles) = app.get("/xos/slice_roles/?role=access").await;
        let (s, v) = app
            .post(
                "/xos/slice_privileges/",
                serde_json::json!({"user": watcher_id, "slice": theirs, "role": roles[0]["id"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let resp = open(common::ADMIN, None).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut body = resp.into_body().into_data_stream();
        let watcher = open(("watcher@mysite.org", "watcher-password"), None).await;
        let mut wbody = watcher.into_body().into_data_stream();
        let slice = app.make_slice("watched").await["id"].as_i64().unwrap();
        let next_change =
            async |b: &mut (
                            dyn futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin + Send
                        )|
                   -> String {
                loop {
                    let chunk = tokio::time::timeout(Duration::from_secs(5), b.next())
                        .await
                        .expect("an event in time")
                        .unwrap()
                        .unwrap();
                    let text = String::from_utf8(chunk.to_vec()).unwrap();
                    if text.contains("event: change") && text.contains("\"Slice\"") {
                        return text;
                    }
                }
            };
        // The create of `theirs` (committed before the stream opened) may still be on its way:
        // the admin's first event about the new slice is what counts.
        let text = loop {
            let text = next_change(&mut body).await;
            if !text.contains(&format!("\"id\":{theirs}")) {
                break text;
            }
        };
        assert!(text.contains(&format!("\"id\":{slice}")), "{text}");
        let id_line = text
            .lines()
            .find(|l| l.starts_with("id: "))
            .unwrap()
            .trim_start_matches("id: ")
            .to_string();
        // The watcher may not see the admin's slice: neither its create nor its delete reaches
        // it (not even the id); the delete of its own slice does.
        app.delete(&format!("/xos/slices/{slice}/")).await;
        app.delete(&format!("/xos/slices/{theirs}/")).await;
        let text = loop {
            let text = next_change(&mut wbody).await;
            // (the create of its own slice may arrive first, for the same reason)
            if !(text.contains(&format!("\"id\":{theirs}")) && text.contains("\"kind\":\"create\"")) {
                break text;
            }
        };
        assert!(
            text.contains("\"kind\":\"delete\"") && text.contains(&format!("\"id\":{theirs}")),
            "only the watcher's own slice: {text}"
        );
        // Resuming after the first event replays the delete.
        let resumed = open(common::ADMIN, Some(id_line)).await;
        let mut rbody = resumed.into_body().into_data_stream();
        let text = next_change(&mut rbody).await;
        assert!(text.contains("\"kind\":\"delete\""), "{text}");
        let stale = open(common::ADMIN, Some("otherepoch-1".into())).await;
        let mut sbody = stale.into_body().into_data_stream();
        let chunk = tokio::time::timeout(Duration::from_secs(5), sbody.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8(chunk.to_vec())
                .unwrap()
                .contains("event: reset")
        );
        let _: Body = Body::empty();
    }
);

type Body = axum::body::BodyDataStream;

/// Open `/xos/events` with `req`; the status and the body's stream.
async fn open_stream(app: &TestApp, req: axum::http::Request<axum::body::Body>) -> (StatusCode, Body) {
    let resp = tower::ServiceExt::oneshot(app.router.clone(), req).await.unwrap();
    (resp.status(), resp.into_body().into_data_stream())
}

fn events_as(who: (&str, &str)) -> axum::http::Request<axum::body::Body> {
    common::build(axum::http::Method::GET, "/xos/events", Some(who), None)
}

/// Read the stream until it ends (`None`) or `within` passes (`Some(what was read)`).
async fn ends_within(body: &mut Body, within: Duration) -> Option<String> {
    use futures::StreamExt;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => return Some(seen),
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
        }
    }
}

both!(
    an_open_stream_follows_its_readers_rights,
    async |app: &TestApp| {
        // Deactivated while its stream is open: the stream ends at once.
        let uid = app.make_user("reader@mysite.org", "reader-password").await;
        let (s, mut body) = open_stream(app, events_as(("reader@mysite.org", "reader-password"))).await;
        assert_eq!(s, StatusCode::OK);
        app.patch(&format!("/xos/users/{uid}/"), json!({"is_active": false}))
            .await;
        assert_eq!(
            ends_within(&mut body, Duration::from_secs(2)).await,
            None,
            "the stream ended"
        );

        // Its password changed (by an admin): the stream opened with the old one ends.
        let other = app.make_user("other@mysite.org", "other-password").await;
        let (_, mut body) = open_stream(app, events_as(("other@mysite.org", "other-password"))).await;
        app.patch(
            &format!("/xos/users/{other}/"),
            json!({"password": "changed-password"}),
        )
        .await;
        assert_eq!(
            ends_within(&mut body, Duration::from_secs(2)).await,
            None,
            "the stream ended"
        );

        // An admin demoted while its stream is open: it keeps reading, as the user it now is.
        let boss = app.make_user("boss@mysite.org", "boss-password").await;
        app.patch(&format!("/xos/users/{boss}/"), json!({"is_admin": true}))
            .await;
        let (_, mut body) = open_stream(app, events_as(("boss@mysite.org", "boss-password"))).await;
        app.patch(&format!("/xos/users/{boss}/"), json!({"is_admin": false}))
            .await;
        let hidden = app.make_slice("hidden").await["id"].as_i64().unwrap();
        let seen = ends_within(&mut body, Duration::from_secs(1))
            .await
            .expect("still open");
        assert!(
            !seen.contains(&format!("\"id\":{hidden}")),
            "no admin view any more: {seen}"
        );
    }
);

async fn logged_in_stream_ends_at_logout(backend: Backend) {
    let Some(app) = TestApp::new(backend).await else {
        return;
    };
    let (jar, csrf) = common::login_jar(&app, common::ADMIN).await;
    let with_jar = |method: axum::http::Method, path: &str| {
        axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "testserver")
            .header("origin", "http://testserver")
            .header("cookie", jar.clone())
            .header("x-csrftoken", csrf.clone())
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let (s, mut body) = open_stream(&app, with_jar(axum::http::Method::GET, "/xos/events")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = app.call(with_jar(axum::http::Method::POST, "/logout")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    // Within the stream's periodic check (5 s), with no event to wake it.
    assert_eq!(
        ends_within(&mut body, Duration::from_secs(7)).await,
        None,
        "the stream ended"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_in_stream_ends_at_logout_sqlite() {
    logged_in_stream_ends_at_logout(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_in_stream_ends_at_logout_postgres() {
    logged_in_stream_ends_at_logout(Backend::Postgres).await;
}

async fn streams_are_limited(backend: Backend) {
    let Some(app) = TestApp::with_config(backend, |c| {
        c.max_event_streams_per_user = 2;
        c.max_event_streams = 3;
    })
    .await
    else {
        return;
    };
    app.make_user("a@mysite.org", "a-password").await;
    let a = ("a@mysite.org", "a-password");
    let (s1, b1) = open_stream(&app, events_as(a)).await;
    let (s2, _b2) = open_stream(&app, events_as(a)).await;
    let (s3, _) = open_stream(&app, events_as(a)).await;
    assert_eq!(
        (s1, s2, s3),
        (StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS)
    );
    // Another user still gets one, up to the total.
    let (s, _b4) = open_stream(&app, events_as(common::ADMIN)).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = open_stream(&app, events_as(common::ADMIN)).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "the total is reached");
    // A stream that closes gives its place back.
    drop(b1);
    eventually(
        "the closed stream to give its place back",
        Duration::from_secs(5),
        || async { (open_stream(&app, events_as(a)).await.0 == StatusCode::OK).then_some(()) },
    )
    .await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_limited_sqlite() {
    streams_are_limited(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_limited_postgres() {
    streams_are_limited(Backend::Postgres).await;
}

/// Shutdown on Postgres: with a synchronizer (its lease connection) and the event listener (its
/// LISTEN connection) alive, closing the pool returns at once; neither keeps a pooled
/// connection checked out (`xos bench-sync` once hung in this close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_pool_closes_while_the_engine_and_listener_live() {
    let Some(app) = TestApp::new(Backend::Postgres).await else {
        return;
    };
    let e = engine(&app, Vec::new(), opts()).await;
    e.run_once().await.unwrap();
    // The listener (started with the app's state) is connected: its LISTEN shows.
    let channel = app.store.notify_channel().expect("the schema's channel");
    eventually(
        "the event listener to LISTEN",
        Duration::from_secs(10),
        || async {
            let mut sql = server::db::Sql::new("SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE ");
            sql.bind(server::db::Value::Text(format!("LISTEN \"{channel}\"%")));
            let rows = app
                .store
                .db()
                .fetch(&sql, &[app::registry::SqlType::Int])
                .await
                .expect("pg_stat_activity");
            (rows[0][0].as_int() > Some(0)).then_some(())
        },
    )
    .await;
    let closed = tokio::time::timeout(Duration::from_secs(5), app.store.db().close()).await;
    assert!(closed.is_ok(), "the pool did not close within 5 s");
    drop(e);
    app.finish().await;
}

both!(
    a_controller_link_tells_its_site_slice_and_user,
    async |app: &TestApp| {
        use server::store::{Actor, StatusUpdate};
        let e = engine(
            app,
            vec![],
            EngineOptions {
                policies: server::sync::policies::core(),
                ..opts()
            },
        )
        .await;
        let site = app.site_id().await;
        let (_, dep) = app
            .post("/xos/deployments/?no_hyperlinks=1", json!({"name": "local"}))
            .await;
        let ctl = |name: &str| json!({"name": name, "backend_type": "local", "version": "1", "deployment": dep["id"]});
        app.post("/xos/controllers/?no_hyperlinks=1", ctl("c1")).await;
        app.post("/xos/controllers/?no_hyperlinks=1", ctl("c2")).await;
        app.post(
            "/xos/sitedeployments/?no_hyperlinks=1",
            json!({"site": site, "deployment": dep["id"]}),
        )
        .await;
        let slice = app.make_slice("told").await["id"].as_i64().unwrap();
        e.run_once().await.unwrap();
        e.run_once().await.unwrap();
        let (_, links) = app
            .get(&format!("/xos/controllerslices/?slice={slice}&no_hyperlinks=1"))
            .await;
        let links: Vec<i64> = links
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect();
        assert_eq!(links.len(), 2);
        // What a backend's step writes on a link row.
        let set = |model: &'static str, id: i64, status: &'static str| async move {
            let mut u = app.store.begin(Actor::System).await.unwrap();
            u.set_status(
                app.store.model(model),
                id,
                &StatusUpdate {
                    backend_status: Some(app::registry::BackendStatus::parse(status)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            u.commit().await.unwrap();
        };
        let slice_status = || async {
            app.get(&format!("/xos/slices/{slice}/")).await.1["backend_status"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(slice_status().await.starts_with("0 - "), "nothing enacted yet");
        // One link enacted: the slice says so.
        set("ControllerSlice", links[0], "1 - OK, project mysite_told").await;
        e.run_once().await.unwrap();
        assert_eq!(slice_status().await, "1 - OK, project mysite_told");
        // The other fails: the error wins, and stays (no flip between the two on later passes).
        set("ControllerSlice", links[1], "2 - quota exceeded").await;
        e.run_once().await.unwrap();
        assert_eq!(slice_status().await, "2 - quota exceeded");
        let r = e.run_once().await.unwrap();
        assert_eq!(r.policed, 0, "{r:?}");
        assert_eq!(slice_status().await, "2 - quota exceeded");
        // Fixed: back to OK.
        set("ControllerSlice", links[1], "1 - OK, project mysite_told").await;
        e.run_once().await.unwrap();
        assert_eq!(slice_status().await, "1 - OK, project mysite_told");
        // The same for a site and a user.
        let (_, cs) = app
            .get(&format!("/xos/controllersites/?site={site}&no_hyperlinks=1"))
            .await;
        set(
            "ControllerSite",
            cs[0]["id"].as_i64().unwrap(),
            "1 - OK, project mysite",
        )
        .await;
        let (_, cu) = app.get("/xos/controllerusers/?no_hyperlinks=1").await;
        set(
            "ControllerUser",
            cu[0]["id"].as_i64().unwrap(),
            "2 - no such domain",
        )
        .await;
        e.run_once().await.unwrap();
        assert_eq!(
            app.get(&format!("/xos/sites/{site}/")).await.1["backend_status"],
            "1 - OK, project mysite"
        );
        let user = cu[0]["user"].as_i64().unwrap();
        assert_eq!(
            app.get(&format!("/xos/users/{user}/")).await.1["backend_status"],
            "2 - no such domain"
        );
    }
);
