//! Data out: the public feed (exactly what `publishedSeries` shows), the member feed (members
//! only), incremental sync with `?since=` after a save, a publish, an unpublish and a delete,
//! HTTP caching, CSV quoting, the GraphQL change stream, the export command and the
//! spreadsheet round trip.

use std::collections::{BTreeMap, BTreeSet};

use justice_counts::export;
use justice_counts::ingest::template;
use justice_counts::limits::Limits;
use justice_counts::models::enums::System;
use justice_counts::models::ids::AgencyId;
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id, error_codes};
use crate::uploads::{By, execute, ingest_file, int, rows};

/// A feed's answer: status, headers and body.
struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    fn cursor(&self) -> String {
        self.header("feed-cursor").to_owned()
    }

    /// The CSV rows as maps of column to cell, read by a standard CSV reader.
    fn records(&self) -> Vec<BTreeMap<String, String>> {
        assert_eq!(self.status, 200, "{}", self.body);
        let mut reader = csv::Reader::from_reader(self.body.as_bytes());
        let header = reader.headers().expect("header").clone();
        reader
            .records()
            .map(|record| {
                let record = record.expect("a CSV record");
                header
                    .iter()
                    .zip(record.iter())
                    .map(|(name, cell)| (name.to_owned(), cell.to_owned()))
                    .collect()
            })
            .collect()
    }

    fn json_lines(&self) -> Vec<Value> {
        assert_eq!(self.status, 200, "{}", self.body);
        self.body
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut request = app.client.get(format!("{}{path}", app.base_url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("sent");
    Got {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("body"),
    }
}

/// A value's identity and value in a feed: metric, period start, breakdown, member, value.
type Cell = (String, String, String, String, String);

fn cells(records: &[BTreeMap<String, String>]) -> BTreeSet<Cell> {
    records
        .iter()
        .map(|r| {
            (
                r["metric_key"].clone(),
                r["period_start"].clone(),
                r["breakdown"].clone(),
                r["member"].clone(),
                r["value"].clone(),
            )
        })
        .collect()
}

/// A number as the feed writes it (PostgreSQL's shortest exact form).
fn number(value: &Value) -> String {
    let number = value.as_f64().expect("a number");
    if number.fract() == 0.0 {
        format!("{number:.0}")
    } else {
        number.to_string()
    }
}

/// Compares the public feed of agency `id` with its published series, value by value.
async fn compare_with_published_series(app: &TestApp, db: &TestDb, id: &str, name: &str) {
    let feed = get(app, &format!("/feed/{id}.csv"), &[]).await;
    let records = feed.records();
    assert!(records.len() > 20, "{name}: {} rows", records.len());
    // Values marked "not reported" are rows without a value; series show them as gaps.
    let from_feed: BTreeSet<Cell> = cells(&records)
        .into_iter()
        .filter(|cell| !cell.4.is_empty())
        .collect();

    let metrics = app
        .graphql(
            "query($id: ID!) { agency(id: $id) { publishedMetrics { metric { key breakdowns { dimensionId } } } } }",
            json!({ "id": id }),
        )
        .await;
    let mut from_series: BTreeSet<Cell> = BTreeSet::new();
    for published in metrics["data"]["agency"]["publishedMetrics"]
        .as_array()
        .expect("metrics")
    {
        let key = published["metric"]["key"].as_str().expect("key");
        let mut splits = vec![Value::Null];
        splits.extend(
            published["metric"]["breakdowns"]
                .as_array()
                .expect("breakdowns")
                .iter()
                .map(|b| b["dimensionId"].clone()),
        );
        for split in splits {
            let series = app
                .graphql(
                    "query($id: ID!, $input: SeriesInput!) { agency(id: $id) {
                        publishedSeries(input: $input) { points { start value members { name value } } } } }",
                    json!({ "id": id, "input": { "metricKey": key, "dimensionId": split } }),
                )
                .await;
            let points = series["data"]["agency"]["publishedSeries"]["points"]
                .as_array()
                .unwrap_or_else(|| panic!("{series}"));
            for point in points {
                let start = point["start"].as_str().expect("start").to_owned();
                if split.is_null() {
                    if !point["value"].is_null() {
                        from_series.insert((
                            key.into(),
                            start.clone(),
                            String::new(),
                            String::new(),
                            number(&point["value"]),
                        ));
                    }
                    continue;
                }
                for member in point["members"].as_array().expect("members") {
                    if !member["value"].is_null() {
                        from_series.insert((
                            key.into(),
                            start.clone(),
                            split.as_str().expect("dimension").into(),
                            member["name"].as_str().expect("name").into(),
                            number(&member["value"]),
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(from_feed, from_series, "{name}");

    // Never more rows than published values.
    let published_cells = rows(
        db,
        &format!(
            "SELECT count(*) AS n FROM datapoints d JOIN reports r ON r.id = d.report_id
             WHERE r.agency_id = {id} AND r.status = 'PUBLISHED' AND d.sub_category IS NULL"
        ),
    )
    .await;
    assert!(
        records.len() as i64 <= int(&published_cells[0]["n"]),
        "{name}"
    );

    // The same rows as JSON Lines.
    let lines = get(app, &format!("/feed/{id}.jsonl"), &[])
        .await
        .json_lines();
    assert_eq!(lines.len(), records.len());
    assert_eq!(lines[0]["agency_id"].to_string(), id);
}

#[tokio::test]
async fn the_public_feed_holds_exactly_what_published_series_show() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let listed = app
        .graphql(
            "{ agencies(first: 100) { nodes { id name isDashboardEnabled } } }",
            json!({}),
        )
        .await;
    let public: Vec<&Value> = listed["data"]["agencies"]["nodes"]
        .as_array()
        .expect("agencies")
        .iter()
        .filter(|agency| agency["isDashboardEnabled"] == true)
        .collect();
    assert!(public.len() >= 8, "{listed}");
    // Drafts are there to be left out.
    let drafts = rows(
        &db,
        "SELECT count(*) AS n FROM datapoints d JOIN reports r ON r.id = d.report_id
         JOIN agencies a ON a.id = r.agency_id
         WHERE a.is_dashboard_enabled AND r.status <> 'PUBLISHED'",
    )
    .await;
    assert!(int(&drafts[0]["n"]) > 100);
    for agency in public {
        let (id, name) = (
            agency["id"].as_str().expect("id"),
            agency["name"].as_str().expect("name"),
        );
        compare_with_published_series(&app, &db, id, name).await;
    }
    // Settings decide too: a member not reported, a metric turned off, a metric now reported
    // yearly (its monthly reports are history, shown by neither).
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let before = get(&app, &format!("/feed/{harbor}.csv"), &[])
        .await
        .records()
        .len();
    for statement in [
        "INSERT INTO metric_setting_members (agency_id, metric_key, dimension_id, member, is_enabled)
         VALUES ({harbor}, 'LAW_ENFORCEMENT_ARRESTS', 'global/biological_sex', 'FEMALE', false)",
        "INSERT INTO metric_settings (agency_id, metric_key, is_enabled)
         VALUES ({harbor}, 'LAW_ENFORCEMENT_CALLS_FOR_SERVICE', false)",
        "INSERT INTO metric_settings (agency_id, metric_key, frequency)
         VALUES ({harbor}, 'LAW_ENFORCEMENT_REPORTED_CRIME', 'ANNUAL')",
    ] {
        execute(&db, &statement.replace("{harbor}", &harbor)).await;
    }
    let after = get(&app, &format!("/feed/{harbor}.csv"), &[])
        .await
        .records();
    assert!(after.len() < before, "{} then {}", before, after.len());
    for (metric, member) in [
        ("LAW_ENFORCEMENT_ARRESTS", "FEMALE"),
        ("LAW_ENFORCEMENT_CALLS_FOR_SERVICE", ""),
        ("LAW_ENFORCEMENT_REPORTED_CRIME", ""),
    ] {
        assert!(
            !after
                .iter()
                .any(|r| r["metric_key"] == metric && (member.is_empty() || r["member"] == member)),
            "{metric} {member}"
        );
    }
    // Written by another (here plain SQL): kept public answers go when the server hears of it.
    let started = std::time::Instant::now();
    while app
        .graphql(
            "query($id: ID!) { agency(id: $id) { publishedMetrics { metric { key breakdowns { dimensionId } } } } }",
            json!({ "id": harbor }),
        )
        .await
        .to_string()
        .contains("LAW_ENFORCEMENT_CALLS_FOR_SERVICE")
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the settings change was not heard of"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    compare_with_published_series(&app, &db, &harbor, "Harbor after its settings changed").await;
}

#[tokio::test]
async fn a_private_dashboard_and_a_missing_agency_get_the_same_404() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let id = agency_id(&app, &db, "Harbor City Police").await;
    assert_eq!(get(&app, &format!("/feed/{id}.csv"), &[]).await.status, 200);
    for (path, code) in [
        ("/feed/abc.csv".to_owned(), 400),
        (format!("/feed/{id}.pdf"), 404),
        (format!("/feed/{id}.csv?metric=NOT_A_METRIC"), 400),
        (format!("/feed/{id}.csv?from=2024-13"), 400),
        (format!("/feed/{id}.csv?from=2025-01&to=2024-01"), 400),
        (format!("/feed/{id}.csv?since=bogus"), 400),
        (format!("/feed/{id}.csv?metric=A&metric=B"), 400),
        (format!("/feed/{id}.csv?frm=2024-01"), 400),
    ] {
        let got = get(&app, &path, &[]).await;
        assert_eq!(got.status, code, "{path}: {}", got.body);
        let body: Value = serde_json::from_str(&got.body).expect("a JSON error");
        assert!(
            body["errors"][0]["extensions"]["code"].is_string(),
            "{path}"
        );
    }
    execute(
        &db,
        &format!("UPDATE agencies SET is_dashboard_enabled = false WHERE id = {id}"),
    )
    .await;
    let private = get(&app, &format!("/feed/{id}.csv"), &[]).await;
    let missing = get(&app, "/feed/999999.csv", &[]).await;
    assert_eq!((private.status, missing.status), (404, 404));
    assert_eq!(
        private.body.replace(&id, "N"),
        missing.body.replace("999999", "N"),
        "nothing tells a private agency from a missing one"
    );
}

#[tokio::test]
async fn the_member_feed_is_for_members_only_and_holds_drafts() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let sheriff = agency_id(&app, &db, "Pine County Sheriff").await;
    let member = app.token_for(&db, "harbor.contributor@example.com").await;
    let outsider = app.token_for(&db, "sheriff.reader@example.com").await;
    let path = format!("/agencies/{harbor}/datapoints.csv");

    let anonymous = get(&app, &path, &[]).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let other = get(
        &app,
        &path,
        &[("Authorization", &format!("Bearer {outsider}"))],
    )
    .await;
    assert_eq!(other.status, 404, "{}", other.body);

    let bearer = format!("Bearer {member}");
    let got = get(&app, &path, &[("Authorization", &bearer)]).await;
    assert_eq!(got.header("cache-control"), "private, no-cache");
    let records = got.records();
    let statuses: BTreeSet<&str> = records
        .iter()
        .map(|r| r["report_status"].as_str())
        .collect();
    assert!(
        statuses.contains("DRAFT") && statuses.contains("PUBLISHED"),
        "{statuses:?}"
    );
    let stored = rows(
        &db,
        &format!(
            "SELECT count(*) AS n FROM datapoints d JOIN reports r ON r.id = d.report_id
             WHERE r.agency_id = {harbor}"
        ),
    )
    .await;
    assert_eq!(records.len() as i64, int(&stored[0]["n"]));
    assert!(records.iter().all(|r| !r["updated_at"].is_empty()));

    // JSON Lines by extension and by `Accept`, with the same rows.
    let by_extension = get(
        &app,
        &format!("/agencies/{harbor}/datapoints.jsonl"),
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(by_extension.header("content-type"), "application/x-ndjson");
    let by_accept = get(
        &app,
        &format!("/agencies/{harbor}/datapoints"),
        &[
            ("Authorization", &bearer),
            ("Accept", "application/x-ndjson"),
        ],
    )
    .await;
    assert_eq!(by_extension.json_lines().len(), records.len());
    assert_eq!(by_accept.json_lines(), by_extension.json_lines());
    // The sheriff's office is not the contributor's: not even its existence is confirmed.
    let elsewhere = get(
        &app,
        &format!("/agencies/{sheriff}/datapoints.csv"),
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(elsewhere.status, 404);
}

/// The changes of a feed after `cursor`: change, metric, period start, member, value, status.
fn changes(got: &Got) -> BTreeSet<(String, String, String, String, String, String)> {
    got.records()
        .iter()
        .map(|r| {
            (
                r["change"].clone(),
                r["metric_key"].clone(),
                r["period_start"].clone(),
                r["member"].clone(),
                r["value"].clone(),
                r.get("report_status").cloned().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn since_returns_exactly_what_changed_after_a_save_a_publish_an_unpublish_and_a_delete() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let contributor = app.token_for(&db, "harbor.contributor@example.com").await;
    let bearer = format!("Bearer {contributor}");
    let auth = [("Authorization", bearer.as_str())];
    let member_path = format!("/agencies/{harbor}/datapoints.csv");
    let public_path = format!("/feed/{harbor}.csv");
    let since = |path: &str, cursor: &str| format!("{path}?since={cursor}");

    // A draft report of a published metric, with its arrests total.
    let draft = rows(
        &db,
        &format!(
            "SELECT r.id, r.version, r.date_range_start::text AS start,
                    (SELECT count(*) FROM datapoints d WHERE d.report_id = r.id
                       AND d.metric_key IN ('LAW_ENFORCEMENT_ARRESTS', 'LAW_ENFORCEMENT_CALLS_FOR_SERVICE',
                           'LAW_ENFORCEMENT_REPORTED_CRIME', 'LAW_ENFORCEMENT_USE_OF_FORCE_INCIDENTS',
                           'LAW_ENFORCEMENT_FUNDING', 'LAW_ENFORCEMENT_EXPENSES', 'LAW_ENFORCEMENT_STAFF',
                           'LAW_ENFORCEMENT_COMPLAINTS_SUSTAINED')) AS n
             FROM reports r WHERE r.agency_id = {harbor} AND r.status = 'DRAFT'
               AND r.frequency = 'MONTHLY'
               AND EXISTS (SELECT 1 FROM datapoints d WHERE d.report_id = r.id
                           AND d.metric_key = 'LAW_ENFORCEMENT_ARRESTS' AND d.dimension_id IS NULL)
             ORDER BY r.date_range_start DESC LIMIT 1"
        ),
    )
    .await;
    assert_eq!(draft.len(), 1, "a draft report");
    let report = int(&draft[0]["id"]);
    let start = draft[0]["start"].as_str().expect("start").to_owned();
    let version = int(&draft[0]["version"]);

    let member_before = get(&app, &member_path, &auth).await;
    let public_before = get(&app, &public_path, &[]).await;
    let (member_cursor, public_cursor) = (member_before.cursor(), public_before.cursor());
    assert!(!member_cursor.is_empty() && !public_cursor.is_empty());
    // Nothing changed yet: nothing to send.
    assert!(changes(&get(&app, &since(&member_path, &member_cursor), &auth).await).is_empty());
    assert!(changes(&get(&app, &since(&public_path, &public_cursor), &[]).await).is_empty());

    // A save: the member feed has exactly that value; the public feed nothing (a draft).
    let saved = app
        .graphql_as(
            Some(&contributor),
            "mutation($input: SaveReportInput!) { saveReport(input: $input) { changedValues } }",
            json!({ "input": {
                "reportId": report.to_string(),
                "version": version,
                "values": [{ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "value": 4321 }],
            } }),
        )
        .await;
    assert_eq!(saved["data"]["saveReport"]["changedValues"], 1, "{saved}");
    let after_save = get(&app, &since(&member_path, &member_cursor), &auth).await;
    assert_eq!(
        changes(&after_save),
        BTreeSet::from([(
            "upsert".into(),
            "LAW_ENFORCEMENT_ARRESTS".into(),
            start.clone(),
            String::new(),
            "4321".into(),
            "DRAFT".into()
        )])
    );
    let public_after_save = get(&app, &since(&public_path, &public_cursor), &[]).await;
    assert!(changes(&public_after_save).is_empty());
    let (member_cursor, public_cursor) = (after_save.cursor(), public_after_save.cursor());

    // A publish: every value of the report, in both feeds.
    let report_values = int(&rows(
        &db,
        &format!("SELECT count(*) AS n FROM datapoints WHERE report_id = {report}"),
    )
    .await[0]["n"]);
    let published = app
        .graphql_as(
            Some(&contributor),
            "mutation($ids: [ID!]!) { publishReports(reportIds: $ids) { status } }",
            json!({ "ids": [report.to_string()] }),
        )
        .await;
    assert_eq!(
        published["data"]["publishReports"][0]["status"], "PUBLISHED",
        "{published}"
    );
    let member_publish = get(&app, &since(&member_path, &member_cursor), &auth).await;
    let member_rows = member_publish.records();
    assert_eq!(member_rows.len() as i64, report_values);
    assert!(member_rows.iter().all(|r| r["change"] == "upsert"
        && r["report_status"] == "PUBLISHED"
        && r["period_start"] == start));
    let public_publish = get(&app, &since(&public_path, &public_cursor), &[]).await;
    let public_rows = public_publish.records();
    assert!(!public_rows.is_empty());
    assert!(public_rows.len() as i64 <= report_values);
    assert!(
        public_rows
            .iter()
            .all(|r| r["change"] == "upsert" && r["period_start"] == start)
    );
    assert!(changes(&public_publish).contains(&(
        "upsert".into(),
        "LAW_ENFORCEMENT_ARRESTS".into(),
        start.clone(),
        String::new(),
        "4321".into(),
        String::new()
    )));
    // The full public feed now holds them too, under a new entity tag.
    assert_ne!(
        get(&app, &public_path, &[]).await.header("etag"),
        public_before.header("etag")
    );
    let (member_cursor, public_cursor) = (member_publish.cursor(), public_publish.cursor());

    // An unpublish: the public feed removes exactly the values it had shown.
    app.graphql_as(
        Some(&contributor),
        "mutation($ids: [ID!]!) { unpublishReports(reportIds: $ids) { status } }",
        json!({ "ids": [report.to_string()] }),
    )
    .await;
    let public_unpublish = get(&app, &since(&public_path, &public_cursor), &[]).await;
    let removed: BTreeSet<_> = public_unpublish
        .records()
        .iter()
        .map(|r| {
            (
                r["change"].clone(),
                r["metric_key"].clone(),
                r["member"].clone(),
            )
        })
        .collect();
    let shown: BTreeSet<_> = public_rows
        .iter()
        .map(|r| {
            (
                "delete".to_owned(),
                r["metric_key"].clone(),
                r["member"].clone(),
            )
        })
        .collect();
    assert_eq!(removed, shown);
    let member_unpublish = get(&app, &since(&member_path, &member_cursor), &auth).await;
    assert!(
        member_unpublish
            .records()
            .iter()
            .all(|r| r["report_status"] == "DRAFT")
    );
    assert_eq!(member_unpublish.records().len() as i64, report_values);
    let (member_cursor, public_cursor) = (member_unpublish.cursor(), public_unpublish.cursor());

    // A delete of the (now draft) report: members learn of every value's removal; the public
    // feed, which no longer showed them, has nothing to say.
    let admin = app.token_for(&db, "admin@example.com").await;
    let deleted = app
        .graphql_as(
            Some(&admin),
            "mutation($ids: [ID!]!) { deleteReports(reportIds: $ids) }",
            json!({ "ids": [report.to_string()] }),
        )
        .await;
    assert!(deleted["errors"].is_null(), "{deleted}");
    let member_delete = get(&app, &since(&member_path, &member_cursor), &auth).await;
    let member_rows = member_delete.records();
    assert_eq!(member_rows.len() as i64, report_values);
    assert!(
        member_rows
            .iter()
            .all(|r| r["change"] == "delete" && r["value"].is_empty())
    );
    assert!(changes(&get(&app, &since(&public_path, &public_cursor), &[]).await).is_empty());

    // The delete of a published report reaches the public feed.
    let published_report = int(&rows(
        &db,
        &format!(
            "SELECT id FROM reports WHERE agency_id = {harbor} AND status = 'PUBLISHED'
                 ORDER BY date_range_start DESC LIMIT 1"
        ),
    )
    .await[0]["id"]);
    let public_cursor = get(&app, &since(&public_path, &public_cursor), &[])
        .await
        .cursor();
    app.graphql_as(
        Some(&admin),
        "mutation($ids: [ID!]!) { deleteReports(reportIds: $ids) }",
        json!({ "ids": [published_report.to_string()] }),
    )
    .await;
    let public_delete = get(&app, &since(&public_path, &public_cursor), &[]).await;
    let removals = public_delete.records();
    assert!(!removals.is_empty());
    assert!(removals.iter().all(|r| r["change"] == "delete"));
}

#[tokio::test]
async fn a_matching_entity_tag_gets_304_and_a_change_a_new_tag() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let path = format!("/feed/{harbor}.csv");
    let first = get(&app, &path, &[]).await;
    assert_eq!(first.status, 200);
    assert!(first.header("content-type").starts_with("text/csv"));
    assert!(
        first
            .header("cache-control")
            .starts_with("public, max-age=")
    );
    let etag = first.header("etag").to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    let last_modified = first.header("last-modified").to_owned();
    assert!(last_modified.ends_with(" GMT"), "{last_modified}");
    assert!(first.header("link").contains("rel=\"next\""));

    let again = get(&app, &path, &[("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), etag);
    let listed = get(&app, &path, &[("If-None-Match", &format!("\"x\", {etag}"))]).await;
    assert_eq!(listed.status, 304);
    // A date cannot tell a late commit from an early one: the feed again.
    let by_date = get(&app, &path, &[("If-Modified-Since", &last_modified)]).await;
    assert_eq!(by_date.status, 200);
    // Another filter is another document.
    let filtered = get(
        &app,
        &format!("{path}?metric=LAW_ENFORCEMENT_ARRESTS"),
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(filtered.status, 200);
    let arrests = filtered.records();
    assert!(!arrests.is_empty());
    assert!(
        arrests
            .iter()
            .all(|r| r["metric_key"] == "LAW_ENFORCEMENT_ARRESTS")
    );
    let year = get(
        &app,
        &format!("{path}?system=LAW_ENFORCEMENT&from=2024-01&to=2024-07-01"),
        &[],
    )
    .await
    .records();
    assert!(!year.is_empty());
    assert!(
        year.iter()
            .all(|r| r["period_start"].as_str() >= "2024-01-01"
                && r["period_start"].as_str() < "2024-07-01"
                && r["system"] == "LAW_ENFORCEMENT")
    );
    assert!(year.len() < first.records().len());

    // Taking a published report back to draft changes the feed, and its tag.
    execute(
        &db,
        &format!(
            "UPDATE reports SET status = 'DRAFT' WHERE id = (SELECT id FROM reports
             WHERE agency_id = {harbor} AND status = 'PUBLISHED' LIMIT 1)"
        ),
    )
    .await;
    let changed = get(&app, &path, &[("If-None-Match", &etag)]).await;
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), etag);
    assert!(changed.records().len() < first.records().len());
}

#[tokio::test]
async fn names_with_commas_quotes_and_newlines_survive_a_standard_csv_reader() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let name = "Harbor \"City\", Police\nDepartment, North";
    execute(
        &db,
        &format!(
            "UPDATE agencies SET name = 'Harbor \"City\", Police' || chr(10) || 'Department, North'
             WHERE id = {harbor}"
        ),
    )
    .await;
    let records = get(&app, &format!("/feed/{harbor}.csv"), &[])
        .await
        .records();
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| r["agency_name"] == name));
    let lines = get(&app, &format!("/feed/{harbor}.jsonl"), &[])
        .await
        .json_lines();
    assert_eq!(lines.len(), records.len());
    assert!(lines.iter().all(|l| l["agency_name"] == name));
}

const CHANGES: &str = "query($id: ID!, $since: String, $first: Int, $public: Boolean!) {
    agency(id: $id) { datapointChanges(since: $since, first: $first, publishedOnly: $public) {
        cursor complete changes { change metricKey periodStart dimensionId member value reportStatus }
    } }
}";

#[tokio::test]
async fn the_graphql_change_stream_pages_through_the_feed_and_syncs_from_its_cursor() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    let feed_rows = get(
        &app,
        &format!("/agencies/{harbor}/datapoints.csv"),
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await
    .records()
    .len();

    let mut since = Value::Null;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let page = app
            .graphql_as(
                Some(&token),
                CHANGES,
                json!({ "id": harbor, "since": since, "first": 400, "public": false }),
            )
            .await;
        let page = &page["data"]["agency"]["datapointChanges"];
        let changes = page["changes"]
            .as_array()
            .unwrap_or_else(|| panic!("{page}"));
        assert!(changes.len() <= 400);
        seen += changes.len();
        pages += 1;
        since = page["cursor"].clone();
        if page["complete"] == true {
            break;
        }
        assert!(pages < 100, "the pages end");
    }
    assert_eq!(seen, feed_rows);
    assert!(pages > 1);

    // The cursor of the last page syncs: nothing, then exactly a save's value.
    let nothing = app
        .graphql_as(
            Some(&token),
            CHANGES,
            json!({ "id": harbor, "since": since, "first": 10, "public": false }),
        )
        .await;
    assert_eq!(
        nothing["data"]["agency"]["datapointChanges"]["changes"],
        json!([]),
        "{nothing}"
    );
    execute(
        &db,
        &format!(
            "UPDATE datapoints SET value = 777 WHERE id = (SELECT d.id FROM datapoints d
             JOIN reports r ON r.id = d.report_id WHERE r.agency_id = {harbor}
             AND d.dimension_id IS NULL ORDER BY d.id LIMIT 1)"
        ),
    )
    .await;
    // Written by another (here plain SQL): an answer kept from before goes when the server
    // hears of the write, and the unchanged cursor then finds it.
    let started = std::time::Instant::now();
    let one = loop {
        let one = app
            .graphql_as(
                Some(&token),
                CHANGES,
                json!({ "id": harbor, "since": since, "first": 10, "public": false }),
            )
            .await;
        if one != nothing {
            break one;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "the write was not seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    let changes = &one["data"]["agency"]["datapointChanges"]["changes"];
    assert_eq!(changes.as_array().map(Vec::len), Some(1), "{one}");
    assert_eq!(changes[0]["change"], "UPSERT");
    assert_eq!(changes[0]["value"], 777.0);

    // A page beyond MAX_CHANGES_PAGE costs more than any request may.
    for (since, first, code) in [
        (json!("bogus"), json!(10), "BAD_USER_INPUT"),
        (Value::Null, json!(0), "BAD_USER_INPUT"),
        (Value::Null, json!(100_000), "QUERY_TOO_COMPLEX"),
    ] {
        let refused = app
            .graphql_as(
                Some(&token),
                CHANGES,
                json!({ "id": harbor, "since": since, "first": first, "public": false }),
            )
            .await;
        assert_eq!(error_codes(&refused), [code], "{refused}");
    }
}

#[tokio::test]
async fn the_export_command_writes_the_feed_and_its_cursor() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("harbor.csv");
    let run = |args: Vec<String>| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_justice-counts"))
            .arg("export")
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("LOG_LEVEL", "warn")
            .output()
            .expect("the command runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let cursor = stderr
            .lines()
            .find_map(|line| line.strip_prefix("next cursor: "))
            .expect("a cursor")
            .to_owned();
        (output.stdout, cursor)
    };
    let (_, cursor) = run(vec![
        "--agency".into(),
        harbor.clone(),
        "--published-only".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    let written = std::fs::read_to_string(&out).expect("written");
    let served = get(&app, &format!("/feed/{harbor}.csv"), &[]).await.body;
    let sorted = |text: &str| {
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    };
    assert_eq!(
        sorted(&written),
        sorted(&served),
        "the export is the public feed"
    );

    // Since the cursor: nothing, as JSON Lines on standard output.
    let (stdout, _) = run(vec![
        "--agency".into(),
        harbor.clone(),
        "--format".into(),
        "jsonl".into(),
        "--since".into(),
        cursor,
    ]);
    assert!(stdout.is_empty(), "{}", String::from_utf8_lossy(&stdout));
    // All agencies, members' view: every stored value.
    let (stdout, _) = run(vec!["--format".into(), "jsonl".into()]);
    let stored = int(&rows(&db, "SELECT count(*) AS n FROM datapoints").await[0]["n"]);
    assert_eq!(
        String::from_utf8_lossy(&stdout).lines().count() as i64,
        stored
    );
}

#[tokio::test]
async fn an_agency_downloads_its_data_as_a_spreadsheet_and_uploads_it_back_unchanged() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    let path = format!("/agencies/{harbor}/datapoints.xlsx?system=LAW_ENFORCEMENT");
    let anonymous = get(&app, &path, &[]).await;
    assert_eq!(anonymous.status, 401);
    let response = app
        .client
        .get(format!("{}{path}", app.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.expect("body").to_vec();
    let history =
        || async { int(&rows(&db, "SELECT count(*) AS n FROM datapoint_changes").await[0]["n"]) };
    let before = history().await;
    let agency = AgencyId(harbor.parse().expect("id"));
    let ingested = ingest_file(
        &db,
        agency,
        System::LawEnforcement,
        "harbor_data.xlsx",
        &bytes,
        By::Person("harbor.contributor@example.com"),
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{}", ingested.summary);
    assert!(
        ingested.messages().iter().all(|m| m["type"] != "ERROR"),
        "{:#?}",
        ingested.messages()
    );
    assert_eq!(history().await, before, "nothing changed, so no history");
    let changed = rows(
        &db,
        &format!(
            "SELECT count(*) AS n FROM spreadsheet_report_changes
             WHERE spreadsheet_id = {} AND change::text <> 'UNCHANGED'",
            ingested.id
        ),
    )
    .await;
    assert_eq!(int(&changed[0]["n"]), 0);
    let exported = int(&rows(
        &db,
        &format!(
            "SELECT count(*) AS n FROM spreadsheet_values WHERE spreadsheet_id = {}",
            ingested.id
        ),
    )
    .await[0]["n"]);
    assert!(exported > 500, "{exported} values in the file");

    // One value edited in the spreadsheet: exactly that value changes.
    let mut conn = db.pool.get().await.expect("connection");
    let mut sheets = export::sheets::sheets(
        &mut conn,
        &db.catalogue,
        agency,
        System::LawEnforcement,
        false,
    )
    .await
    .expect("sheets");
    drop(conn);
    let arrests = sheets
        .iter_mut()
        .find(|sheet| sheet.name == "arrests")
        .expect("the arrests sheet");
    let last = arrests.header.len() - 1;
    arrests.rows[0][last] = "98765".into();
    let edited = template::xlsx(&sheets).expect("workbook");
    let ingested = ingest_file(
        &db,
        agency,
        System::LawEnforcement,
        "harbor_data.xlsx",
        &edited,
        By::Person("harbor.contributor@example.com"),
        false,
    )
    .await;
    assert_eq!(ingested.status(), "INGESTED", "{}", ingested.summary);
    assert_eq!(history().await, before + 1);
    let saved = rows(
        &db,
        "SELECT new_value FROM datapoint_changes ORDER BY id DESC LIMIT 1",
    )
    .await;
    assert_eq!(saved[0]["new_value"].as_f64(), Some(98765.0));
}

#[tokio::test]
async fn a_settings_change_resends_the_public_feed_with_the_values_now_hidden_removed() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let path = format!("/feed/{harbor}.csv");
    let before = get(&app, &path, &[]).await;
    let shown = before.records();
    execute(
        &db,
        &format!(
            "INSERT INTO metric_setting_members (agency_id, metric_key, dimension_id, member, is_enabled)
             VALUES ({harbor}, 'LAW_ENFORCEMENT_ARRESTS', 'global/biological_sex', 'FEMALE', false)"
        ),
    )
    .await;
    let since = get(&app, &format!("{path}?since={}", before.cursor()), &[]).await;
    let records = since.records();
    let deleted: BTreeSet<(String, String)> = records
        .iter()
        .filter(|r| r["change"] == "delete")
        .map(|r| (r["period_start"].clone(), r["member"].clone()))
        .collect();
    let hidden: BTreeSet<(String, String)> = shown
        .iter()
        .filter(|r| r["metric_key"] == "LAW_ENFORCEMENT_ARRESTS" && r["member"] == "FEMALE")
        .map(|r| (r["period_start"].clone(), r["member"].clone()))
        .collect();
    assert!(!hidden.is_empty());
    assert_eq!(deleted, hidden);
    let upserts = records.iter().filter(|r| r["change"] == "upsert").count();
    assert_eq!(upserts, get(&app, &path, &[]).await.records().len());
}

#[tokio::test]
async fn one_address_downloads_a_bounded_number_of_public_feeds_at_once() {
    let db = TestDb::with_demo().await;
    // No place for any address: every public feed is refused with 429 (member feeds are not
    // counted per address).
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            max_feeds_per_address: 0,
            ..Limits::default()
        },
    )
    .await;
    let id = agency_id(&app, &db, "Harbor City Police").await;
    let refused = get(&app, &format!("/feed/{id}.csv"), &[]).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert!(refused.body.contains("RATE_LIMITED"), "{}", refused.body);
    assert!(refused.headers.contains_key("retry-after"));
    // With a place, the same address downloads again and again: places are given back.
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            max_feeds_per_address: 1,
            ..Limits::default()
        },
    )
    .await;
    for _ in 0..3 {
        assert_eq!(get(&app, &format!("/feed/{id}.csv"), &[]).await.status, 200);
    }
}

/// Feeds streamed at once, and workbooks built whole, share `MAX_FEED_STREAMS` places: none
/// left, both are refused with 503 and asked to come back.
#[tokio::test]
async fn feeds_and_workbooks_take_a_bounded_number_of_places() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            max_feed_streams: 0,
            rate_limit_burst: 0,
            ..Limits::default()
        },
    )
    .await;
    let id = agency_id(&app, &db, "Harbor City Police").await;
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    let authorization = format!("Bearer {token}");
    for path in [
        format!("/feed/{id}.csv"),
        format!("/agencies/{id}/datapoints.csv"),
        format!("/agencies/{id}/datapoints.xlsx?system=LAW_ENFORCEMENT"),
    ] {
        let refused = get(&app, &path, &[("authorization", authorization.as_str())]).await;
        assert_eq!(refused.status, 503, "{path}: {}", refused.body);
        assert!(
            refused.body.contains("SERVICE_UNAVAILABLE"),
            "{}",
            refused.body
        );
    }
}

