//! What an attacker can try against the public endpoint, anonymous or signed in: each attack
//! is refused with its code and status, and the server answers a normal query afterwards.

use std::time::{Duration, Instant};

use justice_counts::auth::AuthConfig;
use justice_counts::auth::tokens::{self, Restrictions, TokenKeys};
use justice_counts::limits::{Introspection, Limits};
use justice_counts::models::ids::AgencyId;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id, error_codes, operation};

/// A raw answer: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn codes(&self) -> Vec<String> {
        error_codes(&self.body)
    }

    fn limit(&self) -> &str {
        self.body["errors"][0]["extensions"]["limit"]
            .as_str()
            .unwrap_or_default()
    }

    fn retry_after(&self) -> Option<u64> {
        self.headers
            .get("retry-after")
            .and_then(|value| value.to_str().ok()?.parse().ok())
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

/// Posts JSON, accepting `application/graphql-response+json` as current clients do.
async fn post(app: &TestApp, token: Option<&str>, body: Value) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("accept", "application/graphql-response+json")
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    answer(request.send().await.unwrap()).await
}

async fn query(app: &TestApp, token: Option<&str>, document: &str, variables: Value) -> Answer {
    post(
        app,
        token,
        json!({ "query": document, "variables": variables }),
    )
    .await
}

/// The server still answers an ordinary anonymous query.
async fn assert_healthy(app: &TestApp) {
    let answer = query(
        app,
        None,
        "{ agencies(first: 1) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(
        answer.body["data"]["agencies"]["totalCount"]
            .as_i64()
            .unwrap()
            > 0,
        "{}",
        answer.body
    );
}

/// A public agency and a metric it publishes.
async fn published_metric(app: &TestApp) -> (String, String) {
    let answer = query(
        app,
        None,
        "{ agencies(first: 20) { nodes { id publishedMetrics { metric { key } } } } }",
        json!({}),
    )
    .await;
    let agency = answer.body["data"]["agencies"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|agency| !agency["publishedMetrics"].as_array().unwrap().is_empty())
        .expect("a public agency publishing a metric");
    (
        agency["id"].as_str().unwrap().to_owned(),
        agency["publishedMetrics"][0]["metric"]["key"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

const SERIES: &str = "query($agency: ID!, $input: SeriesInput!) { agency(id: $agency) { \
                      publishedSeries(input: $input) { points { start } } } }";

#[tokio::test]
async fn a_series_reaching_past_the_calendar_or_over_decades_is_refused() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let (agency, metric) = published_metric(&app).await;
    let far = query(
        &app,
        None,
        SERIES,
        json!({ "agency": agency, "input": { "metricKey": metric, "to": "+262142-12-31" } }),
    )
    .await;
    assert_eq!(far.codes(), ["BAD_USER_INPUT"], "{}", far.body);
    for to in ["9999-12-31", "2200-02-01"] {
        let answer = query(
            &app,
            None,
            SERIES,
            json!({ "agency": agency, "input": { "metricKey": metric, "to": to } }),
        )
        .await;
        assert_eq!(answer.codes(), ["BAD_USER_INPUT"], "{to}: {}", answer.body);
    }
    let decades = query(
        &app,
        None,
        SERIES,
        json!({ "agency": agency, "input": { "metricKey": metric, "from": "1900-01-01", "to": "2199-12-01" } }),
    )
    .await;
    assert_eq!(decades.codes(), ["BAD_USER_INPUT"], "{}", decades.body);
    let message = decades.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("at most 30 years"), "{message}");
    let thirty = query(
        &app,
        None,
        SERIES,
        json!({ "agency": agency, "input": { "metricKey": metric, "from": "1995-01-01", "to": "2025-01-01", "granularity": "ANNUAL" } }),
    )
    .await;
    assert!(thirty.body["errors"].is_null(), "{}", thirty.body);
    assert_healthy(&app).await;
}

#[tokio::test]
async fn dates_outside_the_accepted_range_never_reach_the_database() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let admin = app.token_for(&db, "admin@example.com").await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let reports = "query($agency: ID!, $filter: ReportFilterInput) { agency(id: $agency) { \
                   reports(filter: $filter) { totalCount } } }";
    for filter in [
        json!({ "from": "0001-01-01" }),
        json!({ "to": "5874898-01-01" }),
        json!({ "year": 2147483647 }),
        json!({ "year": -4714 }),
    ] {
        let answer = query(
            &app,
            Some(&admin),
            reports,
            json!({ "agency": sheriff, "filter": filter }),
        )
        .await;
        assert_eq!(
            answer.codes(),
            ["BAD_USER_INPUT"],
            "{filter}: {}",
            answer.body
        );
    }
    let create = "mutation($input: CreateReportInput!) { createReport(input: $input) { id } }";
    let answer = query(
        &app,
        Some(&admin),
        create,
        json!({ "input": { "agencyId": sheriff, "frequency": "MONTHLY", "periodStart": "9999-12-01" } }),
    )
    .await;
    assert_eq!(answer.codes(), ["BAD_USER_INPUT"], "{}", answer.body);
    assert_healthy(&app).await;
}

