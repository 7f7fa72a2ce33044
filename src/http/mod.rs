//! HTTP wiring: the GraphQL endpoint (GraphQL over HTTP: POST, and GET for queries),
//! subscriptions over WebSocket, GraphiQL and a health check. Authentication happens here,
//! once per request: the bearer token becomes the request's viewer. So do the limits on
//! requests: CSRF prevention, body size, rates, time, trusted documents.

pub mod client;
pub mod csrf;
pub mod documents;
pub mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql::{ErrorExtensionValues, ServerError};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tower_http::trace::TraceLayer;

use self::client::RequestRates;
use self::documents::Documents;
use self::subscriptions::OpenSockets;
use crate::auth::throttle::ClientAddress;
use crate::auth::{self, AuthConfig, Viewer};
use crate::db::Pool;
use crate::error::{AppError, ErrorCode, TOO_SLOW};
use crate::events::EventBus;
use crate::graphql::{AppSchema, cost, loaders};
use crate::limits::{Introspection, Limits, RETRY_AFTER_UNAVAILABLE, log_refusal};

/// What the router serves with.
pub struct Services {
    /// The schema.
    pub schema: AppSchema,
    /// The database pool (authentication and health checks).
    pub pool: Pool,
    /// Token settings, password hasher and sign-in throttles.
    pub auth: Arc<AuthConfig>,
    /// The limits.
    pub limits: Arc<Limits>,
    /// Report changes and revocations, for subscriptions.
    pub events: EventBus,
}

impl Services {
    /// The schema built over `data`, and the same services for the router.
    pub fn over(data: crate::graphql::SchemaData) -> Self {
        Self {
            pool: data.pool.clone(),
            auth: data.auth.clone(),
            limits: data.limits.clone(),
            events: data.events.clone(),
            schema: crate::graphql::build_schema(data),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
struct AppState {
    schema: AppSchema,
    pool: Pool,
    auth: Arc<AuthConfig>,
    limits: Arc<Limits>,
    rates: Arc<RequestRates>,
    documents: Arc<Documents>,
    sockets: Arc<OpenSockets>,
    events: EventBus,
}

/// The router: `POST /graphql` (and `GET /graphql?query=…`; GraphiQL without a query),
/// `GET /graphql/ws` for subscriptions, GraphiQL at `GET /graphiql`, and `GET /health`.
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so that rates are kept
/// per client address.
pub fn router(services: Services) -> anyhow::Result<Router> {
    let Services {
        schema,
        pool,
        auth,
        limits,
        events,
    } = services;
    let documents = Documents::load(
        limits.trusted_documents.as_deref(),
        limits.persisted_queries_cache,
    )?;
    let state = AppState {
        schema,
        pool,
        rates: Arc::new(RequestRates::new(&limits)),
        documents: Arc::new(documents),
        sockets: Arc::default(),
        auth,
        limits,
        events,
    };
    forget_idle_clients(&state);
    Ok(Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(subscriptions::upgrade))
        .route("/graphiql", get(graphiql))
        .route("/health", get(health))
        .layer(TraceLayer::new_for_http())
        .with_state(state))
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

/// The media type of GraphQL responses: `application/graphql-response+json` when the client
/// accepts it, `application/json` otherwise (GraphQL over HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

    fn negotiate(headers: &HeaderMap) -> Self {
        let accepts = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| {
                let mut params = item.split(';').map(str::trim);
                let media = params.next().unwrap_or_default();
                let refused =
                    params.any(|param| matches!(param, "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
                media.eq_ignore_ascii_case(Self::GRAPHQL_RESPONSE) && !refused
            });
        if accepts {
            Self::GraphqlResponse
        } else {
            Self::Json
        }
    }

    fn content_type(self) -> HeaderValue {
        match self {
            Self::GraphqlResponse => {
                HeaderValue::from_static("application/graphql-response+json; charset=utf-8")
            }
            Self::Json => HeaderValue::from_static("application/json; charset=utf-8"),
        }
    }
}

/// A GraphQL error response for a request refused before execution.
fn refusal(code: &str, message: &str) -> async_graphql::Response {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    let mut error = ServerError::new(message, None);
    error.extensions = Some(extensions);
    async_graphql::Response::from_errors(vec![error])
}

fn rate_limited(retry_after: u64) -> async_graphql::Response {
    let mut response = refusal(
        ErrorCode::RateLimited.as_str(),
        &format!("too many requests; retry in {retry_after} s"),
    );
    if let Some(extensions) = response.errors[0].extensions.as_mut() {
        extensions.set("retryAfter", retry_after);
    }
    response
}

fn code_of(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(code) => Some(code.as_str()),
        _ => None,
    }
}

/// The HTTP status of a GraphQL response (GraphQL over HTTP: request errors are 4xx with
/// `application/graphql-response+json`, 200 with `application/json`; being refused for a rate,
/// a size or an unavailable database is an HTTP matter whatever the media type), and how long
/// to tell the client to wait.
fn status_of(response: &async_graphql::Response, media: Media) -> (StatusCode, Option<u64>) {
    let codes: Vec<&str> = response.errors.iter().filter_map(code_of).collect();
    // An unavailable database spoils the whole answer: a load balancer must see it.
    if codes.contains(&ErrorCode::ServiceUnavailable.as_str()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(RETRY_AFTER_UNAVAILABLE),
        );
    }
    if response.errors.is_empty() || response.data != async_graphql::Value::Null {
        return (StatusCode::OK, None);
    }
    if codes.contains(&ErrorCode::RateLimited.as_str()) {
        let wait = response
            .errors
            .iter()
            .filter_map(
                |error| match error.extensions.as_ref()?.get("retryAfter")? {
                    async_graphql::Value::Number(n) => n.as_u64(),
                    _ => None,
                },
            )
            .max()
            .unwrap_or(1);
        return (StatusCode::TOO_MANY_REQUESTS, Some(wait));
    }
    if codes.contains(&"PAYLOAD_TOO_LARGE") {
        return (StatusCode::PAYLOAD_TOO_LARGE, None);
    }
    if codes.contains(&"BAD_REQUEST") {
        return (StatusCode::BAD_REQUEST, None);
    }
    // A request error: nothing was executed, so no error has a path.
    let request_error = response.errors.iter().all(|error| error.path.is_empty());
    if media == Media::GraphqlResponse && request_error {
        if codes.contains(&ErrorCode::Unauthenticated.as_str()) {
            return (StatusCode::UNAUTHORIZED, None);
        }
        return (StatusCode::BAD_REQUEST, None);
    }
    (StatusCode::OK, None)
}

fn reply(response: async_graphql::Response, media: Media) -> Response {
    let (status, retry_after) = status_of(&response, media);
    reply_with(status, retry_after, response, media)
}

fn reply_with(
    status: StatusCode,
    retry_after: Option<u64>,
    response: async_graphql::Response,
    media: Media,
) -> Response {
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "cannot serialise a response");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut reply = (status, body).into_response();
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, media.content_type());
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    for (name, value) in &response.http_headers {
        headers.append(name, value.clone());
    }
    reply
}

