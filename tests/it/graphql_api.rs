//! Agencies and the metric catalogue over HTTP.

use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, error_codes};

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn agencies_lists_the_demo_agencies_with_their_superagency_links() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let admin = app.token_for(&db, "admin@example.com").await;
    let response = app
        .graphql_as(
            Some(&admin),"{ agencies(first: 100) { totalCount nodes { id name systems isSuperagency superagency { name } childAgencies { name } } } }", json!({}))
        .await;
    assert!(response["errors"].is_null(), "{response}");
    assert_eq!(response["data"]["agencies"]["totalCount"], 12);
    let agencies = &response["data"]["agencies"]["nodes"];
    assert_eq!(agencies.as_array().unwrap().len(), 12);
    let mut sorted = names(agencies);
    sorted.sort_unstable();
    assert_eq!(names(agencies), sorted, "ordered by name");

    let council = agencies
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["isSuperagency"] == true)
        .unwrap();
    assert_eq!(council["name"], "Pine County Public Safety Council");
    assert_eq!(
        names(&council["childAgencies"]),
        [
            "Pine County Community Corrections",
            "Pine County District Attorney",
            "Pine County Sheriff's Office"
        ]
    );
    let sheriff = agencies
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Pine County Sheriff's Office")
        .unwrap();
    assert_eq!(
        sheriff["superagency"]["name"],
        "Pine County Public Safety Council"
    );
    assert_eq!(sheriff["systems"], json!(["LAW_ENFORCEMENT", "JAILS"]));
}

#[tokio::test]
async fn agencies_can_be_filtered_by_state_system_and_name() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let admin = app.token_for(&db, "admin@example.com").await;
    let query =
        "query($filter: AgencyFilterInput) { agencies(filter: $filter) { nodes { name } } }";
    let cases = [
        (
            json!({"stateCode": "us_nm"}),
            vec![
                "Mesa State Adult Parole",
                "Mesa State Department of Corrections",
            ],
        ),
        (
            json!({"system": "JAILS"}),
            vec!["Harbor County Jail", "Pine County Sheriff's Office"],
        ),
        (
            json!({"nameContains": "police"}),
            vec![
                "Cedar Falls Police Department",
                "Harbor City Police Department",
            ],
        ),
        (json!({"nameContains": "100%"}), vec![]),
        (
            json!({"stateCode": "us_wa", "system": "LAW_ENFORCEMENT"}),
            vec!["Harbor City Police Department"],
        ),
    ];
    for (filter, expected) in cases {
        let response = app
            .graphql_as(Some(&admin), query, json!({ "filter": filter }))
            .await;
        assert_eq!(
            names(&response["data"]["agencies"]["nodes"]),
            expected,
            "{filter}"
        );
    }
}

