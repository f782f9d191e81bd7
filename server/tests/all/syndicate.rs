//! Syndicate storage against a real Garage (`make garage` starts one node on loopback and
//! exports `XOS_GARAGE_*`): volumes become buckets with quotas, access rights and volume-slices
//! become keys' permissions, proven by S3 calls with the keys XOS issued; revocation, archive,
//! quotas, deletion of a non-empty volume, crash safety and bad input.
//!
//! Without Garage the tests are skipped, unless `XOS_REQUIRE_GARAGE=1` (CI), which fails them.

use crate::common;

use common::TestApp;
use serde_json::{Value, json};
use server::sync::StepContext;
use server::sync::engine::{Engine, EngineOptions};
use service_syndicate::server::Drift;
use service_syndicate::server::garage::{Garage, GarageConfig, Perm};
use service_syndicate::server::{Principal, Settings, bucket_alias};
use std::time::Duration;
use testkit::eventually;

/// The Garage the Makefile started, or None (skip) when there is none.
async fn garage() -> Option<Garage> {
    let required = std::env::var("XOS_REQUIRE_GARAGE").is_ok_and(|v| v == "1");
    let config = std::env::var("XOS_GARAGE_ADMIN_TOKEN_FILE")
        .ok()
        .and_then(|_| GarageConfig::from_env(&Settings::default().data_dir).ok());
    let Some(config) = config else {
        assert!(
            !required,
            "Garage required (make garage) but XOS_GARAGE_ADMIN_TOKEN_FILE is not readable"
        );
        eprintln!("skipping: no Garage (make garage starts one)");
        return None;
    };
    let g = Garage::new(config).unwrap();
    match g.health().await {
        Ok(_) => Some(g),
        Err(e) => {
            assert!(!required, "Garage required but unreachable: {e}");
            eprintln!("skipping: Garage unreachable: {e}");
            None
        }
    }
}

/// The admin's user id.
async fn admin_id(app: &TestApp) -> i64 {
    app.get("/xos/users/?email=padmin@vicci.org&no_hyperlinks=1")
        .await
        .1[0]["id"]
        .as_i64()
        .unwrap()
}

/// What a test against Garage needs: the cluster, a scratch state directory, the prefix of the
/// test's buckets and keys, and a synchronizer with the `drift` setting (None: no Garage, skip).
async fn world(
    app: &TestApp,
    test: &str,
    drift: Drift,
) -> Option<(Garage, std::path::PathBuf, String, Engine)> {
    let g = garage().await?;
    let state = std::env::temp_dir().join(format!(
        "xos-syndicate-{test}-{}-{:?}",
        std::process::id(),
        app.backend
    ));
    let _ = std::fs::remove_dir_all(&state);
    let p = prefix(app, test);
    let engine = engine_with(app, &state, &p, drift).await;
    Some((g, state, p, engine))
}

/// The prefix of this test's buckets and keys: the runs on both databases share one Garage.
fn prefix(app: &TestApp, test: &str) -> String {
    format!("t{}-{test}-{:?}", std::process::id(), app.backend).to_lowercase()
}

/// A synchronizer of the service alone, on a scratch state directory.
async fn engine(app: &TestApp, state: &std::path::Path, prefix: &str) -> Engine {
    engine_with(app, state, prefix, Drift::Recreate).await
}

/// … with a `drift` setting; the drift steps run on every pass.
async fn engine_with(app: &TestApp, state: &std::path::Path, prefix: &str, drift: Drift) -> Engine {
    let mut ctx = StepContext::new(app.store.clone(), state.to_path_buf());
    ctx.set(Settings {
        data_dir: Settings::default().data_dir,
        prefix: prefix.to_string(),
        drift,
        drift_interval: Duration::ZERO,
    });
    let steps = server::services::steps("syndicate_storage", &ctx);
    assert_eq!(steps.len(), 6);
    let opts = EngineOptions {
        backoff_base: Duration::from_millis(20),
        ..Default::default()
    };
    Engine::new(ctx, steps, opts).await.unwrap()
}

