//! The GraphQL schema: one file per domain type with its object, resolvers and root fields,
//! merged into the root types here.

pub mod agency;
pub mod catalogue;
pub mod changes;
pub mod codes;
pub mod cost;
pub mod editing;
pub mod guards;
pub mod loaders;
pub mod metric;
pub mod nulls;
pub mod operation;
pub mod order;
pub mod pagination;
pub mod pipeline;
pub mod report;
pub mod scalars;
pub mod series;
pub mod session;
pub mod spreadsheet;
pub mod team;
pub mod upload;
pub mod user;
pub mod variables;

use std::sync::Arc;

use async_graphql::{Context, ID, MergedObject, MergedSubscription, SDLExportOptions, Schema};

pub use self::operation::OperationName;
pub use self::pipeline::Executor;
use crate::auth::AuthConfig;
use crate::auth::permissions::agency_not_found;
use crate::catalogue::Catalogue;
use crate::db::Pool;
use crate::error::{AppError, AppResult};
use crate::events::EventBus;
use crate::limits::Limits;
use crate::models::agency::Agency;
use crate::models::ids::AgencyId;

/// The root query type.
#[derive(MergedObject, Default)]
pub struct Query(
    agency::AgencyQuery,
    catalogue::CatalogueQuery,
    report::ReportQuery,
    upload::UploadQuery,
    user::UserQuery,
);

/// The root mutation type.
#[derive(MergedObject, Default)]
pub struct Mutation(
    session::SessionMutation,
    team::TeamMutation,
    editing::ReportMutation,
    metric::MetricSettingsMutation,
    agency::AgencyMutation,
    upload::UploadMutation,
);

/// The root subscription type.
#[derive(MergedSubscription, Default)]
pub struct Subscription(editing::ReportSubscription, upload::UploadSubscription);

/// The schema served at `/graphql` (and `/graphql/ws` for subscriptions).
pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The schema's settings: the request [`pipeline`] with the limits on documents (enforced
/// before anything runs, see [`cost`]), and no "did you mean" suggestions in errors (they
/// would describe the schema to whoever cannot introspect it).
fn builder(limits: &Arc<Limits>) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    base_builder(limits).extension(pipeline::Pipeline::checked(limits.clone()))
}

fn base_builder(
    limits: &Arc<Limits>,
) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .disable_suggestions()
    .data(limits.clone())
}

/// What the schema resolves with, shared by every request. Per-request data (the viewer,
/// the client address and the dataloaders) is added by the HTTP handler.
#[derive(Clone)]
pub struct SchemaData {
    /// The database pool.
    pub pool: Pool,
    /// The metric catalogue.
    pub catalogue: Arc<Catalogue>,
    /// Token settings, password hasher and sign-in throttles.
    pub auth: Arc<AuthConfig>,
    /// Report changes, for subscriptions.
    pub events: EventBus,
    /// The limits.
    pub limits: Arc<Limits>,
}

/// The schema with its shared data.
pub fn build_schema(data: SchemaData) -> AppSchema {
    build_executor(data).schema().clone()
}

/// The schema with its shared data, and the same schema without the extension for the
/// requests that do not need it (see [`pipeline::Executor`]).
pub fn build_executor(data: SchemaData) -> Executor {
    let pipeline = pipeline::Pipeline::checked(data.limits.clone());
    // Its documents have passed validation once: only the values of their variables are left
    // to check, which the executor does before choosing it (see [`variables`]).
    let direct = with_data(
        base_builder(&data.limits).validation_mode(async_graphql::ValidationMode::Fast),
        data.clone(),
    );
    let checked = with_data(
        base_builder(&data.limits).extension(pipeline.factory()),
        data,
    );
    Executor::new(&pipeline, checked, Some(direct))
}

fn with_data(
    builder: async_graphql::SchemaBuilder<Query, Mutation, Subscription>,
    data: SchemaData,
) -> AppSchema {
    builder
        .data(data.pool)
        .data(data.catalogue)
        .data(data.auth)
        .data(data.events)
        .finish()
}

/// The schema without the limits on documents: the baseline of the benchmark that measures
/// what the limits cost. Never served.
#[doc(hidden)]
pub fn build_schema_without_document_limits(data: SchemaData) -> Executor {
    let pipeline = pipeline::Pipeline::unchecked();
    let schema = with_data(
        base_builder(&data.limits).extension(pipeline.factory()),
        data,
    );
    Executor::new(&pipeline, schema, None)
}

/// The schema without data: enough to introspect it or print it, not to resolve fields.
pub fn bare_schema() -> AppSchema {
    builder(&Arc::new(Limits::default())).finish()
}

/// The schema in SDL, fields and enum values sorted: the content of `schema.graphql`.
pub fn sdl() -> String {
    bare_schema().sdl_with_options(
        SDLExportOptions::new()
            .sorted_fields()
            .sorted_enum_items()
            .include_specified_by(),
    )
}

/// A connection from the pool for a resolver's model call.
pub(crate) async fn connection<'a>(ctx: &Context<'a>) -> AppResult<loaders::Budgeted<'a>> {
    if let Some(route) = ctx.data_opt::<loaders::Route>() {
        return route.get().await;
    }
    let pool = ctx.data_unchecked::<Pool>();
    Ok(loaders::Budgeted::unbudgeted(pool.get().await?))
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

/// The token settings.
pub(crate) fn auth_config<'a>(ctx: &Context<'a>) -> &'a Arc<AuthConfig> {
    ctx.data_unchecked::<Arc<AuthConfig>>()
}

/// The agency with this id if the viewer may see it; NOT_FOUND otherwise, exactly as for an
/// agency that does not exist.
pub(crate) async fn find_agency(ctx: &Context<'_>, id: AgencyId) -> async_graphql::Result<Agency> {
    let agency = ctx
        .data_unchecked::<loaders::DbLoader>()
        .load_one(id)
        .await?;
    match agency {
        Some(agency) if guards::viewer(ctx).can_see_agency(agency.scope()) => Ok(agency),
        _ => Err(agency_not_found(id).into_gql()),
    }
}

/// The agency whose id a client gave, once the viewer holds `permission` there: BAD_USER_INPUT
/// for a malformed id, NOT_FOUND for an agency the viewer may not see, FORBIDDEN without the
/// role.
pub(crate) async fn agency_for(
    ctx: &Context<'_>,
    id: &ID,
    permission: crate::auth::permissions::Permission,
) -> async_graphql::Result<Agency> {
    let id: AgencyId = parse_id(id, "agency").gql()?;
    let agency = find_agency(ctx, id).await?;
    guards::viewer(ctx)
        .require(permission, agency.scope())
        .gql()?;
    Ok(agency)
}

/// Turns any error the API knows into a GraphQL error with its `extensions.code`.
pub(crate) trait Gql<T> {
    /// See the trait.
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T, E: Into<AppError>> Gql<T> for Result<T, E> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|error| error.into().into_gql())
    }
}
