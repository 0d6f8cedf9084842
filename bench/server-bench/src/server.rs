//! The server role: a real Camut server in this process, driven through the control API,
//! with the simulated drones in a child process.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use camut::v1;
use camut::Client;
use camut_deployer::{Deployer, DummyDeployer};
use camut_server::{CampaignInfo, Core, CoreParts, Inspector, Store};
use tokio::sync::{mpsc, oneshot};

use crate::report::{self, Figures};
use crate::util::{cpu_seconds, cpu_user_sys, mono_ns, proc_status_kb, utc_now, Machine};
use crate::Args;

/// The campaign the benchmark drives.
const CAMPAIGN: &str = "bench";
/// How long a spawn may take.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the drones may take to connect and the deploy job to end.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(150);
/// How long the results may take once every drone has finished.
const FINALIZE_TIMEOUT: Duration = Duration::from_secs(120);

/// Stands for the engine's loader: every source is campaign "bench" with N drones.
struct BenchInspector {
    drones: u32,
}

impl Inspector for BenchInspector {
    fn inspect(&self, _file: &str, _source: &str) -> Result<CampaignInfo, String> {
        Ok(CampaignInfo {
            id: CAMPAIGN.into(),
            drones: self.drones,
            min_drones: self.drones,
            users: 10,
            deployer: None,
            zone: None,
            instance_type: None,
            image: None,
            abort_on_drone_loss: false,
            thresholds: Vec::new(),
            iterations_per_drone: 0,
            max_operations: camut_stats::cap::DEFAULT_MAX_OPERATIONS,
        })
    }
}

/// Runs the benchmark, prints the table and writes the results file; true when the
/// merged results match what the drones sent.
pub fn main(args: &Args) -> Result<bool> {
    ensure!(args.drones >= 1, "--drones must be at least 1");
    ensure!(args.seconds >= 1, "--seconds must be at least 1");
    ensure!(args.channels >= 1, "--channels must be at least 1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot build the runtime")?;
    let figures = rt.block_on(run(args));
    rt.shutdown_timeout(Duration::from_secs(2));
    let figures = figures?;
    let text = report::markdown(&figures);
    println!("{text}");
    if !args.no_doc {
        report::write_doc(&args.doc, &text)?;
        let shown = std::fs::canonicalize(&args.doc).unwrap_or_else(|_| args.doc.clone());
        eprintln!("written into {}", shown.display());
    }
    Ok(figures.results_match())
}