#[tokio::test]
async fn expensive_documents_are_refused_before_they_run() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let nested = "a: agencies(first: 100) { nodes { reports(first: 100) { nodes { \
                  metrics { breakdowns { members { name } } } } } } }";
    let aliases: String = (0..5)
        .map(|i| nested.replacen("a:", &format!("a{i}:"), 1))
        .collect();
    let cases = [
        (format!("{{ {aliases} }}"), "max_query_complexity"),
        (
            format!(
                "{{ {} }}",
                (0..2_000)
                    .map(|i| format!("a{i}: __typename"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            "max_query_tokens",
        ),
        (
            format!(
                "{{ agencies {{ nodes {{ {} }} }} }}",
                (0..100)
                    .map(|i| format!("a{i}: __typename "))
                    .collect::<String>()
            ),
            "max_query_aliases",
        ),
        (
            format!("{{ {} }}", "__typename ".repeat(20_000)),
            "max_query_tokens",
        ),
        (
            format!("{{ __typename {} }}", "@skip(if: false) ".repeat(5)),
            "max_directives_per_location",
        ),
        (
            format!("{{ __typename {} }}", "@unknown ".repeat(5_000)),
            "max_query_tokens",
        ),
        (
            format!("{{ __typename {} }}", "@unknown ".repeat(1_000)),
            "max_directives_per_location",
        ),
        (
            format!(
                "{}{}",
                "{ agencies { nodes { ".repeat(20),
                "} } }".repeat(20)
            ),
            "max_query_depth",
        ),
    ];
    for (document, limit) in cases {
        let answer = query(&app, None, &document, json!({})).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{limit}: {}",
            answer.body
        );
        assert_eq!(
            answer.codes(),
            ["QUERY_TOO_COMPLEX"],
            "{limit}: {}",
            answer.body
        );
        assert_eq!(answer.limit(), limit, "{}", answer.body);
        assert!(answer.body["errors"][0]["extensions"]["max"].is_number());
    }
    // Clients that accept only application/json get 200, as GraphQL over HTTP says.
    let legacy = app
        .graphql(&format!("{{ {} }}", "__typename ".repeat(21)), json!({}))
        .await;
    assert_eq!(error_codes(&legacy), ["QUERY_TOO_COMPLEX"], "{legacy}");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn long_strings_and_long_lists_in_arguments_are_refused() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let long = query(
        &app,
        None,
        "query($name: String) { agencies(filter: { nameContains: $name }) { totalCount } }",
        json!({ "name": "x".repeat(10_001) }),
    )
    .await;
    assert_eq!(long.limit(), "max_string_length", "{}", long.body);
    let admin = app.token_for(&db, "admin@example.com").await;
    let ids: Vec<String> = (0..2_001).map(|i| i.to_string()).collect();
    let many = query(
        &app,
        Some(&admin),
        "mutation($ids: [ID!]!) { publishReports(reportIds: $ids) { id } }",
        json!({ "ids": ids }),
    )
    .await;
    assert_eq!(many.limit(), "max_list_length", "{}", many.body);
    assert_healthy(&app).await;
}

#[tokio::test]
async fn a_document_sent_again_is_checked_against_its_new_variables() {
    // The second request's document comes parsed from memory; the limits that depend on the
    // variables must still hold.
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let document =
        "query($name: String) { agencies(filter: { nameContains: $name }) { totalCount } }";
    for (name, refused) in [
        ("Pine", false),
        (&*"x".repeat(10_001), true),
        ("Pine", false),
    ] {
        let direct = app.executor.direct_runs();
        let answer = query(&app, None, document, json!({ "name": name })).await;
        if refused {
            // Valid and kept: checked outside the extension.
            assert_eq!(app.executor.direct_runs(), direct + 1);
            assert_eq!(answer.limit(), "max_string_length", "{}", answer.body);
        } else {
            assert!(answer.body["errors"].is_null(), "{}", answer.body);
            assert!(answer.body["data"]["agencies"]["totalCount"].as_i64() > Some(0));
        }
    }
}

#[tokio::test]
async fn the_frontend_screens_and_graphiql_introspection_fit_the_default_limits() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let introspection = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } \
        subscriptionType { name } types { ...FullType } directives { name description locations \
        args { ...InputValue } } } } \
        fragment FullType on __Type { kind name description fields(includeDeprecated: true) { \
        name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } \
        inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { \
        name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } } \
        fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue } \
        fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name \
        ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";
    let answer = query(&app, None, introspection, json!({})).await;
    assert!(answer.body["errors"].is_null(), "{}", answer.body);
    assert!(
        answer.body["data"]["__schema"]["types"]
            .as_array()
            .unwrap()
            .len()
            > 50
    );
    // Every screen's document passes the limits (their results are checked elsewhere).
    for name in [
        "startup",
        "home",
        "records",
        "data_entry",
        "metric_configuration",
        "data_visualisation",
        "team_and_settings",
        "uploads",
        "public_dashboard",
    ] {
        let answer = query(&app, None, &operation(name), json!({})).await;
        assert!(
            !answer
                .codes()
                .iter()
                .any(|code| code == "QUERY_TOO_COMPLEX"),
            "{name}: {}",
            answer.body
        );
    }
}

