//! Entering and publishing data: saves are all-or-nothing, stale saves are refused, concurrent
//! editors lose nothing, and every change is in the history.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use justice_counts::db::schema::{datapoint_changes, datapoints};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id, error_codes};

const SAVE: &str = "mutation($input: SaveReportInput!) {
    saveReport(input: $input) { changedValues report { id version status } }
}";
const CREATE: &str =
    "mutation($input: CreateReportInput!) { createReport(input: $input) { id version status } }";
const VALUES: &str =
    "query($id: ID!) { report(id: $id) { version status metrics { key value valueStatus context
    breakdowns { dimensionId members { name value subCategories { name value } } }
    history { member oldValue newValue changedBy { name } } } } }";

struct Desk {
    app: TestApp,
    db: TestDb,
    token: String,
    agency: String,
}

async fn desk() -> Desk {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "sheriff.contributor@example.com").await;
    let agency = agency_id(&app, &db, "Sheriff").await;
    Desk {
        app,
        db,
        token,
        agency,
    }
}

impl Desk {
    async fn call(&self, query: &str, variables: Value) -> Value {
        self.app
            .graphql_as(Some(&self.token), query, variables)
            .await
    }

    async fn new_report(&self, start: &str) -> String {
        let admin = self
            .app
            .token_for(&self.db, "sheriff.admin@example.com")
            .await;
        let input =
            json!({ "agencyId": self.agency, "frequency": "MONTHLY", "periodStart": start });
        let created = self
            .app
            .graphql_as(Some(&admin), CREATE, json!({ "input": input }))
            .await;
        created["data"]["createReport"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"))
            .to_owned()
    }

    async fn save(&self, report: &str, version: i64, values: Value) -> Value {
        self.call(
            SAVE,
            json!({ "input": { "reportId": report, "version": version, "values": values } }),
        )
        .await
    }

    async fn version(&self, report: &str) -> i64 {
        self.call(VALUES, json!({ "id": report })).await["data"]["report"]["version"]
            .as_i64()
            .unwrap()
    }
}

fn arrests(value: Value) -> Value {
    json!({ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "value": value })
}

fn metric<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["data"]["report"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == key)
        .unwrap()
}

