//! The crate's error type and its mapping to gRPC statuses.

use tonic::Status;

use crate::api_error::{ApiErrorKind, ApiFailure};

/// What can go wrong in the ec2 deployer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings are invalid.
    #[error("ec2 deployer settings: {0}")]
    Config(String),
    /// A request misses something it needs.
    #[error("{0}")]
    InvalidArgument(String),
    /// No image was given for the campaign.
    #[error("no image for zone '{zone}': set `image` in the campaign's deploy section, or `image`/`images` in the ec2 deployer settings")]
    NoImage {
        /// The campaign's zone.
        zone: String,
    },
    /// The image does not exist (in this region, or for this account).
    #[error("image {image} not found in region {region}: check the AMI id, or copy the image to this region (aws ec2 copy-image)")]
    ImageNotFound {
        /// The AMI id.
        image: String,
        /// The region asked.
        region: String,
    },
    /// An EC2 API call failed (after the tries its kind allows).
    #[error("EC2 {call} failed: {}{}{} ({}){}",
        failure.code, if failure.code.is_empty() || failure.message.is_empty() { "" } else { ": " },
        failure.message, failure.kind.advice(),
        if *attempts > 1 { format!("; tried {attempts} times with backoff") } else { String::new() })]
    Api {
        /// The API call.
        call: &'static str,
        /// What failed, sorted.
        failure: ApiFailure,
        /// How many times the call was made.
        attempts: u32,
    },
    /// Fewer instances than the minimum are running; what was started was terminated.
    #[error("campaign {campaign}: {running} instances running, fewer than the minimum {min}; the instances started were terminated")]
    TooFew {
        /// The campaign.
        campaign: String,
        /// Instances running.
        running: usize,
        /// The minimum asked.
        min: u32,
    },
    /// Waiting for a state took too long.
    #[error("campaign {campaign}: {what} after {seconds} s; raise the timeout in the ec2 settings or check the instances in the EC2 console")]
    Timeout {
        /// The campaign.
        campaign: String,
        /// What did not happen.
        what: String,
        /// How long was waited.
        seconds: u64,
    },
    /// The local `camut` binary cannot be read or run.
    #[error("local camut binary {path}: {message}")]
    LocalBinary {
        /// Its path.
        path: String,
        /// Why.
        message: String,
    },
    /// The configuration of one instance over ssh failed.
    #[error("ssh {address}: {message}")]
    Ssh {
        /// The address dialled.
        address: String,
        /// What failed.
        message: String,
    },
    /// The gRPC server failed.
    #[error("ec2 deployer service failed: {0}")]
    Serve(String),
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let message = e.to_string();
        match e {
            Error::Config(_) => Status::failed_precondition(message),
            Error::InvalidArgument(_) | Error::NoImage { .. } | Error::ImageNotFound { .. } => {
                Status::invalid_argument(message)
            }
            Error::TooFew { .. } => Status::resource_exhausted(message),
            Error::Timeout { .. } => Status::deadline_exceeded(message),
            Error::Api { failure, .. } => match failure.kind {
                ApiErrorKind::Capacity | ApiErrorKind::Limit => Status::resource_exhausted(message),
                ApiErrorKind::Auth => Status::permission_denied(message),
                ApiErrorKind::BadParameter | ApiErrorKind::NotFound => {
                    Status::invalid_argument(message)
                }
                ApiErrorKind::Timeout => Status::deadline_exceeded(message),
                ApiErrorKind::Transient | ApiErrorKind::Unreachable => Status::unavailable(message),
            },
            Error::Ssh { .. } | Error::Serve(_) => Status::unavailable(message),
            Error::LocalBinary { .. } => Status::failed_precondition(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn statuses() {
        let s: Status = Error::TooFew {
            campaign: "c".into(),
            running: 1,
            min: 2,
        }
        .into();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("fewer than the minimum 2"));
        let s: Status = Error::ImageNotFound {
            image: "ami-x".into(),
            region: "us-east-1".into(),
        }
        .into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("ami-x"));
        let s: Status = Error::Api {
            call: "RunInstances",
            failure: ApiFailure {
                kind: ApiErrorKind::Capacity,
                code: "InsufficientInstanceCapacity".into(),
                message: "We currently do not have sufficient capacity.".into(),
            },
            attempts: 1,
        }
        .into();
        assert_eq!(s.code(), Code::ResourceExhausted, "final: not retried");
        assert_eq!(
            s.message(),
            "EC2 RunInstances failed: InsufficientInstanceCapacity: We currently do not have sufficient capacity. (EC2 has no capacity for this request: try another zone or instance type, or fewer instances (lower minDrones))"
        );
        let s: Status = Error::Api {
            call: "DescribeImages",
            failure: ApiFailure {
                kind: ApiErrorKind::Timeout,
                code: String::new(),
                message: "no answer in time".into(),
            },
            attempts: 3,
        }
        .into();
        assert_eq!(s.code(), Code::DeadlineExceeded);
        assert!(
            s.message().ends_with("; tried 3 times with backoff"),
            "{}",
            s.message()
        );
    }
}
