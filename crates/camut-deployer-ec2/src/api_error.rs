//! EC2 API failures sorted by kind: what is final (capacity, limits, credentials, bad
//! parameters, missing resources) and what is worth another try (throttling, server
//! errors, timeouts, an unreachable endpoint), with a one-line message that says what
//! to do. SDK debug output (headers, raw bodies) never reaches a message.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

/// What kind of failure an EC2 call met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// Not enough capacity for the request (final).
    Capacity,
    /// An account limit or quota (final).
    Limit,
    /// Credentials or permissions (final).
    Auth,
    /// A parameter or setting EC2 refuses (final).
    BadParameter,
    /// Something named does not exist (final).
    NotFound,
    /// Throttled, or a server-side error: tried again with backoff.
    Transient,
    /// No answer within `api_timeout_s`: tried again with backoff.
    Timeout,
    /// EC2 could not be reached: tried again with backoff.
    Unreachable,
}

impl ApiErrorKind {
    /// Whether trying again may help.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ApiErrorKind::Transient | ApiErrorKind::Timeout | ApiErrorKind::Unreachable
        )
    }

    /// What the operator can do about it.
    pub fn advice(self) -> &'static str {
        match self {
            ApiErrorKind::Capacity => "EC2 has no capacity for this request: try another zone or instance type, or fewer instances (lower minDrones)",
            ApiErrorKind::Limit => "an account limit was reached: ask AWS for a higher quota (Service Quotas), or use fewer or smaller instances",
            ApiErrorKind::Auth => "check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID…) and that their IAM policy allows this call",
            ApiErrorKind::BadParameter => "check the ec2 deployer settings and the campaign's deploy section",
            ApiErrorKind::NotFound => "check the ids in the ec2 deployer settings (image, subnet, security groups, key pair) for this region",
            ApiErrorKind::Transient => "EC2 throttled the call or failed on its side",
            ApiErrorKind::Timeout => "EC2 did not answer in time (api_timeout_s in the ec2 deployer settings)",
            ApiErrorKind::Unreachable => "EC2 could not be reached: check endpoint_url, the network and the proxy settings",
        }
    }
}

/// The kind of an EC2 error code (`None` for codes with no known meaning).
pub fn kind_of_code(code: &str) -> Option<ApiErrorKind> {
    use ApiErrorKind::*;
    let kind = match code {
        c if c.starts_with("Insufficient") && c.contains("Capacity") => Capacity,
        "Unavailable"
        | "ServiceUnavailable"
        | "InternalError"
        | "InternalFailure"
        | "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "RequestThrottled"
        | "RequestTimeout" => Transient,
        c if c.ends_with("LimitExceeded") || c.starts_with("MaxSpot") => Limit,
        "AuthFailure"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "OptInRequired"
        | "Blocked"
        | "ExpiredToken"
        | "AccessDenied"
        | "PendingVerification" => Auth,
        c if c.ends_with("NotFound") => NotFound,
        c if c.starts_with("Invalid")
            || c.starts_with("Missing")
            || c.starts_with("Unsupported")
            || c.starts_with("Incorrect")
            || c == "DryRunOperation" =>
        {
            BadParameter
        }
        _ => return None,
    };
    Some(kind)
}

/// A failed call: its kind, EC2's code (empty when there was no answer) and a
/// one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// The kind.
    pub kind: ApiErrorKind,
    /// EC2's error code.
    pub code: String,
    /// EC2's own message, or what failed on the way.
    pub message: String,
}

/// Longest message kept from a failure (a misbehaving endpoint may answer with a page).
const MAX_MESSAGE: usize = 300;

/// Sorts an SDK failure.
pub fn classify<E>(e: &SdkError<E, HttpResponse>) -> ApiFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let short = |s: &str| -> String {
        let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !one_line.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &one_line[..end])
        } else {
            one_line
        }
    };
    match e {
        SdkError::TimeoutError(_) => ApiFailure {
            kind: ApiErrorKind::Timeout,
            code: String::new(),
            message: "no answer in time".into(),
        },
        SdkError::DispatchFailure(d) => ApiFailure {
            kind: if d.is_timeout() {
                ApiErrorKind::Timeout
            } else {
                ApiErrorKind::Unreachable
            },
            code: String::new(),
            message: short(&crate::ssh::error_chain(e)),
        },
        SdkError::ConstructionFailure(_) => ApiFailure {
            kind: ApiErrorKind::BadParameter,
            code: String::new(),
            message: short(&crate::ssh::error_chain(e)),
        },
        _ => {
            let code = e.code().unwrap_or_default().to_owned();
            // Without a known code, a 5xx answer is worth another try, a 4xx is not.
            let server_side = e.raw_response().is_some_and(|r| r.status().as_u16() >= 500);
            let kind = kind_of_code(&code).unwrap_or(if server_side || code.is_empty() {
                ApiErrorKind::Transient
            } else {
                ApiErrorKind::BadParameter
            });
            let message = match e.message() {
                Some(m) => short(m),
                None if code.is_empty() => "an answer that is not an EC2 error".into(),
                None => String::new(),
            };
            ApiFailure {
                kind,
                code,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_final_and_retryable() {
        use ApiErrorKind::*;
        for (code, kind) in [
            ("InsufficientInstanceCapacity", Capacity),
            ("InsufficientHostCapacity", Capacity),
            ("InstanceLimitExceeded", Limit),
            ("VcpuLimitExceeded", Limit),
            ("RequestLimitExceeded", Transient),
            ("Unavailable", Transient),
            ("InternalError", Transient),
            ("AuthFailure", Auth),
            ("UnauthorizedOperation", Auth),
            ("InvalidAMIID.NotFound", NotFound),
            ("InvalidSubnetID.NotFound", NotFound),
            ("InvalidParameterValue", BadParameter),
            ("MissingParameter", BadParameter),
        ] {
            assert_eq!(kind_of_code(code), Some(kind), "{code}");
            assert_eq!(
                kind.retryable(),
                matches!(kind, Transient),
                "{code} retryable"
            );
        }
        assert_eq!(kind_of_code("SomethingNew"), None);
    }
}