const SIGN_IN: &str = "mutation($email: String!, $password: String!) { signIn(input: { email: $email, password: $password }) { accessToken } }";

#[tokio::test]
async fn one_request_signs_in_once_at_most() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let signs: String = (0..200)
        .map(|i| {
            format!("s{i}: signIn(input: {{ email: \"sheriff.reader@example.com\", password: \"guess{i}\" }}) {{ accessToken }} ")
        })
        .collect();
    let started = Instant::now();
    let answer = query(&app, None, &format!("mutation {{ {signs} }}"), json!({})).await;
    assert_eq!(answer.codes(), ["QUERY_TOO_COMPLEX"], "{}", answer.body);
    let two = "mutation { a: signIn(input: { email: \"x@example.com\", password: \"one\" }) { accessToken } \
               b: renewSession(refreshToken: \"jcr_x\") { accessToken } }";
    let answer = query(&app, None, two, json!({})).await;
    assert_eq!(answer.limit(), "sign_ins_per_request", "{}", answer.body);
    assert_eq!(app.auth.hasher.hashes(), 0, "no password was hashed");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_healthy(&app).await;
}

#[tokio::test]
async fn guessing_a_password_is_throttled_long_before_the_fiftieth_try() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let mut first_refusal = None;
    for attempt in 1..=50 {
        let answer = query(
            &app,
            None,
            SIGN_IN,
            json!({ "email": "sheriff.reader@example.com", "password": format!("wrong guess {attempt}") }),
        )
        .await;
        if answer.codes() == ["RATE_LIMITED"] {
            assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
            let wait = answer.retry_after().expect("Retry-After");
            assert!(wait >= 1, "{wait}");
            assert_eq!(answer.body["errors"][0]["extensions"]["retryAfter"], wait);
            first_refusal = Some(attempt);
            break;
        }
        assert_eq!(answer.codes(), ["UNAUTHENTICATED"], "{}", answer.body);
    }
    let first_refusal = first_refusal.expect("throttled");
    assert!(
        first_refusal <= 6,
        "refused only at attempt {first_refusal}"
    );
    // The right password does not get through the throttle either: it is not even checked.
    let hashes = app.auth.hasher.hashes();
    let right = query(
        &app,
        None,
        SIGN_IN,
        json!({ "email": "SHERIFF.READER@example.com", "password": "justice-counts-demo" }),
    )
    .await;
    assert_eq!(right.codes(), ["RATE_LIMITED"], "{}", right.body);
    assert_eq!(app.auth.hasher.hashes(), hashes);
    // Another account is not affected.
    let other = query(
        &app,
        None,
        SIGN_IN,
        json!({ "email": "admin@example.com", "password": "justice-counts-demo" }),
    )
    .await;
    assert!(other.body["errors"].is_null(), "{}", other.body);
    assert_healthy(&app).await;
}

#[tokio::test]
async fn many_accounts_from_one_address_are_throttled_too() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let mut codes = Vec::new();
    for attempt in 0..25 {
        let answer = query(
            &app,
            None,
            SIGN_IN,
            json!({ "email": format!("nobody{attempt}@example.com"), "password": "guess" }),
        )
        .await;
        codes.push(answer.codes().join(""));
    }
    let refused = codes.iter().position(|code| code == "RATE_LIMITED");
    // The burst of 20, give or take one attempt regained meanwhile on a slow machine.
    assert!(
        refused.is_some_and(|at| (20..=21).contains(&at)),
        "{codes:?}"
    );
}

