//! The GraphQL endpoint, as the GraphQL-over-HTTP specification describes it: `POST` with a
//! JSON body, `GET` with the request in the query string (queries only), responses in the
//! media type the client accepts, request errors with a 4xx status under
//! `application/graphql-response+json` and without a `data` entry. Authentication happens
//! here, once per request: the bearer token becomes the request's viewer. So do the limits on
//! requests: CSRF prevention, body size, rates, time, trusted documents.

use std::time::Instant;

use chrono::{TimeDelta, Utc};

use async_graphql::parser::types::OperationType;
use async_graphql::{ErrorExtensionValues, ServerError};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::answer_cache::Standing;
use super::{AppState, Client, csrf};
use crate::auth::throttle::ClientAddress;
use crate::auth::{self, Viewer};
use crate::error::{AppError, ErrorCode, TOO_SLOW};
use crate::graphql::{OperationName, cost, loaders};
use crate::limits::{Introspection, RETRY_AFTER_UNAVAILABLE, log_refusal};
use crate::metrics::metrics;

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

/// One request and its answer: the media type, the request id, the clock.
struct Exchange {
    media: Media,
    request_id: Option<String>,
    started: Instant,
    operation: Option<String>,
}

impl Exchange {
    fn new(headers: &HeaderMap) -> Self {
        Self {
            media: Media::negotiate(headers),
            request_id: headers
                .get(super::REQUEST_ID)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            started: Instant::now(),
            operation: None,
        }
    }

    fn reply(&self, response: async_graphql::Response) -> Response {
        let (status, retry_after) = status_of(&response, self.media);
        self.reply_with(status, retry_after, response)
    }

    /// The answer, recorded in the metrics and the request's log span.
    fn reply_with(
        &self,
        status: StatusCode,
        retry_after: Option<u64>,
        mut response: async_graphql::Response,
    ) -> Response {
        let codes: Vec<&str> = response.errors.iter().filter_map(code_of).collect();
        let outcome = match (response.errors.is_empty(), &response.data) {
            (true, _) => "ok",
            (false, async_graphql::Value::Null) => "refused",
            (false, _) => "error",
        };
        self.record(outcome, &codes);
        if let Some(id) = &self.request_id {
            for error in &mut response.errors {
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("requestId", id.as_str());
            }
        }
        let body = match body_of(&response) {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "cannot serialise a response");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        let mut reply = self.send(status, retry_after, Bytes::from(body));
        let headers = reply.headers_mut();
        for (name, value) in &response.http_headers {
            headers.append(name, value.clone());
        }
        reply
    }

    /// A kept answer: the body of a response without errors.
    fn reply_kept(&self, body: Bytes) -> Response {
        self.record("ok", &[]);
        self.send(StatusCode::OK, None, body)
    }

    /// Records the answer in the metrics and the request's log span.
    fn record(&self, outcome: &'static str, codes: &[&str]) {
        let metrics = metrics();
        let operation = metrics.operation_label(self.operation.as_deref());
        tracing::Span::current().record("operation", operation.as_str());
        metrics.graphql_request(&operation, outcome, self.started.elapsed(), codes);
    }

    /// The HTTP response with `body`.
    fn send(&self, status: StatusCode, retry_after: Option<u64>, body: Bytes) -> Response {
        let mut reply = (status, body).into_response();
        let headers = reply.headers_mut();
        headers.insert(header::CONTENT_TYPE, self.media.content_type());
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        reply
    }
}

/// Whether nothing was executed: no data, and no error from a resolver (those have a path).
fn is_request_error(response: &async_graphql::Response) -> bool {
    !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// The body; a request error has no `data` entry (the GraphQL specification).
fn body_of(response: &async_graphql::Response) -> serde_json::Result<Vec<u8>> {
    if !is_request_error(response) {
        return serde_json::to_vec(response);
    }
    #[derive(serde::Serialize)]
    struct Errors<'a> {
        errors: &'a [ServerError],
    }
    serde_json::to_vec(&Errors {
        errors: &response.errors,
    })
}

/// A GraphQL error response for a request refused before execution.
pub(super) fn refusal(code: &str, message: &str) -> async_graphql::Response {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    let mut error = ServerError::new(message, None);
    error.extensions = Some(extensions);
    async_graphql::Response::from_errors(vec![error])
}

