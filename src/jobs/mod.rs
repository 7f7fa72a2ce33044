//! Background jobs in PostgreSQL, shared by every server process on the database.
//!
//! A job is a row of `jobs`. Workers claim the oldest ready job with `FOR UPDATE SKIP
//! LOCKED` (so two workers, in one process or in two, never take the same job) and hold it
//! by a lease they renew while it runs. A job whose worker stopped — a crash, a restart, a
//! lost connection — keeps its lease only until it runs out, and is then claimed again;
//! handlers are written to be run again safely. A failed job is retried with a growing delay
//! until it has used its attempts, and then given up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{BigInt, Integer, Jsonb, Text};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::db::Pool;

use crate::events::JOBS as CHANNEL;

/// Queues a job (when the current transaction commits) and wakes the workers.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    kind: &str,
    payload: &impl Serialize,
) -> diesel::QueryResult<i64> {
    let payload = serde_json::to_value(payload)
        .map_err(|error| diesel::result::Error::SerializationError(Box::new(error)))?;
    #[derive(QueryableByName)]
    struct Queued {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let queued: Queued = diesel::sql_query(
        "WITH queued AS (INSERT INTO jobs (kind, payload) VALUES ($1, $2) RETURNING id) \
         SELECT id, pg_notify($3, $1) IS NULL AS notified FROM queued",
    )
    .bind::<Text, _>(kind)
    .bind::<Jsonb, _>(payload)
    .bind::<Text, _>(CHANNEL)
    .get_result(conn)
    .await?;
    Ok(queued.id)
}

/// A claimed job.
#[derive(Debug, Clone, QueryableByName)]
pub struct Job {
    /// Its id.
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// What kind of work it is.
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// Its input.
    #[diesel(sql_type = Jsonb)]
    pub payload: serde_json::Value,
    /// How many times it has been claimed, this time included.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// How many claims it may use.
    #[diesel(sql_type = Integer)]
    pub max_attempts: i32,
}

/// Does one kind of job.
pub trait Handler: Send + Sync {
    /// Does the work. May be called again for the same job after a crash: it must be safe
    /// to repeat.
    fn run<'a>(&'a self, job: &'a Job) -> futures_util::future::BoxFuture<'a, anyhow::Result<()>>;

    /// The job failed for good: record that wherever users will see it.
    fn give_up<'a>(
        &'a self,
        job: &'a Job,
        error: &'a str,
    ) -> futures_util::future::BoxFuture<'a, anyhow::Result<()>>;
}

/// How workers behave.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Workers in this process (0: this process runs no jobs).
    pub workers: usize,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// How often an idle worker looks for work without being woken.
    pub poll: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(5),
        }
    }
}

