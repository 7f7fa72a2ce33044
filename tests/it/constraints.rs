//! The database itself enforces the domain's rules, whatever code writes to it.

use chrono::NaiveDate;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use justice_counts::db::schema::{agencies, datapoints, reports};
use justice_counts::error::{AppError, ErrorCode};
use justice_counts::models::agency::NewAgency;
use justice_counts::models::datapoint::NewDatapoint;
use justice_counts::models::enums::{ReportFrequency, ReportStatus, System, ValueSource};
use justice_counts::models::ids::{AgencyId, ReportId};
use justice_counts::models::report::NewReport;
use justice_counts::models::user::NewUser;

use crate::support::TestDb;

fn jail(name: &str) -> NewAgency {
    NewAgency {
        name: name.into(),
        state_code: "us_ca".into(),
        county_code: None,
        systems: vec![Some(System::Jails)],
        is_superagency: false,
        super_agency_id: None,
        is_dashboard_enabled: false,
    }
}

fn month(year: i32, month: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, 1).unwrap()
}

fn report(
    agency_id: AgencyId,
    frequency: ReportFrequency,
    start: NaiveDate,
    end: NaiveDate,
) -> NewReport {
    NewReport {
        agency_id,
        frequency,
        date_range_start: start,
        date_range_end: end,
        status: ReportStatus::Draft,
        published_at: None,
        last_modified_at: chrono::Utc::now(),
    }
}

async fn insert_report(
    conn: &mut AsyncPgConnection,
    new: &NewReport,
) -> Result<ReportId, AppError> {
    Ok(diesel::insert_into(reports::table)
        .values(new)
        .returning(reports::id)
        .get_result(conn)
        .await?)
}

fn aggregate(report_id: ReportId, value: Option<f64>) -> NewDatapoint {
    NewDatapoint {
        report_id,
        metric_key: "JAILS_TOTAL_POPULATION".into(),
        dimension_id: None,
        member: None,
        sub_category: None,
        value,
        source: ValueSource::ManualEntry,
        updated_by: None,
    }
}

async fn insert_datapoint(
    conn: &mut AsyncPgConnection,
    new: &NewDatapoint,
) -> Result<usize, AppError> {
    Ok(diesel::insert_into(datapoints::table)
        .values(new)
        .execute(conn)
        .await?)
}

async fn a_monthly_report(conn: &mut AsyncPgConnection) -> ReportId {
    let agency = jail("County Jail").insert(conn).await.unwrap();
    insert_report(
        conn,
        &report(
            agency,
            ReportFrequency::Monthly,
            month(2024, 1),
            month(2024, 2),
        ),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn two_aggregate_values_of_one_metric_on_one_report_are_refused() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let report_id = a_monthly_report(&mut conn).await;
    insert_datapoint(&mut conn, &aggregate(report_id, Some(10.0)))
        .await
        .unwrap();
    // NULL dimension and member: a plain unique index would let this through.
    let error = insert_datapoint(&mut conn, &aggregate(report_id, Some(11.0)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::Conflict, "{error}");
    let rows: i64 = datapoints::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_breakdown_value_must_name_a_member_of_the_metric() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let report_id = a_monthly_report(&mut conn).await;
    let member = |dimension: &str, member: &str| NewDatapoint {
        dimension_id: Some(dimension.into()),
        member: Some(member.into()),
        ..aggregate(report_id, Some(3.0))
    };
    insert_datapoint(&mut conn, &member("metric/offense/type", "DRUG"))
        .await
        .unwrap();
    let error = insert_datapoint(&mut conn, &member("metric/offense/type", "JAYWALKING"))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        ErrorCode::InternalServerError,
        "a foreign-key violation: {error}"
    );
    let unpaired = NewDatapoint {
        member: None,
        ..member("metric/offense/type", "DRUG")
    };
    assert!(insert_datapoint(&mut conn, &unpaired).await.is_err());
}

#[tokio::test]
async fn values_must_be_finite_and_may_be_absent() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let report_id = a_monthly_report(&mut conn).await;
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(
            insert_datapoint(&mut conn, &aggregate(report_id, Some(bad)))
                .await
                .is_err(),
            "{bad} accepted"
        );
    }
    insert_datapoint(&mut conn, &aggregate(report_id, None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_report_period_must_match_its_frequency_and_be_unique() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let agency = jail("County Jail").insert(&mut conn).await.unwrap();
    let bad = [
        report(
            agency,
            ReportFrequency::Monthly,
            month(2024, 1),
            month(2024, 3),
        ),
        report(
            agency,
            ReportFrequency::Annual,
            month(2024, 1),
            month(2024, 12),
        ),
        report(
            agency,
            ReportFrequency::Monthly,
            NaiveDate::from_ymd_opt(2024, 1, 5).unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 5).unwrap(),
        ),
    ];
    for new in &bad {
        let error = insert_report(&mut conn, new).await.unwrap_err();
        assert_eq!(error.code(), ErrorCode::BadUserInput, "{new:?}: {error}");
    }
    let fiscal = report(
        agency,
        ReportFrequency::Annual,
        month(2024, 7),
        month(2025, 7),
    );
    insert_report(&mut conn, &fiscal).await.unwrap();
    let error = insert_report(&mut conn, &fiscal).await.unwrap_err();
    assert_eq!(error.code(), ErrorCode::Conflict);
    assert!(
        error.to_string().contains("already has a report"),
        "{error}"
    );
}

#[tokio::test]
async fn only_a_superagency_can_have_child_agencies() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let plain = jail("Plain").insert(&mut conn).await.unwrap();
    let child_of_plain = NewAgency {
        super_agency_id: Some(plain),
        ..jail("Child")
    };
    let error: AppError = child_of_plain.insert(&mut conn).await.unwrap_err().into();
    assert_eq!(error.code(), ErrorCode::BadUserInput, "{error}");

    let parent = NewAgency {
        systems: vec![Some(System::Superagency)],
        is_superagency: true,
        ..jail("Council")
    }
    .insert(&mut conn)
    .await
    .unwrap();
    NewAgency {
        super_agency_id: Some(parent),
        ..jail("Child")
    }
    .insert(&mut conn)
    .await
    .unwrap();
    // The parent cannot stop being a superagency while it has children.
    let demoted = diesel::update(agencies::table.find(parent))
        .set((
            agencies::is_superagency.eq(false),
            agencies::systems.eq(vec![Some(System::Jails)]),
        ))
        .execute(&mut conn)
        .await;
    assert!(demoted.is_err());
    // A superagency flag must come with the SUPERAGENCY system.
    let flag_only = NewAgency {
        is_superagency: true,
        ..jail("Flag only")
    };
    assert!(flag_only.insert(&mut conn).await.is_err());
}

#[tokio::test]
async fn emails_are_unique_ignoring_case() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let user = |email: &str| NewUser {
        name: "A".into(),
        email: email.into(),
        is_platform_admin: false,
    };
    user("Someone@Example.com").insert(&mut conn).await.unwrap();
    let error: AppError = user("someone@example.COM")
        .insert(&mut conn)
        .await
        .unwrap_err()
        .into();
    assert_eq!(error.code(), ErrorCode::Conflict);
    assert!(error.to_string().contains("email"), "{error}");
}
