//! An agency's stored values of one system in the bulk-upload layout: downloaded, corrected
//! in a spreadsheet and uploaded again, a file ingests with no errors and changes only what
//! was edited.
//!
//! Written are the values of the metrics' current frequency (and, for reporting years, of the
//! current starting month), totals and breakdown members; values marked "not reported" and
//! free-text sub-categories have no cell in the layout and are left out.

use std::sync::Arc;

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::catalogue::Catalogue;
use crate::db::schema::{datapoints, reports};
use crate::error::AppResult;
use crate::ingest::template::{self, Filling, TemplateKind, TemplateSheet};
use crate::ingest::{self, layout};
use crate::models::enums::{ReportFrequency, System};
use crate::models::ids::AgencyId;
use chrono::NaiveDate;

/// A stored value with what places it in a sheet.
type StoredValue = (
    AgencyId,
    String,
    ReportFrequency,
    NaiveDate,
    Option<String>,
    Option<String>,
    Option<f64>,
);

/// The sheets of `agency`'s values for `system` (a superagency's: its child agencies'), one
/// per metric file or — with `single_sheet` — all in one.
pub async fn sheets(
    conn: &mut AsyncPgConnection,
    catalogue: &Arc<Catalogue>,
    agency: AgencyId,
    system: System,
    single_sheet: bool,
) -> AppResult<Vec<TemplateSheet>> {
    let context = ingest::context(conn, catalogue, agency, system).await?;
    let targets: Vec<AgencyId> = if context.needs_agency() {
        context.children.iter().map(|child| child.id).collect()
    } else {
        vec![context.agency.id]
    };
    let mut keys: Vec<String> = Vec::new();
    for sheet in layout::sheets_of(system) {
        keys.push(layout::metric_for(sheet.metric, system));
        for subsystem in System::SUPERVISION_SUBSYSTEMS {
            if system == System::Supervision {
                keys.push(layout::metric_for(sheet.metric, subsystem));
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    let rows: Vec<StoredValue> = datapoints::table
        .inner_join(reports::table)
        .filter(reports::agency_id.eq_any(&targets))
        .filter(datapoints::metric_key.eq_any(&keys))
        .filter(datapoints::sub_category.is_null())
        .filter(datapoints::value.is_not_null())
        .select((
            reports::agency_id,
            datapoints::metric_key,
            reports::frequency,
            reports::date_range_start,
            datapoints::dimension_id,
            datapoints::member,
            datapoints::value,
        ))
        .load(conn)
        .await?;
    let mut filling = Filling::default();
    for (agency, key, frequency, start, dimension, member, value) in rows {
        if let Some(value) = value {
            filling.values.insert(
                (agency, key, frequency, start, dimension.zip(member)),
                value,
            );
        }
    }
    Ok(template::filled(
        &context,
        TemplateKind {
            single_sheet,
            generic: false,
        },
        &filling,
    ))
}
