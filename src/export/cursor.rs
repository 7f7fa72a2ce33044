//! Sync cursors: where a reader of a feed left off.
//!
//! A cursor is a PostgreSQL snapshot (`xmin:xmax:xip,…`, as `pg_current_snapshot()` gives it)
//! taken in the transaction that read the feed. Whatever a later read finds written by a
//! transaction that snapshot does not see is new to the reader — also what a transaction that
//! was still running during the read committed afterwards. A page of the GraphQL change stream
//! adds the snapshot of its first page and the last row it gave, so that the next page goes on
//! from there. Clients treat cursors as opaque strings.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;

/// Longest cursor accepted, in characters.
pub const MAX_CURSOR_CHARS: usize = 4096;
/// Most in-progress transactions a snapshot may list.
const MAX_IN_PROGRESS: usize = 1000;

/// A snapshot as PostgreSQL writes it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(String);

impl Snapshot {
    /// Checks the text of a `pg_snapshot`: `xmin:xmax:` and the ascending ids of transactions
    /// in progress, each in `[xmin, xmax)`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(':');
        let (Some(xmin), Some(xmax), Some(running), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let number = |part: &str| -> Option<u64> {
            (!part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        };
        let (xmin, xmax) = (number(xmin)?, number(xmax)?);
        if xmin == 0 || xmin > xmax || xmax > i64::MAX as u64 {
            return None;
        }
        let mut previous = None;
        if !running.is_empty() {
            for (count, id) in running.split(',').enumerate() {
                let id = number(id)?;
                if count >= MAX_IN_PROGRESS
                    || id < xmin
                    || id >= xmax
                    || previous.is_some_and(|p| p >= id)
                {
                    return None;
                }
                previous = Some(id);
            }
        }
        Some(Self(text.to_owned()))
    }

    /// The text PostgreSQL reads back as a `pg_snapshot`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a page of the change stream ends: which part of the stream and which row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The part of the stream (removals come before current values).
    pub part: i32,
    /// The row's id within the part.
    pub id: i64,
}

/// Where a reader left off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Changes since this snapshot are wanted; none within a first, full read.
    pub since: Option<Snapshot>,
    /// Within a paged read: the snapshot of its first page and the last row given.
    pub continues: Option<(Snapshot, Position)>,
}

impl Cursor {
    /// Everything after `snapshot`.
    pub fn after(snapshot: Snapshot) -> Self {
        Self {
            since: Some(snapshot),
            continues: None,
        }
    }

    /// Reads a cursor a client sent back; BAD_USER_INPUT when it is not one of ours.
    pub fn decode(text: &str) -> Result<Self, AppError> {
        let invalid = || {
            AppError::BadUserInput(
                "the cursor is not one this server gave; start again without it".into(),
            )
        };
        if text.len() > MAX_CURSOR_CHARS {
            return Err(invalid());
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let fields: Vec<&str> = text.split(';').collect();
        match fields.as_slice() {
            ["1", since] => Ok(Self::after(Snapshot::parse(since).ok_or_else(invalid)?)),
            ["1", since, first, part, id] => Ok(Self {
                since: if since.is_empty() {
                    None
                } else {
                    Some(Snapshot::parse(since).ok_or_else(invalid)?)
                },
                continues: Some((
                    Snapshot::parse(first).ok_or_else(invalid)?,
                    Position {
                        part: part.parse().map_err(|_| invalid())?,
                        id: id.parse().map_err(|_| invalid())?,
                    },
                )),
            }),
            _ => Err(invalid()),
        }
    }

    /// The cursor as the client receives it.
    pub fn encode(&self) -> String {
        let since = self.since.as_ref().map_or("", Snapshot::as_str);
        let text = match &self.continues {
            None => format!("1;{since}"),
            Some((first, position)) => format!(
                "1;{since};{};{};{}",
                first.as_str(),
                position.part,
                position.id
            ),
        };
        URL_SAFE_NO_PAD.encode(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_checked() {
        for good in ["3:3:", "740:745:741,743", "1:18446744073:"] {
            assert!(Snapshot::parse(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "1:2",
            "0:4:",
            "5:4:",
            "4:9:9",
            "4:9:3",
            "4:9:6,5",
            "4:9:6,6",
            "a:9:",
            "4:9:,",
            "4:9:5;",
            "1:99999999999999999999999:",
            "4:9:5:",
        ] {
            assert!(Snapshot::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_foreign_text_is_refused() {
        let plain = Cursor::after(Snapshot::parse("740:745:741,743").unwrap());
        assert_eq!(Cursor::decode(&plain.encode()).unwrap(), plain);
        let paged = Cursor {
            since: Snapshot::parse("740:745:"),
            continues: Some((
                Snapshot::parse("800:801:").unwrap(),
                Position { part: 2, id: 99 },
            )),
        };
        assert_eq!(Cursor::decode(&paged.encode()).unwrap(), paged);
        let first_read = Cursor {
            since: None,
            ..paged
        };
        assert_eq!(Cursor::decode(&first_read.encode()).unwrap(), first_read);
        for bad in [
            "".to_owned(),
            "not base64!".into(),
            URL_SAFE_NO_PAD.encode("2;740:745:"),
            URL_SAFE_NO_PAD.encode("1;740:745:'; DROP TABLE reports"),
            URL_SAFE_NO_PAD.encode("1;740:745:;800:801:;x;1"),
            URL_SAFE_NO_PAD.encode("1;"),
            "A".repeat(MAX_CURSOR_CHARS + 4),
        ] {
            assert!(Cursor::decode(&bad).is_err(), "{bad}");
        }
    }
}
