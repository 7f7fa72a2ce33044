//! An agency's settings for catalogue metrics. Missing rows and NULL columns mean the
//! catalogue's defaults.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::catalogue::MetricDefinition;
use crate::db::schema::{metric_setting_answers, metric_setting_members, metric_settings};
use crate::models::enums::{ReportFrequency, System};
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

/// An agency's stored setting for one metric.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = metric_settings, check_for_backend(diesel::pg::Pg))]
pub struct MetricSetting {
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric.
    pub metric_key: String,
    /// Whether the agency reports it.
    pub is_enabled: Option<bool>,
    /// How often the agency reports it.
    pub frequency: Option<ReportFrequency>,
    /// First month (1–12) of the reporting year of an annual metric.
    pub starting_month: Option<i16>,
    /// Whether supervision data is split by subsystem.
    pub is_disaggregated_by_subsystem: Option<bool>,
    /// The agency's note on how it defines the metric.
    pub definition_note: Option<String>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// An agency's stored setting for one breakdown member.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = metric_setting_members, check_for_backend(diesel::pg::Pg))]
pub struct MemberSetting {
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

/// An agency's stored answer to one checklist item.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = metric_setting_answers, check_for_backend(diesel::pg::Pg))]
pub struct ChecklistAnswer {
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric.
    pub metric_key: String,
    /// The item.
    pub item_key: String,
    /// Whether the agency counts the item.
    pub is_included: bool,
}

/// Everything one agency has set about its metrics; what it has not set is the catalogue's
/// default.
#[derive(Debug, Clone, Default)]
pub struct AgencyMetricSettings {
    settings: HashMap<String, MetricSetting>,
    members: HashMap<(String, String, String), MemberSetting>,
    answers: HashMap<(String, String), bool>,
}

impl AgencyMetricSettings {
    /// The settings of these agencies (every agency gets an entry).
    pub async fn of_agencies(
        conn: &mut AsyncPgConnection,
        agencies: &[AgencyId],
    ) -> QueryResult<HashMap<AgencyId, Self>> {
        let mut all: HashMap<AgencyId, Self> = agencies
            .iter()
            .map(|&agency| (agency, Self::default()))
            .collect();
        if agencies.is_empty() {
            return Ok(all);
        }
        let settings: Vec<MetricSetting> = metric_settings::table
            .filter(metric_settings::agency_id.eq_any(agencies))
            .select(MetricSetting::as_select())
            .load(conn)
            .await?;
        let members: Vec<MemberSetting> = metric_setting_members::table
            .filter(metric_setting_members::agency_id.eq_any(agencies))
            .select(MemberSetting::as_select())
            .load(conn)
            .await?;
        let answers: Vec<ChecklistAnswer> = metric_setting_answers::table
            .filter(metric_setting_answers::agency_id.eq_any(agencies))
            .select(ChecklistAnswer::as_select())
            .load(conn)
            .await?;
        for setting in settings {
            all.entry(setting.agency_id)
                .or_default()
                .settings
                .insert(setting.metric_key.clone(), setting);
        }
        for member in members {
            let key = (
                member.metric_key.clone(),
                member.dimension_id.clone(),
                member.member.clone(),
            );
            all.entry(member.agency_id)
                .or_default()
                .members
                .insert(key, member);
        }
        for answer in answers {
            all.entry(answer.agency_id)
                .or_default()
                .answers
                .insert((answer.metric_key, answer.item_key), answer.is_included);
        }
        Ok(all)
    }

    /// The stored setting of a metric, if any.
    pub fn setting(&self, metric: &str) -> Option<&MetricSetting> {
        self.settings.get(metric)
    }

    /// The metric as this agency reports it: each setting, or the catalogue default.
    /// None when the metric is not of the agency's systems.
    pub fn effective(
        &self,
        metric: &MetricDefinition,
        systems: &[System],
    ) -> Option<EffectiveMetric> {
        if !systems.contains(&metric.system) {
            return None;
        }
        let setting = self.setting(&metric.key);
        let parent_split = metric
            .parent_key
            .as_deref()
            .and_then(|parent| self.setting(parent))
            .and_then(|parent| parent.is_disaggregated_by_subsystem);
        // A subsystem copy is reported when the agency splits supervision data by subsystem,
        // or when it reports that subsystem alone.
        let enabled_by_default = match &metric.parent_key {
            Some(_) => parent_split.unwrap_or(!systems.contains(&System::Supervision)),
            None => true,
        };
        let frequency = setting
            .and_then(|s| s.frequency)
            .unwrap_or(metric.default_frequency);
        let starting_month = match frequency {
            ReportFrequency::Monthly => None,
            ReportFrequency::Annual => Some(
                setting
                    .and_then(|s| s.starting_month)
                    .and_then(|month| u32::try_from(month).ok())
                    .unwrap_or(1),
            ),
        };
        Some(EffectiveMetric {
            is_enabled: setting
                .and_then(|s| s.is_enabled)
                .unwrap_or(enabled_by_default),
            frequency,
            starting_month,
            is_disaggregated_by_subsystem: setting
                .and_then(|s| s.is_disaggregated_by_subsystem)
                .unwrap_or(false),
        })
    }

