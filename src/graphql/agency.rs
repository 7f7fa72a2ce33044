//! Agencies: the `Agency` type and the root fields that find agencies.

use async_graphql::{Context, ErrorExtensions, ID, InputObject, Object, ResultExt};
use chrono::{DateTime, Utc};

use super::catalogue::MetricDefinition;
use super::loaders::{ChildrenOf, DbLoader};
use super::{catalogue, connection, parse_id};
use crate::error::AppError;
use crate::models::agency::{self as model, AgencyFilter};
use crate::models::enums::System;
use crate::models::ids::AgencyId;

/// The GraphQL view of an agency row.
pub struct Agency(pub model::Agency);

/// An agency that reports metrics: a police department, prosecutor's office, court, jail,
/// prison, supervision agency, or a superagency over several of these.
#[Object]
impl Agency {
    /// Stable identifier of the agency.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The agency's name. Not unique: several agencies may share a name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// State code in lowercase with a `us_` prefix, such as `us_ca`.
    async fn state_code(&self) -> &str {
        &self.0.state_code
    }

    /// County code such as `us_ca_sacramento`, for county agencies.
    async fn county_code(&self) -> Option<&str> {
        self.0.county_code.as_deref()
    }

    /// The criminal-justice systems the agency reports metrics for.
    async fn systems(&self) -> Vec<System> {
        self.0.systems()
    }

    /// Whether the agency is a superagency: it reports aggregate metrics of its own and may
    /// enter data for its child agencies.
    async fn is_superagency(&self) -> bool {
        self.0.is_superagency
    }

    /// Whether the agency's published data appears on the public dashboard.
    async fn is_dashboard_enabled(&self) -> bool {
        self.0.is_dashboard_enabled
    }

    /// When the agency was added to the platform.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The superagency this agency belongs to, if any.
    async fn superagency(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Agency>> {
        let Some(parent) = self.0.super_agency_id else {
            return Ok(None);
        };
        let loader = ctx.data_unchecked::<DbLoader>();
        Ok(loader.load_one(parent).await?.map(Agency))
    }

    /// The agencies this superagency reports for, ordered by name. Empty for other agencies.
    async fn child_agencies(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Agency>> {
        if !self.0.is_superagency {
            return Ok(Vec::new());
        }
        let loader = ctx.data_unchecked::<DbLoader>();
        let children = loader
            .load_one(ChildrenOf(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(children.into_iter().map(Agency).collect())
    }

    /// The catalogue metrics of the agency's systems, in catalogue order.
    async fn available_metrics(&self, ctx: &Context<'_>) -> Vec<MetricDefinition> {
        let catalogue = catalogue(ctx);
        let systems = self.0.systems();
        catalogue
            .metrics()
            .iter()
            .enumerate()
            .filter(|(_, metric)| systems.contains(&metric.system))
            .map(|(index, _)| MetricDefinition::new(catalogue.clone(), index))
            .collect()
    }
}

/// Conditions on the agencies to list; all given conditions must hold.
#[derive(Debug, Default, InputObject)]
pub struct AgencyFilterInput {
    /// Only agencies of this state (`us_ca`).
    pub state_code: Option<String>,
    /// Only agencies reporting for this system.
    pub system: Option<System>,
    /// Only agencies whose name contains this text, ignoring case.
    pub name_contains: Option<String>,
}

/// Root fields about agencies.
#[derive(Default)]
pub struct AgencyQuery;

#[Object]
impl AgencyQuery {
    /// Agencies, ordered by name, optionally filtered.
    async fn agencies(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the agencies must meet.")] filter: Option<AgencyFilterInput>,
    ) -> async_graphql::Result<Vec<Agency>> {
        let filter = filter.unwrap_or_default();
        let filter = AgencyFilter {
            state_code: filter.state_code,
            system: filter.system,
            name_contains: filter.name_contains,
            dashboard_enabled_only: false,
        };
        let mut conn = connection(ctx).await.extend()?;
        let agencies = model::Agency::list(&mut conn, &filter)
            .await
            .map_err(|error| AppError::from(error).extend())?;
        Ok(agencies.into_iter().map(Agency).collect())
    }

    /// One agency by id. Null, with a NOT_FOUND error, when there is no such agency.
    async fn agency(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The agency's id.")] id: ID,
    ) -> async_graphql::Result<Option<Agency>> {
        let id: AgencyId = parse_id(&id, "agency").extend()?;
        let loader = ctx.data_unchecked::<DbLoader>();
        match loader.load_one(id).await? {
            Some(agency) => Ok(Some(Agency(agency))),
            None => Err(AppError::NotFound(format!("no agency has id {id}")).extend()),
        }
    }
}
