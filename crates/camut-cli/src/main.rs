//! The `camut` binary: every role of Camut behind one command.
//!
//! Exit codes: 0 ok, 1 failed (thresholds broken, campaign could not run), 2 usage.

mod daemons;
mod env;
mod manager;
mod output;
mod quickstart;
mod reports;
mod run;
mod shell;
mod target;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// Camut: clouded load testing. Campaigns are JavaScript files; see docs/CAMPAIGN.md.
#[derive(Parser)]
#[command(name = "camut", version, about, disable_help_subcommand = false)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    // Manager: -s/--server and --token before a manager command.
    #[command(flatten)]
    server: manager::Connection,
}

#[derive(Subcommand)]
enum Command {
    /// Test-drive a campaign locally: all iterations of one drone on this machine.
    Run(run::RunArgs),
    /// A small built-in HTTP target for examples, tests and benchmarks.
    Target(target::TargetArgs),
    /// Quick start: server, local deployer, two drones and a target on this machine; a
    /// campaign through new → spawn → deploy → start → results → kill.
    Quickstart(quickstart::QuickstartArgs),
    /// Test-drive a campaign (default: examples/commented.js) against a built-in target.
    Demo(target::DemoArgs),
    /// The server daemon: control API, drone hub, job queue, built-in deployers.
    Server(daemons::ServerArgs),
    /// The drone daemon (what an instance runs): dials the server and runs its share.
    Drone(daemons::DroneArgs),
    /// A deployer as its own gRPC service: `camut deployer local|dummy|ec2 --listen ADDR`.
    Deployer(daemons::DeployerArgs),
    /// Print the shell completion script: `camut completions bash|zsh|fish`.
    Completions(shell::CompletionsArgs),
    /// Write the manual pages (camut(1) to stdout, or every page with `--dir DIR`).
    Man(shell::ManArgs),
    // Manager: new, update, del, list, status, spawn, deploy, start, stop, kill, jobs, logs, results.
    #[command(flatten)]
    Manage(manager::ManageCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Printed: what CAMUT_LOG asks for. Kept for the server's service log: the
    // in-process deployers' lines, whatever CAMUT_LOG says.
    let tap = camut_server::logs::LogTap::default();
    let printed =
        tracing_subscriber::EnvFilter::try_from_env("CAMUT_LOG").unwrap_or_else(|_| "warn".into());
    let deployers = tracing_subscriber::filter::filter_fn(|m| {
        m.target().starts_with("camut_deployer") && *m.level() <= tracing::Level::INFO
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(printed),
        )
        .with(tap.clone().with_filter(deployers))
        .init();
    let result = match cli.command {
        Command::Run(args) => run::main(args),
        Command::Target(args) => target::main(args),
        Command::Quickstart(args) => quickstart::main(args),
        Command::Demo(args) => target::demo(args),
        Command::Server(args) => daemons::server(args, tap),
        Command::Drone(args) => daemons::drone(args),
        Command::Deployer(args) => daemons::deployer(args),
        Command::Completions(args) => shell::completions(Cli::command(), args),
        Command::Man(args) => shell::man(Cli::command(), args),
        Command::Manage(cmd) => manager::main(cli.server, cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("camut: {e:#}");
            ExitCode::from(1)
        }
    }
}
