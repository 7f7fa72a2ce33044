//! From sheets and rows to values: which columns a sheet must have, what each cell may hold,
//! which agency, metric, breakdown member and period a row is for — and a message with the
//! row, the offending value and the valid options for everything that is not right.
//!
//! The parser is a pure state machine fed one sheet and one row at a time; it keeps no more
//! than one sheet's column bookkeeping, so memory does not grow with the file. Fed the same
//! file twice it says the same things, which is what lets an interrupted ingest replay the
//! rows it had already stored and carry on after them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};

use super::fuzzy::Matcher;
use super::layout::{self, MetricSheet, SheetKind};
use super::read::{Cell, MAX_SHEET_COLUMNS, format_number};
use crate::catalogue::{Catalogue, MetricDefinition};
use crate::limits::MIN_DATE;
use crate::models::enums::{MessageSeverity, ReportFrequency, System};
use crate::models::ids::AgencyId;
use crate::models::metric_setting::AgencyMetricSettings;

/// An agency values may be written to, with what decides how its rows are read.
#[derive(Debug, Clone)]
pub struct Target {
    /// The agency.
    pub id: AgencyId,
    /// Its name.
    pub name: String,
    /// Its systems.
    pub systems: Vec<System>,
    /// Its metric settings.
    pub settings: AgencyMetricSettings,
}

impl Target {
    /// The frequency the agency reports a metric at (its setting, else the catalogue's).
    fn frequency(&self, metric: &MetricDefinition) -> ReportFrequency {
        self.settings
            .setting(&metric.key)
            .and_then(|setting| setting.frequency)
            .unwrap_or(metric.default_frequency)
    }

    /// The first month of the agency's reporting year for a metric (1 when not set).
    pub(crate) fn starting_month(&self, metric: &str) -> u32 {
        self.settings
            .setting(metric)
            .and_then(|setting| setting.starting_month)
            .and_then(|month| u32::try_from(month).ok())
            .filter(|month| (1..=12).contains(month))
            .unwrap_or(1)
    }
}

/// Everything the rules depend on besides the file.
#[derive(Debug, Clone)]
pub struct Context {
    /// The system the upload is for.
    pub system: System,
    /// The uploading agency.
    pub agency: Target,
    /// Its child agencies (a superagency's rows name one of them).
    pub children: Vec<Target>,
    /// The catalogue.
    pub catalogue: Arc<Catalogue>,
    /// The latest year a row may be for.
    pub current_year: i32,
}

impl Context {
    /// Whether rows must name a child agency.
    pub fn needs_agency(&self) -> bool {
        !self.children.is_empty() && self.system != System::Superagency
    }

    /// Whether rows of a layout metric must name a supervision subsystem: the uploading
    /// agency reports SUPERVISION and a subsystem, and splits this metric by subsystem.
    pub fn needs_system(&self, layout_metric: &str) -> bool {
        self.system == System::Supervision
            && self.agency.systems.contains(&System::Supervision)
            && self
                .agency
                .systems
                .iter()
                .any(|system| system.is_supervision_subsystem())
            && self
                .agency
                .settings
                .setting(layout_metric)
                .and_then(|setting| setting.is_disaggregated_by_subsystem)
                .unwrap_or(false)
    }

    /// Whether a `month` column is expected for a layout metric: some agency the rows may go
    /// to reports it monthly.
    pub fn expects_month(&self, layout_metric: &str) -> bool {
        let key = layout::metric_for(layout_metric, self.system);
        let Some(metric) = self.catalogue.metric(&key) else {
            return false;
        };
        let targets: Vec<&Target> = if self.needs_agency() {
            self.children.iter().collect()
        } else {
            vec![&self.agency]
        };
        targets
            .iter()
            .any(|target| target.frequency(metric) == ReportFrequency::Monthly)
    }
}

/// An error or warning about the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Error (something was not stored) or warning.
    pub severity: MessageSeverity,
    /// The kind of problem, such as `Invalid 'year' Column Value`.
    pub title: String,
    /// What is wrong and how to fix it.
    pub description: String,
    /// The sheet, as named in the file.
    pub sheet: Option<String>,
    /// The row (the header is row 1).
    pub row: Option<u64>,
    /// The metric it concerns (none: it concerns the file).
    pub metric_key: Option<String>,
    /// The offending value.
    pub value: Option<String>,
    /// The values that would have been accepted.
    pub options: Vec<String>,
}

