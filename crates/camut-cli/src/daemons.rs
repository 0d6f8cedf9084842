//! The daemons: `camut server`, `camut drone`, `camut deployer`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use camut_deployer::{Deployer, DummyDeployer, LocalDeployer, RemoteDeployer};
use camut_deployer_ec2::{Ec2Config, Ec2Deployer};
use camut_engine::campaign::{DroneLossPolicy, RunLength};
use camut_engine::Campaign;
use camut_server::{CampaignInfo, Core, CoreParts, Inspector, ServerConfig, Store};

/// Arguments of `camut server`.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Config file (camut.toml); without one: loopback, ./ data dir, local deployer.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Listen address (overrides the config).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides the config).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Arguments of `camut drone`.
#[derive(clap::Args)]
pub struct DroneArgs {
    /// The server's address (`host:port` or URL).
    #[arg(long, env = "CAMUT_SERVER")]
    server: String,
    /// The campaign's join token.
    #[arg(long, env = "CAMUT_TOKEN")]
    token: String,
    /// This drone's id; give one that is stable across restarts so that a restarted drone
    /// resumes its place, as the deployers do (default: drone-HOSTNAME-RANDOM, unique to
    /// this process).
    #[arg(long, env = "CAMUT_DRONE_ID")]
    id: Option<String>,
}

