//! An agency's settings for catalogue metrics. Missing rows and NULL columns mean the
//! catalogue's defaults.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Integer, Nullable, SmallInt, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::catalogue::MetricDefinition;
use crate::db::fixed::fixed_query;
use crate::db::schema::{metric_setting_answers, metric_setting_members, metric_settings};
use crate::models::enums::{ReportFrequency, System};
use crate::models::ids::AgencyId;

/// A row of one of the three settings tables, as [`AgencyMetricSettings::of_agencies`] reads
/// them together: `kind` 0 is a metric's setting, 1 a member's (dimension and member), 2 a
/// checklist answer (item in `dimension_id`, answer in `is_enabled`).
#[derive(QueryableByName)]
struct SettingRow {
    #[diesel(sql_type = SmallInt)]
    kind: i16,
    #[diesel(sql_type = Integer)]
    agency_id: i32,
    #[diesel(sql_type = Text)]
    metric_key: String,
    #[diesel(sql_type = Nullable<Text>)]
    dimension_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    member: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    is_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<crate::db::schema::sql_types::ReportFrequency>)]
    frequency: Option<ReportFrequency>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    starting_month: Option<i16>,
    #[diesel(sql_type = Nullable<Bool>)]
    is_disaggregated_by_subsystem: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    text: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    updated_at: Option<DateTime<Utc>>,
}

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
    // By metric: looked up by borrowed keys, with no allocation per member of a screen.
    members: HashMap<String, Vec<MemberSetting>>,
    answers: HashMap<String, Vec<(String, bool)>>,
}

