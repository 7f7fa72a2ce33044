//! Authentication from memory: a token is verified and its credentials read once, then served
//! from the cache — until a revocation or a change of roles, which every server process on
//! the database hears of through PostgreSQL at once.

use std::time::{Duration, Instant};

use justice_counts::auth::AuthConfig;
use justice_counts::auth::tokens::{KeySource, TokenKeys};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id, error_codes};
use crate::uploads::execute;

/// Two server processes (replicas) on one database, signing with one key.
async fn replicas(db: &TestDb) -> (TestApp, TestApp) {
    let keys = || {
        TokenKeys::load(&KeySource {
            hex: Some("5e".repeat(32)),
            file: None,
            data_dir: std::env::temp_dir(),
        })
        .expect("key")
    };
    (
        TestApp::spawn_with(db, AuthConfig::new(keys())).await,
        TestApp::spawn_with(db, AuthConfig::new(keys())).await,
    )
}

/// Retries `query` on `app` until its error codes are `expected`; the time it took.
async fn until(
    app: &TestApp,
    token: &str,
    query: &str,
    variables: Value,
    expected: &[&str],
) -> Duration {
    let started = Instant::now();
    loop {
        let response = app.graphql_as(Some(token), query, variables.clone()).await;
        if error_codes(&response) == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still {response} after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_known_token_costs_no_statement_and_a_sign_out_ends_it_on_every_replica() {
    let db = TestDb::with_demo().await;
    let (a, b) = replicas(&db).await;
    let signed_in = a
        .graphql(
            "mutation { signIn(input: {email: \"sheriff.reader@example.com\", password: \"justice-counts-demo\"}) { accessToken } }",
            json!({}),
        )
        .await;
    let token = signed_in["data"]["signIn"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{signed_in}"))
        .to_owned();

    // The first request of a replica reads the credentials; the next ones do not.
    for app in [&a, &b] {
        let first = app
            .graphql_as(Some(&token), "{ __typename }", json!({}))
            .await;
        assert!(first["errors"].is_null(), "{first}");
        let before = db.statements.get();
        let again = app
            .graphql_as(Some(&token), "{ __typename }", json!({}))
            .await;
        assert!(again["errors"].is_null(), "{again}");
        assert_eq!(
            db.statements.get(),
            before,
            "a known token needs no statement"
        );
    }

    // Signing out on one replica ends the token on the other, as soon as it hears of it.
    let out = a
        .graphql_as(Some(&token), "mutation { signOut }", json!({}))
        .await;
    assert_eq!(out["data"]["signOut"], true, "{out}");
    let took = until(
        &b,
        &token,
        "{ __typename }",
        json!({}),
        &["UNAUTHENTICATED"],
    )
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    let on_a = a
        .graphql_as(Some(&token), "{ __typename }", json!({}))
        .await;
    assert_eq!(error_codes(&on_a), ["UNAUTHENTICATED"]);
}

#[tokio::test]
async fn a_role_taken_away_is_gone_on_every_replica() {
    let db = TestDb::with_demo().await;
    let (a, b) = replicas(&db).await;
    let sheriff = agency_id(&a, &db, "Pine County Sheriff").await;
    let token = a.token_for(&db, "sheriff.reader@example.com").await;
    let team = "query($id: ID!) { agency(id: $id) { team { name } } }";
    for app in [&a, &b] {
        let allowed = app
            .graphql_as(Some(&token), team, json!({ "id": sheriff }))
            .await;
        assert!(allowed["errors"].is_null(), "{allowed}");
    }
    // Whatever removes the membership (here plain SQL) tells every replica.
    execute(
        &db,
        &format!(
            "DELETE FROM memberships WHERE agency_id = {sheriff} AND user_id =
             (SELECT id FROM users WHERE email = 'sheriff.reader@example.com')"
        ),
    )
    .await;
    for app in [&a, &b] {
        let took = until(app, &token, team, json!({ "id": sheriff }), &["FORBIDDEN"]).await;
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    // And a platform-staff flag given is seen too.
    execute(
        &db,
        "UPDATE users SET is_platform_admin = true WHERE email = 'sheriff.reader@example.com'",
    )
    .await;
    until(&b, &token, team, json!({ "id": sheriff }), &[]).await;
}
