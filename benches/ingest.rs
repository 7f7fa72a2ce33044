//! Bulk upload at scale: a generated CSV of 1,000,000 rows (a superagency's child agencies,
//! ten years of monthly law-enforcement metrics with their breakdowns, single-sheet layout)
//! ingested on the demo data, against PostgreSQL's own `COPY` of the same rows in the same
//! run, with the process's peak resident memory during the ingest.
//!
//! Run with `cargo bench --bench ingest` (`INGEST_BENCH_ROWS` changes the row count).

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

mod support;

use std::io::Write;
use std::time::Instant;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Integer};
use diesel_async::RunQueryDsl;
use futures_util::SinkExt;
use justice_counts::db::{self, PoolSettings};
use justice_counts::ingest::{self, IngestSettings, NewUpload, Queue, Quiet};
use justice_counts::models::enums::{System, ValueSource};
use justice_counts::models::ids::AgencyId;
use support::{BenchDb, peak_rss_kib, reset_peak_rss};

/// Sheets of the generated file: monthly law-enforcement metrics and their breakdowns.
const METRICS: [&str; 3] = [
    "LAW_ENFORCEMENT_ARRESTS",
    "LAW_ENFORCEMENT_CALLS_FOR_SERVICE",
    "LAW_ENFORCEMENT_REPORTED_CRIME",
];

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Integer)]
    id: i32,
}

#[derive(QueryableByName)]
struct Statement {
    #[diesel(sql_type = diesel::sql_types::Double)]
    seconds: f64,
    #[diesel(sql_type = BigInt)]
    calls: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    query: String,
}

