//! The permission matrix: admin / site PI / slice user / plain user / anonymous × read / create /
//! update / delete on each model family, on SQLite and Postgres.

use crate::common;

use axum::http::{Method, StatusCode};
use common::{TestApp, make};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::eventually;

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
    eventually(
        "the old password no longer works",
        Duration::from_secs(5),
        || async {
            let (s, _) = app.req(Method::GET, "/xos/users/", who, None).await;
            (s == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;
    let (s, _) = app
        .req(
            Method::GET,
            "/xos/users/",
            Some(("self@mysite.org", "next-password")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
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
        // Slice privileges: PIs and admins grant them, slice members do not. The slice admin
        // (Plain) may not see a new user of the site: to it the id does not exist (400).
        for (who, want) in EVERYONE.iter().zip(codes([201, 201, 403, 400, 401])) {
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
    // Another user's id is one Plain cannot see: answered as if it did not exist.
    expect(
        app,
        Plain,
        Method::POST,
        "/xos/userdashboardviews/",
        body(w.victim),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // The PI sees the victim (a user of its site), and still may not choose for them.
    expect(
        app,
        Pi,
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

// ---- Attacks: each confirmed escalation, tried as the attacker would -------------------------

async fn site_role(app: &TestApp, role: &str) -> i64 {
    let (_, roles) = app.get(&format!("/xos/site_roles/?role={role}")).await;
    roles[0]["id"].as_i64().unwrap()
}

async fn slice_role(app: &TestApp, role: &str) -> i64 {
    let (_, roles) = app.get(&format!("/xos/slice_roles/?role={role}")).await;
    roles[0]["id"].as_i64().unwrap()
}

/// A new slice "own" that Plain administers (a slice `admin` privilege granted by the admin).
async fn plain_own_slice(app: &TestApp, w: &World) -> i64 {
    let own = app.make_slice("own").await["id"].as_i64().unwrap();
    let slice_admin = slice_role(app, "admin").await;
    make(
        app,
        "slice_privileges",
        json!({"user": w.plain, "slice": own, "role": slice_admin}),
    )
    .await;
    own
}

async fn admin_id(app: &TestApp) -> i64 {
    let (_, v) = app.get("/xos/users/?email=padmin@vicci.org").await;
    v[0]["id"].as_i64().unwrap()
}

both!(
    a_pi_cannot_raise_itself_or_grant_above_its_own_role,
    async |app: &TestApp| {
        let w = world(app).await;
        let (admin_role, pi_role, tech_role) = (
            site_role(app, "admin").await,
            site_role(app, "pi").await,
            site_role(app, "tech").await,
        );
        let (_, me) = app.get("/xos/users/?email=pi@mysite.org").await;
        let pi = me[0]["id"].as_i64().unwrap();
        let grant = |user: i64, role: i64| Some(json!({"user": user, "site": w.site, "role": role}));
        for (user, role, want, why) in [
            // The confirmed case: a PI gave itself the site admin role.
            (pi, admin_role, StatusCode::FORBIDDEN, "admin to itself"),
            (
                w.plain,
                admin_role,
                StatusCode::FORBIDDEN,
                "admin to a user it controls",
            ),
            (pi, tech_role, StatusCode::FORBIDDEN, "any role to itself"),
            (
                w.plain,
                tech_role,
                StatusCode::CREATED,
                "below its rank, to another",
            ),
            (w.victim, pi_role, StatusCode::CREATED, "its own rank, to another"),
        ] {
            let (s, v) = app
                .req(Method::POST, "/xos/siteprivileges/", creds(Pi), grant(user, role))
                .await;
            assert_eq!(s, want, "{why}: {v}");
        }
        // Turning its own privilege (or one it granted) into admin is the same grant.
        for user in [pi, w.plain] {
            let (_, privs) = app
                .get(&format!("/xos/siteprivileges/?user={user}&no_hyperlinks=1"))
                .await;
            let id = privs[0]["id"].as_i64().unwrap();
            let path = format!("/xos/siteprivileges/{id}/");
            let body = Some(json!({"role": admin_role}));
            expect(app, Pi, Method::PATCH, &path, body, StatusCode::FORBIDDEN).await;
        }
        // A site admin's privilege is above the PI: it cannot remove it.
        let boss = app.make_user("boss@mysite.org", "boss-password").await;
        let boss_priv = make(
            app,
            "siteprivileges",
            json!({"user": boss, "site": w.site, "role": admin_role}),
        )
        .await;
        expect(
            app,
            Pi,
            Method::DELETE,
            &format!("/xos/siteprivileges/{boss_priv}/"),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
        // Slice roles: a slice admin grants to others, never to itself.
        let (slice_admin, access) = (slice_role(app, "admin").await, slice_role(app, "access").await);
        make(
            app,
            "slice_privileges",
            json!({"user": w.plain, "slice": w.slice, "role": slice_admin}),
        )
        .await;
        let (_, v) = app.get("/xos/users/?email=plain@mysite.org").await;
        let plain = v[0]["id"].as_i64().unwrap();
        expect(
            app,
            Plain,
            Method::POST,
            "/xos/slice_privileges/",
            Some(json!({"user": plain, "slice": w.slice, "role": access})),
            StatusCode::FORBIDDEN,
        )
        .await;
        expect(
            app,
            Plain,
            Method::POST,
            "/xos/slice_privileges/",
            Some(json!({"user": w.slice_user, "slice": w.slice, "role": slice_admin})),
            StatusCode::CREATED,
        )
        .await;
        // A PI of the slice's site does not grant itself a slice role either (xoslib path too).
        expect(
            app,
            Pi,
            Method::POST,
            "/xos/slice_privileges/",
            Some(json!({"user": pi, "slice": w.slice, "role": slice_admin})),
            StatusCode::FORBIDDEN,
        )
        .await;
        let (s, v) = app
            .req(
                Method::PATCH,
                &format!("/xoslib/slicesplus/{}/", w.slice),
                creds(Pi),
                Some(json!({"users": [w.slice_user, pi]})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        // TOSCA is for admins only.
        let (s, _) = app
            .req(
                Method::POST,
                "/api/utility/tosca/run/",
                creds(Pi),
                Some(json!({"recipe": "tosca_definitions_version: tosca_simple_yaml_1_0\ntopology_template:\n  node_templates: {}\n"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);

both!(
    nobody_but_an_admin_touches_an_admin_or_a_higher_role,
    async |app: &TestApp| {
        let w = world(app).await;
        let admin = admin_id(app).await;
        let user = |id: i64| format!("/xos/users/{id}/");
        // The confirmed cases: the only admin, homed at the PI's site, deactivated, demoted, deleted.
        for body in [
            json!({"is_active": false}),
            json!({"is_admin": false}),
            json!({"firstname": "x"}),
        ] {
            expect(
                app,
                Pi,
                Method::PATCH,
                &user(admin),
                Some(body),
                StatusCode::FORBIDDEN,
            )
            .await;
        }
        expect(app, Pi, Method::DELETE, &user(admin), None, StatusCode::FORBIDDEN).await;
        // Permission comes before validation: a bad body still gets 403, not a 400 about it.
        expect(
            app,
            Pi,
            Method::PATCH,
            &user(admin),
            Some(json!({"email": "not an email", "nope": 1})),
            StatusCode::FORBIDDEN,
        )
        .await;
        let (s, v) = app.get(&user(admin)).await;
        assert_eq!(
            (s, v["is_active"].as_bool(), v["is_admin"].as_bool()),
            (StatusCode::OK, Some(true), Some(true))
        );
        // A site admin of the site outranks the PI.
        let admin_role = site_role(app, "admin").await;
        let boss = app.make_user("boss@mysite.org", "boss-password").await;
        make(
            app,
            "siteprivileges",
            json!({"user": boss, "site": w.site, "role": admin_role}),
        )
        .await;
        expect(
            app,
            Pi,
            Method::PATCH,
            &user(boss),
            Some(json!({"phone": "1"})),
            StatusCode::FORBIDDEN,
        )
        .await;
        expect(app, Pi, Method::DELETE, &user(boss), None, StatusCode::FORBIDDEN).await;
        // A fellow PI: no deactivation, no new login name, no delete; other details are fine.
        let pi_role = site_role(app, "pi").await;
        make(
            app,
            "siteprivileges",
            json!({"user": w.victim, "site": w.site, "role": pi_role}),
        )
        .await;
        for body in [
            json!({"is_active": false}),
            json!({"is_readonly": true}),
            json!({"email": "mine@evil.org"}),
        ] {
            expect(
                app,
                Pi,
                Method::PATCH,
                &user(w.victim),
                Some(body),
                StatusCode::FORBIDDEN,
            )
            .await;
        }
        expect(
            app,
            Pi,
            Method::DELETE,
            &user(w.victim),
            None,
            StatusCode::FORBIDDEN,
        )
        .await;
        expect(
            app,
            Pi,
            Method::PATCH,
            &user(w.victim),
            Some(json!({"phone": "2"})),
            StatusCode::OK,
        )
        .await;
        // A plain user of the site: the PI runs the account, as in XOS.
        expect(
            app,
            Pi,
            Method::PATCH,
            &user(w.plain),
            Some(json!({"is_active": false})),
            StatusCode::OK,
        )
        .await;
        // The site admin (boss) may change the fellow PI, but not the global admin.
        let boss_creds = Some(("boss@mysite.org", "boss-password"));
        let (s, _) = app
            .req(
                Method::PATCH,
                &user(w.victim),
                boss_creds,
                Some(json!({"is_active": false})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = app
            .req(
                Method::PATCH,
                &user(admin),
                boss_creds,
                Some(json!({"is_active": false})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);

both!(
    many_to_many_writes_run_as_the_caller_and_are_logged,
    async |app: &TestApp| {
        let w = world(app).await;
        let dep = make(app, "deployments", json!({"name": "other"})).await;
        let site = format!("/xos/sites/{}/?no_hyperlinks=1", w.site);
        let (_, before) = app.get(&site).await;
        // The confirmed case: a PI added an admin-only SiteDeployment through the site's list.
        let mut deps = before["deployments"].as_array().unwrap().clone();
        deps.push(json!(dep));
        expect(
            app,
            Pi,
            Method::PATCH,
            &site,
            Some(json!({"deployments": deps})),
            StatusCode::FORBIDDEN,
        )
        .await;
        let (_, after) = app.get(&site).await;
        assert_eq!(after["deployments"], before["deployments"], "nothing was written");
        // An admin may; the change log names the admin, with the relation's old and new ids.
        let (s, _) = app.patch(&site, json!({"deployments": deps})).await;
        assert_eq!(s, StatusCode::OK);
        let (_, log) = app
            .get(&format!("/xos/changes/?model=Site&object={}", w.site))
            .await;
        assert_eq!(log[0]["actor"], "padmin@vicci.org", "{log}");
        assert_eq!(log[0]["changes"]["deployments"]["new"], json!(deps), "{log}");
        let (_, log) = app.get("/xos/changes/?model=SiteDeployment&kind=create").await;
        assert_eq!(log[0]["actor"], "padmin@vicci.org", "{log}");

        // A network owner joining foreign slices to its network: Plain is admin of its own slice.
        let own = plain_own_slice(app, &w).await;
        let net = make(
            app,
            "networks",
            json!({"name": "pnet", "template": w.template, "owner": own, "permit_all_slices": true}),
        )
        .await;
        let path = format!("/xos/networks/{net}/?no_hyperlinks=1");
        // A slice it cannot see reads as one that does not exist.
        let (s, v) = app
            .req(
                Method::PATCH,
                &path,
                creds(Plain),
                Some(json!({"slices": [own, w.slice]})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        let (s2, v2) = app
            .req(
                Method::PATCH,
                &path,
                creds(Plain),
                Some(json!({"slices": [own, 999_999]})),
            )
            .await;
        assert_eq!(
            (s2, v2["slices"][0].as_str().map(|m| m.replace("999999", "X"))),
            (
                s,
                v["slices"][0]
                    .as_str()
                    .map(|m| m.replace(&w.slice.to_string(), "X"))
            )
        );
        // A slice it sees (it is a member) but does not manage: refused.
        make(
            app,
            "slice_privileges",
            json!({"user": w.plain, "slice": w.slice, "role": w.access_role}),
        )
        .await;
        let (s, v) = app
            .req(
                Method::PATCH,
                &path,
                creds(Plain),
                Some(json!({"slices": [own, w.slice]})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
        // Its own slice: fine.
        let (s, v) = app
            .req(Method::PATCH, &path, creds(Plain), Some(json!({"slices": [own]})))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["slices"], json!([own]));
    }
);

both!(link_models_need_the_right_on_both_ends, async |app: &TestApp| {
    let w = world(app).await;
    // Plain manages its own slice and network; the matrix slice is someone else's, Plain only
    // a member of it.
    let own = plain_own_slice(app, &w).await;
    make(
        app,
        "slice_privileges",
        json!({"user": w.plain, "slice": w.slice, "role": w.access_role}),
    )
    .await;
    let my_net = make(
        app,
        "networks",
        json!({"name": "mine", "template": w.template, "owner": own}),
    )
    .await;
    let their_net = make(
        app,
        "networks",
        json!({"name": "theirs", "template": w.template, "owner": w.slice, "permit_all_slices": true}),
    )
    .await;
    let foreign = make(
        app,
        "instances",
        json!({"slice": w.slice, "image": w.image, "node": w.node}),
    )
    .await;
    let mine = make(
        app,
        "instances",
        json!({"slice": own, "image": w.image, "node": w.node}),
    )
    .await;
    // A port on a foreign instance through one's own network: refused (it was allowed).
    expect(
        app,
        Plain,
        Method::POST,
        "/xos/ports/",
        Some(json!({"instance": foreign, "network": my_net})),
        StatusCode::FORBIDDEN,
    )
    .await;
    // A port on one's own instance on a network that permits all slices: allowed.
    let port = {
        let (s, v) = app
            .req(
                Method::POST,
                "/xos/ports/?no_hyperlinks=1",
                creds(Plain),
                Some(json!({"instance": mine, "network": their_net})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_i64().unwrap()
    };
    // Moving that port to the foreign instance: the new end is checked too.
    expect(
        app,
        Plain,
        Method::PATCH,
        &format!("/xos/ports/{port}/"),
        Some(json!({"instance": foreign})),
        StatusCode::FORBIDDEN,
    )
    .await;
    // Permitting a slice on one's network needs the network; on a foreign network: refused.
    expect(
        app,
        Plain,
        Method::POST,
        "/xos/networkpermittedslices/",
        Some(json!({"network": their_net, "slice": own})),
        StatusCode::FORBIDDEN,
    )
    .await;
    expect(
        app,
        Plain,
        Method::POST,
        "/xos/networkpermittedslices/",
        Some(json!({"network": my_net, "slice": w.slice})),
        StatusCode::CREATED,
    )
    .await;
    // A slice-network link for a slice one does not manage: refused.
    expect(
        app,
        Plain,
        Method::POST,
        "/xos/networkslices/",
        Some(json!({"network": my_net, "slice": w.slice})),
        StatusCode::FORBIDDEN,
    )
    .await;
});

both!(
    ids_the_caller_cannot_see_read_as_ids_that_do_not_exist,
    async |app: &TestApp| {
        let w = world(app).await;
        // Plain manages a slice of its own; the matrix slice is invisible to it.
        let own = plain_own_slice(app, &w).await;
        let try_slice = async |slice: i64| {
            let (s, v) = app
                .req(
                    Method::POST,
                    "/xos/networks/",
                    creds(Plain),
                    Some(json!({"name": "probe", "template": w.template, "owner": slice})),
                )
                .await;
            (s, v.to_string().replace(&slice.to_string(), "ID"))
        };
        let hidden = try_slice(w.slice).await;
        let missing = try_slice(987_654).await;
        assert_eq!(hidden.0, StatusCode::BAD_REQUEST, "{hidden:?}");
        assert_eq!(hidden, missing);
        // The capabilities of an invisible object are not answered at all, as for a missing one.
        let (s, v) = app
            .req(
                Method::GET,
                &format!("/xoslib/capabilities/slices/?ids={},{own},987654", w.slice),
                creds(Plain),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let objects = v["objects"].as_object().unwrap();
        assert_eq!(
            objects.keys().cloned().collect::<Vec<_>>(),
            vec![own.to_string()],
            "{v}"
        );
        // All field errors at once, the foreign key reported on its own field (not as the
        // creator's).
        let (s, v) = app
            .post(
                "/xos/instances/",
                json!({"slice": 987_654, "image": 987_655, "node": w.node, "isolation": "nonsense"}),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        // (The name defaults to the slice's, which does not exist: so it is missing too.)
        assert_eq!(keys, vec!["image", "isolation", "name", "slice"], "{v}");
    }
);

both!(
    rules_hold_across_sites_and_on_both_sides_of_a_move,
    async |app: &TestApp| {
        let w = world(app).await;
        let (admin_role, tech_role) = (site_role(app, "admin").await, site_role(app, "tech").await);
        let other = make(
            app,
            "sites",
            json!({"name": "Other", "login_base": "other", "abbreviated_name": "o"}),
        )
        .await;
        // A user who lives at the PI's site but runs another site: the PI may not touch it.
        let boss = app.make_user("boss@mysite.org", "boss-password").await;
        make(
            app,
            "siteprivileges",
            json!({"user": boss, "site": other, "role": admin_role}),
        )
        .await;
        let path = format!("/xos/users/{boss}/");
        for body in [
            json!({"is_active": false}),
            json!({"public_key": "ssh-rsa AAAA attacker"}),
        ] {
            expect(app, Pi, Method::PATCH, &path, Some(body), StatusCode::FORBIDDEN).await;
        }
        expect(app, Pi, Method::DELETE, &path, None, StatusCode::FORBIDDEN).await;
        // A slice of the other site that the PI manages as its slice admin: it may not move it
        // to its own site (it does not run the old one), nor raise its quota.
        let slice_admin = slice_role(app, "admin").await;
        let (_, me) = app.get("/xos/users/?email=pi@mysite.org").await;
        let pi = me[0]["id"].as_i64().unwrap();
        let theirs = make(app, "slices", json!({"name": "other_s", "site": other})).await;
        make(
            app,
            "slice_privileges",
            json!({"user": pi, "slice": theirs, "role": slice_admin}),
        )
        .await;
        let slice = format!("/xos/slices/{theirs}/");
        let moved = json!({"site": w.site, "name": "mysite_moved"});
        expect(app, Pi, Method::PATCH, &slice, Some(moved), StatusCode::FORBIDDEN).await;
        expect(
            app,
            Pi,
            Method::PATCH,
            &slice,
            Some(json!({"max_instances": 500})),
            StatusCode::FORBIDDEN,
        )
        .await;
        expect(
            app,
            Pi,
            Method::PATCH,
            &slice,
            Some(json!({"description": "fine"})),
            StatusCode::OK,
        )
        .await;
        // A tech of one site does not put a node into another site's deployment.
        make(
            app,
            "siteprivileges",
            json!({"user": w.plain, "site": w.site, "role": tech_role}),
        )
        .await;
        let dep = make(app, "deployments", json!({"name": "d2"})).await;
        let their_sd = make(app, "sitedeployments", json!({"site": other, "deployment": dep})).await;
        let node = json!({"name": "sneaky", "site": w.site, "site_deployment": their_sd});
        expect(
            app,
            Plain,
            Method::POST,
            "/xos/nodes/",
            Some(node),
            StatusCode::FORBIDDEN,
        )
        .await;
        // Many-to-many lists show only what the reader sees, and a write keeps what it does not.
        let net = make(
            app,
            "networks",
            json!({"name": "open", "template": w.template, "owner": w.slice, "permit_all_slices": true}),
        )
        .await;
        plain_own_slice(app, &w).await;
        app.patch(&format!("/xos/networks/{net}/"), json!({"slices": [w.slice]}))
            .await;
        let (_, v) = app
            .req(
                Method::GET,
                &format!("/xos/networks/{net}/?no_hyperlinks=1"),
                creds(Plain),
                None,
            )
            .await;
        assert_eq!(v["slices"], json!([]), "the hidden slice is not listed: {v}");
        let (_, v) = app.get(&format!("/xos/networks/{net}/?no_hyperlinks=1")).await;
        assert_eq!(v["slices"], json!([w.slice]));
    }
);

both!(
    a_model_declared_with_slice_member_access_needs_no_other_code,
    async |app: &TestApp| {
        use app::registry::{Access, Field, Model, OnDelete, Registry};
        use server::store::{Actor, ListQuery, Principal, Store, StoreError};
        let w = world(app).await;
        // The worked example of docs/data-model.md, declared as it shows it.
        let note = Model::new("SliceNote", "slicenotes")
            .access(Access::slice_members("slice"))
            .verbose("slice note", "slice notes")
            .field(Field::fk("slice", "Slice", "notes", OnDelete::Cascade))
            .field(Field::text("text", None))
            .display("{text}")
            .list(&["slice", "text"]);
        let mut models = app::registry::registry().models.clone();
        models.push(note);
        let reg: &'static Registry = Box::leak(Box::new(Registry::new(models)));
        // Its table, as the generated migration makes it.
        let db = server::db::Db::connect(&app.config.database_url).await.unwrap();
        let spec = server::ddl::table_spec(reg, reg.model("SliceNote").unwrap());
        for stmt in server::ddl::create_table(&spec, db.dialect()) {
            db.execute(&server::db::Sql::new(stmt)).await.unwrap();
        }
        let store = Store::open(db, reg).await.unwrap();
        let m = store.model("SliceNote");
        let user = |id: i64| {
            Actor::User(Principal {
                id,
                email: String::new(),
                is_admin: false,
                is_readonly: false,
                site_id: w.site,
            })
        };
        let (member, plain) = (user(w.slice_user), user(w.plain));
        let obj = |v: Value| v.as_object().unwrap().clone();
        // A member of the slice (an `access` privilege, not a manager) writes and reads notes.
        let n = store
            .create(
                member.clone(),
                m,
                &obj(json!({"slice": w.slice, "text": "hello"})),
            )
            .await
            .unwrap();
        store
            .update(member.clone(), m, n.id(), &obj(json!({"text": "changed"})), true)
            .await
            .unwrap();
        assert_eq!(
            store.get(&member, m, n.id()).await.unwrap().get_str("text"),
            Some("changed")
        );
        // A user outside the slice writes none and sees none: a foreign note is not found.
        let err = store
            .create(plain.clone(), m, &obj(json!({"slice": w.slice, "text": "mine"})))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::PermissionDenied(_)), "{err:?}");
        assert!(matches!(
            store.get(&plain, m, n.id()).await,
            Err(StoreError::NotFound)
        ));
        let all = ListQuery::parse(m, &[]).unwrap();
        assert!(store.list(&plain, m, &all).await.unwrap().0.is_empty());
        assert_eq!(store.list(&member, m, &all).await.unwrap().0.len(), 1);
        for r in [
            store
                .update(plain.clone(), m, n.id(), &obj(json!({"text": "defaced"})), true)
                .await
                .map(|_| ()),
            store.delete(plain.clone(), m, n.id()).await,
        ] {
            assert!(
                matches!(r, Err(StoreError::NotFound | StoreError::PermissionDenied(_))),
                "{r:?}"
            );
        }
        // Moving the note to a slice the member is not in: refused, and nothing changed. A
        // slice it cannot see answers like one that does not exist; one it sees but is not a
        // member of (a slice open to it through a network, say) would fail the check of the
        // row after the change.
        let other = app.make_slice("notes_other").await["id"].as_i64().unwrap();
        let err = store
            .update(member.clone(), m, n.id(), &obj(json!({"slice": other})), true)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(e) if e["slice"][0].contains("does not exist")),
            "{err:?}"
        );
        let kept = store.get(&member, m, n.id()).await.unwrap();
        assert_eq!(
            (kept.get_int("slice"), kept.get_str("text")),
            (Some(w.slice), Some("changed"))
        );
        // The member deletes it.
        store.delete(member, m, n.id()).await.unwrap();
        assert!(
            store
                .list(&user(w.slice_user), m, &all)
                .await
                .unwrap()
                .0
                .is_empty()
        );
    }
);

both!(
    a_deployment_admin_runs_its_deployment_and_nothing_else,
    async |app: &TestApp| {
        let w = world(app).await;
        // The site's PI becomes the admin of one deployment (XOS's DeploymentPrivilege); it
        // sees its site's users, so it can grant them the role.
        let (_, pi) = app.get("/xos/users/?email=pi@mysite.org").await;
        let pi = pi[0]["id"].as_i64().unwrap();
        let mine = make(app, "deployments", json!({"name": "mine"})).await;
        let theirs = make(app, "deployments", json!({"name": "theirs"})).await;
        let (_, roles) = app.get("/xos/deploymentroles/?role=admin").await;
        let admin_role = roles[0]["id"].as_i64().unwrap();
        make(
            app,
            "deploymentprivileges",
            json!({"user": pi, "deployment": mine, "role": admin_role}),
        )
        .await;
        let plain = creds(Pi);
        let send = async |who, method: Method, path: &str, body: Option<Value>| {
            app.req(method, path, who, body).await
        };
        // Its own deployment: changed; another, a new one, a delete: refused.
        let (s, v) = send(
            plain,
            Method::PATCH,
            &format!("/xos/deployments/{mine}/"),
            Some(json!({"accessControl": "allow site mysite"})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, _) = send(
            plain,
            Method::PATCH,
            &format!("/xos/deployments/{theirs}/"),
            Some(json!({"accessControl": "deny all"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = send(
            plain,
            Method::POST,
            "/xos/deployments/",
            Some(json!({"name": "new"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = send(plain, Method::DELETE, &format!("/xos/deployments/{mine}/"), None).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // The images and flavors its deployment offers: its own only.
        let (s, v) = send(
            plain,
            Method::POST,
            "/xos/imagedeploymentses/",
            Some(json!({"image": w.image, "deployment": mine})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, _) = send(
            plain,
            Method::POST,
            "/xos/imagedeploymentses/",
            Some(json!({"image": w.image, "deployment": theirs})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let flavor = make(app, "flavors", json!({"name": "fl-dep", "flavor": "x"})).await;
        let (s, v) = send(
            plain,
            Method::POST,
            "/xos/flavordeployments/",
            Some(json!({"flavor": flavor, "deployment": mine})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, _) = send(
            plain,
            Method::POST,
            "/xos/flavordeployments/",
            Some(json!({"flavor": flavor, "deployment": theirs})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Its privileges: granted to another user on its deployment, not moved to another one.
        let (s, granted) = send(
            plain,
            Method::POST,
            "/xos/deploymentprivileges/?no_hyperlinks=1",
            Some(json!({"user": w.victim, "deployment": mine, "role": admin_role})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{granted}");
        let (s, _) = send(
            plain,
            Method::PATCH,
            &format!("/xos/deploymentprivileges/{}/", granted["id"]),
            Some(json!({"deployment": theirs})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = send(
            plain,
            Method::POST,
            "/xos/deploymentprivileges/",
            Some(json!({"user": pi, "deployment": theirs, "role": admin_role})),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a deployment admin does not make itself admin of another"
        );
        // It sees its deployment's privileges; a user without one sees none of them.
        let (_, seen) = send(plain, Method::GET, "/xos/deploymentprivileges/", None).await;
        assert_eq!(seen.as_array().unwrap().len(), 2, "{seen}");
        let (_, seen) = send(creds(Plain), Method::GET, "/xos/deploymentprivileges/", None).await;
        assert_eq!(seen.as_array().unwrap().len(), 0, "{seen}");
        // A user with no privilege on the deployment changes nothing of it.
        let (s, _) = send(
            creds(SliceUser),
            Method::PATCH,
            &format!("/xos/deployments/{mine}/"),
            Some(json!({"accessControl": "deny all"})),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
);
