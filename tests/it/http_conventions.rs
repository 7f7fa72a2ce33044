//! GraphQL over HTTP as clients and operators expect it: media types, GET, CORS, request ids,
//! health probes and metrics.

use justice_counts::auth::AuthConfig;
use justice_counts::auth::tokens::TokenKeys;
use justice_counts::http::cors::CorsSettings;
use justice_counts::limits::Limits;
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb};

#[tokio::test]
async fn the_response_type_follows_what_the_client_accepts() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db).await;
    for (accept, expected) in [
        (None, "application/json; charset=utf-8"),
        (Some("application/json"), "application/json; charset=utf-8"),
        (
            Some("application/graphql-response+json"),
            "application/graphql-response+json; charset=utf-8",
        ),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            "application/graphql-response+json; charset=utf-8",
        ),
    ] {
        let mut request = app
            .client
            .post(format!("{}/graphql", app.base_url))
            .json(&json!({ "query": "{ __typename }" }));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], expected, "{accept:?}");
    }
    let latin1 = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("content-type", "application/json; charset=iso-8859-1")
        .body(json!({ "query": "{ __typename }" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(latin1.status(), 415);
    for body in ["{not json", "[]", "{\"query\": 1}", "null"] {
        let response = app
            .client
            .post(format!("{}/graphql", app.base_url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{body}"
        );
    }
}

#[tokio::test]
async fn response_keys_follow_the_selection_set() {
    let db = TestDb::with_demo().await;
    // Without the answer caches: the second answer is run again, not served from memory.
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            public_cache_entries: 0,
            member_cache_entries: 0,
            ..Limits::default()
        },
    )
    .await;
    let query = "{ zeta: __typename agencies(first: 1) { totalCount nodes { stateCode name id } } ...F alpha: __typename } fragment F on Query { middle: __typename }";
    let token = app.token_for(&db, "admin@example.com").await;
    let send = async || {
        app.client
            .post(format!("{}/graphql", app.base_url))
            .bearer_auth(&token)
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let first = send().await;
    // The same document again runs without the request extension (kept and validated): the
    // answer is the same, byte for byte.
    let direct = app.executor.direct_runs();
    let text = send().await;
    assert_eq!(app.executor.direct_runs(), direct + 1);
    assert_eq!(text, first);
    let order = |keys: &[&str]| {
        let positions: Vec<usize> = keys
            .iter()
            .map(|key| {
                text.find(&format!("\"{key}\""))
                    .unwrap_or_else(|| panic!("{key} in {text}"))
            })
            .collect();
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "{keys:?} in {text}"
        );
    };
    order(&["zeta", "agencies", "middle", "alpha"]);
    order(&["totalCount", "nodes"]);
    order(&["stateCode", "name", "id"]);
}

#[tokio::test]
async fn get_runs_queries_with_variables() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let url = reqwest::Url::parse_with_params(
        &format!("{}/graphql", app.base_url),
        &[
            (
                "query",
                "query Count($n: Int) { agencies(first: $n) { nodes { name } } }",
            ),
            ("variables", "{\"n\": 2}"),
            ("operationName", "Count"),
        ],
    )
    .unwrap();
    let response = app
        .client
        .get(url)
        .header("apollo-require-preflight", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"]["agencies"]["nodes"].as_array().unwrap().len(),
        2,
        "{body}"
    );
}

