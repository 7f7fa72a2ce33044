//! Subscriptions over WebSocket (graphql-transport-ws, and the older graphql-ws). The token
//! travels in the connection's init payload: `{"Authorization": "Bearer <token>"}`.
//!
//! A connection lives no longer than its credentials: when the access token expires, or its
//! session or the token is revoked (sign-out, refresh-token reuse), the server closes the
//! connection with code 4401 and a reason saying why. One user (or, before sign-in, one
//! client address) holds a bounded number of connections, and one connection a bounded
//! number of subscriptions.
//!
//! The endpoint carries subscriptions only: a query or a mutation sent over it is answered
//! with a BAD_REQUEST error, since those go over HTTP, where their limits, rates and timeouts
//! apply. Documents pass the same checks as over HTTP (trusted documents, the size of their
//! text). A client that has not sent `connection_init` in time (`WS_INIT_TIMEOUT`) is closed
//! with 4408, and one client address holds at most as many connections waiting for it as a
//! user holds open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage};
use async_graphql::parser::types::OperationType;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt, future};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::auth::throttle::ClientAddress;
use crate::auth::{self, Viewer};
use crate::error::{AppError, AppResult};
use crate::events::Revocation;
use crate::limits::log_refusal;
use crate::metrics::metrics;
use crate::models::ids::UserId;

/// Close code for credentials that stopped working.
const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code for a refused `connection_init` (graphql-transport-ws).
const CLOSE_FORBIDDEN: u16 = 4403;
/// Close code for a client that did not send `connection_init` in time (graphql-transport-ws).
const CLOSE_INIT_TIMEOUT: u16 = 4408;

/// Whose connections are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Holder {
    User(UserId),
    Address(Option<IpAddr>),
    /// A connection from this address that has not initialised yet.
    Waiting(Option<IpAddr>),
}

/// Open connections per holder.
#[derive(Debug, Default)]
pub struct OpenSockets(Mutex<HashMap<Holder, usize>>);

/// One open connection, counted until dropped.
struct SocketSlot {
    sockets: Arc<OpenSockets>,
    holder: Holder,
}

impl OpenSockets {
    fn take(self: &Arc<Self>, holder: Holder, max: usize) -> AppResult<SocketSlot> {
        let mut open = self
            .0
            .lock()
            .map_err(|_| AppError::internal(anyhow::anyhow!("socket count poisoned")))?;
        let count = open.entry(holder).or_default();
        if *count >= max {
            log_refusal("max_connections_per_user", "");
            return Err(AppError::RateLimited {
                message: format!("at most {max} subscription connections may be open at once"),
                retry_after: 1,
            });
        }
        *count += 1;
        if !matches!(holder, Holder::Waiting(_)) {
            metrics().websocket_connections.inc();
        }
        Ok(SocketSlot {
            sockets: self.clone(),
            holder,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        if !matches!(self.holder, Holder::Waiting(_)) {
            metrics().websocket_connections.dec();
        }
        if let Ok(mut open) = self.sockets.0.lock()
            && let Some(count) = open.get_mut(&self.holder)
        {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.holder);
            }
        }
    }
}

/// The subscriptions of one connection, bounded; the resolvers of subscriptions take a slot
/// for as long as their stream lives.
#[derive(Debug, Clone)]
pub struct SubscriptionSlots {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// A subscription's place on its connection, given back when dropped.
#[derive(Debug)]
pub struct SubscriptionSlot(Arc<AtomicUsize>);

impl SubscriptionSlots {
    /// A slot, or RATE_LIMITED when the connection holds the most subscriptions it may.
    pub fn take(&self) -> AppResult<SubscriptionSlot> {
        let taken = self
            .open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                (open < self.max).then_some(open + 1)
            });
        match taken {
            Ok(_) => {
                metrics().subscriptions_active.inc();
                Ok(SubscriptionSlot(self.open.clone()))
            }
            Err(_) => {
                log_refusal("max_subscriptions_per_connection", "");
                Err(AppError::RateLimited {
                    message: format!("a connection may hold at most {} subscriptions", self.max),
                    retry_after: 1,
                })
            }
        }
    }
}

