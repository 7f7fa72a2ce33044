//! Every limit the server puts on what comes from outside, in one place: each is a setting
//! (a flag and an environment variable) with a safe default, documented in the README's
//! security section. The GraphQL layer enforces the limits on documents and arguments
//! ([`crate::graphql::cost`]), the HTTP layer those on requests, connections and rates
//! ([`crate::http`]), and sign-in its throttles ([`crate::auth::throttle`]).
//!
//! Refusals are logged at `warn` with the target `justice_counts::limits` and the limit's
//! name, so that they can be counted.

use std::time::Duration;

use chrono::NaiveDate;
use clap::{Args, ValueEnum};

/// The log target of refusals.
pub const LOG_TARGET: &str = "justice_counts::limits";

/// Earliest date the API accepts or returns.
pub const MIN_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(date) => date,
    None => panic!("a valid date"),
};

/// Latest date the API accepts or returns (the day after a period may reach it).
pub const MAX_DATE: NaiveDate = match NaiveDate::from_ymd_opt(2200, 1, 1) {
    Some(date) => date,
    None => panic!("a valid date"),
};

/// Largest value a metric may take (a quadrillion): any count or amount an agency reports
/// is far below it, and sums and averages of many such values stay exact enough and finite.
pub const MAX_VALUE: f64 = 1e15;

/// Sign-in and session renewal mutations allowed in one request.
pub const SIGN_INS_PER_REQUEST: usize = 1;

/// Seconds a client is told to wait (`Retry-After`) when the database is unavailable or a
/// request ran out of time.
pub const RETRY_AFTER_UNAVAILABLE: u64 = 5;

/// Who may run introspection queries (`__schema`, `__type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Introspection {
    /// Everyone, as for local development and internal tools.
    #[default]
    On,
    /// Signed-in users only.
    Authenticated,
    /// Nobody.
    Off,
}

/// The limits, as configured.
#[derive(Debug, Clone, Args)]
pub struct Limits {
    /// Largest request body accepted, in bytes (HTTP 413 beyond it).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,

    /// Largest spreadsheet upload accepted (a multipart request), in bytes (HTTP 413 beyond).
    #[arg(long, env = "MAX_UPLOAD_BYTES", default_value_t = 100 << 20)]
    pub max_upload_bytes: usize,

    /// Multipart requests (file uploads) whose bodies are read at once (HTTP 503 beyond).
    #[arg(long, env = "MAX_UPLOADS_IN_FLIGHT", default_value_t = 4)]
    pub max_uploads_in_flight: usize,

    /// Database connections one request's resolvers hold at once besides the one its loaders
    /// share; more wait for one of them to be given back.
    #[arg(long, env = "MAX_REQUEST_CONNECTIONS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_request_connections: u16,

    /// Time to receive the body of a multipart request (HTTP 408 beyond).
    #[arg(long, env = "UPLOAD_TIMEOUT", default_value = "10m", value_parser = positive_duration)]
    pub upload_timeout: Duration,

    /// Most lexical tokens in a GraphQL document, counted before it is parsed.
    #[arg(long, env = "MAX_QUERY_TOKENS", default_value_t = 5_000)]
    pub max_query_tokens: usize,

