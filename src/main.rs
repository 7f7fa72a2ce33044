//! The `justice-counts` command line: a thin layer over the library.

use clap::Parser;
use justice_counts::config::{Cli, Command};
use justice_counts::{app, telemetry};

/// mimalloc rather than the C library's allocator: a request allocates and frees many small
/// values across threads, which glibc's malloc serves slowly and gives back to the system
/// late.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let (global, command) = Cli::parse().into_command();
    // A workbook is read before anything else starts: no runtime, no threads, no logs.
    if let Command::ReadWorkbook(args) = command {
        return justice_counts::ingest::workbook::serve(
            &args.path,
            justice_counts::ingest::workbook::ReaderLimits {
                memory_mb: args.memory_mb,
                cpu_seconds: args.cpu_seconds,
            },
        );
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(global, command))
}

async fn run(
    global: justice_counts::config::GlobalOptions,
    command: Command,
) -> anyhow::Result<()> {
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
        Command::ReadWorkbook(_) => Ok(()),
    };
    telemetry.shutdown();
    result
}
