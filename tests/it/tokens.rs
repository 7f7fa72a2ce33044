//! Access tokens presented to the server: only valid, unrevoked tokens of this server's key
//! are accepted, and narrowed tokens allow only what they still allow.

use chrono::{Duration, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use justice_counts::auth::tokens::{Restrictions, TokenKeys, attenuate};
use justice_counts::db::schema::{memberships, users};
use justice_counts::models::enums::AgencyRole;
use justice_counts::models::ids::AgencyId;
use justice_counts::models::user::User;
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, error_codes};

const ME: &str = "{ me { email } }";

async fn user_id(db: &TestDb, email: &str) -> justice_counts::models::ids::UserId {
    let mut conn = db.connect().await;
    User::find_by_email(&mut conn, email)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn agency(app: &TestApp, db: &TestDb, name: &str) -> (String, AgencyId) {
    let admin = app.token_for(db, "admin@example.com").await;
    let response = app
        .graphql_as(
            Some(&admin),
            "query($n: String) { agencies(filter: {nameContains: $n}) { nodes { id } } }",
            json!({ "n": name }),
        )
        .await;
    let id = response["data"]["agencies"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let parsed = AgencyId(id.parse().unwrap());
    (id, parsed)
}

fn refused(response: &Value) -> bool {
    error_codes(response) == ["UNAUTHENTICATED"] && response["data"].is_null()
}

#[tokio::test]
async fn a_valid_token_identifies_its_user() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let response = app.graphql_as(Some(&token), ME, json!({})).await;
    assert_eq!(
        response["data"]["me"]["email"],
        "sheriff.reader@example.com"
    );
}

#[tokio::test]
async fn tampered_malformed_foreign_and_expired_tokens_are_unauthenticated() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let reader = user_id(&db, "sheriff.reader@example.com").await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;

    let mut tampered = token.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let foreign = TokenKeys::generate()
        .issue(reader, None, Utc::now() + Duration::hours(1))
        .unwrap();
    let expired = app
        .auth
        .keys
        .issue(reader, None, Utc::now() - Duration::minutes(1))
        .unwrap();

    for (what, token) in [
        ("tampered", tampered.as_str()),
        ("garbage", "not-a-token"),
        ("foreign", &foreign),
        ("expired", &expired),
    ] {
        let response = app.graphql_as(Some(token), ME, json!({})).await;
        assert!(refused(&response), "{what}: {response}");
    }
    // Not even public data is served with a bad token: the client must learn it is bad.
    let response = app
        .graphql_as(Some("not-a-token"), "{ systems { key } }", json!({}))
        .await;
    assert!(refused(&response), "{response}");

    let raw = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("authorization", format!("Token {token}"))
        .json(&json!({ "query": ME }))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 401);
}

#[tokio::test]
async fn a_token_of_a_deleted_user_is_unauthenticated() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "analyst@example.com").await;
    let mut conn = db.connect().await;
    diesel::delete(users::table.filter(users::email.eq("analyst@example.com")))
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(refused(&app.graphql_as(Some(&token), ME, json!({})).await));
}

#[tokio::test]
async fn a_read_only_token_cannot_write() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let (sheriff, _) = agency(&app, &db, "Sheriff").await;
    let admin = app.token_for(&db, "sheriff.admin@example.com").await;
    let read_only = attenuate(
        &admin,
        &Restrictions {
            read_only: true,
            ..Restrictions::default()
        },
    )
    .unwrap();

    let team = app
        .graphql_as(
            Some(&read_only),
            "query($a: ID!) { agency(id: $a) { team { email } } }",
            json!({ "a": sheriff }),
        )
        .await;
    assert!(team["errors"].is_null(), "reads still work: {team}");
    let invite = "mutation($a: ID!) { inviteMember(input: {agencyId: $a, email: \"x@example.com\", name: \"X\", role: READ_ONLY}) { invitationCode } }";
    let denied = app
        .graphql_as(Some(&read_only), invite, json!({ "a": sheriff }))
        .await;
    assert_eq!(error_codes(&denied), ["FORBIDDEN"], "{denied}");
    assert!(
        denied["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("token")
    );
    let allowed = app
        .graphql_as(Some(&admin), invite, json!({ "a": sheriff }))
        .await;
    assert!(
        allowed["errors"].is_null(),
        "the unrestricted token may: {allowed}"
    );
}

