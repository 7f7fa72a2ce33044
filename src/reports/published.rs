//! What an agency publishes: the one rule the public dashboard's series, the public feed and
//! the export all follow.
//!
//! A value is public when its report is PUBLISHED, its agency's dashboard is on, its metric
//! is one the agency reports (enabled, of its systems), its report has the metric's current
//! frequency, and — for a breakdown value — the agency reports that member. Free-text
//! sub-categories are never public.

use serde::Serialize;

use crate::catalogue::{Catalogue, MetricDefinition};
use crate::models::agency::Agency;
use crate::models::enums::{ReportFrequency, ReportStatus};
use crate::models::ids::AgencyId;
use crate::models::metric_setting::AgencyMetricSettings;

/// A metric an agency publishes, and in which reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedMetric {
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric's key.
    pub metric_key: String,
    /// Values of reports of this frequency are shown; the others are history of an earlier
    /// setting.
    pub frequency: ReportFrequency,
}

/// A breakdown member an agency does not report: its values stay private.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HiddenMember {
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric's key.
    pub metric_key: String,
    /// The breakdown.
    pub dimension_id: String,
    /// The member.
    pub member: String,
}

/// Everything one or more agencies publish.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PublishedScope {
    /// The metrics shown.
    pub metrics: Vec<PublishedMetric>,
    /// The members of those metrics that are not.
    pub hidden_members: Vec<HiddenMember>,
}

impl PublishedScope {
    /// What `agency` publishes under `settings`. Nothing when its dashboard is off.
    pub fn of(catalogue: &Catalogue, agency: &Agency, settings: &AgencyMetricSettings) -> Self {
        let mut scope = Self::default();
        if agency.is_dashboard_enabled {
            scope.add(catalogue, agency, settings);
        }
        scope
    }

    /// Adds what `agency` would publish under `settings`, whether or not its dashboard is on
    /// (members of an agency read its published data before it goes public).
    pub fn add(&mut self, catalogue: &Catalogue, agency: &Agency, settings: &AgencyMetricSettings) {
        let systems = agency.systems();
        for metric in catalogue.metrics() {
            let Some(frequency) = published_frequency(metric, &systems, settings) else {
                continue;
            };
            self.metrics.push(PublishedMetric {
                agency_id: agency.id,
                metric_key: metric.key.clone(),
                frequency,
            });
            for breakdown in &metric.breakdowns {
                for member in &breakdown.members {
                    if !settings.member_enabled(&metric.key, &breakdown.dimension, &member.name) {
                        self.hidden_members.push(HiddenMember {
                            agency_id: agency.id,
                            metric_key: metric.key.clone(),
                            dimension_id: breakdown.dimension.clone(),
                            member: member.name.clone(),
                        });
                    }
                }
            }
        }
    }

    /// The metric, when the agency publishes it.
    pub fn metric(&self, agency: AgencyId, key: &str) -> Option<&PublishedMetric> {
        self.metrics
            .iter()
            .find(|metric| metric.agency_id == agency && metric.metric_key == key)
    }

    /// Whether a breakdown member of a published metric is shown.
    pub fn shows_member(
        &self,
        agency: AgencyId,
        metric: &str,
        dimension: &str,
        member: &str,
    ) -> bool {
        !self.hidden_members.iter().any(|hidden| {
            hidden.agency_id == agency
                && hidden.metric_key == metric
                && hidden.dimension_id == dimension
                && hidden.member == member
        })
    }

    /// Whether a stored value is public under this scope.
    pub fn shows(&self, value: &PublicCandidate<'_>) -> bool {
        value.status == ReportStatus::Published
            && value.sub_category.is_none()
            && self
                .metric(value.agency_id, value.metric_key)
                .is_some_and(|metric| metric.frequency == value.frequency)
            && match (value.dimension_id, value.member) {
                (Some(dimension), Some(member)) => {
                    self.shows_member(value.agency_id, value.metric_key, dimension, member)
                }
                _ => true,
            }
    }
}

/// The facts of a stored value that decide whether it is public.
#[derive(Debug, Clone, Copy)]
pub struct PublicCandidate<'a> {
    /// The agency.
    pub agency_id: AgencyId,
    /// The metric's key.
    pub metric_key: &'a str,
    /// The report's status.
    pub status: ReportStatus,
    /// The report's frequency.
    pub frequency: ReportFrequency,
    /// The breakdown, for a breakdown value.
    pub dimension_id: Option<&'a str>,
    /// The member, for a breakdown value.
    pub member: Option<&'a str>,
    /// The sub-category, for a free-text sub-category value.
    pub sub_category: Option<&'a str>,
}

/// The frequency an agency publishes `metric` in, or none when it does not publish it.
fn published_frequency(
    metric: &MetricDefinition,
    systems: &[crate::models::enums::System],
    settings: &AgencyMetricSettings,
) -> Option<ReportFrequency> {
    settings
        .effective(metric, systems)
        .filter(|effective| effective.is_enabled)
        .map(|effective| effective.frequency)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agency(dashboard: bool) -> Agency {
        Agency {
            id: AgencyId(7),
            name: "Test PD".into(),
            state_code: "us_ca".into(),
            county_code: None,
            systems: vec![Some(crate::models::enums::System::LawEnforcement)],
            is_superagency: false,
            super_agency_id: None,
            is_dashboard_enabled: dashboard,
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_private_dashboard_publishes_nothing_and_drafts_are_never_public() {
        let catalogue = Catalogue::standard().unwrap();
        let settings = AgencyMetricSettings::default();
        assert!(
            PublishedScope::of(&catalogue, &agency(false), &settings)
                .metrics
                .is_empty()
        );
        let scope = PublishedScope::of(&catalogue, &agency(true), &settings);
        let arrests = scope
            .metric(AgencyId(7), "LAW_ENFORCEMENT_ARRESTS")
            .unwrap();
        assert_eq!(arrests.frequency, ReportFrequency::Monthly);
        assert!(scope.metric(AgencyId(7), "JAILS_ADMISSIONS").is_none());
        let mut value = PublicCandidate {
            agency_id: AgencyId(7),
            metric_key: "LAW_ENFORCEMENT_ARRESTS",
            status: ReportStatus::Published,
            frequency: ReportFrequency::Monthly,
            dimension_id: None,
            member: None,
            sub_category: None,
        };
        assert!(scope.shows(&value));
        value.status = ReportStatus::Draft;
        assert!(!scope.shows(&value));
        value.status = ReportStatus::Published;
        value.frequency = ReportFrequency::Annual;
        assert!(!scope.shows(&value), "a report of an earlier frequency");
        value.frequency = ReportFrequency::Monthly;
        value.dimension_id = Some("metric/offense/type");
        value.member = Some("DRUG");
        value.sub_category = Some("cannabis");
        assert!(!scope.shows(&value), "sub-categories are free text");
    }
}
