//! HTTP wiring: the GraphQL endpoint, subscriptions over WebSocket, GraphiQL, health checks
//! and metrics; around them request ids, the access log, HTTP metrics and CORS.

pub mod answer_cache;
pub mod client;
pub mod cors;
pub mod csrf;
pub mod documents;
pub mod feeds;
pub mod files;
pub mod graphiql;
pub mod graphql;
pub mod multipart;
pub mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use self::client::RequestRates;
use self::cors::CorsSettings;
use self::documents::Documents;
use self::subscriptions::OpenSockets;
use crate::auth::AuthConfig;
use crate::auth::throttle::ClientAddress;
use crate::db::Pool;
use crate::events::EventBus;
use crate::graphql::{AppSchema, Executor};
use crate::limits::Limits;
use crate::metrics::{HttpLabels, metrics, pool_registry, register_answer_caches};

/// Subscription connections that may read their credentials from the database at once.
const CREDENTIAL_CHECKS: usize = 2;

/// The header carrying a request's id, taken from the client or made here.
pub const REQUEST_ID: &str = "x-request-id";

/// What the router serves with.
pub struct Services {
    /// The schema, and how requests run on it.
    pub executor: Executor,
    /// The database pool (authentication and health checks).
    pub pool: Pool,
    /// Token settings, password hasher and sign-in throttles.
    pub auth: Arc<AuthConfig>,
    /// The limits.
    pub limits: Arc<Limits>,
    /// Report changes and revocations, for subscriptions.
    pub events: EventBus,
    /// Which web origins may call the API.
    pub cors: CorsSettings,
    /// The metric catalogue (templates).
    pub catalogue: Arc<crate::catalogue::Catalogue>,
    /// Where feeds open their own connections.
    pub database_url: String,
    /// Streaming read replicas for queries (none by default).
    pub replicas: Arc<crate::db::replicas::Replicas>,
}

impl Services {
    /// The schema built over `data`, and the same services for the router; feeds connect to
    /// `database_url`.
    pub fn over(data: crate::graphql::SchemaData, database_url: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            pool: data.pool.clone(),
            auth: data.auth.clone(),
            limits: data.limits.clone(),
            events: data.events.clone(),
            catalogue: data.catalogue.clone(),
            executor: crate::graphql::build_executor(data),
            cors: CorsSettings::default(),
            replicas: Arc::default(),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
struct AppState {
    schema: AppSchema,
    executor: Executor,
    pool: Pool,
    auth: Arc<AuthConfig>,
    limits: Arc<Limits>,
    rates: Arc<RequestRates>,
    documents: Arc<Documents>,
    sockets: Arc<OpenSockets>,
    events: EventBus,
    catalogue: Arc<crate::catalogue::Catalogue>,
    database_url: Arc<str>,
    feed_streams: Arc<tokio::sync::Semaphore>,
    /// Subscription connections checking their user's credentials at once.
    credential_checks: Arc<tokio::sync::Semaphore>,
    /// Multipart bodies being received.
    uploads_in_flight: Arc<tokio::sync::Semaphore>,
    /// Public feeds being downloaded, by client address.
    feed_clients: Arc<feeds::FeedClients>,
    /// Anonymous answers kept until public data changes.
    public: Arc<answer_cache::AnswerCache>,
    /// Signed-in users' answers kept until anything they read changes.
    members: Arc<answer_cache::AnswerCache>,
    replicas: Arc<crate::db::replicas::Replicas>,
}

/// The router: `POST /graphql` (and `GET /graphql?query=…`; GraphiQL without a query),
/// `GET /graphql/ws` for subscriptions, GraphiQL at `GET /graphiql`, and `GET /health`.
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so that rates are kept
/// per client address.
pub fn router(services: Services) -> anyhow::Result<Router> {
    let Services {
        executor,
        pool,
        auth,
        limits,
        events,
        cors,
        catalogue,
        database_url,
        replicas,
    } = services;
    let documents = Documents::load(
        limits.trusted_documents.as_deref(),
        limits.persisted_queries_cache,
        limits.persisted_queries_bytes,
    )?;
    let state = AppState {
        schema: executor.schema().clone(),
        executor,
        pool,
        rates: Arc::new(RequestRates::new(&limits)),
        documents: Arc::new(documents),
        sockets: Arc::default(),
        auth,
        feed_streams: Arc::new(tokio::sync::Semaphore::new(limits.max_feed_streams)),
        credential_checks: Arc::new(tokio::sync::Semaphore::new(CREDENTIAL_CHECKS)),
        uploads_in_flight: Arc::new(tokio::sync::Semaphore::new(limits.max_uploads_in_flight)),
        feed_clients: Arc::default(),
        public: Arc::new(answer_cache::AnswerCache::new(
            limits.public_cache_entries,
            limits.public_cache_bytes,
        )),
        members: Arc::new(answer_cache::AnswerCache::new(
            limits.member_cache_entries,
            limits.member_cache_bytes,
        )),
        limits,
        events,
        catalogue,
        database_url: database_url.into(),
        replicas,
    };
    state
        .public
        .follow(&state.events, vec![state.events.public_data_changes()]);
    // Also after the credential cache forgot anything, so that no answer worked out with
    // credentials it has just dropped is kept.
    state.members.follow(
        &state.events,
        vec![
            state.events.member_data_changes(),
            state.auth.credentials.forgettings(),
        ],
    );
    state.replicas.watch();
    forget_idle_clients(&state);
    let request_id = HeaderName::from_static(REQUEST_ID);
    // Files and feeds take from the client address's rate as GraphQL requests do (GraphQL
    // checks it itself, before reading a body; the socket, per subscription).
    let files = Router::new()
        .route("/uploads/{id}/file", get(files::upload_file))
        .route("/agencies/{id}/templates/{file}", get(files::template))
        .route("/feed/{file}", get(feeds::public))
        .route("/agencies/{id}/datapoints", get(feeds::members))
        .route(
            "/agencies/{id}/datapoints.csv",
            get(feeds::members_as(crate::export::Format::Csv)),
        )
        .route(
            "/agencies/{id}/datapoints.jsonl",
            get(feeds::members_as(crate::export::Format::JsonLines)),
        )
        .route("/agencies/{id}/datapoints.xlsx", get(feeds::members_xlsx))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            within_address_rate,
        ));
    let router = Router::new()
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route("/graphql/ws", get(subscriptions::upgrade))
        .route("/graphiql", get(async || graphiql::page()))
        .route("/graphiql/assets/{file}", get(graphiql::asset))
        .route("/health", get(ready))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .merge(files)
        .route_layer(axum::middleware::from_fn(observe))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = request.uri().path(),
                        request_id = id,
                        operation = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(axum::middleware::from_fn(drop_unfit_request_id))
        .with_state(state);
    Ok(match cors.layer()? {
        Some(cors) => router.layer(cors),
        None => router,
    })
}

