//! Templates: the spreadsheet an agency fills in, made from its enabled metrics and members
//! in the layout the ingest reads — so that a filled-in template ingests without errors.

use std::collections::{BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate, Utc};

use super::layout::{self, MetricSheet, SheetKind};
use super::parse::{Context, period, shown};
use crate::models::enums::{ReportFrequency, System};
use crate::models::ids::AgencyId;

/// Where a value goes: agency, metric key, report frequency, period start and breakdown
/// member (dimension and name; none for the total).
pub type CellKey = (
    AgencyId,
    String,
    ReportFrequency,
    NaiveDate,
    Option<(String, String)>,
);

/// Stored values to write into the sheets instead of empty cells: by agency, metric key,
/// report frequency, period start and breakdown member (dimension and name; none for the
/// total).
#[derive(Debug, Clone, Default)]
pub struct Filling {
    /// The values.
    pub values: HashMap<CellKey, f64>,
}

impl Filling {
    /// The year a period is written under: a reporting year that does not start in January
    /// is written as the year it ends in (the rule the ingest reads it back with).
    pub fn year_of(frequency: ReportFrequency, start: NaiveDate) -> i32 {
        match frequency {
            ReportFrequency::Annual if start.month() > 1 => start.year() + 1,
            _ => start.year(),
        }
    }

    /// The years the values fall in.
    pub fn years(&self) -> Vec<i32> {
        let years: BTreeSet<i32> = self
            .values
            .keys()
            .map(|(_, _, frequency, start, _)| Self::year_of(*frequency, *start))
            .collect();
        years.into_iter().collect()
    }

    fn has_metric(&self, key: &str) -> bool {
        self.values.keys().any(|(_, metric, ..)| metric == key)
    }

    fn has_member(&self, key: &str, dimension: &str, member: &str) -> bool {
        self.values.keys().any(|(_, metric, .., cell)| {
            metric == key
                && cell
                    .as_ref()
                    .is_some_and(|(d, m)| d == dimension && m == member)
        })
    }
}

/// Which template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateKind {
    /// One sheet (`metric`, `breakdown_category`, `breakdown` columns) instead of one per
    /// metric file.
    pub single_sheet: bool,
    /// Every metric and member of the system, not only the agency's enabled ones.
    pub generic: bool,
}

/// One sheet of a template: its name, header and rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSheet {
    /// The sheet's name.
    pub name: String,
    /// The header row.
    pub header: Vec<String>,
    /// The rows (the `value` cell left empty).
    pub rows: Vec<Vec<String>>,
}

/// The systems a sheet's rows are written for: the upload's system, or — for supervision data
/// split by subsystem — each of the agency's supervision systems.
fn row_systems(context: &Context, sheet: &MetricSheet) -> Vec<Option<System>> {
    if context.needs_system(sheet.metric) {
        std::iter::once(System::Supervision)
            .chain(System::SUPERVISION_SUBSYSTEMS)
            .filter(|system| context.agency.systems.contains(system))
            .map(Some)
            .collect()
    } else {
        vec![None]
    }
}

/// The template's sheets.
pub fn sheets(context: &Context, kind: TemplateKind) -> Vec<TemplateSheet> {
    let this_year = Utc::now().year().min(context.current_year);
    build(context, kind, &[this_year - 1, this_year], None)
}

/// The sheets holding `filling`'s values, in the template's layout: only rows with a value.
pub fn filled(context: &Context, kind: TemplateKind, filling: &Filling) -> Vec<TemplateSheet> {
    build(context, kind, &filling.years(), Some(filling))
}

