//! What the limits cost: the records screen over HTTP on loopback, served once with the
//! default limits (every check runs; the rate limits are set high enough never to refuse) and
//! once with none (no document checks, no rate limits, no size limits), in interleaved rounds
//! of the same run. Prints each round's requests per second and the median ratio.
//!
//! Run with `cargo bench --bench limits`. Figures are ratios: the machines are shared and
//! noisy, and client, server and database share the cores.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use justice_counts::catalogue::Catalogue;
use justice_counts::db::schema::agencies;
use justice_counts::db::{self, PoolSettings};
use justice_counts::limits::Limits;
use justice_counts::models::ids::AgencyId;
use justice_counts::seed;
use serde_json::json;
use support::{BenchDb, operation, serve_in_process};

mod support;

const CLIENTS: usize = 8;
const REQUESTS_PER_ROUND: usize = 1_500;
const ROUNDS: usize = 5;

struct Server {
    name: &'static str,
    url: String,
    token: String,
}

async fn serve(
    name: &'static str,
    url: &str,
    catalogue: &Arc<Catalogue>,
    limits: Limits,
    checked: bool,
) -> anyhow::Result<Server> {
    let limits = Arc::new(limits);
    let pool = db::connect_with(
        url,
        PoolSettings {
            wait: limits.pool_wait,
            statement_timeout: Some(limits.statement_timeout),
            ..PoolSettings::new(16)
        },
    )
    .await?;
    let (url, token) = serve_in_process(url, pool, catalogue, limits, checked, false).await?;
    Ok(Server { name, url, token })
}

/// Requests per second of `REQUESTS_PER_ROUND` requests from `CLIENTS` concurrent clients.
async fn round(server: &Server, body: &serde_json::Value) -> f64 {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let per_client = REQUESTS_PER_ROUND / CLIENTS;
    let clients = (0..CLIENTS).map(|_| {
        let client = client.clone();
        async move {
            for _ in 0..per_client {
                let response = client
                    .post(&server.url)
                    .bearer_auth(&server.token)
                    .json(body)
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                let answer: serde_json::Value = response.json().await.unwrap();
                assert!(answer["errors"].is_null(), "{answer}");
            }
        }
    });
    futures_util::future::join_all(clients).await;
    (per_client * CLIENTS) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let bench = BenchDb::with_demo().await?;
    let (url, catalogue) = (bench.url.clone(), bench.catalogue.clone());
    let pool = db::connect(&url, 4).await?;
    eprintln!("generating 100 agencies ...");
    seed::scale::seed(&pool, &catalogue, 100, false).await?;
    let mut conn = AsyncPgConnection::establish(&url).await?;
    let agency: AgencyId = agencies::table
        .filter(agencies::name.like("Benchmark Agency%"))
        .select(agencies::id)
        .first(&mut conn)
        .await?;
    let body = json!({
        "query": operation("records"),
        "variables": { "agencyId": agency.to_string(), "first": 20 },
    });

    let limited = Limits {
        // Checked on every request, never refusing one.
        rate_limit_burst: u32::MAX,
        rate_limit_per_second: 1_000_000,
        ..Limits::default()
    };
    let servers = [
        serve("no limits", &url, &catalogue, Limits::unlimited(), false).await?,
        serve("default limits", &url, &catalogue, limited, true).await?,
    ];
    for server in &servers {
        round(server, &body).await;
    }
    println!(
        "records screen (20 reports), {CLIENTS} clients, {REQUESTS_PER_ROUND} requests a round"
    );
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut ratios = Vec::new();
    for number in 1..=ROUNDS {
        // Alternate which server goes first, so neither always meets a warmer machine.
        let order: [usize; 2] = if number % 2 == 0 { [1, 0] } else { [0, 1] };
        let mut this_round = [0.0; 2];
        for index in order {
            this_round[index] = round(&servers[index], &body).await;
            rates[index].push(this_round[index]);
        }
        let ratio = this_round[1] / this_round[0];
        ratios.push(ratio);
        println!(
            "round {number}: {:<15} {:>8.0} req/s   {:<15} {:>8.0} req/s   ratio {ratio:.3}",
            servers[0].name, this_round[0], servers[1].name, this_round[1]
        );
    }
    println!(
        "median: {} {:.0} req/s, {} {:.0} req/s; throughput with limits / without: {:.3} \
         (cost {:+.1} %)",
        servers[0].name,
        median(rates[0].clone()),
        servers[1].name,
        median(rates[1].clone()),
        median(ratios.clone()),
        (1.0 - median(ratios)) * 100.0
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(bench);
    Ok(())
}
