//! The server's errors and their explicit mapping to gRPC statuses.

use thiserror::Error;
use tonic::{Code, Status};

/// What can go wrong in the server.
#[derive(Debug, Error)]
pub enum ServerError {
    /// No such campaign.
    #[error("campaign '{0}' not found")]
    CampaignNotFound(String),
    /// No such job.
    #[error("job {0} not found")]
    JobNotFound(u64),
    /// No such run of a campaign.
    #[error(
        "campaign '{campaign}' has no run {run} (runs: {known}): see `camut results {campaign}`"
    )]
    RunNotFound {
        /// Campaign id.
        campaign: String,
        /// The run asked for.
        run: u32,
        /// The runs there are.
        known: String,
    },
    /// The id is taken.
    #[error(
        "campaign '{0}' already exists: update it with `camut update FILE`, or delete it first"
    )]
    CampaignExists(String),
    /// A command in the wrong state.
    #[error("campaign '{campaign}' is {state}: {what}")]
    WrongState {
        /// Campaign id.
        campaign: String,
        /// Its state.
        state: crate::state::CampaignState,
        /// What is allowed and what to do.
        what: String,
    },
    /// A job that is running cannot be deleted.
    #[error("job {0} is active: cancel it first")]
    JobActive(u64),
    /// A field is wrong.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Missing or wrong credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// A deployer failed.
    #[error("deployer '{deployer}' failed: {message}")]
    Deployer {
        /// Deployer name.
        deployer: String,
        /// What it said.
        message: String,
    },
    /// The store failed.
    #[error("store error: {0}")]
    Store(String),
}

impl From<rusqlite::Error> for ServerError {
    fn from(e: rusqlite::Error) -> Self {
        ServerError::Store(e.to_string())
    }
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        let code = match &e {
            ServerError::CampaignNotFound(_)
            | ServerError::JobNotFound(_)
            | ServerError::RunNotFound { .. } => Code::NotFound,
            ServerError::CampaignExists(_) => Code::AlreadyExists,
            ServerError::WrongState { .. } | ServerError::JobActive(_) => Code::FailedPrecondition,
            ServerError::InvalidArgument { .. } => Code::InvalidArgument,
            ServerError::Unauthenticated(_) => Code::Unauthenticated,
            ServerError::Deployer { .. } => Code::Unavailable,
            ServerError::Store(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_typed() {
        let s: Status = ServerError::WrongState {
            campaign: "c".into(),
            state: crate::state::CampaignState::Running,
            what: "stop it first".into(),
        }
        .into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(s.message(), "campaign 'c' is running: stop it first");
        let s: Status = ServerError::InvalidArgument {
            field: "source".into(),
            message: "x.js:1:2: syntax error".into(),
        }
        .into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("source"));
        assert_eq!(
            Status::from(ServerError::CampaignNotFound("c".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            Status::from(ServerError::Unauthenticated("no token".into())).code(),
            Code::Unauthenticated
        );
    }
}