/// A value read from a row, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The sheet's position in reading order.
    pub sheet_index: usize,
    /// The sheet, as named in the file.
    pub sheet: String,
    /// The row.
    pub row: u64,
    /// The agency it is for.
    pub agency_id: AgencyId,
    /// The metric.
    pub metric_key: String,
    /// The breakdown and member (none for the total).
    pub member: Option<(String, String)>,
    /// The report's frequency.
    pub frequency: ReportFrequency,
    /// The first day of the report's period.
    pub start: NaiveDate,
    /// The value, rounded to two decimals.
    pub value: f64,
}

/// What reading a header or row produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A message to keep.
    Message(Message),
    /// A value to stage.
    Value(Value),
    /// Row messages of a sheet with this title no longer apply: the whole column is empty,
    /// and one message says so.
    ForgetRowMessages {
        /// The sheet.
        sheet: String,
        /// The row messages' title.
        title: String,
    },
}

/// The tokens spreadsheet programs and data tools write for "no value".
const MISSING_TOKENS: &[&str] = &[
    "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// How a sheet is laid out.
#[derive(Debug, Clone)]
enum Layout {
    /// One metric file: a total or one breakdown.
    Standard(MetricSheet),
    /// Any metric, breakdown and period per row (`metric`, `breakdown_category`, `breakdown`).
    Single,
}

/// The sheet being read.
struct SheetState {
    index: usize,
    name: String,
    layout: Layout,
    /// Normalised header → column position.
    columns: HashMap<String, usize>,
    /// Whether rows are read at all (no column error).
    loaded: bool,
    /// Messages about the header, given once the sheet proves to have data rows.
    header_messages: Vec<Message>,
    has_rows: bool,
    /// Required columns present, and whether any row had something in them.
    filled: Vec<(String, bool)>,
    /// Single layout: metrics already warned about a missing `month` column.
    month_warned: BTreeSet<String>,
}

/// Reads sheets and rows into values and messages.
pub struct Parser {
    context: Context,
    sheets: Vec<MetricSheet>,
    invalid_sheets: Vec<String>,
    sheet: Option<SheetState>,
    months: Matcher,
    /// The member matcher of each breakdown (by dimension id), made on first use.
    members: HashMap<&'static str, Matcher>,
    /// The child agencies by their trimmed, lowercased name (the first of equal names).
    children: HashMap<String, usize>,
    is_csv: bool,
}

impl Parser {
    /// A parser for one file of `context`'s upload.
    pub fn new(context: Context, is_csv: bool) -> Self {
        let mut children = HashMap::new();
        for (index, child) in context.children.iter().enumerate() {
            children
                .entry(child.name.trim().to_lowercase())
                .or_insert(index);
        }
        Self {
            children,
            sheets: layout::sheets_of(context.system),
            context,
            invalid_sheets: Vec::new(),
            sheet: None,
            months: Matcher::new(MONTHS),
            members: HashMap::new(),
            is_csv,
        }
    }

    /// Starts a sheet: decides its layout and checks its columns.
    pub fn begin_sheet(&mut self, index: usize, name: &str, header: &[Cell]) -> Vec<Output> {
        if header.len() > MAX_SHEET_COLUMNS {
            self.sheet = None;
            return vec![Output::Message(Message {
                severity: MessageSeverity::Error,
                title: "Too Many Columns".into(),
                description: format!(
                    "The sheet has more than {MAX_SHEET_COLUMNS} columns, more than any layout \
                     of an upload uses; none of its rows were saved. Keep the columns the \
                     layout names and remove the others."
                ),
                sheet: Some(name.to_owned()),
                row: None,
                metric_key: None,
                value: None,
                options: Vec::new(),
            })];
        }
        let raw: Vec<String> = header
            .iter()
            .map(|cell| cell.display().trim().to_owned())
            .collect();
        let single = raw
            .iter()
            .any(|h| matches!(h.as_str(), "metric" | "breakdown_category" | "breakdown"));
        let layout = if single {
            Layout::Single
        } else {
            match layout::sheet(self.context.system, &layout::normalise_sheet_name(name)) {
                Some(sheet) => Layout::Standard(sheet),
                None => {
                    self.sheet = None;
                    if self.is_csv {
                        let valid: Vec<String> = self
                            .sheets
                            .iter()
                            .map(|s| format!("{}.csv", s.name))
                            .collect();
                        return vec![Output::Message(Message {
                            severity: MessageSeverity::Error,
                            title: "Invalid File Name for CSV".into(),
                            description: format!(
                                "A CSV file holds one metric file and is named after it: \
                                 \"{name}\" is not one of the {} metric files. Rename the file \
                                 to one of the valid names, or add the columns `metric`, \
                                 `breakdown_category` and `breakdown` to use the single-sheet \
                                 layout.",
                                self.context.system.key()
                            ),
                            sheet: Some(name.to_owned()),
                            row: None,
                            metric_key: None,
                            value: Some(name.to_owned()),
                            options: valid,
                        })];
                    }
                    self.invalid_sheets.push(name.to_owned());
                    return Vec::new();
                }
            }
        };
        let mut columns = HashMap::new();
        let mut raw_of = HashMap::new();
        for (position, raw_header) in raw.iter().enumerate() {
            if raw_header.is_empty() {
                continue;
            }
            let normalised = layout::normalise_header(raw_header);
            raw_of
                .entry(normalised.clone())
                .or_insert(raw_header.clone());
            columns.entry(normalised).or_insert(position);
        }
        let mut state = SheetState {
            index,
            name: name.to_owned(),
            layout,
            columns,
            loaded: true,
            header_messages: Vec::new(),
            has_rows: false,
            filled: Vec::new(),
            month_warned: BTreeSet::new(),
        };
        self.check_columns(&mut state, &raw_of);
        self.sheet = Some(state);
        Vec::new()
    }

    fn check_columns(&self, state: &mut SheetState, raw_of: &HashMap<String, String>) {
        let context = &self.context;
        let mut required: Vec<String> = vec!["year".into(), "value".into()];
        let mut allowed: Vec<String> = Vec::new();
        let metric_key = match &state.layout {
            Layout::Standard(sheet) => {
                if let SheetKind::Breakdown { column, .. } = sheet.kind {
                    required.push(column.into());
                }
                if context.needs_system(sheet.metric) {
                    required.push("system".into());
                }
                Some(layout::metric_for(sheet.metric, context.system))
            }
            Layout::Single => {
                required.push("metric".into());
                if state.columns.contains_key("breakdown_category")
                    || state.columns.contains_key("breakdown")
                {
                    required.push("breakdown_category".into());
                    required.push("breakdown".into());
                }
                let any_split = self
                    .sheets
                    .iter()
                    .any(|sheet| context.needs_system(sheet.metric));
                if any_split {
                    required.push("system".into());
                }
                allowed.push("month".into());
                None
            }
        };
        if context.needs_agency() {
            required.push("agency".into());
        }
        let message =
            |severity, title: String, description: String, value: Option<String>| Message {
                severity,
                title,
                description,
                sheet: Some(state.name.clone()),
                row: None,
                metric_key: metric_key.clone(),
                value,
                options: Vec::new(),
            };
        let mut messages = Vec::new();
        if let Layout::Standard(sheet) = &state.layout {
            let month_expected = context.expects_month(sheet.metric);
            let has_month = state.columns.contains_key("month");
            if month_expected && !has_month {
                messages.push(message(
                    MessageSeverity::Warning,
                    "Missing 'month' Column".into(),
                    "This metric is reported monthly, but the sheet has no `month` column: \
                     its rows were saved as annual values."
                        .into(),
                    None,
                ));
            } else if !month_expected && has_month {
                messages.push(message(
                    MessageSeverity::Warning,
                    "Unexpected 'month' Column".into(),
                    "This metric is reported annually, but the sheet has a `month` column: \
                     rows with a month were saved as monthly values."
                        .into(),
                    Some(raw_of.get("month").cloned().unwrap_or_default()),
                ));
            }
            if has_month {
                allowed.push("month".into());
            }
        }
        for column in &required {
            if !state.columns.contains_key(column) {
                state.loaded = false;
                messages.push(message(
                    MessageSeverity::Error,
                    format!("Missing '{column}' Column"),
                    format!(
                        "The sheet has no `{column}` column, which it needs; none of its rows \
                         were saved. Columns expected: {}.",
                        required.join(", ")
                    ),
                    None,
                ));
            }
        }
        let mut present: Vec<(&String, &usize)> = state.columns.iter().collect();
        present.sort_by_key(|(_, position)| **position);
        for (column, _) in present {
            if required.contains(column) || allowed.contains(column) {
                continue;
            }
            let raw = raw_of
                .get(column)
                .cloned()
                .unwrap_or_else(|| column.clone());
            state.loaded = false;
            messages.push(Message {
                options: required.iter().chain(&allowed).cloned().collect(),
                ..message(
                    MessageSeverity::Error,
                    format!("Unexpected '{raw}' Column"),
                    format!(
                        "The sheet has a `{raw}` column, which this upload does not expect; \
                         none of its rows were saved. Remove the column, or check the sheet \
                         and the system chosen for the upload."
                    ),
                    Some(raw.clone()),
                )
            });
        }
        // In the single-sheet layout empty breakdown columns mean totals only.
        let single = matches!(state.layout, Layout::Single);
        state.filled = required
            .into_iter()
            .chain(allowed.into_iter().filter(|c| c == "month"))
            .filter(|column| state.columns.contains_key(column))
            .filter(|column| {
                !(single && matches!(column.as_str(), "breakdown_category" | "breakdown"))
            })
            .map(|column| (column, false))
            .collect();
        state.header_messages = messages;
    }

    /// Reads one data row.
    pub fn row(&mut self, number: u64, cells: &[Cell]) -> Vec<Output> {
        let Some(mut state) = self.sheet.take() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if cells.iter().all(Cell::is_blank) {
            self.sheet = Some(state);
            return out;
        }
        if !state.has_rows {
            state.has_rows = true;
            out.extend(
                std::mem::take(&mut state.header_messages)
                    .into_iter()
                    .map(Output::Message),
            );
        }
        let cell = |column: &str| -> Option<&Cell> {
            state
                .columns
                .get(column)
                .map(|&position| cells.get(position).unwrap_or(&Cell::Empty))
        };
        for (column, filled) in &mut state.filled {
            if !*filled && cell(column).is_some_and(|c| !c.is_blank()) {
                *filled = true;
            }
        }
        if state.loaded {
            self.read_row(&mut state, number, cells, &mut out);
        }
        self.sheet = Some(state);
        out
    }

    fn read_row(
        &mut self,
        state: &mut SheetState,
        number: u64,
        cells: &[Cell],
        out: &mut Vec<Output>,
    ) {
        let context = &self.context;
        let cell = |column: &str| -> Cell {
            state
                .columns
                .get(column)
                .and_then(|&position| cells.get(position))
                .cloned()
                .unwrap_or(Cell::Empty)
        };
        let mut problems: Vec<Message> = Vec::new();
        let row_message = |metric: Option<&str>,
                           severity: MessageSeverity,
                           title: String,
                           description: String,
                           value: Option<String>,
                           options: Vec<String>| Message {
            severity,
            title,
            description: format!("Row {number}: {description}"),
            sheet: Some(state.name.clone()),
            row: Some(number),
            metric_key: metric.map(str::to_owned),
            value,
            options,
        };
        let empty = |metric: Option<&str>, column: &str| {
            row_message(
                metric,
                MessageSeverity::Error,
                format!("Empty '{column}' Column Value"),
                format!("the `{column}` cell is empty; the row was not saved."),
                None,
                Vec::new(),
            )
        };
        let invalid =
            |metric: Option<&str>, column: &str, value: &Cell, why: &str, options: Vec<String>| {
                let shown = value.display();
                let listed = if options.is_empty() {
                    String::new()
                } else {
                    format!(" Valid values: {}.", options.join(", "))
                };
                row_message(
                    metric,
                    MessageSeverity::Error,
                    format!("Invalid '{column}' Column Value"),
                    format!(
                        "\"{shown}\" in the `{column}` column {why}; the row was not saved.{listed}"
                    ),
                    Some(shown),
                    options,
                )
            };

        // Which metric file the row is for.
        let (sheet, single_metric_known) = match &state.layout {
            Layout::Standard(sheet) => (Some(*sheet), true),
            Layout::Single => {
                let metric_cell = cell("metric");
                if metric_cell.is_blank() {
                    problems.push(empty(None, "metric"));
                    (None, false)
                } else {
                    let name = layout::normalise_sheet_name(&metric_cell.display());
                    let aggregate = self
                        .sheets
                        .iter()
                        .find(|s| s.kind == SheetKind::Aggregate && s.name == name)
                        .copied();
                    match aggregate {
                        None => {
                            let options = self
                                .sheets
                                .iter()
                                .filter(|s| s.kind == SheetKind::Aggregate)
                                .map(|s| s.name.to_owned())
                                .collect();
                            problems.push(invalid(
                                None,
                                "metric",
                                &metric_cell,
                                &format!("is not a {} metric", context.system.key()),
                                options,
                            ));
                            (None, false)
                        }
                        Some(aggregate) => {
                            let category = if state.columns.contains_key("breakdown_category") {
                                cell("breakdown_category")
                            } else {
                                Cell::Empty
                            };
                            if category.is_blank() {
                                (Some(aggregate), true)
                            } else {
                                let wanted = layout::normalise_header(&category.display());
                                let breakdowns: Vec<MetricSheet> = self
                                    .sheets
                                    .iter()
                                    .filter(|s| {
                                        s.metric == aggregate.metric
                                            && matches!(s.kind, SheetKind::Breakdown { .. })
                                    })
                                    .copied()
                                    .collect();
                                let found = breakdowns.iter().find(|s| {
                                    matches!(s.kind, SheetKind::Breakdown { column, .. } if column == wanted)
                                });
                                match found {
                                    Some(found) => (Some(*found), true),
                                    None => {
                                        let key =
                                            layout::metric_for(aggregate.metric, context.system);
                                        let options = breakdowns
                                            .iter()
                                            .filter_map(|s| match s.kind {
                                                SheetKind::Breakdown { column, .. } => {
                                                    Some(column.to_owned())
                                                }
                                                SheetKind::Aggregate => None,
                                            })
                                            .collect();
                                        problems.push(invalid(
                                            Some(&key),
                                            "breakdown_category",
                                            &category,
                                            &format!("is not a breakdown of {}", aggregate.name),
                                            options,
                                        ));
                                        (None, true)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        };
        let _ = single_metric_known;
        let layout_metric = sheet.map(|s| s.metric);
        let default_key = layout_metric.map(|m| layout::metric_for(m, context.system));

        // Which agency.
        let mut target = &context.agency;
        if context.needs_agency() {
            let agency_cell = cell("agency");
            if agency_cell.is_blank() {
                problems.push(empty(default_key.as_deref(), "agency"));
            } else {
                let wanted = agency_cell.display().trim().to_lowercase();
                match self
                    .children
                    .get(&wanted)
                    .and_then(|&index| context.children.get(index))
                {
                    Some(child) => target = child,
                    None => problems.push(invalid(
                        default_key.as_deref(),
                        "agency",
                        &agency_cell,
                        "is not one of this agency's child agencies",
                        context.children.iter().map(|c| c.name.clone()).collect(),
                    )),
                }
            }
        }

        // Which system, for supervision data split by subsystem.
        let mut system = context.system;
        if let Some(layout_metric) = layout_metric {
            let split = context.needs_system(layout_metric);
            if state.columns.contains_key("system") {
                let system_cell = cell("system");
                let word = system_cell
                    .display()
                    .trim()
                    .to_lowercase()
                    .replace(['-', '_'], " ");
                let word = word.split_whitespace().collect::<Vec<_>>().join(" ");
                let named = match word.as_str() {
                    "" | "all" | "supervision" => Some(System::Supervision),
                    "parole" => Some(System::Parole),
                    "probation" => Some(System::Probation),
                    "pretrial supervision" => Some(System::PretrialSupervision),
                    "other supervision" => Some(System::OtherSupervision),
                    _ => None,
                };
                let options: Vec<String> = std::iter::once(System::Supervision)
                    .chain(System::SUPERVISION_SUBSYSTEMS)
                    .filter(|s| target.systems.contains(s))
                    .map(|s| s.key().to_owned())
                    .collect();
                if split {
                    if system_cell.is_blank() {
                        problems.push(empty(default_key.as_deref(), "system"));
                    } else {
                        match named.filter(|s| target.systems.contains(s)) {
                            Some(named) => system = named,
                            None => problems.push(invalid(
                                default_key.as_deref(),
                                "system",
                                &system_cell,
                                "is not one of the agency's supervision systems",
                                options,
                            )),
                        }
                    }
                } else if named.is_none() {
                    problems.push(Message {
                        severity: MessageSeverity::Error,
                        title: "System Not Recognized".into(),
                        description: format!(
                            "Row {number}: \"{}\" in the `system` column is not a supervision \
                             system; the row was not saved. Valid values: {}.",
                            system_cell.display(),
                            options.join(", ")
                        ),
                        sheet: Some(state.name.clone()),
                        row: Some(number),
                        metric_key: None,
                        value: Some(system_cell.display()),
                        options,
                    });
                }
            }
        }
        let metric_key = layout_metric.map(|m| layout::metric_for(m, system));
        let metric = metric_key
            .as_deref()
            .and_then(|key| context.catalogue.metric(key));
        let key_ref = metric_key.as_deref();
        // A superagency's row goes to the child it names: only for the child's own metrics.
        if context.needs_agency()
            && !std::ptr::eq(target, &context.agency)
            && let Some(metric) = metric
            && target.settings.effective(metric, &target.systems).is_none()
        {
            let agency_cell = cell("agency");
            problems.push(invalid(
                key_ref,
                "agency",
                &agency_cell,
                &format!("names an agency that does not report {}", metric.key),
                context
                    .children
                    .iter()
                    .filter(|child| child.settings.effective(metric, &child.systems).is_some())
                    .map(|child| child.name.clone())
                    .collect(),
            ));
        }

        // The breakdown member.
        let mut member = None;
        if let Some(MetricSheet {
            kind: SheetKind::Breakdown { column, dimension },
            ..
        }) = sheet
        {
            let column_name = match state.layout {
                Layout::Single => "breakdown",
                Layout::Standard(_) => column,
            };
            let member_cell = cell(column_name);
            if member_cell.is_blank() {
                problems.push(empty(key_ref, column_name));
            } else if let Some(breakdown) = metric.and_then(|m| m.breakdown(dimension)) {
                let matcher = self.members.entry(dimension).or_insert_with(|| {
                    Matcher::new(breakdown.members.iter().map(|m| m.label.as_str()))
                });
                match matcher.find(&member_cell.display()) {
                    Some(label) => {
                        if let Some(found) = breakdown.members.iter().find(|m| m.label == label) {
                            member = Some((dimension.to_owned(), found.name.clone()));
                        }
                    }
                    None => problems.push(invalid(
                        key_ref,
                        column_name,
                        &member_cell,
                        &format!(
                            "matches no member of the breakdown \"{}\"",
                            breakdown.display_name
                        ),
                        matcher.options().map(str::to_owned).collect(),
                    )),
                }
            }
        }

        // The period.
        let year_cell = cell("year");
        let year = if year_cell.is_blank() {
            problems.push(empty(key_ref, "year"));
            None
        } else {
            match parse_year(&year_cell) {
                Some(year) if (MIN_DATE.year() + 1..=context.current_year).contains(&year) => {
                    Some(year)
                }
                _ => {
                    problems.push(invalid(
                        key_ref,
                        "year",
                        &year_cell,
                        &format!(
                            "is not a year from {} to {} (a fiscal year may be written 2023-2024)",
                            MIN_DATE.year() + 1,
                            context.current_year
                        ),
                        Vec::new(),
                    ));
                    None
                }
            }
        };
        let month_cell = if state.columns.contains_key("month") {
            cell("month")
        } else {
            Cell::Empty
        };
        let month = if month_cell.is_blank() {
            Ok(None)
        } else {
            match parse_month(&month_cell, &mut self.months) {
                Some(month) => Ok(Some(month)),
                None => {
                    problems.push(invalid(
                        key_ref,
                        "month",
                        &month_cell,
                        "is not a month (1 to 12, or the month's name)",
                        MONTHS.iter().map(|m| (*m).to_owned()).collect(),
                    ));
                    Err(())
                }
            }
        };
        if let (Layout::Single, Some(layout_metric), Some(key)) =
            (&state.layout, layout_metric, key_ref)
            && !state.columns.contains_key("month")
            && context.expects_month(layout_metric)
            && state.month_warned.insert(key.to_owned())
        {
            problems.push(Message {
                severity: MessageSeverity::Warning,
                title: "Missing 'month' Column".into(),
                description: format!(
                    "{} is reported monthly, but the sheet has no `month` column: its rows were \
                     saved as annual values.",
                    metric.map_or(key, |m| m.display_name.as_str())
                ),
                sheet: Some(state.name.clone()),
                row: None,
                metric_key: Some(key.to_owned()),
                value: None,
                options: Vec::new(),
            });
        }

        // The value.
        let value_cell = cell("value");
        let value = match parse_value(&value_cell) {
            Parsed::Missing => {
                problems.push(empty(key_ref, "value"));
                None
            }
            Parsed::Invalid => {
                problems.push(invalid(
                    key_ref,
                    "value",
                    &value_cell,
                    "is not a number from 0 to 1e15 (write digits only: 1000, not 1,000 or $1000)",
                    Vec::new(),
                ));
                None
            }
            Parsed::Number(value) => Some(value),
        };

        let saved = problems
            .iter()
            .all(|problem| problem.severity == MessageSeverity::Warning);
        out.extend(problems.into_iter().map(Output::Message));
        if !saved {
            return;
        }
        let (Some(metric), Some(year), Ok(month), Some(value)) = (metric, year, month, value)
        else {
            return;
        };
        let Some((frequency, start)) = period(year, month, target.starting_month(&metric.key))
        else {
            return;
        };
        out.push(Output::Value(Value {
            sheet_index: state.index,
            sheet: state.name.clone(),
            row: number,
            agency_id: target.id,
            metric_key: metric.key.clone(),
            member,
            frequency,
            start,
            value,
        }));
    }

    /// Ends the current sheet: whole columns left empty are reported once, in place of their
    /// rows' messages.
    pub fn end_sheet(&mut self) -> Vec<Output> {
        let Some(state) = self.sheet.take() else {
            return Vec::new();
        };
        if !state.has_rows || !state.loaded {
            return Vec::new();
        }
        let metric_key = match &state.layout {
            Layout::Standard(sheet) => Some(layout::metric_for(sheet.metric, self.context.system)),
            Layout::Single => None,
        };
        let mut out = Vec::new();
        for (column, filled) in &state.filled {
            if *filled {
                continue;
            }
            let is_month = column == "month";
            out.push(Output::ForgetRowMessages {
                sheet: state.name.clone(),
                title: format!("Empty '{column}' Column Value"),
            });
            out.push(Output::Message(Message {
                severity: if is_month {
                    MessageSeverity::Warning
                } else {
                    MessageSeverity::Error
                },
                title: format!("Empty '{column}' Column"),
                description: if is_month {
                    "The `month` column is empty: the rows were saved as annual values.".into()
                } else {
                    format!("The `{column}` column is empty; none of the sheet's rows were saved.")
                },
                sheet: Some(state.name.clone()),
                row: None,
                metric_key: metric_key.clone(),
                value: None,
                options: Vec::new(),
            }));
        }
        out
    }

    /// Ends the file: sheets whose names are not metric files are named in one message.
    pub fn finish(&mut self) -> Vec<Output> {
        if self.invalid_sheets.is_empty() {
            return Vec::new();
        }
        let names = std::mem::take(&mut self.invalid_sheets);
        vec![Output::Message(Message {
            severity: MessageSeverity::Error,
            title: "Invalid Sheet Name".into(),
            description: format!(
                "These sheets are not {} metric files and were not read: {}. Rename each to one \
                 of the valid sheet names.",
                self.context.system.key(),
                names.join(", ")
            ),
            sheet: None,
            row: None,
            metric_key: None,
            value: Some(names.join(", ")),
            options: self.sheets.iter().map(|s| s.name.to_owned()).collect(),
        })]
    }
}

/// A year as written: a whole number (2023, "2023", 2023.0), or a fiscal year "2023-2024"
/// (the year before the dash).
pub fn parse_year(cell: &Cell) -> Option<i32> {
    match cell {
        Cell::Empty => None,
        Cell::Number(number) => whole(*number),
        Cell::Text(text) => {
            let text = text.trim();
            let first = match text.char_indices().find(|&(at, c)| c == '-' && at > 0) {
                Some((at, _)) => text[..at].trim(),
                None => text,
            };
            whole(first.parse::<f64>().ok()?)
        }
    }
}

fn whole(number: f64) -> Option<i32> {
    (number.is_finite() && number.fract() == 0.0 && number.abs() < 1e6).then_some(number as i32)
}

/// A month as written: 1–12 (number or text) or the month's English name, fuzzily.
pub fn parse_month(cell: &Cell, months: &mut Matcher) -> Option<u32> {
    let number = match cell {
        Cell::Empty => return None,
        Cell::Number(number) => Some(*number),
        Cell::Text(text) => text.trim().parse::<f64>().ok(),
    };
    if let Some(number) = number {
        return whole(number)
            .and_then(|month| u32::try_from(month).ok())
            .filter(|month| (1..=12).contains(month));
    }
    let name = months.find(&cell.display())?;
    MONTHS
        .iter()
        .position(|month| *month == name)
        .and_then(|index| u32::try_from(index + 1).ok())
}

/// A value cell, read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Parsed {
    /// Blank, or a "no value" token.
    Missing,
    /// Not a number of at least 0.
    Invalid,
    /// The number, rounded to two decimals.
    Number(f64),
}

/// A value as written: a finite number ≥ 0, rounded to two decimals.
pub fn parse_value(cell: &Cell) -> Parsed {
    let number = match cell {
        Cell::Empty => return Parsed::Missing,
        Cell::Number(number) => *number,
        Cell::Text(text) => {
            let text = text.trim();
            if text.is_empty() || MISSING_TOKENS.contains(&text) {
                return Parsed::Missing;
            }
            let Ok(number) = text.parse::<f64>() else {
                return Parsed::Invalid;
            };
            number
        }
    };
    if !number.is_finite() || !(0.0..=crate::limits::MAX_VALUE).contains(&number) {
        return Parsed::Invalid;
    }
    let rounded = (number * 100.0).round() / 100.0;
    if rounded.is_finite() {
        Parsed::Number(rounded + 0.0)
    } else {
        Parsed::Invalid
    }
}

/// The report a row is for: the month when one is given, otherwise the year — which, when
/// the agency's year starts in month `starting_month` > 1, is the fiscal year ending in `year`.
pub fn period(
    year: i32,
    month: Option<u32>,
    starting_month: u32,
) -> Option<(ReportFrequency, NaiveDate)> {
    let (frequency, start) = match month {
        Some(month) => (
            ReportFrequency::Monthly,
            NaiveDate::from_ymd_opt(year, month, 1)?,
        ),
        None if starting_month <= 1 => (
            ReportFrequency::Annual,
            NaiveDate::from_ymd_opt(year, 1, 1)?,
        ),
        None => (
            ReportFrequency::Annual,
            NaiveDate::from_ymd_opt(year - 1, starting_month, 1)?,
        ),
    };
    (start >= MIN_DATE).then_some((frequency, start))
}

/// A number as messages show it.
pub fn shown(number: f64) -> String {
    format_number(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_are_whole_numbers_in_any_form() {
        for (cell, year) in [
            (Cell::Number(2023.0), Some(2023)),
            (Cell::Text(" 2023 ".into()), Some(2023)),
            (Cell::Text("2023.0".into()), Some(2023)),
            (Cell::Text("2023-2024".into()), Some(2023)),
            (Cell::Number(2023.7), None),
            (Cell::Text("FY2023-2024".into()), None),
            (Cell::Text("-2023".into()), Some(-2023)),
            (Cell::Text("twenty".into()), None),
            (Cell::Text("1e300".into()), None),
        ] {
            assert_eq!(parse_year(&cell), year, "{cell:?}");
        }
    }

    #[test]
    fn months_are_numbers_or_names() {
        let mut months = Matcher::new(MONTHS);
        assert_eq!(parse_month(&Cell::Text("01".into()), &mut months), Some(1));
        assert_eq!(parse_month(&Cell::Number(12.0), &mut months), Some(12));
        assert_eq!(parse_month(&Cell::Number(13.0), &mut months), None);
        assert_eq!(
            parse_month(&Cell::Text("Febuary".into()), &mut months),
            Some(2)
        );
        assert_eq!(parse_month(&Cell::Text("Sept".into()), &mut months), None);
    }

    #[test]
    fn values_are_finite_non_negative_numbers() {
        for (text, parsed) in [
            (" 12 ", Parsed::Number(12.0)),
            ("1e3", Parsed::Number(1000.0)),
            ("2.345", Parsed::Number(2.35)),
            ("NA", Parsed::Missing),
            ("#N/A", Parsed::Missing),
            ("", Parsed::Missing),
            ("1,000", Parsed::Invalid),
            ("$5", Parsed::Invalid),
            ("12%", Parsed::Invalid),
            ("-3", Parsed::Invalid),
            ("inf", Parsed::Invalid),
            ("1e400", Parsed::Invalid),
            ("1e15", Parsed::Number(1e15)),
            ("1.01e15", Parsed::Invalid),
        ] {
            assert_eq!(parse_value(&Cell::Text(text.into())), parsed, "{text}");
        }
    }

    #[test]
    fn periods_follow_month_and_fiscal_year() {
        let date = |y, m| NaiveDate::from_ymd_opt(y, m, 1).unwrap();
        assert_eq!(
            period(2023, Some(4), 7),
            Some((ReportFrequency::Monthly, date(2023, 4)))
        );
        assert_eq!(
            period(2023, None, 1),
            Some((ReportFrequency::Annual, date(2023, 1)))
        );
        assert_eq!(
            period(2023, None, 7),
            Some((ReportFrequency::Annual, date(2022, 7)))
        );
        assert_eq!(period(1900, None, 7), None);
    }
}
