//! What can be checked of `docker/` without a Docker engine: every file the image copies
//! exists, the compose file parses and wires the services together, and every environment
//! variable they set is one the server reads.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use justice_counts::config::Cli;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every environment variable the binary reads, from its command line definition.
fn variables_read() -> BTreeSet<String> {
    fn collect(command: &clap::Command, into: &mut BTreeSet<String>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                into.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in command.get_subcommands() {
            collect(sub, into);
        }
    }
    let mut names = BTreeSet::new();
    collect(&Cli::command(), &mut names);
    names
}

/// The lines of the Dockerfile with continuations joined.
fn dockerfile() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("docker/Dockerfile")).unwrap();
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    lines
}

#[test]
fn every_path_the_image_copies_exists() {
    let copies: Vec<String> = dockerfile()
        .into_iter()
        .filter(|line| line.starts_with("COPY ") && !line.contains("--from="))
        .collect();
    assert!(copies.len() >= 5, "{copies:?}");
    for line in copies {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            assert!(root().join(source).exists(), "{line}: {source} is missing");
        }
    }
    let ignored = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    assert!(ignored.lines().any(|line| line.trim() == "target"));
}

#[test]
fn the_image_runs_unprivileged_with_a_health_check() {
    let lines = dockerfile();
    let last_user = lines
        .iter()
        .rev()
        .find_map(|line| line.strip_prefix("USER "))
        .expect("a USER");
    assert_ne!(last_user.trim(), "root");
    let health = lines
        .iter()
        .find(|line| line.starts_with("HEALTHCHECK "))
        .expect("a HEALTHCHECK");
    assert!(health.contains("/health/ready"), "{health}");
    let read = variables_read();
    for line in lines.iter().filter(|line| line.starts_with("ENV ")) {
        for pair in line.trim_start_matches("ENV ").split_whitespace() {
            let name = pair.split('=').next().unwrap();
            assert!(
                read.contains(name),
                "the image sets {name}, which nothing reads"
            );
        }
    }
}

#[test]
fn the_compose_file_parses_and_sets_only_variables_the_server_reads() {
    let text = std::fs::read_to_string(root().join("docker/compose.yaml")).unwrap();
    let documents = YamlLoader::load_from_str(&text).expect("compose.yaml is YAML");
    let compose = &documents[0];
    let services = &compose["services"];
    let server = &services["server"];
    assert_eq!(
        server["build"]["dockerfile"].as_str(),
        Some("docker/Dockerfile")
    );
    assert!(
        root()
            .join("docker")
            .join(server["build"]["context"].as_str().unwrap())
            .join("docker/Dockerfile")
            .exists()
    );
    assert_eq!(
        services["db"]["image"].as_str(),
        Some("postgres:16"),
        "PostgreSQL 16"
    );
    assert_eq!(
        server["depends_on"]["db"]["condition"].as_str(),
        Some("service_healthy")
    );
    let Yaml::Hash(environment) = &server["environment"] else {
        panic!("server.environment is a map");
    };
    let read = variables_read();
    for name in environment.keys() {
        let name = name.as_str().unwrap();
        assert!(
            read.contains(name),
            "compose sets {name}, which the server does not read"
        );
    }
    let url = environment[&Yaml::String("DATABASE_URL".into())]
        .as_str()
        .unwrap();
    let db = &services["db"]["environment"];
    for part in ["POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"] {
        assert!(
            url.contains(db[part].as_str().unwrap()),
            "{url} uses {part}"
        );
    }
    // The token key comes from a secret the server reads as a file.
    let key_file = environment[&Yaml::String("TOKEN_ROOT_KEY_FILE".into())]
        .as_str()
        .unwrap();
    let secret = key_file.trim_start_matches("/run/secrets/");
    assert!(
        !compose["secrets"][secret]["file"].is_badvalue(),
        "secret {secret}"
    );
    assert!(
        server["secrets"]
            .as_vec()
            .unwrap()
            .iter()
            .any(|s| s.as_str() == Some(secret))
    );
    assert!(
        server["healthcheck"]["test"]
            .as_vec()
            .unwrap()
            .iter()
            .any(|part| part.as_str().is_some_and(|p| p.contains("/health/ready")))
    );
}