#[tokio::test]
async fn an_agency_restricted_token_cannot_read_another_agency_its_user_could() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let (sheriff, sheriff_id) = agency(&app, &db, "Sheriff").await;
    let (corrections, _) = agency(&app, &db, "Community Corrections").await;
    let (district_attorney, _) = agency(&app, &db, "District Attorney").await;
    let council = app.token_for(&db, "council.admin@example.com").await;
    let narrowed = attenuate(
        &council,
        &Restrictions {
            agencies: vec![sheriff_id],
            ..Restrictions::default()
        },
    )
    .unwrap();
    let team = "query($a: ID!) { agency(id: $a) { name team { name } } }";

    for agency in [&sheriff, &corrections, &district_attorney] {
        let response = app
            .graphql_as(Some(&council), team, json!({ "a": agency }))
            .await;
        assert!(
            response["errors"].is_null(),
            "the council admin may read every child: {response}"
        );
    }
    let own = app
        .graphql_as(Some(&narrowed), team, json!({ "a": sheriff }))
        .await;
    assert!(own["errors"].is_null(), "{own}");
    // Not public: as if it did not exist.
    let hidden = app
        .graphql_as(Some(&narrowed), team, json!({ "a": corrections }))
        .await;
    assert_eq!(error_codes(&hidden), ["NOT_FOUND"], "{hidden}");
    // Public profile, private team (which may not be null, so the agency is).
    let public = app
        .graphql_as(Some(&narrowed), team, json!({ "a": district_attorney }))
        .await;
    assert_eq!(error_codes(&public), ["FORBIDDEN"], "{public}");
    assert!(public["data"]["agency"].is_null(), "{public}");
    let profile = app
        .graphql_as(
            Some(&narrowed),
            "query($a: ID!) { agency(id: $a) { name } }",
            json!({ "a": district_attorney }),
        )
        .await;
    assert_eq!(
        profile["data"]["agency"]["name"],
        "Pine County District Attorney"
    );
    // The listing shows the token's agency and public ones only.
    let listed = app
        .graphql_as(
            Some(&narrowed),
            "{ agencies { nodes { name } } }",
            json!({}),
        )
        .await;
    let names: Vec<&str> = listed["data"]["agencies"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"Pine County Community Corrections"),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_token_narrowed_to_expire_sooner_stops_working_then() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let soon = attenuate(
        &token,
        &Restrictions {
            expires_at: Some(Utc::now() + Duration::hours(1)),
            ..Restrictions::default()
        },
    )
    .unwrap();
    assert!(app.graphql_as(Some(&soon), ME, json!({})).await["errors"].is_null());
    let past = attenuate(
        &token,
        &Restrictions {
            expires_at: Some(Utc::now() - Duration::seconds(1)),
            ..Restrictions::default()
        },
    )
    .unwrap();
    assert!(refused(&app.graphql_as(Some(&past), ME, json!({})).await));
}

#[tokio::test]
async fn a_revoked_token_and_every_token_derived_from_it_are_refused() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let derived = attenuate(
        &token,
        &Restrictions {
            read_only: true,
            ..Restrictions::default()
        },
    )
    .unwrap();
    let other = app.token_for(&db, "sheriff.reader@example.com").await;

    let signed_out = app
        .graphql_as(Some(&token), "mutation { signOut }", json!({}))
        .await;
    assert_eq!(signed_out["data"]["signOut"], true, "{signed_out}");
    assert!(refused(&app.graphql_as(Some(&token), ME, json!({})).await));
    assert!(refused(
        &app.graphql_as(Some(&derived), ME, json!({})).await
    ));
    // Another token of the same user, not derived from the revoked one, still works.
    assert!(app.graphql_as(Some(&other), ME, json!({})).await["errors"].is_null());
}

