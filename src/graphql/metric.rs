//! An agency's metrics with their settings: each setting as the agency chose it, or the
//! catalogue's default (the metric-configuration and home screens).

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};

use super::catalogue::MetricDefinition;
use super::guards::{SignedIn, viewer};
use super::loaders::{DbLoader, SettingChangesOf};
use super::report::Person;
use super::scalars::{Json, Timestamp};
use super::{Gql, agency_for, catalogue, connection};
use crate::auth::permissions::Permission;
use crate::catalogue::{Catalogue, MetricDefinition as CatalogueMetric};
use crate::models::enums::ReportFrequency;
use crate::models::ids::AgencyId;
use crate::models::metric_setting::{AgencyMetricSettings, EffectiveMetric};
use crate::models::metric_setting::{
    MemberChange, MetricSettingsChange, SettingChange, change_settings,
};
use crate::reports::validation::{Problem, invalid};

/// One catalogue metric as one agency reports it.
pub struct AgencyMetric {
    agency: AgencyId,
    catalogue: Arc<Catalogue>,
    index: usize,
    settings: Arc<AgencyMetricSettings>,
    effective: EffectiveMetric,
}

impl AgencyMetric {
    /// The metric at `index` of the catalogue, with the agency's settings.
    pub fn new(
        agency: AgencyId,
        catalogue: Arc<Catalogue>,
        index: usize,
        settings: Arc<AgencyMetricSettings>,
        effective: EffectiveMetric,
    ) -> Self {
        Self {
            agency,
            catalogue,
            index,
            settings,
            effective,
        }
    }

    fn def(&self) -> &CatalogueMetric {
        &self.catalogue.metrics()[self.index]
    }
}

/// A catalogue metric with an agency's settings for it; a setting the agency did not make is
/// the catalogue's default.
#[Object]
impl AgencyMetric {
    /// The metric's key.
    async fn key(&self) -> &str {
        &self.def().key
    }

    /// The metric as the catalogue defines it.
    async fn definition(&self) -> MetricDefinition {
        MetricDefinition::new(self.catalogue.clone(), self.index)
    }

    /// Whether the agency reports the metric.
    async fn is_enabled(&self) -> bool {
        self.effective.is_enabled
    }

    /// How often the agency reports it.
    async fn frequency(&self) -> ReportFrequency {
        self.effective.frequency
    }

    /// For annual metrics, the first month (1 = January) of the agency's reporting year.
    async fn starting_month(&self) -> Option<i32> {
        self.effective.starting_month.map(|month| month as i32)
    }

    /// For supervision metrics, whether the agency reports them per subsystem (parole,
    /// probation, ...) instead of in total.
    async fn is_disaggregated_by_subsystem(&self) -> bool {
        self.effective.is_disaggregated_by_subsystem
    }

    /// The agency's note on how it defines the metric.
    async fn definition_note(&self) -> Option<&str> {
        self.settings
            .setting(&self.def().key)
            .and_then(|s| s.definition_note.as_deref())
    }

    /// Whether any setting differs from the catalogue's defaults.
    async fn is_customized(&self) -> bool {
        self.settings.setting(&self.def().key).is_some()
    }