#[tokio::test]
async fn every_request_has_an_id_in_its_answer_and_errors() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db).await;
    let given = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("x-request-id", "client-chosen-42")
        .json(&json!({ "query": "{ nope }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "client-chosen-42");
    let body: Value = given.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["requestId"],
        "client-chosen-42"
    );
    let made = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("x-request-id", "x".repeat(500))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a new id for an unfit one: {id}");
}

#[tokio::test]
async fn health_probes_tell_alive_from_ready() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db).await;
    for path in ["/health/live", "/health/ready", "/health"] {
        let response = app
            .client
            .get(format!("{}{path}", app.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

/// The value of the first sample of `name` whose line contains every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .next()
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_errors_and_the_pool() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let scrape = || async {
        let response = app
            .client
            .get(format!("{}/metrics", app.base_url))
            .send()
            .await
            .unwrap();
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        response.text().await.unwrap()
    };
    let before = scrape().await;
    let ok = "graphql_requests_total{operation=\"MetricsProbe\",outcome=\"ok\"}";
    for _ in 0..3 {
        app.graphql(
            "query MetricsProbe { agencies(first: 2) { nodes { name publishedMetrics { metric { key } } } } }",
            json!({}),
        )
        .await;
    }
    app.graphql("{ nope }", json!({})).await;
    // Made-up methods share one label value (OpenTelemetry's `_OTHER`).
    for method in ["FOO1", "FOO2"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.client
            .request(method, format!("{}/health", app.base_url))
            .send()
            .await
            .unwrap();
    }
    let after = scrape().await;
    assert!(!after.contains("FOO1"), "{after}");
    assert!(after.contains("http_request_method=\"_OTHER\""), "{after}");
    let count = |text: &str, name: &str, labels: &[&str]| sample(text, name, labels);
    assert_eq!(
        count(&after, ok, &[]) - count(&before, ok, &[]),
        3.0,
        "{after}"
    );
    let validation = ["code=\"GRAPHQL_VALIDATION_FAILED\""];
    assert!(
        count(&after, "graphql_errors_total", &validation)
            > count(&before, "graphql_errors_total", &validation)
    );
    assert!(after.contains("graphql_request_duration_seconds_bucket"));
    assert!(after.contains("http_server_request_duration_seconds_count{http_request_method=\"POST\",http_route=\"/graphql\",http_response_status_code=\"200\"}"));
    // The first probe runs (the public cache answers the others).
    let batches = |text: &str| {
        count(
            text,
            "graphql_dataloader_batch_size_count",
            &["loader=\"MetricSettingsOf\""],
        )
    };
    assert!(batches(&after) > batches(&before), "{after}");
    assert!(
        after.contains("db_client_connection_count{state=\"idle\"}"),
        "{after}"
    );
    assert!(count(&after, "db_client_connection_gets_total", &["direct"]) > 0.0);
    assert!(after.ends_with("# EOF\n"));
}

#[tokio::test]
async fn refusals_and_throttled_sign_ins_are_counted() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let scrape = || async {
        app.client
            .get(format!("{}/metrics", app.base_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let before = scrape().await;
    app.graphql(&format!("{{ {} }}", "__typename ".repeat(30)), json!({}))
        .await;
    for _ in 0..8 {
        app.client
            .post(format!("{}/graphql", app.base_url))
            .json(&json!({ "query": "mutation { signIn(input: {email: \"metrics@example.com\", password: \"wrong one\"}) { accessToken } }" }))
            .send()
            .await
            .unwrap();
    }
    let after = scrape().await;
    let roots = ["limit=\"max_root_fields\""];
    assert!(
        sample(&after, "limits_refused_total", &roots)
            > sample(&before, "limits_refused_total", &roots)
    );
    let account = ["scope=\"account\""];
    assert!(
        sample(&after, "auth_sign_in_throttled_total", &account)
            > sample(&before, "auth_sign_in_throttled_total", &account),
        "{after}"
    );
}

#[tokio::test]
async fn configured_origins_may_call_from_a_browser_and_others_may_not() {
    let db = TestDb::new().await;
    let app = TestApp::serve_with_cors(
        &db,
        AuthConfig::new(TokenKeys::generate()),
        Limits::default(),
        CorsSettings {
            allowed_origins: vec!["https://dashboard.example.org".into()],
            allow_credentials: false,
        },
    )
    .await;
    let preflight = |origin: &str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/graphql", app.base_url),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .send()
    };
    let allowed = preflight("https://dashboard.example.org").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://dashboard.example.org"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
    assert!(
        allowed
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let post = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("origin", "https://dashboard.example.org")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        post.headers()["access-control-allow-origin"],
        "https://dashboard.example.org"
    );
    assert!(
        CorsSettings {
            allowed_origins: vec!["*".into()],
            allow_credentials: true,
        }
        .layer()
        .is_err(),
        "credentials with any origin"
    );
}

#[tokio::test]
async fn with_a_metrics_token_only_the_scraper_that_presents_it_reads_the_metrics() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            metrics_token: Some("a-scrapers-secret-of-some-length".parse().unwrap()),
            ..Limits::default()
        },
    )
    .await;
    let scrape = |token: Option<&'static str>| {
        let mut request = app.client.get(format!("{}/metrics", app.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for token in [None, Some("a-guess-of-some-length-too")] {
        let refused = scrape(token).await.unwrap();
        assert_eq!(refused.status(), 401);
        assert!(
            !refused
                .text()
                .await
                .unwrap()
                .contains("graphql_requests_total")
        );
    }
    let allowed = scrape(Some("a-scrapers-secret-of-some-length"))
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert!(allowed.text().await.unwrap().ends_with("# EOF\n"));
    assert!(
        "short".parse::<justice_counts::limits::Secret>().is_err(),
        "a short secret is refused"
    );
}