#[tokio::test]
async fn an_agency_is_found_by_id() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let list = app
        .graphql("{ agencies { nodes { id name } } }", json!({}))
        .await;
    let first = &list["data"]["agencies"]["nodes"][0];
    let response = app
        .graphql(
            "query($id: ID!) { agency(id: $id) { name availableMetrics { key } } }",
            json!({"id": first["id"]}),
        )
        .await;
    assert_eq!(response["data"]["agency"]["name"], first["name"]);
    assert!(
        !response["data"]["agency"]["availableMetrics"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_unknown_agency_is_not_found_and_a_malformed_id_is_bad_input() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let missing = app
        .graphql(r#"{ agency(id: "99999") { name } }"#, json!({}))
        .await;
    assert_eq!(error_codes(&missing), ["NOT_FOUND"]);
    assert!(missing["data"]["agency"].is_null());
    let malformed = app
        .graphql(r#"{ agency(id: "sheriff") { name } }"#, json!({}))
        .await;
    assert_eq!(error_codes(&malformed), ["BAD_USER_INPUT"]);
    assert!(
        malformed["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid agency id")
    );
}

#[tokio::test]
async fn the_metric_catalogue_is_served() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db).await;
    let all = app
        .graphql(
            "{ metricDefinitions { key } systems { key displayName } }",
            json!({}),
        )
        .await;
    assert_eq!(
        all["data"]["metricDefinitions"].as_array().unwrap().len(),
        117
    );
    assert_eq!(all["data"]["systems"].as_array().unwrap().len(), 12);

    let parole = app
        .graphql(
            r#"{ metricDefinitions(system: PAROLE) { key }
                 metricDefinition(key: "PAROLE_POPULATION") {
                   system unit measurementType parent { key }
                   breakdowns { dimensionId members { name label } } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        parole["data"]["metricDefinitions"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    let metric = &parole["data"]["metricDefinition"];
    assert_eq!(metric["system"], "PAROLE");
    assert_eq!(metric["parent"]["key"], "SUPERVISION_POPULATION");
    assert_eq!(metric["measurementType"], "INSTANT");
    assert!(
        !metric["breakdowns"][0]["members"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let unknown = app
        .graphql(r#"{ metricDefinition(key: "NOPE") { key } }"#, json!({}))
        .await;
    assert_eq!(error_codes(&unknown), ["NOT_FOUND"]);
}

#[tokio::test]
async fn graphiql_and_health_are_served() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db).await;
    let page = app
        .client
        .get(format!("{}/graphiql", app.base_url))
        .send()
        .await
        .unwrap();
    assert!(page.status().is_success());
    let html = page.text().await.unwrap();
    assert!(html.contains("graphiql"), "{html}");
    let health = app
        .client
        .get(format!("{}/health", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn malformed_requests_are_client_errors() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db).await;
    let not_json = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 400);
    // Errors found before execution: Apollo's codes; 400 and no `data` under
    // application/graphql-response+json, 200 under application/json (GraphQL over HTTP).
    let cases = [
        ("{ agencies { name ", json!({}), "GRAPHQL_PARSE_FAILED"),
        (
            "{ agencies { nodes { salary } } }",
            json!({}),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "query($id: ID!) { agency(id: $id) { name } }",
            json!({ "id": [1] }),
            "BAD_USER_INPUT",
        ),
    ];
    for (document, variables, code) in cases {
        let legacy = app.graphql(document, variables.clone()).await;
        assert_eq!(error_codes(&legacy), [code], "{legacy}");
        let response = app
            .client
            .post(format!("{}/graphql", app.base_url))
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": document, "variables": variables }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{document}");
        assert_eq!(
            response.headers()["content-type"],
            "application/graphql-response+json; charset=utf-8"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_codes(&body), [code], "{body}");
        assert!(body.get("data").is_none(), "no data entry: {body}");
    }
    // The server is still up and answering.
    let fine = app.graphql("{ systems { key } }", json!({})).await;
    assert!(fine["errors"].is_null());
}

#[tokio::test]
async fn queries_nested_too_deeply_are_refused_before_running() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let mut selection = String::from("name");
    for _ in 0..20 {
        selection = format!("name superagency {{ {selection} }}");
    }
    let response = app
        .graphql(
            &format!("{{ agencies {{ nodes {{ {selection} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(error_codes(&response), ["QUERY_TOO_COMPLEX"], "{response}");
    assert_eq!(
        response["errors"][0]["extensions"]["limit"],
        "max_query_depth"
    );
    assert_eq!(response["errors"][0]["extensions"]["max"], 16);
}

/// A field that fails is null in its object, and when its type does not allow null the null
/// goes up to the nearest field that does (the specification's "Handling Execution Errors"):
/// the answer always has the shape the schema promises. Each document is sent twice, as a
/// document seen before runs a path of its own.
#[tokio::test]
async fn a_failed_field_is_null_and_a_non_null_one_nulls_its_parent() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let district_attorney = crate::support::agency_id(&app, &db, "District Attorney").await;
    let sheriff = crate::support::agency_id(&app, &db, "Sheriff").await;
    for _ in 0..2 {
        // Nullable: present, as null, beside the fields that worked.
        let missing = app
            .graphql(
                "{ gone: agency(id: \"999999\") { name } systems { key } }",
                json!({}),
            )
            .await;
        assert_eq!(error_codes(&missing), ["NOT_FOUND"], "{missing}");
        let data = missing["data"].as_object().expect("data");
        assert!(data.get("gone").is_some_and(Value::is_null), "{missing}");
        assert!(data["systems"].is_array(), "{missing}");
        // Non-null (`team` is `[TeamMember!]!`): its agency becomes null; the rest stays.
        let refused = app
            .graphql(
                "query($a: ID!) { agency(id: $a) { name team { name } } systems { key } }",
                json!({ "a": district_attorney }),
            )
            .await;
        assert_eq!(error_codes(&refused), ["UNAUTHENTICATED"], "{refused}");
        assert_eq!(
            refused["errors"][0]["path"],
            json!(["agency", "team"]),
            "{refused}"
        );
        let data = refused["data"].as_object().expect("data");
        assert!(data.get("agency").is_some_and(Value::is_null), "{refused}");
        assert!(data["systems"].is_array(), "{refused}");
        // The only field, or every field of an object, failing: still the promised shape.
        let alone = app
            .graphql("{ agency(id: \"999999\") { name } }", json!({}))
            .await;
        assert_eq!(alone["data"], json!({ "agency": null }), "{alone}");
        let sheriff = app
            .graphql(
                "query($a: ID!) { agency(id: $a) { latestMonthlyReport { id } } }",
                json!({ "a": sheriff }),
            )
            .await;
        assert_eq!(
            sheriff["data"],
            json!({ "agency": { "latestMonthlyReport": null } }),
            "{sheriff}"
        );
        let listed = app
            .graphql(
                "{ agencies(first: 3) { nodes { latestMonthlyReport { id } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            listed["data"]["agencies"]["nodes"],
            json!(vec![json!({ "latestMonthlyReport": null }); 3]),
            "{listed}"
        );
        // A non-null root field: `data` itself is null.
        let root = app
            .graphql(
                "query($a: ID!) { systems { key } upload(id: $a) { id } }",
                json!({ "a": "999999" }),
            )
            .await;
        assert!(!error_codes(&root).is_empty(), "{root}");
        assert!(root["data"].is_null(), "{root}");
    }
}
