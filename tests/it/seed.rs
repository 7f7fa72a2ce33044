//! The demo and benchmark data sets.

use std::collections::HashSet;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use justice_counts::db::schema::{
    agencies, datapoint_changes, memberships, report_status_changes, reports, users,
};
use justice_counts::models::enums::{AgencyRole, ReportStatus, System};
use justice_counts::seed::{demo, scale};

use crate::support::TestDb;

#[tokio::test]
async fn the_demo_data_covers_every_system_role_and_status() {
    let db = TestDb::with_demo().await;
    let mut conn = db.connect().await;
    let systems: Vec<Vec<Option<System>>> = agencies::table
        .select(agencies::systems)
        .load(&mut conn)
        .await
        .unwrap();
    let systems: HashSet<System> = systems.into_iter().flatten().flatten().collect();
    for system in [
        System::LawEnforcement,
        System::Prosecution,
        System::Defense,
        System::CourtsAndPretrial,
        System::Jails,
        System::Prisons,
        System::Supervision,
        System::Superagency,
    ] {
        assert!(
            systems.contains(&system),
            "no demo agency reports for {system:?}"
        );
    }
    let children: i64 = agencies::table
        .filter(agencies::super_agency_id.is_not_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(children, 3);

    let roles: HashSet<AgencyRole> = memberships::table
        .select(memberships::role)
        .load(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(roles.len(), 3, "{roles:?}");
    let admins: i64 = users::table
        .filter(users::is_platform_admin)
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(admins, 1);

    let statuses: HashSet<ReportStatus> = reports::table
        .select(reports::status)
        .load(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    let years: Vec<chrono::NaiveDate> = reports::table
        .select(reports::date_range_start)
        .load(&mut conn)
        .await
        .unwrap();
    let years: HashSet<i32> = years.iter().map(chrono::Datelike::year).collect();
    assert_eq!(years, HashSet::from([2023, 2024, 2025]));

    let changes: i64 = datapoint_changes::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert!(changes > 0, "some values have a change history");
    let reopened: i64 = report_status_changes::table
        .filter(report_status_changes::old_status.eq(ReportStatus::Published))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert!(reopened > 0, "some reports were unpublished again");
}

#[derive(QueryableByName)]
struct Sums {
    #[diesel(sql_type = BigInt)]
    checked: i64,
    #[diesel(sql_type = BigInt)]
    mismatched: i64,
}

#[tokio::test]
async fn demo_breakdowns_add_up_to_their_totals() {
    let db = TestDb::with_demo().await;
    let mut conn = db.connect().await;
    let sums: Sums = diesel::sql_query(
        "SELECT count(*) AS checked, count(*) FILTER (WHERE abs(total - parts) > 1e-6) AS mismatched
         FROM (SELECT a.value AS total, sum(m.value) AS parts
               FROM datapoints a
               JOIN datapoints m ON m.report_id = a.report_id AND m.metric_key = a.metric_key
                                AND m.dimension_id IS NOT NULL
               WHERE a.dimension_id IS NULL AND a.value IS NOT NULL
               GROUP BY a.id, a.value, m.dimension_id) AS breakdowns",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!(
        sums.checked > 1000,
        "only {} breakdowns checked",
        sums.checked
    );
    assert_eq!(sums.mismatched, 0);
}

#[derive(QueryableByName)]
struct Digest {
    #[diesel(sql_type = Text)]
    digest: String,
}

async fn digest(conn: &mut AsyncPgConnection) -> String {
    let row: Digest = diesel::sql_query(
        "SELECT md5(string_agg(concat_ws('|', a.name, r.frequency, r.date_range_start, r.status,
                                         d.metric_key, d.dimension_id, d.member, d.value),
                               ',' ORDER BY a.name, r.frequency, r.date_range_start, d.metric_key,
                                            d.dimension_id NULLS FIRST, d.member NULLS FIRST)) AS digest
         FROM datapoints d JOIN reports r ON r.id = d.report_id JOIN agencies a ON a.id = r.agency_id",
    )
    .get_result(conn)
    .await
    .unwrap();
    row.digest
}

#[tokio::test]
async fn the_demo_data_is_the_same_every_time() {
    let seeded_once = TestDb::with_demo().await;
    let fresh = TestDb::new().await;
    let mut conn = fresh.connect().await;
    let summary = demo::seed(&mut conn, &fresh.catalogue).await.unwrap();
    assert_eq!(summary.agencies, 12);
    assert_eq!(
        digest(&mut conn).await,
        digest(&mut seeded_once.connect().await).await
    );
}

#[tokio::test]
async fn loading_the_demo_data_twice_is_refused_without_changes() {
    let db = TestDb::with_demo().await;
    let mut conn = db.connect().await;
    let before: i64 = agencies::table.count().get_result(&mut conn).await.unwrap();
    let error = demo::seed(&mut conn, &db.catalogue).await.unwrap_err();
    assert!(
        matches!(error, demo::SeedError::AlreadyLoaded(_)),
        "{error}"
    );
    let after: i64 = agencies::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn the_scale_seed_writes_five_years_per_agency_and_reports_its_rate() {
    let db = TestDb::new().await;
    let report = scale::seed(&db.pool, &db.catalogue, 3, false)
        .await
        .unwrap();
    assert_eq!(report.agencies, 3);
    assert_eq!(report.reports, 3 * (60 + 5));
    let mut conn = db.connect().await;
    let stored: i64 = reports::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(stored as usize, report.reports);
    let points: i64 = justice_counts::db::schema::datapoints::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(points as usize, report.datapoints);
    assert!(report.rows_per_second() > 0.0);
    assert!(report.to_string().contains("rows/s"), "{report}");
    // Seeding more adds agencies with new names instead of clashing.
    let more = scale::seed(&db.pool, &db.catalogue, 1, false)
        .await
        .unwrap();
    assert_eq!(more.agencies, 1);
    let names: HashSet<String> = agencies::table
        .select(agencies::name)
        .load(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(names.len(), 4);
}
