//! Data out at scale: the `seed --scale 5` data set (~1 M values) exported as the `export`
//! command does (the feed's own connection and snapshot, `COPY` streamed in chunks), against
//! PostgreSQL's own `COPY (SELECT …) TO STDOUT` of the same rows in the same run, with the
//! process's peak resident memory while exporting a tenth of the agencies and all of them.
//!
//! Run with `cargo bench --bench export` (`EXPORT_BENCH_SCALE` changes the scale,
//! `EXPORT_BENCH_ROUNDS` the interleaved rounds).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod support;

use std::time::{Duration, Instant};

use futures_util::{StreamExt, pin_mut};
use justice_counts::db::{self, PoolSettings};
use justice_counts::export::{self, Audience, FeedQuery, Format};
use justice_counts::models::agency::Agency;
use justice_counts::seed;
use support::{BenchDb, peak_rss_kib, reset_peak_rss};

/// Lines and bytes of a stream of chunks.
async fn drain<S, E>(stream: S) -> (u64, u64)
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>>,
    E: std::fmt::Debug,
{
    pin_mut!(stream);
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("a chunk");
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
    }
    (lines, bytes)
}

/// The member feed's rows as a plain statement, written as the feed writes them.
const PLAIN_MEMBERS: &str = "COPY (
    SELECT r.agency_id, a.name AS agency_name, m.system::text AS system, d.metric_key,
        m.display_name AS metric_name, r.date_range_start AS period_start,
        r.date_range_end AS period_end, r.frequency::text AS frequency,
        d.dimension_id AS breakdown, d.member, d.sub_category, d.value, m.unit,
        r.status::text AS report_status, to_json(r.published_at) #>> '{}' AS published_at,
        to_json(d.updated_at) #>> '{}' AS updated_at
    FROM reports r
    JOIN agencies a ON a.id = r.agency_id
    JOIN datapoints d ON d.report_id = r.id
    JOIN metric_definitions m ON m.key = d.metric_key
) TO STDOUT WITH (FORMAT csv, HEADER true)";

/// The public feed's rows (published reports of public agencies, no sub-categories) as a
/// plain statement.
const PLAIN_PUBLIC: &str = "COPY (
    SELECT r.agency_id, a.name AS agency_name, m.system::text AS system, d.metric_key,
        m.display_name AS metric_name, r.date_range_start AS period_start,
        r.date_range_end AS period_end, r.frequency::text AS frequency,
        d.dimension_id AS breakdown, d.member, d.value, m.unit,
        to_json(r.published_at) #>> '{}' AS published_at
    FROM reports r
    JOIN agencies a ON a.id = r.agency_id
    JOIN datapoints d ON d.report_id = r.id
    JOIN metric_definitions m ON m.key = d.metric_key
    WHERE a.is_dashboard_enabled AND r.status = 'PUBLISHED' AND d.sub_category IS NULL
) TO STDOUT WITH (FORMAT csv, HEADER true)";

async fn plain_copy(url: &str, statement: &str) -> (u64, Duration) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let started = Instant::now();
    let stream = client.copy_out(statement).await.expect("copy");
    let (lines, _) = drain(stream).await;
    (lines.saturating_sub(1), started.elapsed())
}

async fn feed(
    url: &str,
    pool: &db::Pool,
    bench: &BenchDb,
    query: &FeedQuery,
) -> (u64, Duration, u64) {
    reset_peak_rss();
    let started = Instant::now();
    let feed = export::open(url, pool, &bench.catalogue, query, Format::Csv, 4096, None)
        .await
        .expect("feed");
    let (lines, bytes) = drain(feed.body).await;
    (lines.saturating_sub(1), started.elapsed(), bytes)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let scale: usize = std::env::var("EXPORT_BENCH_SCALE")
        .ok()
        .and_then(|scale| scale.parse().ok())
        .unwrap_or(5);
    let rounds: usize = std::env::var("EXPORT_BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(5);
    let bench = BenchDb::with_demo().await?;
    let pool = db::connect_with(&bench.url, PoolSettings::new(4)).await?;
    let seeded = seed::scale::seed(&pool, &bench.catalogue, scale * 100, false).await?;
    println!(
        "seeded scale {scale}: {} agencies, {} reports, {} values in {:.1} s",
        seeded.agencies,
        seeded.reports,
        seeded.datapoints,
        seeded.elapsed.as_secs_f64()
    );
    let mut conn = pool.get().await?;
    diesel_async::SimpleAsyncConnection::batch_execute(&mut *conn, "VACUUM ANALYZE").await?;
    let agencies = Agency::all_ids(&mut conn).await?;
    drop(conn);
    let members = FeedQuery::new(Audience::Members, agencies.clone());
    let public = FeedQuery::new(Audience::Public, agencies.clone());

    // Warm the caches once.
    feed(&bench.url, &pool, &bench, &members).await;
    plain_copy(&bench.url, PLAIN_MEMBERS).await;

    for (name, query, plain) in [
        ("member feed, all agencies", &members, PLAIN_MEMBERS),
        ("public feed, all agencies", &public, PLAIN_PUBLIC),
    ] {
        let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let mut rows = (0, 0);
        let mut peak = 0;
        for _ in 0..rounds {
            let (feed_rows, feed_time, _) = feed(&bench.url, &pool, &bench, query).await;
            peak = peak.max(peak_rss_kib());
            let (copy_rows, copy_time) = plain_copy(&bench.url, plain).await;
            rows = (feed_rows, copy_rows);
            let ours_rate = feed_rows as f64 / feed_time.as_secs_f64();
            let theirs_rate = copy_rows as f64 / copy_time.as_secs_f64();
            ours.push(ours_rate);
            theirs.push(theirs_rate);
            ratios.push(ours_rate / theirs_rate);
        }
        println!(
            "{name}: export {} rows at {:.0} rows/s; plain COPY {} rows at {:.0} rows/s; \
             ratio {:.2} (median of {rounds} interleaved rounds; rounds {}); peak RSS {:.1} MB",
            rows.0,
            median(&mut ours),
            rows.1,
            median(&mut theirs),
            median(&mut ratios.clone()),
            ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" "),
            peak as f64 / 1024.0,
        );
    }

    // Memory does not grow with the rows: a tenth of the agencies, then all of them.
    let tenth = FeedQuery::new(Audience::Members, agencies[..agencies.len() / 10].to_vec());
    let (small_rows, _, _) = feed(&bench.url, &pool, &bench, &tenth).await;
    let small_peak = peak_rss_kib();
    let (all_rows, _, bytes) = feed(&bench.url, &pool, &bench, &members).await;
    let all_peak = peak_rss_kib();
    println!(
        "peak RSS: {small_rows} rows {:.1} MB, {all_rows} rows ({:.0} MB of CSV) {:.1} MB",
        small_peak as f64 / 1024.0,
        bytes as f64 / 1e6,
        all_peak as f64 / 1024.0
    );
    Ok(())
}