async fn run(args: &Args) -> Result<Figures> {
    let tmp;
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("camut-server-bench-")
                .tempdir()
                .context("cannot make a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let machine = Machine::probe(&dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut deployers: BTreeMap<String, Arc<dyn Deployer>> = BTreeMap::new();
    deployers.insert(
        "dummy".into(),
        Arc::new(DummyDeployer::with_capacity(args.drones)),
    );
    let core = Core::new(CoreParts {
        store: Store::open(&dir)?,
        deployers,
        default_deployer: "dummy".into(),
        public_url: format!("http://{addr}"),
        inspector: Arc::new(BenchInspector {
            drones: args.drones,
        }),
        drone_timeout: Duration::from_secs(30),
        server_id: "camut-bench".into(),
        default_tsdb: None,
    });
    core.resume().await?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(camut_server::serve(
        core,
        None,
        camut_server::config::DEFAULT_UI_PATH,
        listener,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let figures = drive(args, &dir, addr, machine).await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) if figures.is_ok() => bail!("the server failed: {e}"),
        _ => {}
    }
    figures
}

/// Waits for a job to end, at most `within`, and requires it complete.
async fn complete(client: &Client, job: &v1::Job, within: Duration) -> Result<v1::Job> {
    let done = tokio::time::timeout(within, client.wait_job(job.id))
        .await
        .with_context(|| format!("the {} job did not end within {within:?}", job.kind))??;
    ensure!(
        done.state() == camut::v1::JobState::Complete,
        "the {} job ended {}: {}",
        done.kind,
        done.state,
        done.error
    );
    Ok(done)
}

async fn drive(args: &Args, dir: &Path, addr: SocketAddr, machine: Machine) -> Result<Figures> {
    let n = args.drones;
    let client = Client::connect(&addr.to_string(), None).await?;
    client
        .create("bench.js", "// read by the benchmark's stub inspector")
        .await?;
    let spawn = client.spawn(CAMPAIGN).await?;
    complete(&client, &spawn, SPAWN_TIMEOUT).await?;
    let token = Store::open(dir)?
        .campaign(CAMPAIGN)?
        .context("campaign bench is not in the store")?
        .join_token;

    // Deploy; the drones connect once the job has forgotten the previous run's drones
    // and asked the deployer (which is when it sets its progress total).
    let deploy = client.deploy(CAMPAIGN).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = client.job(deploy.id).await?;
        ensure!(
            !camut::client::job_finished(&j) || j.state() == camut::v1::JobState::Complete,
            "the deploy job ended {}: {}",
            j.state,
            j.error
        );
        if j.progress_total > 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the deploy job did not reach the deployer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("connecting {n} drones");
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let mut drones = DronesProcess::spawn(args, addr, &token)?;
    let ready = drones.expect("READY", DEPLOY_TIMEOUT).await?;
    let connect_ms: u64 = field(&ready, 1, "READY")?;
    complete(&client, &deploy, DEPLOY_TIMEOUT).await?;
    let deploy_ms = t0.elapsed().as_millis() as u64;
    let deploy_cpu_s = cpu_seconds() - cpu0;
    // Let the last Ready handling and pings settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Start: from just before the call to each drone receiving the command.
    eprintln!("starting");
    let t_start = mono_ns();
    let start = client.start(CAMPAIGN).await?;
    let start_rpc_ms = (mono_ns() - t_start) as f64 / 1e6;
    let st = drones.expect("START", Duration::from_secs(60)).await?;
    let start_late: u64 = field(&st, 1, "START")?;
    let mut start_ms: Vec<f64> = st[2..]
        .iter()
        .map(|v| {
            v.parse::<u64>()
                .map(|ns| ns.saturating_sub(t_start) as f64 / 1e6)
        })
        .collect::<Result<_, _>>()
        .context("bad START line")?;
    start_ms.sort_by(f64::total_cmp);

    // Statistics ingestion.
    let begin = drones
        .expect("INGEST_BEGIN", Duration::from_secs(30))
        .await?;
    eprintln!("ingesting statistics for {} s", args.seconds);
    let (cpu_a, wall_a) = (cpu_user_sys(), Instant::now());
    let end = drones
        .expect("INGEST_END", Duration::from_secs(args.seconds as u64 + 90))
        .await?;
    let (cpu_b, wall_b) = (cpu_user_sys(), Instant::now());
    eprintln!("finishing");
    let hwm_ingest_kb = proc_status_kb("VmHWM").unwrap_or(0);

    drones.expect("FINISHED", Duration::from_secs(90)).await?;
    let (cpu_f, wall_f) = (cpu_seconds(), Instant::now());
    complete(&client, &start, FINALIZE_TIMEOUT).await?;
    let finalize_ms = wall_f.elapsed().as_millis() as u64;
    let finalize_cpu_s = cpu_seconds() - cpu_f;
    let results = client.results(CAMPAIGN).await?;
    let hwm_end_kb = proc_status_kb("VmHWM").unwrap_or(0);
    drones.exit();

    let summary = results.run_summary();
    let it = &summary.iterations;
    let command = {
        let mut c = format!(
            "cargo run --release -p camut-server-bench -- --drones {n} --seconds {}",
            args.seconds
        );
        if args.channels != 10 {
            c.push_str(&format!(" --channels {}", args.channels));
        }
        c
    };
    Ok(Figures {
        drones: n,
        seconds: args.seconds,
        channels: args.channels,
        command,
        machine,
        date: utc_now(),
        connect_ms,
        deploy_ms,
        deploy_cpu_s,
        start_rpc_ms,
        start_ms,
        start_late,
        ingest_wall_s: (wall_b - wall_a).as_secs_f64(),
        ingest_cpu_s: (cpu_b.0 + cpu_b.1) - (cpu_a.0 + cpu_a.1),
        ingest_sys_s: cpu_b.1 - cpu_a.1,
        deltas_sent: field(&end, 0, "INGEST_END")?,
        deltas_acked: field(&end, 1, "INGEST_END")?,
        requests_sent: field(&end, 2, "INGEST_END")?,
        iterations_sent: field(&end, 3, "INGEST_END")?,
        ack_p50_us: field(&end, 4, "INGEST_END")?,
        ack_p99_us: field(&end, 5, "INGEST_END")?,
        ack_max_us: field(&end, 6, "INGEST_END")?,
        ack_lag_ms: field(&end, 7, "INGEST_END")?,
        delta_bytes: field(&end, 8, "INGEST_END")?,
        drones_cpu_s: field::<f64>(&end, 9, "INGEST_END")?
            - field::<f64>(&begin, 0, "INGEST_BEGIN")?,
        hwm_ingest_kb,
        hwm_end_kb,
        finalize_ms,
        finalize_cpu_s,
        requests_merged: summary.requests,
        iterations_merged: it.completed + it.failed,
    })
}

fn field<T: std::str::FromStr>(fields: &[String], i: usize, line: &str) -> Result<T> {
    fields
        .get(i)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("bad {line} line from the drones: {fields:?}"))
}

/// The drones child process: killed when dropped, whatever happened.
struct DronesProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
}

impl DronesProcess {
    fn spawn(args: &Args, addr: SocketAddr, token: &str) -> Result<DronesProcess> {
        let exe = std::env::current_exe().context("cannot find this program")?;
        let mut child = Command::new(exe)
            .args(["--role", "drones", "--server"])
            .arg(addr.to_string())
            .args(["--token", token, "--drones"])
            .arg(args.drones.to_string())
            .arg("--seconds")
            .arg(args.seconds.to_string())
            .arg("--channels")
            .arg(args.channels.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the drones process")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("no stdout of the drones")?;
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(DronesProcess {
            child,
            stdin,
            lines,
        })
    }

    /// The fields after `tag` of the next line starting with it.
    async fn expect(&mut self, tag: &str, within: Duration) -> Result<Vec<String>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(l)) => l,
                Ok(None) => bail!("the drones process ended before {tag}"),
                Err(_) => bail!("no {tag} from the drones within {within:?}"),
            };
            if let Some(why) = line.strip_prefix("FAIL ") {
                bail!("the drones failed: {why}");
            }
            let mut f = line.split_whitespace();
            if f.next() == Some(tag) {
                return Ok(f.map(String::from).collect());
            }
        }
    }

    /// Asks the drones to exit, then waits a little; dropping kills what is left.
    fn exit(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"EXIT\n");
        }
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DronesProcess {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