impl AgencyMetricSettings {
    /// The settings of these agencies (every agency gets an entry).
    pub async fn of_agencies(
        conn: &mut &AsyncPgConnection,
        agencies: &[AgencyId],
    ) -> QueryResult<HashMap<AgencyId, Self>> {
        let mut all: HashMap<AgencyId, Self> = agencies
            .iter()
            .map(|&agency| (agency, Self::default()))
            .collect();
        if agencies.is_empty() {
            return Ok(all);
        }
        // The three tables in one statement: a row per stored setting, tagged by its table.
        let rows: Vec<SettingRow> = fixed_query::<Array<Integer>, _>(
            "SELECT 0::int2 AS kind, agency_id, metric_key, NULL::text AS dimension_id, \
                 NULL::text AS member, is_enabled, frequency, starting_month, \
                 is_disaggregated_by_subsystem, definition_note AS text, updated_at \
             FROM metric_settings WHERE agency_id = ANY($1) \
             UNION ALL \
             SELECT 1::int2, agency_id, metric_key, dimension_id, member, is_enabled, NULL, \
                 NULL, NULL, description, NULL \
             FROM metric_setting_members WHERE agency_id = ANY($1) \
             UNION ALL \
             SELECT 2::int2, agency_id, metric_key, item_key, NULL, is_included, NULL, NULL, \
                 NULL, NULL, NULL \
             FROM metric_setting_answers WHERE agency_id = ANY($1)",
            agencies.iter().map(|agency| agency.0).collect::<Vec<_>>(),
        )
        .load(conn)
        .await?;
        for row in rows {
            let agency_id = AgencyId(row.agency_id);
            let entry = all.entry(agency_id).or_default();
            match (row.kind, row.dimension_id, row.member, row.updated_at) {
                (0, _, _, Some(updated_at)) => {
                    let setting = MetricSetting {
                        agency_id,
                        metric_key: row.metric_key,
                        is_enabled: row.is_enabled,
                        frequency: row.frequency,
                        starting_month: row.starting_month,
                        is_disaggregated_by_subsystem: row.is_disaggregated_by_subsystem,
                        definition_note: row.text,
                        updated_at,
                    };
                    entry.settings.insert(setting.metric_key.clone(), setting);
                }
                (1, Some(dimension_id), Some(member), _) => {
                    let setting = MemberSetting {
                        agency_id,
                        metric_key: row.metric_key,
                        dimension_id,
                        member,
                        is_enabled: row.is_enabled,
                        description: row.text,
                    };
                    entry
                        .members
                        .entry(setting.metric_key.clone())
                        .or_default()
                        .push(setting);
                }
                (2, Some(item_key), _, _) => {
                    entry
                        .answers
                        .entry(row.metric_key)
                        .or_default()
                        .push((item_key, row.is_enabled.unwrap_or_default()));
                }
                _ => {}
            }
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
            .get(metric)?
            .iter()
            .find(|setting| setting.dimension_id == dimension && setting.member == member)
    }

    /// The agency's answer to a checklist item, if it gave one.
    pub fn answer(&self, metric: &str, item: &str) -> Option<bool> {
        self.answers
            .get(metric)?
            .iter()
            .find(|(key, _)| key == item)
            .map(|&(_, answer)| answer)
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

/// A change of an agency's settings for one metric; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct MetricSettingsChange {
    /// Whether the agency reports the metric.
    pub is_enabled: Option<bool>,
    /// How often.
    pub frequency: Option<ReportFrequency>,
    /// First month of the reporting year.
    pub starting_month: Option<i16>,
    /// Whether supervision data is split by subsystem.
    pub is_disaggregated_by_subsystem: Option<bool>,
    /// The definition note: `Some(None)` removes it.
    pub definition_note: Option<Option<String>>,
    /// Breakdown members to change.
    pub members: Vec<MemberChange>,
    /// Checklist answers: (item, included).
    pub answers: Vec<(String, bool)>,
}

/// A change of one breakdown member's setting; `None` leaves a field as it is.
#[derive(Debug, Clone)]
pub struct MemberChange {
    /// The breakdown.
    pub dimension_id: String,
    /// The member.
    pub member: String,
    /// Whether the agency reports it.
    pub is_enabled: Option<bool>,
    /// What the agency counts under it: `Some(None)` removes the description.
    pub description: Option<Option<String>>,
}

/// Applies `change` to the agency's settings for `metric` in one transaction and records it,
/// with the values before, in the setting history.
pub async fn change_settings(
    conn: &mut AsyncPgConnection,
    agency: AgencyId,
    metric: &str,
    change: &MetricSettingsChange,
    by: Option<crate::models::ids::UserId>,
) -> QueryResult<()> {
    use diesel_async::AsyncConnection;
    conn.transaction(async |conn| {
        // The row first (with no setting of its own: the defaults hold), so that there is
        // always one to lock: two first edits at once then take turns instead of both
        // starting from the defaults, the second undoing the first.
        diesel::insert_into(metric_settings::table)
            .values(&NewMetricSetting::new(agency, metric))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        let before: Option<MetricSetting> = metric_settings::table
            .find((agency, metric))
            .select(MetricSetting::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?;
        let mut row = NewMetricSetting::new(agency, metric);
        if let Some(before) = &before {
            row.is_enabled = before.is_enabled;
            row.frequency = before.frequency;
            row.starting_month = before.starting_month;
            row.is_disaggregated_by_subsystem = before.is_disaggregated_by_subsystem;
            row.definition_note = before.definition_note.clone();
        }
        let mut record = serde_json::Map::new();
        let mut note = |field: &str, old: serde_json::Value, new: serde_json::Value| {
            if old != new {
                record.insert(field.into(), serde_json::json!({ "old": old, "new": new }));
            }
        };
        if let Some(enabled) = change.is_enabled {
            note("isEnabled", serde_json::json!(row.is_enabled), serde_json::json!(enabled));
            row.is_enabled = Some(enabled);
        }
        if let Some(frequency) = change.frequency {
            note("frequency", serde_json::json!(row.frequency.map(|f| format!("{f:?}").to_uppercase())), serde_json::json!(format!("{frequency:?}").to_uppercase()));
            row.frequency = Some(frequency);
        }
        if let Some(month) = change.starting_month {
            note("startingMonth", serde_json::json!(row.starting_month), serde_json::json!(month));
            row.starting_month = Some(month);
        }
        if let Some(split) = change.is_disaggregated_by_subsystem {
            note("isDisaggregatedBySubsystem", serde_json::json!(row.is_disaggregated_by_subsystem), serde_json::json!(split));
            row.is_disaggregated_by_subsystem = Some(split);
        }
        if let Some(definition) = &change.definition_note {
            note("definitionNote", serde_json::json!(row.definition_note), serde_json::json!(definition));
            row.definition_note = definition.clone();
        }
        diesel::insert_into(metric_settings::table)
            .values(&row)
            .on_conflict((metric_settings::agency_id, metric_settings::metric_key))
            .do_update()
            .set((
                metric_settings::is_enabled.eq(row.is_enabled),
                metric_settings::frequency.eq(row.frequency),
                metric_settings::starting_month.eq(row.starting_month),
                metric_settings::is_disaggregated_by_subsystem.eq(row.is_disaggregated_by_subsystem),
                metric_settings::definition_note.eq(row.definition_note.clone()),
                metric_settings::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        let mut members = Vec::new();
        for MemberChange { dimension_id: dimension, member, is_enabled: enabled, description } in &change.members {
            let before: Option<MemberSetting> = metric_setting_members::table
                .find((agency, metric, dimension, member))
                .select(MemberSetting::as_select())
                .first(conn)
                .await
                .optional()?;
            let is_enabled = enabled.or(before.as_ref().and_then(|b| b.is_enabled));
            let description = match description {
                Some(description) => description.clone(),
                None => before.as_ref().and_then(|b| b.description.clone()),
            };
            diesel::insert_into(metric_setting_members::table)
                .values(NewMetricSettingMember {
                    agency_id: agency,
                    metric_key: metric.into(),
                    dimension_id: dimension.clone(),
                    member: member.clone(),
                    is_enabled,
                    description: description.clone(),
                })
                .on_conflict((
                    metric_setting_members::agency_id,
                    metric_setting_members::metric_key,
                    metric_setting_members::dimension_id,
                    metric_setting_members::member,
                ))
                .do_update()
                .set((metric_setting_members::is_enabled.eq(is_enabled), metric_setting_members::description.eq(description.clone())))
                .execute(conn)
                .await?;
            members.push(serde_json::json!({
                "dimensionId": dimension, "member": member,
                "old": { "isEnabled": before.as_ref().and_then(|b| b.is_enabled), "description": before.as_ref().and_then(|b| b.description.clone()) },
                "new": { "isEnabled": is_enabled, "description": description },
            }));
        }
        if !members.is_empty() {
            record.insert("members".into(), serde_json::Value::Array(members));
        }
        let mut answers = Vec::new();
        for (item, included) in &change.answers {
            diesel::insert_into(metric_setting_answers::table)
                .values(NewMetricSettingAnswer {
                    agency_id: agency,
                    metric_key: metric.into(),
                    item_key: item.clone(),
                    is_included: *included,
                })
                .on_conflict((metric_setting_answers::agency_id, metric_setting_answers::metric_key, metric_setting_answers::item_key))
                .do_update()
                .set(metric_setting_answers::is_included.eq(*included))
                .execute(conn)
                .await?;
            answers.push(serde_json::json!({ "key": item, "isIncluded": included }));
        }
        if !answers.is_empty() {
            record.insert("includesExcludes".into(), serde_json::Value::Array(answers));
        }
        if !record.is_empty() {
            diesel::insert_into(crate::db::schema::metric_setting_changes::table)
                .values((
                    crate::db::schema::metric_setting_changes::agency_id.eq(agency),
                    crate::db::schema::metric_setting_changes::metric_key.eq(metric),
                    crate::db::schema::metric_setting_changes::changed_by.eq(by),
                    crate::db::schema::metric_setting_changes::changes.eq(serde_json::Value::Object(record)),
                ))
                .execute(conn)
                .await?;
        }
        Ok(())
    })
    .await
}

/// A recorded change of an agency's metric settings.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::db::schema::metric_setting_changes, check_for_backend(diesel::pg::Pg))]
pub struct SettingChange {
    /// Its id.
    pub id: i64,
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric.
    pub metric_key: String,
    /// Who made it.
    pub changed_by: Option<crate::models::ids::UserId>,
    /// When.
    pub changed_at: DateTime<Utc>,
    /// What changed: each field with its old and new value.
    pub changes: serde_json::Value,
}

impl SettingChange {
    /// The setting changes of these agencies, oldest first.
    pub async fn of_agencies(
        conn: &mut &AsyncPgConnection,
        agencies: &[AgencyId],
    ) -> QueryResult<Vec<Self>> {
        use crate::db::schema::metric_setting_changes as changes;
        if agencies.is_empty() {
            return Ok(Vec::new());
        }
        changes::table
            .filter(changes::agency_id.eq_any(agencies))
            .order(changes::id)
            .select(Self::as_select())
            .load(conn)
            .await
    }
}
