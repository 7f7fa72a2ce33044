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
fn every_environment_setting_is_documented_with_its_default() {
    use clap::CommandFactory;
    use justice_counts::config::Cli;

    /// Every variable the command line reads, with its default when it has one.
    fn collect(command: &clap::Command, into: &mut Vec<(String, Option<String>)>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                let default = arg
                    .get_default_values()
                    .first()
                    .map(|value| value.to_string_lossy().into_owned());
                into.push((env.to_string_lossy().into_owned(), default));
            }
        }
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            collect(sub, into);
        }
    }
    let readme = include_str!("../../README.md");
    let mut settings = Vec::new();
    collect(&Cli::command(), &mut settings);
    assert!(settings.len() > 60, "{settings:?}");
    let mut missing = Vec::new();
    let mut wrong_default = Vec::new();
    for (name, default) in &settings {
        let quoted = format!("`{name}`");
        if !readme.contains(&quoted) {
            missing.push(name.clone());
            continue;
        }
        // In a table, the row of the variable gives its default.
        let Some(row) = readme
            .lines()
            .find(|line| line.starts_with(&format!("| {quoted} ")))
        else {
            continue;
        };
        if let Some(default) = default
            && !row.contains(&format!("`{default}`"))
        {
            wrong_default.push(format!("{name} = {default}: {row}"));
        }
    }
    assert!(missing.is_empty(), "not in the README: {missing:?}");
    assert!(
        wrong_default.is_empty(),
        "the README gives another default: {wrong_default:#?}"
    );
}
