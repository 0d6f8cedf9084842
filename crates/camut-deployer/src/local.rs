//! [`LocalDeployer`]: drones as child processes on this machine.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use camut::v1::deployer_server::Deployer;
use camut::v1::{
    ConfigureInstancesRequest, ConfigureInstancesResponse, CreateInstancesRequest,
    CreateInstancesResponse, DestroyInstancesRequest, DestroyInstancesResponse,
    ListInstancesRequest, ListInstancesResponse,
};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;
use tokio::time::{timeout_at, Instant};
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use crate::registry::{self, Registry, CONFIGURED, PENDING, TERMINATED};

/// How long a destroy waits for killed drones to exit.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A deployer whose instances are drone processes on this machine.
///
/// - CreateInstances allocates ids `local-<campaign>-<n>` in state `pending`; nothing
///   runs yet, and every create gets `max` instances.
/// - ConfigureInstances starts, for each instance,
///   `<drone program> drone --server <server_address> --token <join_token> --id <id>`
///   (and `--ca FILE` with the request's CA certificate, written beside the drone's
///   log) as a child process (state `configured`); an instance whose drone was already started
///   has it killed and started anew. Its stdout and stderr are appended to
///   `<log dir>/<id>.log` when a log directory is set, and discarded otherwise.
/// - DestroyInstances kills the campaign's drones (SIGKILL), waits for them to exit and
///   forgets the instances.
/// - ListInstances reports a drone that has exited as `terminated`.
///
/// Dropping the deployer kills the drones still running.
#[derive(Debug)]
pub struct LocalDeployer {
    drone_program: PathBuf,
    log_dir: Option<PathBuf>,
    instances: Mutex<Registry<Option<Child>>>,
}

impl LocalDeployer {
    /// A local deployer starting drones with `drone_program` (the `camut` binary), their
    /// output discarded.
    pub fn new(drone_program: impl Into<PathBuf>) -> Self {
        Self {
            drone_program: drone_program.into(),
            log_dir: None,
            instances: Mutex::new(Registry::new("local")),
        }
    }

    /// Appends each drone's stdout and stderr to `<dir>/<instance id>.log` (the directory
    /// is created when the first drone starts).
    pub fn with_log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// The program drones are started with.
    pub fn drone_program(&self) -> &Path {
        &self.drone_program
    }

    /// The directory of the drones' log files, if set.
    pub fn log_dir(&self) -> Option<&Path> {
        self.log_dir.as_deref()
    }

    /// Starts the drone of instance `id`.
    fn spawn(&self, id: &str, request: &ConfigureInstancesRequest) -> Result<Child, String> {
        let mut command = Command::new(&self.drone_program);
        command
            .arg("drone")
            .arg("--server")
            .arg(&request.server_address)
            .arg("--token")
            .arg(&request.join_token)
            .arg("--id")
            .arg(id)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if !request.ca_pem.is_empty() {
            command.arg("--ca").arg(self.write_ca(id, &request.ca_pem)?);
        }
        match &self.log_dir {
            Some(dir) => {
                let path = dir.join(log_file_name(id));
                let log = open_log(dir, &path)
                    .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
                let err = log
                    .try_clone()
                    .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
                command.stdout(log).stderr(err);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.drone_program.display()))
    }
}