#[tokio::test]
async fn role_changes_take_effect_at_once() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let (sheriff, sheriff_id) = agency(&app, &db, "Sheriff").await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let emails = "query($a: ID!) { agency(id: $a) { team { email } } }";
    let before = app
        .graphql_as(Some(&token), emails, json!({ "a": sheriff }))
        .await;
    assert!(
        error_codes(&before).iter().all(|code| code == "FORBIDDEN")
            && !error_codes(&before).is_empty()
    );

    let reader = user_id(&db, "sheriff.reader@example.com").await;
    let mut conn = db.connect().await;
    diesel::update(memberships::table.find((reader, sheriff_id)))
        .set(memberships::role.eq(AgencyRole::AgencyAdmin))
        .execute(&mut conn)
        .await
        .unwrap();
    // Written by anyone (here plain SQL): the server hears of it from PostgreSQL at once.
    let started = std::time::Instant::now();
    loop {
        let after = app
            .graphql_as(Some(&token), emails, json!({ "a": sheriff }))
            .await;
        if after["errors"].is_null() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the same token, the new role: {after}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Anyone holding a token may lengthen it with blocks of checks, without the key: a token
/// longer than `MAX_TOKEN_BYTES` is refused before it is read, valid or not.
#[tokio::test]
async fn a_token_longer_than_the_limit_is_refused_before_it_is_read() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let response = app.graphql_as(Some(&token), ME, json!({})).await;
    assert_eq!(
        response["data"]["me"]["email"],
        "sheriff.reader@example.com"
    );
    // The same valid token, under a limit shorter than it.
    let strict = TestApp::spawn_with_limits(
        &db,
        justice_counts::limits::Limits {
            max_token_bytes: token.len() - 1,
            ..Default::default()
        },
    )
    .await;
    let response = strict.graphql_as(Some(&token), ME, json!({})).await;
    assert!(refused(&response), "{response}");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(&format!("longer than {} bytes", token.len() - 1)),
        "{message}"
    );
    // Under the default limit, a long one is not even parsed.
    let long = "A".repeat(8_193);
    let response = app.graphql_as(Some(&long), ME, json!({})).await;
    assert!(refused(&response), "{response}");
    let message = response["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("longer than 8192 bytes"), "{message}");
}

