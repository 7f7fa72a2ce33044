//! An agency's metrics with their settings: each setting as the agency chose it, or the
//! catalogue's default (the metric-configuration and home screens).

use std::sync::Arc;

use async_graphql::{Object, SimpleObject};

use super::catalogue::MetricDefinition;
use crate::catalogue::{Catalogue, MetricDefinition as CatalogueMetric};
use crate::models::enums::ReportFrequency;
use crate::models::metric_setting::{AgencyMetricSettings, EffectiveMetric};

/// One catalogue metric as one agency reports it.
pub struct AgencyMetric {
    catalogue: Arc<Catalogue>,
    index: usize,
    settings: Arc<AgencyMetricSettings>,
    effective: EffectiveMetric,
}

impl AgencyMetric {
    /// The metric at `index` of the catalogue, with the agency's settings.
    pub fn new(
        catalogue: Arc<Catalogue>,
        index: usize,
        settings: Arc<AgencyMetricSettings>,
        effective: EffectiveMetric,
    ) -> Self {
        Self {
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
