//! The gRPC services: thin layers that turn requests into [`Core`] calls and
//! [`ServerError`]s into typed statuses.

use std::pin::Pin;
use std::sync::Arc;

use camut::v1::{
    self, campaigns_server::Campaigns, drones_server::Drones, jobs_server::Jobs, logs_server::Logs,
};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::core::Core;
use crate::env::CampaignEnv;
use crate::error::ServerError;
use crate::logs::{level_rank, matches};
use crate::state::{Command, JobState};
use crate::store::{now_ms, CommandRow, JobRow};

type Result<T> = std::result::Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

/// Serves Campaigns, Jobs, Drones and Logs over one [`Core`].
#[derive(Clone)]
pub struct Api(pub Arc<Core>);

fn job_view(j: JobRow) -> v1::Job {
    v1::Job {
        id: j.id,
        campaign: j.campaign,
        kind: j.kind.as_str().into(),
        state: j.state.wire(),
        progress_done: j.progress_done,
        progress_total: j.progress_total,
        error: j.error,
        log: j.log,
        created_ms: j.created_ms,
        updated_ms: j.updated_ms,
    }
}

fn required(field: &str, value: &str) -> std::result::Result<(), Status> {
    if value.trim().is_empty() {
        return Err(ServerError::InvalidArgument {
            field: field.into(),
            message: "must not be empty".into(),
        }
        .into());
    }
    Ok(())
}

/// Marks a call made by the web console. Only the console sets it (a request's
/// extensions never come from the wire), so the command log can tell UI calls apart.
#[derive(Debug, Clone)]
pub struct FromConsole {
    /// The browser's address, when known.
    pub peer: Option<std::net::SocketAddr>,
}

/// Metadata key naming the principal of a call in the command log.
pub const USER_HEADER: &str = "x-camut-user";

/// Who made a call: (principal, origin). The principal is the `x-camut-user` value
/// (letters, digits and `._@-`, at most 64), or `anonymous`; it is an attribution
/// the caller states, not an identity the server checks.
fn caller<T>(r: &Request<T>) -> (String, String) {
    let who: String = r
        .metadata()
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._@-".contains(*c))
        .take(64)
        .collect();
    let who = if who.is_empty() {
        "anonymous".to_string()
    } else {
        who
    };
    let origin = match r.extensions().get::<FromConsole>() {
        Some(ui) => match ui.peer {
            Some(p) => format!("ui {p}"),
            None => "ui".to_string(),
        },
        None => match r.remote_addr() {
            Some(p) => format!("grpc {p}"),
            None => "grpc".to_string(),
        },
    };
    (who, origin)
}

impl Api {
    /// Writes a mutating call and its outcome to the command log.
    async fn audited<T>(
        &self,
        (who, origin): (String, String),
        action: &str,
        target: &str,
        out: Result<T>,
        describe: impl FnOnce(&T) -> String,
    ) -> Result<T> {
        let (ok, result) = match &out {
            Ok(r) => (true, describe(r.get_ref())),
            Err(s) => (false, s.message().to_string()),
        };
        let row = CommandRow {
            id: 0,
            time_ms: now_ms(),
            who,
            origin,
            action: action.into(),
            target: target.into(),
            ok,
            result,
        };
        if let Err(e) = self.0.store.record_command(row).await {
            tracing::error!(action, target, "cannot record the command: {e}");
        }
        out
    }

    async fn control(&self, r: Request<v1::CampaignRef>, cmd: Command) -> Result<v1::Job> {
        let who = caller(&r);
        let target = r.get_ref().id.clone();
        let out = self.command(r, cmd).await;
        self.audited(who, cmd.name(), &target, out, |j| format!("job {}", j.id))
            .await
    }

    async fn command(&self, r: Request<v1::CampaignRef>, cmd: Command) -> Result<v1::Job> {
        let id = r.into_inner().id;
        required("id", &id)?;
        Ok(Response::new(job_view(self.0.submit(&id, cmd).await?)))
    }

    async fn create_inner(&self, r: Request<v1::CreateCampaignRequest>) -> Result<v1::Campaign> {
        let r = r.into_inner();
        required("source", &r.source)?;
        let file = if r.file.is_empty() {
            "campaign.js".to_string()
        } else {
            r.file
        };
        let env = CampaignEnv::from_wire(&r.env)?;
        let row = self.0.create(&file, &r.source, &env).await?;
        Ok(Response::new(self.0.campaign_view(&row)?))
    }

