//! Custom scalars. `Date` is bounded where it is parsed: a date outside
//! [`MIN_DATE`]..[`MAX_DATE`] never reaches a resolver, date arithmetic or the database.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::NaiveDate;

use crate::limits::{MAX_DATE, MIN_DATE};

/// A calendar date without a time zone, written `YYYY-MM-DD` (RFC 3339 `full-date`), between
/// 1900-01-01 and 2200-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub NaiveDate);

/// A calendar date without a time zone, written `YYYY-MM-DD` (RFC 3339 `full-date`), between
/// 1900-01-01 and 2200-01-01.
#[Scalar(
    name = "Date",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6"
)]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(text) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        Self::parse_text(text).map_err(InputValueError::custom)
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(text) if Self::parse_text(text).is_ok())
    }

    fn to_value(&self) -> Value {
        // ISO 8601 (`YYYY-MM-DD`): the dates accepted are within years 1–9999.
        Value::String(self.0.to_string())
    }
}

impl Date {
    /// Parses `YYYY-MM-DD` inside the accepted range.
    pub fn parse_text(text: &str) -> Result<Self, String> {
        let well_formed = text.len() == 10
            && text.bytes().enumerate().all(|(i, byte)| match i {
                4 | 7 => byte == b'-',
                _ => byte.is_ascii_digit(),
            });
        let date = well_formed
            .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
            .flatten()
            .ok_or_else(|| format!("{text:?} is not a date written YYYY-MM-DD"))?;
        if !(MIN_DATE..=MAX_DATE).contains(&date) {
            return Err(format!(
                "{text} is outside the dates this API accepts ({MIN_DATE} to {MAX_DATE})"
            ));
        }
        Ok(Self(date))
    }
}

impl From<NaiveDate> for Date {
    fn from(date: NaiveDate) -> Self {
        Self(date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_bounded_and_strictly_written() {
        assert_eq!(
            Date::parse_text("2024-02-29").map(|d| d.0),
            Ok(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap())
        );
        for bad in [
            "2023-02-29",
            "+262143-01-01",
            "9999-12-31",
            "1899-12-31",
            "2024-1-01",
            "2024-01-01T00:00:00",
            "",
        ] {
            assert!(Date::parse_text(bad).is_err(), "{bad}");
        }
        assert!(Date::parse_text("1900-01-01").is_ok());
        assert!(Date::parse_text("2200-01-01").is_ok());
    }
}

/// An instant in time, written in RFC 3339 (`2026-11-29T21:00:00.123Z`), always in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub chrono::DateTime<chrono::Utc>);

/// An instant in time, written in RFC 3339 (`2026-11-29T21:00:00.123Z`), always in UTC.
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc3339#section-5.6"
)]
impl ScalarType for Timestamp {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(text) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        let instant = chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|_| InputValueError::custom(format!("{text:?} is not an RFC 3339 instant")))?
            .with_timezone(&chrono::Utc);
        let day = instant.date_naive();
        if !(MIN_DATE..=MAX_DATE).contains(&day) {
            return Err(InputValueError::custom(format!(
                "{text} is outside the dates this API accepts ({MIN_DATE} to {MAX_DATE})"
            )));
        }
        Ok(Self(instant))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

impl From<chrono::DateTime<chrono::Utc>> for Timestamp {
    fn from(instant: chrono::DateTime<chrono::Utc>) -> Self {
        Self(instant)
    }
}

/// A JSON value whose shape the field's description gives; used only where a value is
/// free-form by nature, such as the record of what a change changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Json(pub serde_json::Value);

/// A JSON value whose shape the field's description gives; used only where a value is
/// free-form by nature, such as the record of what a change changed.
#[Scalar(
    name = "JSON",
    specified_by_url = "https://datatracker.ietf.org/doc/html/rfc8259"
)]
impl ScalarType for Json {
    fn parse(value: Value) -> InputValueResult<Self> {
        value
            .into_json()
            .map(Self)
            .map_err(|error| InputValueError::custom(error.to_string()))
    }

    fn to_value(&self) -> Value {
        Value::from_json(self.0.clone()).unwrap_or(Value::Null)
    }
}

/// How many files the request carried (a GraphQL multipart request); none for JSON requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileCount(pub usize);

/// A file sent with the request in a GraphQL multipart request (the operation's variable is
/// `null` in `operations`, and `map` names the file part that fills it). The conventional
/// name `Upload` is that of the uploaded spreadsheet's type here.
#[derive(Debug, Clone, Copy)]
pub struct File(usize);

/// What a multipart request puts in a variable in place of its file.
const FILE_PLACEHOLDER: &str = "#__graphql_file__:";

/// A file sent with the request in a GraphQL multipart request (the operation's variable is
/// `null` in `operations`, and `map` names the file part that fills it).
#[Scalar(
    name = "File",
    specified_by_url = "https://github.com/jaydenseric/graphql-multipart-request-spec"
)]
impl ScalarType for File {
    fn parse(value: Value) -> InputValueResult<Self> {
        let index = match &value {
            Value::String(text) => text
                .strip_prefix(FILE_PLACEHOLDER)
                .and_then(|index| index.parse::<usize>().ok()),
            _ => None,
        };
        index.map(File).ok_or_else(|| {
            InputValueError::custom("a file is sent as a part of a GraphQL multipart request")
        })
    }

    fn to_value(&self) -> Value {
        Value::Null
    }
}

impl File {
    /// The file's name and content; BAD_USER_INPUT when the request carried no such file.
    pub fn value(
        &self,
        ctx: &async_graphql::Context<'_>,
    ) -> async_graphql::Result<async_graphql::UploadValue> {
        let count = ctx.data_opt::<FileCount>().map_or(0, |count| count.0);
        if self.0 >= count {
            return Err(crate::error::AppError::BadUserInput(
                "send the file as a part of a GraphQL multipart request".into(),
            )
            .into());
        }
        Ok(async_graphql::Upload(self.0).value(ctx)?)
    }
}
