//! The metric catalogue as GraphQL types. Resolved from the in-memory catalogue: no SQL.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};

use super::catalogue as catalogue_of;
use crate::catalogue::{self as model, Catalogue};
use crate::error::AppError;
use crate::models::enums::{MeasurementType, MetricCategory, ReportFrequency, System};

/// A criminal-justice system, as the catalogue describes it.
#[derive(SimpleObject)]
pub struct ReportingSystem {
    /// The system.
    pub key: System,
    /// Its name for people.
    pub display_name: String,
    /// What kind of agency reports for it.
    pub description: String,
}

impl From<&model::SystemInfo> for ReportingSystem {
    fn from(info: &model::SystemInfo) -> Self {
        Self {
            key: info.key,
            display_name: info.display_name.clone(),
            description: info.description.clone(),
        }
    }
}

/// One member of a breakdown: a category that values are split into.
#[derive(SimpleObject)]
pub struct BreakdownMember {
    /// Stable name, such as `PERSON`.
    pub name: String,
    /// The member for people, such as "Person Offenses".
    pub label: String,
}

/// A breakdown (disaggregation) of a metric, such as by offense type.
#[derive(SimpleObject)]
pub struct MetricBreakdown {
    /// Dimension id, such as `metric/offense/type`.
    pub dimension_id: String,
    /// The breakdown for people.
    pub display_name: String,
    /// Whether agencies are expected to report this breakdown.
    pub is_required: bool,
    /// The members, in display order.
    pub members: Vec<BreakdownMember>,
}

/// An item of a metric's includes/excludes checklist: something an agency may or may not
/// count in the metric.
#[derive(SimpleObject)]
pub struct IncludesExcludesItem {
    /// Stable key of the item, unique within the metric.
    pub key: String,
    /// The item for people.
    pub label: String,
    /// Whether the item is counted unless the agency says otherwise.
    pub default_included: bool,
    /// Index of the group of items answered together.
    pub group: i32,
    /// Whether several items of the group may apply at once.
    pub is_multiselect: bool,
}

/// The GraphQL view of one metric of the in-memory catalogue.
pub struct MetricDefinition {
    catalogue: Arc<Catalogue>,
    index: usize,
}

impl MetricDefinition {
    /// The metric at `index` of `catalogue.metrics()`.
    pub fn new(catalogue: Arc<Catalogue>, index: usize) -> Self {
        Self { catalogue, index }
    }

    fn def(&self) -> &model::MetricDefinition {
        &self.catalogue.metrics()[self.index]
    }

    fn find(catalogue: &Arc<Catalogue>, key: &str) -> Option<Self> {
        let index = catalogue
            .metrics()
            .iter()
            .position(|metric| metric.key == key)?;
        Some(Self::new(catalogue.clone(), index))
    }
}

/// A metric of the standard catalogue: what agencies count, how it combines over time, and how
/// it may be broken down.
#[Object]
impl MetricDefinition {
    /// Key of the metric, `<SYSTEM>_<METRIC_TYPE>`, such as `LAW_ENFORCEMENT_ARRESTS`.
    async fn key(&self) -> &str {
        &self.def().key
    }

    /// The system the metric belongs to.
    async fn system(&self) -> System {
        self.def().system
    }

    /// The kind of metric, shared across systems, such as `FUNDING` or `ARRESTS`.
    async fn metric_type(&self) -> &str {
        &self.def().metric_type
    }

    /// The metric's name for people.
    async fn display_name(&self) -> &str {
        &self.def().display_name
    }

    /// What the metric counts.
    async fn description(&self) -> &str {
        &self.def().description
    }

    /// The group the metric is shown under.
    async fn category(&self) -> MetricCategory {
        self.def().category
    }

    /// How the metric's values combine over time (summed events or averaged levels).
    async fn measurement_type(&self) -> MeasurementType {
        self.def().measurement_type
    }

    /// How often the metric is reported unless an agency chooses otherwise.
    async fn default_frequency(&self) -> ReportFrequency {
        self.def().default_frequency
    }

    /// What one unit of the value is, such as "Arrest Events" or "Amount" (US dollars).
    async fn unit(&self) -> &str {
        &self.def().unit
    }

    /// For a per-subsystem copy (`PAROLE_POPULATION`), the SUPERVISION metric it copies.
    async fn parent(&self) -> Option<MetricDefinition> {
        let key = self.def().parent_key.as_deref()?;
        Self::find(&self.catalogue, key)
    }

    /// The breakdowns of the metric, in display order.
    async fn breakdowns(&self) -> Vec<MetricBreakdown> {
        self.def()
            .breakdowns
            .iter()
            .map(|breakdown| MetricBreakdown {
                dimension_id: breakdown.dimension.clone(),
                display_name: breakdown.display_name.clone(),
                is_required: breakdown.required,
                members: breakdown
                    .members
                    .iter()
                    .map(|member| BreakdownMember {
                        name: member.name.clone(),
                        label: member.label.clone(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// The includes/excludes checklist, in display order.
    async fn includes_excludes(&self) -> Vec<IncludesExcludesItem> {
        self.def()
            .checklist_items()
            .map(|(group, items, item)| IncludesExcludesItem {
                key: item.key.clone(),
                label: item.label.clone(),
                default_included: item.default_included,
                group: i32::try_from(group).unwrap_or(i32::MAX),
                is_multiselect: items.multiselect,
            })
            .collect()
    }
}

/// Root fields about the metric catalogue. Public: no sign-in needed.
#[derive(Default)]
pub struct CatalogueQuery;

#[Object]
impl CatalogueQuery {
    /// Every criminal-justice system of the catalogue.
    async fn systems(&self, ctx: &Context<'_>) -> Vec<ReportingSystem> {
        catalogue_of(ctx)
            .systems()
            .iter()
            .map(ReportingSystem::from)
            .collect()
    }

    /// The catalogue's metrics in catalogue order, optionally of one system only.
    async fn metric_definitions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only metrics of this system.")] system: Option<System>,
    ) -> Vec<MetricDefinition> {
        let catalogue = catalogue_of(ctx);
        catalogue
            .metrics()
            .iter()
            .enumerate()
            .filter(|(_, metric)| system.is_none_or(|system| metric.system == system))
            .map(|(index, _)| MetricDefinition::new(catalogue.clone(), index))
            .collect()
    }

    /// One metric by key. Null, with a NOT_FOUND error, for an unknown key.
    async fn metric_definition(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The metric's key, such as `LAW_ENFORCEMENT_ARRESTS`.")] key: String,
    ) -> async_graphql::Result<Option<MetricDefinition>> {
        match MetricDefinition::find(catalogue_of(ctx), &key) {
            Some(metric) => Ok(Some(metric)),
            None => Err(AppError::NotFound(format!("no metric has key {key:?}")).into_gql()),
        }
    }
}
