//! Metric settings, agency settings, the team and the platform: changes take effect, are
//! validated and are kept in history.

use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, agency_id, error_codes};

struct Admin {
    app: TestApp,
    db: TestDb,
    token: String,
    sheriff: String,
}

async fn admin() -> Admin {
    let db = TestDb::with_demo().await;
    let app = TestApp::spawn(&db).await;
    let token = app.token_for(&db, "sheriff.admin@example.com").await;
    let sheriff = agency_id(&app, &db, "Sheriff").await;
    Admin {
        app,
        db,
        token,
        sheriff,
    }
}

impl Admin {
    async fn call(&self, query: &str, variables: Value) -> Value {
        self.app
            .graphql_as(Some(&self.token), query, variables)
            .await
    }
}

const SETTINGS: &str = "mutation($input: MetricSettingsInput!) {
    updateMetricSettings(input: $input) {
        key isEnabled startingMonth definitionNote
        breakdowns { dimensionId members { name isEnabled description } }
        includesExcludes { key isIncluded isAnswered }
        history { changes changedBy { name } }
    }
}";

#[tokio::test]
async fn metric_settings_change_take_effect_and_are_kept_in_history() {
    let a = admin().await;
    let input = json!({
        "agencyId": a.sheriff,
        "metricKey": "LAW_ENFORCEMENT_ARRESTS",
        "isEnabled": false,
        "definitionNote": "Custodial arrests only.",
        "members": [{ "dimensionId": "metric/offense/type", "member": "DRUG", "isEnabled": false }],
        "includesExcludes": [],
    });
    let changed = a.call(SETTINGS, json!({ "input": input })).await;
    let metric = &changed["data"]["updateMetricSettings"];
    assert_eq!(metric["isEnabled"], false, "{changed}");
    assert_eq!(metric["definitionNote"], "Custodial arrests only.");
    let history = metric["history"].as_array().unwrap();
    let last = &history.last().unwrap()["changes"];
    assert_eq!(last["isEnabled"], json!({ "old": true, "new": false }));
    assert_eq!(last["members"][0]["new"]["isEnabled"], false);
    assert_eq!(history.last().unwrap()["changedBy"]["name"], "Jordan Blake");

    // A disabled metric is no longer collected and cannot be saved into.
    let report = a
        .call("query($a: ID!) { agency(id: $a) { reports(first: 1, filter: {statuses: [DRAFT], frequency: MONTHLY}) { nodes { id version metrics { key } } } } }", json!({ "a": a.sheriff }))
        .await;
    let node = &report["data"]["agency"]["reports"]["nodes"][0];
    let keys: Vec<&str> = node["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"LAW_ENFORCEMENT_ARRESTS"),
        "it still has values in this draft: {keys:?}"
    );
    let save = a
        .call(
            "mutation($input: SaveReportInput!) { saveReport(input: $input) { changedValues } }",
            json!({ "input": { "reportId": node["id"], "version": node["version"], "values": [{ "metricKey": "LAW_ENFORCEMENT_ARRESTS", "value": 1 }] } }),
        )
        .await;
    assert_eq!(error_codes(&save), ["BAD_USER_INPUT"], "{save}");

    let invalid = a
        .call(
            SETTINGS,
            json!({ "input": {
            "agencyId": a.sheriff, "metricKey": "LAW_ENFORCEMENT_FUNDING", "startingMonth": 13,
            "members": [{ "dimensionId": "metric/offense/type", "member": "DRUG" }],
            "includesExcludes": [{ "key": "NOT_AN_ITEM", "isIncluded": true }],
        } }),
        )
        .await;
    assert_eq!(error_codes(&invalid), ["BAD_USER_INPUT"]);
    let paths: Vec<&str> = invalid["errors"][0]["extensions"]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["startingMonth", "members[0]", "includesExcludes[0]"]
    );
    let foreign = a.call(SETTINGS, json!({ "input": { "agencyId": a.sheriff, "metricKey": "PRISONS_ADMISSIONS", "isEnabled": true } })).await;
    assert_eq!(error_codes(&foreign), ["BAD_USER_INPUT"]);
    // Omitted, the note stays; null, it goes.
    let kept = a
        .call(SETTINGS, json!({ "input": { "agencyId": a.sheriff, "metricKey": "LAW_ENFORCEMENT_ARRESTS", "isEnabled": false } }))
        .await;
    assert_eq!(
        kept["data"]["updateMetricSettings"]["definitionNote"], "Custodial arrests only.",
        "{kept}"
    );
    let removed = a
        .call(SETTINGS, json!({ "input": { "agencyId": a.sheriff, "metricKey": "LAW_ENFORCEMENT_ARRESTS", "definitionNote": null } }))
        .await;
    assert!(
        removed["data"]["updateMetricSettings"]["definitionNote"].is_null(),
        "{removed}"
    );
}