/// A request id from the client is kept when it is short and printable, as it goes into
/// every log line; otherwise the server makes one.
async fn drop_unfit_request_id(mut request: Request, next: Next) -> Response {
    let fit = request.headers().get(REQUEST_ID).is_none_or(|value| {
        let bytes = value.as_bytes();
        !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|byte| byte.is_ascii_graphic())
    });
    if !fit {
        request.headers_mut().remove(REQUEST_ID);
    }
    next.run(request).await
}

/// The duration of every request, by route and status.
async fn observe(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    // The methods HTTP defines, and any other as one: a label's values stay few.
    let method = match *request.method() {
        Method::GET
        | Method::HEAD
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::CONNECT
        | Method::OPTIONS
        | Method::TRACE
        | Method::PATCH => request.method().as_str().to_owned(),
        _ => "_OTHER".to_owned(),
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(String::new, |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics()
        .http_duration
        .get_or_create(&HttpLabels {
            http_request_method: method,
            http_route: route,
            http_response_status_code: response.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Every minute, forgets clients whose rate buckets are full again; stops with the router.
fn forget_idle_clients(state: &AppState) {
    let rates = Arc::downgrade(&state.rates);
    let auth = Arc::downgrade(&state.auth);
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            let (Some(rates), Some(auth)) = (rates.upgrade(), auth.upgrade()) else {
                return;
            };
            rates.forget_idle();
            auth.throttle.forget_idle();
        }
    });
}

/// Refuses a request beyond its client address's rate (429, `RATE_LIMITED`, `Retry-After`).
async fn within_address_rate(
    State(state): State<AppState>,
    Client(address): Client,
    request: Request,
    next: Next,
) -> Response {
    match state.rates.from_address(address) {
        Ok(()) => next.run(request).await,
        Err(retry_after) => files::error_response(&crate::error::AppError::RateLimited {
            message: format!("too many requests; retry in {retry_after} s"),
            retry_after,
        }),
    }
}

/// The client's address, as [`client::address`] finds it.
struct Client(ClientAddress);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client::address(parts, &state.limits)))
    }
}

/// Alive: the process answers.
async fn live() -> &'static str {
    "ok"
}

/// Ready when the database answers.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let answered = match state.pool.get().await {
        Ok(mut conn) => {
            diesel_async::RunQueryDsl::execute(diesel::sql_query("SELECT 1"), &mut conn)
                .await
                .is_ok()
        }
        Err(_) => false,
    };
    if answered {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}

/// The metrics, in the OpenMetrics text format Prometheus reads; with `METRICS_TOKEN` set,
/// only for a scraper that presents it.
async fn metrics_text(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(secret) = &state.limits.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !presented.is_some_and(|presented| secret.matches(presented)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                "the metrics need `Authorization: Bearer <METRICS_TOKEN>`",
            )
                .into_response();
        }
    }
    let mut extra = pool_registry(&state.pool);
    register_answer_caches(
        &mut extra,
        &[
            ("public", state.public.len(), state.public.bytes()),
            ("member", state.members.len(), state.members.bytes()),
        ],
    );
    match metrics().encode(&extra) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
