//! The EC2 side: launching, describing and terminating tagged instances.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ec2::types::{
    Filter, Instance, InstanceStateName, InstanceType, Placement, ResourceType, Tag,
    TagSpecification,
};
use aws_sdk_ec2::Client;
use camut::v1::DeployedInstance;
use tracing::{debug, info, warn};

use crate::api_error::classify;
use crate::config::Ec2Config;
use crate::Error;

/// Tag naming the campaign an instance belongs to.
pub const TAG_CAMPAIGN: &str = "camut:campaign";
/// Tag (value `true`) on every instance Camut made.
pub const TAG_MANAGED: &str = "camut:managed";
/// Tag naming the server that asked for the instance.
pub const TAG_SERVER: &str = "camut:server";
/// Tag with the instance's expiry (RFC 3339, UTC).
pub const TAG_EXPIRES: &str = "camut:expires";
/// Tag with the idempotency key of the create that made the instance.
pub const TAG_TOKEN: &str = "camut:token";

/// Most times one EC2 call is made while its failures may pass.
const API_ATTEMPTS: u32 = 3;
/// Pause before the second try of a call; doubled for each further one.
const API_BACKOFF: Duration = Duration::from_secs(1);

/// How often instance states are polled while waiting.
const POLL: Duration = Duration::from_secs(2);

/// The states of instances that still exist (everything but shutting-down/terminated).
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// What a launch asks for.
pub(crate) struct Launch<'a> {
    pub campaign: &'a str,
    pub min: u32,
    pub max: u32,
    pub image: &'a str,
    pub instance_type: &'a str,
    pub zone: &'a str,
    pub client_token: &'a str,
    pub tags: &'a HashMap<String, String>,
}

/// An EC2 API client with the deployer's settings.
pub(crate) struct Cloud {
    client: Client,
    region: String,
    config: Ec2Config,
}