#[tokio::test]
async fn agency_settings_and_jurisdictions_are_replaced() {
    let a = admin().await;
    let update = "mutation($input: AgencySettingsInput!) { updateAgencySettings(input: $input) { settings { kind value } jurisdictions { geoid kind } } }";
    let changed = a
        .call(update, json!({ "input": {
            "agencyId": a.sheriff,
            "settings": [{ "kind": "HOMEPAGE_URL", "value": "https://new.example.org" }, { "kind": "CONTACT_EMAIL", "value": null }],
            "jurisdictions": [{ "geoid": "41001", "kind": "INCLUDED" }],
        } }))
        .await;
    let agency = &changed["data"]["updateAgencySettings"];
    let kinds: Vec<(&str, &str)> = agency["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["kind"].as_str().unwrap(), s["value"].as_str().unwrap()))
        .collect();
    assert!(
        kinds.contains(&("HOMEPAGE_URL", "https://new.example.org")),
        "{changed}"
    );
    assert!(!kinds.iter().any(|(kind, _)| *kind == "CONTACT_EMAIL"));
    assert_eq!(
        agency["jurisdictions"],
        json!([{ "geoid": "41001", "kind": "INCLUDED" }])
    );
    let bad = a.call(update, json!({ "input": { "agencyId": a.sheriff, "jurisdictions": [{ "geoid": "north", "kind": "INCLUDED" }] } })).await;
    assert_eq!(error_codes(&bad), ["BAD_USER_INPUT"], "{bad}");
    let twice = a.call(update, json!({ "input": { "agencyId": a.sheriff, "jurisdictions": [{ "geoid": "41001", "kind": "INCLUDED" }, { "geoid": "41001", "kind": "EXCLUDED" }] } })).await;
    assert_eq!(error_codes(&twice), ["BAD_USER_INPUT"], "{twice}");
}

#[tokio::test]
async fn the_last_admin_stays_and_role_changes_are_kept() {
    let a = admin().await;
    let me = a.call("{ me { id } }", json!({})).await["data"]["me"]["id"].clone();
    let demote = "mutation($a: ID!, $u: ID!, $role: AgencyRole!) { changeMemberRole(input: {agencyId: $a, userId: $u, role: $role}) { role } }";
    let remove = "mutation($a: ID!, $u: ID!) { removeMember(input: {agencyId: $a, userId: $u}) }";
    let alone = a
        .call(
            demote,
            json!({ "a": a.sheriff, "u": me, "role": "CONTRIBUTOR" }),
        )
        .await;
    assert_eq!(error_codes(&alone), ["CONFLICT"], "{alone}");
    assert_eq!(
        error_codes(&a.call(remove, json!({ "a": a.sheriff, "u": me })).await),
        ["CONFLICT"]
    );

    let contributor = {
        let mut conn = a.db.connect().await;
        justice_counts::models::user::User::find_by_email(
            &mut conn,
            "sheriff.contributor@example.com",
        )
        .await
        .unwrap()
        .unwrap()
        .id
        .to_string()
    };
    let promoted = a
        .call(
            demote,
            json!({ "a": a.sheriff, "u": contributor, "role": "AGENCY_ADMIN" }),
        )
        .await;
    assert_eq!(
        promoted["data"]["changeMemberRole"]["role"], "AGENCY_ADMIN",
        "{promoted}"
    );
    // Now there is another admin, so this one may step down.
    let stepped_down = a
        .call(
            demote,
            json!({ "a": a.sheriff, "u": me, "role": "CONTRIBUTOR" }),
        )
        .await;
    assert_eq!(
        stepped_down["data"]["changeMemberRole"]["role"],
        "CONTRIBUTOR"
    );

    let history = a.call("query($a: ID!) { agency(id: $a) { teamHistory { member { name } oldRole newRole changedBy { name } } } }", json!({ "a": a.sheriff })).await;
    let changes = history["data"]["agency"]["teamHistory"].as_array().unwrap();
    let last_two: Vec<(&str, &str, &str)> = changes[changes.len() - 2..]
        .iter()
        .map(|c| {
            (
                c["member"]["name"].as_str().unwrap(),
                c["oldRole"].as_str().unwrap(),
                c["newRole"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        last_two,
        [
            ("Casey Moreno", "CONTRIBUTOR", "AGENCY_ADMIN"),
            ("Jordan Blake", "AGENCY_ADMIN", "CONTRIBUTOR")
        ]
    );
}

#[tokio::test]
async fn platform_staff_create_and_link_agencies_and_open_dashboards() {
    let a = admin().await;
    let staff = a.app.token_for(&a.db, "admin@example.com").await;
    let call = |query: &'static str, variables: Value| {
        let app = &a.app;
        let staff = &staff;
        async move { app.graphql_as(Some(staff), query, variables).await }
    };
    let created = call(
        "mutation { createAgency(input: {name: \"Pine County Probation\", stateCode: \"US_OR\", countyCode: \"us_or_pine\", systems: [PROBATION]}) { id stateCode isDashboardEnabled } }",
        json!({}),
    )
    .await;
    let id = created["data"]["createAgency"]["id"].clone();
    assert_eq!(
        created["data"]["createAgency"]["stateCode"], "us_or",
        "{created}"
    );
    let wrong_county = call(
        "mutation { createAgency(input: {name: \"X\", stateCode: \"us_ca\", countyCode: \"us_or_pine\", systems: [JAILS]}) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(
        error_codes(&wrong_county),
        ["BAD_USER_INPUT"],
        "{wrong_county}"
    );

    let council = agency_id(&a.app, &a.db, "Public Safety Council").await;
    let linked = call(
        "mutation($p: ID!, $c: ID!) { linkChildAgencies(superagencyId: $p, childAgencyIds: [$c]) { childAgencies { name } } }",
        json!({ "p": council, "c": id }),
    )
    .await;
    let children: Vec<&str> = linked["data"]["linkChildAgencies"]["childAgencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(children.contains(&"Pine County Probation"), "{linked}");
    let not_super = call(
        "mutation($p: ID!, $c: ID!) { linkChildAgencies(superagencyId: $p, childAgencyIds: [$c]) { name } }",
        json!({ "p": a.sheriff, "c": id }),
    )
    .await;
    assert_eq!(error_codes(&not_super), ["BAD_USER_INPUT"], "{not_super}");
    // All or nothing: with one unknown agency, the known one is not linked either.
    let other = call(
        "mutation { createAgency(input: {name: \"Pine County Parole\", stateCode: \"US_OR\", systems: [PAROLE]}) { id } }",
        json!({}),
    )
    .await;
    let other = other["data"]["createAgency"]["id"].clone();
    let partly_unknown = call(
        "mutation($p: ID!, $c: ID!) { linkChildAgencies(superagencyId: $p, childAgencyIds: [$c, $c, \"999999\"]) { name } }",
        json!({ "p": council, "c": other }),
    )
    .await;
    assert_eq!(
        error_codes(&partly_unknown),
        ["NOT_FOUND"],
        "{partly_unknown}"
    );
    let children = call(
        "query($p: ID!) { agency(id: $p) { childAgencies { id } } }",
        json!({ "p": council }),
    )
    .await;
    assert!(
        !children["data"]["agency"]["childAgencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|child| child["id"] == other),
        "{children}"
    );

    let public = "query($id: ID!) { agency(id: $id) { name } }";
    assert_eq!(
        error_codes(&a.app.graphql(public, json!({ "id": id })).await),
        ["NOT_FOUND"]
    );
    call("mutation($id: ID!) { setDashboardEnabled(agencyId: $id, enabled: true) { isDashboardEnabled } }", json!({ "id": id })).await;
    assert_eq!(
        a.app.graphql(public, json!({ "id": id })).await["data"]["agency"]["name"],
        "Pine County Probation"
    );
}