/// Arguments of `camut deployer KIND`.
#[derive(clap::Args)]
pub struct DeployerArgs {
    /// Which deployer: local, dummy or ec2.
    kind: String,
    /// Address to serve the Deployer service on.
    #[arg(long, default_value = "127.0.0.1:7300")]
    listen: SocketAddr,
    /// For dummy: how many instances it can make.
    #[arg(long)]
    capacity: Option<u32>,
    /// For local: where drone logs go.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// For ec2: its settings (TOML, the keys of a `[deployers.NAME.settings]` table of
    /// camut.toml; see examples/camut.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Reads campaign files with the engine, for the server (which knows no JavaScript).
pub(crate) struct EngineInspector;

impl Inspector for EngineInspector {
    fn inspect(&self, file: &str, source: &str) -> Result<CampaignInfo, String> {
        let c = Campaign::from_source(file, source).map_err(|e| e.to_string())?;
        let o = c.options;
        Ok(CampaignInfo {
            id: o.id,
            drones: o.drones,
            min_drones: o.min_drones,
            users: o.users,
            deployer: o.deploy.deployer,
            zone: o.deploy.zone,
            instance_type: o.deploy.instance_type,
            image: o
                .deploy
                .extra
                .get("image")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            abort_on_drone_loss: o.on_drone_loss == DroneLossPolicy::Abort,
            thresholds: o.thresholds,
            iterations_per_drone: match (o.length, o.arrival_rate) {
                (RunLength::Iterations(n), None) => n.saturating_mul(o.users as u64),
                (RunLength::Iterations(n), Some(_)) => n,
                (RunLength::Duration(_), _) => 0,
            },
            max_operations: o.max_operations,
        })
    }
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub(crate) fn builtin(
    kind: &str,
    capacity: Option<u32>,
    data_dir: &std::path::Path,
) -> anyhow::Result<Arc<dyn Deployer>> {
    Ok(match kind {
        "local" => {
            let exe =
                std::env::current_exe().context("cannot find the camut binary for local drones")?;
            Arc::new(LocalDeployer::new(exe).with_log_dir(data_dir.join("drones")))
        }
        "dummy" => Arc::new(match capacity {
            Some(c) => DummyDeployer::with_capacity(c),
            None => DummyDeployer::new(),
        }),
        other => anyhow::bail!(
            "unknown built-in deployer '{other}': use local, dummy or ec2, or give an address"
        ),
    })
}

/// The ec2 deployer with `settings` (a deployer entry's `settings` table).
async fn ec2(name: &str, settings: Option<toml::Table>) -> anyhow::Result<Arc<dyn Deployer>> {
    let config = Ec2Config::from_table(settings.unwrap_or_default())
        .with_context(|| format!("deployer '{name}'"))?;
    Ok(Arc::new(Ec2Deployer::new(config).await?))
}

/// `camut server`; `tap` copies the in-process deployers' lines into its service log.
pub fn server(args: ServerArgs, tap: camut_server::logs::LogTap) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(p) => ServerConfig::load(p)?,
        None => ServerConfig::default(),
    };
    if args.listen.is_some() {
        config.listen = args.listen;
    }
    if args.data_dir.is_some() {
        config.data_dir = args.data_dir.clone();
    }
    config.check()?;
    let data_dir = config.data_dir();
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen())
            .await
            .with_context(|| format!("cannot listen on {}", config.listen()))?;
        let addr = listener.local_addr()?;
        let mut deployers: BTreeMap<String, Arc<dyn Deployer>> = BTreeMap::new();
        deployers.insert("local".into(), builtin("local", None, &data_dir)?);
        deployers.insert("dummy".into(), builtin("dummy", None, &data_dir)?);
        for (name, d) in &config.deployers {
            let deployer: Arc<dyn Deployer> = match (&d.address, &d.kind) {
                (Some(address), _) => Arc::new(RemoteDeployer::connect_lazy(address.clone())?),
                (None, Some(kind)) if kind == "ec2" => ec2(name, d.settings.clone()).await?,
                (None, Some(kind)) => builtin(kind, d.capacity, &data_dir)?,
                (None, None) => {
                    anyhow::bail!("deployer '{name}' needs `kind` (local, dummy, ec2) or `address`")
                }
            };
            deployers.insert(name.clone(), deployer);
        }
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let store = Store::open(&data_dir)?;
        let core = Core::new(CoreParts {
            store,
            deployers,
            default_deployer: config.default_deployer(),
            public_url,
            inspector: Arc::new(EngineInspector),
            drone_timeout: Duration::from_secs_f64(config.drone_timeout_s.unwrap_or(10.0)),
            server_id: config.server_id(),
            default_tsdb: config.default_tsdb()?,
        });
        tap.attach(&core);
        core.resume().await?;
        core.reconcile_in_background();
        println!(
            "camut server listening on http://{addr} (data in {})",
            data_dir.display()
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
        camut_server::serve(
            core,
            config.token.clone(),
            &config.ui_path(),
            listener,
            ctrl_c(),
        )
        .await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `camut drone`.
pub fn drone(args: DroneArgs) -> anyhow::Result<ExitCode> {
    let id = args.id.unwrap_or_else(|| {
        // Unique per process: two drones on one host (of one campaign or two) never
        // share an id.
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "host".into());
        let random = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        format!("drone-{}-{:06x}", host.trim(), random & 0xff_ffff)
    });
    let rt = runtime()?;
    rt.block_on(camut_drone::run(camut_drone::DroneConfig {
        server: args.server,
        token: args.token,
        id,
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// `camut deployer KIND --listen ADDR`.
pub fn deployer(args: DeployerArgs) -> anyhow::Result<ExitCode> {
    let data_dir = args.log_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        println!(
            "camut deployer {} listening on http://{}",
            args.kind,
            listener.local_addr()?
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
        match args.kind.as_str() {
            "local" => {
                let exe = std::env::current_exe()?;
                let d = LocalDeployer::new(exe).with_log_dir(data_dir.join("drones"));
                camut_deployer::service::serve_with_shutdown(d, listener, ctrl_c()).await?
            }
            "dummy" => {
                let d = match args.capacity {
                    Some(c) => DummyDeployer::with_capacity(c),
                    None => DummyDeployer::new(),
                };
                camut_deployer::service::serve_with_shutdown(d, listener, ctrl_c()).await?
            }
            "ec2" => {
                let config = match &args.config {
                    Some(path) => Ec2Config::load(path)?,
                    None => Ec2Config::default(),
                };
                let d = Ec2Deployer::new(config).await?;
                camut_deployer::service::serve_with_shutdown(d, listener, ctrl_c()).await?
            }
            other => anyhow::bail!("unknown deployer '{other}': use local, dummy or ec2"),
        }
        Ok(ExitCode::SUCCESS)
    })
}
