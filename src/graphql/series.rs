//! Time series of one agency's metric for the data-visualisation screen and the public
//! dashboard, grouped on the server.
//!
//! Points follow the metric's own reports (months or reporting years). Rolled up to years, a
//! counted metric (events) sums its months and a level (population, staff, budget) averages
//! them, following the metric's measurement type. A period without a value is a point whose
//! value is null — never zero.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, SimpleObject};
use chrono::{Datelike, Months, NaiveDate};

use super::catalogue::MetricDefinition;
use super::loaders::{DbLoader, MetricSettingsOf, SeriesOf};
use super::scalars::Date;
use super::{Gql, catalogue};
use crate::catalogue::{Breakdown, MetricDefinition as CatalogueMetric};
use crate::error::{AppError, AppResult};
use crate::limits::Limits;
use crate::models::agency::Agency as AgencyRow;
use crate::models::datapoint::SeriesValue;
use crate::models::enums::{ReportFrequency, ReportStatus};
use crate::reports::published::{PublicCandidate, PublishedScope};

/// How a series is grouped in time.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum SeriesGranularity {
    /// One point per month (monthly metrics only).
    Monthly,
    /// One point per year: calendar years for monthly metrics, the agency's reporting years
    /// for annual ones.
    Annual,
}

/// Which series to compute.
#[derive(InputObject, Clone, Default)]
pub struct SeriesInput {
    /// The metric's key.
    pub metric_key: String,
    /// First day of the range (rounded to its month); by default the first value's period.
    pub from: Option<Date>,
    /// Day after the range (rounded to its month); by default after the last value's period.
    pub to: Option<Date>,
    /// Grouping in time; by default the metric's own frequency.
    pub granularity: Option<SeriesGranularity>,
    /// Split each point by the members of this breakdown.
    pub dimension_id: Option<String>,
}

/// A metric's values over time.
#[derive(SimpleObject)]
pub struct MetricSeries {
    /// The metric.
    pub metric: MetricDefinition,
    /// Grouping in time.
    pub granularity: SeriesGranularity,
    /// The breakdown the points are split by, if any.
    pub dimension_id: Option<String>,
    /// The points, in time order.
    pub points: Vec<SeriesPoint>,
}

/// One period of a series.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct SeriesPoint {
    /// First day of the period.
    pub start: Date,
    /// Day after the period.
    pub end: Date,
    /// The metric's value; null when no value was reported for the period.
    pub value: Option<f64>,
    /// How many of the metric's own reporting periods in this point have a value.
    pub reported_periods: i32,
    /// How many of the metric's own reporting periods this point spans.
    pub expected_periods: i32,
    /// Values by breakdown member, when the series is split.
    pub members: Vec<SeriesMemberValue>,
}

/// A breakdown member's value in one period.
#[derive(SimpleObject, Debug, Clone, PartialEq)]
pub struct SeriesMemberValue {
    /// The member's name.
    pub name: String,
    /// The member for people.
    pub label: String,
    /// Its value; null when not reported.
    pub value: Option<f64>,
}

/// What to compute, resolved against the catalogue and the agency's settings.
pub struct SeriesPlan<'a> {
    /// The metric.
    pub metric: &'a CatalogueMetric,
    /// The metric's reporting frequency for the agency.
    pub frequency: ReportFrequency,
    /// Grouping in time.
    pub granularity: SeriesGranularity,
    /// Range start (first of a month).
    pub from: Option<NaiveDate>,
    /// Range end (first of a month).
    pub to: Option<NaiveDate>,
    /// The breakdown, with the members to show.
    pub split: Option<(&'a Breakdown, Vec<usize>)>,
    /// Longest span, in months.
    pub max_months: u32,
}

fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

/// `date` plus `months`; an error past the calendar's end, never the same date again.
fn add_months(date: NaiveDate, months: u32) -> AppResult<NaiveDate> {
    date.checked_add_months(Months::new(months))
        .ok_or_else(|| AppError::BadUserInput(format!("{date} plus {months} months is no date")))
}

/// Months from `first` to `end` (both firsts of a month), `end` after `first`.
fn months_between(first: NaiveDate, end: NaiveDate) -> i64 {
    (i64::from(end.year()) - i64::from(first.year())) * 12 + i64::from(end.month())
        - i64::from(first.month())
}

/// One reporting period's values: the total and each member's.
#[derive(Default)]
struct Period {
    total: Option<f64>,
    members: BTreeMap<String, f64>,
}

fn combine(values: &[f64], additive: bool) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let sum: f64 = values.iter().sum();
    Some(if additive {
        sum
    } else {
        sum / values.len() as f64
    })
}

