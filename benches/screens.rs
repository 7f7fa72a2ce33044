//! Latency and statements per request of the frontend's screens under different dataloader
//! strategies, measured in one run on one database (the demo data plus 500 generated agencies).
//!
//! Run with `cargo bench --bench screens`. Figures are medians over repeated requests; latency
//! is given as a ratio to async-graphql's default loader (spawned batches, 1 ms delay),
//! measured in the same run, since the machines are shared and noisy.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::dataloader::DataLoader;
use async_graphql::{Request, Variables};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use justice_counts::auth::tokens::TokenKeys;
use justice_counts::auth::{self, AuthConfig};
use justice_counts::db::{self, StatementCounter};
use justice_counts::graphql::loaders::{Db, RequestCache, new_loader};
use justice_counts::graphql::{self, AppSchema};
use justice_counts::seed;
use serde_json::json;
use support::{BenchDb, ScreenIds, operation};

mod support;

const WARMUP: usize = 3;
const RUNS: usize = 25;

#[derive(Clone, Copy)]
enum Strategy {
    Spawned(Duration),
    RequestDriven,
}

impl Strategy {
    fn name(self) -> String {
        match self {
            Self::Spawned(delay) => format!("spawned, {} µs delay", delay.as_micros()),
            Self::RequestDriven => "request-driven, no delay".into(),
        }
    }
}

struct Screen {
    name: &'static str,
    operation: String,
    variables: serde_json::Value,
}

async fn execute(
    schema: &AppSchema,
    pool: &db::Pool,
    config: &AuthConfig,
    token: &str,
    strategy: Strategy,
    screen: &Screen,
) -> Duration {
    let started = Instant::now();
    let viewer = auth::authenticate(pool, config, Some(&format!("Bearer {token}")))
        .await
        .unwrap();
    let request = Request::new(screen.operation.clone())
        .variables(Variables::from_json(screen.variables.clone()))
        .data(viewer);
    let response = match strategy {
        Strategy::Spawned(delay) => {
            let loader = DataLoader::with_cache(Db::new(pool.clone()), tokio::spawn, RequestCache)
                .delay(delay);
            schema.execute(request.data(loader)).await
        }
        Strategy::RequestDriven => {
            let (loader, tasks) = new_loader(pool.clone());
            tasks.drive(schema.execute(request.data(loader))).await
        }
    };
    assert!(
        response.errors.is_empty(),
        "{}: {:?}",
        screen.name,
        response.errors
    );
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let bench = BenchDb::with_demo().await?;
    let (url, catalogue) = (bench.url.clone(), bench.catalogue.clone());
    let counter = StatementCounter::default();
    let pool = db::connect_counting(&url, 8, Some(counter.clone())).await?;
    eprintln!("generating 500 agencies ...");
    seed::scale::seed(&pool, &catalogue, 500, false).await?;

    let ScreenIds {
        sheriff,
        jail,
        report,
    } = ScreenIds::find(&url).await?;
    let mut conn = AsyncPgConnection::establish(&url).await?;
    let screens = [
        Screen {
            name: "records (65 reports)",
            operation: operation("records"),
            variables: json!({ "agencyId": jail.to_string(), "first": 100 }),
        },
        Screen {
            name: "data entry (jail month)",
            operation: operation("data_entry"),
            variables: json!({ "reportId": report.to_string() }),
        },
        Screen {
            name: "home (sheriff)",
            operation: operation("home"),
            variables: json!({ "agencyId": sheriff.to_string() }),
        },
        Screen {
            name: "team and settings",
            operation: operation("team_and_settings"),
            variables: json!({ "agencyId": sheriff.to_string(), "withEmails": true }),
        },
        Screen {
            name: "public dashboard",
            operation: operation("public_dashboard"),
            variables: json!({ "agencyId": sheriff.to_string() }),
        },
    ];

    let keys = TokenKeys::generate();
    let admin = justice_counts::models::user::User::find_by_email(&mut conn, "admin@example.com")
        .await?
        .unwrap();
    let token = keys.issue(
        admin.id,
        None,
        chrono::Utc::now() + chrono::Duration::hours(1),
    )?;
    let config = AuthConfig::new(keys);
    let schema = graphql::build_schema(graphql::SchemaData {
        pool: pool.clone(),
        catalogue: catalogue.clone(),
        auth: Arc::new(AuthConfig::new(TokenKeys::generate())),
        events: justice_counts::events::EventBus::new(),
        limits: Arc::new(justice_counts::limits::Limits::default()),
    });
    let strategies = [
        Strategy::Spawned(Duration::from_millis(1)),
        Strategy::Spawned(Duration::ZERO),
        Strategy::Spawned(Duration::from_millis(5)),
        Strategy::RequestDriven,
    ];

    println!(
        "{:<26} {:<28} {:>12} {:>10} {:>12}",
        "screen", "loader", "median", "ratio", "statements"
    );
    for screen in &screens {
        let mut baseline = None;
        for strategy in strategies {
            for _ in 0..WARMUP {
                execute(&schema, &pool, &config, &token, strategy, screen).await;
            }
            let before = counter.get();
            let mut samples = Vec::with_capacity(RUNS);
            for _ in 0..RUNS {
                samples.push(execute(&schema, &pool, &config, &token, strategy, screen).await);
            }
            let statements = (counter.get() - before) as f64 / RUNS as f64;
            let median = median(samples);
            let base = *baseline.get_or_insert(median);
            println!(
                "{:<26} {:<28} {:>9.2} ms {:>9.2}x {:>12.1}",
                screen.name,
                strategy.name(),
                median.as_secs_f64() * 1e3,
                median.as_secs_f64() / base.as_secs_f64(),
                statements
            );
        }
    }
    drop(bench);
    Ok(())
}
