//! The typed states of campaigns, jobs and drones. Inside the server a state is always
//! one of these enums; text appears only in the store's columns and at the API edge.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// Declares a state enum with its one text form, used by the store and the API.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in lifecycle order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The text form (store column, API field).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownState {
                        kind: stringify!($name),
                        text: other.to_string(),
                    }),
                }
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: UnknownState| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

/// A state text that names no known state (a store written by a newer server, or a
/// filter typed by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a {kind}")]
pub struct UnknownState {
    /// Which enum was asked for.
    pub kind: &'static str,
    /// The text given.
    pub text: String,
}

text_enum! {
    /// Where a campaign is in its lifecycle.
    CampaignState {
        /// Stored, no instances.
        Created = "created",
        /// Instances exist.
        Spawned = "spawned",
        /// Drones configured and ready.
        Deployed = "deployed",
        /// Drones running.
        Running = "running",
        /// Run over.
        Finished = "finished",
        /// Stopped by the operator, a threshold or a lost drone.
        Stopped = "stopped",
        /// Instances freed, campaign kept.
        Killed = "killed",
    }
}

text_enum! {
    /// Where a job is.
    JobState {
        /// Waiting for its turn.
        Queued = "queued",
        /// Running.
        Active = "active",
        /// Done.
        Complete = "complete",
        /// Ended with an error.
        Failed = "failed",
        /// Cancelled by the operator, a kill or a restart.
        Cancelled = "cancelled",
    }
}

impl JobState {
    /// Whether the job has not ended yet.
    pub fn is_open(self) -> bool {
        matches!(self, JobState::Queued | JobState::Active)
    }
}

text_enum! {
    /// What the server knows of a drone.
    DroneState {
        /// Joined, not configured yet.
        Connected = "connected",
        /// Compiled the campaign, waiting for Start.
        Ready = "ready",
        /// Could not compile the campaign.
        Error = "error",
        /// Running the campaign.
        Running = "running",
        /// Done with the run.
        Finished = "finished",
        /// Stream ended outside a run.
        Disconnected = "disconnected",
        /// Silent or gone during a run for longer than the drone timeout.
        Lost = "lost",
    }
}

text_enum! {
    /// A control command, and the kind of the job that carries it out.
    Command {
        /// Create instances.
        Spawn = "spawn",
        /// Configure drones.
        Deploy = "deploy",
        /// Run.
        Start = "start",
        /// Stop the run.
        Stop = "stop",
        /// Free the instances.
        Kill = "kill",
    }
}

impl Command {
    /// The job kind name.
    pub fn name(self) -> &'static str {
        self.as_str()
    }
}

/// The API's enum for a state enum: same variants, converted at the edge.
macro_rules! wire_enum {
    ($name:ident => $wire:path { $($variant:ident),+ }) => {
        impl From<$name> for $wire {
            fn from(s: $name) -> $wire {
                match s {
                    $($name::$variant => <$wire>::$variant,)+
                }
            }
        }

        impl $name {
            /// The API's value of this state, as its message field holds it.
            pub fn wire(self) -> i32 {
                <$wire>::from(self) as i32
            }

            /// The state an API value names; none for the zero value.
            pub fn from_wire(w: $wire) -> Option<$name> {
                match w {
                    $(<$wire>::$variant => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

wire_enum!(CampaignState => camut::v1::CampaignState {
    Created, Spawned, Deployed, Running, Finished, Stopped, Killed
});
wire_enum!(JobState => camut::v1::JobState { Queued, Active, Complete, Failed, Cancelled });
wire_enum!(DroneState => camut::v1::DroneState {
    Connected, Ready, Error, Running, Finished, Disconnected, Lost
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        for s in CampaignState::ALL {
            assert_eq!(s.as_str().parse::<CampaignState>(), Ok(*s));
        }
        for s in JobState::ALL {
            assert_eq!(s.to_string().parse::<JobState>(), Ok(*s));
        }
        for s in DroneState::ALL {
            assert_eq!(s.as_str().parse::<DroneState>(), Ok(*s));
        }
        let e = "runing".parse::<CampaignState>().unwrap_err();
        assert_eq!(e.to_string(), "'runing' is not a CampaignState");
        assert!(JobState::Active.is_open() && !JobState::Failed.is_open());
        for s in CampaignState::ALL {
            let w = camut::v1::CampaignState::from(*s);
            assert_eq!(w.label(), s.as_str(), "the API's name is the store's");
            assert_eq!(CampaignState::from_wire(w), Some(*s));
        }
        for s in JobState::ALL {
            assert_eq!(camut::v1::JobState::from(*s).label(), s.as_str());
        }
        for s in DroneState::ALL {
            assert_eq!(camut::v1::DroneState::from(*s).label(), s.as_str());
        }
    }
}
