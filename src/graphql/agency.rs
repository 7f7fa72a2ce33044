//! Agencies: the `Agency` type and the root fields that find agencies.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{Datelike, NaiveDate};

use super::catalogue::MetricDefinition;
use super::guards::SignedIn;
use super::guards::{Can, viewer};
use super::loaders::{
    ChildrenOf, DbLoader, EditorsOf, JurisdictionsOf, LatestReportsOf, MetricSettingsOf,
    RoleChangesOf, SettingsOf,
};
use super::metric::AgencyMetric;
use super::pagination::{
    AgencyConnection, PageArgs, ReportConnection, TotalCount, UploadConnection, connection_of,
};
use super::report::{Person, Report};
use super::scalars::{Date, Timestamp};
use super::series::{MetricSeries, SeriesGranularity, SeriesInput, series_of};
use super::spreadsheet::Upload;
use super::team::{TeamMember, team_of};
use super::{Gql, agency_for, catalogue, connection, find_agency, parse_id};
use crate::auth::permissions::{Permission, agency_not_found};
use crate::error::{AppError, AppResult};
use crate::limits::{MAX_DATE, MIN_DATE};
use crate::models::agency::{self as model, AgencyFilter};
use crate::models::enums::AgencyRole;
use crate::models::enums::{
    AgencySettingKind, JurisdictionKind, ReportFrequency, ReportStatus, System,
};
use crate::models::ids::AgencyId;
use crate::models::report::{PageWith, Report as ReportRow, ReportFilter};
use crate::models::spreadsheet::Spreadsheet;
use crate::models::user::RoleChange;

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
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
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

    /// Every grant, change and removal of a role in the agency, oldest first.
    /// For members of the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn team_history(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<RoleChangeRecord>> {
        let changes = ctx
            .data_unchecked::<DbLoader>()
            .load_one(RoleChangesOf(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(changes.into_iter().map(RoleChangeRecord).collect())
    }

    /// The agency's team: members and pending invitations, ordered by name. For members of
    /// the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn team(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TeamMember>> {
        team_of(ctx, &self.0).await
    }

    /// The agency's settings (purpose, homepage, ...), by kind.
    /// For members of the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn settings(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<AgencySetting>> {
        let rows = ctx
            .data_unchecked::<DbLoader>()
            .load_one(SettingsOf(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|row| AgencySetting {
                kind: row.kind,
                value: row.value,
                updated_at: row.updated_at.into(),
            })
            .collect())
    }

    /// The census areas the agency's data covers or leaves out.
    /// For members of the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn jurisdictions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Jurisdiction>> {
        let rows = ctx
            .data_unchecked::<DbLoader>()
            .load_one(JurisdictionsOf(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|row| Jurisdiction {
                geoid: row.geoid,
                kind: row.kind,
            })
            .collect())
    }

    /// The catalogue metrics of the agency's systems with the agency's settings (or the
    /// catalogue's defaults), in catalogue order.
    /// For members of the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn metrics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only the metrics the agency reports.", default = false)]
        enabled_only: bool,
        #[graphql(desc = "Only metrics of this system.")] system: Option<System>,
    ) -> async_graphql::Result<Vec<AgencyMetric>> {
        let settings = ctx
            .data_unchecked::<DbLoader>()
            .load_one(MetricSettingsOf(self.0.id))
            .await?
            .unwrap_or_default();
        let catalogue = catalogue(ctx);
        let systems = self.0.systems();
        Ok(catalogue
            .metrics()
            .iter()
            .enumerate()
            .filter(|(_, metric)| system.is_none_or(|system| metric.system == system))
            .filter_map(|(index, metric)| Some((index, settings.effective(metric, &systems)?)))
            .filter(|(_, effective)| !enabled_only || effective.is_enabled)
            .map(|(index, effective)| {
                AgencyMetric::new(
                    self.0.id,
                    catalogue.clone(),
                    index,
                    settings.clone(),
                    effective,
                )
            })
            .collect())
    }

    /// The agency's reports, drafts included: newest period first, paged and filtered.
    /// For members of the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Conditions the reports must meet.")] filter: Option<ReportFilterInput>,
        #[graphql(desc = "Return the first N reports (at most 100; 20 by default).")] first: Option<
            i32,
        >,
        #[graphql(desc = "Return reports after this cursor.")] after: Option<String>,
        #[graphql(desc = "Return the last N reports (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Return reports before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<ReportConnection> {
        let slice = PageArgs {
            after,
            before,
            first,
            last,
        }
        .slice()
        .gql()?;
        let filter = filter.unwrap_or_default().into_filter().gql()?;
        // The count and the editors, when the selection asks for them, come with the page.
        let look = ctx.look_ahead();
        let with = PageWith {
            count: look.field("totalCount").exists(),
            editors: look.field("edges").field("node").field("editors").exists()
                || look.field("nodes").field("editors").exists(),
        };
        let mut conn = connection(ctx).await.gql()?;
        let fetched = ReportRow::page(&mut conn, self.0.id, &filter, slice, with)
            .await
            .gql()?;
        drop(conn);
        if let Some(editors) = fetched.editors {
            let loader = ctx.data_unchecked::<DbLoader>();
            loader
                .feed_many(editors.into_iter().map(|(id, list)| (EditorsOf(id), list)))
                .await;
        }
        let total = match fetched.total {
            Some(count) => TotalCount::Known(count),
            None => TotalCount::Reports(self.0.id, filter),
        };
        Ok(connection_of(
            fetched.page,
            &slice,
            ReportRow::key,
            Report,
            total,
        ))
    }

    /// The agency's latest monthly report, by period.
    /// For members of the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn latest_monthly_report(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Report>> {
        let reports = ctx
            .data_unchecked::<DbLoader>()
            .load_one(LatestReportsOf(self.0.id))
            .await?
            .unwrap_or_default();
        let monthly = reports
            .into_iter()
            .find(|r| r.frequency == ReportFrequency::Monthly);
        Ok(monthly.map(Report))
    }

    /// The agency's latest annual report for each month its reporting years start in (an
    /// agency may report some metrics by calendar year and others by fiscal year).
    /// For members of the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn latest_annual_reports(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Report>> {
        let reports = ctx
            .data_unchecked::<DbLoader>()
            .load_one(LatestReportsOf(self.0.id))
            .await?
            .unwrap_or_default();
        let annual = reports
            .into_iter()
            .filter(|r| r.frequency == ReportFrequency::Annual);
        Ok(annual.map(Report).collect())
    }

    /// The spreadsheets the agency uploaded, newest first.
    /// For members of the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn uploads(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Return the first N uploads (at most 100; 20 by default).")] first: Option<
            i32,
        >,
        #[graphql(desc = "Return uploads after this cursor.")] after: Option<String>,
        #[graphql(desc = "Return the last N uploads (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Return uploads before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<UploadConnection> {
        let slice = PageArgs {
            after,
            before,
            first,
            last,
        }
        .slice()
        .gql()?;
        let mut conn = connection(ctx).await.gql()?;
        super::upload::reaching_children(
            &mut conn,
            viewer(ctx),
            &self.0,
            crate::auth::permissions::Operation::Read,
        )
        .await?;
        let page = Spreadsheet::page(&mut conn, self.0.id, slice).await.gql()?;
        Ok(connection_of(
            page,
            &slice,
            Spreadsheet::key,
            Upload,
            TotalCount::Spreadsheets(self.0.id),
        ))
    }

    /// A metric's values over time, drafts included (the data-visualisation screen).
    /// For members of the agency (READ_ONLY and up) and platform staff.
    #[graphql(guard = "Can::in_agency(Permission::ReadAgency, self.0.scope())")]
    async fn series(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which series.")] input: SeriesInput,
    ) -> async_graphql::Result<MetricSeries> {
        series_of(ctx, &self.0, &input, false).await
    }

    /// A metric's published values over time (the public dashboard): published reports only,
    /// and only the metrics and breakdown members the agency reports. NOT_FOUND for a metric
    /// the agency does not publish.
    async fn published_series(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Which series.")] input: SeriesInput,
    ) -> async_graphql::Result<MetricSeries> {
        self.require_published_data(ctx)?;
        series_of(ctx, &self.0, &input, true).await
    }

    /// The metrics the agency publishes, each with its published series (the public
    /// dashboard), in catalogue order.
    async fn published_metrics(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<PublishedMetric>> {
        self.require_published_data(ctx)?;
        let settings = ctx
            .data_unchecked::<DbLoader>()
            .load_one(MetricSettingsOf(self.0.id))
            .await?
            .unwrap_or_default();
        let mut scope = crate::reports::published::PublishedScope::default();
        scope.add(catalogue(ctx), &self.0, &settings);
        Ok(scope
            .metrics
            .into_iter()
            .map(|metric| PublishedMetric {
                agency: self.0.clone(),
                key: metric.metric_key,
            })
            .collect())
    }

    /// The agency's values that changed since a cursor, in pages — the change stream of the
    /// data feeds (`?since=`). Without `since`: every value, as a first full read. Keep the
    /// `cursor` of the last page (`complete: true`) for the next sync. Members see every
    /// value, drafts included; with `publishedOnly`, anyone sees what the public feed shows
    /// (agencies with a public dashboard; NOT_FOUND otherwise).
    async fn datapoint_changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A cursor from an earlier page or sync.")] since: Option<String>,
        #[graphql(
            desc = "Most changes in the page (default 100; at most `MAX_CHANGES_PAGE`, \
                          1,000 unless the server says otherwise)."
        )]
        first: Option<i32>,
        #[graphql(desc = "The public stream: published values only.", default = false)]
        published_only: bool,
    ) -> async_graphql::Result<super::changes::DatapointChangePage> {
        let audience = if published_only {
            if !self.0.is_dashboard_enabled {
                return Err(agency_not_found(self.0.id).into_gql());
            }
            crate::export::Audience::Public
        } else {
            viewer(ctx)
                .require(Permission::ReadAgency, self.0.scope())
                .gql()?;
            crate::export::Audience::Members
        };
        super::changes::page(ctx, self.0.id, audience, since.as_deref(), first).await
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

impl Agency {
    /// Published data is public for agencies with a public dashboard, and readable by their
    /// members otherwise.
    fn require_published_data(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let scope = self.0.scope();
        if scope.is_public {
            return Ok(());
        }
        viewer(ctx).require(Permission::ReadAgency, scope).gql()
    }
}

/// A setting of an agency.
#[derive(SimpleObject)]
pub struct AgencySetting {
    /// The kind of setting.
    pub kind: AgencySettingKind,
    /// Its value.
    pub value: String,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A census area and whether the agency's data covers it.
#[derive(SimpleObject)]
pub struct Jurisdiction {
    /// The census geoid (state, county or place).
    pub geoid: String,
    /// Included or excluded.
    pub kind: JurisdictionKind,
}

/// A metric an agency publishes.
pub struct PublishedMetric {
    agency: model::Agency,
    key: String,
}

/// A metric on an agency's public dashboard.
#[Object]
impl PublishedMetric {
    /// The metric as the catalogue defines it.
    async fn metric(&self, ctx: &Context<'_>) -> async_graphql::Result<MetricDefinition> {
        let catalogue = catalogue(ctx);
        let index = catalogue.metrics().iter().position(|m| m.key == self.key);
        index
            .map(|index| MetricDefinition::new(catalogue.clone(), index))
            .ok_or_else(|| {
                AppError::NotFound(format!("no metric has key {:?}", self.key)).into_gql()
            })
    }

    /// Its published values over time, in the metric's own periods unless asked otherwise.
    async fn series(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Grouping in time.")] granularity: Option<SeriesGranularity>,
        #[graphql(desc = "Split by the members of this breakdown.")] dimension_id: Option<String>,
    ) -> async_graphql::Result<MetricSeries> {
        let input = SeriesInput {
            metric_key: self.key.clone(),
            granularity,
            dimension_id,
            ..SeriesInput::default()
        };
        series_of(ctx, &self.agency, &input, true).await
    }
}

/// Conditions on the reports to list; all given conditions must hold.
#[derive(Debug, Default, InputObject)]
pub struct ReportFilterInput {
    /// Only reports in one of these statuses.
    pub statuses: Option<Vec<ReportStatus>>,
    /// Only reports of this frequency.
    pub frequency: Option<ReportFrequency>,
    /// Only reports whose period starts in this calendar year.
    pub year: Option<i32>,
    /// Only reports whose period starts on or after this day.
    pub from: Option<Date>,
    /// Only reports whose period starts before this day.
    pub to: Option<Date>,
}

impl ReportFilterInput {
    fn into_filter(self) -> AppResult<ReportFilter> {
        let mut starts_from = self.from.map(|date| date.0);
        let mut starts_before = self.to.map(|date| date.0);
        if let Some(year) = self.year {
            let (first, next) = (MIN_DATE.year()..MAX_DATE.year())
                .contains(&year)
                .then(|| {
                    Some((
                        NaiveDate::from_ymd_opt(year, 1, 1)?,
                        NaiveDate::from_ymd_opt(year + 1, 1, 1)?,
                    ))
                })
                .flatten()
                .ok_or_else(|| {
                    AppError::BadUserInput(format!(
                        "the year must be between {} and {}",
                        MIN_DATE.year(),
                        MAX_DATE.year() - 1
                    ))
                })?;
            starts_from = Some(starts_from.map_or(first, |from| from.max(first)));
            starts_before = Some(starts_before.map_or(next, |to| to.min(next)));
        }
        Ok(ReportFilter {
            statuses: self.statuses.unwrap_or_default(),
            frequency: self.frequency,
            starts_from,
            starts_before,
        })
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
        #[graphql(desc = "Return the first N agencies (at most 100; 20 by default).")]
        first: Option<i32>,
        #[graphql(desc = "Return agencies after this cursor.")] after: Option<String>,
        #[graphql(desc = "Return the last N agencies (at most 100).")] last: Option<i32>,
        #[graphql(desc = "Return agencies before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<AgencyConnection> {
        let slice = PageArgs {
            after,
            before,
            first,
            last,
        }
        .slice()
        .gql()?;
        let filter = filter.unwrap_or_default();
        let mut conn = connection(ctx).await.gql()?;
        // `totalCount` counts with the same filter: exactly what the pages hold.
        let filter = AgencyFilter {
            state_code: filter.state_code,
            system: filter.system,
            name_contains: filter.name_contains,
            visible: viewer(ctx).agency_visibility(&mut conn).await.gql()?,
        };
        let page = model::Agency::page(&mut conn, &filter, slice.clone())
            .await
            .gql()?;
        Ok(connection_of(
            page,
            &slice,
            model::Agency::key,
            Agency,
            TotalCount::Agencies(filter),
        ))
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

/// The GraphQL view of a recorded role change.
pub struct RoleChangeRecord(RoleChange);

/// A grant, change or removal of a role in an agency.
#[Object]
impl RoleChangeRecord {
    /// The member.
    async fn member(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Person>> {
        Person::load(ctx, Some(self.0.user_id)).await
    }

    /// The role before (null for a new member).
    async fn old_role(&self) -> Option<AgencyRole> {
        self.0.old_role
    }

    /// The role after (null for a removal).
    async fn new_role(&self) -> Option<AgencyRole> {
        self.0.new_role
    }

    /// When.
    async fn changed_at(&self) -> Timestamp {
        Timestamp(self.0.changed_at)
    }

    /// Who made the change.
    async fn changed_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Person>> {
        Person::load(ctx, self.0.changed_by).await
    }
}

/// An agency setting to set, or with a null value to remove.
#[derive(InputObject)]
pub struct AgencySettingInput {
    /// The kind of setting.
    pub kind: AgencySettingKind,
    /// Its value; null removes it.
    pub value: Option<String>,
}

/// A census area of the jurisdiction.
#[derive(InputObject)]
pub struct JurisdictionInput {
    /// The census geoid (digits).
    pub geoid: String,
    /// Included or excluded.
    pub kind: JurisdictionKind,
}

/// Agency settings to change.
#[derive(InputObject)]
pub struct AgencySettingsInput {
    /// The agency.
    pub agency_id: ID,
    /// Settings to set or remove; others stay as they are.
    #[graphql(default)]
    pub settings: Vec<AgencySettingInput>,
    /// When given, the jurisdictions replace the current ones.
    pub jurisdictions: Option<Vec<JurisdictionInput>>,
}

/// A new agency.
#[derive(InputObject)]
pub struct CreateAgencyInput {
    /// Its name.
    pub name: String,
    /// State code, such as `us_ca`.
    pub state_code: String,
    /// County code, such as `us_ca_sacramento`.
    pub county_code: Option<String>,
    /// The systems it reports for; SUPERAGENCY makes it a superagency.
    pub systems: Vec<System>,
    /// The superagency it belongs to.
    pub super_agency_id: Option<ID>,
    /// Whether its published data appears on the public dashboard.
    #[graphql(default)]
    pub is_dashboard_enabled: bool,
}

/// Mutations on agencies.
#[derive(Default)]
pub struct AgencyMutation;

#[Object]
impl AgencyMutation {
    /// Sets or removes agency settings and replaces the jurisdictions (agency admins), in one
    /// transaction.
    #[graphql(guard = "SignedIn")]
    async fn update_agency_settings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The settings to change.")] input: AgencySettingsInput,
    ) -> async_graphql::Result<Agency> {
        let agency = agency_for(ctx, &input.agency_id, Permission::ManageAgency).await?;
        let settings: Vec<_> = input
            .settings
            .into_iter()
            .map(|s| (s.kind, s.value))
            .collect();
        let jurisdictions: Option<Vec<_>> = input
            .jurisdictions
            .map(|list| list.into_iter().map(|j| (j.geoid, j.kind)).collect());
        let mut conn = connection(ctx).await.gql()?;
        model::change_profile(&mut conn, agency.id, &settings, jurisdictions.as_deref())
            .await
            .gql()?;
        Ok(Agency(agency))
    }

    /// Creates an agency (platform staff).
    #[graphql(guard = "SignedIn")]
    async fn create_agency(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new agency.")] input: CreateAgencyInput,
    ) -> async_graphql::Result<Agency> {
        viewer(ctx).require_platform_admin().gql()?;
        if input.name.trim().is_empty() || input.systems.is_empty() {
            return Err(AppError::BadUserInput(
                "an agency needs a name and at least one system".into(),
            )
            .into_gql());
        }
        let super_agency_id = input
            .super_agency_id
            .as_ref()
            .map(|id| parse_id(id, "agency"))
            .transpose()
            .gql()?;
        // The new agency is in no narrowed token's list (no agency has id 0): only a token
        // narrowed to no agencies creates one.
        let mut concerned = vec![AgencyId(0)];
        concerned.extend(super_agency_id);
        viewer(ctx).require_platform_admin_over(&concerned).gql()?;
        let new = model::NewAgency {
            name: input.name.trim().into(),
            state_code: input.state_code.to_lowercase(),
            county_code: input.county_code.map(|c| c.to_lowercase()),
            is_superagency: input.systems.contains(&System::Superagency),
            systems: input.systems.into_iter().map(Some).collect(),
            super_agency_id,
            is_dashboard_enabled: input.is_dashboard_enabled,
        };
        let mut conn = connection(ctx).await.gql()?;
        let id = new.insert(&mut conn).await.gql()?;
        let agency = model::Agency::by_ids(&mut &**conn, &[id])
            .await
            .gql()?
            .pop();
        agency
            .map(Agency)
            .ok_or_else(|| agency_not_found(id).into_gql())
    }

    /// Makes agencies children of a superagency (platform staff). Returns the superagency.
    #[graphql(guard = "SignedIn")]
    async fn link_child_agencies(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The superagency.")] superagency_id: ID,
        #[graphql(desc = "The agencies to make its children.")] child_agency_ids: Vec<ID>,
    ) -> async_graphql::Result<Agency> {
        viewer(ctx).require_platform_admin().gql()?;
        let parent: AgencyId = parse_id(&superagency_id, "agency").gql()?;
        let children: Vec<AgencyId> = child_agency_ids
            .iter()
            .map(|id| parse_id(id, "agency"))
            .collect::<Result<_, _>>()
            .gql()?;
        // The parent, the children, and the superagencies the children leave.
        let mut concerned = vec![parent];
        concerned.extend(&children);
        {
            let conn = connection(ctx).await.gql()?;
            let current = model::Agency::by_ids(&mut &**conn, &children).await.gql()?;
            concerned.extend(current.iter().filter_map(|child| child.super_agency_id));
        }
        viewer(ctx).require_platform_admin_over(&concerned).gql()?;
        let parent = find_agency(ctx, parent).await?;
        let mut conn = connection(ctx).await.gql()?;
        model::link_children(&mut conn, parent.id, &children)
            .await
            .gql()?;
        Ok(Agency(parent))
    }

    /// Enables or disables an agency's public dashboard (platform staff).
    #[graphql(guard = "SignedIn")]
    async fn set_dashboard_enabled(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The agency.")] agency_id: ID,
        #[graphql(desc = "Whether the dashboard is public.")] enabled: bool,
    ) -> async_graphql::Result<Agency> {
        viewer(ctx).require_platform_admin().gql()?;
        let id: AgencyId = parse_id(&agency_id, "agency").gql()?;
        viewer(ctx).require_platform_admin_over(&[id]).gql()?;
        let agency = find_agency(ctx, id).await?;
        let mut conn = connection(ctx).await.gql()?;
        model::set_dashboard(&mut conn, agency.id, enabled)
            .await
            .gql()
            .map(Agency)
    }
}
