//! GraphiQL, served from the binary: the page and its vendored scripts, styles and workers
//! (`assets/graphiql/`), so that it works with no network beyond this server. The page comes
//! with the frontend's operations (`operations/`) as example tabs.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The page template; `{{CONFIG}}` becomes the JSON configuration.
const PAGE: &str = include_str!("../../assets/graphiql/index.html");

/// What the page may load and connect to: this server only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; font-src data:; img-src 'self' data:; worker-src 'self'; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The vendored files, by the name they are served under.
const ASSETS: [(&str, &str, &[u8]); 5] = [
    (
        "graphiql.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/vendor/graphiql.js"),
    ),
    (
        "graphiql.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/vendor/graphiql.css"),
    ),
    (
        "editor.worker.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/vendor/editor.worker.js"),
    ),
    (
        "json.worker.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/vendor/json.worker.js"),
    ),
    (
        "graphql.worker.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/vendor/graphql.worker.js"),
    ),
];

/// The frontend's operations, shown as example tabs.
pub const EXAMPLES: [(&str, &str); 10] = [
    ("Start-up", include_str!("../../operations/startup.graphql")),
    ("Home", include_str!("../../operations/home.graphql")),
    ("Records", include_str!("../../operations/records.graphql")),
    (
        "Data entry",
        include_str!("../../operations/data_entry.graphql"),
    ),
    (
        "Metric configuration",
        include_str!("../../operations/metric_configuration.graphql"),
    ),
    (
        "Data visualisation",
        include_str!("../../operations/data_visualisation.graphql"),
    ),
    (
        "Team and settings",
        include_str!("../../operations/team_and_settings.graphql"),
    ),
    ("Uploads", include_str!("../../operations/uploads.graphql")),
    (
        "Upload review",
        include_str!("../../operations/upload_review.graphql"),
    ),
    (
        "Public dashboard",
        include_str!("../../operations/public_dashboard.graphql"),
    ),
];

/// Variables for an example: each of its variables, null, for the user to fill in.
fn variables_of(document: &str) -> serde_json::Value {
    let header = document
        .lines()
        .find(|line| line.trim_start().starts_with(['q', 'm', 's']) && line.contains('('));
    let mut variables = serde_json::Map::new();
    if let Some(header) = header {
        for part in header.split('$').skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                variables.insert(name, serde_json::Value::Null);
            }
        }
    }
    serde_json::Value::Object(variables)
}

/// The page, configured.
static RENDERED: LazyLock<String> = LazyLock::new(|| {
    let examples: Vec<serde_json::Value> = EXAMPLES
        .iter()
        .map(|(name, query)| {
            let variables = serde_json::to_string_pretty(&variables_of(query)).unwrap_or_default();
            json!({ "name": name, "query": query, "variables": variables })
        })
        .collect();
    let config = json!({
        "endpoint": "/graphql",
        "subscriptionEndpoint": "/graphql/ws",
        "examples": examples,
    });
    // Inside a script element: nothing may end it or open a comment.
    let config = config
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    PAGE.replace("{{CONFIG}}", &config)
});

/// `GET /graphiql`.
pub fn page() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        RENDERED.as_str(),
    )
        .into_response()
}

/// Entity tags of the assets: their SHA-256, computed once.
static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|(_, _, bytes)| {
            let digest = Sha256::digest(bytes);
            format!("\"{}\"", crate::auth::secrets::hex(&digest[..16]))
        })
        .collect()
});

/// `GET /graphiql/assets/{file}`: a vendored file, revalidated by its entity tag.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|(name, _, _)| *name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (_, content_type, bytes) = ASSETS[index];
    let tag = &TAGS[index];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|candidate| candidate.trim() == tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            bytes,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(tag) {
        headers.insert(header::ETAG, tag);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600, must-revalidate"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_an_example() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/operations");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter(|entry| {
                entry
                    .as_ref()
                    .is_ok_and(|entry| entry.path().extension().is_some_and(|e| e == "graphql"))
            })
            .count();
        assert_eq!(files, EXAMPLES.len());
    }

    #[test]
    fn examples_come_with_their_variables() {
        let variables = variables_of(
            "# Records\nquery Records($agencyId: ID!, $filter: ReportFilterInput, $first: Int = 20) {\n",
        );
        assert_eq!(
            variables,
            json!({ "agencyId": null, "filter": null, "first": null })
        );
    }

    #[test]
    fn the_page_names_no_other_origin_and_closes_its_config_safely() {
        let page = RENDERED.as_str();
        assert!(!page.contains("{{CONFIG}}"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        let config = page
            .split("id=\"graphiql-config\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(config).unwrap();
        assert_eq!(parsed["examples"].as_array().unwrap().len(), EXAMPLES.len());
    }
}
