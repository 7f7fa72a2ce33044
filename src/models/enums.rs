//! Enumerations shared by the database (PostgreSQL enum types), the catalogue file and the
//! GraphQL schema. The database labels, the file's strings and the GraphQL values are the same
//! SCREAMING_SNAKE_CASE names.

use diesel_derive_enum::DbEnum;
use serde::{Deserialize, Serialize};

/// A criminal-justice system an agency reports for; each metric belongs to one.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    DbEnum,
    async_graphql::Enum,
    Serialize,
    Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::System"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum System {
    /// Police departments and sheriffs' offices.
    LawEnforcement,
    /// Prosecutors' offices.
    Prosecution,
    /// Public defenders and appointed counsel.
    Defense,
    /// Criminal courts and pretrial services.
    CourtsAndPretrial,
    /// Local detention facilities.
    Jails,
    /// State correctional facilities.
    Prisons,
    /// Community supervision as a whole.
    Supervision,
    /// Parole, a supervision subsystem.
    Parole,
    /// Probation, a supervision subsystem.
    Probation,
    /// Pretrial supervision, a supervision subsystem.
    PretrialSupervision,
    /// Any other supervision, a supervision subsystem.
    OtherSupervision,
    /// An umbrella agency reporting aggregate figures.
    Superagency,
}

impl System {
    /// Every system, in catalogue order.
    pub const ALL: [System; 12] = [
        System::LawEnforcement,
        System::Prosecution,
        System::Defense,
        System::CourtsAndPretrial,
        System::Jails,
        System::Prisons,
        System::Supervision,
        System::Parole,
        System::Probation,
        System::PretrialSupervision,
        System::OtherSupervision,
        System::Superagency,
    ];

    /// The system whose [`key`](Self::key) is `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|system| system.key() == key)
    }

    /// The supervision subsystems, whose metrics copy the SUPERVISION ones.
    pub const SUPERVISION_SUBSYSTEMS: [System; 4] = [
        System::Parole,
        System::Probation,
        System::PretrialSupervision,
        System::OtherSupervision,
    ];

    /// Whether this is one of the supervision subsystems.
    pub fn is_supervision_subsystem(self) -> bool {
        Self::SUPERVISION_SUBSYSTEMS.contains(&self)
    }

    /// The SCREAMING_SNAKE_CASE name used in metric keys.
    pub fn key(self) -> &'static str {
        match self {
            Self::LawEnforcement => "LAW_ENFORCEMENT",
            Self::Prosecution => "PROSECUTION",
            Self::Defense => "DEFENSE",
            Self::CourtsAndPretrial => "COURTS_AND_PRETRIAL",
            Self::Jails => "JAILS",
            Self::Prisons => "PRISONS",
            Self::Supervision => "SUPERVISION",
            Self::Parole => "PAROLE",
            Self::Probation => "PROBATION",
            Self::PretrialSupervision => "PRETRIAL_SUPERVISION",
            Self::OtherSupervision => "OTHER_SUPERVISION",
            Self::Superagency => "SUPERAGENCY",
        }
    }
}

/// The group a metric is shown under.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum, Serialize, Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::MetricCategory"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MetricCategory {
    /// Money and staff.
    CapacityAndCosts,
    /// How cases and people move through the agency.
    OperationsAndDynamics,
    /// People in custody or under supervision, and their movements.
    Populations,
    /// Crime, safety incidents and outcomes.
    PublicSafety,
    /// Complaints, grievances and misconduct.
    Fairness,
}

/// How a metric's values combine over time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum, Serialize, Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::MeasurementType"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MeasurementType {
    /// A level at a point in time (a population, a budget): averaged over longer periods.
    Instant,
    /// A count of events during the period: summed over longer periods.
    Delta,
    /// An average over the period: averaged over longer periods.
    Average,
    /// A count of distinct people during the period: summed over longer periods.
    PersonBasedDelta,
}

impl MeasurementType {
    /// Whether values of consecutive periods add up (events) rather than average (levels).
    pub fn is_additive(self) -> bool {
        matches!(self, Self::Delta | Self::PersonBasedDelta)
    }
}

/// How often a metric is reported, and the length of a report's period.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum, Serialize, Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::ReportFrequency"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportFrequency {
    /// One calendar month.
    Monthly,
    /// Twelve months from the agency's starting month.
    Annual,
}

