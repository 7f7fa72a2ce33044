//! The role table, enforced by the server: every role against every mutation and every
//! non-public query field. The subject agency is Pine County Sheriff's Office, which has a
//! public dashboard and belongs to the Pine County superagency; Pine County Community
//! Corrections is a sibling without a public dashboard.

use std::collections::BTreeSet;

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{Months, NaiveDate};
use justice_counts::limits::Limits;
use justice_counts::models::agency::Agency;
use justice_counts::models::enums::{AgencyRole, ReportFrequency, ReportStatus, ValueSource};
use justice_counts::models::ids::AgencyId;
use justice_counts::models::metric_setting::AgencyMetricSettings;
use justice_counts::models::report::Report;
use justice_counts::models::user::{self, User};
use justice_counts::reports::lifecycle;
use justice_counts::reports::save::{self, Save};
use justice_counts::reports::validation::ValueInput;
use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, error_codes};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Anonymous,
    ReadOnly,
    Contributor,
    AgencyAdmin,
    OtherAgency,
    Superagency,
    PlatformAdmin,
}

const ROLES: [Role; 7] = [
    Role::Anonymous,
    Role::ReadOnly,
    Role::Contributor,
    Role::AgencyAdmin,
    Role::OtherAgency,
    Role::Superagency,
    Role::PlatformAdmin,
];

impl Role {
    fn email(self) -> Option<&'static str> {
        match self {
            Self::Anonymous => None,
            Self::ReadOnly => Some("sheriff.reader@example.com"),
            Self::Contributor => Some("sheriff.contributor@example.com"),
            Self::AgencyAdmin => Some("sheriff.admin@example.com"),
            Self::OtherAgency => Some("harbor.contributor@example.com"),
            Self::Superagency => Some("council.admin@example.com"),
            Self::PlatformAdmin => Some("admin@example.com"),
        }
    }
}

const OK: Option<&str> = None;
const UNAUTHENTICATED: Option<&str> = Some("UNAUTHENTICATED");
const FORBIDDEN: Option<&str> = Some("FORBIDDEN");
const NOT_FOUND: Option<&str> = Some("NOT_FOUND");

/// Which variables a case needs.
#[derive(Debug, Clone, Copy)]
enum Input {
    Sheriff,
    Report,
    NewPeriod,
    Save,
    Reader,
    FreshMember,
    Council,
    Fresh(ReportStatus),
    Corrections,
    InviteToSheriff,
    InviteToCorrections,
    SignIn,
    RefreshToken,
    InvitationCode,
    /// A spreadsheet of the sheriff's office, sent as a multipart request.
    Spreadsheet,
    /// A fresh upload of the sheriff's office, not yet ingested.
    FreshUpload,
    Nothing,
}

