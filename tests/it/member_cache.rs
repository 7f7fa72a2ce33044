//! Signed-in answers from memory: a user's repeated query costs no statement, is shared by
//! the user's sessions and no one else, and is dropped when anything it read changes (written
//! by anyone, here plain SQL), when the user's roles change, and at once by the process's own
//! writes; narrowed tokens are never answered from memory, a revoked token is refused
//! whatever is kept, and a listener whose connection goes silent says it is disconnected.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use justice_counts::auth::tokens::{Restrictions, attenuate};
use justice_counts::events::EventBus;
use justice_counts::limits::Limits;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let kept: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("answer_cache_entries{cache=\"member\"} "))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(kept >= 1, "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|line| line
                .starts_with("answer_cache_lookups_total{cache=\"member\",result=\"hit\"}")),
        "{metrics}"
    );

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
    let me = app
        .graphql_as(Some(&contributor), "{ me { email } }", json!({}))
        .await;
    assert!(me["errors"].is_null(), "{me}");
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
async fn narrowed_or_expiring_tokens_and_disabled_caches_are_never_answered_from_memory() {
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

    // A token about to expire: what it reads may shrink within the request, without an error.
    let mut conn = db.connect().await;
    let user =
        justice_counts::models::user::User::find_by_email(&mut conn, "sheriff.admin@example.com")
            .await
            .unwrap()
            .unwrap();
    // Early in a second, so that it still reads for most of a second even if its expiry is
    // kept in whole seconds.
    while chrono::Utc::now().timestamp_subsec_millis() > 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let expiring = app
        .auth
        .keys
        .issue(
            user.id,
            None,
            chrono::Utc::now() + chrono::Duration::seconds(1),
        )
        .unwrap();
    for _ in 0..2 {
        let before = db.statements.get();
        let answer = app
            .graphql_as(Some(&expiring), RECORDS, variables.clone())
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

/// A proxy in front of the cluster's unix socket that can stop passing anything on while
/// keeping its connections open, as a network partition does; its URL for database `url`.
async fn silenceable(url: &str) -> Option<(String, Arc<AtomicBool>, tempfile::TempDir)> {
    let (before, query) = url.split_once('?')?;
    let mut host = None;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("host=") {
            Some(value) => host = Some(decode(value)),
            None => rest.push(pair.to_owned()),
        }
    }
    let upstream = std::path::Path::new(&host?).join(".s.PGSQL.5432");
    let dir = tempfile::tempdir().ok()?;
    let listener = tokio::net::UnixListener::bind(dir.path().join(".s.PGSQL.5432")).ok()?;
    let silent = Arc::new(AtomicBool::new(false));
    let silenced = silent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::UnixStream::connect(&upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pass_on(client_read, server_write, silenced.clone()));
            tokio::spawn(pass_on(server_read, client_write, silenced.clone()));
        }
    });
    rest.push(format!("host={}", dir.path().display()));
    Some((format!("{before}?{}", rest.join("&")), silent, dir))
}

/// Copies `from` to `to`, holding back whatever arrives while `silent`.
async fn pass_on(
    mut from: tokio::net::unix::OwnedReadHalf,
    mut to: tokio::net::unix::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        while silent.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Decodes `%XX` escapes.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| text.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits up to `within` for the listener to say `connected`.
async fn until_connected(events: &EventBus, connected: bool, within: Duration) {
    let started = Instant::now();
    while events.connected().load(Ordering::SeqCst) != connected {
        assert!(
            started.elapsed() < within,
            "the listener still says connected = {}",
            !connected
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A listener whose connection goes silent (no error, no answer) stops saying it is connected
/// — and while it does not, no cache serves (`Memo::serving`) — and connects again once the
/// database answers.
#[tokio::test]
async fn a_listener_whose_connection_goes_silent_stops_answers_from_memory() {
    let db = TestDb::empty().await;
    let Some((url, silent, _dir)) = silenceable(&db.url).await else {
        panic!("the test cluster is reached over a unix socket: {}", db.url);
    };
    let events = EventBus::new().checking(Duration::from_millis(200), Duration::from_secs(2));
    let listener = events.listen(url).await.expect("listening");
    until_connected(&events, true, Duration::from_secs(1)).await;
    let connections = events.connections().load(Ordering::SeqCst);

    // Silent for longer than the quiet time and the check together.
    silent.store(true, Ordering::SeqCst);
    until_connected(&events, false, Duration::from_secs(6)).await;
    silent.store(false, Ordering::SeqCst);
    until_connected(&events, true, Duration::from_secs(10)).await;
    assert!(events.connections().load(Ordering::SeqCst) > connections);
    listener.stop();
}
