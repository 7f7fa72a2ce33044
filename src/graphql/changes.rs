//! The change stream of an agency's values, for clients that sync over GraphQL: the same rows
//! and cursors as the feeds' `?since=`, in pages.

use async_graphql::{Context, Enum, ID, SimpleObject};

use super::scalars::{Date, Timestamp};
use super::{Gql, catalogue, connection};
use crate::export::{self, Audience, ChangeRow, Cursor, FeedQuery};
use crate::limits::Limits;
use crate::models::enums::{ReportFrequency, ReportStatus};
use crate::models::ids::AgencyId;

/// What happened to a value.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ChangeKind {
    /// The value is new or changed (or, in the public stream, newly published): store it.
    Upsert,
    /// The value is gone (its report deleted or, in the public stream, taken back to draft):
    /// forget it.
    Delete,
}

/// One change of a value. A value is known by its agency, metric, period, breakdown, member
/// and sub-category.
#[derive(SimpleObject, Debug)]
pub struct DatapointChange {
    /// What happened.
    pub change: ChangeKind,
    /// The agency.
    pub agency_id: ID,
    /// The metric's key.
    pub metric_key: String,
    /// First day of the report's period.
    pub period_start: Date,
    /// Day after the period.
    pub period_end: Date,
    /// The report's frequency.
    pub frequency: Option<ReportFrequency>,
    /// The breakdown, for a breakdown value.
    pub dimension_id: Option<String>,
    /// The member, for a breakdown value.
    pub member: Option<String>,
    /// The free-text sub-category (never in the public stream).
    pub sub_category: Option<String>,
    /// The value; null when removed or reported as not available.
    pub value: Option<f64>,
    /// The report's status (null for a removal).
    pub report_status: Option<ReportStatus>,
    /// When the report was published.
    pub published_at: Option<Timestamp>,
    /// When the value last changed, or was removed.
    pub updated_at: Option<Timestamp>,
}

/// A page of changes.
#[derive(SimpleObject, Debug)]
pub struct DatapointChangePage {
    /// The changes, removals first. Apply them in order.
    pub changes: Vec<DatapointChange>,
    /// Pass as `since` for the next page — or, when `complete`, for the next sync.
    pub cursor: String,
    /// Whether this was the last page: everything up to the moment of the first page is in.
    pub complete: bool,
}

/// An enum value as the statement writes it (`MONTHLY`, `DRAFT`).
fn variant<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

fn timestamp(text: Option<&str>) -> Option<Timestamp> {
    text.and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map(|time| Timestamp(time.to_utc()))
}

impl From<ChangeRow> for DatapointChange {
    fn from(row: ChangeRow) -> Self {
        Self {
            change: if row.change == "delete" {
                ChangeKind::Delete
            } else {
                ChangeKind::Upsert
            },
            agency_id: ID(row.agency_id.to_string()),
            published_at: timestamp(row.published_at.as_deref()),
            updated_at: timestamp(row.updated_at.as_deref()),
            metric_key: row.metric_key,
            period_start: Date(row.period_start),
            period_end: Date(row.period_end),
            frequency: variant(&row.frequency),
            dimension_id: row.breakdown,
            member: row.member,
            sub_category: row.sub_category,
            value: row.value,
            report_status: row.report_status.as_deref().and_then(variant),
        }
    }
}

/// A page of the change stream of `agency` for `audience`.
pub async fn page(
    ctx: &Context<'_>,
    agency: AgencyId,
    audience: Audience,
    since: Option<&str>,
    first: Option<i32>,
) -> async_graphql::Result<DatapointChangePage> {
    let limit = ctx
        .data_opt::<std::sync::Arc<Limits>>()
        .map_or(Limits::default().max_changes_page, |limits| {
            limits.max_changes_page
        });
    let first = match first {
        None => limit.min(100),
        Some(first) => usize::try_from(first)
            .ok()
            .filter(|&first| (1..=limit).contains(&first))
            .ok_or_else(|| {
                crate::error::AppError::BadUserInput(format!(
                    "`first` must be between 1 and {limit}"
                ))
                .into_gql()
            })?,
    };
    let mut query = FeedQuery::new(audience, vec![agency]);
    query.since = since.map(Cursor::decode).transpose().gql()?;
    let mut conn = connection(ctx).await.gql()?;
    let page = export::changes(&mut conn, catalogue(ctx), &query, first)
        .await
        .gql()?;
    Ok(DatapointChangePage {
        changes: page.changes.into_iter().map(Into::into).collect(),
        cursor: page.next.encode(),
        complete: page.complete,
    })
}
