//! The GraphQL schema: one file per domain type with its object, resolvers and root fields,
//! merged into the root types here.

pub mod agency;
pub mod catalogue;
pub mod loaders;

use std::sync::Arc;

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, ID, MergedObject, SDLExportOptions, Schema,
};

use crate::catalogue::Catalogue;
use crate::db::{Pool, PooledConnection};
use crate::error::{AppError, AppResult};

/// The root query type.
#[derive(MergedObject, Default)]
pub struct Query(agency::AgencyQuery, catalogue::CatalogueQuery);

/// The schema served at `/graphql`.
pub type AppSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Deepest query accepted; deeper ones are refused before any resolver runs.
const MAX_DEPTH: usize = 16;

fn builder() -> async_graphql::SchemaBuilder<Query, EmptyMutation, EmptySubscription> {
    Schema::build(Query::default(), EmptyMutation, EmptySubscription).limit_depth(MAX_DEPTH)
}

/// The schema with its shared data: the pool and the catalogue. Per-request data (the
/// dataloaders) is added by the HTTP handler.
pub fn build_schema(pool: Pool, catalogue: Arc<Catalogue>) -> AppSchema {
    builder().data(pool).data(catalogue).finish()
}

/// The schema without data: enough to introspect it or print it, not to resolve fields.
pub fn bare_schema() -> AppSchema {
    builder().finish()
}

/// The schema in SDL, fields and enum values sorted: the content of `schema.graphql`.
pub fn sdl() -> String {
    bare_schema().sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_enum_items())
}

/// A connection from the pool for a resolver's model call.
pub(crate) async fn connection<'a>(ctx: &Context<'a>) -> AppResult<PooledConnection<'a>> {
    let pool = ctx.data_unchecked::<Pool>();
    Ok(pool.get().await?)
}

/// The in-memory catalogue.
pub(crate) fn catalogue<'a>(ctx: &Context<'a>) -> &'a Arc<Catalogue> {
    ctx.data_unchecked::<Arc<Catalogue>>()
}

/// Parses a GraphQL `ID` into a typed row id.
pub(crate) fn parse_id<T: std::str::FromStr>(id: &ID, what: &str) -> AppResult<T> {
    id.parse()
        .map_err(|_| AppError::BadUserInput(format!("{:?} is not a valid {what} id", id.as_str())))
}
