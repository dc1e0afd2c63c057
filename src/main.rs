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
        /// Show only this route.
        #[arg(long, value_name = "NAME")]
        route: Option<String>,
        /// Print the raw /status JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Send all of a route's traffic to its stable color (state rolled_back, reason manual).
    Rollback(RouteArgs),
    /// Put a route's rollout candidate at 100% (state promoted).
    Promote(RouteArgs),
    /// Freeze a route's rollout on its current step; automatic rollback stays armed.
    Pause(RouteArgs),
    /// Continue a route's paused rollout, or clear its rollbacks.
    Resume(RouteArgs),
    /// Re-read the policy file now (it is also watched, and SIGHUP works too).
    Reload(AdminArgs),
}

/// Where the admin API is, and which route an action is about.
#[derive(clap::Args)]
struct RouteArgs {
    #[command(flatten)]
    admin: AdminArgs,
    /// The route (required when the policy has two or more).
    #[arg(long, value_name = "NAME")]
    route: Option<String>,
}

/// Where the admin API is.
#[derive(clap::Args)]
#[command(after_help = "Admin POSTs send BLUESHIFT_ADMIN_TOKEN as a bearer token when it is set.")]
struct AdminArgs {
    /// Admin API address (host:port).
    #[arg(long, env = "BLUESHIFT_ADMIN", default_value = blueshift::ops::cli::DEFAULT_ADMIN, value_name = "ADDR")]
    admin: String,
}

fn act(a: RouteArgs, name: &str) -> Result<(), blueshift::Error> {
    blueshift::ops::cli::action(&a.admin.admin, name, a.route.as_deref())
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
        Command::Status { admin, route, json } => {
            blueshift::ops::cli::status(&admin.admin, json, route.as_deref())
        }
        Command::Rollback(a) => act(a, "rollback"),
        Command::Promote(a) => act(a, "promote"),
        Command::Pause(a) => act(a, "pause"),
        Command::Resume(a) => act(a, "resume"),
        Command::Reload(a) => blueshift::ops::cli::action(&a.admin, "reload", None),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
