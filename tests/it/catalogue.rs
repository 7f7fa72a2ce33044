use std::collections::HashMap;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use justice_counts::catalogue::Catalogue;
use justice_counts::catalogue::sync::{self, SyncOutcome};
use justice_counts::db::schema::{
    breakdown_members, catalogue_state, includes_excludes_items, metric_breakdowns,
    metric_definitions,
};
use serde_json::Value;

use crate::support::TestDb;

const STANDARD: &str = include_str!("../../src/catalogue/catalogue.json");
const REFERENCE: &str = include_str!("../fixtures/reference_catalogue.json");

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

#[test]
fn the_catalogue_has_117_keys_and_matches_the_reference_facts() {
    let catalogue = Catalogue::standard().unwrap();
    let reference: Value = serde_json::from_str(REFERENCE).unwrap();
    let reference_metrics = reference["metrics"].as_array().unwrap();
    assert_eq!(reference_metrics.len(), 73);
    assert_eq!(catalogue.metrics().len(), 117);
    let copies = catalogue
        .metrics()
        .iter()
        .filter(|m| m.parent_key.is_some())
        .count();
    assert_eq!(copies, 44, "11 supervision metrics × 4 subsystems");

    let mut members = 0;
    for expected in reference_metrics {
        // The reference spells one metric type with a space; keys here are SCREAMING_SNAKE_CASE.
        let key = text(&expected["key"]).replace(' ', "_");
        let metric = catalogue
            .metric(&key)
            .unwrap_or_else(|| panic!("{key} is missing"));
        assert_eq!(metric.system.key(), text(&expected["system"]), "{key}");
        assert_eq!(
            metric.display_name,
            text(&expected["display_name"]),
            "{key}"
        );
        assert_eq!(metric.unit, text(&expected["unit"]), "{key}");
        assert_eq!(
            format!("{:?}", metric.default_frequency).to_uppercase(),
            text(&expected["frequency"]),
            "{key}"
        );
        let measurement = serde_json::to_value(metric.measurement_type).unwrap();
        assert_eq!(measurement, expected["measurement_type"], "{key}");
        let category = serde_json::to_value(metric.category).unwrap();
        assert_eq!(category, expected["category"], "{key}");

        let breakdowns = expected["breakdowns"].as_array().unwrap();
        assert_eq!(metric.breakdowns.len(), breakdowns.len(), "{key}");
        for (breakdown, expected) in metric.breakdowns.iter().zip(breakdowns) {
            assert_eq!(breakdown.dimension, text(&expected["dimension"]), "{key}");
            assert_eq!(
                breakdown.required,
                expected["required"].as_bool().unwrap(),
                "{key}"
            );
            let names: Vec<(&str, &str)> = breakdown
                .members
                .iter()
                .map(|m| (m.name.as_str(), m.label.as_str()))
                .collect();
            let expected: Vec<(&str, &str)> = expected["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (text(&m["name"]), text(&m["label"])))
                .collect();
            assert_eq!(names, expected, "{key} {}", breakdown.dimension);
            members += names.len();
        }

        let items: Vec<(&str, bool)> = metric
            .checklist_items()
            .map(|(_, _, item)| (item.key.as_str(), item.default_included))
            .collect();
        let expected_items: Vec<(&str, bool)> = expected["includes_excludes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|group| group["items"].as_array().unwrap())
            .map(|item| (text(&item["key"]), text(&item["default"]) == "Yes"))
            .collect();
        assert_eq!(items, expected_items, "{key}");
    }
    assert_eq!(members, 732);
}

async fn table_counts(conn: &mut diesel_async::AsyncPgConnection) -> [i64; 4] {
    [
        metric_definitions::table
            .count()
            .get_result(conn)
            .await
            .unwrap(),
        metric_breakdowns::table
            .count()
            .get_result(conn)
            .await
            .unwrap(),
        breakdown_members::table
            .count()
            .get_result(conn)
            .await
            .unwrap(),
        includes_excludes_items::table
            .count()
            .get_result(conn)
            .await
            .unwrap(),
    ]
}

fn expected_counts(catalogue: &Catalogue) -> [i64; 4] {
    let metrics = catalogue.metrics();
    [
        metrics.len() as i64,
        metrics.iter().map(|m| m.breakdowns.len()).sum::<usize>() as i64,
        metrics
            .iter()
            .flat_map(|m| &m.breakdowns)
            .map(|b| b.members.len())
            .sum::<usize>() as i64,
        metrics
            .iter()
            .map(|m| m.checklist_items().count())
            .sum::<usize>() as i64,
    ]
}

#[tokio::test]
async fn the_sync_writes_the_whole_catalogue_and_is_idempotent() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let expected = expected_counts(&db.catalogue);
    assert_eq!(table_counts(&mut conn).await, expected);
    assert_eq!(
        sync::sync(&mut conn, &db.catalogue).await.unwrap(),
        SyncOutcome::Unchanged
    );

    // Forget that it was synced: a full sync rewrites the same rows, duplicating nothing.
    diesel::delete(catalogue_state::table)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        sync::sync(&mut conn, &db.catalogue).await.unwrap(),
        SyncOutcome::Updated
    );
    assert_eq!(table_counts(&mut conn).await, expected);
}