pub(super) fn rate_limited(retry_after: u64) -> async_graphql::Response {
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
    if media == Media::GraphqlResponse && is_request_error(response) {
        if codes.contains(&ErrorCode::Unauthenticated.as_str()) {
            return (StatusCode::UNAUTHORIZED, None);
        }
        return (StatusCode::BAD_REQUEST, None);
    }
    (StatusCode::OK, None)
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

/// Whether the request's content type is JSON in UTF-8 (the only charset GraphQL over HTTP
/// allows); absent is left to the CSRF check.
fn is_json_utf8(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let text = value.to_str().unwrap_or_default().to_ascii_lowercase();
    let mut params = text.split(';').map(str::trim);
    let media = params.next().unwrap_or_default();
    let json = matches!(
        media,
        "application/json" | "application/graphql-response+json"
    );
    let utf8 = params.all(|param| match param.split_once('=') {
        Some(("charset", charset)) => charset.trim_matches('"') == "utf-8",
        _ => true,
    });
    json && utf8
}

/// `POST /graphql` with a JSON body.
pub(super) async fn post(
    State(state): State<AppState>,
    Client(address): Client,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let mut exchange = Exchange::new(&parts.headers);
    if let Err(refused) = admit(&state, &parts.headers, address) {
        return exchange.reply(*refused);
    }
    if is_multipart(&parts.headers) {
        // A file is written to disk as it arrives: only for a signed-in user within their
        // rate, a few at a time, in bounded time.
        if let Err(refused) = may_upload(&state, &parts.headers, &exchange).await {
            return *refused;
        }
        let Ok(_receiving) = state.uploads_in_flight.clone().try_acquire_owned() else {
            log_refusal("max_uploads_in_flight", "");
            return exchange.reply_with(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(RETRY_AFTER_UNAVAILABLE),
                refusal(
                    ErrorCode::ServiceUnavailable.as_str(),
                    "too many files are being uploaded now; retry shortly",
                ),
            );
        };
        let limits = super::multipart::PartLimits {
            json_bytes: state.limits.max_body_bytes,
            file_bytes: state.limits.max_upload_bytes,
        };
        let reading = super::multipart::read(body, &parts.headers, limits);
        let request = match tokio::time::timeout(state.limits.upload_timeout, reading).await {
            Ok(Ok(request)) => request,
            Ok(Err(super::multipart::Refused::TooLarge(limit, message))) => {
                log_refusal(limit, "");
                return exchange.reply(refusal("PAYLOAD_TOO_LARGE", &message));
            }
            Ok(Err(super::multipart::Refused::Malformed(message))) => {
                return exchange.reply(refusal("BAD_REQUEST", &message));
            }
            Err(_) => {
                log_refusal("upload_timeout", "");
                return exchange.reply_with(
                    StatusCode::REQUEST_TIMEOUT,
                    None,
                    refusal(
                        "BAD_REQUEST",
                        "the upload was not received in time (UPLOAD_TIMEOUT)",
                    ),
                );
            }
        };
        return execute(
            &state,
            &parts.headers,
            address,
            request,
            &mut exchange,
            Method::POST,
        )
        .await;
    }
    if !is_json_utf8(&parts.headers) {
        let response = refusal(
            "BAD_REQUEST",
            "send the request as `Content-Type: application/json` in UTF-8",
        );
        return exchange.reply_with(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, response);
    }
    let body = match read_body(body, &parts.headers, state.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(refused) => return exchange.reply(*refused),
    };
    // One request, a JSON object: batches are not supported.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return exchange.reply(refusal(
            "BAD_REQUEST",
            "the body must be one GraphQL request: a JSON object with `query`",
        ));
    }
    let request = match serde_json::from_slice::<async_graphql::Request>(&body) {
        Ok(request) => request,
        Err(error) => {
            let message = if error.is_data() {
                format!("the request is not a GraphQL request: {error}")
            } else {
                format!("the body is not JSON: {error}")
            };
            return exchange.reply(refusal("BAD_REQUEST", &message));
        }
    };
    if request.query.is_empty() && !request.extensions.contains_key("persistedQuery") {
        return exchange.reply(refusal(
            "BAD_REQUEST",
            "the request has no `query` (nor a persisted query's hash)",
        ));
    }
    execute(
        &state,
        &parts.headers,
        address,
        request,
        &mut exchange,
        Method::POST,
    )
    .await
}

/// Whether the body is `multipart/form-data` (the GraphQL multipart request of file uploads).
fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
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
/// GraphiQL for a browser.
pub(super) async fn get(
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
        return super::graphiql::page();
    };
    let mut exchange = Exchange::new(&parts.headers);
    if let Err(refused) = admit(&state, &parts.headers, address) {
        return exchange.reply(*refused);
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
            ("variables", Some(value @ async_graphql::Value::Object(_))) => {
                request.variables = async_graphql::Variables::from_value(value);
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
                return exchange.reply(refusal(
                    "BAD_REQUEST",
                    &format!("`{name}` must be a JSON object"),
                ));
            }
        }
    }
    execute(
        &state,
        &parts.headers,
        address,
        request,
        &mut exchange,
        Method::GET,
    )
    .await
}

