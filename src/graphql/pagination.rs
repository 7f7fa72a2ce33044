//! Relay cursor connections: page arguments, opaque cursors, and `totalCount`.
//!
//! Cursors encode a position in a list's order (keyset pagination), so pages stay stable while
//! rows are added. They are opaque to clients: base64 of a tagged text. One that does not
//! decode, or belongs to another list, is a BAD_USER_INPUT error.

use async_graphql::connection::PageInfo;
use async_graphql::{Context, Object};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use super::{Gql, connection};
use crate::auth::secrets;
use crate::error::{AppError, AppResult};
use crate::limits::{MAX_DATE, MIN_DATE};
use crate::models::agency::{Agency, AgencyFilter, AgencyKey};
use crate::models::ids::{AgencyId, ReportId, SpreadsheetId};
use crate::models::page::{Page, Slice};
use crate::models::report::{Report, ReportFilter, ReportKey};
use crate::models::spreadsheet::{Spreadsheet, SpreadsheetKey};

/// Page size when neither `first` nor `last` is given.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: i64 = 100;

/// The standard connection arguments.
#[derive(Debug, Clone, Default)]
pub struct PageArgs {
    /// Items after this cursor.
    pub after: Option<String>,
    /// Items before this cursor.
    pub before: Option<String>,
    /// The first N items.
    pub first: Option<i32>,
    /// The last N items.
    pub last: Option<i32>,
}

/// A list position that a cursor can carry.
pub trait CursorKey: Sized + Clone {
    /// Tag naming the list, so a cursor of one list is refused by another.
    const TAG: &'static str;
    /// The position as text.
    fn encode(&self) -> String;
    /// The position from text.
    fn decode(text: &str) -> Option<Self>;
}

/// A short check value of a cursor's text, so that an edited cursor is recognised as such
/// rather than read as another position.
fn check_value(text: &str) -> String {
    // The first 8 hex digits of the text's SHA-256.
    secrets::hex(&Sha256::digest(text.as_bytes())[..4])
}

/// The opaque cursor of a position.
pub fn cursor<K: CursorKey>(key: &K) -> String {
    let text = format!("{}:{}", K::TAG, key.encode());
    URL_SAFE_NO_PAD.encode(format!("{}|{text}", check_value(&text)))
}

/// The position a cursor names; BAD_USER_INPUT for a cursor of another list or an edited one.
pub fn decode_cursor<K: CursorKey>(cursor: &str) -> AppResult<K> {
    let invalid =
        || AppError::BadUserInput(format!("{cursor:?} is not a valid cursor for this list"));
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| invalid())?;
    let decoded = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (check, text) = decoded.split_once('|').ok_or_else(invalid)?;
    if check != check_value(text) {
        return Err(invalid());
    }
    let rest = text
        .strip_prefix(K::TAG)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(invalid)?;
    K::decode(rest).ok_or_else(invalid)
}

impl PageArgs {
    /// The slice these arguments ask for, validated.
    pub fn slice<K: CursorKey>(&self) -> AppResult<Slice<K>> {
        if self.first.is_some() && self.last.is_some() {
            return Err(AppError::BadUserInput(
                "give either `first` or `last`, not both".into(),
            ));
        }
        let size = |name: &str, value: i32| -> AppResult<i64> {
            let value = i64::from(value);
            if !(0..=MAX_PAGE_SIZE).contains(&value) {
                return Err(AppError::BadUserInput(format!(
                    "`{name}` must be between 0 and {MAX_PAGE_SIZE}"
                )));
            }
            Ok(value)
        };
        let backwards = self.last.is_some()
            || (self.first.is_none() && self.before.is_some() && self.after.is_none());
        let limit = match (self.first, self.last) {
            (Some(first), _) => size("first", first)?,
            (_, Some(last)) => size("last", last)?,
            _ => DEFAULT_PAGE_SIZE,
        };
        Ok(Slice {
            after: self.after.as_deref().map(decode_cursor).transpose()?,
            before: self.before.as_deref().map(decode_cursor).transpose()?,
            limit,
            backwards,
        })
    }
}

