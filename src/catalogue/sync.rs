//! Writes the in-memory catalogue into the catalogue tables, idempotently.
//!
//! The whole sync is one transaction under an advisory lock, so servers starting together do
//! not race. Rows the file no longer lists are deleted; if agencies' data still references
//! one, the foreign keys refuse and the sync fails with that reason instead of orphaning data.

use anyhow::Context;
use diesel::dsl::{exists, select};
use diesel::pg::upsert::excluded;
use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::Catalogue;
use crate::db::schema::{
    breakdown_members, catalogue_state, includes_excludes_items, metric_breakdowns,
    metric_definitions,
};
use crate::models::catalogue::{
    NewBreakdownMember, NewCatalogueState, NewChecklistItem, NewMetricBreakdown,
    NewMetricDefinition,
};

/// What a sync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOutcome {
    /// The database already held this catalogue.
    Unchanged,
    /// The tables were brought up to date with the file.
    Updated,
}

/// Arbitrary constant naming the advisory lock that serialises catalogue syncs.
const SYNC_LOCK: i64 = 0x6a63_6361_7461_6c67;

/// Brings the catalogue tables in line with `catalogue`.
pub async fn sync(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
) -> anyhow::Result<SyncOutcome> {
    conn.transaction(async |conn| sync_in_transaction(conn, catalogue).await)
        .await
}

