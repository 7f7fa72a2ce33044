//! An agency's settings for catalogue metrics. Missing rows and NULL columns mean the
//! catalogue's defaults.

use diesel::prelude::*;

use crate::db::schema::{metric_setting_answers, metric_setting_members, metric_settings};
use crate::models::enums::ReportFrequency;
use crate::models::ids::AgencyId;

/// An agency's setting for one metric.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = metric_settings)]
pub struct NewMetricSetting {
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric.
    pub metric_key: String,
    /// Whether the agency reports it.
    pub is_enabled: Option<bool>,
    /// How often the agency reports it, when not the catalogue's frequency.
    pub frequency: Option<ReportFrequency>,
    /// First month (1–12) of the reporting year of an annual metric.
    pub starting_month: Option<i16>,
    /// Whether supervision data is split by subsystem.
    pub is_disaggregated_by_subsystem: Option<bool>,
    /// The agency's note on how it defines the metric.
    pub definition_note: Option<String>,
}

impl NewMetricSetting {
    /// A setting that keeps every catalogue default.
    pub fn new(agency_id: AgencyId, metric_key: impl Into<String>) -> Self {
        Self {
            agency_id,
            metric_key: metric_key.into(),
            is_enabled: None,
            frequency: None,
            starting_month: None,
            is_disaggregated_by_subsystem: None,
            definition_note: None,
        }
    }
}

/// An agency's setting for one breakdown member of a metric.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = metric_setting_members)]
pub struct NewMetricSettingMember {
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric.
    pub metric_key: String,
    /// The breakdown.
    pub dimension_id: String,
    /// The member.
    pub member: String,
    /// Whether the agency reports this member.
    pub is_enabled: Option<bool>,
    /// What the agency counts under this member.
    pub description: Option<String>,
}

/// An agency's answer to one includes/excludes item.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = metric_setting_answers)]
pub struct NewMetricSettingAnswer {
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric.
    pub metric_key: String,
    /// The checklist item.
    pub item_key: String,
    /// Whether the agency counts the item in the metric.
    pub is_included: bool,
}
