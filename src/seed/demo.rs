//! The demo data set: a dozen agencies covering every system (one superagency with three
//! children), users in every role, and three years (2023–2025) of monthly and annual reports
//! in mixed statuses with plausible values whose breakdowns add up to their totals.
//!
//! The users are listed in the README so that readers can sign in as each of them.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{Rng, metric_cells};
use crate::catalogue::{Breakdown, Catalogue, MetricDefinition};
use crate::db::schema::{
    agency_jurisdictions, agency_settings, datapoint_changes, datapoints, metric_setting_answers,
    metric_setting_members, metric_settings, report_contexts, report_editors,
    report_status_changes, reports, spreadsheet_messages, spreadsheet_report_changes, spreadsheets,
    users,
};
use crate::models::agency::{NewAgency, NewAgencySetting, NewJurisdiction};
use crate::models::datapoint::{NewDatapoint, NewReportContext};
use crate::models::enums::{
    AgencyRole, AgencySettingKind, InvitationStatus, JurisdictionKind, MessageSeverity,
    ReportChangeKind, ReportFrequency, ReportStatus, SpreadsheetStatus, System, ValueSource,
};
use crate::models::ids::{AgencyId, ReportId, SpreadsheetId, UserId};
use crate::models::metric_setting::{
    NewMetricSetting, NewMetricSettingAnswer, NewMetricSettingMember,
};
use crate::models::report::{NewReport, NewReportEditor, NewReportStatusChange, period_end};
use crate::models::spreadsheet::{
    NewSpreadsheet, NewSpreadsheetMessage, NewSpreadsheetReportChange,
};
use crate::models::user::{NewMembership, NewUser, User};

/// The password of every demo user.
pub const DEMO_PASSWORD: &str = "justice-counts-demo";

/// The seed of the demo data's generator.
const SEED: u64 = 20_230_101;
/// The first reported year.
const FIRST_YEAR: i32 = 2023;
/// How many years are reported.
const YEARS: i32 = 3;
/// Rows per multi-row insert, below PostgreSQL's 65,535 parameters at 8 columns a row.
const BATCH: usize = 8_000;

/// What the demo data set holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Agencies created.
    pub agencies: usize,
    /// Users created.
    pub users: usize,
    /// Reports created.
    pub reports: usize,
    /// Datapoints created.
    pub datapoints: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} agencies, {} users, {} reports, {} datapoints",
            self.agencies, self.users, self.reports, self.datapoints
        )
    }
}

/// Why the demo data was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The demo users exist already.
    #[error("the demo data is already loaded (user {0} exists)")]
    AlreadyLoaded(String),
    /// The database refused a row.
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    /// A password could not be hashed.
    #[error("hashing a demo password failed: {0}")]
    Password(crate::error::AppError),
}

struct AgencySpec {
    handle: &'static str,
    name: &'static str,
    state: &'static str,
    county: Option<&'static str>,
    systems: &'static [System],
    parent: Option<&'static str>,
    dashboard: bool,
    /// Relative size: scales every value.
    size: f64,
    /// Reports supervision data per subsystem instead of in total.
    split_supervision: bool,
    /// First month of the reporting year of annual metrics, when not January.
    fiscal_start: Option<u32>,
    /// Metrics the agency has switched off.
    disabled: &'static [&'static str],
}

const fn agency(
    handle: &'static str,
    name: &'static str,
    state: &'static str,
    county: Option<&'static str>,
    systems: &'static [System],
) -> AgencySpec {
    AgencySpec {
        handle,
        name,
        state,
        county,
        systems,
        parent: None,
        dashboard: true,
        size: 1.0,
        split_supervision: false,
        fiscal_start: None,
        disabled: &[],
    }
}

