//! Mutations that create, save, publish and delete reports, and the subscription that tells
//! clients when a report of an agency changes.

use super::scalars::Date;
use crate::http::subscriptions::SubscriptionSlots;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject, Subscription};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::guards::{SignedIn, viewer};
use super::loaders::{DbLoader, MetricSettingsOf};
use super::report::Report;
use super::{Gql, agency_for, catalogue, connection, parse_id};
use crate::auth::permissions::{Permission, agency_not_found};
use crate::error::AppError;
use crate::events::{EventBus, ReportEvent, ReportEventKind};
use crate::models::agency::Agency as AgencyRow;
use crate::models::enums::{ReportFrequency, ReportStatus, ValueSource};
use crate::models::ids::{AgencyId, ReportId};
use crate::models::report::Report as ReportRow;
use crate::reports::lifecycle;
use crate::reports::save::{self, Save};
use crate::reports::validation::{self, ContextInput, ValueInput};

/// The report with this id and its agency, when the viewer holds `permission` there. Whoever
/// may not read the agency learns nothing (NOT_FOUND); a member without the role is FORBIDDEN.
async fn report_for(
    ctx: &Context<'_>,
    id: &ID,
    permission: Permission,
) -> async_graphql::Result<(ReportRow, AgencyRow)> {
    let id: ReportId = parse_id(id, "report").gql()?;
    let not_found = || AppError::NotFound(format!("no report has id {id}")).into_gql();
    let loader = ctx.data_unchecked::<DbLoader>();
    let report = loader.load_one(id).await?.ok_or_else(not_found)?;
    let agency = loader
        .load_one(report.agency_id)
        .await?
        .ok_or_else(not_found)?;
    let viewer = viewer(ctx);
    if !viewer.can(Permission::ReadAgency, agency.scope()) {
        return Err(not_found());
    }
    viewer.require(permission, agency.scope()).gql()?;
    Ok((report, agency))
}

/// A value to save.
#[derive(InputObject)]
pub struct ReportValueInput {
    /// The metric's key.
    pub metric_key: String,
    /// The breakdown, for a breakdown member's value.
    pub dimension_id: Option<String>,
    /// The breakdown member, for a breakdown member's value.
    pub member: Option<String>,
    /// A free-text sub-category under the member (usually under "Other").
    pub sub_category: Option<String>,
    /// The value: a number from 0 to 1e15; null says "not reported".
    pub value: Option<f64>,
}

/// A metric's context to save.
#[derive(InputObject)]
pub struct ReportContextInput {
    /// The metric's key.
    pub metric_key: String,
    /// The context; null removes it.
    pub text: Option<String>,
}

/// A save of a report.
#[derive(InputObject)]
pub struct SaveReportInput {
    /// The report.
    pub report_id: ID,
    /// The report version the values were based on (`Report.version` when the form was
    /// loaded). A save based on an older version is refused with CONFLICT.
    pub version: i32,
    /// The values to set; values not given are left as they are.
    #[graphql(default)]
    pub values: Vec<ReportValueInput>,
    /// The contexts to set or remove.
    #[graphql(default)]
    pub contexts: Vec<ReportContextInput>,
}

/// What a save did.
#[derive(SimpleObject)]
pub struct SaveReportPayload {
    /// The report after the save, with its new version.
    pub report: Report,
    /// How many values changed (values equal to the stored ones are not changes).
    pub changed_values: i32,
}

/// The period of a new report.
#[derive(InputObject)]
pub struct CreateReportInput {
    /// The agency.
    pub agency_id: ID,
    /// Monthly or annual.
    pub frequency: ReportFrequency,
    /// First day of the period: the first of a month; for annual reports, of the month the
    /// agency's reporting year starts in.
    pub period_start: Date,
}

/// Mutations on reports.
#[derive(Default)]
pub struct ReportMutation;