#[tokio::test]
async fn a_write_that_began_earlier_but_committed_later_changes_the_tag() {
    use diesel_async::{AnsiTransactionManager, RunQueryDsl, TransactionManager};
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let path = format!("/feed/{harbor}.csv");
    let ids = rows(
        &db,
        &format!(
            "SELECT d.id FROM datapoints d JOIN reports r ON r.id = d.report_id \
             WHERE r.agency_id = {harbor} AND r.status = 'PUBLISHED' ORDER BY d.id LIMIT 2"
        ),
    )
    .await;
    let (first, second) = (int(&ids[0]["id"]), int(&ids[1]["id"]));
    // The earlier transaction writes first, the later one commits first.
    let mut earlier = db.connect().await;
    AnsiTransactionManager::begin_transaction(&mut earlier)
        .await
        .expect("begin");
    diesel::sql_query(format!(
        "UPDATE datapoints SET value = value + 1 WHERE id = {first}"
    ))
    .execute(&mut earlier)
    .await
    .expect("update");
    execute(
        &db,
        &format!("UPDATE datapoints SET value = value + 1 WHERE id = {second}"),
    )
    .await;
    let seen = get(&app, &path, &[]).await;
    assert_eq!(seen.status, 200);
    let etag = seen.header("etag").to_owned();
    AnsiTransactionManager::commit_transaction(&mut earlier)
        .await
        .expect("commit");
    let after = get(&app, &path, &[("If-None-Match", &etag)]).await;
    assert_eq!(
        after.status, 200,
        "the earlier transaction's value is new to the client"
    );
    assert_ne!(after.header("etag"), etag);
}

