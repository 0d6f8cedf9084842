//! `camut quickstart`: the whole workflow on one machine with nothing else running — a
//! server (embedded store, local deployer), two drone processes, the built-in target,
//! and a campaign taken through new → spawn → deploy → start → results → kill.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use camut::{v1, Client};
use camut_server::{Core, CoreParts, Store};
use tokio::net::TcpListener;

use crate::daemons::{builtin, EngineInspector};
use crate::manager::{follow_job, show};

/// The address campaign files use for the built-in target; the quick start points it at
/// the target it starts.
const DEFAULT_TARGET: &str = "http://127.0.0.1:8080";

/// Arguments of `camut quickstart`.
#[derive(clap::Args)]
pub struct QuickstartArgs {
    /// The campaign file (its `http://127.0.0.1:8080` is pointed at the built-in target).
    #[arg(default_value = "examples/quickstart.js")]
    file: PathBuf,
    /// Keep the server running at the end (its address is printed) instead of killing
    /// the campaign and stopping.
    #[arg(long)]
    keep: bool,
}

pub fn main(args: QuickstartArgs) -> anyhow::Result<ExitCode> {
    let source = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let file = args
        .file
        .file_name()
        .map_or("campaign.js".into(), |f| f.to_string_lossy().into_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let target = TcpListener::bind("127.0.0.1:0").await?;
        let target_url = format!("http://{}", target.local_addr()?);
        tokio::spawn(camut_target::serve(target, Arc::new(AtomicU64::new(0))));
        let data_dir =
            std::env::temp_dir().join(format!("camut-quickstart-{}", std::process::id()));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut deployers = std::collections::BTreeMap::new();
        deployers.insert("local".to_string(), builtin("local", None, &data_dir)?);
        let core = Core::new(CoreParts {
            store: Store::open(&data_dir)?,
            deployers,
            default_deployer: "local".into(),
            public_url: format!("http://{addr}"),
            inspector: Arc::new(EngineInspector),
            drone_timeout: Duration::from_secs(10),
            server_id: "camut-quickstart".into(),
            default_tsdb: None,
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(camut_server::serve(core, None, camut_server::config::DEFAULT_UI_PATH, listener, async {
            let _ = stop_rx.await;
        }));
        println!(
            "camut quickstart: server on http://{addr} (data in {}), target on {target_url}",
            data_dir.display()
        );
        let source = source.replace(DEFAULT_TARGET, &target_url);
        let client = Client::connect(&addr.to_string(), None).await?;
        let code = workflow(&client, &file, &source).await;
        if args.keep {
            println!("\nthe server stays up: camut -s {addr} list, console http://{addr}/ui   (Ctrl-C to stop)");
            let _ = tokio::signal::ctrl_c().await;
        }
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        let _ = std::fs::remove_dir_all(&data_dir);
        code
    })
}

async fn step(client: &Client, id: &str, kind: &str) -> anyhow::Result<v1::Job> {
    println!("\n$ camut {kind} {id}");
    let job = match kind {
        "spawn" => client.spawn(id).await?,
        "deploy" => client.deploy(id).await?,
        "start" => client.start(id).await?,
        _ => client.kill(id).await?,
    };
    let end = follow_job(client, job, id, false).await?;
    anyhow::ensure!(
        end.state() == v1::JobState::Complete,
        "{}",
        show::job_failure(&end)
    );
    Ok(end)
}

async fn workflow(client: &Client, file: &str, source: &str) -> anyhow::Result<ExitCode> {
    println!("\n$ camut new {file}");
    let campaign = client.create(file, source).await?;
    let id = campaign.id.clone();
    println!(
        "campaign {id}: {} drones × {} users",
        campaign.drones, campaign.users
    );
    step(client, &id, "spawn").await?;
    step(client, &id, "deploy").await?;
    // Live progress from the campaign's event stream while the start job runs.
    let mut events = client.watch(&id).await?;
    let started = Instant::now();
    let planned = client.get(&id).await?.iterations_planned;
    let live = tokio::spawn(async move {
        while let Ok(Some(e)) = events.message().await {
            if let Some(v1::campaign_event::Event::Stats(s)) = e.event {
                eprintln!(
                    "  {:>5.1} s  iterations {}/{}  {:.0} req/s  p99 {:.2} ms  errors {}",
                    started.elapsed().as_secs_f64(),
                    s.iterations_done,
                    planned,
                    s.requests_per_s,
                    s.p99_ms,
                    s.errors
                );
            }
        }
    });
    let run = step(client, &id, "start").await;
    live.abort();
    run?;
    println!("\n$ camut results {id}");
    let results = client.results(&id).await?;
    print!("{}", show::results_text(&results));
    step(client, &id, "kill").await?;
    Ok(if results.thresholds_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
