//! What the server knows of a campaign file, and its lifecycle rules.
//!
//! The server never evaluates JavaScript: an [`Inspector`] given at start-up (the engine's
//! loader, wired by the binary) turns a file into [`CampaignInfo`].

use camut_stats::Threshold;
use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::state::CampaignState;
pub use crate::state::Command;

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
    /// Distinct operations the campaign's merged statistics keep (`maxOperations`).
    #[serde(default = "default_max_operations")]
    pub max_operations: u32,
}

fn default_max_operations() -> u32 {
    camut_stats::cap::DEFAULT_MAX_OPERATIONS
}

impl CampaignInfo {
    /// What is known of a campaign whose stored options cannot be read: its id.
    pub fn unreadable(id: &str) -> CampaignInfo {
        CampaignInfo {
            id: id.into(),
            drones: 0,
            min_drones: 0,
            users: 0,
            deployer: None,
            zone: None,
            instance_type: None,
            image: None,
            abort_on_drone_loss: false,
            thresholds: Vec::new(),
            iterations_per_drone: 0,
            max_operations: default_max_operations(),
        }
    }
}

/// Turns campaign source into [`CampaignInfo`], or a clear error (with file:line:column).
pub trait Inspector: Send + Sync + 'static {
    /// Inspects `source`, named `file` in errors.
    fn inspect(&self, file: &str, source: &str) -> Result<CampaignInfo, String>;
}

impl Command {
    /// The state the campaign is headed for once the command is accepted: a start
    /// makes it running (and later finished or stopped).
    pub fn projected(self) -> CampaignState {
        match self {
            Command::Spawn => CampaignState::Spawned,
            Command::Deploy => CampaignState::Deployed,
            Command::Start => CampaignState::Running,
            Command::Stop => CampaignState::Stopped,
            Command::Kill => CampaignState::Killed,
        }
    }

    /// Refuses the command in the wrong state, saying what to do.
    pub fn check(self, campaign: &str, state: CampaignState) -> Result<(), ServerError> {
        use CampaignState::*;
        let ok = match self {
            Command::Spawn => matches!(state, Created | Killed),
            Command::Deploy => matches!(state, Spawned | Finished | Stopped),
            Command::Start => state == Deployed,
            Command::Stop => state == Running,
            Command::Kill => state != Created,
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
            state,
            what: what.into(),
        })
    }
}

/// Refuses an update that changes the number of drones or the zone, or of a running campaign.
pub fn check_update(
    old: &CampaignInfo,
    new: &CampaignInfo,
    state: CampaignState,
) -> Result<(), ServerError> {
    let refuse = |what: String| {
        Err(ServerError::WrongState {
            campaign: old.id.clone(),
            state,
            what,
        })
    };
    if state == CampaignState::Running {
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
            max_operations: 10,
        }
    }

    #[test]
    fn lifecycle_rules() {
        use CampaignState::*;
        assert!(Command::Spawn.check("c", Created).is_ok());
        assert!(Command::Start
            .check("c", Spawned)
            .unwrap_err()
            .to_string()
            .contains("deploy first"));
        assert!(Command::Kill.check("c", Running).is_ok());
        assert!(Command::Stop.check("c", Finished).is_err());
        assert!(Command::Deploy.check("c", Finished).is_ok());
    }

    #[test]
    fn update_rules() {
        use CampaignState::*;
        assert!(check_update(&info(2, None), &info(2, None), Spawned).is_ok());
        let e = check_update(&info(2, None), &info(3, None), Created)
            .unwrap_err()
            .to_string();
        assert!(e.contains("delete the campaign and create it again"), "{e}");
        assert!(check_update(&info(2, Some("a")), &info(2, Some("b")), Created).is_err());
        assert!(check_update(&info(2, None), &info(2, None), Running).is_err());
    }
}
