//! Newtypes for row ids, so that an agency id can never be passed where a report id belongs.

use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{Output, ToSql};
use diesel::sql_types::{BigInt, Integer};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident($inner:ty, $sql:ty)) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow,
            serde::Serialize,
        )]
        #[diesel(sql_type = $sql)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl ToSql<$sql, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
                <$inner as ToSql<$sql, Pg>>::to_sql(&self.0, out)
            }
        }

        impl FromSql<$sql, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
                <$inner as FromSql<$sql, Pg>>::from_sql(bytes).map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map(Self)
            }
        }
    };
}

id_type!(
    /// Id of an agency.
    AgencyId(i32, Integer)
);
id_type!(
    /// Id of a user.
    UserId(i32, Integer)
);
id_type!(
    /// Id of a report.
    ReportId(i32, Integer)
);
id_type!(
    /// Id of a datapoint.
    DatapointId(i64, BigInt)
);
id_type!(
    /// Id of an uploaded spreadsheet.
    SpreadsheetId(i32, Integer)
);