/// Groups `values` (one metric of one agency) into the points of `plan`.
pub fn compute(plan: &SeriesPlan<'_>, values: &[SeriesValue]) -> AppResult<Vec<SeriesPoint>> {
    if plan.frequency == ReportFrequency::Annual && plan.granularity == SeriesGranularity::Monthly {
        return Err(AppError::BadUserInput(format!(
            "{} is reported annually: it has no monthly series",
            plan.metric.key
        )));
    }
    let mut periods: BTreeMap<NaiveDate, Period> = BTreeMap::new();
    for value in values
        .iter()
        .filter(|v| v.frequency == plan.frequency && v.metric_key == plan.metric.key)
    {
        // A period with only "not reported" values still belongs to the range, as a gap.
        let period = periods.entry(value.start).or_default();
        let Some(number) = value.value else { continue };
        match (&value.dimension_id, &value.member, &plan.split) {
            (None, None, _) => period.total = Some(number),
            (Some(dimension), Some(member), Some((breakdown, _)))
                if *dimension == breakdown.dimension =>
            {
                period.members.insert(member.clone(), number);
            }
            _ => {}
        }
    }
    let step = match plan.frequency {
        ReportFrequency::Monthly => 1,
        ReportFrequency::Annual => 12,
    };
    let first = plan
        .from
        .map(first_of_month)
        .or_else(|| periods.keys().next().copied());
    let end = match plan.to {
        Some(to) => Some(first_of_month(to)),
        None => periods
            .keys()
            .next_back()
            .map(|&last| add_months(last, step))
            .transpose()?,
    };
    let (Some(first), Some(end)) = (first, end) else {
        return Ok(Vec::new());
    };
    if first >= end {
        return Err(AppError::BadUserInput("`from` must be before `to`".into()));
    }
    if months_between(first, end) > i64::from(plan.max_months) {
        crate::limits::log_refusal("max_series_years", &format!("{first} to {end}"));
        return Err(AppError::BadUserInput(format!(
            "a series spans at most {} years; narrow it with `from` and `to`",
            plan.max_months / 12
        )));
    }

    // The reporting periods in range: every month, or the agency's reporting years (plus any
    // year that has data under an earlier starting month).
    let mut starts: Vec<NaiveDate> = Vec::new();
    match plan.frequency {
        ReportFrequency::Monthly => {
            let mut month = first;
            while month < end {
                starts.push(month);
                month = add_months(month, 1)?;
            }
        }
        ReportFrequency::Annual => {
            let aligned = periods
                .keys()
                .copied()
                .find(|&start| start >= first)
                .unwrap_or(first);
            let mut year = aligned;
            while year < end {
                starts.push(year);
                year = add_months(year, 12)?;
            }
            starts.extend(
                periods
                    .keys()
                    .copied()
                    .filter(|&start| start >= first && start < end),
            );
            starts.sort_unstable();
            starts.dedup();
        }
    }

    let additive = plan.metric.measurement_type.is_additive();
    let buckets: Vec<(NaiveDate, NaiveDate, Vec<NaiveDate>)> = match plan.granularity {
        SeriesGranularity::Annual if plan.frequency == ReportFrequency::Monthly => {
            let mut years: BTreeMap<i32, Vec<NaiveDate>> = BTreeMap::new();
            for start in starts {
                years.entry(start.year()).or_default().push(start);
            }
            years
                .into_values()
                .filter_map(|months| {
                    let year = months.first()?.year();
                    let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
                    Some(add_months(start, 12).map(|end| (start, end, months)))
                })
                .collect::<AppResult<_>>()?
        }
        _ => starts
            .into_iter()
            .map(|start| Ok((start, add_months(start, step)?, vec![start])))
            .collect::<AppResult<_>>()?,
    };

    Ok(buckets
        .into_iter()
        .map(|(start, end, members_of)| {
            let totals: Vec<f64> = members_of
                .iter()
                .filter_map(|s| periods.get(s)?.total)
                .collect();
            let members = match &plan.split {
                None => Vec::new(),
                Some((breakdown, shown)) => shown
                    .iter()
                    .map(|&index| {
                        let member = &breakdown.members[index];
                        let values: Vec<f64> = members_of
                            .iter()
                            .filter_map(|s| periods.get(s)?.members.get(&member.name).copied())
                            .collect();
                        SeriesMemberValue {
                            name: member.name.clone(),
                            label: member.label.clone(),
                            value: combine(&values, additive),
                        }
                    })
                    .collect(),
            };
            SeriesPoint {
                start: Date(start),
                end: Date(end),
                value: combine(&totals, additive),
                reported_periods: totals.len() as i32,
                expected_periods: members_of.len() as i32,
                members,
            }
        })
        .collect())
}

