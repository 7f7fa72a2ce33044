//! The `justice-counts` command line: a thin layer over the library.

use std::io::IsTerminal;

use clap::Parser;
use justice_counts::app;
use justice_counts::config::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|error| anyhow::anyhow!("LOG_LEVEL {filter:?} is not a valid filter: {error}"))?;
    // Colours only for a person at a terminal, never in a file or a log collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (global, command) = Cli::parse().into_command();
    init_logging(&global.log_level, global.log_format)?;
    match command {
        Command::Serve(args) => app::serve(&global, &args).await,
        Command::Migrate => app::migrate(&global).await,
        Command::Seed(args) => app::seed(&global, &args).await,
        Command::Token(command) => app::token(&global, &command).await,
        Command::Schema => {
            app::print_schema();
            Ok(())
        }
    }
}