/// An anonymous answer; to a GET without errors, with `Cache-Control` so that browsers and
/// CDNs may keep it too.
fn public_reply(
    exchange: &Exchange,
    response: async_graphql::Response,
    method: Method,
    state: &AppState,
) -> Response {
    let cacheable = method == Method::GET && response.errors.is_empty();
    let reply = exchange.reply(response);
    may_be_kept_by_others(reply, cacheable, state)
}

/// Adds `Cache-Control: public` to `reply` when it is a cacheable answer.
fn may_be_kept_by_others(mut reply: Response, cacheable: bool, state: &AppState) -> Response {
    if cacheable && reply.status() == StatusCode::OK {
        let seconds = state.limits.public_max_age.as_secs();
        let value = if seconds == 0 {
            "no-cache".to_owned()
        } else {
            format!("public, max-age={seconds}")
        };
        if let Ok(value) = HeaderValue::from_str(&value) {
            reply.headers_mut().insert(header::CACHE_CONTROL, value);
        }
    }
    reply
}

/// The answer to a request whose token could not be read or checked.
fn not_authenticated(exchange: &Exchange, error: &AppError) -> Response {
    if let AppError::Internal(source) = error {
        tracing::error!(error = ?source, "authentication failed");
    }
    let response = refusal(error.code().as_str(), &error.to_string());
    let status = match error.code() {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let retry = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_UNAVAILABLE);
    exchange.reply_with(status, retry, response)
}

/// Whether the sender of a multipart request may send a file: a valid token of a user within
/// their rate. The answer to send otherwise.
async fn may_upload(
    state: &AppState,
    headers: &HeaderMap,
    exchange: &Exchange,
) -> Result<(), Box<Response>> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or("invalid"));
    let user = match auth::authenticate(&state.pool, &state.auth, authorization).await {
        Ok(Viewer::User(user)) => user.user_id,
        Ok(Viewer::Anonymous) => {
            let response = refusal(
                ErrorCode::Unauthenticated.as_str(),
                "sign in to upload a file",
            );
            return Err(Box::new(exchange.reply_with(
                StatusCode::UNAUTHORIZED,
                None,
                response,
            )));
        }
        Err(error) => return Err(Box::new(not_authenticated(exchange, &error))),
    };
    if let Err(wait) = state.rates.from_user(user) {
        return Err(Box::new(exchange.reply(rate_limited(wait))));
    }
    Ok(())
}