    async fn update_inner(&self, r: Request<v1::UpdateCampaignRequest>) -> Result<v1::Campaign> {
        let r = r.into_inner();
        required("source", &r.source)?;
        let file = if r.file.is_empty() {
            "campaign.js".to_string()
        } else {
            r.file
        };
        let env = if r.replace_env {
            Some(CampaignEnv::from_wire(&r.env)?)
        } else {
            None
        };
        let row = self.0.update(&file, &r.source, env.as_ref()).await?;
        Ok(Response::new(self.0.campaign_view(&row)?))
    }
}

#[tonic::async_trait]
impl Campaigns for Api {
    async fn create_campaign(&self, r: Request<v1::CreateCampaignRequest>) -> Result<v1::Campaign> {
        let who = caller(&r);
        let file = r.get_ref().file.clone();
        let out = self.create_inner(r).await;
        let target = out.as_ref().map_or(file, |c| c.get_ref().id.clone());
        self.audited(who, "create", &target, out, |c| format!("created {}", c.id))
            .await
    }

    async fn update_campaign(&self, r: Request<v1::UpdateCampaignRequest>) -> Result<v1::Campaign> {
        let who = caller(&r);
        let file = r.get_ref().file.clone();
        let out = self.update_inner(r).await;
        let target = out.as_ref().map_or(file, |c| c.get_ref().id.clone());
        self.audited(who, "update", &target, out, |c| {
            format!("{} is {}", c.id, c.state)
        })
        .await
    }

    async fn delete_campaign(
        &self,
        r: Request<v1::CampaignRef>,
    ) -> Result<v1::DeleteCampaignResponse> {
        let who = caller(&r);
        let id = r.into_inner().id;
        let out = self
            .0
            .delete(&id)
            .await
            .map(|()| Response::new(v1::DeleteCampaignResponse { id: id.clone() }))
            .map_err(Status::from);
        self.audited(who, "delete", &id, out, |_| "deleted".into())
            .await
    }

    async fn get_campaign(&self, r: Request<v1::CampaignRef>) -> Result<v1::Campaign> {
        let row = self.0.campaign_row(&r.into_inner().id)?;
        Ok(Response::new(self.0.campaign_view(&row)?))
    }

    async fn list_campaigns(
        &self,
        r: Request<v1::ListCampaignsRequest>,
    ) -> Result<v1::ListCampaignsResponse> {
        let rows = self.0.store.campaigns(r.into_inner().limit)?;
        let campaigns = rows
            .iter()
            .map(|row| self.0.campaign_view(row))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Response::new(v1::ListCampaignsResponse { campaigns }))
    }

    async fn spawn(&self, r: Request<v1::CampaignRef>) -> Result<v1::Job> {
        self.control(r, Command::Spawn).await
    }

    async fn deploy(&self, r: Request<v1::CampaignRef>) -> Result<v1::Job> {
        self.control(r, Command::Deploy).await
    }

    async fn start(&self, r: Request<v1::CampaignRef>) -> Result<v1::Job> {
        self.control(r, Command::Start).await
    }

    async fn stop(&self, r: Request<v1::CampaignRef>) -> Result<v1::Job> {
        self.control(r, Command::Stop).await
    }

    async fn kill(&self, r: Request<v1::CampaignRef>) -> Result<v1::Job> {
        self.control(r, Command::Kill).await
    }

    type WatchStream = BoxStream<v1::CampaignEvent>;

    async fn watch(&self, r: Request<v1::CampaignRef>) -> Result<Self::WatchStream> {
        let id = r.into_inner().id;
        let row = self.0.campaign_row(&id)?;
        let first = v1::CampaignEvent {
            time_ms: crate::store::now_ms(),
            event: Some(v1::campaign_event::Event::State(row.state.wire())),
        };
        let rx = self.0.subscribe(&id);
        let rest = BroadcastStream::new(rx).filter_map(|e| match e {
            Ok(e) => Some(Ok(e)),
            Err(BroadcastStreamRecvError::Lagged(_)) => None,
        });
        Ok(Response::new(Box::pin(
            tokio_stream::once(Ok(first)).chain(rest),
        )))
    }

    async fn results(&self, r: Request<v1::RunRef>) -> Result<v1::CampaignResults> {
        let r = r.into_inner();
        Ok(Response::new(self.0.results(&r.id, r.run)?))
    }

    async fn series(&self, r: Request<v1::RunRef>) -> Result<v1::CampaignSeries> {
        let r = r.into_inner();
        Ok(Response::new(self.0.series(&r.id, r.run)?))
    }

    async fn validate(&self, r: Request<v1::ValidateRequest>) -> Result<v1::ValidateResponse> {
        let r = r.into_inner();
        let file = if r.file.is_empty() {
            "campaign.js".to_string()
        } else {
            r.file
        };
        Ok(Response::new(
            match self.0.inspect_only(&file, &r.source).await {
                Ok(id) => v1::ValidateResponse {
                    id,
                    error: String::new(),
                },
                Err(error) => v1::ValidateResponse {
                    id: String::new(),
                    error,
                },
            },
        ))
    }
}