impl Drop for SubscriptionSlot {
    fn drop(&mut self) {
        metrics().subscriptions_active.dec();
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the connection's credentials are, once the client sent them.
#[derive(Default)]
struct Credentials {
    expires_at: Option<tokio::time::Instant>,
    session_id: Option<i64>,
    revocation_ids: Vec<String>,
    /// The signed-in user, and what the connection's viewer may do: fixed when it opened.
    standing: Option<Standing>,
    /// The init payload was refused (bad token, too many connections).
    refused: bool,
    _slot: Option<SocketSlot>,
    /// The connection's place among its address's connections waiting for their init.
    waiting: Option<SocketSlot>,
}

/// A user's rights, as the connection's viewer holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Standing {
    user_id: crate::models::ids::UserId,
    is_platform_admin: bool,
    roles:
        std::collections::HashMap<crate::models::ids::AgencyId, crate::models::enums::AgencyRole>,
}

/// Why a connection whose user's credentials changed must close, if it must: the viewer it
/// holds no longer matches the database (read there, not from the credential cache, which
/// hears of the same change on its own). A database that cannot answer now closes nothing.
async fn outdated(state: &AppState, credentials: &Mutex<Credentials>) -> Option<&'static str> {
    let (standing, revocation_ids, session_id) = {
        let credentials = credentials.lock().ok()?;
        (
            credentials.standing.clone()?,
            credentials.revocation_ids.clone(),
            credentials.session_id,
        )
    };
    // A reconnected listener has every connection check at once: a few at a time, so that
    // requests keep their database connections.
    let Ok(_permit) = state.credential_checks.acquire().await else {
        return None;
    };
    let mut conn = match state.pool.get().await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::warn!(%error, "cannot check a subscription's credentials");
            return None;
        }
    };
    let now = crate::models::user::User::credentials(
        &mut conn,
        standing.user_id,
        &revocation_ids,
        session_id,
    )
    .await;
    match now {
        Err(error) => {
            tracing::warn!(%error, "cannot check a subscription's credentials");
            None
        }
        Ok(None) => Some("the account no longer exists"),
        Ok(Some(now)) if now.revoked => Some("the session was signed out or revoked"),
        Ok(Some(now))
            if now.is_platform_admin != standing.is_platform_admin
                || now.roles != standing.roles =>
        {
            Some("the account's access changed; reconnect")
        }
        Ok(Some(_)) => None,
    }
}

impl Credentials {
    /// Whether a change of `user`'s credentials (anyone's, without one) may concern this
    /// connection.
    fn concerned_by(&self, user: Option<i32>) -> bool {
        self.standing
            .as_ref()
            .is_some_and(|standing| user.is_none_or(|user| user == standing.user_id.0))
    }

    fn revoked_by(&self, revocation: &Revocation) -> bool {
        (self.session_id.is_some() && revocation.session_id == self.session_id)
            || revocation
                .revocation_ids
                .iter()
                .any(|id| self.revocation_ids.contains(id))
    }
}

/// `GET /graphql/ws`.
pub(super) async fn upgrade(
    State(state): State<AppState>,
    super::Client(address): super::Client,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let protocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|protocols| {
            protocols
                .split(',')
                .find_map(|protocol| protocol.trim().parse::<WebSocketProtocols>().ok())
        });
    let Some(protocol) = protocol else {
        return (
            StatusCode::BAD_REQUEST,
            "name graphql-transport-ws or graphql-ws in Sec-WebSocket-Protocol",
        )
            .into_response();
    };
    let waiting = match state.sockets.take(
        Holder::Waiting(address.0.map(auth::throttle::counted_as)),
        state.limits.max_connections_per_user,
    ) {
        Ok(slot) => slot,
        Err(error) => {
            return (StatusCode::TOO_MANY_REQUESTS, error.to_string()).into_response();
        }
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(state.limits.max_body_bytes)
        .on_upgrade(move |socket| serve(state, protocol, socket, address, waiting))
}

/// The schema as this endpoint runs it: subscriptions only, after the checks HTTP requests
/// pass on their document.
#[derive(Clone)]
struct SubscriptionsOnly(AppState);