#[tokio::test]
async fn unknown_accounts_and_wrong_passwords_get_the_same_answer_and_work() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let unknown = query(
        &app,
        None,
        SIGN_IN,
        json!({ "email": "nobody@example.com", "password": "whatever it is" }),
    )
    .await;
    assert_eq!(
        app.auth.hasher.hashes(),
        1,
        "a decoy hash for the unknown account"
    );
    let wrong = query(
        &app,
        None,
        SIGN_IN,
        json!({ "email": "sheriff.reader@example.com", "password": "whatever it is" }),
    )
    .await;
    assert_eq!(app.auth.hasher.hashes(), 2);
    assert_eq!(unknown.status, wrong.status);
    let without_request_id = |mut body: Value| {
        body["errors"][0]["extensions"]
            .as_object_mut()
            .unwrap()
            .remove("requestId");
        body
    };
    assert_eq!(
        without_request_id(unknown.body),
        without_request_id(wrong.body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sign_ins_never_hash_more_passwords_at_once_than_the_bound() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            password_hash_concurrency: 2,
            sign_in_account_burst: 100,
            sign_in_address_burst: 100,
            ..Limits::default()
        },
    )
    .await;
    let attempts = (0..16).map(|i| {
        let app = &app;
        async move {
            query(
                app,
                None,
                SIGN_IN,
                json!({ "email": "sheriff.reader@example.com", "password": format!("guess {i}") }),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    assert!(
        answers
            .iter()
            .all(|answer| answer.codes() == ["UNAUTHENTICATED"])
    );
    assert_eq!(app.auth.hasher.hashes(), 16);
    let peak = app.auth.hasher.peak();
    assert!((1..=2).contains(&peak), "{peak} hashes ran at once");
    assert_healthy(&app).await;
}

#[tokio::test]
async fn errors_suggest_no_field_names() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let answer = query(&app, None, "{ agencie { totalCount } }", json!({})).await;
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("agencie"), "{message}");
    assert!(!message.contains("Did you mean"), "{message}");
    assert!(!message.contains("agencies"), "{message}");
}

#[tokio::test]
async fn introspection_can_be_limited_to_signed_in_users_or_turned_off() {
    let db = TestDb::with_demo().await;
    let schema_query = "{ __schema { queryType { name } } }";
    let signed_in = TestApp::spawn_with_limits(
        &db,
        Limits {
            introspection: Introspection::Authenticated,
            ..Limits::default()
        },
    )
    .await;
    let token = signed_in.token_for(&db, "sheriff.reader@example.com").await;
    // Turned off, introspection answers null: nothing of the schema is shown.
    let anonymous = query(&signed_in, None, schema_query, json!({})).await;
    assert!(
        anonymous.body["data"]["__schema"].is_null(),
        "{}",
        anonymous.body
    );
    let member = query(&signed_in, Some(&token), schema_query, json!({})).await;
    assert_eq!(
        member.body["data"]["__schema"]["queryType"]["name"],
        "Query"
    );

    let off = TestApp::spawn_with_limits(
        &db,
        Limits {
            introspection: Introspection::Off,
            ..Limits::default()
        },
    )
    .await;
    let token = off.token_for(&db, "admin@example.com").await;
    let refused = query(&off, Some(&token), schema_query, json!({})).await;
    assert!(
        refused.body["data"]["__schema"].is_null(),
        "{}",
        refused.body
    );
    let by_type = query(
        &off,
        Some(&token),
        "{ __type(name: \"Agency\") { fields { name } } }",
        json!({}),
    )
    .await;
    assert!(by_type.body["data"]["__type"].is_null(), "{}", by_type.body);
    let typename = query(&off, None, "{ __typename }", json!({})).await;
    assert_eq!(typename.body["data"]["__typename"], "Query");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_unread() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let padding = " ".repeat(10 << 20);
    let body = format!("{{\"query\": \"{{ __typename }}\"{padding}}}");
    let declared = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header(CONTENT_TYPE, "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let declared = answer(declared).await;
    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(declared.codes(), ["PAYLOAD_TOO_LARGE"]);
    // Streamed without a length: refused once the limit is passed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(64 << 10)
        .map(|chunk| Ok(chunk.to_vec()))
        .collect();
    let streamed = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header(CONTENT_TYPE, "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(streamed) = streamed {
        assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    assert_healthy(&app).await;
}

#[tokio::test]
async fn a_cross_site_form_cannot_run_an_operation() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "admin@example.com").await;
    let mutation = json!({ "query": "mutation { signOut }" }).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let response = app
            .client
            .post(format!("{}/graphql", app.base_url))
            .header(CONTENT_TYPE, content_type)
            .bearer_auth(&token)
            .body(mutation.clone())
            .send()
            .await
            .unwrap();
        let refused = answer(response).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{content_type}");
        assert_eq!(refused.codes(), ["BAD_REQUEST"], "{content_type}");
        let message = refused.body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("cross-site request forgery"), "{message}");
    }
    let still_valid = query(&app, Some(&token), "{ me { email } }", json!({})).await;
    assert_eq!(
        still_valid.body["data"]["me"]["email"], "admin@example.com",
        "signOut never ran"
    );

    // GET runs queries, never mutations, and needs a preflight header like a simple POST.
    let get = |document: &str, preflight: bool| {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/graphql", app.base_url),
            &[("query", document)],
        )
        .unwrap();
        let mut request = app.client.get(url);
        if preflight {
            request = request.header("apollo-require-preflight", "true");
        }
        request.bearer_auth(&token).send()
    };
    let plain = answer(get("{ __typename }", false).await.unwrap()).await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST);
    let allowed = answer(get("{ me { email } }", true).await.unwrap()).await;
    assert_eq!(allowed.body["data"]["me"]["email"], "admin@example.com");
    let mutation = answer(get("mutation { signOut }", true).await.unwrap()).await;
    assert_eq!(mutation.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(mutation.headers["allow"], "POST");
    let still_valid = query(&app, Some(&token), "{ me { email } }", json!({})).await;
    assert_eq!(
        still_valid.body["data"]["me"]["email"], "admin@example.com",
        "signOut never ran"
    );
}

