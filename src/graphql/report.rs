//! Reports: the `Report` type with its metrics and values (the data-entry screen), and the
//! root field that finds one report.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::Datelike;

use super::agency::Agency;
use super::catalogue::MetricDefinition;
use super::guards::viewer;
use super::loaders::{ChangesOf, DbLoader, EditorsOf, MetricSettingsOf, StatusChangesOf, ValuesOf};
use super::scalars::{Date, Timestamp};
use super::{Gql, catalogue, find_agency, parse_id};
use crate::auth::permissions::Permission;
use crate::catalogue::{Catalogue, MetricDefinition as CatalogueMetric};
use crate::error::AppError;
use crate::models::agency::Agency as AgencyRow;
use crate::models::datapoint::{Cell, Datapoint, DatapointChange, ReportContext, ReportValue};
use crate::models::enums::{ReportFrequency, ReportStatus, ValueSource};
use crate::models::ids::{ReportId, UserId};
use crate::models::metric_setting::AgencyMetricSettings;
use crate::models::report::{Report as ReportRow, StatusChange};

/// A person named in a record: an editor, the author of a change.
#[derive(SimpleObject, Clone)]
pub struct Person {
    /// The user's id.
    pub id: ID,
    /// The user's name.
    pub name: String,
}

impl Person {
    /// The person with this id, if the user still exists.
    pub async fn load(
        ctx: &Context<'_>,
        id: Option<UserId>,
    ) -> async_graphql::Result<Option<Person>> {
        let Some(id) = id else { return Ok(None) };
        let user = ctx.data_unchecked::<DbLoader>().load_one(id).await?;
        Ok(user.map(|user| Person {
            id: ID(user.id.to_string()),
            name: user.name,
        }))
    }
}

/// The GraphQL view of a report row; only made after the viewer may read its agency.
pub struct Report(pub ReportRow);

impl Report {
    /// The report with this id, when the viewer may read its agency: reached from another
    /// object (such as an upload that wrote into a child agency's report), a report is
    /// checked as it would be when asked for by its id, and is none otherwise.
    pub(crate) async fn readable(
        ctx: &Context<'_>,
        id: ReportId,
    ) -> async_graphql::Result<Option<Self>> {
        let loader = ctx.data_unchecked::<DbLoader>();
        let Some(report) = loader.load_one(id).await? else {
            return Ok(None);
        };
        let Some(agency) = loader.load_one(report.agency_id).await? else {
            return Ok(None);
        };
        Ok(viewer(ctx)
            .can(Permission::ReadAgency, agency.scope())
            .then_some(Self(report)))
    }
}

/// One agency's report for one period: monthly, or annual from the agency's starting month.
#[Object]
impl Report {
    /// Stable identifier of the report.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The agency that reports.
    async fn agency(&self, ctx: &Context<'_>) -> async_graphql::Result<Agency> {
        find_agency(ctx, self.0.agency_id).await.map(Agency)
    }

    /// Monthly or annual.
    async fn frequency(&self) -> ReportFrequency {
        self.0.frequency
    }

    /// First day of the period.
    async fn date_range_start(&self) -> Date {
        Date(self.0.date_range_start)
    }

    /// Day after the last day of the period (the period is `[start, end)`).
    async fn date_range_end(&self) -> Date {
        Date(self.0.date_range_end)
    }

    /// Where the report stands: not started, draft or published.
    async fn status(&self) -> ReportStatus {
        self.0.status
    }

    /// Moves on every accepted save; a save names the version it was based on.
    async fn version(&self) -> i32 {
        self.0.version
    }

