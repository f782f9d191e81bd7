//! The permission matrix: admin / site PI / slice user / plain user / anonymous × read / create /
//! update / delete on each model family, on SQLite and Postgres.

mod common;

use axum::http::{Method, StatusCode};
use common::TestApp;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Admin,
    Pi,
    SliceUser,
    Plain,
    Anon,
}
use Who::*;

const EVERYONE: [Who; 5] = [Admin, Pi, SliceUser, Plain, Anon];

fn creds(who: Who) -> Option<(&'static str, &'static str)> {
    match who {
        Admin => Some(("padmin@vicci.org", "letmein")),
        Pi => Some(("pi@mysite.org", "pi-password")),
        SliceUser => Some(("member@mysite.org", "member-password")),
        Plain => Some(("plain@mysite.org", "plain-password")),
        Anon => None,
    }
}

struct World {
    site: i64,
    slice: i64,
    node: i64,
    image: i64,
    template: i64,
    victim: i64,
    slice_user: i64,
    plain: i64,
    access_role: i64,
}

async fn make(app: &TestApp, plural: &str, body: Value) -> i64 {
    let (s, v) = app
        .post(&format!("/xos/{plural}/?no_hyperlinks=1"), body.clone())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{plural} {body}: {v}");
    v["id"].as_i64().unwrap()
}

async fn world(app: &TestApp) -> World {
    let site = app.site_id().await;
    let pi = app.make_user("pi@mysite.org", "pi-password").await;
    let slice_user = app.make_user("member@mysite.org", "member-password").await;
    let plain = app.make_user("plain@mysite.org", "plain-password").await;
    let victim = app.make_user("victim@mysite.org", "victim-password").await;
    let (_, roles) = app.get("/xos/site_roles/?role=pi").await;
    make(
        app,
        "siteprivileges",
        json!({"user": pi, "site": site, "role": roles[0]["id"]}),
    )
    .await;
    let slice = app.make_slice("matrix").await["id"].as_i64().unwrap();
    let (_, roles) = app.get("/xos/slice_roles/?role=access").await;
    let access_role = roles[0]["id"].as_i64().unwrap();
    make(
        app,
        "slice_privileges",
        json!({"user": slice_user, "slice": slice, "role": access_role}),
    )
    .await;
    let dep = make(app, "deployments", json!({"name": "d"})).await;
    let sd = make(app, "sitedeployments", json!({"site": site, "deployment": dep})).await;
    let node = make(app, "nodes", json!({"name": "n1", "site_deployment": sd})).await;
    let image = make(
        app,
        "images",
        json!({"name": "img", "disk_format": "qcow2", "container_format": "bare"}),
    )
    .await;
    let (_, t) = app.get("/xos/networktemplates/?name=Private").await;
    World {
        site,
        slice,
        node,
        image,
        template: t[0]["id"].as_i64().unwrap(),
        victim,
        slice_user,
        plain,
        access_role,
    }
}

/// Send as `who` and compare the status.
async fn expect(app: &TestApp, who: Who, method: Method, path: &str, body: Option<Value>, want: StatusCode) {
    let (s, v) = app.req(method.clone(), path, creds(who), body.clone()).await;
    assert_eq!(s, want, "{who:?} {method} {path} {body:?} → {v}");
}

/// `want` per actor, in the order of EVERYONE.
fn codes(c: [u16; 5]) -> [StatusCode; 5] {
    c.map(|n| StatusCode::from_u16(n).unwrap())
}

both!(
    sites_are_read_by_all_and_changed_by_admins_and_their_pis,
    async |app: &TestApp| {
        let w = world(app).await;
        for (who, want) in EVERYONE.iter().zip(codes([200, 200, 200, 200, 401])) {
            expect(
                app,
                *who,
                Method::GET,
                &format!("/xos/sites/{}/", w.site),
                None,
                want,
            )
            .await;
        }
        for (i, (who, want)) in EVERYONE.iter().zip(codes([201, 403, 403, 403, 401])).enumerate() {
            let body =
                json!({"name": format!("S{i}"), "login_base": format!("s{i}"), "abbreviated_name": "s"});
            expect(app, *who, Method::POST, "/xos/sites/", Some(body), want).await;
        }
        for (who, want) in EVERYONE.iter().zip(codes([200, 200, 403, 403, 401])) {
            expect(
                app,
                *who,
                Method::PATCH,
                &format!("/xos/sites/{}/", w.site),
                Some(json!({"abbreviated_name": "ms"})),
                want,
            )
            .await;
        }
        for (i, (who, want)) in EVERYONE.iter().zip(codes([204, 403, 403, 403, 401])).enumerate() {
            let id = make(
                app,
                "sites",
                json!({"name": "X", "login_base": format!("x{i}"), "abbreviated_name": "x"}),
            )
            .await;
            expect(
                app,
                *who,
                Method::DELETE,
                &format!("/xos/sites/{id}/"),
                None,
                want,
            )
            .await;
        }
    }
);