    /// The breakdowns, with which members the agency reports.
    async fn breakdowns(&self) -> Vec<AgencyBreakdown> {
        let metric = self.def();
        metric
            .breakdowns
            .iter()
            .map(|breakdown| AgencyBreakdown {
                dimension_id: breakdown.dimension.clone(),
                display_name: breakdown.display_name.clone(),
                is_required: breakdown.required,
                members: breakdown
                    .members
                    .iter()
                    .map(|member| AgencyBreakdownMember {
                        name: member.name.clone(),
                        label: member.label.clone(),
                        is_enabled: self.settings.member_enabled(
                            &metric.key,
                            &breakdown.dimension,
                            &member.name,
                        ),
                        description: self
                            .settings
                            .member_setting(&metric.key, &breakdown.dimension, &member.name)
                            .and_then(|m| m.description.clone()),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Every recorded change of this metric's settings, oldest first.
    async fn history(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SettingChangeRecord>> {
        let changes = ctx
            .data_unchecked::<DbLoader>()
            .load_one(SettingChangesOf(self.agency))
            .await?
            .unwrap_or_default();
        Ok(changes
            .into_iter()
            .filter(|c| c.metric_key == self.def().key)
            .map(SettingChangeRecord)
            .collect())
    }

    /// The includes/excludes checklist with the agency's answers.
    async fn includes_excludes(&self) -> Vec<AgencyChecklistItem> {
        let metric = self.def();
        metric
            .checklist_items()
            .map(|(group, items, item)| {
                let answer = self.settings.answer(&metric.key, &item.key);
                AgencyChecklistItem {
                    key: item.key.clone(),
                    label: item.label.clone(),
                    group: i32::try_from(group).unwrap_or(i32::MAX),
                    is_multiselect: items.multiselect,
                    default_included: item.default_included,
                    is_included: answer.unwrap_or(item.default_included),
                    is_answered: answer.is_some(),
                }
            })
            .collect()
    }
}

/// A breakdown as an agency reports it.
#[derive(SimpleObject)]
pub struct AgencyBreakdown {
    /// Dimension id, such as `metric/offense/type`.
    pub dimension_id: String,
    /// The breakdown for people.
    pub display_name: String,
    /// Whether agencies are expected to report it.
    pub is_required: bool,
    /// The members, in catalogue order.
    pub members: Vec<AgencyBreakdownMember>,
}

/// A breakdown member as an agency reports it.
#[derive(SimpleObject)]
pub struct AgencyBreakdownMember {
    /// Stable name, such as `PERSON`.
    pub name: String,
    /// The member for people.
    pub label: String,
    /// Whether the agency reports this member.
    pub is_enabled: bool,
    /// What the agency counts under this member (describes "Other").
    pub description: Option<String>,
}

/// A checklist item with an agency's answer.
#[derive(SimpleObject)]
pub struct AgencyChecklistItem {
    /// Stable key of the item.
    pub key: String,
    /// The item for people.
    pub label: String,
    /// Index of the group of items answered together.
    pub group: i32,
    /// Whether several items of the group may apply at once.
    pub is_multiselect: bool,
    /// Whether the catalogue counts the item by default.
    pub default_included: bool,
    /// Whether the agency counts the item: its answer, or the default.
    pub is_included: bool,
    /// Whether the agency answered (false: the default applies).
    pub is_answered: bool,
}

/// The GraphQL view of a recorded settings change.
pub struct SettingChangeRecord(SettingChange);

/// A change of a metric's settings: who, when, and each field's old and new value.
#[Object]
impl SettingChangeRecord {
    /// When.
    async fn changed_at(&self) -> Timestamp {
        Timestamp(self.0.changed_at)
    }

    /// Who made the change (none when the user was deleted).
    async fn changed_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Person>> {
        Person::load(ctx, self.0.changed_by).await
    }

    /// What changed, as JSON: each changed field with `old` and `new`; `members` and
    /// `includesExcludes` list the breakdown members and checklist answers set.
    async fn changes(&self) -> Json {
        Json(self.0.changes.clone())
    }
}

/// A breakdown member's setting to change.
#[derive(InputObject)]
pub struct MemberSettingInput {
    /// The breakdown.
    pub dimension_id: String,
    /// The member.
    pub member: String,
    /// Whether the agency reports this member; omitted leaves it as it is.
    pub is_enabled: Option<bool>,
    /// What the agency counts under this member; null removes it, omitted leaves it.
    pub description: MaybeUndefined<String>,
}

/// An answer to an includes/excludes item.
#[derive(InputObject)]
pub struct ChecklistAnswerInput {
    /// The item's key.
    pub key: String,
    /// Whether the agency counts the item in the metric.
    pub is_included: bool,
}

/// Settings of one metric to change; what is omitted stays as it is.
#[derive(InputObject)]
pub struct MetricSettingsInput {
    /// The agency.
    pub agency_id: ID,
    /// The metric.
    pub metric_key: String,
    /// Whether the agency reports the metric.
    pub is_enabled: Option<bool>,
    /// How often the agency reports it.
    pub frequency: Option<ReportFrequency>,
    /// For annual metrics, the first month (1–12) of the reporting year.
    pub starting_month: Option<i32>,
    /// For supervision metrics, whether data is reported per subsystem.
    pub is_disaggregated_by_subsystem: Option<bool>,
    /// The agency's note on how it defines the metric; null removes it, omitted leaves it.
    pub definition_note: MaybeUndefined<String>,
    /// Breakdown members to change.
    #[graphql(default)]
    pub members: Vec<MemberSettingInput>,
    /// Checklist answers to set.
    #[graphql(default)]
    pub includes_excludes: Vec<ChecklistAnswerInput>,
}

fn maybe(value: MaybeUndefined<String>) -> Option<Option<String>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(value) => Some(Some(value)),
    }
}

/// Mutations on metric settings.
#[derive(Default)]
pub struct MetricSettingsMutation;

#[Object]
impl MetricSettingsMutation {
    /// Changes an agency's settings for one metric (agency admins), in one transaction,
    /// recorded in the metric's history. Every invalid setting is listed in
    /// `extensions.problems` (BAD_USER_INPUT) and nothing is changed.
    #[graphql(guard = "SignedIn")]
    async fn update_metric_settings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The metric and the settings to change.")] input: MetricSettingsInput,
    ) -> async_graphql::Result<AgencyMetric> {
        let agency = agency_for(ctx, &input.agency_id, Permission::ManageAgency).await?;
        let viewer = viewer(ctx);
        let catalogue = catalogue(ctx);
        let mut problems = Vec::new();
        let mut problem = |path: &str, message: String| {
            problems.push(Problem {
                path: path.into(),
                message,
            })
        };
        let index = catalogue
            .metrics()
            .iter()
            .position(|m| m.key == input.metric_key);
        let metric = index.map(|index| &catalogue.metrics()[index]);
        match metric {
            None => problem(
                "metricKey",
                format!("there is no metric {:?}", input.metric_key),
            ),
            Some(metric) if !agency.systems().contains(&metric.system) => {
                problem(
                    "metricKey",
                    format!("{} is not a metric of the agency's systems", metric.key),
                );
            }
            Some(_) => {}
        }
        if input
            .starting_month
            .is_some_and(|month| !(1..=12).contains(&month))
        {
            problem("startingMonth", "a month is 1 to 12".into());
        }
        if let Some(metric) = metric {
            for (i, member) in input.members.iter().enumerate() {
                let known = metric
                    .breakdown(&member.dimension_id)
                    .is_some_and(|b| b.members.iter().any(|m| m.name == member.member));
                if !known {
                    problem(
                        &format!("members[{i}]"),
                        format!(
                            "{} has no member {} of {}",
                            metric.key, member.member, member.dimension_id
                        ),
                    );
                }
            }
            for (i, answer) in input.includes_excludes.iter().enumerate() {
                if !metric
                    .checklist_items()
                    .any(|(_, _, item)| item.key == answer.key)
                {
                    problem(
                        &format!("includesExcludes[{i}]"),
                        format!("{} has no checklist item {}", metric.key, answer.key),
                    );
                }
            }
        }
        if !problems.is_empty() {
            return Err(invalid(problems).into_gql());
        }
        let (Some(index), Some(metric)) = (index, metric) else {
            return Err(invalid(Vec::new()).into_gql());
        };
        let change = MetricSettingsChange {
            is_enabled: input.is_enabled,
            frequency: input.frequency,
            starting_month: input.starting_month.and_then(|m| i16::try_from(m).ok()),
            is_disaggregated_by_subsystem: input.is_disaggregated_by_subsystem,
            definition_note: maybe(input.definition_note),
            members: input
                .members
                .into_iter()
                .map(|m| MemberChange {
                    dimension_id: m.dimension_id,
                    member: m.member,
                    is_enabled: m.is_enabled,
                    description: maybe(m.description),
                })
                .collect(),
            answers: input
                .includes_excludes
                .into_iter()
                .map(|a| (a.key, a.is_included))
                .collect(),
        };
        let mut conn = connection(ctx).await.gql()?;
        change_settings(&mut conn, agency.id, &metric.key, &change, viewer.user_id())
            .await
            .gql()?;
        let settings = AgencyMetricSettings::of_agencies(&mut &**conn, &[agency.id])
            .await
            .gql()?
            .remove(&agency.id)
            .unwrap_or_default();
        let effective = settings
            .effective(metric, &agency.systems())
            .ok_or_else(|| invalid(Vec::new()).into_gql())?;
        Ok(AgencyMetric::new(
            agency.id,
            catalogue.clone(),
            index,
            Arc::new(settings),
            effective,
        ))
    }
}