fn agencies() -> Vec<AgencySpec> {
    use System::*;
    vec![
        agency(
            "council",
            "Pine County Public Safety Council",
            "us_or",
            Some("us_or_pine"),
            &[Superagency],
        ),
        AgencySpec {
            parent: Some("council"),
            ..agency(
                "pine_sheriff",
                "Pine County Sheriff's Office",
                "us_or",
                Some("us_or_pine"),
                &[LawEnforcement, Jails],
            )
        },
        AgencySpec {
            parent: Some("council"),
            size: 0.7,
            disabled: &["PROSECUTION_VIOLATIONS_WITH_DISCIPLINARY_ACTION"],
            ..agency(
                "pine_da",
                "Pine County District Attorney",
                "us_or",
                Some("us_or_pine"),
                &[Prosecution],
            )
        },
        AgencySpec {
            parent: Some("council"),
            dashboard: false,
            split_supervision: true,
            ..agency(
                "pine_corrections",
                "Pine County Community Corrections",
                "us_or",
                Some("us_or_pine"),
                &[Supervision, Parole, Probation],
            )
        },
        AgencySpec {
            size: 1.6,
            ..agency(
                "harbor_pd",
                "Harbor City Police Department",
                "us_wa",
                Some("us_wa_harbor"),
                &[LawEnforcement],
            )
        },
        agency(
            "harbor_defender",
            "Harbor County Public Defender",
            "us_wa",
            Some("us_wa_harbor"),
            &[Defense],
        ),
        AgencySpec {
            dashboard: false,
            ..agency(
                "harbor_court",
                "Harbor County Superior Court",
                "us_wa",
                Some("us_wa_harbor"),
                &[CourtsAndPretrial],
            )
        },
        AgencySpec {
            size: 0.8,
            disabled: &["JAILS_READMISSIONS"],
            ..agency(
                "harbor_jail",
                "Harbor County Jail",
                "us_wa",
                Some("us_wa_harbor"),
                &[Jails],
            )
        },
        AgencySpec {
            size: 3.0,
            fiscal_start: Some(7),
            ..agency(
                "mesa_doc",
                "Mesa State Department of Corrections",
                "us_nm",
                None,
                &[Prisons],
            )
        },
        AgencySpec {
            size: 2.0,
            ..agency(
                "mesa_parole",
                "Mesa State Adult Parole",
                "us_nm",
                None,
                &[Supervision],
            )
        },
        AgencySpec {
            dashboard: false,
            size: 0.5,
            ..agency(
                "cedar_pd",
                "Cedar Falls Police Department",
                "us_ia",
                Some("us_ia_cedar"),
                &[LawEnforcement],
            )
        },
        AgencySpec {
            size: 0.4,
            ..agency(
                "cedar_pretrial",
                "Cedar County Pretrial Services",
                "us_ia",
                Some("us_ia_cedar"),
                &[PretrialSupervision],
            )
        },
    ]
}

struct UserSpec {
    name: &'static str,
    email: &'static str,
    platform_admin: bool,
    memberships: &'static [(&'static str, AgencyRole, InvitationStatus)],
}

/// The demo users; the README lists them.
fn users() -> Vec<UserSpec> {
    use AgencyRole::*;
    use InvitationStatus::*;
    vec![
        UserSpec {
            name: "Avery Quinn",
            email: "admin@example.com",
            platform_admin: true,
            memberships: &[],
        },
        UserSpec {
            name: "Morgan Reyes",
            email: "council.admin@example.com",
            platform_admin: false,
            memberships: &[("council", AgencyAdmin, Accepted)],
        },
        UserSpec {
            name: "Jordan Blake",
            email: "sheriff.admin@example.com",
            platform_admin: false,
            memberships: &[("pine_sheriff", AgencyAdmin, Accepted)],
        },
        UserSpec {
            name: "Casey Moreno",
            email: "sheriff.contributor@example.com",
            platform_admin: false,
            memberships: &[("pine_sheriff", Contributor, Accepted)],
        },
        UserSpec {
            name: "Riley Chen",
            email: "sheriff.reader@example.com",
            platform_admin: false,
            memberships: &[("pine_sheriff", ReadOnly, Accepted)],
        },
        UserSpec {
            name: "Taylor Okafor",
            email: "harbor.contributor@example.com",
            platform_admin: false,
            memberships: &[("harbor_pd", Contributor, Accepted)],
        },
        UserSpec {
            name: "Sam Whitfield",
            email: "mesa.admin@example.com",
            platform_admin: false,
            memberships: &[
                ("mesa_doc", AgencyAdmin, Accepted),
                ("mesa_parole", AgencyAdmin, Accepted),
            ],
        },
        UserSpec {
            name: "Dana Kowalski",
            email: "analyst@example.com",
            platform_admin: false,
            memberships: &[
                ("harbor_jail", ReadOnly, Accepted),
                ("harbor_court", ReadOnly, Accepted),
                ("cedar_pd", ReadOnly, Accepted),
            ],
        },
        UserSpec {
            name: "Jamie Ortiz",
            email: "invitee@example.com",
            platform_admin: false,
            memberships: &[("pine_sheriff", ReadOnly, Pending)],
        },
    ]
}

