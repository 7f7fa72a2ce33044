//! Process metrics in the Prometheus (OpenMetrics) text format, served at `/metrics`. Names
//! follow OpenTelemetry's semantic conventions where one exists (`http_server_request_duration`,
//! `db_client_connection_*`) and say their unit.
//!
//! The metrics are process-wide, as a Prometheus client's default registry is: every part of
//! the server records into [`metrics()`] without carrying a handle around.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Distinct operation names kept as label values; later ones are counted as `other`, so that
/// clients cannot grow the metrics without bound.
const MAX_OPERATION_NAMES: usize = 200;

/// Labels of a GraphQL request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The operation's name (`anonymous` without one, `other` past the cap).
    pub operation: String,
    /// `ok`, `error` (some errors, some data) or `refused` (no data).
    pub outcome: &'static str,
}

/// Labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The request method.
    pub http_request_method: String,
    /// The route matched.
    pub http_route: String,
    /// The status code answered.
    pub http_response_status_code: u16,
}

/// Label of an operation's duration.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// The operation's name.
    pub operation: String,
}

/// Label of an error code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// `extensions.code`.
    pub code: String,
}

/// Label of a dataloader.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoaderLabel {
    /// The loader's key type.
    pub loader: String,
}

/// Label of a throttle's scope.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabel {
    /// `account` or `address`.
    pub scope: &'static str,
}

/// Label of a limit.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    /// The limit's setting.
    pub limit: String,
}

/// Labels of a lookup in an answer cache.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLookup {
    /// `public` (anonymous answers) or `member` (signed-in answers).
    pub cache: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// Label of an answer cache.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabel {
    cache: &'static str,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// GraphQL requests by operation and outcome.
    pub graphql_requests: Family<OperationLabels, Counter>,
    /// GraphQL request durations by operation.
    pub graphql_duration: Family<OperationLabel, Histogram, fn() -> Histogram>,
    /// Errors answered, by `extensions.code`.
    pub graphql_errors: Family<CodeLabel, Counter>,
    /// HTTP request durations.
    pub http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    /// Keys per dataloader batch, by loader.
    pub loader_batch_size: Family<LoaderLabel, Histogram, fn() -> Histogram>,
    /// Subscriptions open now.
    pub subscriptions_active: Gauge,
    /// WebSocket connections open now.
    pub websocket_connections: Gauge,
    /// Sign-in attempts refused by a throttle (`account` or `address`).
    pub sign_in_throttled: Family<ScopeLabel, Counter>,
    /// Requests refused by a limit, by the limit's name.
    pub refusals: Family<LimitLabel, Counter>,
    /// Lookups in the answer caches, by cache and result.
    pub answer_cache_lookups: Family<CacheLookup, Counter>,
    operation_names: std::sync::Mutex<std::collections::HashSet<String>>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
}

fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 11))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let graphql_requests = Family::<OperationLabels, Counter>::default();
        registry.register(
            "graphql_requests",
            "GraphQL requests by operation name and outcome",
            graphql_requests.clone(),
        );
        let graphql_duration: Family<OperationLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "graphql_request_duration",
            "Time to answer a GraphQL request, by operation name",
            Unit::Seconds,
            graphql_duration.clone(),
        );
        let graphql_errors = Family::<CodeLabel, Counter>::default();
        registry.register(
            "graphql_errors",
            "GraphQL errors answered, by extensions.code",
            graphql_errors.clone(),
        );
        let http_duration: Family<HttpLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_server_request_duration",
            "Duration of HTTP server requests",
            Unit::Seconds,
            http_duration.clone(),
        );
        let loader_batch_size: Family<LoaderLabel, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(batch_histogram);
        registry.register(
            "graphql_dataloader_batch_size",
            "Keys loaded per dataloader batch, by loader",
            loader_batch_size.clone(),
        );
        let subscriptions_active = Gauge::default();
        registry.register(
            "graphql_subscriptions_active",
            "GraphQL subscriptions open now",
            subscriptions_active.clone(),
        );
        let websocket_connections = Gauge::default();
        registry.register(
            "graphql_websocket_connections_active",
            "WebSocket connections for subscriptions open now",
            websocket_connections.clone(),
        );
        let sign_in_throttled = Family::<ScopeLabel, Counter>::default();
        registry.register(
            "auth_sign_in_throttled",
            "Sign-in attempts refused by a throttle, per account or per client address",
            sign_in_throttled.clone(),
        );
        let refusals = Family::<LimitLabel, Counter>::default();
        registry.register(
            "limits_refused",
            "Requests refused by a limit, by the limit's setting",
            refusals.clone(),
        );
        let answer_cache_lookups = Family::<CacheLookup, Counter>::default();
        registry.register(
            "answer_cache_lookups",
            "Queries looked up in the answer caches (public, member): answered from memory \
             (hit) or worked out (miss)",
            answer_cache_lookups.clone(),
        );
        Self {
            registry,
            graphql_requests,
            graphql_duration,
            graphql_errors,
            http_duration,
            loader_batch_size,
            subscriptions_active,
            websocket_connections,
            sign_in_throttled,
            refusals,
            answer_cache_lookups,
            operation_names: std::sync::Mutex::default(),
        }
    }

    /// The label value for an operation name: the name while fewer than
    /// `MAX_OPERATION_NAMES` are known, `other` beyond.
    pub fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return "anonymous".into();
        };
        let name: String = name.chars().take(64).collect();
        let Ok(mut known) = self.operation_names.lock() else {
            return "other".into();
        };
        if known.contains(&name) || known.len() < MAX_OPERATION_NAMES {
            known.insert(name.clone());
            name
        } else {
            "other".into()
        }
    }

    /// Records one GraphQL request.
    pub fn graphql_request(
        &self,
        operation: &str,
        outcome: &'static str,
        elapsed: Duration,
        codes: &[&str],
    ) {
        self.graphql_requests
            .get_or_create(&OperationLabels {
                operation: operation.to_owned(),
                outcome,
            })
            .inc();
        self.graphql_duration
            .get_or_create(&OperationLabel {
                operation: operation.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
        for code in codes {
            self.graphql_errors
                .get_or_create(&CodeLabel {
                    code: (*code).to_owned(),
                })
                .inc();
        }
    }

    /// Counts a request refused by `limit`.
    pub fn refused(&self, limit: &str) {
        self.refusals
            .get_or_create(&LimitLabel {
                limit: limit.to_owned(),
            })
            .inc();
    }

    /// Counts a lookup in the answer cache `cache`.
    pub fn answer_cache_lookup(&self, cache: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.answer_cache_lookups
            .get_or_create(&CacheLookup { cache, result })
            .inc();
    }

    /// Counts a sign-in attempt refused by the throttle of `scope`.
    pub fn throttled(&self, scope: &'static str) {
        self.sign_in_throttled
            .get_or_create(&ScopeLabel { scope })
            .inc();
    }

    /// The metrics in the OpenMetrics text format, followed by `extra` (metrics of the
    /// caller's own, such as its connection pool's).
    pub fn encode(&self, extra: &Registry) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, &self.registry)?;
        prometheus_client::encoding::text::encode_registry(&mut text, extra)?;
        prometheus_client::encoding::text::encode_eof(&mut text)?;
        Ok(text)
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The state of a database pool as metrics (OpenTelemetry's `db.client.connection.*`).
pub fn pool_registry(pool: &crate::db::Pool) -> Registry {
    let state = pool.state();
    let mut registry = Registry::default();
    let connections = Family::<ConnectionState, Gauge>::default();
    let idle = i64::from(state.idle_connections);
    let used = i64::from(state.connections) - idle;
    connections
        .get_or_create(&ConnectionState { state: "idle" })
        .set(idle);
    connections
        .get_or_create(&ConnectionState { state: "used" })
        .set(used);
    registry.register(
        "db_client_connection_count",
        "Database connections open, by state",
        connections,
    );
    let statistics = &state.statistics;
    let gets = Family::<GetResult, Counter>::default();
    for (result, count) in [
        ("direct", statistics.get_direct),
        ("waited", statistics.get_waited),
        ("timed_out", statistics.get_timed_out),
    ] {
        gets.get_or_create(&GetResult { result }).inc_by(count);
    }
    registry.register(
        "db_client_connection_gets",
        "Connections asked of the pool: given at once, after a wait, or timed out",
        gets,
    );
    let waited = Counter::<f64, std::sync::atomic::AtomicU64>::default();
    waited.inc_by(statistics.get_wait_time.as_secs_f64());
    registry.register_with_unit(
        "db_client_connection_wait_time",
        "Total time spent waiting for a database connection",
        Unit::Seconds,
        waited,
    );
    registry
}

/// Adds the answers each answer cache keeps now, and their bytes, to `registry`: `caches`
/// gives each cache's name, entries and bytes.
pub fn register_answer_caches(registry: &mut Registry, caches: &[(&'static str, usize, usize)]) {
    let entries = Family::<CacheLabel, Gauge>::default();
    let bytes = Family::<CacheLabel, Gauge>::default();
    for &(cache, kept, weight) in caches {
        entries
            .get_or_create(&CacheLabel { cache })
            .set(i64::try_from(kept).unwrap_or(i64::MAX));
        bytes
            .get_or_create(&CacheLabel { cache })
            .set(i64::try_from(weight).unwrap_or(i64::MAX));
    }
    registry.register(
        "answer_cache_entries",
        "Answers kept in memory now, by cache",
        entries,
    );
    registry.register_with_unit(
        "answer_cache_size",
        "Bytes of JSON of the answers kept in memory now, by cache",
        Unit::Bytes,
        bytes,
    );
}

/// Label of a connection state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionState {
    state: &'static str,
}

/// Label of a pool checkout's result.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GetResult {
    result: &'static str,
}
