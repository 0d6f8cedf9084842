//! A high-level async client of a Camut server.
//!
//! [`Client`] wraps the generated gRPC stubs of the Campaigns, Jobs and Logs services:
//! it connects once, sends the API token with every call, waits for jobs and drives a
//! campaign through its whole lifecycle with [`Client::run_campaign`].
//!
//! # A CI gate
//!
//! ```no_run
//! use camut::Client;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let token = std::env::var("CAMUT_TOKEN").ok();
//!     let client = Client::connect("127.0.0.1:7200", token.as_deref()).await?;
//!     let source = std::fs::read_to_string("examples/commented.js")?;
//!     // Create (or update) the campaign, spawn, deploy, start, wait for the end.
//!     let results = client.run_campaign("commented.js", &source).await?;
//!     for v in &results.thresholds {
//!         println!("{} {} {}", if v.ok { "ok  " } else { "FAIL" }, v.metric, v.expr);
//!     }
//!     // Free the instances; the campaign and its results stay on the server.
//!     let kill = client.kill(&results.id).await?;
//!     client.wait_job(kill.id).await?;
//!     if !results.thresholds_ok {
//!         std::process::exit(1);
//!     }
//!     Ok(())
//! }
//! ```

use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status, Streaming};

use crate::tls::TlsOptions;
use crate::v1;
use crate::v1::campaigns_client::CampaignsClient;
use crate::v1::instances_client::InstancesClient;
use crate::v1::jobs_client::JobsClient;
use crate::v1::logs_client::LogsClient;

/// The port a server address without one gets.
pub const DEFAULT_PORT: u16 = 7200;

/// How often [`Client::wait_job`] asks for a job when it cannot watch it.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How long [`Client::wait_job`] keeps polling through an unreachable server (a restart).
const UNAVAILABLE_GRACE: Duration = Duration::from_secs(30);

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address or token is unusable, or the server cannot be reached.
    #[error("cannot connect to {server}: {reason}")]
    Connect {
        /// The server as given.
        server: String,
        /// Why, with the underlying causes.
        reason: String,
    },
    /// The server refused or failed a call.
    #[error("{}", status_text(.0))]
    Status(tonic::Status),
    /// A job ended failed or cancelled.
    #[error("{kind} job failed: {error}")]
    JobFailed {
        /// The job's kind: spawn, deploy, start, stop, kill.
        kind: String,
        /// The job's error (or its end state when it gave none).
        error: String,
    },
}

impl ClientError {
    /// The gRPC status code, when the server answered with an error.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        ClientError::Status(status)
    }
}

/// `Code: message`, e.g. `FailedPrecondition: campaign x is running; stop it first`,
/// with the transport's causes when the call failed on the way (`Unknown: transport
/// error: connection closed …`).
fn status_text(s: &Status) -> String {
    let text = if s.message().is_empty() {
        format!("{:?}: {}", s.code(), s.code())
    } else {
        format!("{:?}: {}", s.code(), s.message())
    };
    match std::error::Error::source(s) {
        Some(cause) => {
            let causes = error_chain(cause);
            if text.contains(&causes) {
                text
            } else {
                format!("{text}: {causes}")
            }
        }
        None => text,
    }
}

/// Whether a job state is final: `complete`, `failed` or `cancelled`.
pub fn job_finished(job: &v1::Job) -> bool {
    job.state().is_final()
}

/// Adds `authorization: Bearer <token>` and `x-camut-user: <name>` to every request.
#[derive(Clone)]
struct BearerAuth(Option<MetadataValue<Ascii>>, Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        if let Some(v) = &self.1 {
            req.metadata_mut().insert("x-camut-user", v.clone());
        }
        Ok(req)
    }
}

/// The name the server's command log shows for this client's calls: `CAMUT_USER`,
/// else the login name in `USER`.
fn user_name() -> Option<MetadataValue<Ascii>> {
    ["CAMUT_USER", "USER"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .and_then(|v| v.parse().ok())
}

type Svc = InterceptedService<Channel, BearerAuth>;

/// A connection to a Camut server. Cheap to clone; every method takes `&self`.
#[derive(Clone)]
pub struct Client {
    url: String,
    campaigns: CampaignsClient<Svc>,
    jobs: JobsClient<Svc>,
    logs: LogsClient<Svc>,
    instances: InstancesClient<Svc>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.url).finish()
    }
}