impl SubscriptionsOnly {
    /// A subscription takes from its client address's rate and its user's, as an HTTP
    /// request does: the refusal when either is spent.
    fn beyond_rate(&self, data: Option<&Data>) -> Option<async_graphql::Response> {
        let data = data?;
        let of = |id: std::any::TypeId| data.get(&id);
        let address = of(std::any::TypeId::of::<ClientAddress>())
            .and_then(|value| value.downcast_ref::<ClientAddress>())
            .copied();
        let user = of(std::any::TypeId::of::<Viewer>())
            .and_then(|value| value.downcast_ref::<Viewer>())
            .and_then(Viewer::user_id);
        let rates = &self.0.rates;
        let spent = address
            .map_or(Ok(()), |address| rates.from_address(address))
            .and_then(|()| user.map_or(Ok(()), |user| rates.from_user(user)));
        spent.err().map(super::graphql::rate_limited)
    }

    /// Why `request` may not run here, as the response that says so.
    fn refusal(&self, request: &mut async_graphql::Request) -> Option<async_graphql::Response> {
        let state = &self.0;
        if let Err(refused) = state.documents.resolve(request) {
            return Some(super::graphql::refusal(refused.code, &refused.message));
        }
        if let Err(exceeded) = crate::graphql::cost::check_text(&state.limits, &request.query) {
            return Some(async_graphql::Response::from_errors(vec![exceeded.into()]));
        }
        let chosen = request.operation_name.clone();
        let document = match request.parsed_query() {
            Ok(document) => document,
            Err(error) => {
                let error = crate::graphql::codes::parse_failed(error);
                return Some(async_graphql::Response::from_errors(vec![error]));
            }
        };
        let mut operations = document.operations.iter().filter(|(name, _)| {
            chosen.is_none() || name.map(|name| name.as_str()) == chosen.as_deref()
        });
        // The operation that would run; when there is none (or no single one), the schema
        // says so in its own words.
        let (Some((_, operation)), None) = (operations.next(), operations.next()) else {
            return None;
        };
        (operation.node.ty != OperationType::Subscription).then(|| {
            super::graphql::refusal(
                "BAD_REQUEST",
                "this connection carries subscriptions only; send queries and mutations over \
                 HTTP",
            )
        })
    }
}

impl async_graphql::Executor for SubscriptionsOnly {
    async fn execute(&self, mut request: async_graphql::Request) -> async_graphql::Response {
        match self.refusal(&mut request) {
            Some(refused) => refused,
            None => {
                super::graphql::refusal("BAD_REQUEST", "this connection carries subscriptions only")
            }
        }
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> futures_util::stream::BoxStream<'static, async_graphql::Response> {
        let refused = self
            .beyond_rate(session_data.as_deref())
            .or_else(|| self.refusal(&mut request));
        match refused {
            Some(refused) => futures_util::stream::once(future::ready(refused)).boxed(),
            None => async_graphql::Executor::execute_stream(&self.0.schema, request, session_data),
        }
    }
}