/// User and system CPU time of this process so far.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    ticks(11).unwrap_or(0.0) / 100.0 + ticks(12).unwrap_or(0.0) / 100.0
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let wanted: usize = std::env::var("INGEST_BENCH_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(1_000_000);
    // `INGEST_BENCH_EXPLAIN=FILE` writes the plans of the ingest's slow statements, with
    // their timings, to FILE.
    let explain = std::env::var_os("INGEST_BENCH_EXPLAIN");
    let mut settings = vec![
        (
            "shared_preload_libraries".into(),
            "pg_stat_statements".into(),
        ),
        ("pg_stat_statements.track".into(), "top".into()),
    ];
    if explain.is_some() {
        settings.extend(
            [
                ("session_preload_libraries", "auto_explain"),
                ("auto_explain.log_min_duration", "300ms"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_buffers", "on"),
                ("auto_explain.log_wal", "on"),
                ("auto_explain.log_triggers", "on"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
    }
    let bench = BenchDb::with_settings(settings).await?;
    // Connections as the server's: statements on generic plans, but for the ingest's.
    let pool = db::connect_with(
        &bench.url,
        PoolSettings {
            generic_plans: true,
            ..PoolSettings::new(4)
        },
    )
    .await?;
    let mut conn = pool.get().await?;
    diesel::sql_query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut conn)
        .await?;

    // Row layout of one month of one agency: every metric's total and breakdown members.
    let layout = justice_counts::ingest::layout::sheets_of(System::LawEnforcement);
    let mut month_rows: Vec<(String, String, String, usize)> = Vec::new();
    for key in METRICS {
        let metric = bench.catalogue.metric(key).expect("metric");
        let aggregate = layout
            .iter()
            .find(|s| s.metric == key && s.kind == ingest::layout::SheetKind::Aggregate)
            .expect("sheet");
        month_rows.push((aggregate.name.into(), String::new(), String::new(), 0));
        for sheet in layout.iter().filter(|s| s.metric == key) {
            if let ingest::layout::SheetKind::Breakdown { column, dimension } = sheet.kind {
                let members = &metric.breakdown(dimension).expect("breakdown").members;
                for member in members {
                    month_rows.push((
                        aggregate.name.into(),
                        column.into(),
                        member.label.clone(),
                        members.len(),
                    ));
                }
            }
        }
    }
    let years = 2016..=2025;
    let per_agency = month_rows.len() * 12 * years.clone().count();
    let children = wanted.div_ceil(per_agency);

    // A superagency with enough child agencies.
    let council: Id = diesel::sql_query(
        "INSERT INTO agencies (name, state_code, systems, is_superagency) \
         VALUES ('Bench State Council', 'us_tx', '{SUPERAGENCY}', true) RETURNING id",
    )
    .get_result(&mut conn)
    .await?;
    diesel::sql_query(format!(
        "INSERT INTO agencies (name, state_code, systems, super_agency_id) \
         SELECT 'Bench Police ' || n, 'us_tx', '{{LAW_ENFORCEMENT}}', {} \
         FROM generate_series(1, {children}) AS n",
        council.id
    ))
    .execute(&mut conn)
    .await?;

    // The file.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    writeln!(
        file,
        "metric,year,month,agency,breakdown_category,breakdown,value"
    )?;
    let mut written = 0usize;
    'rows: for child in 1..=children {
        for year in years.clone() {
            for month in 1..=12 {
                let total = (child * 7 + year as usize + month * 13) % 900 + 100;
                for (metric, category, member, members) in &month_rows {
                    let value = if *members == 0 {
                        total as f64
                    } else {
                        (total as f64 / *members as f64 * 100.0).round() / 100.0
                    };
                    writeln!(
                        file,
                        "{metric},{year},{month},Bench Police {child},{category},{member},{value}"
                    )?;
                    written += 1;
                    if written == wanted {
                        break 'rows;
                    }
                }
            }
        }
    }
    file.flush()?;
    drop(file);
    let file_bytes = std::fs::metadata(&path)?.len();
    println!(
        "file: {written} rows, {:.1} MB, {children} child agencies",
        file_bytes as f64 / 1e6
    );

    // The ingest: store the file, then read, stage and apply it.
    let upload = NewUpload {
        agency: AgencyId(council.id),
        system: System::LawEnforcement,
        file_name: "bench.csv".into(),
        user: None,
        source: ValueSource::AutomatedBulkUpload,
        dry_run: false,
    };
    diesel::sql_query("SELECT pg_stat_statements_reset()")
        .execute(&mut conn)
        .await?;
    drop(conn);
    reset_peak_rss();
    let rss_before = peak_rss_kib();
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let mut conn = pool.get().await?;
    let id = ingest::create(
        &mut conn,
        &upload,
        tokio::fs::File::open(&path).await?,
        Queue::Caller,
    )
    .await
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    drop(conn);
    let stored = started.elapsed();
    let settings = IngestSettings::default();
    let finished = ingest::run(&pool, &bench.catalogue, id, &settings, &Quiet).await?;
    let ingest_time = started.elapsed();
    let ingest_cpu = process_cpu_seconds() - cpu_before;
    let rss_peak = peak_rss_kib();
    println!("ingest: {finished:?}");
    let mut conn = pool.get().await?;
    let statements: Vec<Statement> = diesel::sql_query(
        "SELECT total_exec_time / 1000 AS seconds, calls, \
             regexp_replace(left(query, 110), '\\s+', ' ', 'g') AS query \
         FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12",
    )
    .load(&mut conn)
    .await?;
    println!(
        "server process CPU during the ingest: {ingest_cpu:.2} s of {:.2} s",
        ingest_time.as_secs_f64()
    );
    println!("PostgreSQL's time per statement during the ingest (pg_stat_statements):");
    for statement in &statements {
        println!(
            "  {:>7.2} s {:>6} x  {}",
            statement.seconds, statement.calls, statement.query
        );
    }
    let saved: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM spreadsheet_values WHERE spreadsheet_id = {} AND outcome = 'NEW'",
        id.0
    ))
    .get_result(&mut conn)
    .await?;
    let messages: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM spreadsheet_messages WHERE spreadsheet_id = {}",
        id.0
    ))
    .get_result(&mut conn)
    .await?;
    drop(conn);

    // The same file again: every value unchanged.
    let started_again = Instant::now();
    let mut conn = pool.get().await?;
    let again = ingest::create(
        &mut conn,
        &upload,
        tokio::fs::File::open(&path).await?,
        Queue::Caller,
    )
    .await
    .map_err(|error| anyhow::anyhow!("{error}"))?;
    drop(conn);
    ingest::run(&pool, &bench.catalogue, again, &settings, &Quiet).await?;
    let again_time = started_again.elapsed();

    // PostgreSQL's COPY of the same rows: as stored (a table shaped like `datapoints`, with
    // its constraints and indexes), and as written in the file (text columns).
    let (client, connection) = tokio_postgres::connect(&bench.url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE copy_datapoints (LIKE datapoints INCLUDING DEFAULTS \
                 INCLUDING CONSTRAINTS INCLUDING INDEXES INCLUDING IDENTITY); \
             CREATE TABLE copy_datapoints_checked (LIKE datapoints INCLUDING DEFAULTS \
                 INCLUDING CONSTRAINTS INCLUDING INDEXES INCLUDING IDENTITY, \
                 FOREIGN KEY (report_id) REFERENCES reports (id), \
                 FOREIGN KEY (metric_key) REFERENCES metric_definitions (key), \
                 FOREIGN KEY (metric_key, dimension_id, member) \
                     REFERENCES breakdown_members (metric_key, dimension_id, member), \
                 FOREIGN KEY (updated_by) REFERENCES users (id)); \
             CREATE TABLE copy_file (metric text, year text, month text, agency text, \
                 breakdown_category text, breakdown text, value text)",
        )
        .await?;
    let export = format!(
        "COPY (SELECT report_id, metric_key, dimension_id, member, value, 'AUTOMATED_BULK_UPLOAD' \
               FROM spreadsheet_values WHERE spreadsheet_id = {} AND NOT derived) TO STDOUT",
        id.0
    );
    let mut rows_text = Vec::new();
    {
        use futures_util::TryStreamExt;
        let stream = client.copy_out(export.as_str()).await?;
        futures_util::pin_mut!(stream);
        while let Some(chunk) = stream.try_next().await? {
            rows_text.extend_from_slice(&chunk);
        }
    }
    let copy_rows = async |statement: &str, data: &[u8]| -> anyhow::Result<(u64, f64)> {
        let started = Instant::now();
        let sink = client.copy_in::<_, bytes::Bytes>(statement).await?;
        futures_util::pin_mut!(sink);
        for chunk in data.chunks(1 << 20) {
            sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
        }
        let rows = sink.finish().await?;
        Ok((rows, started.elapsed().as_secs_f64()))
    };
    let (copied, copy_time) = copy_rows(
        "COPY copy_datapoints (report_id, metric_key, dimension_id, member, value, source) FROM STDIN",
        &rows_text,
    )
    .await?;
    let (copied_checked, copy_checked_time) = copy_rows(
        "COPY copy_datapoints_checked (report_id, metric_key, dimension_id, member, value, source) \
         FROM STDIN",
        &rows_text,
    )
    .await?;
    if let Some(target) = &explain {
        std::fs::copy(bench.log_path(), target)?;
    }
    let file_text = std::fs::read(&path)?;
    let (copied_file, copy_file_time) = copy_rows(
        "COPY copy_file FROM STDIN WITH (FORMAT csv, HEADER true)",
        &file_text,
    )
    .await?;

    let rate = |rows: usize, seconds: f64| rows as f64 / seconds;
    let ingest_rate = rate(written, ingest_time.as_secs_f64());
    let copy_rate = rate(copied as usize, copy_time);
    let copy_file_rate = rate(copied_file as usize, copy_file_time);
    let copy_checked_rate = rate(copied_checked as usize, copy_checked_time);
    println!(
        "values saved: {} new, {} messages; file stored in {:.2} s",
        saved.n,
        messages.n,
        stored.as_secs_f64()
    );
    println!(
        "ingest (store, read, stage, apply): {:>9.0} rows/s ({:.2} s)",
        ingest_rate,
        ingest_time.as_secs_f64()
    );
    println!(
        "same file again (all unchanged):    {:>9.0} rows/s ({:.2} s)",
        rate(written, again_time.as_secs_f64()),
        again_time.as_secs_f64()
    );
    println!(
        "COPY into a datapoints-shaped table: {:>8.0} rows/s ({:.2} s, {copied} rows)",
        copy_rate, copy_time
    );
    println!(
        "COPY into it with its foreign keys:  {:>8.0} rows/s ({:.2} s, {copied_checked} rows)",
        copy_checked_rate, copy_checked_time
    );
    println!(
        "COPY of the CSV into text columns:   {:>8.0} rows/s ({:.2} s, {copied_file} rows)",
        copy_file_rate, copy_file_time
    );
    println!(
        "ratio ingest / COPY (datapoints-shaped): {:.2}; with foreign keys: {:.2}; \
         ingest / COPY (file as text): {:.2}",
        ingest_rate / copy_rate,
        ingest_rate / copy_checked_rate,
        ingest_rate / copy_file_rate
    );
    println!(
        "peak RSS during the ingest: {:.1} MB (before: {:.1} MB)",
        rss_peak as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
    Ok(())
}
