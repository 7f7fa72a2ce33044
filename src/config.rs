//! Configuration: the command line, where every option can also be set by an environment
//! variable (twelve-factor style).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::http::cors::CorsSettings;
use crate::limits::Limits;

/// GraphQL server for criminal-justice agencies' metric reporting and public dashboards.
#[derive(Debug, Parser)]
#[command(
    name = "justice-counts",
    version,
    about,
    propagate_version = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Database and logging options shared by every command.
    #[command(flatten)]
    pub global: GlobalOptions,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The options of `serve`, for when the command is omitted.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Cli {
    /// The command to run: the one given, or `serve` with the options given without one.
    pub fn into_command(self) -> (GlobalOptions, Command) {
        let command = self.command.unwrap_or(Command::Serve(self.serve));
        (self.global, command)
    }
}

/// Options shared by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// PostgreSQL server to use. When unset, a private cluster is started in the data directory.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for the private PostgreSQL cluster and other local state.
    #[arg(long, env = "DATA_DIR", global = true, default_value = ".data")]
    pub data_dir: PathBuf,

    /// Directory holding initdb, pg_ctl and postgres, when they should not be searched for.
    #[arg(long, env = "PG_BIN_DIR", global = true)]
    pub pg_bin_dir: Option<PathBuf>,

    /// Largest number of database connections kept open.
    #[arg(long, env = "DATABASE_POOL_SIZE", global = true, default_value_t = 16)]
    pub pool_size: u32,

    /// Ed25519 private key (hex) that signs access tokens. Default: the key file in the data
    /// directory, generated on first use. Servers sharing a database must share the key.
    #[arg(long, env = "TOKEN_ROOT_KEY", global = true, hide_env_values = true)]
    pub token_root_key: Option<String>,

    /// File holding the token root key in hex (instead of TOKEN_ROOT_KEY).
    #[arg(long, env = "TOKEN_ROOT_KEY_FILE", global = true)]
    pub token_root_key_file: Option<PathBuf>,

    /// Log filter: a level (`info`) or per-module directives (`info,justice_counts=debug`).
    #[arg(long, env = "LOG_LEVEL", global = true, default_value = "info")]
    pub log_level: String,

    /// Log line format.
    #[arg(long, env = "LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// OpenTelemetry collector to export traces to over OTLP/HTTP (`http://collector:4318`).
    /// Unset: no traces are exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The commands.
#[derive(Debug, Clone, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once at start-up; boxing would only obscure the options"
)]
pub enum Command {
    /// Serve the GraphQL API and GraphiQL (the default command).
    Serve(ServeArgs),
    /// Apply pending database migrations and sync the metric catalogue, then exit.
    Migrate,
    /// Load the demo data set, or with --scale a large generated one for benchmarks.
    Seed(SeedArgs),
    /// Print the GraphQL schema (SDL) to standard output.
    Schema,
    /// Issue, narrow and inspect access tokens (for internal tools).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Ingest a spreadsheet for an agency as an automated upload, and print the result as
    /// JSON (exit status 1 when the file has errors).
    Ingest(IngestArgs),
    /// Write agencies' values as CSV or JSON Lines (or one agency's system as a spreadsheet in
    /// the bulk-upload layout), from one snapshot; prints the cursor for the next `--since`
    /// on standard error.
    Export(ExportArgs),
    /// Reads a workbook for the server's ingest, under limits (the server starts it).
    #[command(hide = true)]
    ReadWorkbook(ReadWorkbookArgs),
}

/// Options of `read-workbook`.
#[derive(Debug, Clone, Args)]
pub struct ReadWorkbookArgs {
    /// Address space of this process, in MiB.
    #[arg(long, value_parser = clap::value_parser!(u32).range(256..=65_536))]
    pub memory_mb: u32,
    /// Processor time of this process, in seconds.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub cpu_seconds: u32,
    /// The workbook.
    pub path: PathBuf,
}

/// How `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// A workbook in the bulk-upload layout (one agency and `--system`).
    Xlsx,
}

/// Options of `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// The agencies (repeat, or separate with commas); all agencies when none is given.
    #[arg(long = "agency", env = "EXPORT_AGENCIES", value_delimiter = ',')]
    pub agencies: Vec<i32>,
    /// Published values of agencies with a public dashboard only (the public feed).
    #[arg(long, env = "EXPORT_PUBLISHED_ONLY")]
    pub published_only: bool,
    /// The format.
    #[arg(long, env = "EXPORT_FORMAT", value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
    /// Only the changes after this cursor (from an earlier export or feed).
    #[arg(long, env = "EXPORT_SINCE")]
    pub since: Option<String>,
    /// Only metrics of this system (required for `xlsx`).
    #[arg(long, env = "EXPORT_SYSTEM")]
    pub system: Option<String>,
    /// For `xlsx`: every metric in one sheet.
    #[arg(long, env = "EXPORT_SINGLE_PAGE")]
    pub single_page: bool,
    /// Where to write; standard output when not given.
    #[arg(long, env = "EXPORT_OUT")]
    pub out: Option<PathBuf>,
}

