//! Cross-site request forgery prevention, as Apollo Server does it.
//!
//! A browser sends a cross-site GET, or a cross-site POST whose content type is one of the
//! three "simple" ones (`text/plain`, `application/x-www-form-urlencoded`,
//! `multipart/form-data`), without asking the server first (no CORS preflight). Such a
//! request is refused unless it carries a header that only a preflighted request can carry:
//! a non-empty `X-Apollo-Operation-Name` or `Apollo-Require-Preflight`. Any other content
//! type, `application/json` in particular, already forces a preflight.

use axum::http::{HeaderMap, header};

/// The headers that prove a request was preflighted (or sent by a non-browser client).
const PREFLIGHT_HEADERS: [&str; 2] = ["x-apollo-operation-name", "apollo-require-preflight"];

/// Content types a browser may send cross-site without a preflight.
const SIMPLE_TYPES: [&str; 3] = [
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// The message of a refusal.
pub const MESSAGE: &str = "This request has been blocked as a possible cross-site request \
    forgery: send it with `Content-Type: application/json`, or with a non-empty \
    `X-Apollo-Operation-Name` or `Apollo-Require-Preflight` header.";

/// Whether a browser could have sent this request cross-site without a preflight, and it
/// carries nothing that proves otherwise.
pub fn is_unsafe(headers: &HeaderMap) -> bool {
    let preflighted = PREFLIGHT_HEADERS.iter().any(|name| {
        headers
            .get(*name)
            .is_some_and(|value| !value.as_bytes().trim_ascii().is_empty())
    });
    if preflighted {
        return false;
    }
    match headers.get(header::CONTENT_TYPE) {
        // GET requests, and POSTs without a content type.
        None => true,
        Some(value) => {
            // A browser sends some types that are not ASCII without a preflight
            // (`text/plain; a=é`): read the value byte by byte, not as a string.
            let media_type = String::from_utf8_lossy(value.as_bytes())
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            SIMPLE_TYPES.contains(&media_type.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    header::HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn simple_requests_need_a_preflight_header() {
        assert!(is_unsafe(&headers(&[])));
        assert!(is_unsafe(&headers(&[("content-type", "text/plain")])));
        assert!(is_unsafe(&headers(&[(
            "content-type",
            "multipart/form-data; boundary=x"
        )])));
        assert!(is_unsafe(&headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("apollo-require-preflight", " "),
        ])));
        assert!(!is_unsafe(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_unsafe(&headers(&[
            ("content-type", "text/plain"),
            ("apollo-require-preflight", "true"),
        ])));
        assert!(!is_unsafe(&headers(&[("x-apollo-operation-name", "Home")])));
        let mut not_ascii = HeaderMap::new();
        not_ascii.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(b"text/plain; a=\xc3\xa9").unwrap(),
        );
        assert!(
            is_unsafe(&not_ascii),
            "a simple type with a parameter not in ASCII"
        );
    }
}
