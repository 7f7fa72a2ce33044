//! A GraphQL server for criminal-justice agencies' metric reporting.
//!
//! Agencies report a standard catalogue of metrics month by month and year by year, edit them
//! as drafts and publish them to a public dashboard. This crate holds the whole server; the
//! `justice-counts` binary is a thin command line over it.
//!
//! - [`config`]: the command line and environment.
//! - [`app`]: what each command does.
//! - [`db`]: pool, migrations, schema and the private PostgreSQL cluster.
//! - [`models`]: rows and queries, one file per table family.
//! - [`catalogue`]: the standard metric catalogue and its sync into the database.
//! - [`ingest`]: bulk upload of spreadsheets: layout, rules, staging and applying.
//! - [`jobs`]: background jobs in PostgreSQL, shared by every server process.
//! - [`graphql`]: the GraphQL schema, one file per domain type, and the dataloaders.
//! - [`http`]: the axum router.
//! - [`seed`]: demo and benchmark data.
//! - [`limits`]: every limit on what comes from outside, with its default.
//! - [`metrics`]: the process's Prometheus metrics.
//! - [`telemetry`]: logs, and traces over OTLP.
//! - [`error`]: the API's error type and codes.

pub mod app;
pub mod auth;
pub mod catalogue;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub mod export;
pub mod graphql;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod limits;
pub mod memo;
pub mod metrics;
pub mod models;
pub mod reports;
pub mod seed;
pub mod telemetry;
