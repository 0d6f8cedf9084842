//! The manager: `camut [-s SERVER] new|update|del|list|status|spawn|deploy|start|stop|kill|jobs|logs|results`,
//! commands that drive a Camut server over its gRPC API. `jobs cancel N` and
//! `jobs delete N` act on one job.

pub(crate) mod instances;
pub(crate) mod show;

use camut_server::ui::report::Report;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context as _};
use camut::client::{job_finished, ClientError};
use camut::tls::TlsOptions;
use camut::{v1, Client};
use tonic::Code;

/// The server the manager commands talk to (given before the command).
#[derive(clap::Args, Clone, Debug)]
pub struct Connection {
    /// Camut server of the manager commands: host:port or URL.
    #[arg(
        short = 's',
        long = "server",
        env = "CAMUT_SERVER",
        default_value = "127.0.0.1:7200",
        value_name = "SERVER"
    )]
    server: String,
    /// API token of the manager commands (sent as a bearer token).
    #[arg(
        long,
        env = "CAMUT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// CA certificate (PEM) to check an https:// server against, instead of the
    /// system's roots.
    #[arg(long, env = "CAMUT_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Do not check an https:// server's certificate (anyone on the path can then
    /// stand in for the server).
    #[arg(long)]
    insecure: bool,
}

/// The same options given after the command; they win over those before it.
#[derive(clap::Args, Clone, Debug, Default)]
struct Conn {
    /// Camut server: host:port or URL [default: -s before the command, $CAMUT_SERVER, 127.0.0.1:7200].
    #[arg(short = 's', long = "server", value_name = "SERVER")]
    server: Option<String>,
    /// API token [default: --token before the command, $CAMUT_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
    /// CA certificate (PEM) of an https:// server [default: --ca before the command, $CAMUT_CA].
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Do not check an https:// server's certificate.
    #[arg(long)]
    insecure: bool,
}

/// A campaign file to upload.
#[derive(clap::Args)]
pub struct FileArgs {
    /// The campaign file (JavaScript); the `id` in it names the campaign.
    file: PathBuf,
    /// The environment its drones get as `camut.env` (stored with the campaign; an
    /// update without these options keeps the stored one).
    #[command(flatten)]
    env: crate::env::EnvArgs,
    #[command(flatten)]
    conn: Conn,
}

/// A campaign id.
#[derive(clap::Args)]
pub struct IdArgs {
    /// Campaign id (from its file).
    id: String,
    #[command(flatten)]
    conn: Conn,
}