/// Noon UTC on `date`.
fn noon(date: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(12, 0, 0).unwrap_or_default())
}

fn first_of(year: i32, month: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, 1).unwrap_or_default()
}

/// The metrics an agency reports: those of its systems, less the ones it switched off, and
/// with supervision reported per subsystem when it splits it.
fn enabled_metrics<'a>(catalogue: &'a Catalogue, spec: &AgencySpec) -> Vec<&'a MetricDefinition> {
    catalogue
        .metrics()
        .iter()
        .filter(|metric| spec.systems.contains(&metric.system))
        .filter(|metric| !(spec.split_supervision && metric.system == System::Supervision))
        .filter(|metric| !spec.disabled.contains(&metric.key.as_str()))
        .collect()
}

/// Loads the demo data set in one transaction.
pub async fn seed(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
) -> Result<Summary, SeedError> {
    conn.transaction(async |conn| seed_in_transaction(conn, catalogue).await)
        .await
}

async fn seed_in_transaction(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
) -> Result<Summary, SeedError> {
    let user_specs = users();
    let first_email = user_specs[0].email;
    let existing: i64 = users::table
        .filter(users::email.eq(first_email))
        .count()
        .get_result(conn)
        .await?;
    if existing > 0 {
        return Err(SeedError::AlreadyLoaded(first_email.into()));
    }

    let mut rng = Rng::new(SEED);
    let mut summary = Summary::default();
    let specs = agencies();
    let mut ids: HashMap<&str, AgencyId> = HashMap::new();
    for spec in &specs {
        let id = NewAgency {
            name: spec.name.into(),
            state_code: spec.state.into(),
            county_code: spec.county.map(Into::into),
            systems: spec.systems.iter().copied().map(Some).collect(),
            is_superagency: spec.systems.contains(&System::Superagency),
            super_agency_id: spec.parent.and_then(|parent| ids.get(parent).copied()),
            is_dashboard_enabled: spec.dashboard,
        }
        .insert(conn)
        .await?;
        ids.insert(spec.handle, id);
    }
    summary.agencies = specs.len();

    let mut user_ids: HashMap<&str, UserId> = HashMap::new();
    for user in &user_specs {
        let id = NewUser {
            name: user.name.into(),
            email: user.email.into(),
            is_platform_admin: user.platform_admin,
        }
        .insert(conn)
        .await?;
        // The invitee has not chosen a password yet.
        if user
            .memberships
            .iter()
            .all(|&(_, _, status)| status == InvitationStatus::Accepted)
        {
            let hash = crate::auth::passwords::hash(DEMO_PASSWORD).map_err(SeedError::Password)?;
            User::set_password_hash(conn, id, &hash).await?;
        }
        user_ids.insert(user.email, id);
    }
    let platform_admin = user_ids[first_email];
    for user in &user_specs {
        for &(handle, role, invitation_status) in user.memberships {
            NewMembership {
                user_id: user_ids[user.email],
                agency_id: ids[handle],
                role,
                invitation_status,
            }
            .insert(conn, Some(platform_admin))
            .await?;
        }
    }
    summary.users = user_specs.len();

    insert_agency_profiles(conn, &ids).await?;
    for spec in &specs {
        insert_metric_settings(conn, catalogue, spec, ids[spec.handle]).await?;
    }

    let editor_of = |handle: &str| -> UserId {
        let email = match handle {
            "pine_sheriff" => "sheriff.contributor@example.com",
            "council" | "pine_da" | "pine_corrections" => "council.admin@example.com",
            "harbor_pd" => "harbor.contributor@example.com",
            "mesa_doc" | "mesa_parole" => "mesa.admin@example.com",
            _ => first_email,
        };
        user_ids[email]
    };
    for spec in &specs {
        let counts = insert_reports(
            conn,
            catalogue,
            spec,
            ids[spec.handle],
            editor_of(spec.handle),
            &mut rng,
        )
        .await?;
        summary.reports += counts.0;
        summary.datapoints += counts.1;
    }
    insert_value_history(conn).await?;
    insert_spreadsheets(
        conn,
        ids["pine_sheriff"],
        user_ids["sheriff.contributor@example.com"],
    )
    .await?;
    Ok(summary)
}

