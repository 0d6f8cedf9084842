//! `camut target`: a small HTTP server to aim campaigns at in examples, tests and benchmarks.
//!
//! `/` answers a small fixed body; the query shapes the answer: `delay_ms` (wait before
//! answering), `status` (response status), `bytes` (body size). `GET /_camut/stats` answers
//! `{"requests": N, "paths": {…}}`, the requests served so far (stats calls excluded).
//! The test endpoints (cookies, sessions, redirects, gzip, Basic auth, echo) are listed
//! in `camut_target::endpoints`. `--tls` serves HTTPS with a self-signed certificate
//! made at start, written to a file whose path is printed.

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
    /// Serve HTTPS with a self-signed certificate for localhost and 127.0.0.1, made now.
    #[arg(long)]
    tls: bool,
    /// Where to write the certificate (PEM) with --tls (default: a file in the temp dir).
    #[arg(long, requires = "tls")]
    cert_out: Option<std::path::PathBuf>,
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
        let acceptor = if args.tls {
            let identity =
                camut_target::tls::Identity::self_signed().map_err(anyhow::Error::msg)?;
            let path = args.cert_out.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("camut-target-{}.pem", addr.port()))
            });
            std::fs::write(&path, &identity.cert_pem)
                .with_context(|| format!("cannot write the certificate to {}", path.display()))?;
            println!("listening on https://{addr}");
            println!("certificate {}", path.display());
            Some(identity.acceptor().map_err(anyhow::Error::msg)?)
        } else {
            println!("listening on http://{addr}");
            None
        };
        use std::io::Write as _;
        std::io::stdout().flush()?;
        tokio::select! {
            _ = camut_target::serve_with(listener, Arc::new(AtomicU64::new(0)), acceptor) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Arguments of `camut demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// The campaign file to run against the built-in target.
    #[arg(default_value = "examples/commented.js")]
    file: std::path::PathBuf,
}

/// `camut demo`: starts the built-in target on a free loopback port and test-drives a
/// campaign against it (`camut.env.TARGET` is its address), with progress and summary.
pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .context("cannot listen on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    rt.spawn(camut_target::serve(listener, Arc::new(AtomicU64::new(0))));
    eprintln!(
        "camut demo: built-in target on http://{addr}, running {}",
        args.file.display()
    );
    crate::run::main(crate::run::RunArgs::for_demo(
        args.file,
        format!("http://{addr}"),
    ))
}