async fn serve(
    state: AppState,
    protocol: WebSocketProtocols,
    socket: WebSocket,
    address: ClientAddress,
    waiting: SocketSlot,
) {
    let credentials = Arc::new(Mutex::new(Credentials {
        waiting: Some(waiting),
        ..Credentials::default()
    }));
    let init_deadline = tokio::time::Instant::now() + state.limits.ws_init_timeout;
    let (mut sink, input) = socket.split();
    let input = input
        .take_while(|message| future::ready(message.is_ok()))
        .filter_map(|message| {
            future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });
    let init_state = state.clone();
    let init_credentials = credentials.clone();
    let executor = SubscriptionsOnly(state.clone());
    let mut output = async_graphql::http::WebSocket::new(executor, input, protocol)
        .on_connection_init(move |payload| {
            let state = init_state.clone();
            let credentials = init_credentials.clone();
            async move {
                let accepted = accept(&state, &credentials, address, &payload).await;
                if accepted.is_err()
                    && let Ok(mut credentials) = credentials.lock()
                {
                    credentials.refused = true;
                    credentials.waiting = None;
                }
                accepted
            }
        })
        .map(|message| match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        });
    let mut revocations = state.events.revocations();
    let mut changes = state.events.credential_changes();
    loop {
        let (expires_at, initialised) = credentials
            .lock()
            .map(|c| (c.expires_at, c.waiting.is_none()))
            .unwrap_or_default();
        let expiry = async {
            match expires_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => future::pending().await,
            }
        };
        let init_timeout = async {
            if initialised {
                future::pending().await
            } else {
                tokio::time::sleep_until(init_deadline).await;
            }
        };
        let closing = tokio::select! {
            () = init_timeout => {
                let close = Message::Close(Some(CloseFrame {
                    code: CLOSE_INIT_TIMEOUT,
                    reason: "Connection initialisation timeout".into(),
                }));
                drop(sink.send(close).await);
                return;
            },
            message = output.next() => match message {
                Some(message) => {
                    if sink.send(forbidden_if_refused(message, &credentials)).await.is_err() {
                        return;
                    }
                    continue;
                }
                None => return,
            },
            () = expiry => "the access token expired; renew it and reconnect",
            revocation = revocations.recv() => match revocation {
                Ok(revocation) if credentials.lock().is_ok_and(|c| c.revoked_by(&revocation)) => {
                    "the session was signed out or revoked"
                }
                Ok(_) => continue,
                // Revocations were missed: ask the database.
                Err(RecvError::Lagged(_)) => match outdated(&state, &credentials).await {
                    Some(reason) => reason,
                    None => continue,
                },
                Err(RecvError::Closed) => return,
            },
            change = changes.recv() => {
                let user = match change {
                    Ok(change) => change.user_id,
                    // Changes were missed: anyone's may have changed.
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return,
                };
                if !credentials.lock().is_ok_and(|c| c.concerned_by(user)) {
                    continue;
                }
                match outdated(&state, &credentials).await {
                    Some(reason) => reason,
                    None => continue,
                }
            }
        };
        let close = Message::Close(Some(CloseFrame {
            code: CLOSE_UNAUTHORIZED,
            reason: closing.into(),
        }));
        drop(sink.send(close).await);
        return;
    }
}

/// The library closes a refused init with 1002; graphql-transport-ws says 4403.
fn forbidden_if_refused(message: Message, credentials: &Mutex<Credentials>) -> Message {
    match message {
        Message::Close(Some(frame))
            if frame.code == 1002 && credentials.lock().is_ok_and(|c| c.refused) =>
        {
            Message::Close(Some(CloseFrame {
                code: CLOSE_FORBIDDEN,
                reason: frame.reason,
            }))
        }
        message => message,
    }
}

/// Authenticates the init payload and takes a connection slot: the connection's data.
async fn accept(
    state: &AppState,
    credentials: &Mutex<Credentials>,
    address: ClientAddress,
    payload: &serde_json::Value,
) -> async_graphql::Result<Data> {
    let header = payload
        .get("Authorization")
        .or_else(|| payload.get("authorization"))
        .and_then(|value| value.as_str())
        .map(str::to_owned);
    let viewer = auth::authenticate(&state.pool, &state.auth, header.as_deref())
        .await
        .map_err(AppError::into_gql)?;
    let holder = match &viewer {
        Viewer::User(user) => Holder::User(user.user_id),
        Viewer::Anonymous => Holder::Address(address.0.map(auth::throttle::counted_as)),
    };
    let slot = state
        .sockets
        .take(holder, state.limits.max_connections_per_user)
        .map_err(AppError::into_gql)?;
    if let Ok(mut credentials) = credentials.lock() {
        credentials._slot = Some(slot);
        credentials.waiting = None;
        if let Viewer::User(user) = &viewer {
            let left = (user.token.reads_until() - chrono::Utc::now())
                .to_std()
                .unwrap_or_default();
            credentials.expires_at = Some(tokio::time::Instant::now() + left);
            credentials.session_id = user.token.session_id;
            credentials.standing = Some(Standing {
                user_id: user.user_id,
                is_platform_admin: user.is_platform_admin,
                roles: user.roles.clone(),
            });
            credentials
                .revocation_ids
                .clone_from(&user.token.revocation_ids);
        }
    }
    let mut data = Data::default();
    data.insert(viewer);
    data.insert(address);
    data.insert(SubscriptionSlots {
        open: Arc::new(AtomicUsize::new(0)),
        max: state.limits.max_subscriptions_per_connection,
    });
    Ok(data)
}