    /// Deepest nesting of selection sets (fragments expanded). Brackets in the text may nest
    /// twice as deep, plus eight.
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 16)]
    pub max_query_depth: usize,

    /// Most fields selected, fragments expanded, `__typename` and introspection included.
    #[arg(long, env = "MAX_QUERY_FIELDS", default_value_t = 1_500)]
    pub max_query_fields: usize,

    /// Most aliased fields in a document, fragments expanded.
    #[arg(long, env = "MAX_QUERY_ALIASES", default_value_t = 30)]
    pub max_query_aliases: usize,

    /// Most root fields in one operation, fragments expanded.
    #[arg(long, env = "MAX_ROOT_FIELDS", default_value_t = 20)]
    pub max_root_fields: usize,

    /// Most directives on one field, fragment or operation.
    #[arg(long, env = "MAX_DIRECTIVES_PER_LOCATION", default_value_t = 4)]
    pub max_directives_per_location: usize,

    /// Highest estimated cost of an operation: each field costs one, and a list's selection
    /// counts once per item expected (`first`/`last`, the default page size, or
    /// `LIST_SIZE_ESTIMATE`).
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = 50_000)]
    pub max_query_complexity: u64,

    /// Items assumed in a list that is not paged, for the cost estimate.
    #[arg(long, env = "LIST_SIZE_ESTIMATE", default_value_t = 10)]
    pub list_size_estimate: u64,

    /// Most items in one list given as an argument or variable.
    #[arg(long, env = "MAX_LIST_LENGTH", default_value_t = 2_000)]
    pub max_list_length: usize,

    /// Longest string given as an argument or variable, in characters.
    #[arg(long, env = "MAX_STRING_LENGTH", default_value_t = 10_000)]
    pub max_string_length: usize,

    /// Longest time series, in years (months and reporting years alike).
    #[arg(long, env = "MAX_SERIES_YEARS", default_value_t = 30)]
    pub max_series_years: u32,

    /// Who may introspect the schema: `on`, `authenticated` or `off` (advised in production).
    #[arg(long, env = "INTROSPECTION", value_enum, default_value_t = Introspection::On)]
    pub introspection: Introspection,

    /// Longest a request may run before it is answered with 503 (90s, 30s, 500ms).
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub request_timeout: Duration,

    /// Longest one SQL statement may run (PostgreSQL's `statement_timeout`).
    #[arg(long, env = "STATEMENT_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub statement_timeout: Duration,

    /// Longest a request waits for a database connection before it is answered with 503.
    #[arg(long, env = "DATABASE_POOL_WAIT", default_value = "2s", value_parser = positive_duration)]
    pub pool_wait: Duration,

    /// Requests a client address may make in a burst (0: no general rate limit).
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 300)]
    pub rate_limit_burst: u32,

    /// Requests per second a client address, and a signed-in user, may sustain.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = 100)]
    pub rate_limit_per_second: u32,

    /// Sign-in attempts one account may take in a burst.
    #[arg(long, env = "SIGN_IN_ACCOUNT_BURST", default_value_t = 5)]
    pub sign_in_account_burst: u32,

    /// Sign-in attempts per minute one account regains after a burst.
    #[arg(long, env = "SIGN_IN_ACCOUNT_PER_MINUTE", default_value_t = 2)]
    pub sign_in_account_per_minute: u32,

    /// Sign-in and renewal attempts one client address may make in a burst.
    #[arg(long, env = "SIGN_IN_ADDRESS_BURST", default_value_t = 20)]
    pub sign_in_address_burst: u32,

    /// Sign-in and renewal attempts per minute one client address regains after a burst.
    #[arg(long, env = "SIGN_IN_ADDRESS_PER_MINUTE", default_value_t = 10)]
    pub sign_in_address_per_minute: u32,

    /// Passwords hashed at once (0: one per CPU core); more sign-ins wait their turn.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,

    /// Subscriptions one WebSocket connection may hold open.
    #[arg(long, env = "MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 10)]
    pub max_subscriptions_per_connection: usize,

    /// WebSocket connections one user (or, before sign-in, one client address) may hold open.
    #[arg(long, env = "MAX_CONNECTIONS_PER_USER", default_value_t = 8)]
    pub max_connections_per_user: usize,

    /// How long a WebSocket connection may wait before its `connection_init`.
    #[arg(long, env = "WS_INIT_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub ws_init_timeout: Duration,

    /// Header that carries the client address set by a trusted reverse proxy, such as
    /// `X-Forwarded-For`. Unset: the address of the TCP peer.
    #[arg(long, env = "CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// Reverse proxies in front of the server that append to `CLIENT_IP_HEADER`: the client
    /// address is the entry this many places from the right.
    #[arg(long, env = "TRUSTED_PROXY_HOPS", default_value_t = 1)]
    pub trusted_proxy_hops: usize,

    /// A secret that `GET /metrics` then requires as `Authorization: Bearer <secret>` (unset:
    /// the metrics are open to whoever reaches the server).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// A JSON manifest of allowed operations (`{"<sha256 hex>": "<document>"}`): when set,
    /// only these documents run.
    #[arg(long, env = "TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<std::path::PathBuf>,

    /// Documents remembered for automatic persisted queries (0: turned off).
    #[arg(long, env = "PERSISTED_QUERIES_CACHE", default_value_t = 1_000)]
    pub persisted_queries_cache: usize,

    /// Bytes those documents may take in all; the least recently used go beyond that.
    #[arg(long, env = "PERSISTED_QUERIES_BYTES", default_value_t = 8 << 20)]
    pub persisted_queries_bytes: usize,

    /// Parsed documents kept in memory, so that a document sent again is not parsed again
    /// (0: every request is parsed). Only documents of up to 16 KiB are kept, so the cache
    /// holds at most a few megabytes.
    #[arg(long, env = "PARSED_DOCUMENTS", default_value_t = 100)]
    pub parsed_documents: usize,

    /// Feeds (CSV and JSON Lines downloads) streamed at once, each on a database connection
    /// of its own; more are answered with 503.
    #[arg(long, env = "MAX_FEED_STREAMS", default_value_t = 4)]
    pub max_feed_streams: usize,

    /// Longest a feed may take to stream (PostgreSQL's `statement_timeout` on its
    /// connection): a client that stops reading lets the connection go then.
    #[arg(long, env = "FEED_TIMEOUT", default_value = "10m", value_parser = positive_duration)]
    pub feed_timeout: Duration,

    /// How long a feed waits for its client to take the next part of the body before it ends
    /// (and gives its place back).
    #[arg(long, env = "FEED_IDLE_TIMEOUT", default_value = "30s", value_parser = positive_duration)]
    pub feed_idle_timeout: Duration,

    /// Public feeds one client address downloads at once.
    #[arg(long, env = "MAX_FEEDS_PER_ADDRESS", default_value_t = 2)]
    pub max_feeds_per_address: usize,

    /// How long caches (browsers, CDNs) may keep a public feed (`Cache-Control: max-age`).
    #[arg(long, env = "FEED_MAX_AGE", default_value = "5m", value_parser = parse_duration)]
    pub feed_max_age: Duration,

    /// Access tokens whose verified contents and credentials are kept in memory (0: every
    /// request reads them from the database).
    #[arg(long, env = "AUTH_CACHE_TOKENS", default_value_t = 10_000)]
    pub auth_cache_tokens: usize,

    /// Bytes of token those kept tokens may take in all (each counted by its length); the
    /// least recently used go beyond that.
    #[arg(long, env = "AUTH_CACHE_BYTES", default_value_t = 16 << 20)]
    pub auth_cache_bytes: usize,

    /// Longest access token accepted, in bytes: a longer one is refused before it is read.
    #[arg(long, env = "MAX_TOKEN_BYTES", default_value_t = 8_192)]
    pub max_token_bytes: usize,

    /// Anonymous query answers kept in memory until public data changes (0: none).
    #[arg(long, env = "PUBLIC_CACHE_ENTRIES", default_value_t = 1_000)]
    pub public_cache_entries: usize,

    /// Bytes of JSON the kept anonymous answers may take in all; the least recently used
    /// answers go beyond that.
    #[arg(long, env = "PUBLIC_CACHE_BYTES", default_value_t = 16 << 20)]
    pub public_cache_bytes: usize,

    /// Signed-in users' query answers kept in memory until anything they read changes (0:
    /// none). Only read from the primary: with read replicas, none are kept.
    #[arg(long, env = "MEMBER_CACHE_ENTRIES", default_value_t = 2_000)]
    pub member_cache_entries: usize,

    /// Bytes of JSON the kept signed-in answers may take in all; the least recently used
    /// answers go beyond that.
    #[arg(long, env = "MEMBER_CACHE_BYTES", default_value_t = 16 << 20)]
    pub member_cache_bytes: usize,

    /// How long browsers and CDNs may keep an anonymous answer to a GET query
    /// (`Cache-Control: public, max-age`; 0: `no-cache`).
    #[arg(long, env = "PUBLIC_MAX_AGE", default_value = "60s", value_parser = parse_duration)]
    pub public_max_age: Duration,

    /// Most changes in one page of the GraphQL change stream (`datapointChanges`).
    #[arg(long, env = "MAX_CHANGES_PAGE", default_value_t = 1_000)]
    pub max_changes_page: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_upload_bytes: 100 << 20,
            max_uploads_in_flight: 4,
            max_request_connections: 4,
            upload_timeout: Duration::from_secs(600),
            max_query_tokens: 5_000,
            max_query_depth: 16,
            max_query_fields: 1_500,
            max_query_aliases: 30,
            max_root_fields: 20,
            max_directives_per_location: 4,
            max_query_complexity: 50_000,
            list_size_estimate: 10,
            max_list_length: 2_000,
            max_string_length: 10_000,
            max_series_years: 30,
            introspection: Introspection::On,
            request_timeout: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(10),
            pool_wait: Duration::from_secs(2),
            rate_limit_burst: 300,
            rate_limit_per_second: 100,
            sign_in_account_burst: 5,
            sign_in_account_per_minute: 2,
            sign_in_address_burst: 20,
            sign_in_address_per_minute: 10,
            password_hash_concurrency: 0,
            max_subscriptions_per_connection: 10,
            max_connections_per_user: 8,
            ws_init_timeout: Duration::from_secs(10),
            client_ip_header: None,
            trusted_proxy_hops: 1,
            trusted_documents: None,
            metrics_token: None,
            persisted_queries_cache: 1_000,
            persisted_queries_bytes: 8 << 20,
            parsed_documents: 100,
            max_feed_streams: 4,
            feed_timeout: Duration::from_secs(600),
            feed_idle_timeout: Duration::from_secs(30),
            max_feeds_per_address: 2,
            feed_max_age: Duration::from_secs(300),
            max_changes_page: 1_000,
            auth_cache_tokens: 10_000,
            auth_cache_bytes: 16 << 20,
            max_token_bytes: 8_192,
            public_cache_entries: 1_000,
            public_cache_bytes: 16 << 20,
            member_cache_entries: 2_000,
            member_cache_bytes: 16 << 20,
            public_max_age: Duration::from_secs(60),
        }
    }
}

