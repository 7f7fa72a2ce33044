//! No N+1: the statements a screen sends do not grow with the data it shows. Each screen runs
//! over a small and a large agency of the same shape; both must cost the same number of
//! statements, and few.

use chrono::{Months, NaiveDate, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use justice_counts::catalogue::Catalogue;
use justice_counts::db::schema::{datapoint_changes, datapoints, report_editors, reports};
use justice_counts::models::agency::NewAgency;
use justice_counts::models::datapoint::NewDatapoint;
use justice_counts::models::enums::{
    AgencyRole, InvitationStatus, ReportFrequency, ReportStatus, System, ValueSource,
};
use justice_counts::models::ids::{AgencyId, DatapointId, ReportId, UserId};
use justice_counts::models::metric_setting::NewMetricSetting;
use justice_counts::models::report::{NewReport, period_end};
use justice_counts::models::user::{NewMembership, NewUser};
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, operation};

/// More statements than this for one screen would mean something is fetched per item.
const BOUND: usize = 16;

async fn agency(conn: &mut AsyncPgConnection, name: &str, systems: &[System]) -> AgencyId {
    NewAgency {
        name: name.into(),
        state_code: "us_tx".into(),
        county_code: None,
        systems: systems.iter().copied().map(Some).collect(),
        is_superagency: false,
        super_agency_id: None,
        is_dashboard_enabled: false,
    }
    .insert(conn)
    .await
    .unwrap()
}

async fn monthly_reports(
    conn: &mut AsyncPgConnection,
    agency: AgencyId,
    count: u32,
    editor: UserId,
) -> Vec<ReportId> {
    let first = NaiveDate::from_ymd_opt(2015, 1, 1).unwrap();
    let rows: Vec<NewReport> = (0..count)
        .map(|index| {
            let start = first.checked_add_months(Months::new(index)).unwrap();
            NewReport {
                agency_id: agency,
                frequency: ReportFrequency::Monthly,
                date_range_start: start,
                date_range_end: period_end(start, ReportFrequency::Monthly).unwrap(),
                status: ReportStatus::Draft,
                published_at: None,
                last_modified_at: Utc::now(),
            }
        })
        .collect();
    let ids: Vec<ReportId> = diesel::insert_into(reports::table)
        .values(&rows)
        .returning(reports::id)
        .get_results(conn)
        .await
        .unwrap();
    let editors: Vec<_> = ids
        .iter()
        .map(|&id| {
            (
                report_editors::report_id.eq(id),
                report_editors::user_id.eq(editor),
            )
        })
        .collect();
    diesel::insert_into(report_editors::table)
        .values(editors)
        .execute(conn)
        .await
        .unwrap();
    ids
}

/// Enables exactly `count` of the agency's monthly metrics and gives each values and a change.
async fn report_with_metrics(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
    agency: AgencyId,
    systems: &[System],
    count: usize,
    editor: UserId,
) -> ReportId {
    let monthly: Vec<_> = catalogue
        .metrics()
        .iter()
        .filter(|m| systems.contains(&m.system) && m.default_frequency == ReportFrequency::Monthly)
        .collect();
    assert!(
        monthly.len() >= count,
        "only {} monthly metrics",
        monthly.len()
    );
    let settings: Vec<NewMetricSetting> = monthly[count..]
        .iter()
        .map(|m| NewMetricSetting {
            is_enabled: Some(false),
            ..NewMetricSetting::new(agency, m.key.clone())
        })
        .collect();
    diesel::insert_into(justice_counts::db::schema::metric_settings::table)
        .values(&settings)
        .execute(conn)
        .await
        .unwrap();
    let report = monthly_reports(conn, agency, 1, editor).await[0];
    let mut values = Vec::new();
    for metric in &monthly[..count] {
        let point = |dimension: Option<&str>, member: Option<&str>| NewDatapoint {
            report_id: report,
            metric_key: metric.key.clone(),
            dimension_id: dimension.map(Into::into),
            member: member.map(Into::into),
            sub_category: None,
            value: Some(10.0),
            source: ValueSource::ManualEntry,
            updated_by: Some(editor),
        };
        values.push(point(None, None));
        if let Some(breakdown) = <[_]>::first(&metric.breakdowns) {
            values.extend(
                breakdown
                    .members
                    .iter()
                    .map(|m| point(Some(&breakdown.dimension), Some(&m.name))),
            );
        }
    }
    let ids: Vec<DatapointId> = diesel::insert_into(datapoints::table)
        .values(&values)
        .returning(datapoints::id)
        .get_results(conn)
        .await
        .unwrap();
    let changes: Vec<_> = ids
        .iter()
        .map(|&id| {
            (
                datapoint_changes::datapoint_id.eq(id),
                datapoint_changes::changed_by.eq(Some(editor)),
                datapoint_changes::old_value.eq(Some(9.0)),
                datapoint_changes::new_value.eq(Some(10.0)),
                datapoint_changes::source.eq(ValueSource::ManualEntry),
            )
        })
        .collect();
    diesel::insert_into(datapoint_changes::table)
        .values(changes)
        .execute(conn)
        .await
        .unwrap();
    report
}

