//! What is kept of finished work, and for how long: a dry run's staged values (it showed
//! what an upload would change; its summary and messages stay) and finished jobs' records.
//! Deleted a batch at a time, so that no statement runs long or locks much.

use std::time::Duration;

use diesel::sql_types::{BigInt, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// Rows deleted by one statement.
const BATCH: i64 = 10_000;

/// How long finished work is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// A finished dry run's staged values.
    pub dry_runs: Duration,
    /// A finished job's record.
    pub jobs: Duration,
}

/// What one purge deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Staged values of dry runs.
    pub staged_values: usize,
    /// Job records.
    pub jobs: usize,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Deletes what is older than `retention` allows.
pub async fn purge(
    conn: &mut AsyncPgConnection,
    retention: Retention,
) -> diesel::QueryResult<Purged> {
    let mut purged = Purged::default();
    loop {
        let deleted = diesel::sql_query(
            "DELETE FROM spreadsheet_values WHERE ctid = ANY (ARRAY( \
                 SELECT v.ctid FROM spreadsheet_values v \
                 JOIN spreadsheets s ON s.id = v.spreadsheet_id \
                 WHERE s.dry_run AND s.finished_at < now() - $1 * interval '1 millisecond' \
                 LIMIT $2))",
        )
        .bind::<BigInt, _>(millis(retention.dry_runs))
        .bind::<BigInt, _>(BATCH)
        .execute(conn)
        .await?;
        purged.staged_values += deleted;
        if i64::try_from(deleted).unwrap_or(i64::MAX) < BATCH {
            break;
        }
    }
    loop {
        let deleted = diesel::sql_query(
            "DELETE FROM jobs WHERE id = ANY (ARRAY( \
                 SELECT id FROM jobs WHERE state IN ('SUCCEEDED', 'FAILED') \
                 AND finished_at < now() - $1 * interval '1 millisecond' LIMIT $2))",
        )
        .bind::<BigInt, _>(millis(retention.jobs))
        .bind::<BigInt, _>(BATCH)
        .execute(conn)
        .await?;
        purged.jobs += deleted;
        if i64::try_from(deleted).unwrap_or(i64::MAX) < BATCH {
            break;
        }
    }
    Ok(purged)
}

/// Whether `upload`'s staged values are still kept (for tests and tools).
pub async fn staged_values(
    conn: &mut AsyncPgConnection,
    upload: crate::models::ids::SpreadsheetId,
) -> diesel::QueryResult<i64> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count =
        diesel::sql_query("SELECT count(*) AS n FROM spreadsheet_values WHERE spreadsheet_id = $1")
            .bind::<Integer, _>(upload.0)
            .get_result(conn)
            .await?;
    Ok(count.n)
}
