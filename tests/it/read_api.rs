//! The read API's lists, filters, cursors, series and errors.

use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id, error_codes};

const REPORTS: &str = "query($a: ID!, $filter: ReportFilterInput, $first: Int, $after: String, $last: Int, $before: String) {
    agency(id: $a) {
        reports(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
            totalCount
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            edges { cursor node { id frequency dateRangeStart status } }
        }
    }
}";

struct Sheriff {
    app: TestApp,
    token: String,
    agency: String,
    _db: TestDb,
}

async fn sheriff() -> Sheriff {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let agency = agency_id(&app, &db, "Sheriff").await;
    Sheriff {
        app,
        token,
        agency,
        _db: db,
    }
}

impl Sheriff {
    async fn reports(&self, variables: Value) -> Value {
        let mut variables = variables;
        variables["a"] = json!(self.agency);
        self.app
            .graphql_as(Some(&self.token), REPORTS, variables)
            .await
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn reports_page_forwards_and_backwards_through_a_stable_order() {
    let s = sheriff().await;
    let everything = s.reports(json!({ "first": 100 })).await;
    let all = &everything["data"]["agency"]["reports"];
    assert_eq!(all["totalCount"], 39, "36 monthly and 3 annual reports");
    let all_ids = ids(all);
    assert_eq!(all_ids.len(), 39);
    let starts: Vec<&str> = all["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["dateRangeStart"].as_str().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest period first: {starts:?}"
    );

    // Forwards, ten at a time.
    let mut forwards = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let response = s.reports(json!({ "first": 10, "after": after })).await;
        let page = &response["data"]["agency"]["reports"];
        // Counted with the first page, on its own with a cursor: the same total either way.
        assert_eq!(page["totalCount"], 39);
        forwards.extend(ids(page));
        assert_eq!(page["pageInfo"]["hasPreviousPage"], after.is_some());
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(forwards, all_ids);

    // Backwards, seven at a time.
    let mut backwards = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let response = s.reports(json!({ "last": 7, "before": before })).await;
        let page = &response["data"]["agency"]["reports"];
        assert_eq!(page["totalCount"], 39);
        let mut chunk = ids(page);
        chunk.extend(backwards);
        backwards = chunk;
        if page["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        before = page["pageInfo"]["startCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(backwards, all_ids);
}

#[tokio::test]
async fn the_default_page_has_twenty_reports_and_larger_pages_are_refused() {
    let s = sheriff().await;
    let default = s.reports(json!({})).await;
    assert_eq!(ids(&default["data"]["agency"]["reports"]).len(), 20);
    assert_eq!(
        error_codes(&s.reports(json!({ "first": 101 })).await),
        ["BAD_USER_INPUT"]
    );
    assert_eq!(
        error_codes(&s.reports(json!({ "first": -1 })).await),
        ["BAD_USER_INPUT"]
    );
    assert_eq!(
        error_codes(&s.reports(json!({ "first": 5, "last": 5 })).await),
        ["BAD_USER_INPUT"]
    );
}

#[tokio::test]
async fn a_tampered_or_foreign_cursor_is_bad_user_input() {
    let s = sheriff().await;
    let page = s.reports(json!({ "first": 2 })).await;
    let cursor = page["data"]["agency"]["reports"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tampered = cursor.clone().into_bytes();
    tampered[3] = if tampered[3] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [tampered.as_str(), "not-a-cursor", ""] {
        let response = s.reports(json!({ "first": 2, "after": bad })).await;
        assert_eq!(
            error_codes(&response),
            ["BAD_USER_INPUT"],
            "{bad:?}: {response}"
        );
    }
    let agencies = s
        .app
        .graphql_as(
            Some(&s.token),
            "{ agencies(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let agency_cursor = agencies["data"]["agencies"]["pageInfo"]["endCursor"].clone();
    let response = s
        .reports(json!({ "first": 2, "after": agency_cursor }))
        .await;
    assert_eq!(
        error_codes(&response),
        ["BAD_USER_INPUT"],
        "a cursor of another list"
    );
}

#[tokio::test]
async fn reports_filter_by_status_frequency_and_period() {
    let s = sheriff().await;
    let count = |response: Value| {
        response["data"]["agency"]["reports"]["totalCount"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(
        count(
            s.reports(json!({ "filter": { "frequency": "ANNUAL" } }))
                .await
        ),
        3
    );
    assert_eq!(
        count(
            s.reports(json!({ "filter": { "year": 2024, "frequency": "MONTHLY" } }))
                .await
        ),
        12
    );
    assert_eq!(
        count(
            s.reports(json!({ "filter": { "statuses": ["NOT_STARTED"] } }))
                .await
        ),
        2
    );
    let drafts = s
        .reports(
            json!({ "filter": { "statuses": ["DRAFT"], "frequency": "MONTHLY" }, "first": 100 }),
        )
        .await;
    let statuses: Vec<&str> = drafts["data"]["agency"]["reports"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.len(),
        4,
        "three recent drafts and one reopened report"
    );
    assert!(statuses.iter().all(|s| *s == "DRAFT"));
    let range =
        json!({ "filter": { "from": "2024-07-01", "to": "2024-10-01", "frequency": "MONTHLY" } });
    assert_eq!(count(s.reports(range).await), 3);
}

#[tokio::test]
async fn agencies_page_with_a_total_count() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let first = app.graphql("{ agencies(first: 4) { totalCount pageInfo { hasNextPage endCursor } nodes { name } } }", json!({})).await;
    let page = &first["data"]["agencies"];
    assert_eq!(page["totalCount"], 9);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let rest = app
        .graphql(
            "query($after: String) { agencies(first: 100, after: $after) { pageInfo { hasNextPage hasPreviousPage } nodes { name } } }",
            json!({ "after": page["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(
        rest["data"]["agencies"]["nodes"].as_array().unwrap().len(),
        5
    );
    assert_eq!(rest["data"]["agencies"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(
        rest["data"]["agencies"]["pageInfo"]["hasPreviousPage"],
        true
    );
}

const SERIES: &str = "query($a: ID!, $input: SeriesInput!) {
    agency(id: $a) { series(input: $input) { granularity points { start end value reportedPeriods expectedPeriods members { name value } } } }
}";
const PUBLISHED: &str = "query($a: ID!, $input: SeriesInput!) {
    agency(id: $a) { publishedSeries(input: $input) { points { start value } } }
}";

fn points(response: &Value, field: &str) -> Vec<Value> {
    response["data"]["agency"][field]["points"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .clone()
}

#[tokio::test]
async fn a_monthly_series_shows_gaps_as_missing_and_rolls_up_years_by_measurement_type() {
    let s = sheriff().await;
    let run = |input: Value| {
        let app = &s.app;
        let token = &s.token;
        let agency = &s.agency;
        async move {
            app.graphql_as(Some(token), SERIES, json!({ "a": agency, "input": input }))
                .await
        }
    };
    let monthly = run(
        json!({ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "from": "2025-06-01", "to": "2026-01-01" }),
    )
    .await;
    let months = points(&monthly, "series");
    assert_eq!(months.len(), 7);
    // June and July are published, August to October drafts with values; November and
    // December are not started: gaps, not zeros.
    let values: Vec<Value> = months.iter().map(|p| p["value"].clone()).collect();
    assert!(values[..5].iter().all(Value::is_number), "{values:?}");
    assert_eq!(values[5..], [Value::Null, Value::Null]);
    assert_eq!(months[5]["reportedPeriods"], 0);

    let yearly = run(json!({ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "granularity": "ANNUAL", "from": "2024-01-01", "to": "2025-01-01" })).await;
    let year = &points(&yearly, "series")[0];
    let months = run(
        json!({ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "from": "2024-01-01", "to": "2025-01-01" }),
    )
    .await;
    let sum: f64 = points(&months, "series")
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .sum();
    assert_eq!(
        year["value"].as_f64().unwrap(),
        sum,
        "arrests are counted events: summed"
    );
    assert_eq!(
        (
            year["reportedPeriods"].as_i64(),
            year["expectedPeriods"].as_i64()
        ),
        (Some(12), Some(12))
    );

    let population = run(json!({ "metricKey": "JAILS_TOTAL_POPULATION", "granularity": "ANNUAL", "from": "2024-01-01", "to": "2025-01-01" })).await;
    let monthly_population = run(
        json!({ "metricKey": "JAILS_TOTAL_POPULATION", "from": "2024-01-01", "to": "2025-01-01" }),
    )
    .await;
    let values: Vec<f64> = points(&monthly_population, "series")
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let rolled = points(&population, "series")[0]["value"].as_f64().unwrap();
    assert!(
        (rolled - mean).abs() < 1e-9,
        "a population is a level: averaged ({rolled} vs {mean})"
    );

    let split = run(json!({ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "from": "2024-01-01", "to": "2024-02-01", "dimensionId": "metric/offense/type" })).await;
    let point = &points(&split, "series")[0];
    let members: f64 = point["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["value"].as_f64())
        .sum();
    assert_eq!(members, point["value"].as_f64().unwrap());
}

#[tokio::test]
async fn the_published_series_leaves_out_drafts_and_is_public() {
    let s = sheriff().await;
    let input =
        json!({ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "from": "2024-01-01", "to": "2026-01-01" });
    let published = s
        .app
        .graphql(PUBLISHED, json!({ "a": s.agency, "input": input }))
        .await;
    let starts: Vec<String> = points(&published, "publishedSeries")
        .iter()
        .filter(|p| p["value"].is_number())
        .map(|p| p["start"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !starts.iter().any(|s| s == "2024-03-01"),
        "the reopened March 2024 report is a draft again"
    );
    assert!(starts.iter().any(|s| s == "2024-04-01"));
    assert!(
        !starts.iter().any(|s| s.as_str() >= "2025-08-01"),
        "drafts and reports not started: {starts:?}"
    );
    // The full series, for members, has March 2024.
    let members = s
        .app
        .graphql_as(
            Some(&s.token),
            SERIES,
            json!({ "a": s.agency, "input": input }),
        )
        .await;
    let march = points(&members, "series")
        .into_iter()
        .find(|p| p["start"] == "2024-03-01")
        .unwrap();
    assert!(march["value"].is_number());
}

#[tokio::test]
async fn series_errors_name_what_is_wrong() {
    let s = sheriff().await;
    let call = |input: Value| {
        let app = &s.app;
        let token = &s.token;
        let agency = &s.agency;
        async move {
            app.graphql_as(Some(token), SERIES, json!({ "a": agency, "input": input }))
                .await
        }
    };
    let cases = [
        (json!({ "metricKey": "PRISONS_ADMISSIONS" }), "NOT_FOUND"),
        (json!({ "metricKey": "NO_SUCH_METRIC" }), "NOT_FOUND"),
        (
            json!({ "metricKey": "LAW_ENFORCEMENT_FUNDING", "granularity": "MONTHLY" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "dimensionId": "global/nothing" }),
            "BAD_USER_INPUT",
        ),
        (
            json!({ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "from": "2025-01-01", "to": "2024-01-01" }),
            "BAD_USER_INPUT",
        ),
    ];
    for (input, code) in cases {
        let response = call(input.clone()).await;
        assert_eq!(error_codes(&response), [code], "{input}: {response}");
    }
}

#[tokio::test]
async fn reports_are_found_by_id_and_unknown_ids_are_not_found() {
    let s = sheriff().await;
    let page = s.reports(json!({ "first": 1 })).await;
    let id = ids(&page["data"]["agency"]["reports"])[0].clone();
    let query = "query($id: ID!) { report(id: $id) { id agency { name } } }";
    let found = s
        .app
        .graphql_as(Some(&s.token), query, json!({ "id": id }))
        .await;
    assert_eq!(
        found["data"]["report"]["agency"]["name"],
        "Pine County Sheriff's Office"
    );
    let missing = s
        .app
        .graphql_as(Some(&s.token), query, json!({ "id": "987654" }))
        .await;
    assert_eq!(error_codes(&missing), ["NOT_FOUND"]);
    let malformed = s
        .app
        .graphql_as(Some(&s.token), query, json!({ "id": "abc" }))
        .await;
    assert_eq!(error_codes(&malformed), ["BAD_USER_INPUT"]);
}