    /// Whether the agency reports a breakdown member (default: yes).
    pub fn member_enabled(&self, metric: &str, dimension: &str, member: &str) -> bool {
        self.member_setting(metric, dimension, member)
            .and_then(|m| m.is_enabled)
            .unwrap_or(true)
    }

    /// The agency's stored setting for a breakdown member, if any.
    pub fn member_setting(
        &self,
        metric: &str,
        dimension: &str,
        member: &str,
    ) -> Option<&MemberSetting> {
        self.members
            .get(&(metric.to_owned(), dimension.to_owned(), member.to_owned()))
    }

    /// The agency's answer to a checklist item, if it gave one.
    pub fn answer(&self, metric: &str, item: &str) -> Option<bool> {
        self.answers
            .get(&(metric.to_owned(), item.to_owned()))
            .copied()
    }
}

/// A metric's settings as they apply to one agency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveMetric {
    /// Whether the agency reports the metric.
    pub is_enabled: bool,
    /// How often.
    pub frequency: ReportFrequency,
    /// For annual metrics, the first month (1–12) of the reporting year.
    pub starting_month: Option<u32>,
    /// Whether supervision data is split by subsystem.
    pub is_disaggregated_by_subsystem: bool,
}

impl EffectiveMetric {
    /// Whether a report of `frequency` starting in `month` collects this metric.
    pub fn is_due_in(&self, frequency: ReportFrequency, month: u32) -> bool {
        self.is_enabled
            && self.frequency == frequency
            && (frequency == ReportFrequency::Monthly || self.starting_month == Some(month))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;

    fn setting(agency: AgencyId, metric: &str) -> MetricSetting {
        MetricSetting {
            agency_id: agency,
            metric_key: metric.into(),
            is_enabled: None,
            frequency: None,
            starting_month: None,
            is_disaggregated_by_subsystem: None,
            definition_note: None,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn defaults_come_from_the_catalogue() {
        let catalogue = Catalogue::standard().unwrap();
        let none = AgencyMetricSettings::default();
        let arrests = catalogue.metric("LAW_ENFORCEMENT_ARRESTS").unwrap();
        let effective = none.effective(arrests, &[System::LawEnforcement]).unwrap();
        assert!(effective.is_enabled);
        assert_eq!(effective.frequency, ReportFrequency::Monthly);
        assert_eq!(effective.starting_month, None);
        assert!(
            none.effective(arrests, &[System::Jails]).is_none(),
            "not of the agency's systems"
        );
        let funding = catalogue.metric("LAW_ENFORCEMENT_FUNDING").unwrap();
        let annual = none.effective(funding, &[System::LawEnforcement]).unwrap();
        assert_eq!(annual.starting_month, Some(1));
        assert!(annual.is_due_in(ReportFrequency::Annual, 1));
        assert!(!annual.is_due_in(ReportFrequency::Annual, 7));
        assert!(!annual.is_due_in(ReportFrequency::Monthly, 1));
    }

    #[test]
    fn settings_override_defaults() {
        let catalogue = Catalogue::standard().unwrap();
        let agency = AgencyId(1);
        let mut settings = AgencyMetricSettings::default();
        let mut funding = setting(agency, "LAW_ENFORCEMENT_FUNDING");
        funding.starting_month = Some(7);
        let mut arrests = setting(agency, "LAW_ENFORCEMENT_ARRESTS");
        arrests.is_enabled = Some(false);
        settings
            .settings
            .insert(funding.metric_key.clone(), funding);
        settings
            .settings
            .insert(arrests.metric_key.clone(), arrests);
        let systems = [System::LawEnforcement];
        let funding = settings
            .effective(
                catalogue.metric("LAW_ENFORCEMENT_FUNDING").unwrap(),
                &systems,
            )
            .unwrap();
        assert!(funding.is_due_in(ReportFrequency::Annual, 7));
        let arrests = settings
            .effective(
                catalogue.metric("LAW_ENFORCEMENT_ARRESTS").unwrap(),
                &systems,
            )
            .unwrap();
        assert!(!arrests.is_enabled);
        assert!(!arrests.is_due_in(ReportFrequency::Monthly, 1));
    }

    #[test]
    fn subsystem_copies_follow_the_split_of_their_supervision_metric() {
        let catalogue = Catalogue::standard().unwrap();
        let parole = catalogue.metric("PAROLE_POPULATION").unwrap();
        let mut settings = AgencyMetricSettings::default();
        let both = [System::Supervision, System::Parole];
        assert!(
            !settings.effective(parole, &both).unwrap().is_enabled,
            "not split: reported in total"
        );
        assert!(
            settings
                .effective(parole, &[System::Parole])
                .unwrap()
                .is_enabled,
            "parole alone"
        );
        let mut split = setting(AgencyId(1), "SUPERVISION_POPULATION");
        split.is_disaggregated_by_subsystem = Some(true);
        settings.settings.insert(split.metric_key.clone(), split);
        assert!(
            settings.effective(parole, &both).unwrap().is_enabled,
            "split by subsystem"
        );
    }
}
