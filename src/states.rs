//! Short names of the API's state enums (`running`, `complete`, …), as the CLI, the
//! console and the store write them.

use crate::v1::{CampaignState, DroneState, JobState};

macro_rules! labels {
    ($name:ident { $($variant:ident = $text:literal,)+ }) => {
        impl $name {
            /// The short name (`"unspecified"` for the zero value).
            pub fn label(self) -> &'static str {
                match self {
                    $name::Unspecified => "unspecified",
                    $($name::$variant => $text,)+
                }
            }

            /// The value of a short name.
            pub fn from_label(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

labels!(CampaignState {
    Created = "created",
    Spawned = "spawned",
    Deployed = "deployed",
    Running = "running",
    Finished = "finished",
    Stopped = "stopped",
    Killed = "killed",
});

labels!(JobState {
    Queued = "queued",
    Active = "active",
    Complete = "complete",
    Failed = "failed",
    Cancelled = "cancelled",
});

labels!(DroneState {
    Connected = "connected",
    Ready = "ready",
    Error = "error",
    Running = "running",
    Finished = "finished",
    Disconnected = "disconnected",
    Lost = "lost",
});

impl JobState {
    /// Whether a job in this state has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Complete | JobState::Failed | JobState::Cancelled
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip() {
        for s in [CampaignState::Created, CampaignState::Killed] {
            assert_eq!(CampaignState::from_label(s.label()), Some(s));
        }
        assert_eq!(JobState::from_label("complete"), Some(JobState::Complete));
        assert_eq!(DroneState::Lost.label(), "lost");
        assert_eq!(JobState::from_label("done"), None);
        assert!(JobState::Cancelled.is_final() && !JobState::Active.is_final());
    }
}
