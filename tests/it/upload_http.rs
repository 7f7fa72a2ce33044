//! Uploads over HTTP: the GraphQL multipart request (with the CSRF-prevention header and its
//! own size limit), the ingest followed by query and subscription, the file downloaded again
//! by members only, and templates that ingest without errors once filled in.

use std::time::Duration;

use calamine::Reader;
use futures_util::SinkExt;
use justice_counts::app::Background;
use justice_counts::config::BackgroundArgs;
use justice_counts::events::EventBus;
use justice_counts::limits::Limits;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::subscriptions::{connect, json_of, next};
use crate::support::{TestApp, TestDb, agency_id, error_codes};

const UPLOAD: &str = "mutation($agency: ID!, $file: File!, $dryRun: Boolean) {
    uploadSpreadsheet(agencyId: $agency, system: LAW_ENFORCEMENT, file: $file, dryRun: $dryRun) {
        id status dryRun fileName fileUrl
    }
}";

const FOLLOW: &str = "query($id: ID!) { upload(id: $id) {
    status fileSize
    progress { status rowsRead rowsSaved messageCount }
    messages { severity title row value options }
    reports { change dateRangeStart report { id status } }
    values(first: 10) { totalCount nodes { row metricKey member value oldValue outcome } }
} }";

/// The job workers of a test: quick to notice new jobs.
fn background(db: &TestDb) -> Background {
    Background::start(
        &db.pool,
        &db.catalogue,
        &EventBus::new(),
        &BackgroundArgs {
            job_poll: Duration::from_millis(50),
            ..BackgroundArgs::default()
        },
    )
}

