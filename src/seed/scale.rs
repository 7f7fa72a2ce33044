//! A large generated data set for benchmarks: `N × 100` agencies with five years of monthly
//! and annual reports, every metric of their system enabled and broken down by its first
//! breakdown. Written with multi-row inserts in large batches.

use std::fmt;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use diesel_async::{AsyncConnection, RunQueryDsl};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Rng, metric_cells};
use crate::catalogue::Catalogue;
use crate::db::Pool;
use crate::db::schema::{datapoints, reports};
use crate::models::agency::NewAgency;
use crate::models::datapoint::NewDatapoint;
use crate::models::enums::{ReportFrequency, ReportStatus, System, ValueSource};
use crate::models::ids::ReportId;
use crate::models::report::{NewReport, period_end};

/// First month of the generated series.
const FIRST_YEAR: i32 = 2021;
/// Years generated per agency.
const YEARS: i32 = 5;
/// Rows per multi-row insert, below PostgreSQL's 65,535 parameters at 8 columns a row.
const BATCH: usize = 8_000;

const SYSTEMS: [System; 7] = [
    System::LawEnforcement,
    System::Prosecution,
    System::Defense,
    System::CourtsAndPretrial,
    System::Jails,
    System::Prisons,
    System::Supervision,
];
const STATES: [&str; 10] = [
    "us_ca", "us_tx", "us_ny", "us_fl", "us_il", "us_pa", "us_oh", "us_ga", "us_nc", "us_mi",
];

/// What a scale seed wrote and how fast.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    /// Agencies created.
    pub agencies: usize,
    /// Reports created.
    pub reports: usize,
    /// Datapoints created.
    pub datapoints: usize,
    /// Time taken.
    pub elapsed: Duration,
}

impl ScaleReport {
    /// Rows written per second, all tables together.
    pub fn rows_per_second(&self) -> f64 {
        let rows = (self.agencies + self.reports + self.datapoints) as f64;
        rows / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "generated {} agencies, {} reports, {} datapoints in {:.1} s: {:.0} rows/s",
            self.agencies,
            self.reports,
            self.datapoints,
            self.elapsed.as_secs_f64(),
            self.rows_per_second()
        )
    }
}

/// Generates `agencies` agencies; each agency is written in one transaction.
pub async fn seed(
    pool: &Pool,
    catalogue: &Catalogue,
    agencies: usize,
    show_progress: bool,
) -> anyhow::Result<ScaleReport> {
    let started = Instant::now();
    let progress = if show_progress {
        ProgressBar::new(agencies as u64)
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} agencies  {msg}  [{elapsed_precise}]",
    )?);
    let mut report = ScaleReport {
        agencies: 0,
        reports: 0,
        datapoints: 0,
        elapsed: Duration::ZERO,
    };
    let mut conn = pool.get().await?;
    // Numbered after the agencies already there, so that seeding twice adds rather than clashes.
    let offset: i64 = crate::db::schema::agencies::table
        .count()
        .get_result(&mut *conn)
        .await?;
    for index in 0..agencies {
        let number = offset as usize + index + 1;
        let mut rng = Rng::new(number as u64);
        let (reports, points) = conn
            .transaction(async |conn| seed_agency(conn, catalogue, number, &mut rng).await)
            .await?;
        report.agencies += 1;
        report.reports += reports;
        report.datapoints += points;
        progress.inc(1);
        progress.set_message(format!("{} datapoints", report.datapoints));
    }
    progress.finish_and_clear();
    report.elapsed = started.elapsed();
    Ok(report)
}

use diesel::prelude::*;

async fn seed_agency(
    conn: &mut diesel_async::AsyncPgConnection,
    catalogue: &Catalogue,
    number: usize,
    rng: &mut Rng,
) -> QueryResult<(usize, usize)> {
    let system = SYSTEMS[number % SYSTEMS.len()];
    let size = rng.between(0.3, 3.0);
    let agency_id = NewAgency {
        name: format!("Benchmark Agency {number:05}"),
        state_code: STATES[number % STATES.len()].into(),
        county_code: None,
        systems: vec![Some(system)],
        is_superagency: false,
        super_agency_id: None,
        is_dashboard_enabled: number.is_multiple_of(2),
    }
    .insert(conn)
    .await?;

    let mut planned: Vec<(ReportFrequency, NaiveDate, usize)> = Vec::new();
    for period in 0..(YEARS * 12) as usize {
        let start = NaiveDate::from_ymd_opt(
            FIRST_YEAR + (period / 12) as i32,
            (period % 12) as u32 + 1,
            1,
        );
        planned.extend(start.map(|start| (ReportFrequency::Monthly, start, period)));
    }
    for year in 0..YEARS {
        let start = NaiveDate::from_ymd_opt(FIRST_YEAR + year, 1, 1);
        planned.extend(start.map(|start| (ReportFrequency::Annual, start, year as usize)));
    }
    let last_month = (YEARS * 12) as usize - 1;
    let rows: Vec<NewReport> = planned
        .iter()
        .map(|&(frequency, start, period)| {
            let draft = frequency == ReportFrequency::Monthly && period + 3 > last_month;
            let end = period_end(start, frequency).unwrap_or(start);
            let touched = end.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc();
            NewReport {
                agency_id,
                frequency,
                date_range_start: start,
                date_range_end: end,
                status: if draft {
                    ReportStatus::Draft
                } else {
                    ReportStatus::Published
                },
                published_at: (!draft).then_some(touched),
                last_modified_at: touched,
            }
        })
        .collect();
    let ids: Vec<(ReportId, ReportFrequency, NaiveDate)> = diesel::insert_into(reports::table)
        .values(&rows)
        .returning((reports::id, reports::frequency, reports::date_range_start))
        .get_results(conn)
        .await?;
    let period_of = |frequency, start| {
        planned
            .iter()
            .find(|&&(f, s, _)| f == frequency && s == start)
            .map_or(0, |&(_, _, period)| period)
    };

    let metrics: Vec<_> = catalogue.metrics_of(system).collect();
    let mut points = Vec::new();
    for (report_id, frequency, start) in ids {
        let period = period_of(frequency, start);
        for metric in metrics
            .iter()
            .filter(|metric| metric.default_frequency == frequency)
        {
            let breakdowns: Vec<_> = <[_]>::first(&metric.breakdowns).into_iter().collect();
            for cell in metric_cells(metric, &breakdowns, size, period, rng) {
                points.push(NewDatapoint {
                    report_id,
                    metric_key: metric.key.clone(),
                    dimension_id: cell.dimension.map(Into::into),
                    member: cell.member.map(Into::into),
                    sub_category: None,
                    value: Some(cell.value),
                    source: ValueSource::BulkUpload,
                    updated_by: None,
                });
            }
        }
    }
    for chunk in points.chunks(BATCH) {
        diesel::insert_into(datapoints::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    Ok((rows.len(), points.len()))
}