/// The URL of a server given as `host`, `host:port` or a URL: `http://` is added when
/// there is no scheme, and the default port when a bare host has none.
pub fn server_url(server: &str) -> String {
    let server = server.trim().trim_end_matches('/');
    if server.contains("://") {
        return server.to_string();
    }
    let has_port = if let Some(rest) = server.strip_prefix('[') {
        // [v6]:port
        rest.split_once(']')
            .is_some_and(|(_, after)| after.starts_with(':'))
    } else if server.matches(':').count() > 1 {
        // A bare IPv6 address: bracket it.
        return format!("http://[{server}]:{DEFAULT_PORT}");
    } else {
        server.contains(':')
    };
    if has_port {
        format!("http://{server}")
    } else {
        format!("http://{server}:{DEFAULT_PORT}")
    }
}

/// An error and its causes, joined by `: `, skipping causes already in the text (a TLS
/// failure, for one, is only in the causes of a transport error).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = c.source();
    }
    text
}

impl Client {
    /// Connects to a server (`host:port` or a URL). With a token, every call carries
    /// `authorization: Bearer <token>`; an empty token counts as none. An `https://`
    /// server is verified against the system's roots, or the CA file in `CAMUT_CA`.
    pub async fn connect(server: &str, token: Option<&str>) -> Result<Client, ClientError> {
        let tls = TlsOptions::from_args(None, false).map_err(|e| ClientError::Connect {
            server: server.to_string(),
            reason: e.to_string(),
        })?;
        Client::connect_with(server, token, &tls).await
    }