/// A campaign id, with machine-readable output on request.
#[derive(clap::Args)]
pub struct ShowArgs {
    /// Campaign id (from its file).
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

/// Options of `results`.
#[derive(clap::Args)]
pub struct ResultsArgs {
    #[command(flatten)]
    show: ShowArgs,
    #[command(flatten)]
    reports: crate::reports::ReportArgs,
    /// Print the per-second series of the run instead of the summary: per operation,
    /// requests, errors and response time p50/p90/p99/max, and the active VUs.
    #[arg(long, value_name = "FORMAT")]
    series: Option<crate::reports::SeriesFormat>,
    /// Show this run (from 1; the list of runs is printed with the results) instead
    /// of the latest.
    #[arg(long, value_name = "N")]
    run: Option<u32>,
}

/// Options of `list`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

/// A command that queues a job.
#[derive(clap::Args)]
pub struct JobArgs {
    /// Campaign id (from its file).
    id: String,
    /// Return at once, printing the job id, instead of waiting for the job to end.
    #[arg(long)]
    no_wait: bool,
    /// Print the job as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

/// Options of `jobs`: the queue, or an action on one job.
#[derive(clap::Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    action: Option<JobsAction>,
    /// Only this campaign's jobs.
    id: Option<String>,
    /// Only jobs in this state: queued, active, complete, failed, cancelled.
    #[arg(long, value_name = "STATE")]
    state: Option<String>,
    /// Most jobs shown [default: 100].
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

/// What `camut jobs` can do to one job: what the web console's buttons do.
#[derive(clap::Subcommand)]
pub enum JobsAction {
    /// Cancel a queued or active job (waits until it has stopped); exit 1 when the
    /// job had already ended.
    Cancel(JobRefArgs),
    /// Delete a job from the queue; refused while it runs (cancel it first).
    Delete(JobRefArgs),
}

/// One job.
#[derive(clap::Args)]
pub struct JobRefArgs {
    /// Job id (see `camut jobs`).
    id: u64,
    #[command(flatten)]
    conn: Conn,
}

/// Options of `logs`.
#[derive(clap::Args)]
pub struct LogsArgs {
    /// Keep printing new lines as they come.
    #[arg(short, long)]
    follow: bool,
    /// Lines of history to print first.
    #[arg(short = 'n', long, default_value_t = 100, value_name = "N")]
    lines: u32,
    /// Only this campaign's lines.
    #[arg(long, value_name = "ID")]
    campaign: Option<String>,
    /// Lowest level shown: debug, info, warn, error.
    #[arg(long, value_name = "LEVEL")]
    level: Option<String>,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    conn: Conn,
}

/// Options of `instances`.
#[derive(clap::Args)]
pub struct InstancesArgs {
    /// Only the zombies: instances whose campaign this server does not know, whose
    /// expiry has passed, or that their campaign does not hold.
    #[arg(long)]
    pub(crate) zombies: bool,
    /// Terminate the zombies (through their deployers).
    #[arg(long)]
    pub(crate) reap: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    conn: Conn,
}

/// The manager commands.
#[derive(clap::Subcommand)]
pub enum ManageCommand {
    /// Upload a campaign file to the server; a campaign with the same id is updated
    /// (under `update`'s rules).
    New(FileArgs),
    /// Replace a campaign's file (not while it runs, nor to change its drones or zone).
    Update(FileArgs),
    /// Delete a campaign that holds no instances (kill it first).
    #[command(alias = "delete")]
    Del(IdArgs),
    /// List the campaigns: id, state, drones, progress.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show a campaign: state, progress, instances and drones.
    Status(ShowArgs),
    /// Create the campaign's instances (created → spawned).
    Spawn(JobArgs),
    /// Configure a drone on each instance (spawned → deployed).
    Deploy(JobArgs),
    /// Start the drones; the job ends when they have finished (deployed → finished).
    Start(JobArgs),
    /// Stop the drones gracefully; they stay (running → stopped).
    Stop(JobArgs),
    /// Free the instances and clear pending jobs; works mid-run (the campaign is kept).
    Kill(JobArgs),
    /// The job queue, newest first; `jobs cancel N` and `jobs delete N` act on one job.
    Jobs(JobsArgs),
    /// The server's log lines.
    Logs(LogsArgs),
    /// A campaign's merged summary and threshold verdicts (exit 1 when one is broken).
    Results(ResultsArgs),
    /// The instances the server's deployers hold, zombies marked; `--reap` frees the
    /// zombies.
    Instances(InstancesArgs),
}

impl ManageCommand {
    fn conn(&self) -> &Conn {
        match self {
            ManageCommand::New(a) | ManageCommand::Update(a) => &a.conn,
            ManageCommand::Del(a) => &a.conn,
            ManageCommand::List(a) => &a.conn,
            ManageCommand::Status(a) => &a.conn,
            ManageCommand::Results(a) => &a.show.conn,
            ManageCommand::Spawn(a)
            | ManageCommand::Deploy(a)
            | ManageCommand::Start(a)
            | ManageCommand::Stop(a)
            | ManageCommand::Kill(a) => &a.conn,
            ManageCommand::Jobs(a) => match &a.action {
                Some(JobsAction::Cancel(r) | JobsAction::Delete(r))
                    if r.conn.server.is_some()
                        || r.conn.token.is_some()
                        || r.conn.ca.is_some()
                        || r.conn.insecure =>
                {
                    &r.conn
                }
                _ => &a.conn,
            },
            ManageCommand::Logs(a) => &a.conn,
            ManageCommand::Instances(a) => &a.conn,
        }
    }
}

/// Runs a manager command.
pub fn main(server: Connection, cmd: ManageCommand) -> anyhow::Result<ExitCode> {
    let conn = cmd.conn();
    let addr = conn.server.clone().unwrap_or(server.server);
    let token = conn.token.clone().or(server.token);
    let insecure = conn.insecure || server.insecure;
    let tls = TlsOptions::from_args(conn.ca.as_deref().or(server.ca.as_deref()), insecure)?;
    if insecure {
        tracing::warn!(
            "--insecure: the server's certificate is not checked; anyone on the path can stand in for it and read the token"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = Client::connect_with(&addr, token.as_deref(), &tls)
            .await
            .map_err(|e| explain(e, &addr))?;
        run(&client, cmd)
            .await
            .map_err(|e| match e.downcast::<ClientError>() {
                Ok(e) => explain(e, &addr),
                Err(e) => e,
            })
    })
}

/// A client error with a hint at what to do about it.
fn explain(e: ClientError, addr: &str) -> anyhow::Error {
    let hint = match &e {
        ClientError::Connect { reason, .. }
            if reason.contains("https://") || reason.contains("--ca") =>
        {
            String::new()
        }
        ClientError::Connect { .. } => {
            " (is `camut server` running there? set -s/--server or CAMUT_SERVER)".to_string()
        }
        ClientError::Status(s) => match s.code() {
            Code::Unauthenticated if !s.message().contains("CAMUT_TOKEN") => {
                " (give the API token with --token or CAMUT_TOKEN)".into()
            }
            _ if !camut::tls::hint(&camut::client::server_url(addr), &e.to_string()).is_empty() => {
                format!(
                    " ({})",
                    camut::tls::hint(&camut::client::server_url(addr), &e.to_string())
                )
            }
            Code::Unavailable => format!(" (server {addr} unreachable)"),
            Code::Unimplemented => format!(" (the server at {addr} does not offer this call)"),
            _ => String::new(),
        },
        ClientError::JobFailed { .. } => String::new(),
    };
    anyhow!("{e}{hint}")
}

async fn run(client: &Client, cmd: ManageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ManageCommand::New(a) => {
            let (file, source) = read_campaign(&a.file)?;
            let env = a.env.vars()?;
            match client.create_with_env(&file, &source, &env).await {
                Ok(c) => println!("created {}", show::campaign_line(&c)),
                Err(ClientError::Status(s)) if s.code() == Code::AlreadyExists => {
                    let env = a.env.given().then_some(env.as_slice());
                    let c = client.update_with_env(&file, &source, env).await?;
                    println!("updated {}", show::campaign_line(&c));
                }
                Err(e) => return Err(e.into()),
            }
        }
        ManageCommand::Update(a) => {
            let (file, source) = read_campaign(&a.file)?;
            let env = a.env.vars()?;
            let env = a.env.given().then_some(env.as_slice());
            let c = client.update_with_env(&file, &source, env).await?;
            println!("updated {}", show::campaign_line(&c));
        }
        ManageCommand::Del(a) => {
            client.delete(&a.id).await?;
            println!("deleted {}", a.id);
        }
        ManageCommand::List(a) => {
            let list = client.list().await?;
            if a.json {
                let v: Vec<_> = list.iter().map(|c| show::campaign_json(c, false)).collect();
                print_json(&serde_json::Value::Array(v))?;
            } else {
                print!("{}", show::campaign_table(&list));
            }
        }
        ManageCommand::Status(a) => {
            let c = client.get(&a.id).await?;
            if a.json {
                print_json(&show::campaign_json(&c, true))?;
            } else {
                print!("{}", show::campaign_status(&c, show::now_ms()));
            }
        }
        ManageCommand::Spawn(a) => return job_command(client, "spawn", a).await,
        ManageCommand::Deploy(a) => return job_command(client, "deploy", a).await,
        ManageCommand::Start(a) => return job_command(client, "start", a).await,
        ManageCommand::Stop(a) => return job_command(client, "stop", a).await,
        ManageCommand::Kill(a) => return job_command(client, "kill", a).await,
        ManageCommand::Jobs(JobsArgs {
            action: Some(action),
            ..
        }) => return job_action(client, action).await,
        ManageCommand::Jobs(a) => {
            let jobs = client
                .list_jobs(v1::ListJobsRequest {
                    campaign: a.id.unwrap_or_default(),
                    state: match a.state.as_deref() {
                        None => 0,
                        Some(s) => v1::JobState::from_label(s).ok_or_else(|| {
                            anyhow::anyhow!(
                                "--state {s:?}: use queued, active, complete, failed or cancelled"
                            )
                        })? as i32,
                    },
                    limit: a.limit.unwrap_or(0),
                })
                .await?;
            if a.json {
                let v: Vec<_> = jobs.iter().map(show::job_json).collect();
                print_json(&serde_json::Value::Array(v))?;
            } else {
                print!("{}", show::job_table(&jobs, show::now_ms()));
            }
        }
        ManageCommand::Logs(a) => {
            let mut stream = client
                .tail(v1::TailRequest {
                    lines: a.lines,
                    follow: a.follow,
                    campaign: a.campaign.unwrap_or_default(),
                    level: a.level.unwrap_or_default(),
                })
                .await?;
            while let Some(line) = stream.message().await.map_err(ClientError::from)? {
                if a.json {
                    println!("{}", show::log_json(&line));
                } else {
                    println!("{}", show::log_line(&line));
                }
            }
        }
        ManageCommand::Instances(a) => return instances::command(client, a).await,
        ManageCommand::Results(ResultsArgs {
            show: a,
            reports,
            series,
            run,
        }) => {
            let r = client.run_results(&a.id, run.unwrap_or(0)).await?;
            reports.write_junit(|| r.junit_xml())?;
            let points = if series.is_some() || reports.wants_series() {
                client.run_series(&a.id, r.run).await?.points()
            } else {
                Vec::new()
            };
            if let Some(format) = series {
                print!("{}", format.render(&a.id, &points));
            }
            reports.write_html(|| Report::from_results(&r, points))?;
            match (series, a.json) {
                (Some(_), _) => {}
                (None, true) => print_json(&show::results_json(&r))?,
                (None, false) => print!("{}", show::results_text(&r)),
            }
            if !r.thresholds_ok {
                if !a.json && series.is_none() {
                    eprintln!("camut: thresholds broken");
                }
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `jobs cancel N` / `jobs delete N`, with the API's rules (those of the console).
async fn job_action(client: &Client, action: JobsAction) -> anyhow::Result<ExitCode> {
    match action {
        JobsAction::Cancel(r) => {
            let before = client.job(r.id).await?;
            if job_finished(&before) {
                return Err(anyhow!(
                    "job {} is {}: only queued or active jobs can be cancelled",
                    r.id,
                    before.state().label()
                ));
            }
            let mut job = client.cancel_job(r.id).await?;
            if !job_finished(&job) {
                // An active job stops at its next step.
                job = client.wait_job(r.id).await?;
            }
            if job.state() != v1::JobState::Cancelled {
                return Err(anyhow!(
                    "job {} ended {} before it could be cancelled",
                    r.id,
                    job.state().label()
                ));
            }
            println!("cancelled job {} ({} {})", job.id, job.kind, job.campaign);
        }
        JobsAction::Delete(r) => {
            client.delete_job(r.id).await?;
            println!("deleted job {}", r.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Queues a job and, unless `--no-wait`, follows it to its end.
async fn job_command(client: &Client, kind: &str, a: JobArgs) -> anyhow::Result<ExitCode> {
    let job = match kind {
        "spawn" => client.spawn(&a.id).await?,
        "deploy" => client.deploy(&a.id).await?,
        "start" => client.start(&a.id).await?,
        "stop" => client.stop(&a.id).await?,
        _ => client.kill(&a.id).await?,
    };
    if a.no_wait {
        if a.json {
            print_json(&show::job_json(&job))?;
        } else {
            println!("{}", job.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let end = follow_job(client, job, &a.id, a.json).await?;
    if end.state() == v1::JobState::Complete {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow!("{}", show::job_failure(&end)))
    }
}

/// Follows a job to its end with a progress line, then prints its log and end line (or
/// its JSON). Ctrl-C leaves it running on the server and exits 130.
pub(crate) async fn follow_job(
    client: &Client,
    job: v1::Job,
    campaign: &str,
    json: bool,
) -> anyhow::Result<v1::Job> {
    let mut progress = show::ProgressLine::new(std::io::stderr().is_terminal());
    let end = if job_finished(&job) {
        progress.update(&job);
        Ok(job)
    } else {
        let id = job.id;
        tokio::select! {
            r = client.wait_job_with(id, |j| progress.update(j)) => r,
            _ = tokio::signal::ctrl_c() => {
                progress.clear();
                eprintln!("camut: job {id} goes on on the server; see `camut jobs {campaign}`");
                std::process::exit(130);
            }
        }
    };
    progress.clear();
    let end = end?;
    if json {
        print_json(&show::job_json(&end))?;
    } else {
        for line in &end.log {
            println!("{line}");
        }
        println!("{}", show::job_end_line(&end));
    }
    Ok(end)
}

/// The file name and source of a campaign file.
fn read_campaign(path: &std::path::Path) -> anyhow::Result<(String, String)> {
    let source =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok((file, source))
}

pub(crate) fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
