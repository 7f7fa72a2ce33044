//! The `justice-counts` command line: a thin layer over the library.

use clap::Parser;
use justice_counts::config::{Cli, Command};
use justice_counts::{app, telemetry};

/// mimalloc rather than the C library's allocator: a request allocates and frees many small
/// values across threads, which glibc's malloc serves slowly and gives back to the system
/// late.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (global, command) = Cli::parse().into_command();
    let telemetry = telemetry::init(
        &global.log_level,
        global.log_format,
        global.otlp_endpoint.as_deref(),
    )?;
    let result = match command {
        Command::Serve(args) => app::serve(&global, &args).await,
        Command::Migrate => app::migrate(&global).await,
        Command::Seed(args) => app::seed(&global, &args).await,
        Command::Token(command) => app::token(&global, &command).await,
        Command::Ingest(args) => app::ingest(&global, &args).await,
        Command::Export(args) => app::export(&global, &args).await,
        Command::Schema => {
            app::print_schema();
            Ok(())
        }
    };
    telemetry.shutdown();
    result
}
