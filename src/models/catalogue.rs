//! Rows of the catalogue tables, written by the catalogue sync.

use diesel::prelude::*;

use crate::catalogue::{
    Breakdown, BreakdownMember, ChecklistGroup, ChecklistItem, MetricDefinition,
};
use crate::db::schema::{
    breakdown_members, catalogue_state, includes_excludes_items, metric_breakdowns,
    metric_definitions,
};
use crate::models::enums::{MeasurementType, MetricCategory, ReportFrequency, System};

/// A `metric_definitions` row.
#[derive(Debug, Insertable)]
#[diesel(table_name = metric_definitions)]
pub struct NewMetricDefinition<'a> {
    /// See [`MetricDefinition::key`].
    pub key: &'a str,
    /// See [`MetricDefinition::system`].
    pub system: System,
    /// See [`MetricDefinition::metric_type`].
    pub metric_type: &'a str,
    /// See [`MetricDefinition::parent_key`].
    pub parent_key: Option<&'a str>,
    /// See [`MetricDefinition::display_name`].
    pub display_name: &'a str,
    /// See [`MetricDefinition::description`].
    pub description: &'a str,
    /// See [`MetricDefinition::category`].
    pub category: MetricCategory,
    /// See [`MetricDefinition::measurement_type`].
    pub measurement_type: MeasurementType,
    /// See [`MetricDefinition::default_frequency`].
    pub default_frequency: ReportFrequency,
    /// See [`MetricDefinition::unit`].
    pub unit: &'a str,
    /// Display order in the catalogue.
    pub position: i32,
}

fn position(index: usize) -> i32 {
    i32::try_from(index).unwrap_or(i32::MAX)
}

impl<'a> NewMetricDefinition<'a> {
    /// The row of one catalogue metric.
    pub fn from_catalogue(metric: &'a MetricDefinition, index: usize) -> Self {
        Self {
            key: &metric.key,
            system: metric.system,
            metric_type: &metric.metric_type,
            parent_key: metric.parent_key.as_deref(),
            display_name: &metric.display_name,
            description: &metric.description,
            category: metric.category,
            measurement_type: metric.measurement_type,
            default_frequency: metric.default_frequency,
            unit: &metric.unit,
            position: position(index),
        }
    }
}

/// A `metric_breakdowns` row.
#[derive(Debug, Insertable)]
#[diesel(table_name = metric_breakdowns)]
pub struct NewMetricBreakdown<'a> {
    /// The metric.
    pub metric_key: &'a str,
    /// See [`Breakdown::dimension`].
    pub dimension_id: &'a str,
    /// See [`Breakdown::display_name`].
    pub display_name: &'a str,
    /// See [`Breakdown::required`].
    pub is_required: bool,
    /// Display order within the metric.
    pub position: i32,
}

impl<'a> NewMetricBreakdown<'a> {
    /// The row of one breakdown of a catalogue metric.
    pub fn from_catalogue(
        metric: &'a MetricDefinition,
        breakdown: &'a Breakdown,
        index: usize,
    ) -> Self {
        Self {
            metric_key: &metric.key,
            dimension_id: &breakdown.dimension,
            display_name: &breakdown.display_name,
            is_required: breakdown.required,
            position: position(index),
        }
    }
}

/// A `breakdown_members` row.
#[derive(Debug, Insertable)]
#[diesel(table_name = breakdown_members)]
pub struct NewBreakdownMember<'a> {
    /// The metric.
    pub metric_key: &'a str,
    /// The breakdown's dimension id.
    pub dimension_id: &'a str,
    /// See [`BreakdownMember::name`].
    pub member: &'a str,
    /// See [`BreakdownMember::label`].
    pub label: &'a str,
    /// Display order within the breakdown.
    pub position: i32,
}

impl<'a> NewBreakdownMember<'a> {
    /// The row of one member of a breakdown of a catalogue metric.
    pub fn from_catalogue(
        metric: &'a MetricDefinition,
        breakdown: &'a Breakdown,
        member: &'a BreakdownMember,
        index: usize,
    ) -> Self {
        Self {
            metric_key: &metric.key,
            dimension_id: &breakdown.dimension,
            member: &member.name,
            label: &member.label,
            position: position(index),
        }
    }
}

/// An `includes_excludes_items` row.
#[derive(Debug, Insertable)]
#[diesel(table_name = includes_excludes_items)]
pub struct NewChecklistItem<'a> {
    /// The metric.
    pub metric_key: &'a str,
    /// See [`ChecklistItem::key`].
    pub item_key: &'a str,
    /// Index of the item's group within the metric.
    pub group_index: i32,
    /// See [`ChecklistGroup::multiselect`].
    pub is_multiselect: bool,
    /// See [`ChecklistItem::label`].
    pub label: &'a str,
    /// See [`ChecklistItem::default_included`].
    pub default_included: bool,
    /// Display order within the metric.
    pub position: i32,
}

impl<'a> NewChecklistItem<'a> {
    /// The row of one checklist item of a catalogue metric.
    pub fn from_catalogue(
        metric: &'a MetricDefinition,
        group_index: usize,
        group: &ChecklistGroup,
        item: &'a ChecklistItem,
        index: usize,
    ) -> Self {
        Self {
            metric_key: &metric.key,
            item_key: &item.key,
            group_index: position(group_index),
            is_multiselect: group.multiselect,
            label: &item.label,
            default_included: item.default_included,
            position: position(index),
        }
    }
}

/// The `catalogue_state` row.
#[derive(Debug, Insertable)]
#[diesel(table_name = catalogue_state)]
pub struct NewCatalogueState<'a> {
    /// The fingerprint of the synced catalogue file.
    pub content_hash: &'a str,
}
