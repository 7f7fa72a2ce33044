//! Cross-origin requests: which web origins may call the API from a browser. None by default
//! (same-origin pages such as GraphiQL need nothing); credentials are never allowed unless
//! configured, as tokens travel in the `Authorization` header rather than in cookies.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use clap::Args;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// CORS settings.
#[derive(Debug, Clone, Default, Args)]
pub struct CorsSettings {
    /// Origins allowed to call the API from a browser, comma-separated
    /// (`https://dashboard.example.org`), or `*` for any. None by default.
    #[arg(
        long = "cors-allowed-origins",
        env = "CORS_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Let browsers send credentials (cookies, TLS client certificates) cross-origin. Not
    /// needed for bearer tokens; never with `*`.
    #[arg(long = "cors-allow-credentials", env = "CORS_ALLOW_CREDENTIALS")]
    pub allow_credentials: bool,
}

impl CorsSettings {
    /// The layer answering preflights and adding the CORS headers; none when no origin is
    /// allowed.
    pub fn layer(&self) -> anyhow::Result<Option<CorsLayer>> {
        let origins: Vec<&str> = self
            .allowed_origins
            .iter()
            .map(|origin| origin.trim())
            .filter(|origin| !origin.is_empty())
            .collect();
        if origins.is_empty() {
            return Ok(None);
        }
        let allow_origin = if origins == ["*"] {
            anyhow::ensure!(
                !self.allow_credentials,
                "CORS_ALLOW_CREDENTIALS cannot be used with CORS_ALLOWED_ORIGINS=*"
            );
            AllowOrigin::any()
        } else {
            let parsed = origins
                .iter()
                .map(|origin| {
                    HeaderValue::from_str(origin.trim_end_matches('/'))
                        .map_err(|_| anyhow::anyhow!("{origin:?} is not a valid CORS origin"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            AllowOrigin::list(parsed)
        };
        Ok(Some(
            CorsLayer::new()
                .allow_origin(allow_origin)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    header::ACCEPT,
                    HeaderName::from_static("apollo-require-preflight"),
                    HeaderName::from_static("x-apollo-operation-name"),
                    HeaderName::from_static("x-request-id"),
                ])
                .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
                .allow_credentials(self.allow_credentials)
                .max_age(Duration::from_secs(600)),
        ))
    }
}