/// The series `input` asks for, of `agency`; `published_only` restricts it to published
/// reports and to what the agency publishes (enabled metrics and members).
pub async fn series_of(
    ctx: &Context<'_>,
    agency: &AgencyRow,
    input: &SeriesInput,
    published_only: bool,
) -> async_graphql::Result<MetricSeries> {
    let catalogue = catalogue(ctx);
    let loader = ctx.data_unchecked::<DbLoader>();
    let not_found = || {
        AppError::NotFound(format!(
            "the agency reports no metric {:?}",
            input.metric_key
        ))
        .into_gql()
    };
    let index = catalogue
        .metrics()
        .iter()
        .position(|m| m.key == input.metric_key)
        .ok_or_else(not_found)?;
    let metric = &catalogue.metrics()[index];
    let settings = loader
        .load_one(MetricSettingsOf(agency.id))
        .await?
        .unwrap_or_default();
    let effective = settings
        .effective(metric, &agency.systems())
        .ok_or_else(not_found)?;
    // Public data follows the one rule of what an agency publishes.
    let scope = published_only.then(|| {
        let mut scope = PublishedScope::default();
        scope.add(catalogue, agency, &settings);
        scope
    });
    let frequency = match &scope {
        Some(scope) => {
            scope
                .metric(agency.id, &metric.key)
                .ok_or_else(not_found)?
                .frequency
        }
        None => effective.frequency,
    };
    let split = match &input.dimension_id {
        None => None,
        Some(dimension) => {
            let breakdown = metric.breakdown(dimension).ok_or_else(|| {
                AppError::BadUserInput(format!("{} has no breakdown {dimension:?}", metric.key))
                    .into_gql()
            })?;
            let shown: Vec<usize> = (0..breakdown.members.len())
                .filter(|&i| {
                    scope.as_ref().is_none_or(|scope| {
                        scope.shows_member(
                            agency.id,
                            &metric.key,
                            dimension,
                            &breakdown.members[i].name,
                        )
                    })
                })
                .collect();
            Some((breakdown, shown))
        }
    };
    let plan = SeriesPlan {
        metric,
        frequency,
        granularity: input.granularity.unwrap_or(match frequency {
            ReportFrequency::Monthly => SeriesGranularity::Monthly,
            ReportFrequency::Annual => SeriesGranularity::Annual,
        }),
        from: input.from.map(|date| date.0),
        to: input.to.map(|date| date.0),
        split,
        max_months: ctx
            .data_opt::<Arc<Limits>>()
            .map_or(Limits::default().max_series_years, |limits| {
                limits.max_series_years
            })
            .saturating_mul(12),
    };
    let mut values = loader
        .load_one(SeriesOf {
            agency: agency.id,
            metric: metric.key.clone(),
            published_only,
        })
        .await?
        .unwrap_or_default();
    if let Some(scope) = &scope {
        values.retain(|value| {
            scope.shows(&PublicCandidate {
                agency_id: value.agency_id,
                metric_key: &value.metric_key,
                status: ReportStatus::Published,
                frequency: value.frequency,
                dimension_id: value.dimension_id.as_deref(),
                member: value.member.as_deref(),
                sub_category: None,
            })
        });
    }
    let points = compute(&plan, &values).gql()?;
    Ok(MetricSeries {
        metric: MetricDefinition::new(catalogue.clone(), index),
        granularity: plan.granularity,
        dimension_id: input.dimension_id.clone(),
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;
    use crate::models::ids::AgencyId;

    fn month(year: i32, month: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, 1).unwrap()
    }

    fn value(metric: &str, start: NaiveDate, member: Option<&str>, value: f64) -> SeriesValue {
        SeriesValue {
            agency_id: AgencyId(1),
            metric_key: metric.into(),
            frequency: ReportFrequency::Monthly,
            start,
            dimension_id: member.map(|_| "metric/offense/type".into()),
            member: member.map(Into::into),
            value: Some(value),
        }
    }

    fn plan<'a>(metric: &'a CatalogueMetric, granularity: SeriesGranularity) -> SeriesPlan<'a> {
        SeriesPlan {
            metric,
            frequency: metric.default_frequency,
            granularity,
            from: None,
            to: None,
            split: None,
            max_months: 360,
        }
    }

    #[test]
    fn gaps_are_missing_not_zero() {
        let catalogue = Catalogue::standard().unwrap();
        let arrests = catalogue.metric("LAW_ENFORCEMENT_ARRESTS").unwrap();
        let values = [
            value(&arrests.key, month(2024, 1), None, 10.0),
            value(&arrests.key, month(2024, 3), None, 30.0),
        ];
        let points = compute(&plan(arrests, SeriesGranularity::Monthly), &values).unwrap();
        let got: Vec<Option<f64>> = points.iter().map(|p| p.value).collect();
        assert_eq!(got, [Some(10.0), None, Some(30.0)]);
        assert_eq!(points[1].reported_periods, 0);
    }

    #[test]
    fn years_sum_events_and_average_levels() {
        let catalogue = Catalogue::standard().unwrap();
        let arrests = catalogue.metric("LAW_ENFORCEMENT_ARRESTS").unwrap();
        let population = catalogue.metric("JAILS_TOTAL_POPULATION").unwrap();
        assert!(
            arrests.measurement_type.is_additive() && !population.measurement_type.is_additive()
        );
        for (metric, expected) in [(arrests, 60.0), (population, 20.0)] {
            let values: Vec<SeriesValue> = [10.0, 20.0, 30.0]
                .iter()
                .enumerate()
                .map(|(i, &v)| value(&metric.key, month(2024, i as u32 + 1), None, v))
                .collect();
            let mut plan = plan(metric, SeriesGranularity::Annual);
            plan.to = Some(month(2025, 1));
            let points = compute(&plan, &values).unwrap();
            assert_eq!(points.len(), 1);
            assert_eq!(points[0].value, Some(expected), "{}", metric.key);
            assert_eq!(
                (points[0].reported_periods, points[0].expected_periods),
                (3, 12)
            );
        }
    }

    #[test]
    fn a_split_series_carries_member_values() {
        let catalogue = Catalogue::standard().unwrap();
        let arrests = catalogue.metric("LAW_ENFORCEMENT_ARRESTS").unwrap();
        let breakdown = arrests.breakdown("metric/offense/type").unwrap();
        let values = [
            value(&arrests.key, month(2024, 1), None, 10.0),
            value(&arrests.key, month(2024, 1), Some("DRUG"), 4.0),
        ];
        let mut plan = plan(arrests, SeriesGranularity::Monthly);
        plan.split = Some((breakdown, (0..breakdown.members.len()).collect()));
        let points = compute(&plan, &values).unwrap();
        let drug = points[0].members.iter().find(|m| m.name == "DRUG").unwrap();
        assert_eq!(drug.value, Some(4.0));
        let person = points[0]
            .members
            .iter()
            .find(|m| m.name == "PERSON")
            .unwrap();
        assert_eq!(person.value, None);
    }

    #[test]
    fn a_range_past_the_limit_is_refused_before_any_point_is_made() {
        let catalogue = Catalogue::standard().unwrap();
        let arrests = catalogue.metric("LAW_ENFORCEMENT_ARRESTS").unwrap();
        let mut plan = plan(arrests, SeriesGranularity::Monthly);
        plan.from = Some(month(2000, 1));
        plan.to = Some(month(2030, 1));
        assert_eq!(compute(&plan, &[]).unwrap().len(), 360);
        plan.to = Some(month(2030, 2));
        assert!(compute(&plan, &[]).is_err());
        // The calendar's end: stepping past it is an error, not the same date again.
        plan.from = Some(NaiveDate::MAX.with_day(1).unwrap());
        plan.to = None;
        let values = [value(
            &arrests.key,
            NaiveDate::MAX.with_day(1).unwrap(),
            None,
            1.0,
        )];
        assert!(compute(&plan, &values).is_err());
    }

    #[test]
    fn stepping_past_the_end_of_the_calendar_is_an_error_not_an_endless_loop() {
        // Without the limit on the span, a reporting year whose next start lies past the
        // calendar's last day: adding twelve months used to give the same date, forever.
        let catalogue = Catalogue::standard().unwrap();
        let funding = catalogue.metric("LAW_ENFORCEMENT_FUNDING").unwrap();
        let last_year = NaiveDate::MAX.year() - 1;
        let mut plan = plan(funding, SeriesGranularity::Annual);
        plan.max_months = u32::MAX;
        plan.from = NaiveDate::from_ymd_opt(last_year, 6, 1);
        plan.to = Some(NaiveDate::MAX);
        assert!(compute(&plan, &[]).is_err());
    }

    #[test]
    fn annual_metrics_have_no_monthly_series() {
        let catalogue = Catalogue::standard().unwrap();
        let funding = catalogue.metric("LAW_ENFORCEMENT_FUNDING").unwrap();
        assert!(compute(&plan(funding, SeriesGranularity::Monthly), &[]).is_err());
        let mut reversed = plan(funding, SeriesGranularity::Annual);
        reversed.from = Some(month(2025, 1));
        reversed.to = Some(month(2024, 1));
        assert!(compute(&reversed, &[]).is_err());
    }
}