impl ReportFrequency {
    /// The name PostgreSQL and files use: `MONTHLY` or `ANNUAL`.
    pub fn key(self) -> &'static str {
        match self {
            Self::Monthly => "MONTHLY",
            Self::Annual => "ANNUAL",
        }
    }
}

/// Where a report stands in its life.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum, Serialize, Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::ReportStatus"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportStatus {
    /// Created, with no data entered yet.
    NotStarted,
    /// Being edited; visible to the agency only.
    Draft,
    /// Visible on the public dashboard (when the agency's dashboard is enabled).
    Published,
}

/// A user's role in an agency. Each role includes the rights of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, DbEnum, async_graphql::Enum)]
#[ExistingTypePath = "crate::db::schema::sql_types::AgencyRole"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
pub enum AgencyRole {
    /// May read the agency's data, drafts included.
    ReadOnly,
    /// May also enter data, save drafts, publish and upload spreadsheets.
    Contributor,
    /// May also manage settings, reports and the team.
    AgencyAdmin,
}

/// Whether an invited member has accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum)]
#[ExistingTypePath = "crate::db::schema::sql_types::InvitationStatus"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
pub enum InvitationStatus {
    /// Invited, not yet accepted.
    Pending,
    /// Accepted; the membership is active.
    Accepted,
}

/// The kinds of agency setting; an agency has at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum)]
#[ExistingTypePath = "crate::db::schema::sql_types::AgencySettingKind"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
pub enum AgencySettingKind {
    /// What the agency is and does, in its own words.
    PurposeAndFunctions,
    /// The agency's public website.
    HomepageUrl,
    /// The address to write to with questions about the agency's data.
    ContactEmail,
    /// Notes on how the agency shares and qualifies its data.
    DataSharingNotes,
}

/// Whether a census area is part of an agency's jurisdiction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum)]
#[ExistingTypePath = "crate::db::schema::sql_types::JurisdictionKind"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
pub enum JurisdictionKind {
    /// The area is covered by the agency's data.
    Included,
    /// The area lies inside an included one but is not covered.
    Excluded,
}

/// How a value got into the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum)]
#[ExistingTypePath = "crate::db::schema::sql_types::ValueSource"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
pub enum ValueSource {
    /// Typed in on the data-entry screen.
    ManualEntry,
    /// Read from a spreadsheet a user uploaded.
    BulkUpload,
    /// Read from a spreadsheet an automated feed delivered.
    AutomatedBulkUpload,
}

/// Where an uploaded spreadsheet stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum, Serialize, Deserialize,
)]
#[ExistingTypePath = "crate::db::schema::sql_types::SpreadsheetStatus"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SpreadsheetStatus {
    /// Received and queued, not yet read.
    Uploaded,
    /// Being read and applied.
    Ingesting,
    /// Read, and its values stored (for a dry run: compared); warnings allowed.
    Ingested,
    /// Read with errors (the valid values were stored), or not readable; see its messages.
    Errored,
    /// Cancelled before it was applied; nothing was stored.
    Cancelled,
}

/// What applying one value of an upload did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum)]
#[ExistingTypePath = "crate::db::schema::sql_types::ValueOutcome"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
pub enum ValueOutcome {
    /// A value where there was none.
    New,
    /// A different value replaced the stored one.
    Updated,
    /// The stored value was the same.
    Unchanged,
    /// Not stored: a duplicate row, or a value a later row of the upload replaced.
    Dropped,
}

/// How serious a spreadsheet message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum)]
#[ExistingTypePath = "crate::db::schema::sql_types::MessageSeverity"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
pub enum MessageSeverity {
    /// The row or sheet was not ingested.
    Error,
    /// Ingested, but worth a look.
    Warning,
}

/// What an ingest did to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, DbEnum, async_graphql::Enum)]
#[ExistingTypePath = "crate::db::schema::sql_types::ReportChangeKind"]
#[DbValueStyle = "SCREAMING_SNAKE_CASE"]
pub enum ReportChangeKind {
    /// The ingest created the report.
    New,
    /// The ingest changed values of the report.
    Updated,
    /// The report's values were already those of the file.
    Unchanged,
}
