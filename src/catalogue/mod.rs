//! The standard metric catalogue: every metric agencies may report, with its breakdowns and
//! includes/excludes checklist.
//!
//! The catalogue is versioned data of the project (`catalogue.json` beside this file), not
//! something users edit. It is parsed and validated once at start-up, kept in memory for the
//! API (catalogue fields resolve without SQL) and synced into the database ([`sync`]) so that
//! settings and datapoints can reference it with foreign keys.

pub mod sync;

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::models::enums::{MeasurementType, MetricCategory, ReportFrequency, System};

/// The catalogue file shipped with the server.
const STANDARD_CATALOGUE: &str = include_str!("catalogue.json");

/// Why a catalogue file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The file is not JSON of the expected shape (unknown system, missing field, ...).
    #[error("the catalogue file cannot be read: {0}")]
    Parse(#[from] serde_json::Error),
    /// The file parses but breaks a rule of the catalogue.
    #[error("the catalogue is invalid: {0}")]
    Invalid(String),
}

/// A system as the catalogue describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct SystemInfo {
    /// The system.
    pub key: System,
    /// Its name for people.
    pub display_name: String,
    /// What kind of agency reports for it.
    pub description: String,
}

/// One item of an includes/excludes checklist.
#[derive(Debug, Clone, Deserialize)]
pub struct ChecklistItem {
    /// Stable key of the item, unique within the metric.
    pub key: String,
    /// The item for people.
    pub label: String,
    /// Whether the catalogue counts this item in the metric by default.
    #[serde(rename = "default")]
    pub default_included: bool,
}

/// A group of checklist items answered together.
#[derive(Debug, Clone, Deserialize)]
pub struct ChecklistGroup {
    /// Whether several items of the group may apply at once.
    pub multiselect: bool,
    /// The items, in display order.
    pub items: Vec<ChecklistItem>,
}

/// One member of a breakdown (a category values are split into).
#[derive(Debug, Clone, Deserialize)]
pub struct BreakdownMember {
    /// Stable SCREAMING_SNAKE_CASE name, unique within the breakdown.
    pub name: String,
    /// The member for people.
    pub label: String,
}

/// A breakdown (disaggregation) of a metric.
#[derive(Debug, Clone, Deserialize)]
pub struct Breakdown {
    /// The dimension id, such as `metric/offense/type`.
    pub dimension: String,
    /// The breakdown for people.
    pub display_name: String,
    /// Whether agencies are expected to report it.
    pub required: bool,
    /// The members, in display order.
    pub members: Vec<BreakdownMember>,
}

/// A metric of the catalogue.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricDefinition {
    /// `<SYSTEM>_<METRIC_TYPE>`, such as `LAW_ENFORCEMENT_ARRESTS`.
    pub key: String,
    /// The system the metric belongs to.
    pub system: System,
    /// The kind of metric, shared across systems (`FUNDING`, `ARRESTS`).
    pub metric_type: String,
    /// For a per-subsystem copy, the key of the SUPERVISION metric it copies.
    #[serde(default)]
    pub parent_key: Option<String>,
    /// The metric for people.
    pub display_name: String,
    /// What the metric counts.
    pub description: String,
    /// The group the metric is shown under.
    pub category: MetricCategory,
    /// How values combine over time.
    pub measurement_type: MeasurementType,
    /// How often the metric is reported unless an agency chooses otherwise.
    #[serde(rename = "frequency")]
    pub default_frequency: ReportFrequency,
    /// What one unit of the value is.
    pub unit: String,
    /// The includes/excludes checklist.
    pub includes_excludes: Vec<ChecklistGroup>,
    /// The breakdowns, in display order.
    pub breakdowns: Vec<Breakdown>,
}

impl MetricDefinition {
    /// The breakdown with this dimension id.
    pub fn breakdown(&self, dimension: &str) -> Option<&Breakdown> {
        self.breakdowns.iter().find(|b| b.dimension == dimension)
    }

    /// All checklist items with the index of their group.
    pub fn checklist_items(
        &self,
    ) -> impl Iterator<Item = (usize, &ChecklistGroup, &ChecklistItem)> {
        self.includes_excludes
            .iter()
            .enumerate()
            .flat_map(|(index, group)| group.items.iter().map(move |item| (index, group, item)))
    }
}

#[derive(Deserialize)]
struct CatalogueFile {
    systems: Vec<SystemInfo>,
    supervision_subsystems: Vec<System>,
    metrics: Vec<MetricDefinition>,
}

/// The validated catalogue, with the per-subsystem copies of the supervision metrics.
#[derive(Debug, Clone)]
pub struct Catalogue {
    systems: Vec<SystemInfo>,
    metrics: Vec<MetricDefinition>,
    by_key: HashMap<String, usize>,
    content_hash: String,
}