impl Limits {
    /// Limits so high that nothing is refused: the baseline of the benchmark that measures
    /// what the limits cost.
    pub fn unlimited() -> Self {
        Self {
            max_body_bytes: usize::MAX,
            max_query_tokens: usize::MAX,
            max_query_depth: usize::MAX / 4,
            max_query_fields: usize::MAX,
            max_query_aliases: usize::MAX,
            max_root_fields: usize::MAX,
            max_directives_per_location: usize::MAX,
            max_query_complexity: u64::MAX,
            max_list_length: usize::MAX,
            max_string_length: usize::MAX,
            rate_limit_burst: 0,
            ..Self::default()
        }
    }

    /// Passwords hashed at once: the setting, or the number of cores.
    pub fn hash_concurrency(&self) -> usize {
        match self.password_hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::auth::tokens::parse_duration(text)
}

/// A time limit: 1 ms or more (zero would refuse everything).
fn positive_duration(text: &str) -> Result<Duration, String> {
    crate::auth::tokens::parse_duration_of_at_least(text, Duration::from_millis(1))
}

/// Logs a refusal by limit name, and counts it in the metrics.
pub fn log_refusal(limit: &str, detail: &str) {
    tracing::warn!(target: LOG_TARGET, limit, detail, "request refused by a limit");
    crate::metrics::metrics().refused(limit);
}

/// A setting that is a secret: never shown in logs or debugging output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Whether `presented` is this secret (compared by digest, so that the time taken says
    /// nothing of the secret).
    pub fn matches(&self, presented: &str) -> bool {
        crate::auth::secrets::digest(presented) == crate::auth::secrets::digest(&self.0)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(…)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().len() < 16 {
            return Err("a secret has at least 16 characters".into());
        }
        Ok(Self(text.trim().to_owned()))
    }
}