#[Object]
impl ReportMutation {
    /// Creates an empty report for a period (agency admins). CONFLICT when the agency already
    /// has a report of that frequency and period.
    #[graphql(guard = "SignedIn")]
    async fn create_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The agency, frequency and period.")] input: CreateReportInput,
    ) -> async_graphql::Result<Report> {
        let agency = agency_for(ctx, &input.agency_id, Permission::ManageAgency).await?;
        let settings = ctx
            .data_unchecked::<DbLoader>()
            .load_one(MetricSettingsOf(agency.id))
            .await?
            .unwrap_or_default();
        let mut conn = connection(ctx).await.gql()?;
        let report = lifecycle::create(
            &mut conn,
            catalogue(ctx),
            &agency,
            &settings,
            input.frequency,
            input.period_start.0,
        )
        .await
        .gql()?;
        Ok(Report(report))
    }

    /// Saves values and contexts of a report (contributors): all of them or none. Every
    /// invalid value is listed in `extensions.problems` with its path (BAD_USER_INPUT). A save
    /// based on an old version is refused (CONFLICT) with `extensions.currentVersion` and the
    /// values changed since in `extensions.changedSince`.
    #[graphql(guard = "SignedIn")]
    async fn save_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report, the version it was based on, and what to save.")]
        input: SaveReportInput,
    ) -> async_graphql::Result<SaveReportPayload> {
        let (report, agency) =
            report_for(ctx, &input.report_id, Permission::EditReportData).await?;
        let values: Vec<ValueInput> = input
            .values
            .into_iter()
            .map(|v| ValueInput {
                metric_key: v.metric_key,
                dimension_id: v.dimension_id,
                member: v.member,
                sub_category: v.sub_category,
                value: v.value,
            })
            .collect();
        let contexts: Vec<ContextInput> = input
            .contexts
            .into_iter()
            .map(|c| ContextInput {
                metric_key: c.metric_key,
                text: c.text,
            })
            .collect();
        let settings = ctx
            .data_unchecked::<DbLoader>()
            .load_one(MetricSettingsOf(agency.id))
            .await?
            .unwrap_or_default();
        let problems = validation::check(
            catalogue(ctx),
            &agency,
            &settings,
            &report,
            &values,
            &contexts,
        );
        if !problems.is_empty() {
            return Err(validation::invalid(problems).into_gql());
        }
        let editor = viewer(ctx).signed_in().gql()?.user_id;
        let mut conn = connection(ctx).await.gql()?;
        let request = Save {
            report_id: report.id,
            based_on: input.version,
            values,
            contexts,
            source: ValueSource::ManualEntry,
            editor,
        };
        let saved = save::save(&mut conn, &request).await.gql()?;
        Ok(SaveReportPayload {
            report: Report(saved.report),
            changed_values: saved.changed_values as i32,
        })
    }

    /// Publishes reports (contributors): all or none. Published reports of agencies with a
    /// public dashboard become public.
    #[graphql(guard = "SignedIn")]
    async fn publish_reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The reports.")] report_ids: Vec<ID>,
        #[graphql(
            desc = "The version of each report that was reviewed, in the order of \
                          `reportIds`. When given, a report saved since is a CONFLICT \
                          (`extensions.currentVersions`) and nothing is published, \
                          so no one publishes values they have not seen."
        )]
        versions: Option<Vec<i32>>,
    ) -> async_graphql::Result<Vec<Report>> {
        set_published(ctx, &report_ids, versions.as_deref(), true).await
    }

    /// Takes published reports back to draft (contributors): all or none.
    #[graphql(guard = "SignedIn")]
    async fn unpublish_reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The reports.")] report_ids: Vec<ID>,
        #[graphql(
            desc = "The version of each report that was reviewed, in the order of \
                          `reportIds`. When given, a report changed since is a CONFLICT \
                          (`extensions.currentVersions`) and nothing changes."
        )]
        versions: Option<Vec<i32>>,
    ) -> async_graphql::Result<Vec<Report>> {
        set_published(ctx, &report_ids, versions.as_deref(), false).await
    }

    /// Deletes reports with their values and history (platform staff): all or none. Returns
    /// the ids deleted.
    #[graphql(guard = "SignedIn")]
    async fn delete_reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The reports.")] report_ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<ID>> {
        viewer(ctx).require_platform_admin().gql()?;
        let ids: Vec<ReportId> = report_ids
            .iter()
            .map(|id| parse_id(id, "report"))
            .collect::<Result<_, _>>()
            .gql()?;
        let agencies: Vec<AgencyId> = ctx
            .data_unchecked::<DbLoader>()
            .load_many(ids.iter().copied())
            .await?
            .into_values()
            .map(|report: ReportRow| report.agency_id)
            .collect();
        viewer(ctx).require_platform_admin_over(&agencies).gql()?;
        let mut conn = connection(ctx).await.gql()?;
        let deleted = lifecycle::delete(&mut conn, &ids).await.gql()?;
        Ok(deleted.into_iter().map(|id| ID(id.to_string())).collect())
    }
}