async fn insert_agency_profiles(
    conn: &mut AsyncPgConnection,
    ids: &HashMap<&str, AgencyId>,
) -> QueryResult<()> {
    let setting = |handle: &str, kind, value: &str| NewAgencySetting {
        agency_id: ids[handle],
        kind,
        value: value.into(),
    };
    let settings = vec![
        setting(
            "pine_sheriff",
            AgencySettingKind::PurposeAndFunctions,
            "Patrols unincorporated Pine County and runs the county jail.",
        ),
        setting(
            "pine_sheriff",
            AgencySettingKind::HomepageUrl,
            "https://sheriff.pine-county.example",
        ),
        setting(
            "pine_sheriff",
            AgencySettingKind::ContactEmail,
            "records@sheriff.pine-county.example",
        ),
        setting(
            "council",
            AgencySettingKind::PurposeAndFunctions,
            "Coordinates public-safety reporting for the agencies of Pine County.",
        ),
        setting(
            "harbor_pd",
            AgencySettingKind::HomepageUrl,
            "https://police.harbor-city.example",
        ),
        setting(
            "mesa_doc",
            AgencySettingKind::DataSharingNotes,
            "Annual figures follow the state fiscal year, which starts in July.",
        ),
    ];
    diesel::insert_into(agency_settings::table)
        .values(&settings)
        .execute(conn)
        .await?;
    let jurisdiction = |handle: &str, geoid: &str, kind| NewJurisdiction {
        agency_id: ids[handle],
        geoid: geoid.into(),
        kind,
    };
    let jurisdictions = vec![
        jurisdiction("pine_sheriff", "41099", JurisdictionKind::Included),
        jurisdiction("pine_sheriff", "4159000", JurisdictionKind::Excluded),
        jurisdiction("harbor_pd", "5330000", JurisdictionKind::Included),
        jurisdiction("cedar_pd", "1911755", JurisdictionKind::Included),
    ];
    diesel::insert_into(agency_jurisdictions::table)
        .values(&jurisdictions)
        .execute(conn)
        .await?;
    Ok(())
}