impl LocalDeployer {
    /// Writes the CA certificate a drone is to trust next to its log (or in the
    /// temporary directory), and returns the file.
    fn write_ca(&self, id: &str, pem: &str) -> Result<PathBuf, String> {
        let dir = self
            .log_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("camut-drones"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(format!(
            "{}.ca.pem",
            log_file_name(id).trim_end_matches(".log")
        ));
        std::fs::write(&path, pem)
            .map_err(|e| format!("cannot write the CA file {}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Drop for LocalDeployer {
    fn drop(&mut self) {
        for child in self.instances.get_mut().extras_mut().flatten() {
            // A drone that already exited has nothing to kill.
            let _ = child.start_kill();
        }
    }
}

/// The log file name of instance `id`: the id with anything but ASCII letters, digits,
/// `-`, `_` and `.` replaced by `_`.
fn log_file_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.log")
}

/// Opens `path` (in `dir`, created if missing) for appending.
fn open_log(dir: &Path, path: &Path) -> io::Result<File> {
    fs::create_dir_all(dir)?;
    OpenOptions::new().create(true).append(true).open(path)
}

/// Kills the drone of instance `id` and waits until `deadline` for it to exit.
async fn stop(id: &str, child: &mut Child, deadline: Instant) {
    kill(id, child);
    wait(id, child, deadline).await;
}

/// Sends SIGKILL to the drone of instance `id`.
fn kill(id: &str, child: &mut Child) {
    if let Err(e) = child.start_kill() {
        debug!(instance = %id, error = %e, "drone not killed (already exited?)");
    }
}

/// Waits until `deadline` for the drone of instance `id` to exit.
async fn wait(id: &str, child: &mut Child, deadline: Instant) {
    match timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => debug!(instance = %id, %status, "drone exited"),
        Ok(Err(e)) => warn!(instance = %id, error = %e, "cannot wait for drone"),
        Err(_) => warn!(instance = %id, "drone did not exit after SIGKILL"),
    }
}

#[tonic::async_trait]
impl Deployer for LocalDeployer {
    async fn create_instances(
        &self,
        request: Request<CreateInstancesRequest>,
    ) -> Result<Response<CreateInstancesResponse>, Status> {
        let request = request.into_inner();
        let instances = self
            .instances
            .lock()
            .await
            .create(&request, None, PENDING, || None)?;
        info!(campaign = %request.campaign, created = instances.len(), "local instances created");
        Ok(Response::new(CreateInstancesResponse { instances }))
    }

    async fn configure_instances(
        &self,
        request: Request<ConfigureInstancesRequest>,
    ) -> Result<Response<ConfigureInstancesResponse>, Status> {
        let request = request.into_inner();
        registry::require_campaign(&request.campaign)?;
        if request.server_address.is_empty() {
            return Err(Status::invalid_argument("server_address is required"));
        }
        if request.join_token.is_empty() {
            return Err(Status::invalid_argument("join_token is required"));
        }
        let mut instances = self.instances.lock().await;
        let (targets, mut failed): (Vec<String>, HashMap<String, String>) =
            instances.select(&request.campaign, &request.instance_ids);
        let mut configured = Vec::with_capacity(targets.len());
        for id in targets {
            let Some(entry) = instances.get_mut(&id) else {
                continue;
            };
            if let Some(mut old) = entry.extra.take() {
                stop(&id, &mut old, Instant::now() + KILL_WAIT).await;
            }
            match self.spawn(&id, &request) {
                Ok(child) => {
                    info!(instance = %id, pid = child.id(), "drone started");
                    entry.extra = Some(child);
                    entry.state = CONFIGURED;
                    configured.push(id);
                }
                Err(why) => {
                    warn!(instance = %id, error = %why, "drone not started");
                    entry.state = PENDING;
                    failed.insert(id, why);
                }
            }
        }
        Ok(Response::new(ConfigureInstancesResponse {
            configured,
            failed,
        }))
    }

    async fn destroy_instances(
        &self,
        request: Request<DestroyInstancesRequest>,
    ) -> Result<Response<DestroyInstancesResponse>, Status> {
        let request = request.into_inner();
        registry::require_campaign(&request.campaign)?;
        let removed = self
            .instances
            .lock()
            .await
            .remove_campaign(&request.campaign);
        let mut removed: Vec<(String, Option<Child>)> =
            removed.into_iter().map(|(id, e)| (id, e.extra)).collect();
        for (id, child) in &mut removed {
            if let Some(child) = child {
                kill(id, child);
            }
        }
        let deadline = Instant::now() + KILL_WAIT;
        let mut destroyed = Vec::with_capacity(removed.len());
        for (id, child) in removed {
            if let Some(mut child) = child {
                wait(&id, &mut child, deadline).await;
            }
            destroyed.push(id);
        }
        info!(campaign = %request.campaign, destroyed = destroyed.len(), "local instances destroyed");
        Ok(Response::new(DestroyInstancesResponse { destroyed }))
    }

    async fn list_instances(
        &self,
        request: Request<ListInstancesRequest>,
    ) -> Result<Response<ListInstancesResponse>, Status> {
        let campaign = request.into_inner().campaign;
        let mut instances = self.instances.lock().await;
        let list = instances
            .list_mut(&campaign)
            .into_iter()
            .map(|(id, entry)| {
                if let Some(child) = &mut entry.extra {
                    if let Ok(Some(_)) = child.try_wait() {
                        entry.state = TERMINATED;
                    }
                }
                entry.to_instance(id)
            })
            .collect();
        Ok(Response::new(ListInstancesResponse { instances: list }))
    }

    /// Its instances do not expire: nothing to extend.
    async fn extend_instances(
        &self,
        _: Request<camut::v1::ExtendInstancesRequest>,
    ) -> Result<Response<camut::v1::ExtendInstancesResponse>, Status> {
        Ok(Response::new(camut::v1::ExtendInstancesResponse::default()))
    }
}