async fn set_published(
    ctx: &Context<'_>,
    report_ids: &[ID],
    versions: Option<&[i32]>,
    publish: bool,
) -> async_graphql::Result<Vec<Report>> {
    if report_ids.is_empty() {
        return Err(AppError::BadUserInput("name at least one report".into()).into_gql());
    }
    let mut ids = Vec::with_capacity(report_ids.len());
    for id in report_ids {
        ids.push(report_for(ctx, id, Permission::PublishReports).await?.0.id);
    }
    let by = viewer(ctx).signed_in().gql()?.user_id;
    let mut conn = connection(ctx).await.gql()?;
    let reports = lifecycle::set_published(&mut conn, &ids, versions, publish, by)
        .await
        .gql()?;
    Ok(reports.into_iter().map(Report).collect())
}

/// A change of a report, delivered to subscribers.
#[derive(SimpleObject)]
pub struct ReportChange {
    /// What happened.
    pub kind: ReportEventKind,
    /// The report.
    pub report_id: ID,
    /// The report's agency.
    pub agency_id: ID,
    /// The report's version after the change.
    pub version: i32,
    /// The report's status after the change (null once deleted).
    pub status: Option<ReportStatus>,
}

impl From<ReportEvent> for ReportChange {
    fn from(event: ReportEvent) -> Self {
        Self {
            kind: event.kind,
            report_id: ID(event.report_id.to_string()),
            agency_id: ID(event.agency_id.to_string()),
            version: event.version,
            status: event.status,
        }
    }
}

/// Live updates.
#[derive(Default)]
pub struct ReportSubscription;

#[Subscription]
impl ReportSubscription {
    /// Changes of the agency's reports from now on: created, saved, published, unpublished,
    /// deleted — by this server or any other on the same database. For members of the agency
    /// (the token goes in the connection's init payload as `Authorization`).
    async fn report_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The agency.")] agency_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = ReportChange> + use<>> {
        let id: AgencyId = parse_id(&agency_id, "agency").gql()?;
        let conn = connection(ctx).await.gql()?;
        let agency = AgencyRow::by_ids(&mut &**conn, &[id])
            .await
            .gql()?
            .pop()
            .ok_or_else(|| agency_not_found(id).into_gql())?;
        drop(conn);
        // To whoever may not know of it, an agency that is not public answers as a missing
        // one does, signed in or not.
        if viewer(ctx).user_id().is_none() && !agency.scope().is_public {
            return Err(agency_not_found(id).into_gql());
        }
        viewer(ctx)
            .require(Permission::ReadAgency, agency.scope())
            .gql()?;
        // Held by the stream: the connection's count of subscriptions drops with it.
        let slot = ctx
            .data_opt::<SubscriptionSlots>()
            .map(SubscriptionSlots::take)
            .transpose()
            .gql()?;
        let receiver = ctx.data_unchecked::<EventBus>().subscribe();
        Ok(futures_util::stream::unfold(
            (receiver, slot),
            move |(mut receiver, slot)| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) if event.agency_id == id.0 => {
                            return Some((ReportChange::from(event), (receiver, slot)));
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}