/// Sends a GraphQL multipart request with one file as variable `file`.
async fn upload(
    app: &TestApp,
    token: Option<&str>,
    variables: Value,
    file_name: &str,
    bytes: Vec<u8>,
    preflight: bool,
) -> (u16, Value) {
    let mut variables = variables;
    variables["file"] = Value::Null;
    let operations = json!({ "query": UPLOAD, "variables": variables });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
        );
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .multipart(form);
    if preflight {
        request = request.header("Apollo-Require-Preflight", "true");
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls the upload until its ingest has ended.
async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let response = app
            .graphql_as(Some(token), FOLLOW, json!({ "id": id }))
            .await;
        let upload = &response["data"]["upload"];
        let status = upload["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{response}"));
        if matches!(status, "INGESTED" | "ERRORED" | "CANCELLED") {
            return upload.clone();
        }
        assert!(std::time::Instant::now() < deadline, "still {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spreadsheet_uploaded_over_http_is_ingested_and_can_be_downloaded_by_members() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let workers = background(&db);
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let csv = b"year,month,value\n2022,1,40\n2022,2,oops\n".to_vec();

    // Without the CSRF-prevention header a multipart POST is refused.
    let (status, body) = upload(
        &app,
        Some(&token),
        json!({"agency": harbor}),
        "arrests.csv",
        csv.clone(),
        false,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_codes(&body), ["BAD_REQUEST"]);

    let (status, body) = upload(
        &app,
        Some(&token),
        json!({"agency": harbor}),
        "arrests.csv",
        csv.clone(),
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let created = &body["data"]["uploadSpreadsheet"];
    assert_eq!(created["fileName"], "arrests.csv", "{body}");
    assert_eq!(created["dryRun"], false);
    let id = created["id"].as_str().expect("id").to_owned();

    let done = finished(&app, &token, &id).await;
    assert_eq!(done["status"], "ERRORED", "{done:#}");
    assert_eq!(done["fileSize"], csv.len());
    assert_eq!(
        done["progress"],
        json!({"status": "ERRORED", "rowsRead": 2, "rowsSaved": 1, "messageCount": 1})
    );
    assert_eq!(done["messages"][0]["title"], "Invalid 'value' Column Value");
    assert_eq!(done["messages"][0]["row"], 3);
    assert_eq!(done["messages"][0]["value"], "oops");
    assert_eq!(done["reports"][0]["change"], "NEW");
    assert_eq!(done["reports"][0]["report"]["status"], "DRAFT");
    assert_eq!(
        done["values"],
        json!({"totalCount": 1, "nodes": [{"row": 2, "metricKey": "LAW_ENFORCEMENT_ARRESTS", "member": null, "value": 40.0, "oldValue": null, "outcome": "NEW"}]})
    );

    // The file, downloaded again by a member; nobody else learns it exists.
    let file_url = format!(
        "{}{}",
        app.base_url,
        created["fileUrl"].as_str().unwrap_or_default()
    );
    let download = app
        .client
        .get(&file_url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(download.status(), 200);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap_or_default()
            .contains("arrests.csv")
    );
    assert_eq!(download.bytes().await.expect("body").to_vec(), csv);
    let outsider = app.token_for(&db, "sheriff.contributor@example.com").await;
    let refused = app
        .client
        .get(&file_url)
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 404);
    let anonymous = app.client.get(&file_url).send().await.expect("sent");
    assert_eq!(anonymous.status(), 401);
    let other = app
        .graphql_as(Some(&outsider), FOLLOW, json!({"id": id}))
        .await;
    assert_eq!(error_codes(&other), ["NOT_FOUND"]);

    // An ended upload cannot be cancelled.
    let cancel = app
        .graphql_as(
            Some(&token),
            "mutation($id: ID!) { cancelUpload(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(error_codes(&cancel), ["CONFLICT"]);

    // A reader may not upload; a file variable in a JSON request is refused, not trusted.
    let reader = app.token_for(&db, "sheriff.reader@example.com").await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    let (_, body) = upload(
        &app,
        Some(&reader),
        json!({"agency": sheriff}),
        "arrests.csv",
        csv.clone(),
        true,
    )
    .await;
    assert_eq!(error_codes(&body), ["FORBIDDEN"]);
    let forged = app
        .graphql_as(
            Some(&token),
            UPLOAD,
            json!({"agency": harbor, "file": "#__graphql_file__:7"}),
        )
        .await;
    assert_eq!(error_codes(&forged), ["BAD_USER_INPUT"], "{forged}");
    let unknown = app
        .graphql_as(Some(&token), "mutation($a: ID!, $f: File!) { uploadSpreadsheet(agencyId: $a, system: JAILS, file: $f) { id } }", json!({"a": harbor, "f": "x"}))
        .await;
    assert!(!error_codes(&unknown).is_empty(), "{unknown}");
    workers.stop();
}

/// The parts read into memory are held to the JSON body's limit, not to the file's.
#[tokio::test]
async fn a_multipart_requests_json_parts_are_held_to_the_body_limit() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            max_body_bytes: 10_000,
            max_upload_bytes: 1_000_000,
            rate_limit_burst: 0,
            ..Limits::default()
        },
    )
    .await;
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    let post = |form: reqwest::multipart::Form| {
        app.client
            .post(format!("{}/graphql", app.base_url))
            .header("Apollo-Require-Preflight", "true")
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    let form = |operations: String, map: String| {
        reqwest::multipart::Form::new()
            .text("operations", operations)
            .text("map", map)
    };
    let padded = |bytes: usize| {
        json!({ "query": format!("{{ __typename }} #{}", "x".repeat(bytes)) }).to_string()
    };
    // Under the limit, the request runs.
    let response = post(form(padded(5_000), "{}".into())).await.expect("sent");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    // Over it (though far under the file's limit), refused before it is read whole.
    for (operations, map, part) in [
        (padded(50_000), "{}".to_owned(), "operations"),
        (
            padded(10),
            json!({ "0": vec!["variables.file"; 2_000] }).to_string(),
            "map",
        ),
    ] {
        let response = post(form(operations, map)).await.expect("sent");
        assert_eq!(response.status(), 413);
        let body: Value = response.json().await.expect("json");
        assert_eq!(error_codes(&body), ["PAYLOAD_TOO_LARGE"], "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("`{part}`")), "{message}");
    }
    // A part the map names must be sent, a request carries one file at most, for one
    // variable, and each of its parts once.
    let file =
        |name: &str| reqwest::multipart::Part::bytes(b"a".to_vec()).file_name(name.to_owned());
    for malformed in [
        form(padded(10), json!({ "0": ["variables.file"] }).to_string()),
        form(padded(10), "{}".into())
            .part("0", file("a.csv"))
            .part("1", file("b.csv")),
        // One file, one variable: each copy would hold a file descriptor.
        form(
            json!({ "query": "{ __typename }", "variables": { "a": null, "b": null } }).to_string(),
            json!({ "0": ["variables.a", "variables.b"] }).to_string(),
        )
        .part("0", file("a.csv")),
        form(padded(10), "{}".into()).text("operations", padded(10)),
        // A path to no variable, with a variable made to look like a placed file.
        form(
            json!({
                "query": "mutation($f: File!) { uploadSpreadsheet(agencyId: \"1\", system: LAW_ENFORCEMENT, file: $f) { id } }",
                "variables": { "f": "#__graphql_file__:0" },
            })
            .to_string(),
            json!({ "0": ["variables.nope"] }).to_string(),
        )
        .part("0", file("a.csv")),
    ] {
        let body: Value = post(malformed)
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert_eq!(error_codes(&body), ["BAD_REQUEST"], "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_have_their_own_size_limit_and_a_system_the_agency_reports() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            max_upload_bytes: 1000,
            rate_limit_burst: 0,
            ..Limits::default()
        },
    )
    .await;
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let big = format!("year,month,value\n{}", "2022,1,5\n".repeat(200)).into_bytes();
    let (status, body) = upload(
        &app,
        Some(&token),
        json!({"agency": harbor}),
        "arrests.csv",
        big,
        true,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_codes(&body), ["PAYLOAD_TOO_LARGE"]);
    // Larger than the JSON body limit is fine for a file under its own limit.
    let (status, body) = upload(
        &app,
        Some(&token),
        json!({"agency": harbor}),
        "arrests.pdf",
        b"%PDF".to_vec(),
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(error_codes(&body), ["BAD_USER_INPUT"]);
    // The server still answers.
    let after = app
        .graphql_as(Some(&token), "{ __typename }", json!({}))
        .await;
    assert!(after["errors"].is_null(), "{after}");
}

/// A template's sheets as rows of text.
fn read_workbook(bytes: &[u8]) -> Vec<(String, Vec<Vec<String>>)> {
    let mut workbook =
        calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes.to_vec())).expect("xlsx");
    let names = workbook.sheet_names();
    names
        .into_iter()
        .map(|name| {
            let range = workbook.worksheet_range(&name).expect("sheet");
            let rows = range
                .rows()
                .map(|row| row.iter().map(|cell| cell.to_string()).collect())
                .collect();
            (name, rows)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filled_in_template_ingests_without_errors() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let workers = background(&db);
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let url = format!(
        "{}/agencies/{harbor}/templates/LAW_ENFORCEMENT.xlsx",
        app.base_url
    );
    let response = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let template = read_workbook(&response.bytes().await.expect("body"));
    let names: Vec<&str> = template.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.contains(&"arrests") && names.contains(&"arrests_by_type"),
        "{names:?}"
    );
    let (_, arrests) = template
        .iter()
        .find(|(name, _)| name == "arrests_by_type")
        .expect("sheet");
    assert_eq!(arrests[0], ["year", "month", "offense_type", "value"]);
    // Two years of twelve months, each member once.
    assert_eq!((arrests.len() - 1) % 24, 0);
    assert!(arrests.len() > 24 * 4);
    // Fill every value in.
    let mut filled = rust_xlsxwriter::Workbook::new();
    for (name, rows) in &template {
        let sheet = filled.add_worksheet();
        sheet.set_name(name).expect("name");
        for (r, row) in (0u32..).zip(rows) {
            for (c, cell) in (0u16..).zip(row) {
                let last = usize::from(c) + 1 == row.len();
                if r > 0 && last {
                    sheet.write_number(r, c, f64::from(r % 7)).expect("cell");
                } else {
                    sheet.write_string(r, c, cell).expect("cell");
                }
            }
        }
    }
    let bytes = filled.save_to_buffer().expect("xlsx");
    let (status, body) = upload(
        &app,
        Some(&token),
        json!({"agency": harbor}),
        "harbor.xlsx",
        bytes,
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["uploadSpreadsheet"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let done = finished(&app, &token, &id).await;
    let errors: Vec<&Value> = done["messages"]
        .as_array()
        .map(|m| m.iter().filter(|m| m["severity"] == "ERROR").collect())
        .unwrap_or_default();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(done["status"], "INGESTED");
    assert!(done["progress"]["rowsSaved"].as_i64().unwrap_or(0) > 1000);

    // The single-sheet template, as CSV, too.
    let url = format!(
        "{}/agencies/{harbor}/templates/LAW_ENFORCEMENT.csv",
        app.base_url
    );
    let csv = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("metric,year,month,breakdown_category,breakdown,value")
    );
    let filled: String =
        std::iter::once("metric,year,month,breakdown_category,breakdown,value".to_owned())
            .chain(lines.map(|line| format!("{line}3")))
            .map(|line| line + "\n")
            .collect();
    let (_, body) = upload(
        &app,
        Some(&token),
        json!({"agency": harbor, "dryRun": true}),
        "all.csv",
        filled.into_bytes(),
        true,
    )
    .await;
    let id = body["data"]["uploadSpreadsheet"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let done = finished(&app, &token, &id).await;
    assert_eq!(done["status"], "INGESTED", "{:#}", done["messages"]);

    // Members only.
    let outsider = app.token_for(&db, "sheriff.contributor@example.com").await;
    let refused = app
        .client
        .get(&url)
        .bearer_auth(&outsider)
        .send()
        .await
        .expect("sent");
    assert_eq!(refused.status(), 404);
    workers.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_progress_is_a_subscription_until_the_ingest_ends() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "harbor.contributor@example.com").await;
    let harbor = agency_id(&app, &db, "Harbor City Police").await;
    let (_, body) = upload(
        &app,
        Some(&token),
        json!({"agency": harbor}),
        "arrests.csv",
        b"year,month,value\n2022,1,4\n".to_vec(),
        true,
    )
    .await;
    let id = body["data"]["uploadSpreadsheet"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (mut socket, ack) = connect(&app, &token).await;
    assert_eq!(json_of(&ack)["type"], "connection_ack");
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {
        "query": "subscription($id: ID!) { uploadProgress(id: $id) { status rowsRead rowsSaved } }",
        "variables": {"id": id}}});
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .expect("sent");
    let first = json_of(&next(&mut socket, Duration::from_secs(10)).await);
    assert_eq!(
        first["payload"]["data"]["uploadProgress"]["status"], "UPLOADED",
        "{first}"
    );
    // Workers start only now: every step of the ingest arrives.
    let workers = background(&db);
    let mut statuses = Vec::new();
    loop {
        let message = json_of(&next(&mut socket, Duration::from_secs(30)).await);
        if message["type"] == "complete" {
            break;
        }
        statuses.push(message["payload"]["data"]["uploadProgress"].clone());
    }
    let last = statuses.last().cloned().unwrap_or_default();
    assert_eq!(
        last,
        json!({"status": "INGESTED", "rowsRead": 1, "rowsSaved": 1}),
        "{statuses:#?}"
    );
    assert!(
        statuses.iter().any(|s| s["status"] == "INGESTING"),
        "{statuses:#?}"
    );
    workers.stop();
}

#[tokio::test]
async fn a_file_is_received_only_from_a_signed_in_user_a_few_at_a_time_in_bounded_time() {
    let db = TestDb::with_demo().await;
    let harbor = agency_id_of(&db, "Harbor").await;
    // No token: refused before the body is read.
    let app = TestApp::spawn(&db).await;
    let csv = b"year,month,value\n2022,1,40\n".to_vec();
    let (status, body) = upload(
        &app,
        None,
        json!({ "agency": harbor }),
        "arrests.csv",
        csv.clone(),
        true,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_codes(&body), ["UNAUTHENTICATED"]);
    let (status, body) = upload(
        &app,
        Some("not-a-token"),
        json!({ "agency": harbor }),
        "arrests.csv",
        csv.clone(),
        true,
    )
    .await;
    assert_eq!(status, 401, "{body}");

    // No room for another upload: 503 with Retry-After.
    let full = TestApp::spawn_with_limits(
        &db,
        Limits {
            max_uploads_in_flight: 0,
            ..Limits::default()
        },
    )
    .await;
    let token = full.token_for(&db, "harbor.contributor@example.com").await;
    let (status, body) = upload(
        &full,
        Some(&token),
        json!({ "agency": harbor }),
        "arrests.csv",
        csv.clone(),
        true,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_codes(&body), ["SERVICE_UNAVAILABLE"]);

    // A body that stops arriving: 408 once the time is up.
    let slow = TestApp::spawn_with_limits(
        &db,
        Limits {
            upload_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    )
    .await;
    let token = slow.token_for(&db, "harbor.contributor@example.com").await;
    let boundary = "x-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"arrests.csv\"\r\n\r\n\
         year,month,value\n",
        json!({ "query": UPLOAD, "variables": { "agency": harbor, "file": null } }),
        json!({ "0": ["variables.file"] }),
    );
    let stalled = futures_util::StreamExt::chain(
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(head))]),
        futures_util::stream::pending(),
    );
    let started = std::time::Instant::now();
    let response = slow
        .client
        .post(format!("{}/graphql", slow.base_url))
        .header("Apollo-Require-Preflight", "true")
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(stalled))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 408);
    assert!(started.elapsed() < Duration::from_secs(10));
}

async fn agency_id_of(db: &TestDb, name: &str) -> String {
    crate::uploads::agency(db, name).await.0.to_string()
}
