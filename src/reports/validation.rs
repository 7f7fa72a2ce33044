//! Checks of submitted values against the catalogue and the agency's settings. Every problem
//! is reported with the path of the input it concerns, so that a form can mark each field.

use std::collections::HashSet;

use chrono::Datelike;
use serde::Serialize;

use crate::catalogue::Catalogue;
use crate::error::{AppError, ErrorCode};
use crate::models::agency::Agency;
use crate::models::metric_setting::AgencyMetricSettings;
use crate::models::report::Report;

/// One value to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInput {
    /// The metric.
    pub metric_key: String,
    /// The breakdown, for a breakdown value.
    pub dimension_id: Option<String>,
    /// The member, for a breakdown value.
    pub member: Option<String>,
    /// A free-text sub-category under the member.
    pub sub_category: Option<String>,
    /// The value; none means "not reported".
    pub value: Option<f64>,
}

/// The context of one metric; none removes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextInput {
    /// The metric.
    pub metric_key: String,
    /// The text.
    pub text: Option<String>,
}

/// A problem with one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where in the input, such as `values[3].value`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Longest sub-category name and context accepted.
const MAX_SUB_CATEGORY: usize = 200;
const MAX_CONTEXT: usize = 10_000;

/// Checks `values` and `contexts` for `report` of `agency`; all problems, or none.
pub fn check(
    catalogue: &Catalogue,
    agency: &Agency,
    settings: &AgencyMetricSettings,
    report: &Report,
    values: &[ValueInput],
    contexts: &[ContextInput],
) -> Vec<Problem> {
    let systems = agency.systems();
    let month = report.date_range_start.month();
    let mut problems = Vec::new();
    let mut problem = |path: String, message: String| problems.push(Problem { path, message });
    let mut seen = HashSet::new();

    // The metric must exist, belong to the agency and be collected by this report.
    let metric_problem = |key: &str| -> Option<String> {
        let Some(metric) = catalogue.metric(key) else {
            return Some(format!("there is no metric {key:?}"));
        };
        let Some(effective) = settings.effective(metric, &systems) else {
            return Some(format!("{key} is not a metric of the agency's systems"));
        };
        if !effective.is_enabled {
            return Some(format!(
                "the agency does not report {key}; enable it in the metric settings first"
            ));
        }
        if !effective.is_due_in(report.frequency, month) {
            return Some(format!(
                "{key} is not collected by this report (frequency or reporting year)"
            ));
        }
        None
    };

    for (index, input) in values.iter().enumerate() {
        let path = format!("values[{index}]");
        if let Some(message) = metric_problem(&input.metric_key) {
            problem(format!("{path}.metricKey"), message);
            continue;
        }
        let Some(metric) = catalogue.metric(&input.metric_key) else {
            continue;
        };
        match (&input.dimension_id, &input.member) {
            (None, None) => {
                if input.sub_category.is_some() {
                    problem(
                        format!("{path}.subCategory"),
                        "a sub-category belongs under a breakdown member".into(),
                    );
                }
            }
            (Some(dimension), Some(member)) => match metric.breakdown(dimension) {
                None => problem(
                    format!("{path}.dimensionId"),
                    format!("{} has no breakdown {dimension:?}", metric.key),
                ),
                Some(breakdown) if !breakdown.members.iter().any(|m| &m.name == member) => problem(
                    format!("{path}.member"),
                    format!("{member:?} is not a member of {dimension}"),
                ),
                Some(_) if !settings.member_enabled(&metric.key, dimension, member) => problem(
                    format!("{path}.member"),
                    format!("the agency does not report {member} of {dimension}"),
                ),
                Some(_) => {}
            },
            _ => problem(
                format!("{path}.member"),
                "give both a dimension and a member, or neither".into(),
            ),
        }
        if let Some(sub_category) = &input.sub_category {
            let trimmed = sub_category.trim();
            if trimmed.is_empty() || trimmed.chars().count() > MAX_SUB_CATEGORY {
                problem(
                    format!("{path}.subCategory"),
                    format!("a sub-category has 1 to {MAX_SUB_CATEGORY} characters"),
                );
            }
        }
        if let Some(value) = input.value {
            if !value.is_finite() {
                problem(
                    format!("{path}.value"),
                    "the value must be a finite number".into(),
                );
            } else if value < 0.0 {
                problem(
                    format!("{path}.value"),
                    format!("{value} is negative; {} cannot be", metric.unit),
                );
            } else if value > crate::limits::MAX_VALUE {
                problem(
                    format!("{path}.value"),
                    format!(
                        "{value} is larger than any value this API takes ({:e})",
                        crate::limits::MAX_VALUE
                    ),
                );
            }
        }
        let cell = (
            &input.metric_key,
            &input.dimension_id,
            &input.member,
            input.sub_category.as_ref().map(|s| s.trim()),
        );
        if !seen.insert(cell) {
            problem(path, "this value is given twice in the same save".into());
        }
    }
    let mut contexts_seen = HashSet::new();
    for (index, context) in contexts.iter().enumerate() {
        let path = format!("contexts[{index}]");
        if let Some(message) = metric_problem(&context.metric_key) {
            problem(format!("{path}.metricKey"), message);
        }
        if context
            .text
            .as_ref()
            .is_some_and(|text| text.chars().count() > MAX_CONTEXT)
        {
            problem(
                format!("{path}.text"),
                format!("a context has at most {MAX_CONTEXT} characters"),
            );
        }
        if !contexts_seen.insert(&context.metric_key) {
            problem(path, "this context is given twice in the same save".into());
        }
    }
    problems
}

/// The BAD_USER_INPUT error listing `problems` in `extensions.problems`.
pub fn invalid(problems: Vec<Problem>) -> AppError {
    let count = problems.len();
    AppError::Detailed {
        code: ErrorCode::BadUserInput,
        message: format!(
            "{count} invalid value{}: {}; nothing was saved",
            if count == 1 { "" } else { "s" },
            problems
                .iter()
                .map(|p| format!("{} {}", p.path, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        details: serde_json::json!({ "problems": problems }),
    }
}