async fn sync_in_transaction(
    conn: &mut AsyncPgConnection,
    catalogue: &Catalogue,
) -> anyhow::Result<SyncOutcome> {
    diesel::sql_query(format!("SELECT pg_advisory_xact_lock({SYNC_LOCK})"))
        .execute(conn)
        .await?;
    let hash = catalogue.content_hash();
    let current: bool = select(exists(
        catalogue_state::table.filter(catalogue_state::content_hash.eq(hash)),
    ))
    .get_result(conn)
    .await?;
    if current {
        return Ok(SyncOutcome::Unchanged);
    }

    let definitions: Vec<NewMetricDefinition> = catalogue
        .metrics()
        .iter()
        .enumerate()
        .map(|(position, metric)| NewMetricDefinition::from_catalogue(metric, position))
        .collect();
    upsert_definitions(conn, &definitions).await?;

    let breakdowns: Vec<NewMetricBreakdown> = catalogue
        .metrics()
        .iter()
        .flat_map(|metric| {
            metric
                .breakdowns
                .iter()
                .enumerate()
                .map(|(position, b)| NewMetricBreakdown::from_catalogue(metric, b, position))
        })
        .collect();
    let members: Vec<NewBreakdownMember> = catalogue
        .metrics()
        .iter()
        .flat_map(|metric| {
            metric.breakdowns.iter().flat_map(move |breakdown| {
                breakdown
                    .members
                    .iter()
                    .enumerate()
                    .map(move |(position, member)| {
                        NewBreakdownMember::from_catalogue(metric, breakdown, member, position)
                    })
            })
        })
        .collect();
    let items: Vec<NewChecklistItem> = catalogue
        .metrics()
        .iter()
        .flat_map(|metric| {
            metric
                .checklist_items()
                .enumerate()
                .map(|(position, (group_index, group, item))| {
                    NewChecklistItem::from_catalogue(metric, group_index, group, item, position)
                })
        })
        .collect();

    // Children first, so that a removed breakdown takes nothing with it by cascade that the
    // member deletion did not already account for.
    delete_unlisted_members(conn, &members).await?;
    delete_unlisted_breakdowns(conn, &breakdowns).await?;
    delete_unlisted_items(conn, &items).await?;
    delete_unlisted_definitions(conn, &definitions).await?;

    diesel::insert_into(metric_breakdowns::table)
        .values(&breakdowns)
        .on_conflict((
            metric_breakdowns::metric_key,
            metric_breakdowns::dimension_id,
        ))
        .do_update()
        .set((
            metric_breakdowns::display_name.eq(excluded(metric_breakdowns::display_name)),
            metric_breakdowns::is_required.eq(excluded(metric_breakdowns::is_required)),
            metric_breakdowns::position.eq(excluded(metric_breakdowns::position)),
        ))
        .execute(conn)
        .await?;
    // A few thousand rows of five columns stay well below PostgreSQL's 65,535 parameters.
    diesel::insert_into(breakdown_members::table)
        .values(&members)
        .on_conflict((
            breakdown_members::metric_key,
            breakdown_members::dimension_id,
            breakdown_members::member,
        ))
        .do_update()
        .set((
            breakdown_members::label.eq(excluded(breakdown_members::label)),
            breakdown_members::position.eq(excluded(breakdown_members::position)),
        ))
        .execute(conn)
        .await?;
    diesel::insert_into(includes_excludes_items::table)
        .values(&items)
        .on_conflict((
            includes_excludes_items::metric_key,
            includes_excludes_items::item_key,
        ))
        .do_update()
        .set((
            includes_excludes_items::group_index.eq(excluded(includes_excludes_items::group_index)),
            includes_excludes_items::is_multiselect
                .eq(excluded(includes_excludes_items::is_multiselect)),
            includes_excludes_items::label.eq(excluded(includes_excludes_items::label)),
            includes_excludes_items::default_included
                .eq(excluded(includes_excludes_items::default_included)),
            includes_excludes_items::position.eq(excluded(includes_excludes_items::position)),
        ))
        .execute(conn)
        .await?;

    diesel::insert_into(catalogue_state::table)
        .values(NewCatalogueState { content_hash: hash })
        .on_conflict(catalogue_state::singleton)
        .do_update()
        .set((
            catalogue_state::content_hash.eq(excluded(catalogue_state::content_hash)),
            catalogue_state::synced_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(SyncOutcome::Updated)
}

async fn upsert_definitions(
    conn: &mut AsyncPgConnection,
    definitions: &[NewMetricDefinition<'_>],
) -> anyhow::Result<()> {
    use crate::db::schema::metric_definitions::dsl::*;
    diesel::insert_into(metric_definitions)
        .values(definitions)
        .on_conflict(key)
        .do_update()
        .set((
            system.eq(excluded(system)),
            metric_type.eq(excluded(metric_type)),
            parent_key.eq(excluded(parent_key)),
            display_name.eq(excluded(display_name)),
            description.eq(excluded(description)),
            category.eq(excluded(category)),
            measurement_type.eq(excluded(measurement_type)),
            default_frequency.eq(excluded(default_frequency)),
            unit.eq(excluded(unit)),
            position.eq(excluded(position)),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

fn owned(values: impl Iterator<Item = impl ToString>) -> Vec<String> {
    values.map(|value| value.to_string()).collect()
}

async fn delete_unlisted_members(
    conn: &mut AsyncPgConnection,
    members: &[NewBreakdownMember<'_>],
) -> anyhow::Result<()> {
    diesel::sql_query(
        "DELETE FROM breakdown_members m WHERE NOT EXISTS (
             SELECT 1 FROM unnest($1::text[], $2::text[], $3::text[]) AS keep (k, d, n)
             WHERE keep.k = m.metric_key AND keep.d = m.dimension_id AND keep.n = m.member)",
    )
    .bind::<Array<Text>, _>(owned(members.iter().map(|m| m.metric_key)))
    .bind::<Array<Text>, _>(owned(members.iter().map(|m| m.dimension_id)))
    .bind::<Array<Text>, _>(owned(members.iter().map(|m| m.member)))
    .execute(conn)
    .await
    .context("the catalogue drops breakdown members that agencies' data or settings still use")?;
    Ok(())
}

async fn delete_unlisted_breakdowns(
    conn: &mut AsyncPgConnection,
    breakdowns: &[NewMetricBreakdown<'_>],
) -> anyhow::Result<()> {
    diesel::sql_query(
        "DELETE FROM metric_breakdowns b WHERE NOT EXISTS (
             SELECT 1 FROM unnest($1::text[], $2::text[]) AS keep (k, d)
             WHERE keep.k = b.metric_key AND keep.d = b.dimension_id)",
    )
    .bind::<Array<Text>, _>(owned(breakdowns.iter().map(|b| b.metric_key)))
    .bind::<Array<Text>, _>(owned(breakdowns.iter().map(|b| b.dimension_id)))
    .execute(conn)
    .await
    .context("the catalogue drops breakdowns that agencies' data still uses")?;
    Ok(())
}

async fn delete_unlisted_items(
    conn: &mut AsyncPgConnection,
    items: &[NewChecklistItem<'_>],
) -> anyhow::Result<()> {
    diesel::sql_query(
        "DELETE FROM includes_excludes_items i WHERE NOT EXISTS (
             SELECT 1 FROM unnest($1::text[], $2::text[]) AS keep (k, item)
             WHERE keep.k = i.metric_key AND keep.item = i.item_key)",
    )
    .bind::<Array<Text>, _>(owned(items.iter().map(|i| i.metric_key)))
    .bind::<Array<Text>, _>(owned(items.iter().map(|i| i.item_key)))
    .execute(conn)
    .await
    .context("the catalogue drops checklist items that agencies have answered")?;
    Ok(())
}

async fn delete_unlisted_definitions(
    conn: &mut AsyncPgConnection,
    definitions: &[NewMetricDefinition<'_>],
) -> anyhow::Result<()> {
    let keys = owned(definitions.iter().map(|d| d.key));
    diesel::delete(metric_definitions::table.filter(metric_definitions::key.ne_all(keys)))
        .execute(conn)
        .await
        .context("the catalogue drops metrics that agencies' data or settings still use")?;
    Ok(())
}
