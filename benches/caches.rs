//! What the in-memory caches save, over HTTP on loopback, each against a server without it on
//! the same database, in interleaved rounds of the same run:
//!
//! - authentication from memory: the records screen as a member (`AUTH_CACHE_TOKENS=0`
//!   against the default, both with `MEMBER_CACHE_ENTRIES=0` so that each request is run);
//! - signed-in answers from memory: the records screen as a member, asked again while
//!   nothing changed (`MEMBER_CACHE_ENTRIES=0` against the default);
//! - public answers from memory: the public dashboard, anonymous (`PUBLIC_CACHE_ENTRIES=0`
//!   against the default).
//!
//! Prints requests per second, statements per request and the median ratio.
//!
//! Run with `cargo bench --bench caches`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Instant;

use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use justice_counts::catalogue::Catalogue;
use justice_counts::db::schema::agencies;
use justice_counts::db::{self, PoolSettings, StatementCounter};
use justice_counts::limits::Limits;
use justice_counts::models::ids::AgencyId;
use justice_counts::seed;
use serde_json::json;
use support::{BenchDb, operation, serve_in_process};

mod support;

const CLIENTS: usize = 8;
const REQUESTS_PER_ROUND: usize = 1_600;
const ROUNDS: usize = 5;

struct Server {
    name: &'static str,
    url: String,
    token: Option<String>,
    statements: StatementCounter,
}

async fn serve(
    name: &'static str,
    url: &str,
    catalogue: &Arc<Catalogue>,
    limits: Limits,
    signed_in: bool,
) -> anyhow::Result<Server> {
    let limits = Arc::new(Limits {
        rate_limit_burst: 0,
        ..limits
    });
    let statements = StatementCounter::default();
    let pool = db::connect_with(
        url,
        PoolSettings {
            counter: Some(statements.clone()),
            ..PoolSettings::new(16)
        },
    )
    .await?;
    let (url, token) = serve_in_process(url, pool, catalogue, limits, true, true).await?;
    Ok(Server {
        name,
        url,
        token: signed_in.then_some(token),
        statements,
    })
}

/// Requests per second and statements per request of one round.
async fn round(server: &Server, body: &serde_json::Value) -> (f64, f64) {
    let client = reqwest::Client::new();
    let before = server.statements.get();
    let started = Instant::now();
    let per_client = REQUESTS_PER_ROUND / CLIENTS;
    let clients = (0..CLIENTS).map(|_| {
        let client = client.clone();
        async move {
            for _ in 0..per_client {
                let mut request = client.post(&server.url).json(body);
                if let Some(token) = &server.token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                let answer: serde_json::Value = response.json().await.unwrap();
                assert!(answer["errors"].is_null(), "{answer}");
            }
        }
    });
    futures_util::future::join_all(clients).await;
    let requests = (per_client * CLIENTS) as f64;
    (
        requests / started.elapsed().as_secs_f64(),
        (server.statements.get() - before) as f64 / requests,
    )
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
    let records = json!({
        "query": operation("records"),
        "variables": { "agencyId": agency.to_string(), "first": 20 },
    });
    let sheriff: AgencyId = agencies::table
        .filter(agencies::name.eq("Pine County Sheriff's Office"))
        .select(agencies::id)
        .first(&mut conn)
        .await?;
    let dashboard = json!({
        "query": operation("public_dashboard"),
        "variables": { "agencyId": sheriff.to_string() },
    });
    let comparisons = [
        (
            "records screen (20 reports), signed in",
            &records,
            [
                serve(
                    "credentials read",
                    &url,
                    &catalogue,
                    Limits {
                        auth_cache_tokens: 0,
                        member_cache_entries: 0,
                        ..Limits::default()
                    },
                    true,
                )
                .await?,
                serve(
                    "from memory",
                    &url,
                    &catalogue,
                    Limits {
                        member_cache_entries: 0,
                        ..Limits::default()
                    },
                    true,
                )
                .await?,
            ],
        ),
        (
            "records screen (20 reports), signed in, asked again",
            &records,
            [
                serve(
                    "answers computed",
                    &url,
                    &catalogue,
                    Limits {
                        member_cache_entries: 0,
                        ..Limits::default()
                    },
                    true,
                )
                .await?,
                serve("from memory", &url, &catalogue, Limits::default(), true).await?,
            ],
        ),
        (
            "public dashboard, anonymous",
            &dashboard,
            [
                serve(
                    "answers computed",
                    &url,
                    &catalogue,
                    Limits {
                        public_cache_entries: 0,
                        ..Limits::default()
                    },
                    false,
                )
                .await?,
                serve("from memory", &url, &catalogue, Limits::default(), false).await?,
            ],
        ),
    ];
    for (title, body, servers) in &comparisons {
        compare(title, body, servers).await;
    }
    Ok(())
}

async fn compare(title: &str, body: &serde_json::Value, servers: &[Server; 2]) {
    for server in servers {
        round(server, body).await;
    }
    println!("{title}: {CLIENTS} clients, {REQUESTS_PER_ROUND} requests a round");
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut statements = [0.0; 2];
    let mut ratios = Vec::new();
    for number in 1..=ROUNDS {
        let order: [usize; 2] = if number % 2 == 0 { [1, 0] } else { [0, 1] };
        let mut this_round = [0.0; 2];
        for index in order {
            let (rate, per_request) = round(&servers[index], body).await;
            this_round[index] = rate;
            statements[index] = per_request;
            rates[index].push(rate);
        }
        let ratio = this_round[1] / this_round[0];
        ratios.push(ratio);
        println!(
            "  round {number}: {:<16} {:>7.0} req/s   {:<16} {:>7.0} req/s   ratio {ratio:.3}",
            servers[0].name, this_round[0], servers[1].name, this_round[1]
        );
    }
    println!(
        "  median: {} {:.0} req/s, {:.2} statements/request; {} {:.0} req/s, {:.2} \
         statements/request; throughput ratio {:.3}",
        servers[0].name,
        median(rates[0].clone()),
        statements[0],
        servers[1].name,
        median(rates[1].clone()),
        statements[1],
        median(ratios),
    );
}