async fn team(conn: &mut AsyncPgConnection, agency: AgencyId, size: usize, prefix: &str) {
    for index in 0..size {
        let user = NewUser {
            name: format!("Member {index}"),
            email: format!("{prefix}{index}@example.com"),
            is_platform_admin: false,
        }
        .insert(conn)
        .await
        .unwrap();
        NewMembership {
            user_id: user,
            agency_id: agency,
            role: AgencyRole::Contributor,
            invitation_status: InvitationStatus::Accepted,
        }
        .insert(conn, None)
        .await
        .unwrap();
    }
}

/// Statements one request of `operation` sends (authentication of the token included).
async fn statements(
    app: &TestApp,
    db: &TestDb,
    token: &str,
    name: &str,
    variables: Value,
) -> usize {
    let before = db.statements.get();
    let response = app
        .graphql_as(Some(token), &operation(name), variables)
        .await;
    assert!(response["errors"].is_null(), "{name}: {response}");
    db.statements.get() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screens_send_the_same_number_of_statements_however_much_data_they_show() {
    let db = TestDb::new().await;
    let app = TestApp::spawn(&db).await;
    let mut conn = db.connect().await;
    let admin = NewUser {
        name: "Admin".into(),
        email: "admin@example.com".into(),
        is_platform_admin: true,
    }
    .insert(&mut conn)
    .await
    .unwrap();
    let token = app.token_for(&db, "admin@example.com").await;
    // The token's first use reads its credentials; the screens are measured after it.
    app.graphql_as(Some(&token), "{ __typename }", json!({}))
        .await;

    // Records list: 1 report against 100 reports.
    let few = agency(&mut conn, "Few Reports", &[System::Jails]).await;
    let many = agency(&mut conn, "Many Reports", &[System::Jails]).await;
    monthly_reports(&mut conn, few, 1, admin).await;
    monthly_reports(&mut conn, many, 100, admin).await;
    let records = |agency: AgencyId| json!({ "agencyId": agency.to_string(), "first": 100 });
    let one = statements(&app, &db, &token, "records", records(few)).await;
    let hundred = statements(&app, &db, &token, "records", records(many)).await;

    // Data entry: 1 metric against 30 metrics, each with breakdown values and history.
    let all_systems = [
        System::LawEnforcement,
        System::Jails,
        System::Prisons,
        System::Prosecution,
        System::Defense,
        System::CourtsAndPretrial,
        System::Supervision,
    ];
    let small = agency(&mut conn, "One Metric", &all_systems).await;
    let large = agency(&mut conn, "Thirty Metrics", &all_systems).await;
    let small_report =
        report_with_metrics(&mut conn, &db.catalogue, small, &all_systems, 1, admin).await;
    let large_report =
        report_with_metrics(&mut conn, &db.catalogue, large, &all_systems, 30, admin).await;
    let entry = |report: ReportId| json!({ "reportId": report.to_string() });
    let one_metric = statements(&app, &db, &token, "data_entry", entry(small_report)).await;
    let thirty_metrics = statements(&app, &db, &token, "data_entry", entry(large_report)).await;
    let shown = app
        .graphql_as(Some(&token), &operation("data_entry"), entry(large_report))
        .await;
    assert_eq!(
        shown["data"]["report"]["metrics"].as_array().unwrap().len(),
        30
    );

    // Team: 1 member against 50.
    let lone = agency(&mut conn, "Lone Member", &[System::Jails]).await;
    let crowd = agency(&mut conn, "Fifty Members", &[System::Jails]).await;
    team(&mut conn, lone, 1, "lone").await;
    team(&mut conn, crowd, 50, "crowd").await;
    let settings = |agency: AgencyId| json!({ "agencyId": agency.to_string(), "withEmails": true });
    let one_member = statements(&app, &db, &token, "team_and_settings", settings(lone)).await;
    let fifty_members = statements(&app, &db, &token, "team_and_settings", settings(crowd)).await;

    // Authentication: one statement for a token seen for the first time (revocations, user
    // and roles at once), none for a token already seen (kept in memory), none without one.
    let fresh = app.token_for(&db, "admin@example.com").await;
    assert_ne!(fresh, token);
    let before = db.statements.get();
    app.graphql_as(Some(&fresh), "{ __typename }", json!({}))
        .await;
    assert_eq!(
        db.statements.get() - before,
        1,
        "authenticating a new token"
    );
    let before = db.statements.get();
    app.graphql_as(Some(&fresh), "{ __typename }", json!({}))
        .await;
    assert_eq!(
        db.statements.get() - before,
        0,
        "authenticating a known token"
    );
    let before = db.statements.get();
    app.graphql_as(None, "{ __typename }", json!({})).await;
    assert_eq!(db.statements.get() - before, 0, "an anonymous request");

    println!(
        "statements per request: records {one} / {hundred}, data entry {one_metric} / {thirty_metrics}, \
         team {one_member} / {fifty_members}"
    );
    assert_eq!(one, hundred, "records list: 1 report vs 100");
    assert_eq!(one_metric, thirty_metrics, "data entry: 1 metric vs 30");
    assert_eq!(one_member, fifty_members, "team: 1 member vs 50");
    // The records list: its agency, then one statement for the page, its count and its
    // editors. Data entry: the three settings tables are read in one statement, the report's
    // values and contexts in another.
    assert_eq!(hundred, 2, "records list");
    assert_eq!(thirty_metrics, 7, "data entry");
    assert_eq!(fifty_members, 4, "team");
    for count in [hundred, thirty_metrics, fifty_members] {
        assert!(count <= BOUND, "{count} statements");
    }
}

#[tokio::test]
async fn a_query_fetches_a_key_once_even_when_asked_again_later() {
    // `report(id)` loads the report, then its agency to check access; `agency` asks for the
    // same agency again one level down, which the request's loader already holds.
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "admin@example.com").await;
    let mut conn = db.connect().await;
    let report: ReportId = reports::table
        .select(reports::id)
        .order(reports::id)
        .first(&mut conn)
        .await
        .unwrap();
    app.graphql_as(Some(&token), "{ __typename }", json!({}))
        .await;
    let before = db.statements.get();
    let answer = app
        .graphql_as(
            Some(&token),
            "query($id: ID!) { report(id: $id) { id agency { name } } }",
            json!({ "id": report.to_string() }),
        )
        .await;
    assert!(
        answer["data"]["report"]["agency"]["name"].is_string(),
        "{answer}"
    );
    assert_eq!(
        db.statements.get() - before,
        2,
        "the report and its agency, each once"
    );
}

