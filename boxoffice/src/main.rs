//! The `boxoffice` command: every role of the system in one binary.
//!
//! - `serve`: ingress + engine + snapshotter in one process on the embedded log.
//! - `engine`: the engine runtime alone (Kafka mode; `--role standby` for a hot standby).
//! - `ingress`: the HTTP service alone against Kafka.
//! - `replay`, `snapshot`, `log export`: offline tools.
//! - `promote`: makes a replica primary (a `Promote` record in the requests log).
//! - `token`: mints a user token with the configured secret.
//!
//! Each subcommand lives in its own module; `main` only parses and dispatches.
//! `scheduling`: the serving commands' threads under `SCHED_BATCH` but HTTP's, and no
//! transparent huge pages.

mod cmd_effects;
mod cmd_engine;
mod cmd_ingress;
mod cmd_loadgen;
mod cmd_log;
mod cmd_promote;
mod cmd_replay;
mod cmd_serve;
mod cmd_snapshot;
mod cmd_token;
mod log_export;
mod operator_http;
mod scheduling;
mod settings;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// mimalloc, not glibc's malloc: buffers made on one thread and freed on another (a
/// request's bytes, an outcome) are the write path's common case, and glibc's allocator
/// spent a sixth of `serve`'s CPU on them (BENCHMARKS.md, "HTTP hold + confirm"), and a
/// fifth of the engine thread's time in the standard mix ("Engine core").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "boxoffice",
    version,
    about = "A seat-booking engine built like an exchange's matching engine"
)]
struct Cli {
    /// Configuration file.
    /// A configuration file over the built-in defaults (`config/default.toml` is built
    /// in); `BOXOFFICE_*` variables override both.
    #[arg(long, global = true, env = "BOXOFFICE_CONFIG")]
    config: Option<PathBuf>,
    /// Development mode: accept the demo secrets of `config/default.toml` and serve the
    /// development-only endpoints. Without it a demo secret stops `serve`, `engine` and
    /// `ingress` at start-up, naming it.
    #[arg(long, global = true)]
    dev: bool,
    /// The shard that `engine`, `promote`, `replay`, `snapshot` and `log` act on (0 to
    /// `shards` - 1; default 0): its topics, its data directory (`<data_dir>/shard-K`
    /// for K > 0) and its engine's place. `serve` and `ingress` serve every shard.
    #[arg(long, global = true)]
    shard: Option<u32>,
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
    /// The HTTP API alone, against the Kafka topics (the engine runs elsewhere).
    Ingress {
        #[arg(long)]
        listen: Option<String>,
        /// Where this ingress keeps its state (idempotency index, read-model snapshots,
        /// under `ingress/`; default: `data_dir`). Two ingresses on one machine need two.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// The effects worker alone (signed webhook deliveries), against the Kafka topics: every
    /// shard's outcomes topic and the control topic. `serve` runs one itself.
    Effects {
        /// Where the worker keeps its position, backlog and delivery log (under
        /// `effects/`; default: `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The worker's listener: `/healthz`, `/metrics`, and the webhooks' delivery log
        /// and re-sends (default: `effects.listen`; port 0 picks one).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Print a user token (HS256 JWT) signed with the configured secret.
    Token {
        #[arg(long)]
        user: String,
        /// How long the token is valid.
        #[arg(long, default_value_t = 86_400)]
        ttl_seconds: u64,
    },
    /// Load tester: scenarios, open-loop load, record and replay, verification
    /// (loadgen/REHEARSE.md).
    Loadgen(Box<loadgen::Args>),
    /// Prints the effective configuration (defaults, file, environment), secrets masked.
    Config,
    /// The engine runtime alone on the configured log (`--role standby` for a hot standby).
    Engine {
        /// The role while the requests log names no primary; after a `Promote` record, the
        /// log decides.
        #[arg(long, value_enum, default_value_t = EngineRole::Primary)]
        role: EngineRole,
        /// This replica's name (default: `engine.node`).
        #[arg(long)]
        node: Option<String>,
        /// Operator endpoints' address (default: `engine.operator_listen`; port 0 picks one).
        #[arg(long)]
        operator_listen: Option<String>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Make the replica NODE the primary: appends a `Promote` record to the requests log.
    /// Every replica applies it at the same offset; NODE starts publishing there and the
    /// old primary steps down.
    Promote {
        #[arg(long)]
        node: String,
        /// Wait up to this long for NODE's first outcome (the Promote record's) in the
        /// outcomes log; 0 returns once the record is durable.
        #[arg(long, default_value_t = 30)]
        wait_seconds: u64,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Apply the requests log from offset 0 (or the newest snapshot); print the state hash.
    Replay {
        #[arg(long)]
        from_snapshot: bool,
        /// Last offset to apply, inclusive (default: the log's last record).
        #[arg(long)]
        to: Option<u64>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// List, inspect or verify snapshots.
    Snapshot {
        #[command(subcommand)]
        command: cmd_snapshot::SnapshotCommand,
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Export a log as JSON lines.
    Log {
        #[command(subcommand)]
        command: cmd_log::LogCommand,
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum EngineRole {
    Primary,
    Standby,
}

/// Runs one of the engine tools; any error ends the process with status 1.
fn exit_on_error(result: Result<(), cmd_engine::ToolError>) {
    if let Err(error) = result {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut settings = match settings::Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
    };
    settings.development = cli.dev;
    if let Err(error) = settings
        .check_shards()
        .and_then(|()| settings.check_log())
        .and_then(|()| settings.engine_config().validate())
    {
        eprintln!("error: {error}");
        std::process::exit(2);
    }
    let for_shard = matches!(
        cli.command,
        Commands::Engine { .. }
            | Commands::Promote { .. }
            | Commands::Replay { .. }
            | Commands::Snapshot { .. }
            | Commands::Log { .. }
    );
    if cli.shard.is_some() && !for_shard {
        eprintln!("error: --shard applies to engine, promote, replay, snapshot and log; serve and ingress serve every shard");
        std::process::exit(2);
    }
    // The data directory given on the command line, then the shard's place under it.
    let data_dir_arg = match &cli.command {
        Commands::Engine { data_dir, .. }
        | Commands::Promote { data_dir, .. }
        | Commands::Replay { data_dir, .. }
        | Commands::Snapshot { data_dir, .. }
        | Commands::Log { data_dir, .. } => data_dir.clone(),
        _ => None,
    };
    if for_shard {
        if let Some(data_dir) = data_dir_arg {
            settings.data_dir = data_dir;
        }
        settings = match settings.for_shard(cli.shard.unwrap_or(0)) {
            Ok(settings) => settings,
            Err(error) => {
                eprintln!("error: {error}");
                std::process::exit(2);
            }
        };
    }
    let serves = matches!(
        cli.command,
        Commands::Serve { .. }
            | Commands::Engine { .. }
            | Commands::Ingress { .. }
            | Commands::Effects { .. }
    );
    if serves {
        if let Err(error) = settings.check_secrets() {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
        if settings.development {
            tracing::warn!(
                "development mode: demo secrets are accepted and development-only endpoints exist"
            );
        }
    }
    match cli.command {
        Commands::Serve { listen, data_dir } => {
            exit_on_error(cmd_serve::run(&settings, listen, data_dir))
        }
        Commands::Ingress { listen, data_dir } => {
            let mut settings = settings;
            if let Some(data_dir) = data_dir {
                settings.data_dir = data_dir;
            }
            exit_on_error(cmd_ingress::run(&settings, listen))
        }
        Commands::Effects { data_dir, listen } => {
            let mut settings = settings;
            if let Some(data_dir) = data_dir {
                settings.data_dir = data_dir;
            }
            if let Some(listen) = listen {
                settings.effects.listen = listen;
            }
            exit_on_error(cmd_effects::run(&settings))
        }
        Commands::Token { user, ttl_seconds } => {
            exit_on_error(cmd_token::run(&settings, &user, ttl_seconds))
        }
        Commands::Loadgen(args) => cmd_loadgen::run(*args),
        Commands::Config => print!("{}", settings.effective_toml()),
        Commands::Engine {
            role,
            node,
            operator_listen,
            data_dir: _,
        } => {
            let role = match role {
                EngineRole::Primary => runtime::Role::Primary,
                EngineRole::Standby => runtime::Role::Standby,
            };
            let mut settings = settings;
            if let Some(node) = node {
                settings.engine.node = node;
            }
            if let Some(listen) = operator_listen {
                settings.engine.operator_listen = listen;
            }
            exit_on_error(cmd_engine::run(&settings, &settings.data_dir, role));
        }
        Commands::Promote {
            node,
            wait_seconds,
            data_dir: _,
        } => exit_on_error(cmd_promote::run(
            &settings,
            &settings.data_dir,
            &node,
            std::time::Duration::from_secs(wait_seconds),
        )),
        Commands::Replay {
            from_snapshot,
            to,
            data_dir: _,
        } => {
            exit_on_error(cmd_replay::run(
                &settings,
                &settings.data_dir,
                from_snapshot,
                to,
            ));
        }
        Commands::Snapshot { command, .. } => {
            exit_on_error(cmd_snapshot::run(&settings, &settings.data_dir, command));
        }
        Commands::Log { command, .. } => {
            exit_on_error(cmd_log::run(&settings, &settings.data_dir, command));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ingress` keeps state since it restarts from snapshots: like `serve` and `engine`,
    /// it takes the directory on the command line (fix: it could only use `data_dir`
    /// from the configuration, `./data` by default).
    #[test]
    fn ingress_takes_a_data_dir_like_serve_and_engine() {
        let cli = Cli::try_parse_from(["boxoffice", "ingress", "--data-dir", "/var/lib/ingress"])
            .expect("parses");
        match cli.command {
            Commands::Ingress { data_dir, .. } => {
                assert_eq!(data_dir, Some(PathBuf::from("/var/lib/ingress")));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["boxoffice", "ingress", "--data-dir"]).is_err());
    }
}