/// Options of `ingest`.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// The CSV, XLSX or XLS file.
    pub file: PathBuf,
    /// The agency's id.
    #[arg(long, env = "INGEST_AGENCY")]
    pub agency: i32,
    /// The system the file reports for (LAW_ENFORCEMENT, JAILS, ...).
    #[arg(long, env = "INGEST_SYSTEM")]
    pub system: String,
    /// Compare with the stored data and report what would change, writing nothing.
    #[arg(long, env = "INGEST_DRY_RUN")]
    pub dry_run: bool,
}

/// The `token` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TokenCommand {
    /// Issue an access token for a user, without a session (it cannot be renewed).
    Issue {
        /// The user's email address.
        #[arg(long, env = "TOKEN_EMAIL")]
        email: String,
        /// How long the token is valid: 90s, 15m, 8h, 7d.
        #[arg(long, env = "TOKEN_LIFETIME", default_value = "1h", value_parser = positive_duration)]
        lifetime: Duration,
    },
    /// Narrow a token offline by appending checks; prints the new token.
    Attenuate {
        /// The token to narrow.
        #[arg(long, env = "TOKEN")]
        token: String,
        /// Allow reads only.
        #[arg(long, env = "TOKEN_READ_ONLY")]
        read_only: bool,
        /// Allow only these agencies (comma-separated ids).
        #[arg(long = "agency", env = "TOKEN_AGENCIES", value_delimiter = ',')]
        agencies: Vec<i32>,
        /// Expire sooner: 90s, 15m, 8h, 7d from now.
        #[arg(long, env = "TOKEN_EXPIRES_IN", value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// Print the Datalog blocks of a token, after checking its signature.
    Inspect {
        /// The token to inspect.
        #[arg(long, env = "TOKEN")]
        token: String,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::auth::tokens::parse_duration(text)
}

/// A duration of 1 ms or more.
fn positive_duration(text: &str) -> Result<Duration, String> {
    crate::auth::tokens::parse_duration_of_at_least(text, Duration::from_millis(1))
}

/// How often something is looked for: 100 ms or more.
fn poll_duration(text: &str) -> Result<Duration, String> {
    crate::auth::tokens::parse_duration_of_at_least(text, Duration::from_millis(100))
}

/// A job's lease: 1 s or more (its worker shows a sign of life every third of it).
fn lease_duration(text: &str) -> Result<Duration, String> {
    crate::auth::tokens::parse_duration_of_at_least(text, Duration::from_secs(1))
}

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// Lifetime of access tokens: 90s, 15m, 8h.
    #[arg(long, env = "ACCESS_TOKEN_LIFETIME", default_value = "15m", value_parser = positive_duration)]
    pub access_token_lifetime: Duration,

    /// Lifetime of a session without renewal: 30d.
    #[arg(long, env = "SESSION_LIFETIME", default_value = "30d", value_parser = positive_duration)]
    pub session_lifetime: Duration,

    /// Streaming read replicas of the database (comma-separated URLs): queries read from
    /// them in turn, except a user's reads just after a write of theirs until a replica has
    /// replayed it.
    #[arg(
        long,
        env = "DATABASE_REPLICA_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub database_replica_urls: Vec<String>,

    /// Whether the server's own statements run on generic plans (PostgreSQL's
    /// `plan_cache_mode = force_generic_plan`), made once per connection and statement,
    /// rather than planned anew for each execution's values. An ingest's transactions leave
    /// the choice to PostgreSQL.
    #[arg(long, env = "DATABASE_GENERIC_PLANS", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub generic_plans: bool,

    /// Limits on requests, documents, rates and connections.
    #[command(flatten)]
    pub limits: Limits,

    /// Which web origins may call the API from a browser.
    #[command(flatten)]
    pub cors: CorsSettings,

    /// Background jobs and automated uploads.
    #[command(flatten)]
    pub background: BackgroundArgs,
}

/// Background jobs (spreadsheet ingests) and the drop directory of automated uploads.
#[derive(Debug, Clone, Args)]
pub struct BackgroundArgs {
    /// Jobs this process runs at once (0: it runs none, other processes on the database do).
    #[arg(long, env = "JOB_WORKERS", default_value_t = 2)]
    pub job_workers: usize,

    /// How long a running job stays claimed without a sign of life from its worker; after
    /// that another worker takes it up.
    #[arg(long, env = "JOB_LEASE", default_value = "60s", value_parser = lease_duration)]
    pub job_lease: Duration,

    /// How often an idle worker looks for jobs (it is also woken when one is queued).
    #[arg(long, env = "JOB_POLL", default_value = "5s", value_parser = poll_duration)]
    pub job_poll: Duration,

    /// Spreadsheet rows read per batch (one transaction each).
    #[arg(long, env = "INGEST_BATCH_ROWS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub ingest_batch_rows: u32,