#[derive(QueryableByName)]
struct Prepared {
    #[diesel(sql_type = diesel::sql_types::Text)]
    statement: String,
}

#[tokio::test]
async fn statements_written_out_in_the_source_stay_prepared() {
    // diesel prepares raw SQL afresh for every execution (PostgreSQL then parses and plans it
    // every time); the screens' statements written out in the source must stay prepared on
    // the connection like those of the query builder.
    use justice_counts::models::datapoint::ReportValue;
    use justice_counts::models::metric_setting::AgencyMetricSettings;
    use justice_counts::models::report::{Report, ReportFilter};

    let db = TestDb::with_demo().await;
    let mut conn = db.connect().await;
    let (agency, slice, with) = a_first_page(&mut conn).await;
    for _ in 0..3 {
        AgencyMetricSettings::of_agencies(&mut &conn, &[agency])
            .await
            .unwrap();
        let page = Report::page(&mut conn, agency, &ReportFilter::default(), slice, with)
            .await
            .unwrap();
        assert!(page.total.is_some_and(|total| total > 0));
        let latest = Report::latest_of(&mut &conn, &[agency]).await.unwrap();
        let ids: Vec<ReportId> = latest.iter().map(|report| report.id).collect();
        ReportValue::of_reports(&mut &conn, &ids).await.unwrap();
    }
    let kept: Vec<Prepared> = diesel::sql_query("SELECT statement FROM pg_prepared_statements")
        .load(&mut conn)
        .await
        .unwrap();
    for marker in [
        "metric_setting_answers",
        "count(*) OVER ()",
        "DISTINCT ON",
        "report_contexts",
    ] {
        let count = kept
            .iter()
            .filter(|prepared| prepared.statement.contains(marker))
            .count();
        assert_eq!(count, 1, "statements with `{marker}` kept prepared");
    }
}

#[derive(QueryableByName)]
struct Plans {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    generic_plans: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    custom_plans: i64,
}

#[tokio::test]
async fn the_servers_statements_are_planned_once_per_connection() {
    // The page of reports has a `LIMIT $n` and an `= ANY($n)`: on its own, PostgreSQL would
    // find its generic plan costlier than one made for the values and plan it anew on every
    // execution. The server's connections keep to the generic plan.
    use justice_counts::models::report::{Report, ReportFilter};

    let db = TestDb::with_demo().await;
    let mut conn = db.pool.get().await.unwrap();
    let (agency, slice, with) = a_first_page(&mut conn).await;
    for _ in 0..8 {
        Report::page(&mut conn, agency, &ReportFilter::default(), slice, with)
            .await
            .unwrap();
    }
    let plans: Plans = diesel::sql_query(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE statement LIKE '%count(*) OVER ()%'",
    )
    .get_result(&mut *conn)
    .await
    .unwrap();
    assert_eq!(plans.custom_plans, 0, "planned for each execution's values");
    assert!(plans.generic_plans >= 1);
}

/// An agency with reports, and the slice and extras of a first page of 20 with its count and
/// editors.
async fn a_first_page(
    conn: &mut diesel_async::AsyncPgConnection,
) -> (
    AgencyId,
    justice_counts::models::page::Slice<justice_counts::models::report::ReportKey>,
    justice_counts::models::report::PageWith,
) {
    let agency: AgencyId = reports::table
        .select(reports::agency_id)
        .order(reports::id)
        .first(conn)
        .await
        .unwrap();
    let slice = justice_counts::models::page::Slice {
        after: None,
        before: None,
        limit: 20,
        backwards: false,
    };
    let with = justice_counts::models::report::PageWith {
        count: true,
        editors: true,
    };
    (agency, slice, with)
}