/// What a connection's `totalCount` counts; counted only when asked for.
pub enum TotalCount {
    /// Already counted.
    Known(i64),
    /// An agency's reports matching a filter.
    Reports(AgencyId, ReportFilter),
    /// An agency's uploads.
    Spreadsheets(AgencyId),
    /// The agencies matching a filter.
    Agencies(AgencyFilter),
}

impl TotalCount {
    async fn count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        if let Self::Known(count) = self {
            return Ok(*count);
        }
        let mut conn = connection(ctx).await.gql()?;
        match self {
            Self::Known(count) => Ok(*count),
            Self::Reports(agency, filter) => Report::count(&mut conn, *agency, filter).await.gql(),
            Self::Spreadsheets(agency) => Spreadsheet::count(&mut conn, *agency).await.gql(),
            Self::Agencies(filter) => Agency::count(&mut conn, filter).await.gql(),
        }
    }
}

/// Defines a Relay connection type and its edge type for one node type.
macro_rules! connection_type {
    ($connection:ident, $edge:ident, $node:ty, $items:literal) => {
        #[doc = concat!("A page of ", $items, ", with cursors to page on (a Relay connection).")]
        pub struct $connection {
            edges: Vec<$edge>,
            page_info: PageInfo,
            total: TotalCount,
        }

        #[doc = concat!("A page of ", $items, ", with cursors to page on (a Relay connection).")]
        #[Object]
        impl $connection {
            /// The items of the page, each with its cursor.
            async fn edges(&self) -> &[$edge] {
                &self.edges
            }

            /// The items of the page.
            async fn nodes(&self) -> Vec<&$node> {
                self.edges.iter().map(|edge| &edge.node).collect()
            }

            /// Where the page stands in the list.
            async fn page_info(&self) -> &PageInfo {
                &self.page_info
            }

            /// How many items the whole list holds, across all pages.
            async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
                self.total.count(ctx).await
            }
        }

        #[doc = concat!("One of ", $items, " in a page, with its cursor.")]
        pub struct $edge {
            cursor: String,
            node: $node,
        }

        #[doc = concat!("One of ", $items, " in a page, with its cursor.")]
        #[Object]
        impl $edge {
            /// Pass as `after` or `before` to page from this item.
            async fn cursor(&self) -> &str {
                &self.cursor
            }

            /// The item.
            async fn node(&self) -> &$node {
                &self.node
            }
        }

        impl Connected for $connection {
            type Node = $node;

            fn assemble(
                edges: Vec<(String, $node)>,
                page_info: PageInfo,
                total: TotalCount,
            ) -> Self {
                let edges = edges
                    .into_iter()
                    .map(|(cursor, node)| $edge { cursor, node })
                    .collect();
                Self {
                    edges,
                    page_info,
                    total,
                }
            }
        }
    };
}

/// A connection type built from a page.
pub trait Connected {
    /// The node type.
    type Node;
    /// The connection of these edges.
    fn assemble(edges: Vec<(String, Self::Node)>, page_info: PageInfo, total: TotalCount) -> Self;
}

connection_type!(
    AgencyConnection,
    AgencyEdge,
    crate::graphql::agency::Agency,
    "agencies"
);
connection_type!(
    ReportConnection,
    ReportEdge,
    crate::graphql::report::Report,
    "reports"
);
connection_type!(
    UploadConnection,
    UploadEdge,
    crate::graphql::spreadsheet::Upload,
    "uploads"
);

/// Builds the connection of a page read with `slice`.
pub fn connection_of<Row, Key: CursorKey, C: Connected>(
    page: Page<Row>,
    slice: &Slice<Key>,
    key: impl Fn(&Row) -> Key,
    node: impl Fn(Row) -> C::Node,
    total: TotalCount,
) -> C {
    // A cursor names an existing row, so there are rows on its side of the page.
    let (has_previous_page, has_next_page) = if slice.backwards {
        (page.has_more, slice.before.is_some())
    } else {
        (slice.after.is_some(), page.has_more)
    };
    let edges: Vec<(String, C::Node)> = page
        .rows
        .into_iter()
        .map(|row| (cursor(&key(&row)), node(row)))
        .collect();
    let page_info = PageInfo {
        has_previous_page,
        has_next_page,
        start_cursor: edges.first().map(|(cursor, _)| cursor.clone()),
        end_cursor: edges.last().map(|(cursor, _)| cursor.clone()),
    };
    C::assemble(edges, page_info, total)
}