/// Passes until nothing is left to do (dependents wait for their volume's bucket).
async fn settle(engine: &Engine) {
    for _ in 0..10 {
        let r = engine.run_once().await.unwrap();
        if r.enacted == 0 && r.deleted == 0 && r.failed == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("the synchronizer does not settle");
}

async fn row(app: &TestApp, plural: &str, id: i64) -> Value {
    let (s, v) = app.get(&format!("/xos/{plural}/{id}/?no_hyperlinks=1")).await;
    assert!(s.is_success(), "{v}");
    v
}

/// GET `path` with this `Authorization` header and no other credentials: status and body.
async fn fetch(app: &TestApp, path: &str, auth: Option<&str>) -> (u16, String) {
    use axum::http::{Request, header};
    use tower::ServiceExt;
    let mut b = Request::builder()
        .method("GET")
        .uri(path)
        .header(header::HOST, "testserver");
    if let Some(a) = auth {
        b = b.header(header::AUTHORIZATION, a);
    }
    let resp = app
        .router
        .clone()
        .oneshot(b.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The S3 client of a key XOS issued.
async fn s3_of(g: &Garage, key: &str) -> service_syndicate::server::garage::S3 {
    let k = g.key(key).await.unwrap().expect("the key exists");
    g.s3(key, k.secret_access_key.as_deref().unwrap())
}

both!(
    bad_storage_input_is_a_400_naming_the_field,
    async |app: &TestApp| {
        let me = admin_id(app).await;
        for (body, field) in [
            (json!({"name": "v", "owner_id": me, "blocksize": 0}), "blocksize"),
            (
                json!({"name": "v", "owner_id": me, "blocksize": 4096, "max_objects": -1}),
                "max_objects",
            ),
            (
                json!({"name": "v", "owner_id": me, "blocksize": 4096, "max_size_bytes": -5}),
                "max_size_bytes",
            ),
        ] {
            let (s, v) = app.post("/xos/volumes/", body).await;
            assert_eq!(s, axum::http::StatusCode::BAD_REQUEST, "{v}");
            assert!(v.get(field).is_some(), "{field}: {v}");
        }
        assert_eq!(app.count("syndicate_storage_volume").await, 0);
        let vol = common::make(
            app,
            "volumes",
            json!({"name": "v", "owner_id": me, "blocksize": 4096}),
        )
        .await;
        let slice = app.make_slice("vols").await["id"].as_i64().unwrap();
        for (ug, rg, field) in [
            (80, 5000, "UG_portnum"),
            (5000, 70000, "RG_portnum"),
            (5000, 5000, "RG_portnum"),
        ] {
            let (s, v) = app
                .post(
                    "/xos/volumeslices/",
                    json!({"volume_id": vol, "slice_id": slice, "UG_portnum": ug, "RG_portnum": rg}),
                )
                .await;
            assert_eq!(s, axum::http::StatusCode::BAD_REQUEST, "{v}");
            assert!(v.get(field).is_some(), "{field}: {v}");
        }
        assert_eq!(app.count("syndicate_storage_volumeslice").await, 0);
    }
);

both!(
    volumes_rights_and_slices_are_buckets_and_keys_on_garage,
    async |app: &TestApp| {
        let Some((g, state, p, engine)) = world(app, "a", Drift::Recreate).await else {
            return;
        };
        let admin = admin_id(app).await;
        let reader = app
            .make_user(
                &format!("reader-{:?}@example.org", app.backend).to_lowercase(),
                "pw-reader-1",
            )
            .await;
        let slice = app.make_slice("data").await["id"].as_i64().unwrap();

        // A volume is a bucket with its quota, owned by its owner's key.
        let v1 = common::make(
            app,
            "volumes",
            json!({"name": "shared", "owner_id": admin, "blocksize": 4096, "private": false}),
        )
        .await;
        let v2 = common::make(
            app,
            "volumes",
            json!({"name": "small", "owner_id": admin, "blocksize": 4096, "max_objects": 2}),
        )
        .await;
        let vs = common::make(
            app,
            "volumeslices",
            json!({"volume_id": v1, "slice_id": slice, "UG_portnum": 32000, "RG_portnum": 32001}),
        )
        .await;
        let right = common::make(
            app,
            "volumeaccessrights",
            json!({"owner_id": reader, "volume": v1, "cap_read_data": true, "cap_write_data": false}),
        )
        .await;
        settle(&engine).await;
        let vol1 = row(app, "volumes", v1).await;
        assert!(
            vol1["backend_status"]
                .as_str()
                .unwrap()
                .starts_with("1 - OK, bucket"),
            "{vol1}"
        );
        let b1 = g
            .bucket_by_alias(&bucket_alias(&p, v1))
            .await
            .unwrap()
            .expect("the bucket");
        assert_eq!(vol1["bucket_id"], b1.id);
        let b2 = g
            .bucket_by_alias(&bucket_alias(&p, v2))
            .await
            .unwrap()
            .expect("the bucket");
        assert_eq!(b2.quotas.max_objects, Some(2));
        let owner_key = vol1["owner_key_id"].as_str().unwrap().to_string();

        // The slice's key: PUT then GET on its volume, 403 on a volume it is not linked to.
        let vsr = row(app, "volumeslices", vs).await;
        assert!(
            vsr["backend_status"]
                .as_str()
                .unwrap()
                .starts_with("1 - OK, read and write"),
            "{vsr}"
        );
        let slice_key = vsr["key_id"].as_str().unwrap().to_string();
        let s3 = s3_of(&g, &slice_key).await;
        let a1 = bucket_alias(&p, v1);
        let a2 = bucket_alias(&p, v2);
        assert_eq!(s3.put(&a1, "hello.txt", b"hello").await.unwrap().status, 200);
        let got = s3.get(&a1, "hello.txt").await.unwrap();
        assert_eq!((got.status, got.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(s3.put(&a2, "x", b"x").await.unwrap().status, 403);
        assert_eq!(s3.get(&a2, "x").await.unwrap().status, 403);

        // The credentials file: the slice's key, its volume, readable by its owner only.
        let path = vsr["credentials_blob"].as_str().unwrap();
        let creds: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(creds["access_key_id"], slice_key);
        assert_eq!(creds["volumes"][0]["bucket"], a1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // A read-only right: GET, not PUT.
        let reader_key = row(app, "volumeaccessrights", right).await["key_id"]
            .as_str()
            .unwrap()
            .to_string();
        let rs3 = s3_of(&g, &reader_key).await;
        assert_eq!(rs3.get(&a1, "hello.txt").await.unwrap().status, 200);
        assert_eq!(rs3.put(&a1, "no.txt", b"no").await.unwrap().status, 403);

        // An archive: the slice's PUT is refused, the owner's allowed.
        let (s, v) = app
            .patch(&format!("/xos/volumes/{v1}/"), json!({"archive": true}))
            .await;
        assert!(s.is_success(), "{v}");
        settle(&engine).await;
        assert_eq!(s3.put(&a1, "late.txt", b"late").await.unwrap().status, 403);
        assert_eq!(s3.get(&a1, "hello.txt").await.unwrap().status, 200);
        let os3 = s3_of(&g, &owner_key).await;
        assert_eq!(os3.put(&a1, "owner.txt", b"mine").await.unwrap().status, 200);

        // max_objects refuses the object past the quota (Garage counts a moment later).
        assert_eq!(os3.put(&a2, "one", b"1").await.unwrap().status, 200);
        assert_eq!(os3.put(&a2, "two", b"2").await.unwrap().status, 200);
        eventually(
            "Garage counts the two objects",
            Duration::from_secs(20),
            || async {
                g.bucket(&b2.id)
                    .await
                    .unwrap()
                    .is_some_and(|b| b.objects == 2)
                    .then_some(())
            },
        )
        .await;
        assert_eq!(os3.put(&a2, "three", b"3").await.unwrap().status, 403);

        // Drift: the slice's key deleted outside XOS. A pass makes a new one; the old
        // credentials are refused, the new ones (delivered again) work.
        g.delete_key(&slice_key).await.unwrap();
        settle(&engine).await;
        let vsr = row(app, "volumeslices", vs).await;
        let new_key = vsr["key_id"].as_str().unwrap().to_string();
        assert_ne!(new_key, slice_key);
        assert!(
            vsr["backend_status"]
                .as_str()
                .unwrap()
                .contains("drift repaired: its key was deleted outside XOS"),
            "{vsr}"
        );
        assert_eq!(s3.get(&a1, "hello.txt").await.unwrap().status, 403);
        let s3 = s3_of(&g, &new_key).await;
        assert_eq!(s3.get(&a1, "hello.txt").await.unwrap().status, 200);
        let creds: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(creds["access_key_id"], new_key);
        let slice_key = new_key;
        // … and a permission given outside XOS is taken back.
        g.set_perm(
            &b1.id,
            &reader_key,
            Perm {
                read: true,
                write: true,
                owner: true,
            },
        )
        .await
        .unwrap();
        settle(&engine).await;
        assert_eq!(rs3.put(&a1, "no.txt", b"no").await.unwrap().status, 403);

        // Deleting the volume-slice revokes: the slice's GET is a 403, its key is gone.
        let (s, v) = app.delete(&format!("/xos/volumeslices/{vs}/")).await;
        assert!(s.is_success(), "{v}");
        settle(&engine).await;
        assert_eq!(s3.get(&a1, "hello.txt").await.unwrap().status, 403);
        assert!(
            g.key(&slice_key).await.unwrap().is_none(),
            "a key with no bucket is deleted"
        );
        let creds: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(creds["volumes"], json!([]));

        // Deleting a non-empty volume removes its bucket (and the reader's key, left with none).
        let (s, v) = app.delete(&format!("/xos/volumes/{v1}/")).await;
        assert!(s.is_success(), "{v}");
        settle(&engine).await;
        assert!(g.bucket_by_alias(&a1).await.unwrap().is_none());
        assert!(g.key(&reader_key).await.unwrap().is_none());
        assert_eq!(app.count("syndicate_storage_volume").await, 1);

        // Clean up what is left (the Garage node is shared by both databases' runs).
        let (s, _) = app.delete(&format!("/xos/volumes/{v2}/")).await;
        assert!(s.is_success());
        settle(&engine).await;
        assert!(g.bucket_by_alias(&a2).await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(&state);
    }
);

both!(
    a_step_repeated_after_a_lost_answer_leaves_one_bucket_and_one_key,
    async |app: &TestApp| {
        let Some((g, state, p, engine)) = world(app, "c", Drift::Recreate).await else {
            return;
        };
        let owner = app
            .make_user(
                &format!("crash-{:?}@example.org", app.backend).to_lowercase(),
                "pw-crash-1",
            )
            .await;
        let v = common::make(
            app,
            "volumes",
            json!({"name": "c", "owner_id": owner, "blocksize": 512}),
        )
        .await;
        // A crash after CreateKey and before the row was written, twice over: two keys carry the
        // principal's name and the row records none.
        let name = Principal::User(owner).key_name(&p);
        let k1 = g.create_key(&name).await.unwrap().access_key_id;
        let k2 = g.create_key(&name).await.unwrap().access_key_id;
        // … and after CreateBucket: the bucket exists, unrecorded.
        let made = g.create_bucket(&bucket_alias(&p, v)).await.unwrap();
        settle(&engine).await;
        let vol = row(app, "volumes", v).await;
        assert_eq!(
            vol["bucket_id"], made.id,
            "the bucket made before the crash is kept"
        );
        let keys: Vec<_> = g
            .keys()
            .await
            .unwrap()
            .into_iter()
            .filter(|k| k.name == name)
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].id == k1 || keys[0].id == k2);
        assert_eq!(vol["owner_key_id"], keys[0].id);
        // Done again with the row's ids lost: the same bucket and key.
        app.system_update(
            "Volume",
            v,
            json!({"bucket_id": null, "owner_key_id": null, "name": "c2"}),
        )
        .await;
        settle(&engine).await;
        let vol = row(app, "volumes", v).await;
        assert_eq!(vol["bucket_id"], made.id);
        assert_eq!(vol["owner_key_id"], keys[0].id);
        let b = g.bucket(&made.id).await.unwrap().unwrap();
        assert_eq!(
            b.keys
                .iter()
                .map(|k| (k.access_key_id.as_str(), k.permissions))
                .collect::<Vec<_>>(),
            vec![(
                keys[0].id.as_str(),
                Perm {
                    read: true,
                    write: true,
                    owner: true
                }
            )]
        );
        let (s, _) = app.delete(&format!("/xos/volumes/{v}/")).await;
        assert!(s.is_success());
        settle(&engine).await;
        assert!(g.bucket(&made.id).await.unwrap().is_none());
        assert!(g.key(&keys[0].id).await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(&state);
    }
);

both!(
    users_see_their_own_and_public_volumes_and_the_tenant_view_lists_the_public_ones,
    async |app: &TestApp| {
        use axum::http::{Method, StatusCode};
        let alice = app.make_user("alice@mysite.org", "alice-password").await;
        app.make_user("bob@mysite.org", "bob-password").await;
        let as_alice = Some(("alice@mysite.org", "alice-password"));
        let as_bob = Some(("bob@mysite.org", "bob-password"));
        // A user makes their own volume, not one in another's name.
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/volumes/",
                as_alice,
                Some(json!({"name": "alice-private", "owner_id": alice, "blocksize": 1024})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let private = v["id"].as_i64().unwrap();
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/volumes/",
                as_alice,
                Some(json!({"name": "alice-public", "owner_id": alice, "blocksize": 1024, "private": false})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let public = v["id"].as_i64().unwrap();
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/volumes/",
                as_bob,
                Some(json!({"name": "forged", "owner_id": alice, "blocksize": 1024})),
            )
            .await;
        assert!(
            s == StatusCode::FORBIDDEN || s == StatusCode::BAD_REQUEST,
            "{s} {v}"
        );
        // Bob sees Alice's public volume, not her private one; he cannot change either.
        let (_, v) = app
            .req(Method::GET, "/xos/volumes/?no_hyperlinks=1", as_bob, None)
            .await;
        let seen: Vec<i64> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(seen, vec![public]);
        let (s, _) = app
            .req(Method::GET, &format!("/xos/volumes/{private}/"), as_bob, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app
            .req(
                Method::PATCH,
                &format!("/xos/volumes/{public}/"),
                as_bob,
                Some(json!({"name": "mine now"})),
            )
            .await;
        assert!(s == StatusCode::FORBIDDEN || s == StatusCode::NOT_FOUND, "{s}");
        // The Tenant view's Data Sets: the public volumes.
        let (_, v) = app.req(Method::GET, "/xoslib/tenantview/", as_bob, None).await;
        assert_eq!(v["public_volumes"], json!([public]), "{v}");
        assert_eq!(v["public_volume_names"], json!(["alice-public"]));
        let (_, v) = app
            .req(Method::GET, "/xos/volumes/?no_hyperlinks=1", as_alice, None)
            .await;
        assert_eq!(v.as_array().unwrap().len(), 2);
    }
);

both!(
    drift_is_reported_once_under_report_and_repaired_under_recreate,
    async |app: &TestApp| {
        let Some((g, state, p, report)) = world(app, "d", Drift::Report).await else {
            return;
        };
        let admin = admin_id(app).await;
        let v = common::make(
            app,
            "volumes",
            json!({"name": "d", "owner_id": admin, "blocksize": 512}),
        )
        .await;
        settle(&report).await;
        let id = row(app, "volumes", v).await["bucket_id"]
            .as_str()
            .unwrap()
            .to_string();
        g.delete_bucket(&id).await.unwrap();
        let r = report.run_once().await.unwrap();
        assert_eq!(r.failed, 1, "{r:?}");
        let vol = row(app, "volumes", v).await;
        assert!(
            vol["backend_status"]
                .as_str()
                .unwrap()
                .starts_with("2 - drift: its bucket was deleted outside XOS"),
            "{vol}"
        );
        assert!(
            g.bucket_by_alias(&bucket_alias(&p, v)).await.unwrap().is_none(),
            "left as it is"
        );
        let r = report.run_once().await.unwrap();
        assert_eq!((r.enacted, r.failed), (0, 0), "reported once: {r:?}");
        // Under recreate, the bucket is made again.
        let recreate = engine(app, &state, &p).await;
        settle(&recreate).await;
        let vol = row(app, "volumes", v).await;
        assert!(
            vol["backend_status"]
                .as_str()
                .unwrap()
                .starts_with("1 - OK, bucket"),
            "{vol}"
        );
        assert!(g.bucket_by_alias(&bucket_alias(&p, v)).await.unwrap().is_some());
        let (s, _) = app.delete(&format!("/xos/volumes/{v}/")).await;
        assert!(s.is_success());
        settle(&recreate).await;
        assert!(g.bucket_by_alias(&bucket_alias(&p, v)).await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(&state);
    }
);

/// `make bench`'s Syndicate figures (ignored in `make test`): a volume created through the API →
/// its bucket usable by the slice's key (s), and 1,000 objects PUT then GET through the slice's
/// XOS-issued credentials and through a key made with Garage's own admin API (objects/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_volume_to_usable_and_a_thousand_objects() {
    let Some(app) = TestApp::new(common::Backend::Sqlite).await else {
        return;
    };
    let Some((g, state, p, engine)) = world(&app, "bench", Drift::Recreate).await else {
        return;
    };
    let admin = admin_id(&app).await;
    let slice = app.make_slice("bench").await["id"].as_i64().unwrap();
    let start = std::time::Instant::now();
    let v = common::make(
        &app,
        "volumes",
        json!({"name": "bench", "owner_id": admin, "blocksize": 4096}),
    )
    .await;
    let vs = common::make(
        &app,
        "volumeslices",
        json!({"volume_id": v, "slice_id": slice, "UG_portnum": 32000, "RG_portnum": 32001}),
    )
    .await;
    settle(&engine).await;
    let key = row(&app, "volumeslices", vs).await["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s3 = s3_of(&g, &key).await;
    let bucket = bucket_alias(&p, v);
    assert_eq!(s3.put(&bucket, "first", b"1").await.unwrap().status, 200);
    let usable = start.elapsed();
    // Garage's own key, made and granted with its admin API (no XOS in the way).
    let own = g.create_key(&format!("{p}-bench-own")).await.unwrap();
    let b = g.bucket_by_alias(&bucket).await.unwrap().unwrap();
    g.set_perm(
        &b.id,
        &own.access_key_id,
        Perm {
            read: true,
            write: true,
            owner: false,
        },
    )
    .await
    .unwrap();
    let own_s3 = s3_of(&g, &own.access_key_id).await;
    let body = vec![b'x'; 1024];
    let mut figures = Vec::new();
    for (who, client) in [("XOS-issued slice key", &s3), ("Garage's own key", &own_s3)] {
        let t = std::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let (c, bucket, body) = (client.clone(), bucket.clone(), body.clone());
            tasks.spawn(async move {
                assert_eq!(
                    c.put(&bucket, &format!("o/{i}"), &body).await.unwrap().status,
                    200
                );
                assert_eq!(c.get(&bucket, &format!("o/{i}")).await.unwrap().status, 200);
            });
            if tasks.len() >= 16 {
                tasks.join_next().await.unwrap().unwrap();
            }
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        figures.push(format!(
            "{who}: 1000 objects PUT+GET (1 KiB, 16 at once) in {secs:.2} s = {:.0} objects/s",
            1000.0 / secs
        ));
    }
    println!(
        "syndicate: volume created → bucket usable by the slice's key in {:.2} s",
        usable.as_secs_f64()
    );
    for f in figures {
        println!("syndicate: {f}");
    }
    g.delete_key(&own.access_key_id).await.unwrap();
    let (s, _) = app.delete(&format!("/xos/volumes/{v}/")).await;
    assert!(s.is_success());
    settle(&engine).await;
    let _ = std::fs::remove_dir_all(&state);
    app.finish().await;
}

/// The endpoint an instance elsewhere fetches its slice's credentials from, with the slice's
/// secret: no secret 401, a wrong one (or another slice's) 403, the right one the credentials,
/// and never the secret.
async fn the_credentials_endpoint_answers_only_the_slices_secret(backend: common::Backend) {
    let state = std::env::temp_dir().join(format!("xos-syndicate-e-{}-{backend:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let dir = state.clone();
    let Some(app) = TestApp::with_config(backend, |c| c.state_dir = dir).await else {
        return;
    };
    let app = &app;
    let Some(g) = garage().await else { return };
    let p = prefix(app, "e");
    let engine = engine(app, &state, &p).await;
    let admin = admin_id(app).await;
    let slice = app.make_slice("endpoint").await["id"].as_i64().unwrap();
    let other_slice = app.make_slice("other").await["id"].as_i64().unwrap();
    let v = common::make(
        app,
        "volumes",
        json!({"name": "e", "owner_id": admin, "blocksize": 512}),
    )
    .await;
    let vs = common::make(
        app,
        "volumeslices",
        json!({"volume_id": v, "slice_id": slice, "UG_portnum": 32000, "RG_portnum": 32001}),
    )
    .await;
    common::make(
        app,
        "volumeslices",
        json!({"volume_id": v, "slice_id": other_slice, "UG_portnum": 32000, "RG_portnum": 32001}),
    )
    .await;
    settle(&engine).await;
    let key = row(app, "volumeslices", vs).await["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_of = |s: i64| {
        std::fs::read_to_string(service_syndicate::server::slice_dir(&state, s).join("secret")).unwrap()
    };
    let (secret, other_secret) = (secret_of(slice), secret_of(other_slice));
    assert_eq!(secret.len(), 64);
    assert_ne!(secret, other_secret);
    let url = format!("/services/syndicate_storage/slices/{slice}/credentials");
    assert_eq!(fetch(app, &url, None).await.0, 401);
    assert_eq!(fetch(app, &url, Some("Bearer nope")).await.0, 403);
    assert_eq!(
        fetch(app, &url, Some(&format!("Bearer {other_secret}"))).await.0,
        403
    );
    let unknown = format!("/services/syndicate_storage/slices/{}/credentials", slice + 1000);
    assert_eq!(
        fetch(app, &unknown, Some(&format!("Bearer {secret}"))).await.0,
        403
    );
    let (st, body) = fetch(app, &url, Some(&format!("Bearer {secret}"))).await;
    assert_eq!(st, 200, "{body}");
    let fetched: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(fetched["access_key_id"], key);
    assert!(!body.contains(&secret));
    // The API never shows it either, and the admin's own credentials do not open the endpoint.
    let (_, listed) = app.get("/xos/slicesecrets/").await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(!listed.to_string().contains(&secret), "{listed}");
    let (s, _) = app
        .req(axum::http::Method::GET, &url, Some(common::ADMIN), None)
        .await;
    assert_eq!(s.as_u16(), 401);
    let (s, _) = app.delete(&format!("/xos/volumes/{v}/")).await;
    assert!(s.is_success());
    settle(&engine).await;
    assert!(g.bucket_by_alias(&bucket_alias(&p, v)).await.unwrap().is_none());
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credentials_endpoint_answers_only_the_slices_secret_sqlite() {
    the_credentials_endpoint_answers_only_the_slices_secret(common::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_credentials_endpoint_answers_only_the_slices_secret_postgres() {
    the_credentials_endpoint_answers_only_the_slices_secret(common::Backend::Postgres).await;
}
