//! Signed-in answers from memory: a user's repeated query costs no statement, is shared by
//! the user's sessions and no one else, and is dropped when anything it read changes (written
//! by anyone, here plain SQL), when the user's roles change, and at once by the process's own
//! writes; narrowed tokens are never answered from memory, and a revoked token is refused
//! whatever is kept.

use std::time::{Duration, Instant};

use justice_counts::auth::tokens::{Restrictions, attenuate};
use justice_counts::limits::Limits;
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id, error_codes};
use crate::uploads::{agency, execute};

const RECORDS: &str = include_str!("../../operations/records.graphql");

/// Asks until the answer differs from `old`, for at most a second.
async fn changes_from(app: &TestApp, token: &str, variables: &Value, old: &Value) -> Value {
    let started = Instant::now();
    loop {
        let now = app
            .graphql_as(Some(token), RECORDS, variables.clone())
            .await;
        if now != *old {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the change was not seen"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_signed_in_users_repeated_query_costs_nothing_until_anything_it_reads_changes() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let sheriff = agency_id(&app, &db, "Pine County Sheriff").await;
    let variables = json!({ "agencyId": sheriff });
    let admin = app.token_for(&db, "sheriff.admin@example.com").await;

    let before = db.statements.get();
    let first = app
        .graphql_as(Some(&admin), RECORDS, variables.clone())
        .await;
    assert!(first["errors"].is_null(), "{first}");
    assert!(db.statements.get() > before);
    let editors = first.to_string().matches("\"person\"").count();
    assert!(
        editors > 0,
        "the demo's records name their editors: {first}"
    );
    let before = db.statements.get();
    let second = app
        .graphql_as(Some(&admin), RECORDS, variables.clone())
        .await;
    assert_eq!(second, first);
    assert_eq!(db.statements.get(), before, "answered from memory");

    // Another session of the same user shares the answer; another user has their own.
    let again = app.token_for(&db, "sheriff.admin@example.com").await;
    assert_ne!(again, admin);
    // (Its token is checked against the database the first time it is seen.)
    let me = app
        .graphql_as(Some(&again), "{ me { email } }", json!({}))
        .await;
    assert!(me["errors"].is_null(), "{me}");
    let before = db.statements.get();
    let shared = app
        .graphql_as(Some(&again), RECORDS, variables.clone())
        .await;
    assert_eq!(shared, first);
    assert_eq!(
        db.statements.get(),
        before,
        "the same standing, the same answer"
    );
    let contributor = app.token_for(&db, "sheriff.contributor@example.com").await;
    let before = db.statements.get();
    let own = app
        .graphql_as(Some(&contributor), RECORDS, variables.clone())
        .await;
    assert!(own["errors"].is_null(), "{own}");
    assert!(db.statements.get() > before, "not another user's answer");

    // Only signed-in answers read it: the editors' names (users, a table no anonymous
    // answer reads).
    execute(
        &db,
        "UPDATE users SET name = name || ' Jr' WHERE id IN (SELECT user_id FROM report_editors)",
    )
    .await;
    let renamed = changes_from(&app, &admin, &variables, &first).await;
    assert!(renamed.to_string().contains(" Jr\""), "{renamed}");
    // Public data too: a report's status.
    execute(
        &db,
        &format!(
            "UPDATE reports SET status = 'DRAFT' WHERE agency_id = {} AND status = 'PUBLISHED'",
            agency(&db, "Pine County Sheriff").await.0
        ),
    )
    .await;
    let drafts = changes_from(&app, &admin, &variables, &renamed).await;
    assert!(!drafts.to_string().contains("\"PUBLISHED\""), "{drafts}");
}

#[tokio::test]
async fn a_users_own_write_is_in_their_next_answer() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let sheriff = agency_id(&app, &db, "Pine County Sheriff").await;
    let variables = json!({ "agencyId": sheriff });
    let admin = app.token_for(&db, "sheriff.admin@example.com").await;
    let count = |answer: &Value| {
        answer["data"]["agency"]["reports"]["totalCount"]
            .as_i64()
            .unwrap_or_else(|| panic!("{answer}"))
    };
    let first = app
        .graphql_as(Some(&admin), RECORDS, variables.clone())
        .await;
    let kept = app
        .graphql_as(Some(&admin), RECORDS, variables.clone())
        .await;
    assert_eq!(kept, first);

    let created = app
        .graphql_as(
            Some(&admin),
            "mutation($input: CreateReportInput!) { createReport(input: $input) { id } }",
            json!({ "input": { "agencyId": sheriff, "frequency": "MONTHLY", "periodStart": "2031-01-01" } }),
        )
        .await;
    assert!(created["errors"].is_null(), "{created}");
    // At once, without waiting for the notification.
    let after = app.graphql_as(Some(&admin), RECORDS, variables).await;
    assert_eq!(count(&after), count(&first) + 1, "{after}");
}

#[tokio::test]
async fn removed_roles_and_revoked_tokens_are_not_answered_from_memory() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let sheriff = agency_id(&app, &db, "Pine County Sheriff").await;
    let variables = json!({ "agencyId": sheriff });
    let contributor = app.token_for(&db, "sheriff.contributor@example.com").await;
    let first = app
        .graphql_as(Some(&contributor), RECORDS, variables.clone())
        .await;
    assert!(first["errors"].is_null(), "{first}");
    assert!(first.to_string().contains("\"DRAFT\""), "{first}");

    execute(
        &db,
        "DELETE FROM memberships WHERE user_id = \
         (SELECT id FROM users WHERE email = 'sheriff.contributor@example.com')",
    )
    .await;
    let after = changes_from(&app, &contributor, &variables, &first).await;
    assert!(
        !after.to_string().contains("\"DRAFT\""),
        "no drafts for someone who is no longer a member: {after}"
    );

    let admin = app.token_for(&db, "sheriff.admin@example.com").await;
    let kept = app
        .graphql_as(Some(&admin), RECORDS, variables.clone())
        .await;
    assert!(kept["errors"].is_null(), "{kept}");
    let signed_out = app
        .graphql_as(Some(&admin), "mutation { signOut }", json!({}))
        .await;
    assert!(signed_out["errors"].is_null(), "{signed_out}");
    let refused = app.graphql_as(Some(&admin), RECORDS, variables).await;
    assert_eq!(error_codes(&refused), ["UNAUTHENTICATED"], "{refused}");
}

#[tokio::test]
async fn narrowed_tokens_and_disabled_caches_are_never_answered_from_memory() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let sheriff = agency_id(&app, &db, "Pine County Sheriff").await;
    let variables = json!({ "agencyId": sheriff });
    let admin = app.token_for(&db, "sheriff.admin@example.com").await;
    let narrowed = attenuate(
        &admin,
        &Restrictions {
            agencies: vec![agency(&db, "Pine County Sheriff").await],
            ..Restrictions::default()
        },
    )
    .unwrap();
    for _ in 0..2 {
        let before = db.statements.get();
        let answer = app
            .graphql_as(Some(&narrowed), RECORDS, variables.clone())
            .await;
        assert!(answer["errors"].is_null(), "{answer}");
        assert!(db.statements.get() > before, "run every time");
    }

    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            member_cache_entries: 0,
            ..Limits::default()
        },
    )
    .await;
    let admin = app.token_for(&db, "sheriff.admin@example.com").await;
    for _ in 0..2 {
        let before = db.statements.get();
        let answer = app
            .graphql_as(Some(&admin), RECORDS, variables.clone())
            .await;
        assert!(answer["errors"].is_null(), "{answer}");
        assert!(db.statements.get() > before, "run every time");
    }
}