async fn insert_metric_settings(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
    spec: &AgencySpec,
    agency_id: AgencyId,
) -> QueryResult<()> {
    let mut settings = Vec::new();
    for metric in catalogue
        .metrics()
        .iter()
        .filter(|m| spec.systems.contains(&m.system))
    {
        let mut setting = NewMetricSetting::new(agency_id, metric.key.clone());
        if spec.disabled.contains(&metric.key.as_str()) {
            setting.is_enabled = Some(false);
        }
        if spec.split_supervision && metric.system == System::Supervision {
            setting.is_enabled = Some(false);
            setting.is_disaggregated_by_subsystem = Some(true);
        }
        if metric.default_frequency == ReportFrequency::Annual {
            setting.starting_month = spec.fiscal_start.map(|month| month as i16);
        }
        if setting.is_enabled.is_some()
            || setting.starting_month.is_some()
            || setting.is_disaggregated_by_subsystem.is_some()
        {
            settings.push(setting);
        }
    }
    if spec.handle == "pine_sheriff" {
        settings.push(NewMetricSetting {
            is_enabled: Some(true),
            definition_note: Some(
                "Counts custodial arrests; citations in lieu of arrest are excluded.".into(),
            ),
            ..NewMetricSetting::new(agency_id, "LAW_ENFORCEMENT_ARRESTS")
        });
        if let Some(funding) = catalogue.metric("LAW_ENFORCEMENT_FUNDING") {
            let answers: Vec<_> = funding
                .checklist_items()
                .take(3)
                .map(|(_, _, item)| NewMetricSettingAnswer {
                    agency_id,
                    metric_key: funding.key.clone(),
                    item_key: item.key.clone(),
                    is_included: !item.default_included,
                })
                .collect();
            diesel::insert_into(metric_setting_answers::table)
                .values(&answers)
                .execute(conn)
                .await?;
        }
    }
    diesel::insert_into(metric_settings::table)
        .values(&settings)
        .execute(conn)
        .await?;

    if spec.handle == "cedar_pd" {
        // Cedar Falls does not break arrests down by race.
        if let Some(arrests) = catalogue.metric("LAW_ENFORCEMENT_ARRESTS")
            && let Some(race) = arrests.breakdown("global/race_and_ethnicity")
        {
            let members: Vec<_> = race
                .members
                .iter()
                .map(|member| NewMetricSettingMember {
                    agency_id,
                    metric_key: arrests.key.clone(),
                    dimension_id: race.dimension.clone(),
                    member: member.name.clone(),
                    is_enabled: Some(false),
                    description: None,
                })
                .collect();
            diesel::insert_into(metric_setting_members::table)
                .values(&members)
                .execute(conn)
                .await?;
        }
    }
    if spec.handle == "pine_sheriff"
        && let Some(calls) = catalogue.metric("LAW_ENFORCEMENT_CALLS_FOR_SERVICE")
        && let Some(breakdown) = <[_]>::first(&calls.breakdowns)
        && let Some(other) = breakdown
            .members
            .iter()
            .find(|member| member.name.starts_with("OTHER"))
    {
        diesel::insert_into(metric_setting_members::table)
            .values(NewMetricSettingMember {
                agency_id,
                metric_key: calls.key.clone(),
                dimension_id: breakdown.dimension.clone(),
                member: other.name.clone(),
                is_enabled: Some(true),
                description: Some("Welfare checks and animal complaints.".into()),
            })
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The breakdowns an agency reports for a metric (all but Cedar Falls' race breakdown).
fn reported_breakdowns<'a>(spec: &AgencySpec, metric: &'a MetricDefinition) -> Vec<&'a Breakdown> {
    metric
        .breakdowns
        .iter()
        .filter(|b| {
            !(spec.handle == "cedar_pd"
                && metric.key == "LAW_ENFORCEMENT_ARRESTS"
                && b.dimension == "global/race_and_ethnicity")
        })
        .collect()
}

struct PlannedReport {
    frequency: ReportFrequency,
    start: NaiveDate,
    status: ReportStatus,
    /// Published once, then taken back to draft.
    unpublished: bool,
    period: usize,
}

fn plan_reports(spec: &AgencySpec) -> Vec<PlannedReport> {
    let months = (YEARS * 12) as usize;
    let mut planned = Vec::new();
    for period in 0..months {
        let start = first_of(FIRST_YEAR + (period / 12) as i32, (period % 12) as u32 + 1);
        let status = match months - period {
            1..=2 => ReportStatus::NotStarted,
            3..=5 => ReportStatus::Draft,
            _ => ReportStatus::Published,
        };
        // One older report per agency was reopened for corrections.
        let unpublished = period == 14;
        let status = if unpublished {
            ReportStatus::Draft
        } else {
            status
        };
        planned.push(PlannedReport {
            frequency: ReportFrequency::Monthly,
            start,
            status,
            unpublished,
            period,
        });
    }
    let start_month = spec.fiscal_start.unwrap_or(1);
    for year in 0..YEARS {
        let status = if year == YEARS - 1 {
            ReportStatus::Draft
        } else {
            ReportStatus::Published
        };
        planned.push(PlannedReport {
            frequency: ReportFrequency::Annual,
            start: first_of(FIRST_YEAR + year, start_month),
            status,
            unpublished: false,
            period: year as usize,
        });
    }
    planned
}

/// Inserts an agency's reports with their values; returns (reports, datapoints).
async fn insert_reports(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
    spec: &AgencySpec,
    agency_id: AgencyId,
    editor: UserId,
    rng: &mut Rng,
) -> QueryResult<(usize, usize)> {
    let planned = plan_reports(spec);
    let rows: Vec<NewReport> = planned
        .iter()
        .map(|plan| {
            let end = period_end(plan.start, plan.frequency).unwrap_or(plan.start);
            let touched = noon(end.checked_add_days(Days::new(20)).unwrap_or(end));
            NewReport {
                agency_id,
                frequency: plan.frequency,
                date_range_start: plan.start,
                date_range_end: end,
                status: plan.status,
                published_at: (plan.status == ReportStatus::Published || plan.unpublished)
                    .then_some(touched),
                last_modified_at: touched,
            }
        })
        .collect();
    let inserted: Vec<(ReportId, ReportFrequency, NaiveDate)> = diesel::insert_into(reports::table)
        .values(&rows)
        .returning((reports::id, reports::frequency, reports::date_range_start))
        .get_results(conn)
        .await?;
    let report_ids: HashMap<(ReportFrequency, NaiveDate), ReportId> = inserted
        .into_iter()
        .map(|(id, frequency, start)| ((frequency, start), id))
        .collect();

    let metrics = enabled_metrics(catalogue, spec);
    let mut points = Vec::new();
    let mut editors = Vec::new();
    let mut status_changes = Vec::new();
    let mut contexts = Vec::new();
    for (plan, row) in planned.iter().zip(&rows) {
        let report_id = report_ids[&(plan.frequency, plan.start)];
        if plan.status == ReportStatus::NotStarted {
            continue;
        }
        editors.push(NewReportEditor {
            report_id,
            user_id: editor,
            last_edited_at: row.last_modified_at,
        });
        let mut history = vec![(ReportStatus::NotStarted, ReportStatus::Draft)];
        if plan.status == ReportStatus::Published || plan.unpublished {
            history.push((ReportStatus::Draft, ReportStatus::Published));
        }
        if plan.unpublished {
            history.push((ReportStatus::Published, ReportStatus::Draft));
        }
        status_changes.extend(history.into_iter().enumerate().map(
            |(step, (old_status, new_status))| NewReportStatusChange {
                report_id,
                old_status,
                new_status,
                changed_by: Some(editor),
                changed_at: row.last_modified_at - chrono::Duration::days(3 - step as i64),
            },
        ));
        let due: Vec<&&MetricDefinition> = metrics
            .iter()
            .filter(|metric| metric.default_frequency == plan.frequency)
            .collect();
        for (index, metric) in due.iter().enumerate() {
            // Drafts are partly filled in; one of their metrics is marked "not reported".
            if plan.status == ReportStatus::Draft && !plan.unpublished {
                if index % 3 == 2 {
                    continue;
                }
                if index == 1 {
                    points.push(datapoint(report_id, &metric.key, None, None, None, editor));
                    continue;
                }
            }
            let breakdowns = reported_breakdowns(spec, metric);
            for cell in metric_cells(metric, &breakdowns, spec.size, plan.period, rng) {
                points.push(datapoint(
                    report_id,
                    &metric.key,
                    cell.dimension,
                    cell.member,
                    Some(cell.value),
                    editor,
                ));
            }
        }
        if plan.status == ReportStatus::Draft
            && let Some(metric) = <[_]>::first(&due)
        {
            contexts.push(NewReportContext {
                report_id,
                metric_key: metric.key.clone(),
                value: "Figures are provisional while the records system is being migrated.".into(),
                updated_by: Some(editor),
            });
        }
    }
    diesel::insert_into(report_editors::table)
        .values(&editors)
        .execute(conn)
        .await?;
    diesel::insert_into(report_status_changes::table)
        .values(&status_changes)
        .execute(conn)
        .await?;
    diesel::insert_into(report_contexts::table)
        .values(&contexts)
        .execute(conn)
        .await?;
    for chunk in points.chunks(BATCH) {
        diesel::insert_into(datapoints::table)
            .values(chunk)
            .execute(conn)
            .await?;
    }
    Ok((rows.len(), points.len()))
}

fn datapoint(
    report_id: ReportId,
    metric_key: &str,
    dimension: Option<&str>,
    member: Option<&str>,
    value: Option<f64>,
    editor: UserId,
) -> NewDatapoint {
    NewDatapoint {
        report_id,
        metric_key: metric_key.into(),
        dimension_id: dimension.map(Into::into),
        member: member.map(Into::into),
        sub_category: None,
        value,
        source: ValueSource::ManualEntry,
        updated_by: Some(editor),
    }
}

/// Corrections: in March and September reports, each aggregate value was first entered 5%
/// low and then corrected, which the history records.
async fn insert_value_history(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    let corrected = datapoints::table
        .inner_join(reports::table)
        .filter(datapoints::dimension_id.is_null())
        .filter(datapoints::value.is_not_null())
        .filter(reports::frequency.eq(ReportFrequency::Monthly))
        .filter(reports::status.ne(ReportStatus::NotStarted))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
            "extract(month FROM reports.date_range_start) IN (3, 9)",
        ))
        .select((
            datapoints::id,
            datapoints::updated_by,
            reports::last_modified_at,
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Double>>(
                "round(datapoints.value * 0.95)",
            ),
            datapoints::value,
            datapoints::source,
        ));
    diesel::insert_into(datapoint_changes::table)
        .values(corrected)
        .into_columns((
            datapoint_changes::datapoint_id,
            datapoint_changes::changed_by,
            datapoint_changes::changed_at,
            datapoint_changes::old_value,
            datapoint_changes::new_value,
            datapoint_changes::source,
        ))
        .execute(conn)
        .await
}

