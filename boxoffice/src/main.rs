//! The `boxoffice` command: every role of the system in one binary.
//!
//! - `serve`: ingress + engine + snapshotter in one process on the embedded log.
//! - `engine`: the engine runtime alone (Kafka mode; `--role standby` for a hot standby).
//! - `ingress`: the HTTP service alone against Kafka.
//! - `replay`, `snapshot`, `log export`: offline tools.
//! - `token`: mints a user token with the configured secret.
//!
//! Each subcommand lives in its own module; `main` only parses and dispatches.

mod settings;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "boxoffice", version, about = "A seat-booking engine built like an exchange's matching engine")]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = "config/default.toml", env = "BOXOFFICE_CONFIG")]
    config: PathBuf,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run everything in one process on the embedded log.
    Serve {
        #[arg(long)]
        listen: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())).init();
    let settings = match settings::Settings::load(&cli.config) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    };
    match cli.command {
        Commands::Serve { .. } => {
            let _ = settings;
            eprintln!("serve is not built yet");
            std::process::exit(1);
        }
    }
}