/// Checks that come before the body is read: CSRF and the client address's rate.
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    address: ClientAddress,
) -> Result<(), Box<async_graphql::Response>> {
    if csrf::is_unsafe(headers) {
        log_refusal("csrf", "");
        return Err(Box::new(refusal("BAD_REQUEST", csrf::MESSAGE)));
    }
    state
        .rates
        .from_address(address)
        .map_err(|wait| Box::new(rate_limited(wait)))
}

/// `POST /graphql` with a JSON body.
async fn graphql_post(
    State(state): State<AppState>,
    Client(address): Client,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let media = Media::negotiate(&parts.headers);
    if let Err(refused) = admit(&state, &parts.headers, address) {
        return reply(*refused, media);
    }
    let body = match read_body(body, &parts.headers, state.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(refused) => return reply(*refused, media),
    };
    let request = match serde_json::from_slice::<async_graphql::Request>(&body) {
        Ok(request) => request,
        Err(error) => {
            return reply(
                refusal(
                    "BAD_REQUEST",
                    &format!("the body is not a GraphQL request in JSON: {error}"),
                ),
                media,
            );
        }
    };
    execute(
        &state,
        &parts.headers,
        address,
        request,
        media,
        Method::POST,
    )
    .await
}

/// Reads at most `limit` bytes of body; PAYLOAD_TOO_LARGE beyond, told by `Content-Length`
/// before anything is read when the client declares it.
async fn read_body(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Box<async_graphql::Response>> {
    let too_large = || {
        log_refusal("max_body_bytes", "");
        Box::new(refusal(
            "PAYLOAD_TOO_LARGE",
            &format!("the request body may hold at most {limit} bytes"),
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        let is_length = std::error::Error::source(&error)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if is_length {
            too_large()
        } else {
            Box::new(refusal("BAD_REQUEST", "the request body could not be read"))
        }
    })
}

/// The query string of `GET /graphql`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// `GET /graphql?query=…`: queries only (a mutation is refused with 405); without a query,
/// GraphiQL.
async fn graphql_get(
    State(state): State<AppState>,
    Client(address): Client,
    parts: Parts,
) -> Response {
    let params = axum::extract::Query::<GetParams>::try_from_uri(&parts.uri)
        .ok()
        .map(|query| query.0);
    let Some(params) =
        params.filter(|params| params.query.is_some() || params.extensions.is_some())
    else {
        return graphiql().await.into_response();
    };
    let media = Media::negotiate(&parts.headers);
    if let Err(refused) = admit(&state, &parts.headers, address) {
        return reply(*refused, media);
    }
    let mut request = async_graphql::Request::new(params.query.unwrap_or_default());
    request.operation_name = params.operation_name;
    for (name, text) in [
        ("variables", &params.variables),
        ("extensions", &params.extensions),
    ] {
        let Some(text) = text else { continue };
        let parsed = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|json| async_graphql::Value::from_json(json).ok());
        match (name, parsed) {
            ("variables", Some(value)) => {
                request.variables = async_graphql::Variables::from_value(value)
            }
            ("extensions", Some(async_graphql::Value::Object(fields))) => {
                request.extensions = async_graphql::Extensions(
                    fields
                        .into_iter()
                        .map(|(key, value)| (key.to_string(), value))
                        .collect(),
                );
            }
            _ => {
                return reply(
                    refusal("BAD_REQUEST", &format!("`{name}` must be a JSON object")),
                    media,
                );
            }
        }
    }
    execute(&state, &parts.headers, address, request, media, Method::GET).await
}

/// Runs a request that passed the HTTP checks: its document, its viewer, its rate, its time.
async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    address: ClientAddress,
    mut request: async_graphql::Request,
    media: Media,
    method: Method,
) -> Response {
    if let Err(refused) = state.documents.resolve(&mut request) {
        return reply(refusal(refused.code, &refused.message), media);
    }
    if method == Method::GET {
        if let Err(exceeded) = cost::check_text(&state.limits, &request.query) {
            return reply(
                async_graphql::Response::from_errors(vec![exceeded.into()]),
                media,
            );
        }
        let chosen = request.operation_name.clone();
        let mutation = match request.parsed_query() {
            Ok(document) => document.operations.iter().any(|(name, operation)| {
                operation.node.ty != OperationType::Query
                    && (chosen.is_none() || name.map(|n| n.as_str()) == chosen.as_deref())
            }),
            Err(error) => return reply(async_graphql::Response::from_errors(vec![error]), media),
        };
        if mutation {
            let mut response = reply_with(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                refusal(
                    "BAD_REQUEST",
                    "mutations and subscriptions cannot run over GET; use POST",
                ),
                media,
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or("invalid"));
    let viewer = match authorization {
        None => Ok(Viewer::Anonymous),
        Some(_) => match state.pool.get().await {
            Ok(mut conn) => auth::authenticate(&mut conn, &state.auth, authorization).await,
            Err(error) => Err(AppError::from(error)),
        },
    };
    let viewer = match viewer {
        Ok(viewer) => viewer,
        Err(error) => {
            if let AppError::Internal(source) = &error {
                tracing::error!(error = ?source, "authentication failed");
            }
            let code = error.code().as_str();
            let response = refusal(code, &error.to_string());
            let status = match error.code() {
                ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
                ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let retry =
                (status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_UNAVAILABLE);
            return reply_with(status, retry, response, media);
        }
    };
    if let Some(user) = viewer.user_id()
        && let Err(wait) = state.rates.from_user(user)
    {
        return reply(rate_limited(wait), media);
    }
    let introspection = match state.limits.introspection {
        Introspection::On => true,
        Introspection::Authenticated => viewer.user_id().is_some(),
        Introspection::Off => false,
    };
    if !introspection {
        request = request.disable_introspection();
    }
    let (loader, loader_tasks) = loaders::new_loader(state.pool.clone());
    let request = request.data(loader).data(viewer).data(address);
    let run = loader_tasks.drive(state.schema.execute(request));
    match tokio::time::timeout(state.limits.request_timeout, run).await {
        Ok(response) => reply(response, media),
        Err(_) => {
            log_refusal("request_timeout", "");
            reply(
                refusal(ErrorCode::ServiceUnavailable.as_str(), TOO_SLOW),
                media,
            )
        }
    }
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Justice Counts GraphQL")
            .finish(),
    )
}

/// Ready when the database answers.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
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