    /// Longest one SQL statement of an ingest may run.
    #[arg(long, env = "INGEST_STATEMENT_TIMEOUT", default_value = "10m", value_parser = positive_duration)]
    pub ingest_statement_timeout: Duration,

    /// Memory, in MiB, one sort or hash of an ingest's statements may use before it spills to
    /// disk (PostgreSQL's `work_mem`, set for the ingest's transactions only).
    #[arg(long, env = "INGEST_WORK_MEM_MB", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub ingest_work_mem_mb: u32,

    /// Address space, in MiB, of the process that reads an uploaded workbook (XLSX, XLS):
    /// a workbook that needs more is refused as unreadable, and the server is unaffected.
    #[arg(long, env = "WORKBOOK_MEMORY_MB", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(256..=65_536))]
    pub workbook_memory_mb: u32,

    /// Processor time, in seconds, the process that reads an uploaded workbook may use.
    #[arg(long, env = "WORKBOOK_CPU_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub workbook_cpu_seconds: u32,

    /// Drop directory of automated uploads: files put in `<dir>/<agency id>/<system>/` are
    /// ingested, then moved to `done/` or `failed/` beside their result.
    #[arg(long, env = "INGEST_DIR")]
    pub ingest_dir: Option<PathBuf>,

    /// How often the drop directory is scanned.
    #[arg(long, env = "INGEST_DIR_POLL", default_value = "5s", value_parser = poll_duration)]
    pub ingest_dir_poll: Duration,

    /// How long a finished dry run keeps the values it staged (its summary and messages stay).
    #[arg(long, env = "DRY_RUN_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub dry_run_retention: Duration,

    /// How long finished background jobs stay recorded.
    #[arg(long, env = "JOB_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub job_retention: Duration,
}

impl Default for BackgroundArgs {
    fn default() -> Self {
        Self {
            job_workers: 2,
            job_lease: Duration::from_secs(60),
            job_poll: Duration::from_secs(5),
            ingest_batch_rows: 10_000,
            ingest_statement_timeout: Duration::from_secs(600),
            ingest_work_mem_mb: 64,
            workbook_memory_mb: 2048,
            workbook_cpu_seconds: 300,
            ingest_dir: None,
            ingest_dir_poll: Duration::from_secs(5),
            dry_run_retention: Duration::from_secs(7 * 86_400),
            job_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            access_token_lifetime: Duration::from_secs(15 * 60),
            session_lifetime: Duration::from_secs(30 * 86_400),
            database_replica_urls: Vec::new(),
            generic_plans: true,
            limits: Limits::default(),
            cors: CorsSettings::default(),
            background: BackgroundArgs::default(),
        }
    }
}

/// Options of `seed`.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    /// Instead of the demo data, generate N × 100 agencies with five years of reports.
    #[arg(long, env = "SEED_SCALE", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub scale: Option<u32>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_option_can_be_set_from_the_environment() {
        fn check(command: &clap::Command, path: &str) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_positional() || matches!(id, "help" | "version") {
                    continue;
                }
                assert!(
                    arg.get_env().is_some(),
                    "{path} --{id} has no environment variable"
                );
            }
            // Not the server's own reader of workbooks: only the server starts it, with
            // arguments.
            for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&Cli::command(), "justice-counts");
    }

    #[test]
    fn limits_default_alike_from_the_command_line_and_in_code() {
        let cli = Cli::try_parse_from(["justice-counts"]).unwrap();
        assert_eq!(
            format!("{:?}", cli.serve.limits),
            format!("{:?}", Limits::default())
        );
    }

    #[test]
    fn time_limits_polls_and_leases_of_zero_are_refused() {
        for (option, value) in [
            ("--job-lease", "0s"),
            ("--job-lease", "500ms"),
            ("--job-poll", "0s"),
            ("--ingest-dir-poll", "10ms"),
            ("--request-timeout", "0s"),
            ("--feed-idle-timeout", "0ms"),
            ("--database-pool-wait", "0s"),
        ] {
            assert!(
                Cli::try_parse_from(["justice-counts", option, value]).is_err(),
                "{option} {value}"
            );
        }
        assert!(Cli::try_parse_from(["justice-counts", "--job-lease", "1s"]).is_ok());
        assert!(Cli::try_parse_from(["justice-counts", "--public-max-age", "0s"]).is_ok());
    }

    #[test]
    fn the_bare_binary_takes_the_options_of_serve() {
        let cli = Cli::try_parse_from(["justice-counts", "--listen", "127.0.0.1:9999"]).unwrap();
        let (_, command) = cli.into_command();
        let Command::Serve(args) = command else {
            panic!("serve")
        };
        assert_eq!(args.listen.port(), 9999);
    }

    #[test]
    fn every_command_has_help() {
        let mut command = Cli::command();
        for name in ["serve", "migrate", "seed", "schema", "token"] {
            let sub = command.find_subcommand_mut(name).expect("command exists");
            let help = sub.render_help().to_string();
            assert!(help.contains("Usage:"), "{name}: {help}");
        }
    }
}