impl CursorKey for ReportKey {
    const TAG: &'static str = "report";

    fn encode(&self) -> String {
        format!("{}:{}", self.start, self.id)
    }

    fn decode(text: &str) -> Option<Self> {
        let (start, id) = text.split_once(':')?;
        // Within the API's dates: an edited cursor whose check value was recomputed must not
        // take a date the database cannot hold.
        let start = start
            .parse::<NaiveDate>()
            .ok()
            .filter(|start| (MIN_DATE..=MAX_DATE).contains(start))?;
        Some(Self {
            start,
            id: ReportId(id.parse().ok()?),
        })
    }
}

impl CursorKey for SpreadsheetKey {
    const TAG: &'static str = "upload";

    fn encode(&self) -> String {
        format!("{}:{}", self.uploaded_at.timestamp_micros(), self.id)
    }

    fn decode(text: &str) -> Option<Self> {
        let (at, id) = text.split_once(':')?;
        let uploaded_at = DateTime::<Utc>::from_timestamp_micros(at.parse().ok()?)
            .filter(|at| (MIN_DATE..=MAX_DATE).contains(&at.date_naive()))?;
        Some(Self {
            uploaded_at,
            id: SpreadsheetId(id.parse().ok()?),
        })
    }
}

impl CursorKey for AgencyKey {
    const TAG: &'static str = "agency";

    fn encode(&self) -> String {
        // The id first: names may contain the separator.
        format!("{}:{}", self.id, self.name)
    }

    fn decode(text: &str) -> Option<Self> {
        let (id, name) = text.split_once(':')?;
        Some(Self {
            id: AgencyId(id.parse().ok()?),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let key = ReportKey {
            start: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
            id: ReportId(42),
        };
        let encoded = cursor(&key);
        assert_eq!(decode_cursor::<ReportKey>(&encoded).unwrap(), key);
        // A cursor edited with its check value recomputed, to a date out of range.
        let far = cursor(&ReportKey {
            start: NaiveDate::from_ymd_opt(-100_000, 1, 1).unwrap(),
            id: ReportId(1),
        });
        assert!(decode_cursor::<ReportKey>(&far).is_err());
        let far = cursor(&SpreadsheetKey {
            uploaded_at: DateTime::<Utc>::MIN_UTC,
            id: SpreadsheetId(1),
        });
        assert!(decode_cursor::<SpreadsheetKey>(&far).is_err());
        assert!(decode_cursor::<ReportKey>("garbage!").is_err());
        for position in 0..encoded.len() {
            let mut tampered = encoded.clone().into_bytes();
            tampered[position] = if tampered[position] == b'A' {
                b'B'
            } else {
                b'A'
            };
            let tampered = String::from_utf8(tampered).unwrap();
            assert!(
                decode_cursor::<ReportKey>(&tampered).is_err(),
                "{tampered} was accepted"
            );
        }
        let other_list = cursor(&AgencyKey {
            id: AgencyId(1),
            name: "A".into(),
        });
        assert!(decode_cursor::<ReportKey>(&other_list).is_err());
    }

    #[test]
    fn page_arguments_are_validated() {
        let slice = PageArgs::default().slice::<ReportKey>().unwrap();
        assert_eq!(slice.limit, DEFAULT_PAGE_SIZE);
        assert!(!slice.backwards);
        let last = PageArgs {
            last: Some(5),
            ..PageArgs::default()
        }
        .slice::<ReportKey>()
        .unwrap();
        assert!(last.backwards && last.limit == 5);
        assert!(
            PageArgs {
                first: Some(101),
                ..PageArgs::default()
            }
            .slice::<ReportKey>()
            .is_err()
        );
        assert!(
            PageArgs {
                first: Some(-1),
                ..PageArgs::default()
            }
            .slice::<ReportKey>()
            .is_err()
        );
        assert!(
            PageArgs {
                first: Some(1),
                last: Some(1),
                ..PageArgs::default()
            }
            .slice::<ReportKey>()
            .is_err()
        );
    }
}
