//! The `firehose` command line: `run`, `migrate`, `check-config`, `replay` (the service's
//! own, from `firehose::cli`) and `sim`, `demo`, `bench` (tooling, from `firehose-sim` and
//! `firehose-bench`). This binary only parses arguments and calls them; it is a package of its
//! own because the service library must not depend on the tooling crates, which depend on it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "firehose",
    version,
    about = "A dedicated chat-bot service for the biggest Twitch channels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service.
    Run {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the Twitch-protocol chat simulator on its own.
    Sim(firehose_sim::SimArgs),
    /// Simulator and service in one process on the embedded defaults, with a live summary.
    Demo(firehose_bench::DemoArgs),
    /// Load-generator benchmark: a scenario's traffic through simulator and service, with a report.
    Bench(firehose_bench::BenchArgs),
    /// Run the engine over recorded chat and print every action it would take (JSON lines).
    Replay(firehose::cli::ReplayArgs),
    /// Bring the configured state store's schema up to date (ScyllaDB/Cassandra or embedded).
    Migrate {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the HTTP API's OpenAPI 3.1 description (as served at `/openapi.json` and committed
    /// as `docs/openapi.json`).
    Openapi,
    /// Check a configuration file: exit 0 when valid, else name the bad key and why.
    CheckConfig {
        /// Configuration file (TOML).
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    firehose::cli::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config } => firehose::cli::run(&config).await,
            Command::Sim(args) => firehose_sim::sim(args).await,
            Command::Demo(args) => firehose_bench::demo(args).await,
            Command::Bench(args) => firehose_bench::bench(args).await,
            Command::Replay(args) => firehose::cli::replay(args),
            Command::Migrate { config } => firehose::cli::migrate(&config).await,
            Command::CheckConfig { path } => firehose::cli::check_config(&path),
            Command::Openapi => {
                print!("{}", firehose::http::openapi::document_json());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
