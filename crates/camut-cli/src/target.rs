//! `camut target`: a small HTTP server to aim campaigns at in examples, tests and benchmarks.
//!
//! `/` answers a small fixed body; the query shapes the answer: `delay_ms` (wait before
//! answering), `status` (response status), `bytes` (body size). `GET /_camut/stats` answers
//! `{"requests": N}`, the requests served so far (stats calls excluded).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

/// Arguments of `camut target`.
#[derive(clap::Args)]
pub struct TargetArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn main(args: TargetArgs) -> anyhow::Result<ExitCode> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("listening on http://{addr}");
        use std::io::Write as _;
        std::io::stdout().flush()?;
        tokio::select! {
            _ = camut_target::serve(listener, Arc::new(AtomicU64::new(0))) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}

