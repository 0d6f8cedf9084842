//! The daemons: `camut server`, `camut drone`, `camut deployer`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use camut::tls::TlsOptions;
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
    /// TLS certificate chain, PEM (with --tls-key; overrides `[tls]` of the config).
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (with --tls-cert).
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate, made on first start and kept in
    /// DATA_DIR/tls/; clients and drones trust DATA_DIR/tls/ca.pem (its fingerprint is
    /// printed).
    #[arg(long, conflicts_with = "tls_cert")]
    tls_self_signed: bool,
    /// Allow listening beyond loopback without TLS (e.g. behind a TLS-terminating
    /// proxy); a warning is logged at every start.
    #[arg(long)]
    allow_plaintext: bool,
    /// Start with a strong random API token, printed at start.
    #[arg(long)]
    generate_token: bool,
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
    /// CA certificate (PEM) to check an https:// server against, instead of the
    /// system's roots.
    #[arg(long, env = "CAMUT_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Do not check an https:// server's certificate (anyone on the path can then
    /// stand in for the server).
    #[arg(long)]
    insecure: bool,
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
    let mut banner = Vec::new();
    if args.generate_token
        || config.token.as_deref().unwrap_or("").is_empty() && !config.listen().ip().is_loopback()
    {
        if config.token.as_deref().is_some_and(|t| !t.is_empty()) {
            anyhow::bail!("--generate-token: camut.toml already sets `token`; remove one of them");
        }
        let token = camut_server::auth::generate_token().context("cannot make a token")?;
        banner.push(format!(
            "API token: {token} (generated for this run; clients pass it as --token or CAMUT_TOKEN)"
        ));
        config.token = Some(token);
    }
    config.check()?;
    let data_dir = config.data_dir();
    let tls = server_tls(&args, &config, &data_dir, &mut banner)?;
    camut_server::config::check_plaintext(config.listen(), tls.is_some(), args.allow_plaintext)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen())
            .await
            .with_context(|| format!("cannot listen on {}", config.listen()))?;
        let addr = listener.local_addr()?;
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                "serving in plaintext on {addr}, beyond loopback (--allow-plaintext): the API token and the join tokens cross the network in clear; serve TLS unless a TLS-terminating proxy is in front"
            );
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        // What drones dial by default: the listen address, loopback for "every interface".
        let dial = if addr.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        };
        let mut deployers: BTreeMap<String, Arc<dyn Deployer>> = BTreeMap::new();
        deployers.insert("local".into(), builtin("local", None, &data_dir)?);
        deployers.insert("dummy".into(), builtin("dummy", None, &data_dir)?);
        for (name, d) in &config.deployers {
            let deployer: Arc<dyn Deployer> = match (&d.address, &d.kind) {
                (Some(address), _) => Arc::new(RemoteDeployer::connect_lazy_with(
                    address.clone(),
                    &TlsOptions::from_args(None, false)?,
                )?),
                (None, Some(kind)) if kind == "ec2" => ec2(name, d.settings.clone()).await?,
                (None, Some(kind)) => builtin(kind, d.capacity, &data_dir)?,
                (None, None) => {
                    anyhow::bail!("deployer '{name}' needs `kind` (local, dummy, ec2) or `address`")
                }
            };
            deployers.insert(name.clone(), deployer);
        }
        // Drones get the CA to trust along with the server's URL.
        if let Some(ca_pem) = tls.as_ref().and_then(|t| t.drone_ca.clone()) {
            for deployer in deployers.values_mut() {
                *deployer = Arc::new(camut_deployer::WithCa::new(deployer.clone(), ca_pem.clone()));
            }
        }
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{dial}"));
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
        // The banner first, the listening line last: whoever reads the first lines of
        // stdout may stop reading at that one.
        for line in &banner {
            println!("{line}");
        }
        println!(
            "camut server listening on {scheme}://{addr} (data in {})",
            data_dir.display()
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
        let options = camut_server::ServeOptions {
            token: config.token.clone(),
            ui_path: config.ui_path(),
            public_url: config.public_url.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
            tls: tls.map(|t| t.server),
        };
        camut_server::serve_with(core, options, listener, ctrl_c()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The server's TLS, as set up at start.
struct ServerTls {
    server: Arc<rustls::ServerConfig>,
    /// The CA certificate (PEM) drones are told to trust, if any.
    drone_ca: Option<String>,
}

/// The TLS of `camut server`: --tls-cert/--tls-key, else `[tls]`, else
/// --tls-self-signed, else none. Adds what clients need to know to `banner`.
fn server_tls(
    args: &ServerArgs,
    config: &ServerConfig,
    data_dir: &std::path::Path,
    banner: &mut Vec<String>,
) -> anyhow::Result<Option<ServerTls>> {
    use camut_server::tls::Identity;
    let from_files = match (&args.tls_cert, &args.tls_key, &config.tls) {
        (Some(cert), Some(key), t) => Some((
            cert.clone(),
            key.clone(),
            t.as_ref().and_then(|t| t.ca.clone()),
        )),
        (_, _, Some(t)) if !args.tls_self_signed => {
            Some((t.cert.clone(), t.key.clone(), t.ca.clone()))
        }
        _ => None,
    };
    let (identity, drone_ca) = if let Some((cert, key, ca)) = from_files {
        let identity = Identity::load(&cert, &key)?;
        let ca = match ca {
            Some(p) => Some(
                std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read the CA file {}", p.display()))?,
            ),
            None => None,
        };
        (identity, ca)
    } else if args.tls_self_signed {
        let (identity, ca_file) = self_signed(config, data_dir)?;
        banner.push(format!(
            "TLS certificate: self-signed, SHA-256 fingerprint {}",
            identity.fingerprint()?
        ));
        banner.push(format!(
            "CA file for clients: {} (camut --ca FILE, CAMUT_CA, grpcurl -cacert FILE)",
            ca_file.display()
        ));
        let ca = identity.cert_pem.clone();
        (identity, Some(ca))
    } else {
        return Ok(None);
    };
    Ok(Some(ServerTls {
        server: identity.server_config()?,
        drone_ca,
    }))
}

/// The self-signed identity kept in DATA_DIR/tls/ (made on first start, for
/// `localhost`, the loopback addresses, the listen address and public_url's host),
/// and the file clients trust.
fn self_signed(
    config: &ServerConfig,
    data_dir: &std::path::Path,
) -> anyhow::Result<(camut_server::tls::Identity, PathBuf)> {
    use camut_server::tls::Identity;
    let dir = data_dir.join("tls");
    let (cert, key, ca) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    if cert.exists() && key.exists() {
        let identity = Identity::load(&cert, &key)?;
        std::fs::write(&ca, &identity.cert_pem)?;
        return Ok((identity, ca));
    }
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let listen = config.listen().ip();
    if !listen.is_unspecified() && !listen.is_loopback() {
        names.push(listen.to_string());
    }
    if let Some(host) = config
        .public_url
        .as_deref()
        .and_then(|u| u.split_once("://"))
        .and_then(|(_, rest)| rest.split('/').next())
    {
        let host = match host.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => host,
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !host.is_empty() && !names.contains(&host) {
            names.push(host);
        }
    }
    let identity = Identity::self_signed(names)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)
            .with_context(|| format!("cannot write {}", key.display()))?;
        f.write_all(identity.key_pem.as_bytes())?;
    }
    std::fs::write(&cert, &identity.cert_pem)?;
    std::fs::write(&ca, &identity.cert_pem)?;
    Ok((identity, ca))
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
    let tls = TlsOptions::from_args(args.ca.as_deref(), args.insecure)?;
    if args.insecure {
        tracing::warn!(
            "--insecure: the server's certificate is not checked; anyone on the path can stand in for the server"
        );
    }
    let rt = runtime()?;
    rt.block_on(camut_drone::run(camut_drone::DroneConfig {
        server: args.server,
        token: args.token,
        id,
        tls,
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