    /// When the report was created.
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }

    /// When the report was last changed.
    async fn last_modified_at(&self) -> Timestamp {
        Timestamp(self.0.last_modified_at)
    }

    /// When the report was last published.
    async fn published_at(&self) -> Option<Timestamp> {
        self.0.published_at.map(Timestamp)
    }

    /// Who edited the report, most recent first.
    async fn editors(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ReportEditor>> {
        let editors = ctx
            .data_unchecked::<DbLoader>()
            .load_one(EditorsOf(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(editors
            .into_iter()
            .map(|(_, last_edited_at, user)| ReportEditor {
                person: Person {
                    id: ID(user.id.to_string()),
                    name: user.name,
                },
                last_edited_at: last_edited_at.into(),
            })
            .collect())
    }

    /// Every change of the report's status, oldest first.
    async fn status_history(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ReportStatusChange>> {
        let changes = ctx
            .data_unchecked::<DbLoader>()
            .load_one(StatusChangesOf(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(changes.into_iter().map(ReportStatusChange).collect())
    }

    /// The metrics the report collects: those the agency reports at this frequency (annual
    /// ones by the month their reporting year starts), plus any metric that already has values
    /// here. In catalogue order.
    async fn metrics(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ReportMetric>> {
        let loader = ctx.data_unchecked::<DbLoader>();
        let report = &self.0;
        // Concurrently, so that the three loads join the same batches.
        let (agency, settings, loaded_values) = tokio::join!(
            loader.load_one(report.agency_id),
            loader.load_one(MetricSettingsOf(report.agency_id)),
            loader.load_one(ValuesOf(report.id)),
        );
        let agency: AgencyRow = agency?
            .ok_or_else(|| AppError::NotFound("the report's agency is gone".into()).into_gql())?;
        let settings = settings?.unwrap_or_default();
        let mut datapoints: HashMap<String, Vec<Datapoint>> = HashMap::new();
        let mut contexts: HashMap<String, ReportContext> = HashMap::new();
        for loaded in loaded_values?.unwrap_or_default() {
            match loaded {
                ReportValue::Datapoint(datapoint) => datapoints
                    .entry(datapoint.metric_key.clone())
                    .or_default()
                    .push(datapoint),
                ReportValue::Context(context) => {
                    contexts.insert(context.metric_key.clone(), context);
                }
            }
        }
        let catalogue = catalogue(ctx);
        let systems = agency.systems();
        let month = report.date_range_start.month();
        let mut metrics = Vec::new();
        for (index, metric) in catalogue.metrics().iter().enumerate() {
            let values = datapoints.remove(&metric.key).unwrap_or_default();
            let effective = settings.effective(metric, &systems);
            let due = effective.is_some_and(|e| e.is_due_in(report.frequency, month));
            if !due && values.is_empty() {
                continue;
            }
            metrics.push(ReportMetric {
                catalogue: catalogue.clone(),
                index,
                report: report.id,
                is_enabled: effective.is_some_and(|e| e.is_enabled),
                settings: settings.clone(),
                values,
                context: contexts.remove(&metric.key),
            });
        }
        Ok(metrics)
    }
}

/// Someone who edited a report.
#[derive(SimpleObject)]
pub struct ReportEditor {
    /// The editor.
    pub person: Person,
    /// When they last saved the report.
    pub last_edited_at: Timestamp,
}

/// The GraphQL view of a status change.
pub struct ReportStatusChange(StatusChange);

/// A change of a report's status: created, published, taken back to draft.
#[Object]
impl ReportStatusChange {
    /// The status before.
    async fn old_status(&self) -> ReportStatus {
        self.0.old_status
    }

    /// The status after.
    async fn new_status(&self) -> ReportStatus {
        self.0.new_status
    }

    /// When.
    async fn changed_at(&self) -> Timestamp {
        Timestamp(self.0.changed_at)
    }

    /// Who made the change (none when the user was deleted).
    async fn changed_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Person>> {
        Person::load(ctx, self.0.changed_by).await
    }
}

/// Whether a value was given.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValueStatus {
    /// No value was entered yet.
    Missing,
    /// The agency said explicitly that it does not report this value.
    NotReported,
    /// A number was entered.
    Reported,
}

fn status_of(datapoint: Option<&Datapoint>) -> ValueStatus {
    match datapoint {
        None => ValueStatus::Missing,
        Some(Datapoint { value: None, .. }) => ValueStatus::NotReported,
        Some(_) => ValueStatus::Reported,
    }
}

/// One metric of one report, with the values entered for it.
pub struct ReportMetric {
    catalogue: Arc<Catalogue>,
    index: usize,
    report: ReportId,
    is_enabled: bool,
    settings: Arc<AgencyMetricSettings>,
    values: Vec<Datapoint>,
    context: Option<ReportContext>,
}

impl ReportMetric {
    fn def(&self) -> &CatalogueMetric {
        &self.catalogue.metrics()[self.index]
    }

    fn aggregate(&self) -> Option<&Datapoint> {
        self.values.iter().find(|d| d.dimension_id.is_none())
    }
}

/// A metric of a report: its value, breakdown values and context.
#[Object]
impl ReportMetric {
    /// The metric's key.
    async fn key(&self) -> &str {
        &self.def().key
    }

    /// The metric as the catalogue defines it.
    async fn definition(&self) -> MetricDefinition {
        MetricDefinition::new(self.catalogue.clone(), self.index)
    }

    /// Whether the agency reports this metric (false when it has values from before the
    /// agency switched it off).
    async fn is_enabled(&self) -> bool {
        self.is_enabled
    }

    /// The metric's total; null when missing or not reported (see `valueStatus`).
    async fn value(&self) -> Option<f64> {
        self.aggregate().and_then(|d| d.value)
    }

    /// Whether the total was given.
    async fn value_status(&self) -> ValueStatus {
        status_of(self.aggregate())
    }

    /// How the total got into the system.
    async fn value_source(&self) -> Option<ValueSource> {
        self.aggregate().map(|d| d.source)
    }

    /// The agency's context for this metric in this report.
    async fn context(&self) -> Option<&str> {
        self.context.as_ref().map(|c| c.value.as_str())
    }

    /// The breakdowns with their member values, in catalogue order.
    async fn breakdowns(&self) -> Vec<ReportBreakdown> {
        let metric = self.def();
        metric
            .breakdowns
            .iter()
            .map(|breakdown| ReportBreakdown {
                dimension_id: breakdown.dimension.clone(),
                display_name: breakdown.display_name.clone(),
                is_required: breakdown.required,
                members: breakdown
                    .members
                    .iter()
                    .map(|member| {
                        let values: Vec<&Datapoint> = self
                            .values
                            .iter()
                            .filter(|d| {
                                d.dimension_id.as_deref() == Some(breakdown.dimension.as_str())
                                    && d.member.as_deref() == Some(member.name.as_str())
                            })
                            .collect();
                        let own = values.iter().copied().find(|d| d.sub_category.is_none());
                        let setting = self.settings.member_setting(
                            &metric.key,
                            &breakdown.dimension,
                            &member.name,
                        );
                        ReportMember {
                            name: member.name.clone(),
                            label: member.label.clone(),
                            is_enabled: setting.and_then(|s| s.is_enabled).unwrap_or(true),
                            description: setting.and_then(|s| s.description.clone()),
                            value: own.and_then(|d| d.value),
                            value_status: status_of(own),
                            sub_categories: values
                                .iter()
                                .filter_map(|d| {
                                    Some(SubCategoryValue {
                                        name: d.sub_category.clone()?,
                                        value: d.value,
                                    })
                                })
                                .collect(),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// Every recorded change of this metric's values in this report, oldest first: each change
    /// of a stored value, and each value first entered by a save (an upload's new values are
    /// in the upload's own record instead).
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ValueChange>> {
        let changes = ctx
            .data_unchecked::<DbLoader>()
            .load_one(ChangesOf(self.report))
            .await?
            .unwrap_or_default();
        let key = &self.def().key;
        Ok(changes
            .into_iter()
            .filter(|(_, cell)| &cell.metric_key == key)
            .map(|(change, cell)| ValueChange { change, cell })
            .collect())
    }
}

/// A breakdown of a metric in a report.
#[derive(SimpleObject)]
pub struct ReportBreakdown {
    /// Dimension id, such as `metric/offense/type`.
    pub dimension_id: String,
    /// The breakdown for people.
    pub display_name: String,
    /// Whether agencies are expected to report it.
    pub is_required: bool,
    /// The members with their values, in catalogue order.
    pub members: Vec<ReportMember>,
}

/// A breakdown member's value in a report.
#[derive(SimpleObject)]
pub struct ReportMember {
    /// Stable name, such as `PERSON`.
    pub name: String,
    /// The member for people.
    pub label: String,
    /// Whether the agency reports this member.
    pub is_enabled: bool,
    /// What the agency counts under this member (for "Other").
    pub description: Option<String>,
    /// The member's value; null when missing or not reported.
    pub value: Option<f64>,
    /// Whether the value was given.
    pub value_status: ValueStatus,
    /// Values of free-text sub-categories under this member.
    pub sub_categories: Vec<SubCategoryValue>,
}

/// The value of a free-text sub-category under a breakdown member (usually "Other").
#[derive(SimpleObject)]
pub struct SubCategoryValue {
    /// The sub-category as the agency named it.
    pub name: String,
    /// Its value; null when not reported.
    pub value: Option<f64>,
}

/// A recorded change of one value.
pub struct ValueChange {
    change: DatapointChange,
    cell: Cell,
}

/// One change of one value: who, when, from what to what.
#[Object]
impl ValueChange {
    /// The breakdown of the changed value; null for the metric's total.
    async fn dimension_id(&self) -> Option<&str> {
        self.cell.dimension_id.as_deref()
    }

    /// The breakdown member of the changed value.
    async fn member(&self) -> Option<&str> {
        self.cell.member.as_deref()
    }

    /// The sub-category of the changed value.
    async fn sub_category(&self) -> Option<&str> {
        self.cell.sub_category.as_deref()
    }

    /// The value before (null: not reported, or no value yet).
    async fn old_value(&self) -> Option<f64> {
        self.change.old_value
    }

    /// The value after (null: not reported).
    async fn new_value(&self) -> Option<f64> {
        self.change.new_value
    }

    /// When.
    async fn changed_at(&self) -> Timestamp {
        Timestamp(self.change.changed_at)
    }

    /// Who made the change (none when the user was deleted).
    async fn changed_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Person>> {
        Person::load(ctx, self.change.changed_by).await
    }

    /// How the new value got into the system.
    async fn source(&self) -> ValueSource {
        self.change.source
    }
}

/// Root fields about reports.
#[derive(Default)]
pub struct ReportQuery;

#[Object]
impl ReportQuery {
    /// One report by id, for members of its agency. Null, with a NOT_FOUND error, when there
    /// is no such report or the viewer may not know of it.
    async fn report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report's id.")] id: ID,
    ) -> async_graphql::Result<Option<Report>> {
        let id: ReportId = parse_id(&id, "report").gql()?;
        let not_found = || AppError::NotFound(format!("no report has id {id}")).into_gql();
        let loader = ctx.data_unchecked::<DbLoader>();
        let report = loader.load_one(id).await?.ok_or_else(not_found)?;
        let agency = loader
            .load_one(report.agency_id)
            .await?
            .ok_or_else(not_found)?;
        // Reports are not public objects: whoever may not read them, signed in or not, gets
        // the answer a missing report gets.
        if viewer(ctx).can(Permission::ReadAgency, agency.scope()) {
            Ok(Some(Report(report)))
        } else {
            Err(not_found())
        }
    }
}
