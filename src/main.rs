//! The `blueshift` binary: parses arguments and hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A programmable edge load balancer for shipping new ML models.
#[derive(Parser)]
#[command(name = "blueshift", version, about, long_about = None)]
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
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = match cli.command {
        Command::Serve {
            policy,
            daemon,
            upgrade,
            pingora_conf,
        } => blueshift::server::serve(blueshift::server::ServeOptions {
            policy,
            daemon,
            upgrade,
            pingora_conf,
        }),
        Command::Check { file } => blueshift::cli::check(&file),
        Command::Demo => blueshift::demo::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
