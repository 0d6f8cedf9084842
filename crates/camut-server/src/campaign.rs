//! What the server knows of a campaign file, and its lifecycle rules.
//!
//! The server never evaluates JavaScript: an [`Inspector`] given at start-up (the engine's
//! loader, wired by the binary) turns a file into [`CampaignInfo`].

use camut_stats::Threshold;
use serde::{Deserialize, Serialize};

use crate::error::ServerError;

/// The options of a campaign the server acts on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CampaignInfo {
    /// Campaign id.
    pub id: String,
    /// Instances asked for.
    pub drones: u32,
    /// Fewest instances to run with.
    pub min_drones: u32,
    /// VUs per drone.
    pub users: u32,
    /// Deployer name, if the file names one.
    pub deployer: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Instance type.
    pub instance_type: Option<String>,
    /// Image (e.g. an AMI id), if the file names one (`deploy.image`).
    #[serde(default)]
    pub image: Option<String>,
    /// Whether losing a drone aborts the campaign.
    pub abort_on_drone_loss: bool,
    /// Thresholds.
    pub thresholds: Vec<Threshold>,
    /// Iterations per drone (0 in duration mode).
    pub iterations_per_drone: u64,
}

/// Turns campaign source into [`CampaignInfo`], or a clear error (with file:line:column).
pub trait Inspector: Send + Sync + 'static {
    /// Inspects `source`, named `file` in errors.
    fn inspect(&self, file: &str, source: &str) -> Result<CampaignInfo, String>;
}

/// Lifecycle states.
pub mod state {
    /// Stored, no instances.
    pub const CREATED: &str = "created";
    /// Instances exist.
    pub const SPAWNED: &str = "spawned";
    /// Drones configured and ready.
    pub const DEPLOYED: &str = "deployed";
    /// Drones running.
    pub const RUNNING: &str = "running";
    /// Run over.
    pub const FINISHED: &str = "finished";
    /// Stopped by the operator or a threshold.
    pub const STOPPED: &str = "stopped";
    /// Instances freed, campaign kept.
    pub const KILLED: &str = "killed";
}

/// A control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Create instances.
    Spawn,
    /// Configure drones.
    Deploy,
    /// Run.
    Start,
    /// Stop the run.
    Stop,
    /// Free the instances.
    Kill,
}

impl Command {
    /// The job kind name.
    pub fn name(self) -> &'static str {
        match self {
            Command::Spawn => "spawn",
            Command::Deploy => "deploy",
            Command::Start => "start",
            Command::Stop => "stop",
            Command::Kill => "kill",
        }
    }

    /// The state the campaign reaches when the command succeeds.
    pub fn target(self) -> &'static str {
        match self {
            Command::Spawn => state::SPAWNED,
            Command::Deploy => state::DEPLOYED,
            Command::Start => state::FINISHED,
            Command::Stop => state::STOPPED,
            Command::Kill => state::KILLED,
        }
    }

    /// Refuses the command in the wrong state, saying what to do.
    pub fn check(self, campaign: &str, state: &str) -> Result<(), ServerError> {
        use state::*;
        let ok = match self {
            Command::Spawn => [CREATED, KILLED].contains(&state),
            Command::Deploy => [SPAWNED, FINISHED, STOPPED].contains(&state),
            Command::Start => state == DEPLOYED,
            Command::Stop => state == RUNNING,
            Command::Kill => state != CREATED,
        };
        if ok {
            return Ok(());
        }
        let what = match self {
            Command::Spawn => {
                "spawn needs a created or killed campaign; kill it first to start over"
            }
            Command::Deploy => {
                "deploy needs spawned instances: spawn first (or kill and spawn again)"
            }
            Command::Start => {
                "start needs a deployed campaign: deploy first (a finished run needs a new deploy)"
            }
            Command::Stop => "only a running campaign can be stopped",
            Command::Kill => "a created campaign holds no instances: nothing to kill",
        };
        Err(ServerError::WrongState {
            campaign: campaign.into(),
            state: state.into(),
            what: what.into(),
        })
    }
}

/// Refuses an update that changes the number of drones or the zone, or of a running campaign.
pub fn check_update(
    old: &CampaignInfo,
    new: &CampaignInfo,
    state: &str,
) -> Result<(), ServerError> {
    let refuse = |what: String| {
        Err(ServerError::WrongState {
            campaign: old.id.clone(),
            state: state.into(),
            what,
        })
    };
    if state == state::RUNNING {
        return refuse("a running campaign cannot be updated; stop it first".into());
    }
    if old.drones != new.drones {
        return refuse(format!(
            "update cannot change the number of drones ({} → {}): delete the campaign and create it again",
            old.drones, new.drones
        ));
    }
    if old.zone != new.zone {
        return refuse(format!(
            "update cannot change the zone ({:?} → {:?}): delete the campaign and create it again",
            old.zone.as_deref().unwrap_or("default"),
            new.zone.as_deref().unwrap_or("default")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(drones: u32, zone: Option<&str>) -> CampaignInfo {
        CampaignInfo {
            id: "c".into(),
            drones,
            min_drones: drones,
            users: 1,
            deployer: None,
            zone: zone.map(Into::into),
            instance_type: None,
            image: None,
            abort_on_drone_loss: false,
            thresholds: Vec::new(),
            iterations_per_drone: 1,
        }
    }

    #[test]
    fn lifecycle_rules() {
        assert!(Command::Spawn.check("c", "created").is_ok());
        assert!(Command::Start
            .check("c", "spawned")
            .unwrap_err()
            .to_string()
            .contains("deploy first"));
        assert!(Command::Kill.check("c", "running").is_ok());
        assert!(Command::Stop.check("c", "finished").is_err());
        assert!(Command::Deploy.check("c", "finished").is_ok());
    }

    #[test]
    fn update_rules() {
        assert!(check_update(&info(2, None), &info(2, None), "spawned").is_ok());
        let e = check_update(&info(2, None), &info(3, None), "created")
            .unwrap_err()
            .to_string();
        assert!(e.contains("delete the campaign and create it again"), "{e}");
        assert!(check_update(&info(2, Some("a")), &info(2, Some("b")), "created").is_err());
        assert!(check_update(&info(2, None), &info(2, None), "running").is_err());
    }
}
