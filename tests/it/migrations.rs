use diesel::prelude::*;
use diesel::sql_types::BigInt;
use diesel_async::RunQueryDsl;
use justice_counts::catalogue::sync::{self, SyncOutcome};
use justice_counts::db;

use crate::support::TestDb;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

async fn count(conn: &mut diesel_async::AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .count
}

const USER_TABLES: &str = "SELECT count(*) AS count FROM pg_tables \
    WHERE schemaname = 'public' AND tablename <> '__diesel_schema_migrations'";
const USER_TYPES: &str = "SELECT count(*) AS count FROM pg_type t JOIN pg_namespace n \
    ON n.oid = t.typnamespace WHERE n.nspname = 'public' AND t.typtype = 'e'";

#[tokio::test]
async fn migrations_run_up_then_down_then_up_again() {
    let db = TestDb::empty().await;
    let applied = db::run_migrations(&db.url).await.unwrap();
    assert_eq!(applied.len(), 15, "{applied:?}");
    let mut conn = db.connect().await;
    let tables = count(&mut conn, USER_TABLES).await;
    assert!(tables >= 20, "only {tables} tables after migrating");

    let reverted = db::revert_all_migrations(&db.url).await.unwrap();
    assert_eq!(reverted.len(), 15, "{reverted:?}");
    assert_eq!(
        count(&mut conn, USER_TABLES).await,
        0,
        "tables left after reverting"
    );
    assert_eq!(
        count(&mut conn, USER_TYPES).await,
        0,
        "enum types left after reverting"
    );

    let reapplied = db::run_migrations(&db.url).await.unwrap();
    assert_eq!(reapplied, applied);
    assert_eq!(count(&mut conn, USER_TABLES).await, tables);
    let outcome = sync::sync(&mut conn, &db.catalogue).await.unwrap();
    assert_eq!(outcome, SyncOutcome::Updated);
}

#[tokio::test]
async fn migrating_a_migrated_database_does_nothing() {
    let db = TestDb::new().await;
    assert!(db::run_migrations(&db.url).await.unwrap().is_empty());
}