#[tokio::test]
async fn a_report_that_exists_and_one_that_does_not_look_alike_to_outsiders() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let admin = app.token_for(&db, "admin@example.com").await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let listed = query(
        &app,
        Some(&admin),
        "query($a: ID!) { agency(id: $a) { reports(first: 1) { nodes { id } } } }",
        json!({ "a": sheriff }),
    )
    .await;
    let existing: i64 = listed.body["data"]["agency"]["reports"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let missing = existing + 1_000_000;
    let outsider = app.token_for(&db, "harbor.contributor@example.com").await;
    let report = "query($id: ID!) { report(id: $id) { id } }";
    for token in [None, Some(outsider.as_str())] {
        let found = query(&app, token, report, json!({ "id": existing.to_string() })).await;
        let not_found = query(&app, token, report, json!({ "id": missing.to_string() })).await;
        assert_eq!(found.codes(), ["NOT_FOUND"], "{}", found.body);
        assert_eq!(found.status, not_found.status);
        let shape = |answer: &Answer, id: i64| {
            answer.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .replace(&id.to_string(), "<id>")
        };
        assert_eq!(shape(&found, existing), shape(&not_found, missing));
    }
}

#[tokio::test]
async fn a_token_narrowed_to_one_agency_counts_what_it_lists() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let admin = app.token_for(&db, "admin@example.com").await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let narrowed = tokens::attenuate(
        &admin,
        &Restrictions {
            agencies: vec![AgencyId(sheriff.parse().unwrap())],
            ..Restrictions::default()
        },
    )
    .unwrap();
    let list = "{ agencies(first: 100) { totalCount nodes { id } } }";
    let everything = query(&app, Some(&admin), list, json!({})).await;
    let narrow = query(&app, Some(&narrowed), list, json!({})).await;
    let anonymous = query(&app, None, list, json!({})).await;
    let count = |answer: &Answer| {
        answer.body["data"]["agencies"]["totalCount"]
            .as_i64()
            .unwrap()
    };
    let listed = |answer: &Answer| {
        answer.body["data"]["agencies"]["nodes"]
            .as_array()
            .unwrap()
            .len() as i64
    };
    for answer in [&everything, &narrow, &anonymous] {
        assert_eq!(count(answer), listed(answer), "{}", answer.body);
    }
    assert!(count(&narrow) < count(&everything));
    assert!(
        narrow.body["data"]["agencies"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|node| node["id"] == sheriff.as_str())
    );
    assert!(count(&narrow) >= count(&anonymous));
}