both!(users_are_managed_by_admins_and_site_pis, async |app: &TestApp| {
    let w = world(app).await;
    for (who, want) in EVERYONE.iter().zip(codes([200, 200, 404, 404, 401])) {
        expect(
            app,
            *who,
            Method::GET,
            &format!("/xos/users/{}/", w.victim),
            None,
            want,
        )
        .await;
    }
    for (i, (who, want)) in EVERYONE.iter().zip(codes([201, 201, 403, 403, 401])).enumerate() {
        let body =
            json!({"email": format!("new{i}@mysite.org"), "firstname": "N", "lastname": "U", "site": w.site});
        expect(app, *who, Method::POST, "/xos/users/", Some(body), want).await;
    }
    for (who, want) in EVERYONE.iter().zip(codes([200, 200, 404, 404, 401])) {
        expect(
            app,
            *who,
            Method::PATCH,
            &format!("/xos/users/{}/", w.victim),
            Some(json!({"phone": "1"})),
            want,
        )
        .await;
    }
    // Only admins grant is_admin; a PI may not, nor create an admin.
    expect(
        app,
        Pi,
        Method::PATCH,
        &format!("/xos/users/{}/", w.victim),
        Some(json!({"is_admin": true})),
        StatusCode::FORBIDDEN,
    )
    .await;
    let body = json!({"email": "boss@mysite.org", "firstname": "B", "lastname": "B", "site": w.site, "is_admin": true});
    expect(
        app,
        Pi,
        Method::POST,
        "/xos/users/",
        Some(body),
        StatusCode::FORBIDDEN,
    )
    .await;
    // Users edit themselves, not their privileges flags; a password change needs the old one.
    let own = app.make_user("self@mysite.org", "self-password").await;
    let me = format!("/xos/users/{own}/");
    let who = Some(("self@mysite.org", "self-password"));
    let send = async |body: Value| app.req(Method::PATCH, &me, who, Some(body)).await.0;
    assert_eq!(send(json!({"firstname": "Pat"})).await, StatusCode::OK);
    assert_eq!(send(json!({"is_staff": false})).await, StatusCode::FORBIDDEN);
    assert_eq!(
        send(json!({"password": "next-password"})).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(json!({"password": "next-password", "old_password": "wrong"})).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(json!({"password": "next-password", "old_password": "self-password"})).await,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (s, _) = app
        .req(
            Method::GET,
            "/xos/users/",
            Some(("self@mysite.org", "next-password")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app.req(Method::GET, "/xos/users/", who, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the old password no longer works");
    // Admins set passwords without the old one; PIs cannot set other users' passwords.
    expect(
        app,
        Admin,
        Method::PATCH,
        &format!("/xos/users/{}/", w.victim),
        Some(json!({"password": "reset-by-admin"})),
        StatusCode::OK,
    )
    .await;
    expect(
        app,
        Pi,
        Method::PATCH,
        &format!("/xos/users/{}/", w.victim),
        Some(json!({"password": "x"})),
        StatusCode::FORBIDDEN,
    )
    .await;
    for (i, (who, want)) in EVERYONE.iter().zip(codes([204, 204, 404, 404, 401])).enumerate() {
        let id = app.make_user(&format!("gone{i}@mysite.org"), "pw-gone").await;
        expect(
            app,
            *who,
            Method::DELETE,
            &format!("/xos/users/{id}/"),
            None,
            want,
        )
        .await;
    }
});

both!(
    slices_belong_to_their_site_pis_creators_and_slice_admins,
    async |app: &TestApp| {
        let w = world(app).await;
        let slice = format!("/xos/slices/{}/", w.slice);
        for (who, want) in EVERYONE.iter().zip(codes([200, 200, 200, 404, 401])) {
            expect(app, *who, Method::GET, &slice, None, want).await;
        }
        for (i, (who, want)) in EVERYONE.iter().zip(codes([201, 201, 403, 403, 401])).enumerate() {
            let body = json!({"name": format!("mysite_new{i}"), "site": w.site});
            expect(app, *who, Method::POST, "/xos/slices/", Some(body), want).await;
        }
        for (who, want) in EVERYONE.iter().zip(codes([200, 200, 403, 404, 401])) {
            expect(
                app,
                *who,
                Method::PATCH,
                &slice,
                Some(json!({"description": format!("{who:?}")})),
                want,
            )
            .await;
        }
        // A slice admin (not creator, not PI) may manage it.
        let (_, roles) = app.get("/xos/slice_roles/?role=admin").await;
        make(
            app,
            "slice_privileges",
            json!({"user": w.plain, "slice": w.slice, "role": roles[0]["id"]}),
        )
        .await;
        expect(
            app,
            Plain,
            Method::PATCH,
            &slice,
            Some(json!({"description": "slice admin"})),
            StatusCode::OK,
        )
        .await;
        // Nobody but an admin changes the creator.
        expect(
            app,
            Pi,
            Method::PATCH,
            &slice,
            Some(json!({"creator": w.victim})),
            StatusCode::FORBIDDEN,
        )
        .await;
        for (i, (who, want)) in EVERYONE.iter().zip(codes([204, 204, 404, 404, 401])).enumerate() {
            let id = app.make_slice(&format!("gone{i}")).await["id"].as_i64().unwrap();
            expect(
                app,
                *who,
                Method::DELETE,
                &format!("/xos/slices/{id}/"),
                None,
                want,
            )
            .await;
        }
        // Slice privileges: PIs and admins grant them, slice members do not.
        for (who, want) in EVERYONE.iter().zip(codes([201, 201, 403, 201, 401])) {
            let user = app
                .make_user(
                    &format!("grantee-{who:?}@mysite.org").to_lowercase(),
                    "pw-grantee",
                )
                .await;
            let body = json!({"user": user, "slice": w.slice, "role": w.access_role});
            expect(
                app,
                *who,
                Method::POST,
                "/xos/slice_privileges/",
                Some(body),
                want,
            )
            .await;
        }
        let _ = w.slice_user;
    }
);

both!(
    instances_and_networks_follow_their_slice,
    async |app: &TestApp| {
        let w = world(app).await;
        let inst = make(
            app,
            "instances",
            json!({"slice": w.slice, "image": w.image, "node": w.node}),
        )
        .await;
        for (who, want) in EVERYONE.iter().zip(codes([200, 200, 200, 404, 401])) {
            expect(
                app,
                *who,
                Method::GET,
                &format!("/xos/instances/{inst}/"),
                None,
                want,
            )
            .await;
        }
        for (who, want) in EVERYONE.iter().zip(codes([201, 201, 403, 403, 401])) {
            let body = json!({"slice": w.slice, "image": w.image, "node": w.node});
            expect(app, *who, Method::POST, "/xos/instances/", Some(body), want).await;
        }
        for (who, want) in EVERYONE.iter().zip(codes([200, 200, 403, 404, 401])) {
            expect(
                app,
                *who,
                Method::PATCH,
                &format!("/xos/instances/{inst}/"),
                Some(json!({"userData": "x"})),
                want,
            )
            .await;
        }
        for (who, want) in EVERYONE.iter().zip(codes([204, 204, 403, 404, 401])) {
            let id = make(
                app,
                "instances",
                json!({"slice": w.slice, "image": w.image, "node": w.node}),
            )
            .await;
            expect(
                app,
                *who,
                Method::DELETE,
                &format!("/xos/instances/{id}/"),
                None,
                want,
            )
            .await;
        }
        let net = make(
            app,
            "networks",
            json!({"name": "mnet", "template": w.template, "owner": w.slice}),
        )
        .await;
        for (who, want) in EVERYONE.iter().zip(codes([200, 200, 200, 404, 401])) {
            expect(
                app,
                *who,
                Method::GET,
                &format!("/xos/networks/{net}/"),
                None,
                want,
            )
            .await;
        }
        for (i, (who, want)) in EVERYONE.iter().zip(codes([201, 201, 403, 403, 401])).enumerate() {
            let body = json!({"name": format!("net{i}"), "template": w.template, "owner": w.slice});
            expect(app, *who, Method::POST, "/xos/networks/", Some(body), want).await;
        }
        for (who, want) in EVERYONE.iter().zip(codes([200, 200, 403, 404, 401])) {
            expect(
                app,
                *who,
                Method::PATCH,
                &format!("/xos/networks/{net}/"),
                Some(json!({"labels": "l"})),
                want,
            )
            .await;
        }
    }
);

both!(
    infrastructure_and_dashboards_are_read_by_all_and_written_by_admins,
    async |app: &TestApp| {
        let _w = world(app).await;
        for (plural, body) in [
            ("deployments", json!({"name": "dep-NAME"})),
            (
                "images",
                json!({"name": "img-NAME", "disk_format": "raw", "container_format": "bare"}),
            ),
            (
                "dashboardviews",
                json!({"name": "view NAME", "url": "template:NAME"}),
            ),
            ("flavors", json!({"name": "fl-NAME", "flavor": "x"})),
        ] {
            let with = |n: &str| serde_json::from_str::<Value>(&body.to_string().replace("NAME", n)).unwrap();
            let id = make(app, plural, with("seed")).await;
            for (who, want) in EVERYONE.iter().zip(codes([200, 200, 200, 200, 401])) {
                expect(
                    app,
                    *who,
                    Method::GET,
                    &format!("/xos/{plural}/{id}/"),
                    None,
                    want,
                )
                .await;
            }
            for (i, (who, want)) in EVERYONE.iter().zip(codes([201, 403, 403, 403, 401])).enumerate() {
                expect(
                    app,
                    *who,
                    Method::POST,
                    &format!("/xos/{plural}/"),
                    Some(with(&format!("c{i}"))),
                    want,
                )
                .await;
            }
            for (who, want) in EVERYONE.iter().zip(codes([200, 403, 403, 403, 401])) {
                let patch = with("seed")
                    .as_object()
                    .unwrap()
                    .iter()
                    .take(1)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                expect(
                    app,
                    *who,
                    Method::PATCH,
                    &format!("/xos/{plural}/{id}/"),
                    Some(Value::Object(patch)),
                    want,
                )
                .await;
            }
            for (i, (who, want)) in EVERYONE.iter().zip(codes([204, 403, 403, 403, 401])).enumerate() {
                let gone = make(app, plural, with(&format!("d{i}"))).await;
                expect(
                    app,
                    *who,
                    Method::DELETE,
                    &format!("/xos/{plural}/{gone}/"),
                    None,
                    want,
                )
                .await;
            }
        }
    }
);

both!(users_choose_their_own_dashboards_only, async |app: &TestApp| {
    let w = world(app).await;
    let view = make(
        app,
        "dashboardviews",
        json!({"name": "mine", "url": "template:mine"}),
    )
    .await;
    let body = |user: i64| Some(json!({"user": user, "dashboardView": view, "order": 0}));
    expect(
        app,
        Plain,
        Method::POST,
        "/xos/userdashboardviews/",
        body(w.plain),
        StatusCode::CREATED,
    )
    .await;
    expect(
        app,
        Plain,
        Method::POST,
        "/xos/userdashboardviews/",
        body(w.victim),
        StatusCode::FORBIDDEN,
    )
    .await;
    let (_, mine) = app
        .req(Method::GET, "/xos/userdashboardviews/", creds(Plain), None)
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let (_, theirs) = app
        .req(Method::GET, "/xos/userdashboardviews/", creds(Pi), None)
        .await;
    assert_eq!(theirs.as_array().unwrap().len(), 0);
});

both!(read_only_users_write_nothing, async |app: &TestApp| {
    let w = world(app).await;
    let ro = app.make_user("ro@mysite.org", "ro-password").await;
    app.patch(
        &format!("/xos/users/{ro}/"),
        json!({"is_admin": true, "is_readonly": true}),
    )
    .await;
    let who = Some(("ro@mysite.org", "ro-password"));
    let (s, _) = app
        .req(Method::GET, &format!("/xos/slices/{}/", w.slice), who, None)
        .await;
    assert_eq!(s, StatusCode::OK, "read-only admins read everything");
    let (s, _) = app
        .req(
            Method::PATCH,
            &format!("/xos/slices/{}/", w.slice),
            who,
            Some(json!({"description": "no"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .req(
            Method::PATCH,
            &format!("/xos/users/{ro}/"),
            who,
            Some(json!({"phone": "1"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
});
