//! `camut-server-bench`: measures the Camut server against simulated drones.
//!
//! The default role runs a real server in this process (SQLite store in a temporary
//! directory, the dummy deployer, a stub inspector), drives campaign "bench" through the
//! control API, and spawns this same binary with `--role drones` as a child process that
//! holds N drone streams over a few HTTP/2 connections. Because the drones live in the
//! child, the parent's resource usage is the server's (plus an idle control client).
//!
//! Measured: the time from the Start call to each drone receiving Start, the server CPU
//! used while every drone ships one statistics delta per second, the server's peak RSS,
//! and that the merged results count exactly the requests the drones sent.

mod drones;
mod report;
mod server;
mod util;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Which side of the benchmark this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The server and the control client; spawns the drones as a child process.
    Server,
    /// The simulated drones (started by the server role).
    Drones,
}

/// Benchmark of the Camut server: Start fan-out and statistics ingestion.
#[derive(Debug, Clone, Parser)]
#[command(name = "camut-server-bench")]
pub struct Args {
    /// Which side to run; `drones` is what the server role spawns.
    #[arg(long, value_enum, default_value = "server")]
    pub role: Role,
    /// Simulated drones (one instance each on the dummy deployer).
    #[arg(long, default_value_t = 1000)]
    pub drones: u32,
    /// Seconds of statistics: each drone sends one delta per second.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// HTTP/2 connections the drone streams are spread over.
    #[arg(long, default_value_t = 10)]
    pub channels: u32,
    /// Drones role: the server address (host:port, 127.0.0.1 only).
    #[arg(long)]
    pub server: Option<String>,
    /// Drones role: the campaign's join token.
    #[arg(long)]
    pub token: Option<String>,
    /// Server role: the store's directory (default: a fresh temporary directory).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Server role: the markdown file the results are written into.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/PERFORMANCE-SERVER.md"))]
    pub doc: PathBuf,
    /// Server role: print the results only, write no file.
    #[arg(long)]
    pub no_doc: bool,
}

fn main() {
    let args = Args::parse();
    let code = match args.role {
        Role::Drones => match drones::main(&args) {
            Ok(()) => 0,
            Err(e) => {
                println!("FAIL {}", util::one_line(&format!("{e:#}")));
                eprintln!("camut-server-bench drones: {e:#}");
                1
            }
        },
        Role::Server => match server::main(&args) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("camut-server-bench: {e:#}");
                2
            }
        },
    };
    std::process::exit(code);
}