#[tokio::test]
async fn too_many_requests_from_one_address_or_one_user_are_refused() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            rate_limit_burst: 5,
            rate_limit_per_second: 1,
            client_ip_header: Some("X-Forwarded-For".into()),
            ..Limits::default()
        },
    )
    .await;
    let send = |address: String, token: Option<String>| {
        let mut request = app
            .client
            .post(format!("{}/graphql", app.base_url))
            .header("x-forwarded-for", address)
            .json(&json!({ "query": "{ __typename }" }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            send("203.0.113.1".into(), None)
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    // The burst, then refusals (one request a second comes back: allow for a slow machine).
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    let refused = answer(send("203.0.113.1".into(), None).await.unwrap()).await;
    assert_eq!(refused.codes(), ["RATE_LIMITED"]);
    assert!(refused.retry_after().is_some());
    assert_eq!(
        send("203.0.113.2".into(), None).await.unwrap().status(),
        200
    );
    // One user from many addresses.
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        let response = send(format!("198.51.100.{i}"), Some(token.clone()))
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    // The burst, then refusals (one request a second comes back: allow for a slow machine).
    assert_eq!(statuses[..5], [200; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    // Feeds and files take from the same rate.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let response = app
            .client
            .get(format!("{}/feed/999999.csv", app.base_url))
            .header("x-forwarded-for", "203.0.113.3")
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..5], [404; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    let refused = answer(
        app.client
            .get(format!("{}/agencies/1/datapoints.csv", app.base_url))
            .header("x-forwarded-for", "203.0.113.3")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(refused.codes(), ["RATE_LIMITED"]);
    assert!(refused.retry_after().is_some());
    // Downloads take from the user's rate too, whatever the address.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let response = app
            .client
            .get(format!("{}/agencies/1/datapoints.csv", app.base_url))
            .header("x-forwarded-for", format!("192.0.2.{i}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn an_unreachable_database_is_answered_at_once_with_503() {
    use diesel_async::RunQueryDsl;

    let db = TestDb::with_demo().await;
    let pool = justice_counts::db::connect_with(
        &db.url,
        justice_counts::db::PoolSettings {
            wait: Duration::from_millis(500),
            ..justice_counts::db::PoolSettings::new(2)
        },
    )
    .await
    .unwrap();
    let app = TestApp::serve(
        &db,
        pool,
        AuthConfig::new(TokenKeys::generate()),
        Limits::default(),
    )
    .await;
    let token = app.token_for(&db, "admin@example.com").await;
    assert_healthy(&app).await;
    let name = db.name.clone();
    let admin = justice_counts::db::connect(&db.admin_url, 1).await.unwrap();
    let mut admin = admin.get().await.unwrap();
    let set = |allow: bool| format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}");
    diesel::sql_query(set(false))
        .execute(&mut admin)
        .await
        .unwrap();
    // A connection the pool was opening as connections were refused may still arrive: end
    // the database's connections until none has been left for a while.
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let mut quiet = 0;
    while quiet < 3 {
        let ended: Vec<Count> = diesel::sql_query(format!(
            "SELECT count(pg_terminate_backend(pid)) AS count FROM pg_stat_activity \
             WHERE datname = '{name}'"
        ))
        .load(&mut admin)
        .await
        .unwrap();
        quiet = if ended.iter().all(|row| row.count == 0) {
            quiet + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for token in [None, Some(token.as_str())] {
        let started = Instant::now();
        let mut answer = query(
            &app,
            token,
            "{ agencies(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
        // Requests may first meet the pooled connections the database just ended: each is
        // dropped once used.
        for _ in 0..3 {
            if answer.status == StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            answer = query(
                &app,
                token,
                "{ agencies(first: 1) { totalCount } }",
                json!({}),
            )
            .await;
        }
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            answer.body
        );
        assert!(
            answer
                .codes()
                .iter()
                .all(|code| code == "SERVICE_UNAVAILABLE"),
            "{}",
            answer.body
        );
        assert!(answer.retry_after().is_some());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let text = answer.body.to_string();
        assert!(!text.contains("database \\\""), "no internals: {text}");
    }
    diesel::sql_query(set(true))
        .execute(&mut admin)
        .await
        .unwrap();
    assert_healthy(&app).await;
}

#[tokio::test]
async fn a_request_over_its_time_is_stopped_with_503() {
    let db = TestDb::with_demo().await;
    let sheriff = agency_id(&TestApp::spawn(&db).await, &db, "Sheriff").await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            request_timeout: Duration::from_millis(1),
            ..Limits::default()
        },
    )
    .await;
    let token = app.token_for(&db, "admin@example.com").await;
    let answer = query(
        &app,
        Some(&token),
        &operation("metric_configuration"),
        json!({ "agencyId": sheriff }),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    assert_eq!(answer.codes(), ["SERVICE_UNAVAILABLE"]);
}

#[tokio::test]
async fn only_trusted_documents_run_when_a_manifest_is_configured() {
    let db = TestDb::with_demo().await;
    let startup = operation("startup");
    let hash = justice_counts::auth::secrets::digest(&startup);
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("trusted.json");
    std::fs::write(&manifest, json!({ hash.clone(): startup }).to_string()).unwrap();
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            trusted_documents: Some(manifest),
            ..Limits::default()
        },
    )
    .await;
    let token = app.token_for(&db, "sheriff.reader@example.com").await;
    let by_hash = post(
        &app,
        Some(&token),
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
    )
    .await;
    assert!(by_hash.body["errors"].is_null(), "{}", by_hash.body);
    assert_eq!(
        by_hash.body["data"]["me"]["email"],
        "sheriff.reader@example.com"
    );
    let in_full = query(&app, Some(&token), &startup, json!({})).await;
    assert!(in_full.body["errors"].is_null(), "{}", in_full.body);
    let other = query(&app, Some(&token), "{ me { email } }", json!({})).await;
    assert_eq!(
        other.codes(),
        ["PERSISTED_QUERY_NOT_IN_LIST"],
        "{}",
        other.body
    );
}

#[tokio::test]
async fn a_client_may_send_the_hash_of_a_document_it_sent_before() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let document = "{ agencies(first: 1) { totalCount } }";
    let hash = justice_counts::auth::secrets::digest(document);
    let extensions = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let miss = post(&app, None, json!({ "extensions": extensions })).await;
    assert_eq!(miss.codes(), ["PERSISTED_QUERY_NOT_FOUND"], "{}", miss.body);
    let register = post(
        &app,
        None,
        json!({ "query": document, "extensions": extensions }),
    )
    .await;
    assert!(register.body["errors"].is_null(), "{}", register.body);
    let hit = post(&app, None, json!({ "extensions": extensions })).await;
    assert_eq!(hit.body["data"], register.body["data"]);
    let mismatch = post(
        &app,
        None,
        json!({ "query": "{ __typename }", "extensions": extensions }),
    )
    .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_statement_over_its_time_is_cancelled_by_the_database() {
    use diesel_async::RunQueryDsl;
    use justice_counts::error::{AppError, ErrorCode};

    let db = TestDb::new().await;
    let pool = justice_counts::db::connect_with(
        &db.url,
        justice_counts::db::PoolSettings {
            statement_timeout: Some(Duration::from_millis(50)),
            ..justice_counts::db::PoolSettings::new(1)
        },
    )
    .await
    .unwrap();
    let mut conn = pool.get().await.unwrap();
    let started = Instant::now();
    let error = diesel::sql_query("SELECT pg_sleep(5)")
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let error = AppError::from(error);
    assert_eq!(error.code(), ErrorCode::ServiceUnavailable, "{error}");
    // The connection is still good for the next statement.
    diesel::sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn only_valid_query_documents_run_without_the_extension_and_answer_the_same() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "admin@example.com").await;
    let runs = || app.executor.direct_runs();

    // A document that does not validate is never taken for a valid one.
    for _ in 0..2 {
        let answer = app
            .graphql_as(Some(&token), "{ agencies { nope } }", json!({}))
            .await;
        assert_eq!(error_codes(&answer), ["GRAPHQL_VALIDATION_FAILED"]);
    }
    assert_eq!(runs(), 0);

    // A query: through the extension until it has validated once, then directly. A value of
    // the wrong type gets the same error either way.
    let document = "query($first: Int) { agencies(first: $first) { totalCount } }";
    let wrong = app
        .graphql_as(Some(&token), document, json!({ "first": "many" }))
        .await;
    assert_eq!(error_codes(&wrong), ["BAD_USER_INPUT"]);
    assert_eq!(runs(), 0);
    for (first, direct) in [(2, 0), (3, 1)] {
        let answer = app
            .graphql_as(Some(&token), document, json!({ "first": first }))
            .await;
        assert!(answer["errors"].is_null(), "{answer}");
        assert_eq!(runs(), direct);
    }
    // A value not surely valid for its variable's type goes through full validation again.
    let wrong_again = app
        .graphql_as(Some(&token), document, json!({ "first": "many" }))
        .await;
    assert_eq!(runs(), 1);
    let error = |answer: &Value| {
        let mut error = answer["errors"][0].clone();
        error["extensions"]
            .as_object_mut()
            .unwrap()
            .remove("requestId");
        error
    };
    assert_eq!(error(&wrong_again), error(&wrong));
    assert!(wrong_again["data"].is_null());

    // A mutation always goes through the extension.
    let mutation = "mutation($ids: [ID!]!) { deleteReports(reportIds: $ids) }";
    for _ in 0..2 {
        let answer = app
            .graphql_as(Some(&token), mutation, json!({ "ids": [] }))
            .await;
        assert!(answer["errors"].is_null(), "{answer}");
    }
    assert_eq!(runs(), 1);
}

#[tokio::test]
async fn guessing_a_password_through_an_invitation_is_throttled_too() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let admin = app.token_for(&db, "sheriff.admin@example.com").await;
    // An agency admin invites the platform's admin, whose account has a password.
    let invited = query(
        &app,
        Some(&admin),
        "mutation($a: ID!) { inviteMember(input: {agencyId: $a, email: \"admin@example.com\", \
         name: \"Admin\", role: CONTRIBUTOR}) { invitationCode } }",
        json!({ "a": sheriff }),
    )
    .await;
    let code = invited.body["data"]["inviteMember"]["invitationCode"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", invited.body))
        .to_owned();
    let accept = "mutation($code: String!, $password: String!) { \
        acceptInvitation(input: {code: $code, password: $password}) { accessToken } }";
    let twice = query(
        &app,
        None,
        "mutation($code: String!) { \
         a: acceptInvitation(input: {code: $code, password: \"guess one\"}) { accessToken } \
         b: acceptInvitation(input: {code: $code, password: \"guess two\"}) { accessToken } }",
        json!({ "code": code }),
    )
    .await;
    assert_eq!(twice.codes(), ["QUERY_TOO_COMPLEX"], "{}", twice.body);
    let mut first_refusal = None;
    for attempt in 1..=50 {
        let answer = query(
            &app,
            None,
            accept,
            json!({ "code": code, "password": format!("wrong guess {attempt}") }),
        )
        .await;
        if answer.codes() == ["RATE_LIMITED"] {
            first_refusal = Some(attempt);
            break;
        }
        assert_eq!(answer.codes(), ["UNAUTHENTICATED"], "{}", answer.body);
    }
    let first_refusal = first_refusal.expect("throttled");
    assert!(
        first_refusal <= 6,
        "refused only at attempt {first_refusal}"
    );
    // Signing in to that account is throttled as well: the guesses counted against it.
    let sign_in = query(
        &app,
        None,
        SIGN_IN,
        json!({ "email": "admin@example.com", "password": "justice-counts-demo" }),
    )
    .await;
    assert_eq!(sign_in.codes(), ["RATE_LIMITED"], "{}", sign_in.body);
    assert_healthy(&app).await;
}

#[derive(diesel::QueryableByName)]
struct Waiting {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Fields that take a connection of their own, in a list, take a few of the pool's connections
/// in turn: one request cannot hold the pool while every other request waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_holds_a_bounded_number_of_connections() {
    use diesel_async::RunQueryDsl;
    use justice_counts::models::user::NewUser;

    let db = TestDb::with_demo().await;
    let mut conn = db.connect().await;
    NewUser {
        name: "Staff".into(),
        email: "staff@example.com".into(),
        is_platform_admin: true,
    }
    .insert(&mut conn)
    .await
    .unwrap();
    let pool = justice_counts::db::connect_with(&db.url, justice_counts::db::PoolSettings::new(8))
        .await
        .unwrap();
    let limits = Limits {
        rate_limit_burst: 0,
        max_request_connections: 1,
        ..Limits::default()
    };
    let app = TestApp::serve(
        &db,
        pool.clone(),
        AuthConfig::with_limits(TokenKeys::generate(), &limits),
        limits,
    )
    .await;
    let token = app.token_for(&db, "staff@example.com").await;
    app.graphql_as(Some(&token), "{ __typename }", json!({}))
        .await;

    // Every count waits on this lock with its connection taken.
    let mut blocker = db.connect().await;
    diesel::sql_query("BEGIN")
        .execute(&mut blocker)
        .await
        .unwrap();
    diesel::sql_query("LOCK TABLE reports IN ACCESS EXCLUSIVE MODE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let query = "{ agencies(first: 20) { nodes { name reports { totalCount } } } }";
    let mut watcher = db.connect().await;
    let sample = async {
        // Until the request's statements wait on the lock, then a moment for the rest.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let waiting: Vec<Waiting> =
                diesel::sql_query("SELECT count(*) AS n FROM pg_locks WHERE NOT granted")
                    .load(&mut watcher)
                    .await
                    .unwrap();
            if waiting.iter().any(|row| row.n > 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let state = pool.state();
        diesel::sql_query("COMMIT")
            .execute(&mut blocker)
            .await
            .unwrap();
        state.connections - state.idle_connections
    };
    let (answer, held) = tokio::join!(app.graphql_as(Some(&token), query, json!({})), sample);
    assert!(answer["errors"].is_null(), "{answer}");
    let nodes = answer["data"]["agencies"]["nodes"].as_array().unwrap();
    assert!(
        nodes.len() > 3,
        "enough agencies to take the pool: {answer}"
    );
    assert!(
        nodes
            .iter()
            .all(|node| node["reports"]["totalCount"].is_i64()),
        "{answer}"
    );
    assert!(held >= 1, "the request was waiting on the lock");
    assert!(
        held <= 2,
        "one connection for the loaders and one of the request's own, not {held}"
    );
}

/// Text holding U+0000, which PostgreSQL cannot store, is the client's mistake.
#[tokio::test]
async fn text_holding_a_nul_character_is_bad_user_input() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    for (query, variables) in [
        (
            "query($name: String!) { agencies(filter: { nameContains: $name }) { totalCount } }",
            json!({ "name": "Sher\u{0}iff" }),
        ),
        (
            "mutation($email: String!) { signIn(input: { email: $email, password: \"whatever-it-is\" }) { accessToken } }",
            json!({ "email": "a\u{0}@example.com" }),
        ),
    ] {
        let answer = app.graphql(query, variables).await;
        assert_eq!(error_codes(&answer), ["BAD_USER_INPUT"], "{answer}");
    }
}