fn build(
    context: &Context,
    kind: TemplateKind,
    years: &[i32],
    filling: Option<&Filling>,
) -> Vec<TemplateSheet> {
    let agencies: Vec<(Option<String>, &super::parse::Target)> = if context.needs_agency() {
        context
            .children
            .iter()
            .map(|c| (Some(c.name.clone()), c))
            .collect()
    } else {
        vec![(None, &context.agency)]
    };
    let mut single = TemplateSheet {
        name: "Sheet 1".into(),
        header: [
            "metric",
            "year",
            "month",
            "agency",
            "system",
            "breakdown_category",
            "breakdown",
            "value",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: Vec::new(),
    };
    let mut per_sheet = Vec::new();
    for sheet in layout::sheets_of(context.system) {
        let key = layout::metric_for(sheet.metric, context.system);
        let Some(metric) = context.catalogue.metric(&key) else {
            continue;
        };
        let targets: Vec<&super::parse::Target> = if context.needs_agency() {
            context.children.iter().collect()
        } else {
            vec![&context.agency]
        };
        let enabled = kind.generic
            || filling.is_some_and(|filling| filling.has_metric(&key))
            || targets.iter().any(|target| {
                target
                    .settings
                    .effective(metric, &target.systems)
                    .is_none_or(|effective| effective.is_enabled)
            });
        if !enabled {
            continue;
        }
        let members: Vec<(Option<(&str, &str)>, String)> = match sheet.kind {
            SheetKind::Aggregate => vec![(None, String::new())],
            SheetKind::Breakdown { dimension, .. } => metric
                .breakdown(dimension)
                .map(|breakdown| {
                    breakdown
                        .members
                        .iter()
                        .filter(|member| {
                            kind.generic
                                || filling
                                    .is_some_and(|f| f.has_member(&key, dimension, &member.name))
                                || context.agency.settings.member_enabled(
                                    &key,
                                    dimension,
                                    &member.name,
                                )
                        })
                        .map(|member| {
                            (
                                Some((dimension, member.name.as_str())),
                                member.label.clone(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        if members.is_empty() {
            continue;
        }
        let monthly = context.expects_month(sheet.metric);
        let months: Vec<Option<u32>> = if monthly {
            (1..=12).map(Some).collect()
        } else {
            vec![None]
        };
        let systems = row_systems(context, &sheet);
        let column = match sheet.kind {
            SheetKind::Breakdown { column, .. } => Some(column),
            SheetKind::Aggregate => None,
        };
        let mut header: Vec<String> = vec!["year".into()];
        if monthly {
            header.push("month".into());
        }
        if systems[0].is_some() {
            header.push("system".into());
        }
        if let Some(column) = column {
            header.push(column.into());
        }
        if agencies[0].0.is_some() {
            header.push("agency".into());
        }
        header.push("value".into());
        let aggregate_name = layout::sheets_of(context.system)
            .into_iter()
            .find(|s| s.metric == sheet.metric && s.kind == SheetKind::Aggregate)
            .map_or(sheet.name, |s| s.name);
        let mut rows = Vec::new();
        for &year in years {
            for month in &months {
                for system in &systems {
                    for (agency, target) in &agencies {
                        for (name, member) in &members {
                            let value = match filling {
                                None => String::new(),
                                Some(filling) => {
                                    let key = system.map_or_else(
                                        || key.clone(),
                                        |system| layout::metric_for(sheet.metric, system),
                                    );
                                    let Some((frequency, start)) =
                                        period(year, *month, target.starting_month(&key))
                                    else {
                                        continue;
                                    };
                                    let found = filling.values.get(&(
                                        target.id,
                                        key,
                                        frequency,
                                        start,
                                        name.map(|(d, m)| (d.to_owned(), m.to_owned())),
                                    ));
                                    match found {
                                        Some(&value) => shown(value),
                                        None => continue,
                                    }
                                }
                            };
                            let month_text = month.map(|m| m.to_string()).unwrap_or_default();
                            let system_text = system.map(|s| s.key().to_owned());
                            let mut row = vec![year.to_string()];
                            if monthly {
                                row.push(month_text.clone());
                            }
                            if let Some(system) = &system_text {
                                row.push(system.clone());
                            }
                            if column.is_some() {
                                row.push(member.clone());
                            }
                            if let Some(agency) = agency {
                                row.push(agency.clone());
                            }
                            row.push(value.clone());
                            rows.push(row);
                            single.rows.push(vec![
                                aggregate_name.to_owned(),
                                year.to_string(),
                                month_text,
                                agency.clone().unwrap_or_default(),
                                system_text.unwrap_or_default(),
                                column.unwrap_or_default().to_owned(),
                                member.clone(),
                                value,
                            ]);
                        }
                    }
                }
            }
        }
        if filling.is_some() && rows.is_empty() {
            continue;
        }
        per_sheet.push(TemplateSheet {
            name: sheet.name.to_owned(),
            header,
            rows,
        });
    }
    if kind.single_sheet {
        let used: BTreeSet<usize> = (0..single.header.len())
            .filter(|&column| {
                matches!(single.header[column].as_str(), "metric" | "year" | "value")
                    || single.rows.iter().any(|row| !row[column].is_empty())
                    || matches!(
                        single.header[column].as_str(),
                        "breakdown_category" | "breakdown"
                    )
            })
            .collect();
        let keep = |row: &Vec<String>| -> Vec<String> {
            row.iter()
                .enumerate()
                .filter(|(column, _)| used.contains(column))
                .map(|(_, cell)| cell.clone())
                .collect()
        };
        vec![TemplateSheet {
            name: single.name.clone(),
            header: keep(&single.header),
            rows: single.rows.iter().map(keep).collect(),
        }]
    } else {
        per_sheet
    }
}

/// The template as an XLSX workbook.
pub fn xlsx(sheets: &[TemplateSheet]) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    for sheet in sheets {
        let worksheet = workbook.add_worksheet();
        worksheet.set_name(&sheet.name)?;
        for (column, name) in (0u16..).zip(&sheet.header) {
            worksheet.write_string(0, column, name)?;
        }
        let value_column = sheet.header.iter().position(|name| name == "value");
        for (row, cells) in (1u32..).zip(&sheet.rows) {
            for (index, (column, cell)) in (0u16..).zip(cells).enumerate() {
                match cell.parse::<f64>() {
                    // Values as numbers, so that spreadsheet formulas work on them.
                    Ok(number) if Some(index) == value_column && number.is_finite() => {
                        worksheet.write_number(row, column, number)?;
                    }
                    _ if !cell.is_empty() => {
                        worksheet.write_string(row, column, cell)?;
                    }
                    _ => {}
                }
            }
        }
    }
    if sheets.is_empty() {
        workbook.add_worksheet().set_name("Sheet 1")?;
    }
    workbook.save_to_buffer()
}

/// The template's single sheet as CSV.
pub fn csv(sheet: &TemplateSheet) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&sheet.header)?;
    for row in &sheet.rows {
        writer.write_record(row)?;
    }
    writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}
