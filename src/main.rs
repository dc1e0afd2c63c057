//! The `blueshift` binary: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Pingora allocates per request (header maps, buffers, futures); mimalloc's thread-local free
// lists make that measurably cheaper than glibc's malloc (see BENCHMARKS.md). The
// `system-alloc` feature keeps glibc's, for heap profilers (benches/conn_memory.sh).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: blueshift::app::allocator::Mimalloc = blueshift::app::allocator::Mimalloc;

/// A programmable edge load balancer for shipping new ML models.
#[derive(Parser)]
#[command(
    name = "blueshift",
    version,
    about,
    long_about = None,
    after_help = "Examples:\n  blueshift demo\n  blueshift check policy.yaml\n  blueshift serve --policy policy.yaml\n  blueshift status\n  BLUESHIFT_ADMIN_TOKEN=... blueshift rollback --admin 10.0.0.5:9901"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a policy file.
    Serve {
        /// The routing policy (YAML).
        #[arg(short, long, value_name = "FILE")]
        policy: PathBuf,
        /// Run in the background.
        #[arg(short, long)]
        daemon: bool,
        /// Take over the sockets of a running blueshift (graceful upgrade; then SIGQUIT the old one).
        #[arg(short, long)]
        upgrade: bool,
        /// Pingora's own server configuration (threads, pid file, upgrade socket, ...).
        #[arg(long, value_name = "FILE")]
        pingora_conf: Option<PathBuf>,
    },
    /// Validate a policy file: a summary and exit 0, or every problem and exit 1.
    Check {
        /// The policy file.
        file: PathBuf,
    },
    /// Start two demo model servers (blue = v1, green = v2) and the proxy on fixed local ports.
    Demo {
        /// Only write the files the demo policy names (its self-signed TLS pair) and exit.
        #[arg(long)]
        prepare: bool,
    },
    /// Show the live state: weights, backend health, rollout, last rollback and reload.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the raw /status JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Send all traffic to the stable color (state rolled_back, reason manual).
    Rollback(AdminArgs),
    /// Put the rollout's candidate at 100% (state promoted).
    Promote(AdminArgs),
    /// Freeze the rollout on its current step; automatic rollback stays armed.
    Pause(AdminArgs),
    /// Continue a paused rollout, or clear rollbacks.
    Resume(AdminArgs),
    /// Re-read the policy file now (it is also watched, and SIGHUP works too).
    Reload(AdminArgs),
}

/// Where the admin API is.
#[derive(clap::Args)]
#[command(after_help = "Admin POSTs send BLUESHIFT_ADMIN_TOKEN as a bearer token when it is set.")]
struct AdminArgs {
    /// Admin API address (host:port).
    #[arg(long, env = "BLUESHIFT_ADMIN", default_value = blueshift::ops::cli::DEFAULT_ADMIN, value_name = "ADDR")]
    admin: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    blueshift::app::logs::init();
    let result = match cli.command {
        Command::Serve {
            policy,
            daemon,
            upgrade,
            pingora_conf,
        } => blueshift::app::server::serve(blueshift::app::server::ServeOptions {
            policy,
            daemon,
            upgrade,
            pingora_conf,
        }),
        Command::Check { file } => blueshift::ops::cli::check(&file),
        Command::Demo { prepare: false } => blueshift::app::demo::run(),
        Command::Demo { prepare: true } => blueshift::app::demo::prepare(),
        Command::Status { admin, json } => blueshift::ops::cli::status(&admin.admin, json),
        Command::Rollback(a) => blueshift::ops::cli::action(&a.admin, "rollback"),
        Command::Promote(a) => blueshift::ops::cli::action(&a.admin, "promote"),
        Command::Pause(a) => blueshift::ops::cli::action(&a.admin, "pause"),
        Command::Resume(a) => blueshift::ops::cli::action(&a.admin, "resume"),
        Command::Reload(a) => blueshift::ops::cli::action(&a.admin, "reload"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