struct Case {
    /// The root field (mutation name, or query field and path) the case covers.
    covers: &'static str,
    document: &'static str,
    input: Input,
    /// Expected error code (None: allowed) for each of ROLES, in order.
    expected: [Option<&'static str>; 7],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            covers: "me",
            document: "{ me { id email memberships { role agency { name } } } }",
            input: Input::Nothing,
            expected: [UNAUTHENTICATED, OK, OK, OK, OK, OK, OK],
        },
        Case {
            covers: "agency.team",
            document: "query($agency: ID!) { agency(id: $agency) { team { name role invitationStatus } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.team.email",
            document: "query($agency: ID!) { agency(id: $agency) { team { email } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.settings",
            document: "query($agency: ID!) { agency(id: $agency) { settings { kind value } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.jurisdictions",
            document: "query($agency: ID!) { agency(id: $agency) { jurisdictions { geoid kind } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.metrics",
            document: "query($agency: ID!) { agency(id: $agency) { metrics { key isEnabled frequency } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.reports",
            document: "query($agency: ID!) { agency(id: $agency) { reports(first: 2) { totalCount nodes { id status } } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.latestMonthlyReport",
            document: "query($agency: ID!) { agency(id: $agency) { latestMonthlyReport { id metrics { key value } } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.latestAnnualReports",
            document: "query($agency: ID!) { agency(id: $agency) { latestAnnualReports { id } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.uploads",
            document: "query($agency: ID!) { agency(id: $agency) { uploads { nodes { fileName } } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.series",
            document: "query($agency: ID!) { agency(id: $agency) { series(input: {metricKey: \"LAW_ENFORCEMENT_ARRESTS\"}) { points { value } } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.datapointChanges",
            document: "query($agency: ID!) { agency(id: $agency) { datapointChanges(first: 5) { cursor complete changes { value reportStatus } } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "agency.datapointChanges(publishedOnly)",
            document: "query($agency: ID!) { agency(id: $agency) { datapointChanges(first: 5, publishedOnly: true) { cursor changes { value } } } }",
            input: Input::Sheriff,
            expected: [OK, OK, OK, OK, OK, OK, OK],
        },
        Case {
            covers: "agency.datapointChanges(publishedOnly, non-public)",
            document: "query($agency: ID!) { agency(id: $agency) { datapointChanges(first: 5, publishedOnly: true) { cursor changes { value } } } }",
            input: Input::Corrections,
            // As for an agency that does not exist, for everyone: the public stream is public.
            expected: [
                NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND,
            ],
        },
        Case {
            covers: "report",
            document: "query($report: ID!) { report(id: $report) { id status metrics { key } } }",
            input: Input::Report,
            // Reports are not public: outsiders, signed in or not, get what a missing report gets.
            expected: [NOT_FOUND, OK, OK, OK, NOT_FOUND, OK, OK],
        },
        Case {
            covers: "agency.publishedSeries(non-public)",
            document: "query($agency: ID!) { agency(id: $agency) { publishedMetrics { metric { key } } } }",
            input: Input::Corrections,
            expected: [
                NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK, OK,
            ],
        },
        Case {
            covers: "agency(non-public)",
            document: "query($agency: ID!) { agency(id: $agency) { name } }",
            input: Input::Corrections,
            expected: [
                NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, OK, OK,
            ],
        },
        Case {
            covers: "inviteMember",
            document: "mutation($input: InviteMemberInput!) { inviteMember(input: $input) { invitationCode member { role } } }",
            input: Input::InviteToSheriff,
            expected: [UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "inviteMember",
            document: "mutation($input: InviteMemberInput!) { inviteMember(input: $input) { invitationCode } }",
            input: Input::InviteToCorrections,
            expected: [
                UNAUTHENTICATED,
                NOT_FOUND,
                NOT_FOUND,
                NOT_FOUND,
                NOT_FOUND,
                OK,
                OK,
            ],
        },
        Case {
            covers: "createReport",
            document: "mutation($input: CreateReportInput!) { createReport(input: $input) { id status } }",
            input: Input::NewPeriod,
            expected: [UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "saveReport",
            document: "mutation($input: SaveReportInput!) { saveReport(input: $input) { changedValues report { version } } }",
            input: Input::Save,
            expected: [UNAUTHENTICATED, FORBIDDEN, OK, OK, NOT_FOUND, OK, OK],
        },
        Case {
            covers: "uploadSpreadsheet",
            document: "mutation($agency: ID!, $file: File!) { uploadSpreadsheet(agencyId: $agency, system: LAW_ENFORCEMENT, file: $file) { id status } }",
            input: Input::Spreadsheet,
            expected: [UNAUTHENTICATED, FORBIDDEN, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "cancelUpload",
            document: "mutation($upload: ID!) { cancelUpload(id: $upload) { id progress { cancelRequested } } }",
            input: Input::FreshUpload,
            expected: [UNAUTHENTICATED, FORBIDDEN, OK, OK, NOT_FOUND, OK, OK],
        },
        Case {
            covers: "upload",
            document: "query($upload: ID!) { upload(id: $upload) { id status messages { title } } }",
            input: Input::FreshUpload,
            expected: [UNAUTHENTICATED, OK, OK, OK, NOT_FOUND, OK, OK],
        },
        Case {
            covers: "publishReports",
            document: "mutation($reports: [ID!]!) { publishReports(reportIds: $reports) { status } }",
            input: Input::Fresh(ReportStatus::Draft),
            expected: [UNAUTHENTICATED, FORBIDDEN, OK, OK, NOT_FOUND, OK, OK],
        },
        Case {
            covers: "unpublishReports",
            document: "mutation($reports: [ID!]!) { unpublishReports(reportIds: $reports) { status } }",
            input: Input::Fresh(ReportStatus::Published),
            expected: [UNAUTHENTICATED, FORBIDDEN, OK, OK, NOT_FOUND, OK, OK],
        },
        Case {
            covers: "deleteReports",
            document: "mutation($reports: [ID!]!) { deleteReports(reportIds: $reports) }",
            input: Input::Fresh(ReportStatus::NotStarted),
            expected: [
                UNAUTHENTICATED,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                OK,
            ],
        },
        Case {
            covers: "agency.teamHistory",
            document: "query($agency: ID!) { agency(id: $agency) { teamHistory { oldRole newRole } } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, OK, OK, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "changeMemberRole",
            document: "mutation($agency: ID!, $user: ID!) { changeMemberRole(input: {agencyId: $agency, userId: $user, role: READ_ONLY}) { role } }",
            input: Input::Reader,
            expected: [UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "removeMember",
            document: "mutation($agency: ID!, $user: ID!) { removeMember(input: {agencyId: $agency, userId: $user}) }",
            input: Input::FreshMember,
            expected: [UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "updateMetricSettings",
            document: "mutation($agency: ID!) { updateMetricSettings(input: {agencyId: $agency, metricKey: \"LAW_ENFORCEMENT_ARRESTS\", definitionNote: \"Custodial arrests.\"}) { definitionNote } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "updateAgencySettings",
            document: "mutation($agency: ID!) { updateAgencySettings(input: {agencyId: $agency, settings: [{kind: HOMEPAGE_URL, value: \"https://example.org\"}]}) { name } }",
            input: Input::Sheriff,
            expected: [UNAUTHENTICATED, FORBIDDEN, FORBIDDEN, OK, FORBIDDEN, OK, OK],
        },
        Case {
            covers: "createAgency",
            document: "mutation { createAgency(input: {name: \"New Agency\", stateCode: \"us_ca\", systems: [JAILS]}) { id } }",
            input: Input::Nothing,
            expected: [
                UNAUTHENTICATED,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                OK,
            ],
        },
        Case {
            covers: "linkChildAgencies",
            document: "mutation($council: ID!, $agency: ID!) { linkChildAgencies(superagencyId: $council, childAgencyIds: [$agency]) { childAgencies { name } } }",
            input: Input::Council,
            expected: [
                UNAUTHENTICATED,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                OK,
            ],
        },
        Case {
            covers: "setDashboardEnabled",
            document: "mutation($agency: ID!) { setDashboardEnabled(agencyId: $agency, enabled: true) { isDashboardEnabled } }",
            input: Input::Sheriff,
            expected: [
                UNAUTHENTICATED,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                FORBIDDEN,
                OK,
            ],
        },
        Case {
            covers: "signIn",
            document: "mutation($input: SignInInput!) { signIn(input: $input) { accessToken } }",
            input: Input::SignIn,
            expected: [OK; 7],
        },
        Case {
            covers: "renewSession",
            document: "mutation($refreshToken: String!) { renewSession(refreshToken: $refreshToken) { accessToken } }",
            input: Input::RefreshToken,
            expected: [OK; 7],
        },
        Case {
            covers: "acceptInvitation",
            document: "mutation($input: AcceptInvitationInput!) { acceptInvitation(input: $input) { accessToken } }",
            input: Input::InvitationCode,
            expected: [OK; 7],
        },
        Case {
            covers: "signOut",
            document: "mutation { signOut }",
            input: Input::Nothing,
            expected: [UNAUTHENTICATED, OK, OK, OK, OK, OK, OK],
        },
    ]
}

/// Query fields anyone may use; the visibility rules inside them are covered by other tests.
const PUBLIC_QUERY_FIELDS: [&str; 5] = [
    "agencies",
    "agency",
    "systems",
    "metricDefinitions",
    "metricDefinition",
];

/// A month no other call has used, for reports created by the table.
fn next_period() -> NaiveDate {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = NEXT.fetch_add(1, Ordering::Relaxed);
    NaiveDate::from_ymd_opt(2040, 1, 1)
        .unwrap()
        .checked_add_months(Months::new(offset))
        .unwrap()
}

/// A new monthly report of the sheriff's office in `status`.
async fn fresh_report(db: &TestDb, fixture: &Fixture, status: ReportStatus) -> Report {
    let mut conn = db.connect().await;
    let agency_id = AgencyId(fixture.sheriff.parse().unwrap());
    let agency = Agency::by_ids(&mut &conn, &[agency_id])
        .await
        .unwrap()
        .pop()
        .unwrap();
    let settings = AgencyMetricSettings::of_agencies(&mut &conn, &[agency_id])
        .await
        .unwrap()
        .remove(&agency_id)
        .unwrap();
    let editor = User::find_by_email(&mut conn, "admin@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let report = lifecycle::create(
        &mut conn,
        &db.catalogue,
        &agency,
        &settings,
        ReportFrequency::Monthly,
        next_period(),
    )
    .await
    .unwrap();
    if status == ReportStatus::NotStarted {
        return report;
    }
    let value = ValueInput {
        metric_key: "LAW_ENFORCEMENT_ARRESTS".into(),
        dimension_id: None,
        member: None,
        sub_category: None,
        value: Some(5.0),
    };
    let request = Save {
        report_id: report.id,
        based_on: report.version,
        values: vec![value],
        contexts: vec![],
        source: ValueSource::ManualEntry,
        editor,
    };
    let saved = save::save(&mut conn, &request).await.unwrap().report;
    if status == ReportStatus::Draft {
        return saved;
    }
    lifecycle::set_published(&mut conn, &[saved.id], None, true, editor)
        .await
        .unwrap()
        .pop()
        .unwrap()
}

struct Fixture {
    council: String,
    reader: String,
    sheriff: String,
    corrections: String,
    report: String,
}

async fn agency_id(app: &TestApp, admin: &str, name: &str) -> String {
    let response = app
        .graphql_as(
            Some(admin),
            "query($name: String) { agencies(filter: {nameContains: $name}) { nodes { id } } }",
            json!({ "name": name }),
        )
        .await;
    response["data"]["agencies"]["nodes"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A GraphQL multipart request whose variable `file` is a small CSV of arrests.
async fn multipart(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    let operations = json!({ "query": query, "variables": variables });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(b"year,month,value\n2022,1,5\n".to_vec())
                .file_name("arrests.csv"),
        );
    let mut request = app
        .client
        .post(format!("{}/graphql", app.base_url))
        .header("Apollo-Require-Preflight", "true")
        .multipart(form);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

async fn variables(
    app: &TestApp,
    db: &TestDb,
    fixture: &Fixture,
    input: Input,
    label: &str,
) -> Value {
    match input {
        Input::Nothing => json!({}),
        Input::Sheriff => json!({ "agency": fixture.sheriff }),
        Input::Spreadsheet => json!({ "agency": fixture.sheriff, "file": null }),
        Input::FreshUpload => {
            let mut conn = db.pool.get().await.unwrap();
            let upload = justice_counts::ingest::NewUpload {
                agency: justice_counts::models::ids::AgencyId(fixture.sheriff.parse().unwrap()),
                system: justice_counts::models::enums::System::LawEnforcement,
                file_name: format!("{label}.csv"),
                user: None,
                source: justice_counts::models::enums::ValueSource::AutomatedBulkUpload,
                dry_run: false,
            };
            let id = justice_counts::ingest::create(
                &mut conn,
                &upload,
                &b"year,month,value\n2022,1,5\n"[..],
                justice_counts::ingest::Queue::Caller,
            )
            .await
            .unwrap();
            json!({ "upload": id.to_string() })
        }
        Input::Report => json!({ "report": fixture.report }),
        Input::Reader => json!({ "agency": fixture.sheriff, "user": fixture.reader }),
        Input::Council => json!({ "council": fixture.council, "agency": fixture.sheriff }),
        Input::FreshMember => {
            let mut conn = db.connect().await;
            let inviter = User::find_by_email(&mut conn, "admin@example.com")
                .await
                .unwrap()
                .unwrap();
            let (_, member) = user::invite(
                &mut conn,
                fixture.sheriff.parse().unwrap(),
                &format!("leaving-{label}@example.com"),
                "Leaving Member",
                AgencyRole::ReadOnly,
                &justice_counts::auth::secrets::digest(&format!("jci_leaving_{label}")),
                inviter.id,
            )
            .await
            .unwrap();
            json!({ "agency": fixture.sheriff, "user": member.id.to_string() })
        }
        Input::NewPeriod => json!({ "input": {
            "agencyId": fixture.sheriff,
            "frequency": "MONTHLY",
            "periodStart": next_period().to_string(),
        } }),
        Input::Save => {
            let report = fresh_report(db, fixture, ReportStatus::NotStarted).await;
            json!({ "input": {
                "reportId": report.id.to_string(),
                "version": report.version,
                "values": [{ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "value": 12 }],
            } })
        }
        Input::Fresh(status) => {
            json!({ "reports": [fresh_report(db, fixture, status).await.id.to_string()] })
        }
        Input::Corrections => json!({ "agency": fixture.corrections }),
        Input::InviteToSheriff | Input::InviteToCorrections => {
            let agency = if matches!(input, Input::InviteToSheriff) {
                &fixture.sheriff
            } else {
                &fixture.corrections
            };
            json!({ "input": {
                "agencyId": agency,
                "email": format!("invitee-{label}@example.com"),
                "name": "New Member",
                "role": "CONTRIBUTOR",
            } })
        }
        Input::SignIn => {
            json!({ "input": { "email": "sheriff.reader@example.com", "password": "justice-counts-demo" } })
        }
        Input::RefreshToken => {
            let response = app
                .graphql(
                    "mutation { signIn(input: {email: \"sheriff.reader@example.com\", password: \"justice-counts-demo\"}) { refreshToken } }",
                    json!({}),
                )
                .await;
            json!({ "refreshToken": response["data"]["signIn"]["refreshToken"] })
        }
        Input::InvitationCode => {
            let mut conn = db.connect().await;
            let code = format!("jci_table_{label}");
            let inviter =
                justice_counts::models::user::User::find_by_email(&mut conn, "admin@example.com")
                    .await
                    .unwrap()
                    .unwrap();
            let sheriff = fixture.sheriff.parse().unwrap();
            user::invite(
                &mut conn,
                sheriff,
                &format!("accepting-{label}@example.com"),
                "Accepting Member",
                AgencyRole::ReadOnly,
                &justice_counts::auth::secrets::digest(&code),
                inviter.id,
            )
            .await
            .unwrap();
            json!({ "input": { "code": code, "password": "a long new password" } })
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_gets_exactly_what_the_role_table_allows() {
    let db = TestDb::with_demo().await;
    // Every role signs in as the same account, from one address: the sign-in throttles are not
    // under test here.
    let app = TestApp::spawn_with_limits(
        &db,
        Limits {
            sign_in_account_burst: 100,
            sign_in_address_burst: 100,
            rate_limit_burst: 0,
            ..Limits::default()
        },
    )
    .await;
    let admin = app.token_for(&db, "admin@example.com").await;
    let sheriff = agency_id(&app, &admin, "Sheriff").await;
    let reports = app
        .graphql_as(
            Some(&admin),
            "query($a: ID!) { agency(id: $a) { reports(first: 1) { nodes { id } } } }",
            json!({ "a": sheriff }),
        )
        .await;
    let reader = {
        let mut conn = db.connect().await;
        User::find_by_email(&mut conn, "sheriff.reader@example.com")
            .await
            .unwrap()
            .unwrap()
            .id
            .to_string()
    };
    let fixture = Fixture {
        council: agency_id(&app, &admin, "Public Safety Council").await,
        reader,
        report: reports["data"]["agency"]["reports"]["nodes"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        sheriff,
        corrections: agency_id(&app, &admin, "Community Corrections").await,
    };

    let mut failures = Vec::new();
    for (case_index, case) in cases().iter().enumerate() {
        for (role, expected) in ROLES.iter().zip(case.expected) {
            // A fresh token for each call: signing out revokes the token it is made with.
            let token = match role.email() {
                Some(email) => Some(app.token_for(&db, email).await),
                None => None,
            };
            let label = format!("{case_index}-{role:?}").to_lowercase();
            let variables = variables(&app, &db, &fixture, case.input, &label).await;
            let response = match case.input {
                Input::Spreadsheet => {
                    multipart(&app, token.as_deref(), case.document, variables).await
                }
                _ => {
                    app.graphql_as(token.as_deref(), case.document, variables)
                        .await
                }
            };
            let codes = error_codes(&response);
            let outcome_matches = match expected {
                None => codes.is_empty(),
                Some(code) => !codes.is_empty() && codes.iter().all(|c| c == code),
            };
            if !outcome_matches {
                failures.push(format!(
                    "{} as {role:?}: expected {}, got {response}",
                    case.covers,
                    expected.unwrap_or("success")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_table_covers_every_mutation_and_every_root_query_field() {
    let response = justice_counts::graphql::bare_schema()
        .execute("{ __schema { queryType { fields { name } } mutationType { fields { name } } } }")
        .await;
    let data = response.data.into_json().unwrap();
    let names = |kind: &str| -> BTreeSet<String> {
        data["__schema"][kind]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|field| field["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let covered: BTreeSet<String> = cases().iter().map(|case| case.covers.to_owned()).collect();

    let uncovered_mutations: Vec<_> = names("mutationType")
        .into_iter()
        .filter(|name| !covered.contains(name))
        .collect();
    assert!(
        uncovered_mutations.is_empty(),
        "mutations missing from the role table: {uncovered_mutations:?}"
    );

    let uncovered_queries: Vec<_> = names("queryType")
        .into_iter()
        .filter(|name| !PUBLIC_QUERY_FIELDS.contains(&name.as_str()))
        .filter(|name| {
            !covered
                .iter()
                .any(|covered| covered == name || covered.starts_with(&format!("{name}.")))
        })
        .collect();
    assert!(
        uncovered_queries.is_empty(),
        "query fields neither public nor in the role table: {uncovered_queries:?}"
    );
}
