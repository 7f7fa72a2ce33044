//! HTTP wiring: the GraphQL endpoint, GraphiQL, and a health check.

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::db::Pool;
use crate::graphql::{AppSchema, loaders};

/// Shared state of the handlers.
#[derive(Clone)]
struct AppState {
    schema: AppSchema,
    pool: Pool,
}

/// The router: `POST /graphql`, GraphiQL at `GET /graphiql` (and `GET /graphql`), and
/// `GET /health`.
pub fn router(schema: AppSchema, pool: Pool) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphiql", get(graphiql))
        .route("/health", get(health))
        .layer(TraceLayer::new_for_http())
        .with_state(AppState { schema, pool })
}

async fn graphql(State(state): State<AppState>, request: GraphQLRequest) -> GraphQLResponse {
    let request = request
        .into_inner()
        .data(loaders::new_loader(state.pool.clone()));
    state.schema.execute(request).await.into()
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
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
