//! Agencies: the `Agency` type and the root fields that find agencies.

use async_graphql::{Context, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::catalogue::MetricDefinition;
use super::guards::{Can, viewer};
use super::loaders::{ChildrenOf, DbLoader};
use super::team::{TeamMember, team_of};
use super::{Gql, catalogue, connection, find_agency, parse_id};
use crate::auth::permissions::Permission;
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

    /// The superagency this agency belongs to, if any and if the viewer may see it.
    async fn superagency(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Agency>> {
        let Some(parent) = self.0.super_agency_id else {
            return Ok(None);
        };
        let loader = ctx.data_unchecked::<DbLoader>();
        let parent = loader.load_one(parent).await?;
        Ok(parent
            .filter(|parent| viewer(ctx).can_see_agency(parent.scope()))
            .map(Agency))
    }

    /// The agencies this superagency reports for that the viewer may see, ordered by name.
    /// Empty for other agencies.
    async fn child_agencies(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Agency>> {
        if !self.0.is_superagency {
            return Ok(Vec::new());
        }
        let loader = ctx.data_unchecked::<DbLoader>();
        let children = loader
            .load_one(ChildrenOf(self.0.id))
            .await?
            .unwrap_or_default();
        let viewer = viewer(ctx);
        Ok(children
            .into_iter()
            .filter(|child| viewer.can_see_agency(child.scope()))
            .map(Agency)
            .collect())
    }

    /// The agency's team: members and pending invitations, ordered by name. For members of
    /// the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn team(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TeamMember>> {
        team_of(ctx, &self.0).await
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
    /// The agencies the viewer may see, ordered by name, optionally filtered: those with a
    /// public dashboard, and for signed-in users also their own (platform staff see all).
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
            visible: viewer(ctx).agency_visibility(),
        };
        let mut conn = connection(ctx).await.gql()?;
        let agencies = model::Agency::list(&mut conn, &filter).await.gql()?;
        let viewer = viewer(ctx);
        Ok(agencies
            .into_iter()
            .filter(|agency| viewer.can_see_agency(agency.scope()))
            .map(Agency)
            .collect())
    }

    /// One agency by id. Null, with a NOT_FOUND error, when there is no such agency or the
    /// viewer may not see it.
    async fn agency(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The agency's id.")] id: ID,
    ) -> async_graphql::Result<Option<Agency>> {
        let id: AgencyId = parse_id(&id, "agency").gql()?;
        find_agency(ctx, id)
            .await
            .map(|agency| Some(Agency(agency)))
    }
}