#[tonic::async_trait]
impl Jobs for Api {
    async fn list_jobs(&self, r: Request<v1::ListJobsRequest>) -> Result<v1::ListJobsResponse> {
        let r = r.into_inner();
        let state = match v1::JobState::try_from(r.state) {
            Ok(w) => JobState::from_wire(w),
            Err(_) => {
                return Err(ServerError::InvalidArgument {
                    field: "state".into(),
                    message: format!("{} is no JobState", r.state),
                }
                .into())
            }
        };
        let jobs = self
            .0
            .store
            .jobs(&r.campaign, state, r.limit)?
            .into_iter()
            .map(job_view)
            .collect();
        Ok(Response::new(v1::ListJobsResponse { jobs }))
    }

    async fn get_job(&self, r: Request<v1::JobRef>) -> Result<v1::Job> {
        let id = r.into_inner().id;
        Ok(Response::new(job_view(
            self.0.store.job(id)?.ok_or(ServerError::JobNotFound(id))?,
        )))
    }

    type WatchJobStream = BoxStream<v1::Job>;

    async fn watch_job(&self, r: Request<v1::JobRef>) -> Result<Self::WatchJobStream> {
        let id = r.into_inner().id;
        // Subscribe before reading, so that no change falls between the two.
        let rx = self.0.jobs.feed.subscribe();
        let now = self.0.store.job(id)?.ok_or(ServerError::JobNotFound(id))?;
        let ended = |s: JobState| !s.is_open();
        let done = ended(now.state);
        let first = tokio_stream::once(Ok(job_view(now)));
        if done {
            return Ok(Response::new(Box::pin(first)));
        }
        let mut finished = false;
        let rest = BroadcastStream::new(rx)
            .filter_map(move |j| match j {
                Ok(j) if j.id == id => Some(j),
                _ => None,
            })
            .take_while(move |j| {
                let go = !finished;
                finished = ended(j.state);
                go
            })
            .map(|j| Ok(job_view(j)));
        Ok(Response::new(Box::pin(first.chain(rest))))
    }

    async fn cancel_job(&self, r: Request<v1::JobRef>) -> Result<v1::Job> {
        let who = caller(&r);
        let id = r.into_inner().id;
        let out = self
            .0
            .cancel_job(id)
            .await
            .map(|j| Response::new(job_view(j)))
            .map_err(Status::from);
        self.audited(who, "cancel-job", &format!("job {id}"), out, |j| {
            format!("cancel asked while job {id} was {}", j.state)
        })
        .await
    }

    async fn delete_job(&self, r: Request<v1::JobRef>) -> Result<v1::DeleteJobResponse> {
        let who = caller(&r);
        let id = r.into_inner().id;
        let out = self
            .0
            .delete_job(id)
            .await
            .map(|()| Response::new(v1::DeleteJobResponse { id }))
            .map_err(Status::from);
        self.audited(who, "delete-job", &format!("job {id}"), out, |_| {
            "deleted".into()
        })
        .await
    }
}

#[tonic::async_trait]
impl Drones for Api {
    type ConnectStream = crate::hub::CommandStream;

    async fn connect(
        &self,
        r: Request<Streaming<v1::DroneMessage>>,
    ) -> Result<Self::ConnectStream> {
        crate::hub::connect(self.0.clone(), r).await
    }
}

#[tonic::async_trait]
impl Logs for Api {
    type TailStream = BoxStream<v1::LogLine>;

    async fn tail(&self, r: Request<v1::TailRequest>) -> Result<Self::TailStream> {
        let r = r.into_inner();
        let n = if r.lines == 0 { 100 } else { r.lines as usize };
        let min = level_rank(if r.level.is_empty() {
            "debug"
        } else {
            &r.level
        });
        let rx = self.0.logs.subscribe();
        let history = self.0.logs.recent(n, &r.campaign, min);
        let first = tokio_stream::iter(history.into_iter().map(Ok));
        if !r.follow {
            return Ok(Response::new(Box::pin(first)));
        }
        let campaign = r.campaign.clone();
        let live = BroadcastStream::new(rx).filter_map(move |l| match l {
            Ok(l) if matches(&l, &campaign, min) => Some(Ok(l)),
            _ => None,
        });
        Ok(Response::new(Box::pin(first.chain(live))))
    }
}