async fn insert_spreadsheets(
    conn: &mut AsyncPgConnection,
    agency_id: AgencyId,
    uploader: UserId,
) -> QueryResult<()> {
    let at =
        |month: u32, day: u32| noon(NaiveDate::from_ymd_opt(2025, month, day).unwrap_or_default());
    let sheet = |file_name: &str, system, status, uploaded_at, ingested_at, new_datapoint_count| {
        NewSpreadsheet {
            agency_id,
            system,
            file_name: file_name.into(),
            uploaded_by: Some(uploader),
            uploaded_at,
            status,
            ingested_at,
            new_datapoint_count,
        }
    };
    let rows = vec![
        sheet(
            "pine_jails_2025_h1.xlsx",
            System::Jails,
            SpreadsheetStatus::Ingested,
            at(7, 21),
            Some(at(7, 21)),
            0,
        ),
        sheet(
            "arrests_2025_q3.csv",
            System::LawEnforcement,
            SpreadsheetStatus::Errored,
            at(10, 18),
            None,
            0,
        ),
        sheet(
            "calls_for_service_oct.csv",
            System::LawEnforcement,
            SpreadsheetStatus::Uploaded,
            at(11, 19),
            None,
            0,
        ),
    ];
    let ids: Vec<SpreadsheetId> = diesel::insert_into(spreadsheets::table)
        .values(&rows)
        .returning(spreadsheets::id)
        .get_results(conn)
        .await?;
    let message = |spreadsheet_id,
                   severity,
                   row_number: Option<i32>,
                   metric_key: Option<&str>,
                   (title, message): (&str, &str)| {
        NewSpreadsheetMessage {
            spreadsheet_id,
            severity,
            sheet: Some("data".into()),
            row_number,
            metric_key: metric_key.map(Into::into),
            message: message.into(),
            title: title.into(),
        }
    };
    let messages = vec![
        message(
            ids[0],
            MessageSeverity::Warning,
            Some(12),
            Some("JAILS_TOTAL_POPULATION"),
            (
                "Breakdown Total Warning",
                "the breakdown by offense does not add up to the total (612 of 640)",
            ),
        ),
        message(
            ids[1],
            MessageSeverity::Error,
            Some(4),
            Some("LAW_ENFORCEMENT_ARRESTS"),
            (
                "Invalid 'value' Column Value",
                "Row 4: \"-3\" in the `value` column is not a number from 0 to 1e15",
            ),
        ),
        message(
            ids[1],
            MessageSeverity::Error,
            Some(9),
            None,
            (
                "Invalid 'metric' Column Value",
                "Row 9: \"ARRESTS_TOTAL\" in the `metric` column is not a LAW_ENFORCEMENT metric",
            ),
        ),
    ];
    diesel::insert_into(spreadsheet_messages::table)
        .values(&messages)
        .execute(conn)
        .await?;

    // The ingested file covered the first half of 2025's monthly reports.
    let touched: Vec<ReportId> = reports::table
        .filter(reports::agency_id.eq(agency_id))
        .filter(reports::frequency.eq(ReportFrequency::Monthly))
        .filter(reports::date_range_start.between(first_of(2025, 1), first_of(2025, 6)))
        .order(reports::date_range_start)
        .select(reports::id)
        .load(conn)
        .await?;
    let changes: Vec<_> = touched
        .iter()
        .enumerate()
        .map(|(index, &report_id)| NewSpreadsheetReportChange {
            spreadsheet_id: ids[0],
            report_id,
            change: if index % 3 == 0 {
                ReportChangeKind::Unchanged
            } else {
                ReportChangeKind::Updated
            },
        })
        .collect();
    diesel::insert_into(spreadsheet_report_changes::table)
        .values(&changes)
        .execute(conn)
        .await?;
    diesel::update(spreadsheets::table.filter(spreadsheets::id.eq(ids[0])))
        .set(spreadsheets::new_datapoint_count.eq(i32::try_from(changes.len() * 7).unwrap_or(0)))
        .execute(conn)
        .await?;
    Ok(())
}