impl Catalogue {
    /// The catalogue shipped with the server.
    pub fn standard() -> Result<Self, CatalogueError> {
        Self::from_json(STANDARD_CATALOGUE)
    }

    /// Parses, expands and validates a catalogue file.
    pub fn from_json(text: &str) -> Result<Self, CatalogueError> {
        let file: CatalogueFile = serde_json::from_str(text)?;
        let metrics = expand_subsystems(file.metrics, &file.supervision_subsystems)?;
        validate(&file.systems, &metrics)?;
        let by_key = metrics
            .iter()
            .enumerate()
            .map(|(index, metric)| (metric.key.clone(), index))
            .collect();
        Ok(Self {
            systems: file.systems,
            metrics,
            by_key,
            content_hash: format!("{:016x}", fnv1a(text.as_bytes())),
        })
    }

    /// Every system, in display order.
    pub fn systems(&self) -> &[SystemInfo] {
        &self.systems
    }

    /// The description of one system.
    pub fn system(&self, system: System) -> Option<&SystemInfo> {
        self.systems.iter().find(|info| info.key == system)
    }

    /// Every metric, in display order (each subsystem copy after the metric it copies).
    pub fn metrics(&self) -> &[MetricDefinition] {
        &self.metrics
    }

    /// The metric with this key.
    pub fn metric(&self, key: &str) -> Option<&MetricDefinition> {
        self.by_key.get(key).map(|&index| &self.metrics[index])
    }

    /// The metrics of one system.
    pub fn metrics_of(&self, system: System) -> impl Iterator<Item = &MetricDefinition> {
        self.metrics
            .iter()
            .filter(move |metric| metric.system == system)
    }

    /// A fingerprint of the file the catalogue was read from; the sync skips an unchanged one.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }
}

/// Adds, after each SUPERVISION metric, its copy for every supervision subsystem.
fn expand_subsystems(
    metrics: Vec<MetricDefinition>,
    subsystems: &[System],
) -> Result<Vec<MetricDefinition>, CatalogueError> {
    if let Some(bad) = subsystems.iter().find(|s| !s.is_supervision_subsystem()) {
        return Err(CatalogueError::Invalid(format!(
            "{} is not a supervision subsystem",
            bad.key()
        )));
    }
    let mut expanded = Vec::with_capacity(metrics.len() * 2);
    for metric in metrics {
        if metric.parent_key.is_some() {
            return Err(CatalogueError::Invalid(format!(
                "{}: subsystem copies are derived, not listed",
                metric.key
            )));
        }
        let copies: Vec<MetricDefinition> = if metric.system == System::Supervision {
            subsystems
                .iter()
                .map(|&subsystem| MetricDefinition {
                    key: format!("{}_{}", subsystem.key(), metric.metric_type),
                    system: subsystem,
                    parent_key: Some(metric.key.clone()),
                    ..metric.clone()
                })
                .collect()
        } else {
            Vec::new()
        };
        expanded.push(metric);
        expanded.extend(copies);
    }
    Ok(expanded)
}

fn is_constant_case(text: &str) -> bool {
    !text.is_empty()
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn validate(systems: &[SystemInfo], metrics: &[MetricDefinition]) -> Result<(), CatalogueError> {
    let invalid = |message: String| Err(CatalogueError::Invalid(message));
    let mut described = HashSet::new();
    for info in systems {
        if !described.insert(info.key) {
            return invalid(format!("system {} is described twice", info.key.key()));
        }
    }
    let mut keys = HashSet::new();
    for metric in metrics {
        let key = &metric.key;
        if !is_constant_case(key) || !is_constant_case(&metric.metric_type) {
            return invalid(format!(
                "{key:?}: keys and metric types are SCREAMING_SNAKE_CASE"
            ));
        }
        if *key != format!("{}_{}", metric.system.key(), metric.metric_type) {
            return invalid(format!("{key}: the key must be <SYSTEM>_<METRIC_TYPE>"));
        }
        if !keys.insert(key.as_str()) {
            return invalid(format!("{key}: the key is listed twice"));
        }
        if !described.contains(&metric.system) {
            return invalid(format!(
                "{key}: system {} is not described",
                metric.system.key()
            ));
        }
        if metric.display_name.trim().is_empty() || metric.description.trim().is_empty() {
            return invalid(format!(
                "{key}: a display name and a description are required"
            ));
        }
        let mut dimensions = HashSet::new();
        for breakdown in &metric.breakdowns {
            let dimension = &breakdown.dimension;
            let well_formed = !dimension.is_empty()
                && dimension
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '/');
            if !well_formed {
                return invalid(format!("{key}: malformed dimension id {dimension:?}"));
            }
            if !dimensions.insert(dimension.as_str()) {
                return invalid(format!("{key}: dimension {dimension} is listed twice"));
            }
            if breakdown.members.is_empty() {
                return invalid(format!("{key}: breakdown {dimension} has no members"));
            }
            let mut names = HashSet::new();
            for member in &breakdown.members {
                if !is_constant_case(&member.name) {
                    return invalid(format!("{key}: malformed member name {:?}", member.name));
                }
                if !names.insert(member.name.as_str()) {
                    return invalid(format!(
                        "{key}: member {} is listed twice in {dimension}",
                        member.name
                    ));
                }
            }
        }
        let mut items = HashSet::new();
        for (_, _, item) in metric.checklist_items() {
            if !is_constant_case(&item.key) {
                return invalid(format!("{key}: malformed checklist item {:?}", item.key));
            }
            if !items.insert(item.key.as_str()) {
                return invalid(format!(
                    "{key}: checklist item {} is listed twice",
                    item.key
                ));
            }
        }
    }
    Ok(())
}