/// The workers of this process.
pub struct Workers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Starts `settings.workers` workers over `handlers` (by job kind). `wake` is notified
    /// when a job is queued.
    pub fn start(
        pool: Pool,
        handlers: HashMap<String, Arc<dyn Handler>>,
        settings: WorkerSettings,
        wake: Arc<Notify>,
    ) -> Self {
        let handlers = Arc::new(handlers);
        let process = std::process::id();
        let tasks = (0..settings.workers)
            .map(|index| {
                let worker = Worker {
                    pool: pool.clone(),
                    handlers: handlers.clone(),
                    settings: settings.clone(),
                    wake: wake.clone(),
                    name: format!("{}:{process}:{index}", hostname()),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        Self { tasks }
    }

    /// Stops the workers at once; jobs they held are taken up again once their lease ends.
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

struct Worker {
    pool: Pool,
    handlers: Arc<HashMap<String, Arc<dyn Handler>>>,
    settings: WorkerSettings,
    wake: Arc<Notify>,
    name: String,
}

impl Worker {
    async fn run(self) {
        let kinds: Vec<String> = self.handlers.keys().cloned().collect();
        loop {
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.claim(&kinds).await {
                Ok(Some(job)) => {
                    self.work(job).await;
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, worker = %self.name, "cannot claim a job"),
            }
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    async fn claim(&self, kinds: &[String]) -> anyhow::Result<Option<Job>> {
        let mut conn = self.pool.get().await?;
        let job: Option<Job> = diesel::sql_query(
            "UPDATE jobs SET state = 'RUNNING', attempts = attempts + 1, worker = $2, \
                 lease_until = now() + $1 * interval '1 millisecond', \
                 started_at = coalesce(started_at, now()) \
             WHERE id = ( \
                 SELECT id FROM jobs \
                 WHERE kind = ANY($3) AND ((state = 'QUEUED' AND run_after <= now()) \
                     OR (state = 'RUNNING' AND lease_until < now())) \
                 ORDER BY run_after, id \
                 FOR UPDATE SKIP LOCKED LIMIT 1) \
             RETURNING id, kind, payload, attempts, max_attempts",
        )
        .bind::<BigInt, _>(millis(self.settings.lease))
        .bind::<Text, _>(&self.name)
        .bind::<diesel::sql_types::Array<Text>, _>(kinds)
        .get_result(&mut *conn)
        .await
        .optional()?;
        Ok(job)
    }

    async fn work(&self, job: Job) {
        let Some(handler) = self.handlers.get(&job.kind).cloned() else {
            return;
        };
        if job.attempts > job.max_attempts {
            let error = "the job was interrupted too many times";
            let _gave_up = self.finish(&job, Err(error.into())).await;
            if let Err(error) = handler.give_up(&job, error).await {
                tracing::error!(%error, job = job.id, "cannot record a failed job");
            }
            return;
        }
        let renew = async {
            let mut every = tokio::time::interval(self.settings.lease / 3);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(error) = self.renew(&job).await {
                    tracing::warn!(%error, job = job.id, "cannot renew a job's lease");
                }
            }
        };
        let span =
            tracing::info_span!("job", id = job.id, kind = %job.kind, attempt = job.attempts);
        let outcome = tokio::select! {
            outcome = handler.run(&job).instrument(span) => outcome,
            () = renew => unreachable_renewal(),
        };
        match outcome {
            Ok(()) => {
                self.finish(&job, Ok(())).await;
            }
            Err(error) => {
                let error = format!("{error:#}");
                tracing::warn!(%error, job = job.id, attempt = job.attempts, "job failed");
                let gave_up = self.finish(&job, Err(error.clone())).await;
                if gave_up && let Err(error) = handler.give_up(&job, &error).await {
                    tracing::error!(%error, job = job.id, "cannot record a failed job");
                }
            }
        }
    }

    async fn renew(&self, job: &Job) -> anyhow::Result<()> {
        let mut conn = self.pool.get().await?;
        diesel::sql_query(
            "UPDATE jobs SET lease_until = now() + $1 * interval '1 millisecond' \
             WHERE id = $2 AND worker = $3 AND state = 'RUNNING'",
        )
        .bind::<BigInt, _>(millis(self.settings.lease))
        .bind::<BigInt, _>(job.id)
        .bind::<Text, _>(&self.name)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Records the outcome; returns whether the job was given up. Only while the job is still
    /// this worker's: one whose lease ran out and that another worker took up is left to that
    /// worker (nothing is recorded and nothing given up).
    async fn finish(&self, job: &Job, outcome: Result<(), String>) -> bool {
        const STILL_MINE: &str = "id = $1 AND worker = $2 AND attempts = $3 AND state = 'RUNNING'";
        let result = async {
            let mut conn = self.pool.get().await?;
            let (statement, error, gives_up) = match &outcome {
                Ok(()) => (
                    format!(
                        "UPDATE jobs SET state = 'SUCCEEDED', finished_at = now(), \
                         lease_until = NULL WHERE {STILL_MINE}"
                    ),
                    None,
                    false,
                ),
                Err(error) if job.attempts < job.max_attempts => (
                    format!(
                        "UPDATE jobs SET state = 'QUEUED', last_error = $4, lease_until = NULL, \
                         run_after = now() + $5 * interval '1 millisecond' WHERE {STILL_MINE}"
                    ),
                    Some(error.as_str()),
                    false,
                ),
                Err(error) => (
                    format!(
                        "UPDATE jobs SET state = 'FAILED', last_error = $4, finished_at = now(), \
                         lease_until = NULL WHERE {STILL_MINE}"
                    ),
                    Some(error.as_str()),
                    true,
                ),
            };
            let backoff = Duration::from_secs(
                2u64.saturating_pow(u32::try_from(job.attempts).unwrap_or(16).min(16)),
            );
            let query = diesel::sql_query(statement)
                .bind::<BigInt, _>(job.id)
                .bind::<Text, _>(&self.name)
                .bind::<Integer, _>(job.attempts);
            let updated = match error {
                None => query.execute(&mut *conn).await?,
                Some(error) => {
                    query
                        .bind::<Text, _>(error)
                        .bind::<BigInt, _>(millis(backoff))
                        .execute(&mut *conn)
                        .await?
                }
            };
            if updated == 0 {
                tracing::warn!(
                    job = job.id,
                    worker = %self.name,
                    "a job's lease ran out while it ran; its outcome is left to the worker that took it up"
                );
                // That worker may have given up while this one still held the work (and so
                // could not be given up on): a failure here ends it after all.
                if outcome.is_err() {
                    #[derive(diesel::QueryableByName)]
                    struct State {
                        #[diesel(sql_type = Text)]
                        state: String,
                    }
                    let now: Option<State> =
                        diesel::sql_query("SELECT state::text AS state FROM jobs WHERE id = $1")
                            .bind::<BigInt, _>(job.id)
                            .get_result(&mut *conn)
                            .await
                            .optional()?;
                    return anyhow::Ok(now.is_some_and(|now| now.state == "FAILED"));
                }
            }
            anyhow::Ok(gives_up && updated == 1)
        }
        .await;
        result.unwrap_or_else(|error| {
            tracing::error!(%error, job = job.id, "cannot record a job's outcome");
            false
        })
    }
}

fn unreachable_renewal() -> anyhow::Result<()> {
    Err(anyhow::anyhow!("the lease renewal stopped"))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
