//! HTTP wiring: the GraphQL endpoint, GraphiQL, and a health check. Authentication happens
//! here, once per request: the bearer token becomes the request's viewer.

use std::sync::Arc;

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::WebSocketUpgrade;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower_http::trace::TraceLayer;

use crate::auth::{self, AuthConfig};
use crate::db::Pool;
use crate::error::{AppError, ErrorCode};
use crate::graphql::{AppSchema, loaders};

/// Shared state of the handlers.
#[derive(Clone)]
struct AppState {
    schema: AppSchema,
    pool: Pool,
    auth: Arc<AuthConfig>,
}

/// The router: `POST /graphql`, GraphiQL at `GET /graphiql` (and `GET /graphql`), and
/// `GET /health`.
pub fn router(schema: AppSchema, pool: Pool, auth: Arc<AuthConfig>) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(subscriptions))
        .route("/graphiql", get(graphiql))
        .route("/health", get(health))
        .layer(TraceLayer::new_for_http())
        .with_state(AppState { schema, pool, auth })
}

async fn graphql(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or("invalid"));
    let viewer = match state.pool.get().await {
        Ok(mut conn) => auth::authenticate(&mut conn, &state.auth, authorization).await,
        Err(error) => Err(AppError::from(error)),
    };
    let viewer = match viewer {
        Ok(viewer) => viewer,
        Err(error) => return refused(error),
    };
    let (loader, loader_tasks) = loaders::new_loader(state.pool.clone());
    let request = request.into_inner().data(loader).data(viewer);
    let response = loader_tasks.drive(state.schema.execute(request)).await;
    GraphQLResponse::from(response).into_response()
}

/// A request refused before execution, as a GraphQL error response.
fn refused(error: AppError) -> Response {
    if let AppError::Internal(source) = &error {
        tracing::error!(error = ?source, "authentication failed");
    }
    let status = match error.code() {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = json!({
        "data": null,
        "errors": [{ "message": error.to_string(), "extensions": { "code": error.code().as_str() } }],
    });
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// Subscriptions over WebSocket (graphql-transport-ws, and the older graphql-ws). The token
/// travels in the connection's init payload: `{"Authorization": "Bearer <token>"}`.
async fn subscriptions(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let pool = state.pool.clone();
            let auth = state.auth.clone();
            GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let header = payload
                        .get("Authorization")
                        .or_else(|| payload.get("authorization"))
                        .and_then(|value| value.as_str())
                        .map(str::to_owned);
                    let mut conn = pool
                        .get()
                        .await
                        .map_err(|error| AppError::from(error).into_gql())?;
                    let viewer = auth::authenticate(&mut conn, &auth, header.as_deref())
                        .await
                        .map_err(AppError::into_gql)?;
                    let mut data = Data::default();
                    data.insert(viewer);
                    Ok(data)
                })
                .serve()
        })
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
