//! Every GraphQL example of the README runs against the demo data without an error, and every
//! setting the server reads from its environment is documented there.

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

#[test]
fn every_environment_setting_is_documented() {
    let readme = include_str!("../../README.md");
    let config = include_str!("../../src/config.rs");
    // The settings of the server and the global ones; the flags of the one-off commands
    // (`export`, `ingest`, `token`), defined between these two, are documented with them.
    let (before, rest) = config
        .split_once("pub struct ExportArgs")
        .expect("export arguments");
    let (_, after) = rest
        .split_once("pub struct ServeArgs")
        .expect("serve arguments");
    let text = [before, after].concat();
    let settings: Vec<&str> = text
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(settings.len() > 20, "{settings:?}");
    let missing: Vec<&&str> = settings
        .iter()
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    assert!(missing.is_empty(), "not in the README: {missing:?}");
}
