//! Every GraphQL example of the README runs against the demo data without an error.

use serde_json::json;

use crate::support::{TestApp, TestDb, error_codes};

/// The ```graphql blocks of the README.
fn examples() -> Vec<String> {
    let text = include_str!("../../README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```graphql") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), line) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[tokio::test]
async fn every_graphql_example_of_the_readme_works_on_the_demo_data() {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let examples = examples();
    assert!(examples.len() >= 3, "{examples:?}");
    let token = app.token_for(&db, "sheriff.admin@example.com").await;
    for example in examples {
        // Examples that read the signed-in user run with a token, the others anonymously.
        let needs_token = example.contains("me {");
        let response = app
            .graphql_as(needs_token.then_some(token.as_str()), &example, json!({}))
            .await;
        assert!(error_codes(&response).is_empty(), "{example}\n{response}");
        let data = response["data"].as_object().expect("data");
        assert!(
            data.values().all(|value| !value.is_null()),
            "{example}\n{response}"
        );
        if example.contains("agencies(") {
            let nodes = &response["data"]["agencies"]["nodes"];
            assert!(!nodes.as_array().unwrap().is_empty(), "{response}");
        }
    }
}
