//! The spreadsheet layout agencies already use: which sheet (or CSV file) holds which metric,
//! and for breakdown sheets which column names the member and which breakdown it belongs to.
//!
//! Sheet names resolve within one system. The supervision subsystems (parole, probation, …)
//! use the SUPERVISION sheet names.

use crate::models::enums::System;

/// A breakdown sheet: its name, the column naming the member, and the breakdown's dimension.
type BreakdownSheet = (&'static str, &'static str, &'static str);

/// Per metric (catalogue key of the system's own metric): its aggregate sheet and its
/// breakdown sheets, in the order the template lists them.
const SHEETS: &[(&str, &str, &[BreakdownSheet])] = &[
    (
        "LAW_ENFORCEMENT_EXPENSES",
        "expenses",
        &[("expenses_by_type", "expense_type", "metric/expense/type")],
    ),
    (
        "LAW_ENFORCEMENT_FUNDING",
        "funding",
        &[(
            "funding_by_type",
            "funding_type",
            "metric/law_enforcement/funding/type",
        )],
    ),
    (
        "LAW_ENFORCEMENT_TOTAL_STAFF",
        "staff",
        &[
            (
                "staff_by_type",
                "staff_type",
                "metric/law_enforcement/staff/type",
            ),
            (
                "staff_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
            (
                "staff_by_biological_sex",
                "biological_sex",
                "global/biological_sex",
            ),
        ],
    ),
    (
        "LAW_ENFORCEMENT_CALLS_FOR_SERVICE",
        "calls_for_service",
        &[(
            "calls_for_service_by_type",
            "call_type",
            "metric/law_enforcement/calls_for_service/type",
        )],
    ),
    (
        "LAW_ENFORCEMENT_REPORTED_CRIME",
        "reported_crime",
        &[(
            "reported_crime_by_type",
            "offense_type",
            "metric/offense/type",
        )],
    ),
    (
        "LAW_ENFORCEMENT_ARRESTS",
        "arrests",
        &[
            ("arrests_by_type", "offense_type", "metric/offense/type"),
            (
                "arrests_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
            (
                "arrests_by_biological_sex",
                "biological_sex",
                "global/biological_sex",
            ),
        ],
    ),
    (
        "LAW_ENFORCEMENT_USE_OF_FORCE_INCIDENTS",
        "use_of_force",
        &[(
            "use_of_force_by_type",
            "force_type",
            "metric/law_enforcement/officer_use_of_force_incidents/type",
        )],
    ),
    (
        "LAW_ENFORCEMENT_COMPLAINTS_SUSTAINED",
        "civilian_complaints",
        &[(
            "civilian_complaints_by_type",
            "complaint_type",
            "metric/law_enforcement/complaint/type",
        )],
    ),
    (
        "PROSECUTION_FUNDING",
        "funding",
        &[(
            "funding_by_type",
            "funding_type",
            "metric/funding/prosecution/type",
        )],
    ),
    (
        "PROSECUTION_EXPENSES",
        "expenses",
        &[("expenses_by_type", "expense_type", "metric/expense/type")],
    ),
    (
        "PROSECUTION_TOTAL_STAFF",
        "total_staff",
        &[(
            "total_staff_by_type",
            "staff_type",
            "metric/staff/prosecution_defense/type",
        )],
    ),
    (
        "PROSECUTION_CASELOADS_PEOPLE",
        "open_cases",
        &[(
            "open_cases_by_type",
            "case_severity",
            "metric/severity/prosecution_defense/type",
        )],
    ),
    (
        "PROSECUTION_CASELOADS_STAFF",
        "staff_with_caseload",
        &[(
            "staff_with_caseload_by_type",
            "case_severity",
            "metric/severity/prosecution_defense/type",
        )],
    ),
    (
        "PROSECUTION_CASES_DISPOSED",
        "cases_disposed",
        &[(
            "cases_disposed_by_type",
            "disposition_type",
            "metric/disposition/type",
        )],
    ),
    (
        "PROSECUTION_CASES_REFERRED",
        "cases_referred",
        &[(
            "cases_referred_by_severity",
            "case_severity",
            "metric/severity/referred/prosecution/type",
        )],
    ),
    (
        "PROSECUTION_CASES_PROSECUTED",
        "cases_prosecuted",
        &[
            (
                "cases_prosecuted_by_type",
                "case_severity",
                "metric/severity/prosecuted/prosecution/type",
            ),
            (
                "cases_prosecuted_by_sex",
                "biological_sex",
                "global/biological_sex",
            ),
            (
                "cases_prosecuted_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
        ],
    ),
    (
        "PROSECUTION_CASES_DIVERTED",
        "cases_diverted",
        &[
            (
                "cases_diverted_by_type",
                "case_severity",
                "metric/severity/diverted/prosecution/type",
            ),
            (
                "cases_diverted_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
            (
                "cases_diverted_by_sex",
                "biological_sex",
                "global/biological_sex",
            ),
        ],
    ),
    (
        "PROSECUTION_CASES_DECLINED",
        "cases_declined",
        &[
            (
                "cases_declined_by_severity",
                "case_severity",
                "metric/declined/severity/prosecution/type",
            ),
            (
                "cases_declined_by_sex",
                "biological_sex",
                "global/biological_sex",
            ),
            (
                "cases_declined_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
        ],
    ),
    (
        "PROSECUTION_VIOLATIONS_WITH_DISCIPLINARY_ACTION",
        "violations_filed",
        &[],
    ),
    (
        "DEFENSE_FUNDING",
        "funding",
        &[(
            "funding_by_type",
            "funding_type",
            "metric/funding/defense/type",
        )],
    ),
    (
        "DEFENSE_EXPENSES",
        "expenses",
        &[(
            "expenses_by_type",
            "expense_type",
            "metric/expenses/defense/type",
        )],
    ),
    (
        "DEFENSE_TOTAL_STAFF",
        "total_staff",
        &[(
            "total_staff_by_type",
            "staff_type",
            "metric/defense/staff/type",
        )],
    ),
    (
        "DEFENSE_CASES_APPOINTED_COUNSEL",
        "cases_appointed",
        &[(
            "cases_appointed_by_severity",
            "severity_type",
            "metric/appointed/severity/prosecution/type",
        )],
    ),
    (
        "DEFENSE_CASELOADS_PEOPLE",
        "open_cases",
        &[(
            "open_cases_by_type",
            "severity_type",
            "metric/severity/prosecution_defense/type",
        )],
    ),
    (
        "DEFENSE_CASELOADS_STAFF",
        "staff_with_caseload",
        &[(
            "staff_with_caseload_by_type",
            "severity_type",
            "metric/severity/prosecution_defense/type",
        )],
    ),
    (
        "DEFENSE_CASES_DISPOSED",
        "cases_disposed",
        &[
            (
                "cases_disposed_by_type",
                "disposition_type",
                "metric/disposition/type",
            ),
            (
                "cases_disposed_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
            (
                "cases_disposed_by_sex",
                "biological_sex",
                "global/biological_sex",
            ),
        ],
    ),
    ("DEFENSE_COMPLAINTS_SUSTAINED", "complaints_sustained", &[]),
    (
        "COURTS_AND_PRETRIAL_FUNDING",
        "funding",
        &[(
            "funding_by_type",
            "funding_type",
            "metric/courts/funding/type",
        )],
    ),
    (
        "COURTS_AND_PRETRIAL_EXPENSES",
        "expenses",
        &[("expenses_by_type", "expense_type", "metric/expense/type")],
    ),
    (
        "COURTS_AND_PRETRIAL_TOTAL_STAFF",
        "judges_and_staff",
        &[(
            "judges_and_staff_by_type",
            "judges_and_staff_type",
            "metric/courts/staff/type",
        )],
    ),
    (
        "COURTS_AND_PRETRIAL_PRETRIAL_RELEASES",
        "pretrial_releases",
        &[(
            "pretrial_releases_by_type",
            "release_type",
            "metric/courts/release/type",
        )],
    ),
    (
        "COURTS_AND_PRETRIAL_CASES_DISPOSED",
        "cases_disposed",
        &[(
            "cases_disposed_by_type",
            "disposition_type",
            "metric/disposition/type",
        )],
    ),
    (
        "COURTS_AND_PRETRIAL_SENTENCES",
        "sentences_imposed",
        &[
            (
                "sentences_imposed_by_type",
                "sentence_type",
                "metric/courts/sentence/type",
            ),
            (
                "sentences_imposed_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
            (
                "sentences_imposed_by_sex",
                "biological_sex",
                "global/biological_sex",
            ),
        ],
    ),
    (
        "COURTS_AND_PRETRIAL_CASES_FILED",
        "cases_filed",
        &[(
            "cases_filed_by_severity",
            "severity_type",
            "metric/courts/case/severity/type",
        )],
    ),
    (
        "COURTS_AND_PRETRIAL_ARRESTS_ON_PRETRIAL_RELEASE",
        "offenses_on_release",
        &[],
    ),
    (
        "JAILS_FUNDING",
        "funding",
        &[(
            "funding_by_type",
            "funding_type",
            "metric/jails/funding/type",
        )],
    ),
    (
        "JAILS_EXPENSES",
        "expenses",
        &[(
            "expenses_by_type",
            "expense_type",
            "metric/jails/expense/type",
        )],
    ),
    (
        "JAILS_TOTAL_STAFF",
        "total_staff",
        &[(
            "total_staff_by_type",
            "staff_type",
            "metric/jails/staff/type",
        )],
    ),
    ("JAILS_READMISSIONS", "readmissions", &[]),
    (
        "JAILS_TOTAL_ADMISSIONS",
        "total_admissions",
        &[(
            "total_admissions_by_type",
            "offense_type",
            "metric/offense/type",
        )],
    ),
    (
        "JAILS_PRE_ADJUDICATION_ADMISSIONS",
        "pre_adj_admissions",
        &[(
            "pre_adj_admissions_by_type",
            "offense_type",
            "metric/offense/type",
        )],
    ),
    (
        "JAILS_POST_ADJUDICATION_ADMISSIONS",
        "post_adj_admissions",
        &[(
            "post_adj_admissions_by_type",
            "offense_type",
            "metric/offense/type",
        )],
    ),
    (
        "JAILS_TOTAL_POPULATION",
        "total_population",
        &[
            (
                "total_population_by_type",
                "offense_type",
                "metric/offense/type",
            ),
            (
                "total_population_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
            (
                "total_population_by_sex",
                "biological_sex",
                "global/biological_sex",
            ),
        ],
    ),
    (
        "JAILS_PRE_ADJUDICATION_POPULATION",
        "pre_adj_population",
        &[
            (
                "pre_adj_population_by_type",
                "offense_type",
                "metric/offense/type",
            ),
            (
                "pre_adj_population_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
            (
                "pre_adj_population_by_sex",
                "biological_sex",
                "global/biological_sex",
            ),
        ],
    ),
    (
        "JAILS_POST_ADJUDICATION_POPULATION",
        "post_adj_population",
        &[
            (
                "post_adj_population_by_type",
                "offense_type",
                "metric/offense/type",
            ),
            (
                "post_adj_population_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
            (
                "post_adj_population_by_sex",
                "biological_sex",
                "global/biological_sex",
            ),
        ],
    ),
    ("JAILS_TOTAL_RELEASES", "total_releases", &[]),
    (
        "JAILS_PRE_ADJUDICATION_RELEASES",
        "pre_adj_releases",
        &[(
            "pre_adj_releases_by_type",
            "release_type",
            "metric/jails/pre_adjudication/release/type",
        )],
    ),
    (
        "JAILS_POST_ADJUDICATION_RELEASES",
        "post_adj_releases",
        &[(
            "post_adj_releases_by_type",
            "release_type",
            "metric/jails/post_adjudication/release/type",
        )],
    ),
    ("JAILS_USE_OF_FORCE_INCIDENTS", "use_of_force", &[]),
    (
        "JAILS_GRIEVANCES_UPHELD",
        "grievances_upheld",
        &[(
            "grievances_upheld_by_type",
            "grievances_upheld_type",
            "metric/jails/grievances/type",
        )],
    ),
    (
        "PRISONS_FUNDING",
        "funding",
        &[(
            "funding_by_type",
            "funding_type",
            "metric/prisons/funding/type",
        )],
    ),
    (
        "PRISONS_EXPENSES",
        "expenses",
        &[(
            "expenses_by_type",
            "expense_type",
            "metric/prisons/expenses/type",
        )],
    ),
    (
        "PRISONS_TOTAL_STAFF",
        "staff",
        &[("staff_by_type", "staff_type", "metric/prisons/staff/type")],
    ),
    (
        "PRISONS_READMISSIONS",
        "readmissions",
        &[(
            "readmissions_by_type",
            "readmission_type",
            "metric/prisons/readmissions/type",
        )],
    ),
    (
        "PRISONS_ADMISSIONS",
        "admissions",
        &[(
            "admissions_by_type",
            "admission_type",
            "metric/offense/type",
        )],
    ),
    (
        "PRISONS_POPULATION",
        "population",
        &[
            ("population_by_type", "offense_type", "metric/offense/type"),
            (
                "population_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
            (
                "population_by_biological_sex",
                "biological_sex",
                "global/biological_sex",
            ),
        ],
    ),
    (
        "PRISONS_RELEASES",
        "releases",
        &[(
            "releases_by_type",
            "release_type",
            "metric/prisons/release/type",
        )],
    ),
    ("PRISONS_USE_OF_FORCE_INCIDENTS", "use_of_force", &[]),
    (
        "PRISONS_GRIEVANCES_UPHELD",
        "grievances_upheld",
        &[(
            "grievances_upheld_by_type",
            "grievances_type",
            "metric/prisons/grievances/type",
        )],
    ),
    (
        "SUPERVISION_FUNDING",
        "funding",
        &[(
            "funding_by_type",
            "funding_type",
            "metric/supervision/funding/type",
        )],
    ),
    (
        "SUPERVISION_EXPENSES",
        "expenses",
        &[("expenses_by_type", "expense_type", "metric/expense/type")],
    ),
    (
        "SUPERVISION_TOTAL_STAFF",
        "total_staff",
        &[(
            "total_staff_by_type",
            "staff_type",
            "metric/staff/supervision/type",
        )],
    ),
    (
        "SUPERVISION_SUPERVISION_VIOLATIONS",
        "violations",
        &[(
            "violations_by_type",
            "violation_type",
            "metric/violation/supervision/type",
        )],
    ),
    (
        "SUPERVISION_SUPERVISION_STARTS",
        "new_cases",
        &[("new_cases_by_type", "case_type", "metric/offense/type")],
    ),
    (
        "SUPERVISION_POPULATION",
        "population",
        &[
            (
                "population_by_type",
                "supervision_type",
                "metric/supervision/daily_population/type",
            ),
            (
                "population_by_biological_sex",
                "biological_sex",
                "global/biological_sex",
            ),
            (
                "population_by_race",
                "race/ethnicity",
                "global/race_and_ethnicity",
            ),
        ],
    ),
    (
        "SUPERVISION_SUPERVISION_TERMINATIONS",
        "discharges",
        &[(
            "discharges_by_type",
            "discharges_type",
            "metric/supervision/discharge/type",
        )],
    ),
    ("SUPERVISION_RECONVICTIONS", "reconvictions", &[]),
    ("SUPERVISION_CASELOADS_PEOPLE", "open_cases", &[]),
    ("SUPERVISION_CASELOADS_STAFF", "staff_with_caseload", &[]),
    (
        "SUPERVISION_REVOCATIONS",
        "revocations",
        &[(
            "revocations_by_type",
            "revocations_type",
            "metric/supervision/revocation/type",
        )],
    ),
    (
        "SUPERAGENCY_FUNDING",
        "funding",
        &[(
            "funding_by_type",
            "funding_type",
            "metric/superagency/funding/type",
        )],
    ),
    (
        "SUPERAGENCY_EXPENSES",
        "expenses",
        &[(
            "expenses_by_type",
            "expense_type",
            "metric/superagency/expenses/type",
        )],
    ),
    (
        "SUPERAGENCY_TOTAL_STAFF",
        "staff",
        &[(
            "staff_by_type",
            "staff_type",
            "metric/superagency/staff/type",
        )],
    ),
];

/// What a sheet holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SheetKind {
    /// The metric's total.
    Aggregate,
    /// Values of the members of one breakdown.
    Breakdown {
        /// The column naming the member (`offense_type`).
        column: &'static str,
        /// The breakdown's dimension id.
        dimension: &'static str,
    },
}

/// One sheet of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSheet {
    /// The sheet name (`arrests_by_type`), also the CSV file's name without extension.
    pub name: &'static str,
    /// The key of the metric in the layout's own system (`SUPERVISION_POPULATION` also for
    /// parole uploads).
    pub metric: &'static str,
    /// Total or breakdown.
    pub kind: SheetKind,
}

impl MetricSheet {
    /// The sheet's name for people: `arrests_by_type` → `Arrests By Type`.
    pub fn display_name(&self) -> String {
        display_name(self.name)
    }
}

/// A sheet name for people: underscores to spaces, each word capitalised.
pub fn display_name(name: &str) -> String {
    name.split('_')
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The system whose sheet names an upload for `system` uses.
pub fn sheet_system(system: System) -> System {
    if system.is_supervision_subsystem() {
        System::Supervision
    } else {
        system
    }
}

/// Every sheet of a system's layout, in template order (each metric's total, then its
/// breakdowns).
pub fn sheets_of(system: System) -> Vec<MetricSheet> {
    let prefix = format!("{}_", sheet_system(system).key());
    SHEETS
        .iter()
        .filter(|(metric, _, _)| metric.starts_with(&prefix))
        .flat_map(|&(metric, aggregate, breakdowns)| {
            std::iter::once(MetricSheet {
                name: aggregate,
                metric,
                kind: SheetKind::Aggregate,
            })
            .chain(breakdowns.iter().map(move |&(name, column, dimension)| {
                MetricSheet {
                    name,
                    metric,
                    kind: SheetKind::Breakdown { column, dimension },
                }
            }))
        })
        .collect()
}

/// The sheet of a system's layout with this (normalised) name.
pub fn sheet(system: System, name: &str) -> Option<MetricSheet> {
    sheets_of(system)
        .into_iter()
        .find(|sheet| sheet.name == name)
}

/// The key of a layout metric (`SUPERVISION_POPULATION`) for `system`: itself, or the
/// subsystem's copy (`PAROLE_POPULATION`).
pub fn metric_for(layout_metric: &str, system: System) -> String {
    if system.is_supervision_subsystem() {
        let rest = layout_metric
            .strip_prefix("SUPERVISION_")
            .unwrap_or(layout_metric);
        format!("{}_{rest}", system.key())
    } else {
        layout_metric.to_owned()
    }
}

/// A sheet or CSV file name as the layout compares it: the part after the last `/`, before
/// the first `.`, trimmed, lower-case, spaces as underscores.
pub fn normalise_sheet_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let stem = base.split('.').next().unwrap_or(base);
    stem.trim().to_lowercase().replace(' ', "_")
}

/// A column header as the layout compares it: trimmed, lower-case, spaces as underscores.
pub fn normalise_header(raw: &str) -> String {
    raw.trim().to_lowercase().replace(' ', "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;

    #[test]
    fn every_sheet_names_a_catalogue_metric_and_breakdown() {
        let catalogue = Catalogue::standard().unwrap();
        for system in System::ALL {
            for sheet in sheets_of(system) {
                let key = metric_for(sheet.metric, system);
                let metric = catalogue
                    .metric(&key)
                    .unwrap_or_else(|| panic!("{key} of {system:?}"));
                if let SheetKind::Breakdown { dimension, .. } = sheet.kind {
                    assert!(metric.breakdown(dimension).is_some(), "{key} {dimension}");
                }
            }
        }
        assert_eq!(sheets_of(System::LawEnforcement)[0].name, "expenses");
        assert_eq!(sheets_of(System::Parole), sheets_of(System::Supervision));
    }

    #[test]
    fn names_are_normalised_as_agencies_write_them() {
        assert_eq!(normalise_sheet_name(" Arrests By Type "), "arrests_by_type");
        assert_eq!(
            normalise_sheet_name("LAW_ENFORCEMENT/arrests.csv"),
            "arrests"
        );
        assert_eq!(normalise_header(" Offense Type"), "offense_type");
        assert_eq!(display_name("arrests_by_type"), "Arrests By Type");
        assert_eq!(
            metric_for("SUPERVISION_SUPERVISION_STARTS", System::Parole),
            "PAROLE_SUPERVISION_STARTS"
        );
    }
}