fn edited(edit: impl FnOnce(&mut Value)) -> Catalogue {
    let mut file: Value = serde_json::from_str(STANDARD).unwrap();
    edit(&mut file);
    Catalogue::from_json(&serde_json::to_string(&file).unwrap()).unwrap()
}

fn arrests(file: &mut Value) -> &mut Value {
    file["metrics"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["key"] == "LAW_ENFORCEMENT_ARRESTS")
        .unwrap()
}

#[tokio::test]
async fn a_changed_catalogue_file_updates_the_tables() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let changed = edited(|file| {
        let metric = arrests(file);
        metric["display_name"] = "Arrests Made".into();
        let members = metric["breakdowns"][0]["members"].as_array_mut().unwrap();
        let dropped = members.remove(0);
        assert_eq!(dropped["name"], "PERSON");
        members.push(serde_json::json!({"name": "TRAFFIC", "label": "Traffic Offenses"}));
    });
    assert_eq!(
        sync::sync(&mut conn, &changed).await.unwrap(),
        SyncOutcome::Updated
    );
    assert_eq!(table_counts(&mut conn).await, expected_counts(&changed));

    let name: String = metric_definitions::table
        .find("LAW_ENFORCEMENT_ARRESTS")
        .select(metric_definitions::display_name)
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(name, "Arrests Made");
    let members: Vec<String> = breakdown_members::table
        .filter(breakdown_members::metric_key.eq("LAW_ENFORCEMENT_ARRESTS"))
        .filter(breakdown_members::dimension_id.eq("metric/offense/type"))
        .order(breakdown_members::position)
        .select(breakdown_members::member)
        .load(&mut conn)
        .await
        .unwrap();
    assert!(!members.contains(&"PERSON".to_owned()), "{members:?}");
    assert_eq!(members.last().map(String::as_str), Some("TRAFFIC"));

    // And back: the standard file restores what it says.
    assert_eq!(
        sync::sync(&mut conn, &db.catalogue).await.unwrap(),
        SyncOutcome::Updated
    );
    assert_eq!(
        table_counts(&mut conn).await,
        expected_counts(&db.catalogue)
    );
}

#[tokio::test]
async fn a_catalogue_that_drops_a_member_in_use_is_refused_and_changes_nothing() {
    let db = TestDb::with_demo().await;
    let mut conn = db.connect().await;
    let before = table_counts(&mut conn).await;
    let changed = edited(|file| {
        let metric = arrests(file);
        metric["display_name"] = "Renamed".into();
        metric["breakdowns"][0]["members"]
            .as_array_mut()
            .unwrap()
            .remove(0);
    });
    let error = sync::sync(&mut conn, &changed).await.expect_err("refused");
    assert!(format!("{error:#}").contains("still use"), "{error:#}");
    assert_eq!(table_counts(&mut conn).await, before);
    let name: String = metric_definitions::table
        .find("LAW_ENFORCEMENT_ARRESTS")
        .select(metric_definitions::display_name)
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(name, "Arrests", "the refused sync was rolled back");
}

#[tokio::test]
async fn subsystem_copies_point_at_their_supervision_metric() {
    let db = TestDb::new().await;
    let mut conn = db.connect().await;
    let parents: HashMap<String, Option<String>> = metric_definitions::table
        .filter(metric_definitions::key.like("PAROLE_%"))
        .select((metric_definitions::key, metric_definitions::parent_key))
        .load::<(String, Option<String>)>(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(parents.len(), 11);
    assert_eq!(
        parents["PAROLE_POPULATION"].as_deref(),
        Some("SUPERVISION_POPULATION")
    );
}