/// A token narrowed to some agencies reaches no other agency, even where the work is platform
/// administration or reaches a superagency's children.
#[tokio::test]
async fn a_narrowed_token_reaches_no_other_agency_through_administration_or_children() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let (sheriff, sheriff_id) = agency(&app, &db, "Sheriff").await;
    let (district_attorney, _) = agency(&app, &db, "District Attorney").await;
    let (council, council_id) = agency(&app, &db, "Public Safety Council").await;
    let staff = app.token_for(&db, "admin@example.com").await;
    let narrowed = attenuate(
        &staff,
        &Restrictions {
            agencies: vec![sheriff_id],
            ..Restrictions::default()
        },
    )
    .unwrap();
    let dashboard =
        "mutation($a: ID!) { setDashboardEnabled(agencyId: $a, enabled: true) { name } }";
    let other = app
        .graphql_as(
            Some(&narrowed),
            dashboard,
            json!({ "a": district_attorney }),
        )
        .await;
    assert_eq!(error_codes(&other), ["FORBIDDEN"], "{other}");
    let own = app
        .graphql_as(Some(&narrowed), dashboard, json!({ "a": sheriff }))
        .await;
    assert!(own["errors"].is_null(), "{own}");
    let link = "mutation($p: ID!, $c: ID!) { linkChildAgencies(superagencyId: $p, childAgencyIds: [$c]) { name } }";
    let linked = app
        .graphql_as(Some(&narrowed), link, json!({ "p": council, "c": sheriff }))
        .await;
    assert_eq!(error_codes(&linked), ["FORBIDDEN"], "{linked}");
    let created = app
        .graphql_as(
            Some(&narrowed),
            "mutation { createAgency(input: {name: \"New\", stateCode: \"us_or\", systems: [JAILS]}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&created), ["FORBIDDEN"], "{created}");
    let reports = app
        .graphql_as(
            Some(&staff),
            "query($a: ID!) { agency(id: $a) { reports(first: 1) { nodes { id } } } }",
            json!({ "a": district_attorney }),
        )
        .await;
    let report = reports["data"]["agency"]["reports"]["nodes"][0]["id"].clone();
    assert!(report.is_string(), "{reports}");
    let deleted = app
        .graphql_as(
            Some(&narrowed),
            "mutation($r: ID!) { deleteReports(reportIds: [$r]) }",
            json!({ "r": report }),
        )
        .await;
    assert_eq!(error_codes(&deleted), ["FORBIDDEN"], "{deleted}");

    // The council's admin, narrowed to the council itself: not its children's data.
    let council_admin = app.token_for(&db, "council.admin@example.com").await;
    let only_council = attenuate(
        &council_admin,
        &Restrictions {
            agencies: vec![council_id],
            ..Restrictions::default()
        },
    )
    .unwrap();
    let download = |token: String| {
        app.client
            .get(format!(
                "{}/agencies/{council}/datapoints.xlsx?system=LAW_ENFORCEMENT",
                app.base_url
            ))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(download(council_admin.clone()).await.unwrap().status(), 200);
    assert_eq!(download(only_council.clone()).await.unwrap().status(), 403);
    // Its uploads hold its children's values too.
    let uploads = "query($a: ID!) { agency(id: $a) { name uploads { totalCount } } }";
    let all = app
        .graphql_as(Some(&council_admin), uploads, json!({ "a": council }))
        .await;
    assert!(all["errors"].is_null(), "{all}");
    let narrow = app
        .graphql_as(Some(&only_council), uploads, json!({ "a": council }))
        .await;
    assert_eq!(error_codes(&narrow), ["FORBIDDEN"], "{narrow}");
    let operations = json!({
        "query": "mutation($a: ID!, $f: File!) { uploadSpreadsheet(agencyId: $a, system: LAW_ENFORCEMENT, file: $f) { id } }",
        "variables": { "a": council, "f": null },
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.f"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(b"year,month,agency,value\n".to_vec())
                .file_name("arrests.csv"),
        );
    let uploaded: Value = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("Apollo-Require-Preflight", "true")
        .bearer_auth(&only_council)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error_codes(&uploaded), ["FORBIDDEN"], "{uploaded}");
}

/// Whoever holds a narrowed token may sign it out, but not the session it was derived from.
#[tokio::test]
async fn signing_out_a_narrowed_token_ends_that_token_only() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let signed_in = app
        .graphql(
            "mutation { signIn(input: {email: \"sheriff.reader@example.com\", password: \"justice-counts-demo\"}) { accessToken } }",
            json!({}),
        )
        .await;
    let token = signed_in["data"]["signIn"]["accessToken"]
        .as_str()
        .expect("signed in")
        .to_owned();
    let handed_out = attenuate(
        &token,
        &Restrictions {
            read_only: true,
            ..Restrictions::default()
        },
    )
    .unwrap();
    let out = app
        .graphql_as(Some(&handed_out), "mutation { signOut }", json!({}))
        .await;
    assert_eq!(out["data"]["signOut"], true, "{out}");
    let ended = app.graphql_as(Some(&handed_out), ME, json!({})).await;
    assert_eq!(error_codes(&ended), ["UNAUTHENTICATED"], "{ended}");
    let kept = app.graphql_as(Some(&token), ME, json!({})).await;
    assert_eq!(
        kept["data"]["me"]["email"], "sheriff.reader@example.com",
        "{kept}"
    );
    // The session's own token ends it, and every token derived from it.
    let derived = attenuate(
        &token,
        &Restrictions {
            read_only: true,
            ..Restrictions::default()
        },
    )
    .unwrap();
    app.graphql_as(Some(&token), "mutation { signOut }", json!({}))
        .await;
    for token in [&token, &derived] {
        let ended = app.graphql_as(Some(token), ME, json!({})).await;
        assert_eq!(error_codes(&ended), ["UNAUTHENTICATED"], "{ended}");
    }
}