/// FNV-1a, 64 bits: a stable fingerprint (std's hasher may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(metric: &str) -> String {
        format!(
            r#"{{"systems": [{{"key": "JAILS", "display_name": "Jails", "description": "d"}},
                             {{"key": "SUPERVISION", "display_name": "S", "description": "d"}},
                             {{"key": "PAROLE", "display_name": "P", "description": "d"}}],
                "supervision_subsystems": ["PAROLE"],
                "metrics": [{metric}]}}"#
        )
    }

    fn metric(key: &str, system: &str, metric_type: &str, breakdowns: &str) -> String {
        format!(
            r#"{{"key": "{key}", "system": "{system}", "metric_type": "{metric_type}",
                "display_name": "Name", "description": "What it counts.",
                "category": "POPULATIONS", "measurement_type": "INSTANT", "frequency": "MONTHLY",
                "unit": "People", "includes_excludes": [], "breakdowns": [{breakdowns}]}}"#
        )
    }

    fn error_of(text: &str) -> String {
        match Catalogue::from_json(text) {
            Ok(_) => panic!("the catalogue was accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn the_standard_catalogue_is_valid() {
        let catalogue = Catalogue::standard().expect("valid catalogue");
        assert_eq!(catalogue.metrics().len(), 117);
        assert!(catalogue.metric("PAROLE_POPULATION").is_some());
    }

    #[test]
    fn supervision_metrics_are_copied_for_each_subsystem() {
        let text = minimal(&metric(
            "SUPERVISION_POPULATION",
            "SUPERVISION",
            "POPULATION",
            "",
        ));
        let catalogue = Catalogue::from_json(&text).expect("valid");
        let keys: Vec<_> = catalogue.metrics().iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["SUPERVISION_POPULATION", "PAROLE_POPULATION"]);
        let copy = catalogue.metric("PAROLE_POPULATION").expect("copy");
        assert_eq!(copy.parent_key.as_deref(), Some("SUPERVISION_POPULATION"));
        assert_eq!(copy.system, System::Parole);
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let one = metric("JAILS_POPULATION", "JAILS", "POPULATION", "");
        let text = minimal(&format!("{one}, {one}"));
        assert!(
            error_of(&text).contains("listed twice"),
            "{}",
            error_of(&text)
        );
    }

    #[test]
    fn a_key_with_a_space_is_refused() {
        let text = minimal(&metric(
            "JAILS_CASES REFERRED",
            "JAILS",
            "CASES REFERRED",
            "",
        ));
        assert!(error_of(&text).contains("SCREAMING_SNAKE_CASE"));
    }

    #[test]
    fn a_key_that_does_not_match_its_system_is_refused() {
        let text = minimal(&metric("PRISONS_POPULATION", "JAILS", "POPULATION", ""));
        assert!(error_of(&text).contains("<SYSTEM>_<METRIC_TYPE>"));
    }

    #[test]
    fn unknown_systems_are_refused() {
        let text = minimal(&metric("MOON_POPULATION", "MOON", "POPULATION", ""));
        assert!(error_of(&text).contains("cannot be read"));
    }

    #[test]
    fn duplicate_breakdown_members_are_refused() {
        let breakdown = r#"{"dimension": "global/sex", "display_name": "Sex", "required": false,
            "members": [{"name": "MALE", "label": "Male"}, {"name": "MALE", "label": "Men"}]}"#;
        let text = minimal(&metric(
            "JAILS_POPULATION",
            "JAILS",
            "POPULATION",
            breakdown,
        ));
        assert!(error_of(&text).contains("member MALE is listed twice"));
    }

    #[test]
    fn the_fingerprint_follows_the_content() {
        let a = minimal(&metric("JAILS_POPULATION", "JAILS", "POPULATION", ""));
        let b = a.replace("What it counts.", "What it counts now.");
        let hash = |text: &str| {
            Catalogue::from_json(text)
                .expect("valid")
                .content_hash()
                .to_owned()
        };
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
    }
}
