//! Read replicas: a real streaming replica (`pg_basebackup -R`) of a primary of the test's
//! own serves the queries, and a user who has just written reads their write.

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use justice_counts::db::cluster::{BinarySearch, Cluster, ClusterOptions, PgBinaries};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id};

const SET_HOMEPAGE: &str = "mutation($input: AgencySettingsInput!) { \
    updateAgencySettings(input: $input) { id } }";
const HOMEPAGE: &str = "query($id: ID!) { agency(id: $id) { settings { kind value } } }";

async fn homepage(app: &TestApp, token: &str, agency: &str) -> Option<String> {
    let answer = app
        .graphql_as(Some(token), HOMEPAGE, json!({ "id": agency }))
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    answer["data"]["agency"]["settings"]
        .as_array()?
        .iter()
        .find(|setting| setting["kind"] == "HOMEPAGE_URL")
        .and_then(|setting| setting["value"].as_str().map(str::to_owned))
}

async fn set_homepage(app: &TestApp, token: &str, agency: &str, url: &str) {
    let answer: Value = app
        .graphql_as(
            Some(token),
            SET_HOMEPAGE,
            json!({ "input": {
                "agencyId": agency,
                "settings": [{ "kind": "HOMEPAGE_URL", "value": url }],
            } }),
        )
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
}

async fn replay(replica: &mut AsyncPgConnection, paused: bool) {
    let call = if paused {
        "SELECT pg_wal_replay_pause()"
    } else {
        "SELECT pg_wal_replay_resume()"
    };
    diesel::sql_query(call).execute(replica).await.unwrap();
    #[derive(diesel::QueryableByName)]
    struct State {
        #[diesel(sql_type = diesel::sql_types::Text)]
        state: String,
    }
    let wanted = if paused { "paused" } else { "not paused" };
    let started = Instant::now();
    loop {
        let states: Vec<State> =
            diesel::sql_query("SELECT pg_get_wal_replay_pause_state() AS state")
                .load(replica)
                .await
                .unwrap();
        if states.iter().any(|s| s.state == wanted) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replay not {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn queries_read_from_a_streaming_replica_and_writers_read_their_writes() {
    // A primary of this test's own: the shared test cluster's WAL (a database created and
    // dropped for every test) would keep the replica replaying other tests' work.
    let primary_dir = tempfile::Builder::new()
        .prefix("jc-primary-")
        .tempdir()
        .unwrap();
    let replica_dir = tempfile::Builder::new()
        .prefix("jc-replica-")
        .tempdir()
        .unwrap();
    let (primary_root, replica_root) =
        (primary_dir.path().to_owned(), replica_dir.path().to_owned());
    let primary = tokio::task::spawn_blocking(move || {
        let binaries = PgBinaries::locate(&BinarySearch::system(None))?;
        Cluster::start(
            binaries,
            &ClusterOptions {
                root: primary_root,
                durable: false,
                ..ClusterOptions::default()
            },
        )
    })
    .await
    .unwrap()
    .expect("the primary starts")
    .0;
    let db = TestDb::with_demo_on(&primary.url("{db}")).await;
    let primary_root = primary.root().to_owned();
    let replica = tokio::task::spawn_blocking(move || {
        let binaries = PgBinaries::locate(&BinarySearch::system(None))?;
        Cluster::start(
            binaries,
            &ClusterOptions {
                root: replica_root,
                durable: false,
                standby_of: Some(primary_root),
                ..ClusterOptions::default()
            },
        )
    })
    .await
    .unwrap()
    .expect("the replica starts")
    .0;
    let replica_url = replica.url(&db.name);
    let mut control = AsyncPgConnection::establish(&replica_url).await.unwrap();
    let pool = justice_counts::db::connect_with(
        &replica_url,
        justice_counts::db::PoolSettings {
            wait: Duration::from_millis(500),
            ..justice_counts::db::PoolSettings::new(4)
        },
    )
    .await
    .unwrap();
    let app = TestApp::spawn_with_replicas(&db, vec![pool]).await;
    let sheriff = agency_id(&app, &db, "Pine County Sheriff's Office").await;
    let staff = app.token_for(&db, "admin@example.com").await;
    let agency_admin = app.token_for(&db, "sheriff.admin@example.com").await;
    let before = homepage(&app, &staff, &sheriff).await;

    // With replay paused, the replica stays where it is while the primary moves on.
    replay(&mut control, true).await;
    set_homepage(&app, &staff, &sheriff, "https://first.example.org").await;
    assert_eq!(
        homepage(&app, &agency_admin, &sheriff).await,
        before,
        "another user's query is served by the replica, which has not replayed the write"
    );
    assert_eq!(
        homepage(&app, &staff, &sheriff).await.as_deref(),
        Some("https://first.example.org"),
        "the writer reads their own write (from the primary, the replica being behind)"
    );

    replay(&mut control, false).await;
    let started = Instant::now();
    while homepage(&app, &agency_admin, &sheriff).await.as_deref()
        != Some("https://first.example.org")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the replica does not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("the replica caught up in {:?}", started.elapsed());
    // The writer's reads went back to the replica once it had replayed the write: with
    // replay paused again, a write by someone else is invisible to them.
    assert_eq!(
        homepage(&app, &staff, &sheriff).await.as_deref(),
        Some("https://first.example.org")
    );
    replay(&mut control, true).await;
    set_homepage(&app, &agency_admin, &sheriff, "https://second.example.org").await;
    assert_eq!(
        homepage(&app, &staff, &sheriff).await.as_deref(),
        Some("https://first.example.org"),
        "the first writer reads from the replica again"
    );
    assert_eq!(
        homepage(&app, &agency_admin, &sheriff).await.as_deref(),
        Some("https://second.example.org"),
        "the second writer reads their own write"
    );
    replay(&mut control, false).await;
    // A replica that stops answering is skipped once its check finds it: reads go to the
    // primary.
    drop(control);
    drop(replica);
    let started = Instant::now();
    loop {
        let answer = app
            .graphql_as(Some(&staff), HOMEPAGE, json!({ "id": sheriff }))
            .await;
        if answer["errors"].is_null() {
            assert!(
                answer.to_string().contains("https://second.example.org"),
                "{answer}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "reads still fail without the replica: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("reading without the replica after {:?}", started.elapsed());
    // And from then on, every read works.
    for _ in 0..10 {
        assert_eq!(
            homepage(&app, &staff, &sheriff).await.as_deref(),
            Some("https://second.example.org")
        );
    }
    drop(app);
    drop(db);
    drop(primary);
}