    /// [`Client::connect`] checking an `https://` server's certificate as `tls` says.
    pub async fn connect_with(
        server: &str,
        token: Option<&str>,
        tls: &TlsOptions,
    ) -> Result<Client, ClientError> {
        let url = server_url(server);
        let fail = |reason: String| ClientError::Connect {
            server: server.to_string(),
            reason,
        };
        let auth = match token.filter(|t| !t.is_empty()) {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| fail("the token is not a valid header value".into()))?,
            ),
            None => None,
        };
        let endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| fail(format!("bad address {url}: {}", error_chain(&e))))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let channel = tls.connect(endpoint).await.map_err(|e| {
            let text = error_chain(&e);
            match crate::tls::hint(&url, &text) {
                "" => fail(text),
                hint => fail(format!("{text} ({hint})")),
            }
        })?;
        let auth = BearerAuth(auth, user_name());
        Ok(Client {
            url,
            campaigns: CampaignsClient::with_interceptor(channel.clone(), auth.clone()),
            jobs: JobsClient::with_interceptor(channel.clone(), auth.clone()),
            logs: LogsClient::with_interceptor(channel.clone(), auth.clone()),
            instances: InstancesClient::with_interceptor(channel, auth),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    // ----- campaigns -----

    /// Stores a new campaign from its file (`file` names it in error messages).
    /// `AlreadyExists` when its id is taken; `InvalidArgument` for a broken file.
    pub async fn create(&self, file: &str, source: &str) -> Result<v1::Campaign, ClientError> {
        self.create_with_env(file, source, &[]).await
    }

    /// Stores a new campaign whose drones get `env` as `camut.env` (values marked
    /// secret are masked in every view and log).
    pub async fn create_with_env(
        &self,
        file: &str,
        source: &str,
        env: &[v1::EnvVar],
    ) -> Result<v1::Campaign, ClientError> {
        let req = v1::CreateCampaignRequest {
            file: file.to_string(),
            source: source.to_string(),
            env: env.to_vec(),
        };
        Ok(self
            .campaigns
            .clone()
            .create_campaign(req)
            .await?
            .into_inner())
    }

    /// Replaces the source of the campaign named by the id in the file; its
    /// environment stays.
    pub async fn update(&self, file: &str, source: &str) -> Result<v1::Campaign, ClientError> {
        self.update_with_env(file, source, None).await
    }

    /// Replaces the source of the campaign named by the id in the file, and its
    /// environment when `env` is given.
    pub async fn update_with_env(
        &self,
        file: &str,
        source: &str,
        env: Option<&[v1::EnvVar]>,
    ) -> Result<v1::Campaign, ClientError> {
        let req = v1::UpdateCampaignRequest {
            file: file.to_string(),
            source: source.to_string(),
            env: env.map(<[v1::EnvVar]>::to_vec).unwrap_or_default(),
            replace_env: env.is_some(),
        };
        Ok(self
            .campaigns
            .clone()
            .update_campaign(req)
            .await?
            .into_inner())
    }

    /// Checks a campaign file without storing it; `error` is empty when it is valid.
    pub async fn validate(
        &self,
        file: &str,
        source: &str,
    ) -> Result<v1::ValidateResponse, ClientError> {
        let req = v1::ValidateRequest {
            file: file.to_string(),
            source: source.to_string(),
        };
        Ok(self.campaigns.clone().validate(req).await?.into_inner())
    }

    /// Deletes a campaign that holds no instances.
    pub async fn delete(&self, id: &str) -> Result<(), ClientError> {
        self.campaigns.clone().delete_campaign(cref(id)).await?;
        Ok(())
    }

    /// One campaign.
    pub async fn get(&self, id: &str) -> Result<v1::Campaign, ClientError> {
        Ok(self
            .campaigns
            .clone()
            .get_campaign(cref(id))
            .await?
            .into_inner())
    }

    /// All campaigns, newest first.
    pub async fn list(&self) -> Result<Vec<v1::Campaign>, ClientError> {
        let req = v1::ListCampaignsRequest { limit: 0 };
        Ok(self
            .campaigns
            .clone()
            .list_campaigns(req)
            .await?
            .into_inner()
            .campaigns)
    }

    /// Queues the creation of the campaign's instances.
    pub async fn spawn(&self, id: &str) -> Result<v1::Job, ClientError> {
        Ok(self.campaigns.clone().spawn(cref(id)).await?.into_inner())
    }

    /// Queues the configuration of a drone on each instance.
    pub async fn deploy(&self, id: &str) -> Result<v1::Job, ClientError> {
        Ok(self.campaigns.clone().deploy(cref(id)).await?.into_inner())
    }

    /// Queues the start of the drones; the job ends when they have finished.
    pub async fn start(&self, id: &str) -> Result<v1::Job, ClientError> {
        Ok(self.campaigns.clone().start(cref(id)).await?.into_inner())
    }

    /// Queues a graceful stop of the drones (they stay).
    pub async fn stop(&self, id: &str) -> Result<v1::Job, ClientError> {
        Ok(self.campaigns.clone().stop(cref(id)).await?.into_inner())
    }

    /// Queues freeing the campaign's instances; clears its pending jobs.
    pub async fn kill(&self, id: &str) -> Result<v1::Job, ClientError> {
        Ok(self.campaigns.clone().kill(cref(id)).await?.into_inner())
    }

    /// The merged summary and threshold verdicts of a campaign's latest run, with the
    /// list of its finished runs.
    pub async fn results(&self, id: &str) -> Result<v1::CampaignResults, ClientError> {
        self.run_results(id, 0).await
    }

    /// The results of run `run` of a campaign (from 1; 0: the latest). `NotFound` for a
    /// run that does not exist.
    pub async fn run_results(
        &self,
        id: &str,
        run: u32,
    ) -> Result<v1::CampaignResults, ClientError> {
        let req = v1::RunRef {
            id: id.to_string(),
            run,
        };
        Ok(self.campaigns.clone().results(req).await?.into_inner())
    }

    /// The per-second series of the campaign's latest run, oldest first.
    pub async fn series(&self, id: &str) -> Result<v1::CampaignSeries, ClientError> {
        self.run_series(id, 0).await
    }

    /// The per-second series of run `run` of a campaign (0: the latest), oldest first.
    pub async fn run_series(&self, id: &str, run: u32) -> Result<v1::CampaignSeries, ClientError> {
        let req = v1::RunRef {
            id: id.to_string(),
            run,
        };
        Ok(self.campaigns.clone().series(req).await?.into_inner())
    }

    /// State changes, live statistics, drone events and log lines of a campaign.
    pub async fn watch(&self, id: &str) -> Result<Streaming<v1::CampaignEvent>, ClientError> {
        Ok(self.campaigns.clone().watch(cref(id)).await?.into_inner())
    }

    // ----- jobs -----

    /// One job.
    pub async fn job(&self, id: u64) -> Result<v1::Job, ClientError> {
        Ok(self
            .jobs
            .clone()
            .get_job(v1::JobRef { id })
            .await?
            .into_inner())
    }

    /// Jobs, newest first, of one campaign or of all.
    pub async fn jobs(&self, campaign: Option<&str>) -> Result<Vec<v1::Job>, ClientError> {
        self.list_jobs(v1::ListJobsRequest {
            campaign: campaign.unwrap_or_default().to_string(),
            ..Default::default()
        })
        .await
    }

    /// Jobs, newest first, with every filter of the API (campaign, state, limit).
    pub async fn list_jobs(&self, req: v1::ListJobsRequest) -> Result<Vec<v1::Job>, ClientError> {
        Ok(self.jobs.clone().list_jobs(req).await?.into_inner().jobs)
    }

    /// Cancels a queued or active job.
    pub async fn cancel_job(&self, id: u64) -> Result<v1::Job, ClientError> {
        Ok(self
            .jobs
            .clone()
            .cancel_job(v1::JobRef { id })
            .await?
            .into_inner())
    }

    /// Deletes a job that is not active.
    pub async fn delete_job(&self, id: u64) -> Result<(), ClientError> {
        self.jobs.clone().delete_job(v1::JobRef { id }).await?;
        Ok(())
    }

    /// Waits until a job is complete, failed or cancelled and returns it as it ended
    /// (a failed job is not an error here: look at its `state`).
    pub async fn wait_job(&self, id: u64) -> Result<v1::Job, ClientError> {
        self.wait_job_with(id, |_| {}).await
    }

    /// [`Client::wait_job`], calling `on_update` with the job now and at each change.
    ///
    /// Follows `Jobs.WatchJob`; when that stream ends or breaks before the job does (or
    /// the server cannot watch), asks `GetJob` every 200 ms instead, riding out a server
    /// that is unreachable for up to 30 s (a restart).
    pub async fn wait_job_with(
        &self,
        id: u64,
        mut on_update: impl FnMut(&v1::Job),
    ) -> Result<v1::Job, ClientError> {
        let mut last: Option<v1::Job> = None;
        match self.jobs.clone().watch_job(v1::JobRef { id }).await {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(job)) => {
                            on_update(&job);
                            if job_finished(&job) {
                                return Ok(job);
                            }
                            last = Some(job);
                        }
                        Ok(None) => break,
                        Err(s) if is_final_status(s.code()) => return Err(s.into()),
                        Err(_) => break,
                    }
                }
            }
            Err(s) if s.code() == Code::Unimplemented => {}
            Err(s) => return Err(s.into()),
        }
        let mut unreachable_since: Option<Instant> = None;
        loop {
            match self.job(id).await {
                Ok(job) => {
                    unreachable_since = None;
                    if last.as_ref() != Some(&job) {
                        on_update(&job);
                    }
                    if job_finished(&job) {
                        return Ok(job);
                    }
                    last = Some(job);
                }
                Err(ClientError::Status(s)) if s.code() == Code::Unavailable => {
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > UNAVAILABLE_GRACE {
                        return Err(s.into());
                    }
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    // ----- logs -----

    /// The server's last `lines` log lines (0: 100), then new ones when `follow` is set.
    pub async fn logs(
        &self,
        lines: u32,
        follow: bool,
    ) -> Result<Streaming<v1::LogLine>, ClientError> {
        self.tail(v1::TailRequest {
            lines,
            follow,
            ..Default::default()
        })
        .await
    }

    /// The server's log lines with every filter of the API (campaign, level).
    pub async fn tail(&self, req: v1::TailRequest) -> Result<Streaming<v1::LogLine>, ClientError> {
        Ok(self.logs.clone().tail(req).await?.into_inner())
    }

    // ----- instances -----

    /// The instances every deployer of the server holds, each marked with why it is a
    /// zombie (empty when not); only the zombies when `zombies_only`.
    pub async fn instances(
        &self,
        zombies_only: bool,
    ) -> Result<v1::ListManagedInstancesResponse, ClientError> {
        Ok(self
            .instances
            .clone()
            .list_instances(v1::ListManagedInstancesRequest { zombies_only })
            .await?
            .into_inner())
    }

    /// Frees the zombie instances.
    pub async fn reap_zombies(&self) -> Result<v1::ReapZombiesResponse, ClientError> {
        Ok(self
            .instances
            .clone()
            .reap_zombies(v1::ReapZombiesRequest {})
            .await?
            .into_inner())
    }

    // ----- the whole lifecycle -----

    /// Runs a campaign end to end and returns its results: creates it (or updates it
    /// when its id exists), then spawns, deploys and starts it, waiting for each job;
    /// the start job ends when the drones have finished. Steps the campaign's instances
    /// do not need again are skipped: after an update of a `spawned`, `finished` or
    /// `stopped` campaign it is deployed again, a `deployed` one is only started. A job
    /// that fails or is cancelled ends the run with [`ClientError::JobFailed`].
    ///
    /// The instances are left up: [`Client::kill`] frees them.
    pub async fn run_campaign(
        &self,
        file: &str,
        source: &str,
    ) -> Result<v1::CampaignResults, ClientError> {
        let campaign = match self.create(file, source).await {
            Ok(c) => c,
            Err(e) if e.code() == Some(Code::AlreadyExists) => self.update(file, source).await?,
            Err(e) => return Err(e),
        };
        let id = campaign.id.clone();
        // What the server accepts from each state: spawn from created or killed, deploy
        // from spawned, finished or stopped (instances still up), start from deployed.
        use v1::CampaignState::*;
        let (spawn, deploy) = match campaign.state() {
            Spawned | Finished | Stopped => (false, true),
            Deployed => (false, false),
            _ => (true, true),
        };
        if spawn {
            self.run_job(self.spawn(&id).await?).await?;
        }
        if deploy {
            self.run_job(self.deploy(&id).await?).await?;
        }
        self.run_job(self.start(&id).await?).await?;
        self.results(&id).await
    }

    /// Waits for a job; an error unless it completed.
    async fn run_job(&self, job: v1::Job) -> Result<v1::Job, ClientError> {
        let job = if job_finished(&job) {
            job
        } else {
            self.wait_job(job.id).await?
        };
        if job.state() == v1::JobState::Complete {
            Ok(job)
        } else {
            Err(ClientError::JobFailed {
                error: if job.error.is_empty() {
                    format!("job {} {}", job.id, job.state().label())
                } else {
                    job.error
                },
                kind: job.kind,
            })
        }
    }
}

fn cref(id: &str) -> v1::CampaignRef {
    v1::CampaignRef { id: id.to_string() }
}

/// Errors that polling would only repeat.
fn is_final_status(code: Code) -> bool {
    matches!(
        code,
        Code::NotFound | Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        assert_eq!(server_url("127.0.0.1:7200"), "http://127.0.0.1:7200");
        assert_eq!(server_url("localhost:9000"), "http://localhost:9000");
        assert_eq!(server_url("camut.internal"), "http://camut.internal:7200");
        assert_eq!(server_url("http://127.0.0.1:80/"), "http://127.0.0.1:80");
        assert_eq!(server_url("https://camut.example"), "https://camut.example");
        assert_eq!(server_url("[::1]:7300"), "http://[::1]:7300");
        assert_eq!(server_url("[::1]"), "http://[::1]:7200");
        assert_eq!(server_url("::1"), "http://[::1]:7200");
        assert_eq!(server_url(" 127.0.0.1:1 "), "http://127.0.0.1:1");
    }

    #[test]
    fn errors_read_well() {
        let e = ClientError::from(Status::failed_precondition(
            "campaign x is running; stop it first",
        ));
        assert_eq!(
            e.to_string(),
            "FailedPrecondition: campaign x is running; stop it first"
        );
        assert_eq!(e.code(), Some(Code::FailedPrecondition));
        assert!(std::error::Error::source(&e).is_none());
        let e = ClientError::from(Status::new(Code::NotFound, ""));
        assert_eq!(
            e.to_string(),
            "NotFound: Some requested entity was not found"
        );
        let e = ClientError::JobFailed {
            kind: "deploy".into(),
            error: "drone 1: compile error".into(),
        };
        assert_eq!(e.to_string(), "deploy job failed: drone 1: compile error");
    }

    #[test]
    fn finished_states() {
        let job = |state: &str| v1::Job {
            state: v1::JobState::from_label(state).map_or(0, |s| s as i32),
            ..Default::default()
        };
        assert!(job_finished(&job("complete")));
        assert!(job_finished(&job("failed")));
        assert!(job_finished(&job("cancelled")));
        assert!(!job_finished(&job("queued")));
        assert!(!job_finished(&job("active")));
    }

    #[tokio::test]
    async fn connect_refused_is_a_connect_error() {
        // A port just freed: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = Client::connect(&format!("127.0.0.1:{port}"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "{e}");
        assert!(e
            .to_string()
            .starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")));
        let e = Client::connect("127.0.0.1:1", Some("bad\ntoken"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("token"), "{e}");
    }

    /// An in-process stand-in for the server's Campaigns and Jobs services.
    mod mock {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};

        use tokio_stream::wrappers::TcpListenerStream;
        use tonic::{Request, Response, Status};

        use crate::v1;
        use crate::v1::campaigns_server::{Campaigns, CampaignsServer};
        use crate::v1::jobs_server::{Jobs, JobsServer};

        #[derive(Default)]
        pub struct State {
            /// `authorization` of every call.
            pub auth: Vec<Option<String>>,
            /// Control calls, `kind id`.
            pub calls: Vec<String>,
            pub campaigns: HashMap<String, v1::Campaign>,
            /// Each job's states still to come; the first is the current one.
            pub jobs: HashMap<u64, Vec<v1::Job>>,
            pub next_job: u64,
            /// The kind of job that fails.
            pub fail: Option<String>,
            /// WatchJob sends only the current state, then ends.
            pub cut_watch: bool,
            /// GetJob calls.
            pub polls: usize,
        }

        #[derive(Clone, Default)]
        pub struct Mock(pub Arc<Mutex<State>>);

        impl Mock {
            fn seen<T>(&self, req: &Request<T>) {
                let auth = req
                    .metadata()
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_string());
                self.0.lock().unwrap().auth.push(auth);
            }

            fn job(&self, kind: &str, id: &str) -> Result<Response<v1::Job>, Status> {
                let mut s = self.0.lock().unwrap();
                if !s.campaigns.contains_key(id) {
                    return Err(Status::not_found(format!("no campaign {id}")));
                }
                s.calls.push(format!("{kind} {id}"));
                s.next_job += 1;
                let base = v1::Job {
                    id: s.next_job,
                    campaign: id.into(),
                    kind: kind.into(),
                    progress_total: 2,
                    ..Default::default()
                };
                let step = |state: &str, done: u32, error: &str| v1::Job {
                    state: v1::JobState::from_label(state).map_or(0, |s| s as i32),
                    progress_done: done,
                    error: error.into(),
                    log: (0..done).map(|i| format!("{kind} step {i}")).collect(),
                    ..base.clone()
                };
                let end = if s.fail.as_deref() == Some(kind) {
                    step("failed", 1, "boom")
                } else {
                    step("complete", 2, "")
                };
                let states = vec![step("queued", 0, ""), step("active", 1, ""), end];
                let first = states[0].clone();
                s.jobs.insert(base.id, states);
                Ok(Response::new(first))
            }

            fn advance(&self, id: u64) -> Result<Vec<v1::Job>, Status> {
                let mut s = self.0.lock().unwrap();
                let states = s
                    .jobs
                    .get_mut(&id)
                    .ok_or_else(|| Status::not_found(format!("no job {id}")))?;
                let now = states.clone();
                if states.len() > 1 {
                    states.remove(0);
                }
                Ok(now)
            }
        }

        type JobStream = tokio_stream::Iter<std::vec::IntoIter<Result<v1::Job, Status>>>;
        type EventStream =
            tokio_stream::Iter<std::vec::IntoIter<Result<v1::CampaignEvent, Status>>>;

        #[tonic::async_trait]
        impl Jobs for Mock {
            async fn list_jobs(
                &self,
                _: Request<v1::ListJobsRequest>,
            ) -> Result<Response<v1::ListJobsResponse>, Status> {
                Err(Status::unimplemented("list"))
            }
            async fn get_job(&self, req: Request<v1::JobRef>) -> Result<Response<v1::Job>, Status> {
                self.seen(&req);
                self.0.lock().unwrap().polls += 1;
                let states = self.advance(req.get_ref().id)?;
                Ok(Response::new(states[0].clone()))
            }
            type WatchJobStream = JobStream;
            async fn watch_job(
                &self,
                req: Request<v1::JobRef>,
            ) -> Result<Response<JobStream>, Status> {
                self.seen(&req);
                let id = req.get_ref().id;
                let cut = self.0.lock().unwrap().cut_watch;
                let states = if cut {
                    vec![self.advance(id)?.remove(0)]
                } else {
                    let mut all = Vec::new();
                    loop {
                        let now = self.advance(id)?;
                        all.push(now[0].clone());
                        if now.len() == 1 {
                            break all;
                        }
                    }
                };
                Ok(Response::new(tokio_stream::iter(
                    states.into_iter().map(Ok).collect::<Vec<_>>(),
                )))
            }
            async fn cancel_job(
                &self,
                _: Request<v1::JobRef>,
            ) -> Result<Response<v1::Job>, Status> {
                Err(Status::unimplemented("cancel"))
            }
            async fn delete_job(
                &self,
                _: Request<v1::JobRef>,
            ) -> Result<Response<v1::DeleteJobResponse>, Status> {
                Err(Status::unimplemented("delete"))
            }
        }

        /// The id of a mock campaign file is its source text.
        #[tonic::async_trait]
        impl Campaigns for Mock {
            async fn create_campaign(
                &self,
                req: Request<v1::CreateCampaignRequest>,
            ) -> Result<Response<v1::Campaign>, Status> {
                self.seen(&req);
                let r = req.into_inner();
                let mut s = self.0.lock().unwrap();
                if s.campaigns.contains_key(&r.source) {
                    return Err(Status::already_exists(format!("{} exists", r.source)));
                }
                s.calls.push(format!("create {}", r.source));
                let c = v1::Campaign {
                    id: r.source.clone(),
                    state: v1::CampaignState::Created as i32,
                    file: r.file,
                    ..Default::default()
                };
                s.campaigns.insert(r.source, c.clone());
                Ok(Response::new(c))
            }
            async fn update_campaign(
                &self,
                req: Request<v1::UpdateCampaignRequest>,
            ) -> Result<Response<v1::Campaign>, Status> {
                self.seen(&req);
                let r = req.into_inner();
                let mut s = self.0.lock().unwrap();
                s.calls.push(format!("update {}", r.source));
                s.campaigns
                    .get(&r.source)
                    .cloned()
                    .map(Response::new)
                    .ok_or_else(|| Status::not_found("no such campaign"))
            }
            async fn delete_campaign(
                &self,
                _: Request<v1::CampaignRef>,
            ) -> Result<Response<v1::DeleteCampaignResponse>, Status> {
                Err(Status::unimplemented("delete"))
            }
            async fn get_campaign(
                &self,
                _: Request<v1::CampaignRef>,
            ) -> Result<Response<v1::Campaign>, Status> {
                Err(Status::unimplemented("get"))
            }
            async fn list_campaigns(
                &self,
                _: Request<v1::ListCampaignsRequest>,
            ) -> Result<Response<v1::ListCampaignsResponse>, Status> {
                Err(Status::unimplemented("list"))
            }
            async fn spawn(
                &self,
                req: Request<v1::CampaignRef>,
            ) -> Result<Response<v1::Job>, Status> {
                self.job("spawn", &req.get_ref().id)
            }
            async fn deploy(
                &self,
                req: Request<v1::CampaignRef>,
            ) -> Result<Response<v1::Job>, Status> {
                self.job("deploy", &req.get_ref().id)
            }
            async fn start(
                &self,
                req: Request<v1::CampaignRef>,
            ) -> Result<Response<v1::Job>, Status> {
                self.job("start", &req.get_ref().id)
            }
            async fn stop(
                &self,
                req: Request<v1::CampaignRef>,
            ) -> Result<Response<v1::Job>, Status> {
                self.job("stop", &req.get_ref().id)
            }
            async fn kill(
                &self,
                req: Request<v1::CampaignRef>,
            ) -> Result<Response<v1::Job>, Status> {
                self.job("kill", &req.get_ref().id)
            }
            type WatchStream = EventStream;
            async fn watch(
                &self,
                _: Request<v1::CampaignRef>,
            ) -> Result<Response<EventStream>, Status> {
                Err(Status::unimplemented("watch"))
            }
            async fn results(
                &self,
                req: Request<v1::RunRef>,
            ) -> Result<Response<v1::CampaignResults>, Status> {
                let id = req.into_inner().id;
                self.0.lock().unwrap().calls.push(format!("results {id}"));
                Ok(Response::new(v1::CampaignResults {
                    id,
                    state: v1::CampaignState::Finished as i32,
                    thresholds_ok: true,
                    ..Default::default()
                }))
            }
            async fn series(
                &self,
                _: Request<v1::RunRef>,
            ) -> Result<Response<v1::CampaignSeries>, Status> {
                Err(Status::unimplemented("series"))
            }
            async fn validate(
                &self,
                _: Request<v1::ValidateRequest>,
            ) -> Result<Response<v1::ValidateResponse>, Status> {
                Err(Status::unimplemented("validate"))
            }
        }

        /// Serves the mock on a loopback port; returns its address.
        pub async fn serve(mock: Mock) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(CampaignsServer::new(mock.clone()))
                    .add_service(JobsServer::new(mock))
                    .serve_with_incoming(TcpListenerStream::new(listener)),
            );
            addr.to_string()
        }
    }

    #[tokio::test]
    async fn run_campaign_creates_then_updates_and_sends_the_token() {
        let m = mock::Mock::default();
        let addr = mock::serve(m.clone()).await;
        let client = Client::connect(&addr, Some("s3cret")).await.unwrap();
        let r = client.run_campaign("a.js", "shop").await.unwrap();
        assert_eq!(r.id, "shop");
        assert!(r.thresholds_ok);
        let r = client.run_campaign("a.js", "shop").await.unwrap();
        assert_eq!(r.id, "shop");
        let s = m.0.lock().unwrap();
        let calls: Vec<&str> = s.calls.iter().map(String::as_str).collect();
        assert_eq!(
            calls,
            [
                "create shop",
                "spawn shop",
                "deploy shop",
                "start shop",
                "results shop",
                "update shop",
                "spawn shop",
                "deploy shop",
                "start shop",
                "results shop"
            ]
        );
        assert!(!s.auth.is_empty());
        assert!(s.auth.iter().all(|a| a.as_deref() == Some("Bearer s3cret")));
        // Watching was enough: no polling.
        assert_eq!(s.polls, 0);
    }

    #[tokio::test]
    async fn a_failed_job_ends_the_run_with_its_error() {
        let m = mock::Mock::default();
        m.0.lock().unwrap().fail = Some("deploy".into());
        let addr = mock::serve(m.clone()).await;
        let client = Client::connect(&format!("http://{addr}"), None)
            .await
            .unwrap();
        let e = client.run_campaign("a.js", "shop").await.unwrap_err();
        match &e {
            ClientError::JobFailed { kind, error } => {
                assert_eq!(kind, "deploy");
                assert_eq!(error, "boom");
            }
            other => panic!("{other}"),
        }
        let s = m.0.lock().unwrap();
        assert!(!s.calls.iter().any(|c| c.starts_with("start")));
        assert!(s.auth.iter().all(Option::is_none));
    }

    #[tokio::test]
    async fn waiting_falls_back_to_polling_when_the_watch_ends_early() {
        let m = mock::Mock::default();
        m.0.lock().unwrap().cut_watch = true;
        let addr = mock::serve(m.clone()).await;
        let client = Client::connect(&addr, None).await.unwrap();
        client.create("a.js", "shop").await.unwrap();
        let job = client.spawn("shop").await.unwrap();
        assert_eq!(job.state(), v1::JobState::Queued);
        let mut seen = Vec::new();
        let end = client
            .wait_job_with(job.id, |j| seen.push(j.state().label()))
            .await
            .unwrap();
        assert_eq!(end.state(), v1::JobState::Complete);
        assert_eq!(end.progress_done, 2);
        assert_eq!(seen, ["queued", "active", "complete"]);
        assert!(m.0.lock().unwrap().polls >= 2);
        let e = client.wait_job(999).await.unwrap_err();
        assert_eq!(e.code(), Some(Code::NotFound));
    }
}