/// Runs a request that passed the HTTP checks: its document, its viewer, its rate, its time.
async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    address: ClientAddress,
    mut request: async_graphql::Request,
    exchange: &mut Exchange,
    method: Method,
) -> Response {
    exchange.operation.clone_from(&request.operation_name);
    if let Err(refused) = state.documents.resolve(&mut request) {
        return exchange.reply(refusal(refused.code, &refused.message));
    }
    if method == Method::GET {
        if let Err(exceeded) = cost::check_text(&state.limits, &request.query) {
            return exchange.reply(async_graphql::Response::from_errors(vec![exceeded.into()]));
        }
        let chosen = request.operation_name.clone();
        let mutation = match request.parsed_query() {
            Ok(document) => document.operations.iter().any(|(name, operation)| {
                operation.node.ty != OperationType::Query
                    && (chosen.is_none() || name.map(|n| n.as_str()) == chosen.as_deref())
            }),
            Err(error) => {
                let error = crate::graphql::codes::parse_failed(error);
                return exchange.reply(async_graphql::Response::from_errors(vec![error]));
            }
        };
        if mutation {
            let mut response = exchange.reply_with(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                refusal(
                    "BAD_REQUEST",
                    "mutations and subscriptions cannot run over GET; use POST",
                ),
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
    }
    // Before authenticating: an answer worked out with credentials that changed meanwhile is
    // not kept.
    let began = (state.public.begin(), state.members.begin());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or("invalid"));
    let viewer = auth::authenticate(&state.pool, &state.auth, authorization).await;
    let viewer = match viewer {
        Ok(viewer) => viewer,
        Err(error) => return not_authenticated(exchange, &error),
    };
    // A multipart request was charged to its user before its body was read.
    if let Some(user) = viewer.user_id()
        && !is_multipart(headers)
        && let Err(wait) = state.rates.from_user(user)
    {
        return exchange.reply(rate_limited(wait));
    }
    let introspection = match state.limits.introspection {
        Introspection::On => true,
        Introspection::Authenticated => viewer.user_id().is_some(),
        Introspection::Off => false,
    };
    if !introspection {
        request = request.disable_introspection();
    }
    // Queries answered from memory while what they read is unchanged: anonymous ones while
    // public data is; signed-in ones while all data is, unless read from a replica, which may
    // not yet have replayed the change that emptied the cache.
    let (cache, began, standing) = match &viewer {
        Viewer::Anonymous => (&state.public, began.0, Some(Standing::anonymous())),
        Viewer::User(user) => (
            &state.members,
            began.1,
            (state.members.serving() && state.replicas.is_empty())
                .then(|| Standing::of(user))
                .flatten(),
        ),
    };
    let standing = standing.filter(|_| cache.serving());
    let cache_name = match viewer {
        Viewer::Anonymous => "public",
        Viewer::User(_) => "member",
    };
    let found = standing.map(|standing| cache.get(began, &standing, &request));
    if let Some(found) = &found {
        metrics().answer_cache_lookup(cache_name, found.is_ok());
    }
    let ticket = match found {
        Some(Ok((kept, name))) => {
            if exchange.operation.is_none() {
                exchange.operation = name;
            }
            let reply = exchange.reply_kept(kept);
            let public = matches!(viewer, Viewer::Anonymous) && method == Method::GET;
            return may_be_kept_by_others(reply, public, state);
        }
        Some(Err(ticket)) => ticket,
        None => None,
    };
    // Anonymous requests read from the primary when their answer may be kept.
    let public = matches!(viewer, Viewer::Anonymous).then_some(ticket.is_some());
    // Queries read from a replica when there are some, except for answers about to be kept
    // in the public cache.
    let reader = if state.replicas.is_empty() {
        None
    } else {
        viewer.user_id().map(|user| user.to_string())
    };
    let replica = if public == Some(true) {
        None
    } else {
        state.replicas.reader(reader.as_deref()).await
    };
    let expires = match &viewer {
        Viewer::Anonymous => None,
        Viewer::User(user) => Some(user.token.expires_at),
    };
    let operation = OperationName::default();
    let route = loaders::Route::reading(
        state.pool.clone(),
        replica,
        operation.clone(),
        usize::from(state.limits.max_request_connections),
    );
    let (loader, loader_tasks) = loaders::new_routed_loader(route.clone());
    let request = request
        .data(route)
        .data(viewer)
        .data(address)
        .data(operation.clone());
    let run = loader_tasks.drive(state.executor.execute(request, &operation, loader));
    let response = tokio::time::timeout(state.limits.request_timeout, run).await;
    if exchange.operation.is_none() {
        exchange.operation = operation.get();
    }
    if public.is_none() && operation.writes() {
        // A member's writes are seen at once by this process; by the others (and anonymous
        // writes, such as an accepted invitation) on notification. Anonymous requests do not
        // empty the caches: anyone could send `mutation { __typename }` over and over.
        state.public.clear();
        state.members.clear();
        if let Some(reader) = &reader {
            state.replicas.wrote(&state.pool, reader).await;
        }
    }
    match response {
        Ok(response) => {
            // An answer worked out while the token expired may lack what the token no longer
            // reads, without an error: it is not kept.
            let reads_on = expires.is_none_or(|at| Utc::now() + TimeDelta::seconds(1) < at);
            let keep = ticket.filter(|ticket| {
                reads_on
                    && operation.queries_only()
                    && response.errors.is_empty()
                    && response.http_headers.is_empty()
                    && cache.wants(ticket)
            });
            // Serialised once, for the cache and the reply alike.
            if let Some(ticket) = keep
                && let Ok(body) = serde_json::to_vec(&response)
            {
                let body = Bytes::from(body);
                cache.keep(ticket, exchange.operation.clone(), body.clone());
                let reply = exchange.reply_kept(body);
                return may_be_kept_by_others(
                    reply,
                    public.is_some() && method == Method::GET,
                    state,
                );
            }
            if public.is_some() {
                public_reply(exchange, response, method, state)
            } else {
                exchange.reply(response)
            }
        }
        Err(_) => {
            log_refusal("request_timeout", "");
            exchange.reply(refusal(ErrorCode::ServiceUnavailable.as_str(), TOO_SLOW))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        headers
    }

    #[test]
    fn json_bodies_must_be_utf8() {
        assert!(is_json_utf8(&headers("application/json")));
        assert!(is_json_utf8(&headers("application/json; charset=utf-8")));
        assert!(is_json_utf8(&headers(
            "Application/JSON; charset=\"UTF-8\""
        )));
        assert!(!is_json_utf8(&headers("application/json; charset=utf-16")));
        assert!(!is_json_utf8(&headers("application/xml")));
        assert!(is_json_utf8(&HeaderMap::new()));
    }

    #[test]
    fn the_response_type_follows_accept() {
        let accept = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
            Media::negotiate(&headers)
        };
        assert_eq!(accept("application/json"), Media::Json);
        assert_eq!(
            accept("application/graphql-response+json"),
            Media::GraphqlResponse
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0, application/json"),
            Media::Json
        );
        assert_eq!(accept("*/*"), Media::Json);
        assert_eq!(Media::negotiate(&HeaderMap::new()), Media::Json);
    }
}