#[tokio::test]
async fn a_save_stores_values_moves_the_version_and_records_the_history() {
    let d = desk().await;
    let report = d.new_report("2026-01-01").await;
    let saved = d
        .save(&report, 1, json!([
            arrests(json!(120)),
            { "metricKey": "LAW_ENFORCEMENT_ARRESTS", "dimensionId": "metric/offense/type", "member": "DRUG", "value": 30 },
            { "metricKey": "LAW_ENFORCEMENT_ARRESTS", "dimensionId": "metric/offense/type", "member": "OTHER", "subCategory": "Trespass", "value": 4 },
            { "metricKey": "LAW_ENFORCEMENT_REPORTED_CRIME", "value": null },
        ]))
        .await;
    assert_eq!(saved["data"]["saveReport"]["changedValues"], 4, "{saved}");
    assert_eq!(saved["data"]["saveReport"]["report"]["version"], 2);
    assert_eq!(saved["data"]["saveReport"]["report"]["status"], "DRAFT");

    let again = d
        .save(
            &report,
            2,
            json!([arrests(json!(120)), arrests(json!(121))]),
        )
        .await;
    assert_eq!(
        error_codes(&again),
        ["BAD_USER_INPUT"],
        "the same value twice in one save"
    );
    let same = d.save(&report, 2, json!([arrests(json!(120))])).await;
    assert_eq!(
        same["data"]["saveReport"]["changedValues"], 0,
        "an unchanged value is no change"
    );
    assert_eq!(
        same["data"]["saveReport"]["report"]["version"], 3,
        "every accepted save moves the version"
    );
    d.save(&report, 3, json!([arrests(json!(125))])).await;

    let read = d.call(VALUES, json!({ "id": report })).await;
    let arrests = metric(&read, "LAW_ENFORCEMENT_ARRESTS");
    assert_eq!(arrests["value"], 125.0);
    let offense = arrests["breakdowns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["dimensionId"] == "metric/offense/type")
        .unwrap();
    let other = offense["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "OTHER")
        .unwrap();
    assert_eq!(
        other["subCategories"],
        json!([{ "name": "Trespass", "value": 4.0 }])
    );
    assert_eq!(
        metric(&read, "LAW_ENFORCEMENT_REPORTED_CRIME")["valueStatus"],
        "NOT_REPORTED"
    );
    let history: Vec<(Value, Value)> = arrests["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["member"].is_null())
        .map(|h| (h["oldValue"].clone(), h["newValue"].clone()))
        .collect();
    assert_eq!(
        history,
        [(Value::Null, json!(120.0)), (json!(120.0), json!(125.0))]
    );
    assert_eq!(arrests["history"][0]["changedBy"]["name"], "Casey Moreno");
}

#[tokio::test]
async fn a_stale_save_is_refused_with_what_changed_and_writes_nothing() {
    let d = desk().await;
    let report = d.new_report("2026-02-01").await;
    d.save(&report, 1, json!([arrests(json!(10))])).await;
    let stale = d.save(&report, 1, json!([arrests(json!(99)), { "metricKey": "LAW_ENFORCEMENT_REPORTED_CRIME", "value": 7 }])).await;
    assert_eq!(error_codes(&stale), ["CONFLICT"], "{stale}");
    let extensions = &stale["errors"][0]["extensions"];
    assert_eq!(extensions["currentVersion"], 2);
    assert_eq!(
        extensions["changedSince"][0]["metricKey"],
        "LAW_ENFORCEMENT_ARRESTS"
    );
    assert_eq!(extensions["changedSince"][0]["newValue"], 10.0);
    let read = d.call(VALUES, json!({ "id": report })).await;
    assert_eq!(read["data"]["report"]["version"], 2);
    assert_eq!(metric(&read, "LAW_ENFORCEMENT_ARRESTS")["value"], 10.0);
    assert_eq!(
        metric(&read, "LAW_ENFORCEMENT_REPORTED_CRIME")["valueStatus"],
        "MISSING"
    );
}

#[tokio::test]
async fn an_invalid_save_lists_every_problem_and_writes_nothing() {
    let d = desk().await;
    let report = d.new_report("2026-03-01").await;
    let response = d
        .save(&report, 1, json!([
            arrests(json!(5)),
            arrests(json!(-3)),
            { "metricKey": "PRISONS_ADMISSIONS", "value": 1 },
            { "metricKey": "LAW_ENFORCEMENT_FUNDING", "value": 1 },
            { "metricKey": "LAW_ENFORCEMENT_ARRESTS", "dimensionId": "metric/offense/type", "member": "JAYWALKING", "value": 1 },
            { "metricKey": "LAW_ENFORCEMENT_ARRESTS", "dimensionId": "global/nowhere", "member": "X", "value": 1 },
            { "metricKey": "LAW_ENFORCEMENT_ARRESTS", "member": "DRUG", "value": 1 },
            { "metricKey": "LAW_ENFORCEMENT_REPORTED_CRIME", "value": 1e16 },
        ]))
        .await;
    assert_eq!(error_codes(&response), ["BAD_USER_INPUT"], "{response}");
    let paths: Vec<&str> = response["errors"][0]["extensions"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "values[1].value",
            "values[1]",
            "values[2].metricKey",
            "values[3].metricKey",
            "values[4].member",
            "values[5].dimensionId",
            "values[6].member",
            "values[7].value"
        ],
    );
    let read = d.call(VALUES, json!({ "id": report })).await;
    assert_eq!(read["data"]["report"]["version"], 1);
    assert_eq!(
        metric(&read, "LAW_ENFORCEMENT_ARRESTS")["valueStatus"],
        "MISSING",
        "the valid value was not saved either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_concurrent_saves_from_one_version_exactly_one_succeeds() {
    let d = desk().await;
    let report = d.new_report("2026-04-01").await;
    for round in 0..5 {
        let version = d.version(&report).await;
        let (a, b) = tokio::join!(
            d.save(&report, version, json!([arrests(json!(round * 10 + 1))])),
            d.save(&report, version, json!([arrests(json!(round * 10 + 2))])),
        );
        let outcomes = [error_codes(&a), error_codes(&b)];
        let succeeded = outcomes.iter().filter(|codes| codes.is_empty()).count();
        assert_eq!(succeeded, 1, "round {round}: {a} / {b}");
        assert!(outcomes.iter().any(|codes| codes == &["CONFLICT"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_edits_keeps_every_accepted_change() {
    let d = Arc::new(desk().await);
    let mut reports = Vec::new();
    for index in 0..20 {
        reports.push(
            d.new_report(&format!("{}-{:02}-01", 2027 + index / 12, index % 12 + 1))
                .await,
        );
    }
    let members = ["PERSON", "PROPERTY", "DRUG", "PUBLIC_ORDER"];
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for worker in 0..10usize {
        let d = d.clone();
        let reports = reports.clone();
        let accepted = accepted.clone();
        workers.push(tokio::spawn(async move {
            for edit in 0..20usize {
                let report = &reports[(worker * 7 + edit * 3) % reports.len()];
                let member = members[(worker + edit) % members.len()];
                let value = (worker * 100 + edit) as f64;
                let input = json!([{ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "dimensionId": "metric/offense/type", "member": member, "value": value }]);
                loop {
                    let version = d.version(report).await;
                    let response = d.save(report, version, input.clone()).await;
                    match error_codes(&response).as_slice() {
                        [] => {
                            let changed = response["data"]["saveReport"]["changedValues"].as_u64().unwrap() as usize;
                            accepted.fetch_add(changed, Ordering::SeqCst);
                            break;
                        }
                        [code] if code == "CONFLICT" => continue,
                        _ => panic!("unexpected: {response}"),
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }

    let mut conn = d.db.connect().await;
    let history: Vec<(i64, Option<f64>)> = datapoint_changes::table
        .inner_join(datapoints::table)
        .filter(datapoints::member.is_not_null())
        .filter(datapoints::metric_key.eq("LAW_ENFORCEMENT_ARRESTS"))
        .filter(
            datapoints::report_id.eq_any(
                reports
                    .iter()
                    .map(|r| r.parse::<i32>().unwrap())
                    .map(justice_counts::models::ids::ReportId)
                    .collect::<Vec<_>>(),
            ),
        )
        .order(datapoint_changes::id)
        .select((
            datapoint_changes::datapoint_id,
            datapoint_changes::new_value,
        ))
        .load::<(justice_counts::models::ids::DatapointId, Option<f64>)>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, value)| (id.0, value))
        .collect();
    assert_eq!(
        history.len(),
        AtomicUsize::load(&accepted, Ordering::SeqCst),
        "one history row per accepted change"
    );
    assert!(
        history.len() >= 60,
        "the edits mostly changed values: {}",
        history.len()
    );
    let mut replayed: HashMap<i64, Option<f64>> = HashMap::new();
    for (id, value) in history {
        replayed.insert(id, value);
    }
    let stored: Vec<(justice_counts::models::ids::DatapointId, Option<f64>)> = datapoints::table
        .filter(
            datapoints::id.eq_any(
                replayed
                    .keys()
                    .map(|&id| justice_counts::models::ids::DatapointId(id))
                    .collect::<Vec<_>>(),
            ),
        )
        .select((datapoints::id, datapoints::value))
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(stored.len(), replayed.len());
    for (id, value) in stored {
        assert_eq!(
            Some(&value),
            replayed.get(&id.0),
            "datapoint {id} differs from its replayed history"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creation_of_one_value_yields_one_row_and_no_error() {
    let d = Arc::new(desk().await);
    let report = d.new_report("2028-01-01").await;
    let mut clients = Vec::new();
    for client in 0..8 {
        let d = d.clone();
        let report = report.clone();
        clients.push(tokio::spawn(async move {
            loop {
                let version = d.version(&report).await;
                let response = d
                    .save(&report, version, json!([arrests(json!(client))]))
                    .await;
                match error_codes(&response).as_slice() {
                    [] => return,
                    [code] if code == "CONFLICT" => continue,
                    _ => panic!("unexpected: {response}"),
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let mut conn = d.db.connect().await;
    let rows: i64 = datapoints::table
        .filter(
            datapoints::report_id.eq(justice_counts::models::ids::ReportId(
                report.parse().unwrap(),
            )),
        )
        .filter(datapoints::metric_key.eq("LAW_ENFORCEMENT_ARRESTS"))
        .filter(datapoints::dimension_id.is_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn reports_are_created_once_published_unpublished_and_deleted() {
    let d = desk().await;
    let report = d.new_report("2029-01-01").await;
    let admin = d.app.token_for(&d.db, "sheriff.admin@example.com").await;
    let duplicate = d
        .app
        .graphql_as(Some(&admin), CREATE, json!({ "input": { "agencyId": d.agency, "frequency": "MONTHLY", "periodStart": "2029-01-01" } }))
        .await;
    assert_eq!(error_codes(&duplicate), ["CONFLICT"]);
    let not_first = d
        .app
        .graphql_as(Some(&admin), CREATE, json!({ "input": { "agencyId": d.agency, "frequency": "MONTHLY", "periodStart": "2029-02-03" } }))
        .await;
    assert_eq!(error_codes(&not_first), ["BAD_USER_INPUT"]);
    let fiscal = d
        .app
        .graphql_as(Some(&admin), CREATE, json!({ "input": { "agencyId": d.agency, "frequency": "ANNUAL", "periodStart": "2029-07-01" } }))
        .await;
    assert_eq!(
        error_codes(&fiscal),
        ["BAD_USER_INPUT"],
        "the sheriff's years start in January"
    );

    let publish = "mutation($ids: [ID!]!) { publishReports(reportIds: $ids) { status version } }";
    let unpublish = "mutation($ids: [ID!]!) { unpublishReports(reportIds: $ids) { status } }";
    let empty = d.call(publish, json!({ "ids": [report] })).await;
    assert_eq!(
        error_codes(&empty),
        ["BAD_USER_INPUT"],
        "nothing to publish yet"
    );
    d.save(&report, 1, json!([arrests(json!(3))])).await;
    let reviewed = "mutation($ids: [ID!]!, $versions: [Int!]) { publishReports(reportIds: $ids, versions: $versions) { status } }";
    let unseen = d
        .call(reviewed, json!({ "ids": [report], "versions": [1] }))
        .await;
    assert_eq!(error_codes(&unseen), ["CONFLICT"], "{unseen}");
    assert_eq!(
        unseen["errors"][0]["extensions"]["currentVersions"],
        json!([{ "reportId": report, "version": 2 }]),
        "{unseen}"
    );
    let miscounted = d
        .call(reviewed, json!({ "ids": [report], "versions": [2, 2] }))
        .await;
    assert_eq!(error_codes(&miscounted), ["BAD_USER_INPUT"]);
    let status = "query($id: ID!) { report(id: $id) { status version } }";
    let unchanged = d.call(status, json!({ "id": report })).await;
    assert_eq!(
        unchanged["data"]["report"],
        json!({ "status": "DRAFT", "version": 2 }),
        "nothing was published"
    );
    let published = d
        .call(
            publish.replace("$ids: [ID!]!) { publishReports(reportIds: $ids)", "$ids: [ID!]!, $versions: [Int!]) { publishReports(reportIds: $ids, versions: $versions)").as_str(),
            json!({ "ids": [report], "versions": [2] }),
        )
        .await;
    assert_eq!(
        published["data"]["publishReports"][0]["status"], "PUBLISHED",
        "{published}"
    );
    assert_eq!(published["data"]["publishReports"][0]["version"], 3);
    let back = d.call(unpublish, json!({ "ids": [report] })).await;
    assert_eq!(back["data"]["unpublishReports"][0]["status"], "DRAFT");
    let history = d.call("query($id: ID!) { report(id: $id) { statusHistory { oldStatus newStatus changedBy { name } } } }", json!({ "id": report })).await;
    let steps: Vec<(&str, &str)> = history["data"]["report"]["statusHistory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["oldStatus"].as_str().unwrap(),
                s["newStatus"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("NOT_STARTED", "DRAFT"),
            ("DRAFT", "PUBLISHED"),
            ("PUBLISHED", "DRAFT")
        ]
    );

    let missing = d.call(publish, json!({ "ids": [report, "999999"] })).await;
    assert_eq!(error_codes(&missing), ["NOT_FOUND"]);
    let still_draft = d.call(VALUES, json!({ "id": report })).await;
    assert_eq!(
        still_draft["data"]["report"]["status"], "DRAFT",
        "all or none"
    );

    let platform = d.app.token_for(&d.db, "admin@example.com").await;
    let deleted = d
        .app
        .graphql_as(
            Some(&platform),
            "mutation($ids: [ID!]!) { deleteReports(reportIds: $ids) }",
            json!({ "ids": [report] }),
        )
        .await;
    assert_eq!(deleted["data"]["deleteReports"], json!([report]));
    assert_eq!(
        error_codes(&d.call(VALUES, json!({ "id": report })).await),
        ["NOT_FOUND"]
    );
}

#[tokio::test]
async fn a_stale_save_is_told_of_the_values_an_upload_created_since() {
    use crate::uploads::{By, ingest_file};
    use justice_counts::models::{enums::System, ids::AgencyId};

    let d = desk().await;
    let report = d.new_report("2026-04-01").await;
    d.save(&report, 1, json!([arrests(json!(10))])).await;
    // An upload gives the month a value it did not have: a new value, with no history row.
    let sheriff = AgencyId(d.agency.parse().expect("a numeric id"));
    let ingested = ingest_file(
        &d.db,
        sheriff,
        System::LawEnforcement,
        "reported_crime.csv",
        b"year,month,value\n2026,4,33\n",
        By::Person("sheriff.contributor@example.com"),
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{:#}", ingested.summary);
    assert_eq!(d.version(&report).await, 3);
    // A save based on the version before the upload hears of it.
    let stale = d.save(&report, 2, json!([arrests(json!(11))])).await;
    assert_eq!(error_codes(&stale), ["CONFLICT"], "{stale}");
    let extensions = &stale["errors"][0]["extensions"];
    assert_eq!(extensions["currentVersion"], 3);
    let changed = extensions["changedSince"].as_array().expect("changes");
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(changed[0]["version"], 3);
    assert_eq!(changed[0]["metricKey"], "LAW_ENFORCEMENT_REPORTED_CRIME");
    assert_eq!(changed[0]["oldValue"], Value::Null);
    assert_eq!(changed[0]["newValue"], 33.0);
    assert!(changed[0]["changedBy"].is_string(), "{changed:#?}");
    // Based on version 1, it hears of the editor's save and the upload, in that order.
    let staler = d.save(&report, 1, json!([arrests(json!(12))])).await;
    let changed = staler["errors"][0]["extensions"]["changedSince"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| (c["version"].as_i64().unwrap_or(0), c["metricKey"].clone()))
        .collect::<Vec<_>>();
    assert_eq!(
        changed,
        [
            (2, json!("LAW_ENFORCEMENT_ARRESTS")),
            (3, json!("LAW_ENFORCEMENT_REPORTED_CRIME"))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_edits_of_a_metrics_settings_at_once_keep_both_changes() {
    use justice_counts::models::enums::ReportFrequency;
    use justice_counts::models::metric_setting::{MetricSettingsChange, change_settings};
    let db = TestDb::with_demo().await;
    let harbor = crate::uploads::agency(&db, "Harbor City Police").await;
    let metrics: Vec<String> = db
        .catalogue
        .metrics()
        .iter()
        .filter(|metric| metric.system == justice_counts::models::enums::System::LawEnforcement)
        .map(|metric| metric.key.clone())
        .collect();
    // No settings of their own yet: each metric's first two edits come at once.
    crate::uploads::execute(
        &db,
        &format!("DELETE FROM metric_settings WHERE agency_id = {}", harbor.0),
    )
    .await;
    let edits = metrics.iter().map(|metric| {
        let pool = db.pool.clone();
        async move {
            let disable = async {
                let mut conn = pool.get().await.expect("connection");
                let change = MetricSettingsChange {
                    is_enabled: Some(false),
                    ..MetricSettingsChange::default()
                };
                change_settings(&mut conn, harbor, metric, &change, None).await
            };
            let annual = async {
                let mut conn = pool.get().await.expect("connection");
                let change = MetricSettingsChange {
                    frequency: Some(ReportFrequency::Annual),
                    ..MetricSettingsChange::default()
                };
                change_settings(&mut conn, harbor, metric, &change, None).await
            };
            let (a, b) = tokio::join!(disable, annual);
            a.expect("disabled");
            b.expect("made annual");
        }
    });
    futures_util::future::join_all(edits).await;
    let kept = crate::uploads::rows(
        &db,
        &format!(
            "SELECT metric_key, is_enabled, frequency::text AS frequency FROM metric_settings \
             WHERE agency_id = {}",
            harbor.0
        ),
    )
    .await;
    assert_eq!(kept.len(), metrics.len());
    for row in kept {
        assert_eq!(row["is_enabled"], false, "{row}");
        assert_eq!(row["frequency"], "ANNUAL", "{row}");
    }
}