impl Cloud {
    /// A client for `config` (credentials from the AWS default chain).
    pub(crate) async fn new(config: Ec2Config) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        // Tries are made here ([`Cloud::call`]), by kind of failure, so that a final
        // error (no capacity, say) is never tried again.
        loader = loader
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(config.api_timeout())
                    .build(),
            );
        let sdk = loader.load().await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "(no region)".into());
        Self {
            client: Client::new(&sdk),
            region,
            config,
        }
    }

    /// The region the client talks to.
    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// Makes an EC2 call through `send`, trying again with backoff while its failure is
    /// of a kind that may pass (throttling, server errors, timeouts), at most
    /// [`API_ATTEMPTS`] times.
    async fn call<T, E, Fut>(&self, name: &'static str, send: impl Fn() -> Fut) -> Result<T, Error>
    where
        Fut: std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut attempt = 1;
        loop {
            match send().await {
                Ok(out) => return Ok(out),
                Err(e) => {
                    let failure = classify(&e);
                    if failure.kind.retryable() && attempt < API_ATTEMPTS {
                        let pause = API_BACKOFF * 2u32.pow(attempt - 1);
                        warn!(call = name, attempt, code = %failure.code, message = %failure.message,
                            "EC2 call failed ({}); trying again in {pause:?}", failure.kind.advice());
                        tokio::time::sleep(pause).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(Error::Api {
                        call: name,
                        failure,
                        attempts: attempt,
                    });
                }
            }
        }
    }

    /// Fails with [`Error::ImageNotFound`] unless `image` exists.
    pub(crate) async fn check_image(&self, image: &str) -> Result<(), Error> {
        let out = self
            .call("DescribeImages", || {
                self.client.describe_images().image_ids(image).send()
            })
            .await
            .map_err(|e| match e {
                Error::Api { failure, .. } if failure.code.starts_with("InvalidAMIID") => {
                    Error::ImageNotFound {
                        image: image.to_owned(),
                        region: self.region.clone(),
                    }
                }
                e => e,
            })?;
        if out.images().is_empty() {
            return Err(Error::ImageNotFound {
                image: image.to_owned(),
                region: self.region.clone(),
            });
        }
        Ok(())
    }

    /// Launches between `min` and `max` instances, tagged; returns their ids. A launch
    /// whose key already made live instances returns those instead.
    pub(crate) async fn launch(&self, l: &Launch<'_>) -> Result<Vec<String>, Error> {
        if !l.client_token.is_empty() {
            let earlier = self
                .describe(Some(l.campaign), Some(l.client_token))
                .await?;
            if !earlier.is_empty() {
                info!(campaign = %l.campaign, token = %l.client_token, instances = earlier.len(),
                    "a create with this key already made instances: returning them");
                return Ok(earlier
                    .iter()
                    .filter_map(|i| i.instance_id().map(str::to_owned))
                    .collect());
            }
        }
        let expires = expiry_text(SystemTime::now() + self.config.max_lifetime())?;
        let mut tags: Vec<(String, String)> =
            l.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        tags.retain(|(k, _)| {
            ![TAG_CAMPAIGN, TAG_MANAGED, TAG_EXPIRES, TAG_TOKEN].contains(&k.as_str())
        });
        tags.push((TAG_CAMPAIGN.into(), l.campaign.into()));
        tags.push((TAG_MANAGED.into(), "true".into()));
        tags.push((TAG_EXPIRES.into(), expires));
        tags.push(("Name".into(), format!("camut-{}", l.campaign)));
        if !l.client_token.is_empty() {
            tags.push((TAG_TOKEN.into(), l.client_token.into()));
        }
        let spec = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .set_tags(Some(
                tags.into_iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build();
        let mut run = self
            .client
            .run_instances()
            .image_id(l.image)
            .instance_type(InstanceType::from(l.instance_type))
            .min_count(l.min as i32)
            .max_count(l.max as i32)
            .tag_specifications(spec)
            .set_key_name(self.config.key_name.clone())
            .set_subnet_id(self.config.subnet_id.clone());
        if !self.config.security_group_ids.is_empty() {
            run = run.set_security_group_ids(Some(self.config.security_group_ids.clone()));
        }
        if !l.client_token.is_empty() {
            run = run.client_token(ec2_client_token(l.client_token));
        }
        if !l.zone.is_empty() && l.zone != crate::config::zone_region(l.zone) {
            run = run.placement(Placement::builder().availability_zone(l.zone).build());
        }
        if let Some(data) = &self.config.user_data {
            run = run.user_data(base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                data,
            ));
        }
        // The client token makes another try of the same launch safe.
        let out = self.call("RunInstances", || run.clone().send()).await?;
        Ok(out
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect())
    }

    /// The live instances Camut made, of one campaign or all, optionally of one create.
    pub(crate) async fn describe(
        &self,
        campaign: Option<&str>,
        token: Option<&str>,
    ) -> Result<Vec<Instance>, Error> {
        let mut filters = vec![
            filter(&format!("tag:{TAG_MANAGED}"), "true"),
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
                .build(),
        ];
        if let Some(c) = campaign {
            filters.push(filter(&format!("tag:{TAG_CAMPAIGN}"), c));
        }
        if let Some(t) = token {
            filters.push(filter(&format!("tag:{TAG_TOKEN}"), t));
        }
        self.describe_filtered(filters).await
    }

    /// The instances named, whatever their state.
    pub(crate) async fn describe_ids(&self, ids: &[String]) -> Result<Vec<Instance>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.describe_filtered(vec![Filter::builder()
            .name("instance-id")
            .set_values(Some(ids.to_vec()))
            .build()])
            .await
    }

    async fn describe_filtered(&self, filters: Vec<Filter>) -> Result<Vec<Instance>, Error> {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = next.take();
            let out = self
                .call("DescribeInstances", || {
                    self.client
                        .describe_instances()
                        .set_filters(Some(filters.clone()))
                        .set_next_token(page.clone())
                        .send()
                })
                .await?;
            for r in out.reservations() {
                found.extend(r.instances().iter().cloned());
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_owned()),
                _ => break,
            }
        }
        found.sort_by(|a, b| {
            a.launch_time()
                .cmp(&b.launch_time())
                .then(a.ami_launch_index().cmp(&b.ami_launch_index()))
        });
        Ok(found)
    }

    /// Waits until every one of `ids` is in a state `settled` accepts, for at most
    /// `timeout`; returns them as they then are, and whether the wait ran out.
    pub(crate) async fn wait_settled(
        &self,
        campaign: &str,
        ids: &[String],
        timeout: Duration,
        what: &str,
        settled: impl Fn(&InstanceStateName) -> bool,
    ) -> Result<(Vec<Instance>, bool), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let list = self.describe_ids(ids).await?;
            let done = list
                .iter()
                .filter(|i| i.state().and_then(|s| s.name()).is_some_and(&settled))
                .count();
            info!(
                campaign,
                done,
                of = ids.len(),
                "waiting for instances to be {what}"
            );
            if done == ids.len() {
                return Ok((list, false));
            }
            if tokio::time::Instant::now() + POLL > deadline {
                return Ok((list, true));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Terminates `ids` (no wait).
    pub(crate) async fn terminate(&self, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        debug!(?ids, "terminating instances");
        self.call("TerminateInstances", || {
            self.client
                .terminate_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .send()
        })
        .await?;
        Ok(())
    }

    /// Rewrites the expiry tag of `ids` to `max_lifetime_s` from now; returns the new
    /// expiry (Unix ms).
    pub(crate) async fn extend(&self, ids: &[String]) -> Result<i64, Error> {
        let until = SystemTime::now() + self.config.max_lifetime();
        let text = expiry_text(until)?;
        if !ids.is_empty() {
            self.call("CreateTags", || {
                self.client
                    .create_tags()
                    .set_resources(Some(ids.to_vec()))
                    .tags(Tag::builder().key(TAG_EXPIRES).value(text.clone()).build())
                    .send()
            })
            .await?;
        }
        Ok(parse_expiry(&text))
    }

    /// The instance as the Deployer API reports it.
    pub(crate) fn to_deployed(&self, i: &Instance) -> DeployedInstance {
        let tag = |key: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(key))
                .and_then(|t| t.value())
                .unwrap_or_default()
                .to_owned()
        };
        let address = if self.config.use_private_address {
            i.private_ip_address()
        } else {
            i.public_ip_address().or(i.private_ip_address())
        };
        DeployedInstance {
            id: i.instance_id().unwrap_or_default().to_owned(),
            campaign: tag(TAG_CAMPAIGN),
            address: address.unwrap_or_default().to_owned(),
            state: i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            server: tag(TAG_SERVER),
            expires_unix_ms: parse_expiry(&tag(TAG_EXPIRES)),
            instance_type: i
                .instance_type()
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// EC2 takes client tokens of at most 64 ASCII characters: a longer key becomes its first
/// 47 characters, `-` and a 64-bit FNV-1a hash of the whole key in hex (deterministic, so
/// a retry sends the same token).
fn ec2_client_token(key: &str) -> String {
    const MAX: usize = 64;
    if key.len() <= MAX && key.is_ascii() {
        return key.to_owned();
    }
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let head: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(MAX - 17)
        .collect();
    format!("{head}-{hash:016x}")
}

/// A filter with one value.
fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Milliseconds since the epoch of an RFC 3339 time (0 when empty or unreadable).
fn parse_expiry(text: &str) -> i64 {
    DateTime::from_str(text, DateTimeFormat::DateTime)
        .ok()
        .and_then(|d| SystemTime::try_from(d).ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// An expiry time as the `camut:expires` tag holds it (RFC 3339).
fn expiry_text(t: SystemTime) -> Result<String, Error> {
    DateTime::from(t)
        .fmt(DateTimeFormat::DateTime)
        .map_err(|e| Error::Config(format!("expiry time: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tokens_fit_ec2() {
        assert_eq!(ec2_client_token("camut-c-7"), "camut-c-7");
        let long = format!("camut-{}-12", "x".repeat(80));
        let t = ec2_client_token(&long);
        assert_eq!(t.len(), 64);
        assert_eq!(t, ec2_client_token(&long), "deterministic");
        assert_ne!(t, ec2_client_token(&format!("camut-{}-13", "x".repeat(80))));
    }

    #[test]
    fn expiry_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let text = DateTime::from(t).fmt(DateTimeFormat::DateTime).unwrap();
        assert_eq!(text, "2027-01-15T08:00:00Z");
        assert_eq!(parse_expiry(&text), 1_800_000_000_000);
        assert_eq!(parse_expiry(""), 0);
        assert_eq!(parse_expiry("soon"), 0);
    }
}
