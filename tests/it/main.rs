//! Integration tests: the server against a real PostgreSQL, driven over HTTP where a client
//! would be.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod administration;
mod authorization;
mod browser;
mod catalogue;
mod clients;
mod cluster;
mod constraints;
mod credential_cache;
mod docker;
mod editing;
mod feeds;
mod graphql_api;
mod graphql_http_audit;
mod http_conventions;
mod member_cache;
mod migrations;
mod public_cache;
mod read_api;
mod readme;
mod replicas;
mod schema_export;
mod screens;
mod security;
mod seed;
mod server_binary;
mod sign_in;
mod statements;
mod subscriptions;
mod support;
mod tokens;
mod upload_http;
mod uploads;