/// A public feed's tag moves with what the public sees, not with drafts: a draft created and
/// saved tells an anonymous reader nothing, a publication does.
#[tokio::test]
async fn drafts_leave_the_public_tag_alone() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let path = format!("/feed/{harbor}.csv");
    let tag = async || get(&app, &path, &[]).await.header("etag").to_owned();
    let before = tag().await;
    let admin = app.token_for(&db, "admin@example.com").await;
    let created = app
        .graphql_as(
            Some(&admin),
            "mutation($a: ID!) { createReport(input: {agencyId: $a, frequency: MONTHLY, periodStart: \"2030-01-01\"}) { id version } }",
            json!({ "a": harbor }),
        )
        .await;
    let report = created["data"]["createReport"]["id"].clone();
    assert!(report.is_string(), "{created}");
    let saved = app
        .graphql_as(
            Some(&admin),
            "mutation($r: ID!) { saveReport(input: {reportId: $r, version: 1, values: [{metricKey: \"LAW_ENFORCEMENT_ARRESTS\", value: 12}]}) { report { version } } }",
            json!({ "r": report }),
        )
        .await;
    assert!(saved["errors"].is_null(), "{saved}");
    assert_eq!(tag().await, before, "a draft changes nothing public");
    let published = app
        .graphql_as(
            Some(&admin),
            "mutation($r: ID!) { publishReports(reportIds: [$r]) { status } }",
            json!({ "r": report }),
        )
        .await;
    assert!(published["errors"].is_null(), "{published}");
    assert_ne!(tag().await, before, "a publication does");
}
