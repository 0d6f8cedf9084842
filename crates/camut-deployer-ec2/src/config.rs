//! The ec2 deployer's settings: the `[deployers.NAME.settings]` table of a server's
//! camut.toml, or the file of `camut deployer ec2 --config FILE`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// Default instance type when neither the campaign nor the config names one.
pub const DEFAULT_INSTANCE_TYPE: &str = "c7i.large";
/// Default maximum lifetime of an instance: after it, the instance is a zombie.
pub const DEFAULT_MAX_LIFETIME_S: u64 = 24 * 3600;
/// Default path of the `camut` binary on the instances (where the image installs it).
pub const DEFAULT_REMOTE_BINARY: &str = "/usr/local/bin/camut";
/// Default path of the drone's environment file on the instances (read by the image's
/// `camut-drone` systemd unit).
pub const DEFAULT_DRONE_CONFIG: &str = "/etc/camut/drone.env";
/// Default start command: the image's systemd unit.
pub const DEFAULT_START_COMMAND: &str = "sudo systemctl restart camut-drone";

/// Settings of an ec2 deployer.
///
/// Credentials are not here: they come from the AWS default chain (environment,
/// profile, instance role).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Config {
    /// AWS region (default: the AWS default chain, e.g. `AWS_REGION`).
    pub region: Option<String>,
    /// EC2 API endpoint override, for EC2-compatible clouds or test servers (moto,
    /// LocalStack).
    pub endpoint_url: Option<String>,
    /// Image (AMI id) used when neither the campaign nor `images` names one.
    pub image: Option<String>,
    /// Images by availability zone or region (`"eu-west-1" = "ami-…"`): AMIs are per
    /// region, so a campaign's zone picks its image here; a zone entry wins over its
    /// region's.
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// Instance type when the campaign names none (default c7i.large).
    pub instance_type: Option<String>,
    /// Key pair installed on the instances (its private key is `ssh.key_file`).
    pub key_name: Option<String>,
    /// Security groups of the instances (ssh in from the server; see the README).
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// Subnet of the instances (default: the zone's default subnet).
    pub subnet_id: Option<String>,
    /// User data given to the instances (plain text; encoded by the deployer).
    pub user_data: Option<String>,
    /// Each instance is tagged to expire this long after its launch (seconds, default
    /// one day); an instance past its expiry is a zombie and may be reaped.
    pub max_lifetime_s: Option<u64>,
    /// How long a create waits for the instances to be running (seconds, default 300).
    pub running_timeout_s: Option<u64>,
    /// How long a destroy waits for the instances to be terminated (seconds, default 300).
    pub terminated_timeout_s: Option<u64>,
    /// How long one EC2 API call may take before it counts as failed (seconds, default
    /// 30); a timed-out call is tried again (3 tries in all, with backoff).
    pub api_timeout_s: Option<u64>,
    /// Reports the instances' private addresses rather than their public ones (a server
    /// inside the same VPC).
    #[serde(default)]
    pub use_private_address: bool,
    /// How drones are configured over ssh.
    #[serde(default)]
    pub ssh: SshConfig,
}

/// How the deployer reaches and configures the instances over ssh.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    /// Login user (default `ubuntu`, the user of Ubuntu images).
    pub user: Option<String>,
    /// Private key file of the key pair (default: ssh's own defaults).
    pub key_file: Option<PathBuf>,
    /// Port (default 22).
    pub port: Option<u16>,
    /// Host-key policy (default `strict`).
    #[serde(default)]
    pub host_key_policy: HostKeyPolicy,
    /// Known-hosts file used by the policy (default: ssh's own, ~/.ssh/known_hosts).
    pub known_hosts_file: Option<PathBuf>,
    /// How long one connection attempt may take (seconds, default 10).
    pub connect_timeout_s: Option<u64>,
    /// How long connecting is retried while a new instance boots (seconds, default 120).
    pub connect_retry_s: Option<u64>,
    /// How long the configuration of one instance may take, upload included (seconds,
    /// default 300).
    pub configure_timeout_s: Option<u64>,
    /// How many instances are configured at once (default 16).
    pub parallelism: Option<usize>,
    /// Local `camut` binary uploaded when an instance's differs (default: this
    /// process's own executable).
    pub local_binary: Option<PathBuf>,
    /// Where the `camut` binary lives on the instances (default /usr/local/bin/camut).
    pub remote_binary: Option<String>,
    /// Where the drone's environment file is written on the instances (default
    /// /etc/camut/drone.env); `{id}` is replaced by the instance id.
    pub drone_config: Option<String>,
    /// Shell command that (re)starts the drone, run after the config is written
    /// (default `sudo systemctl restart camut-drone`). `{binary}`, `{config}` and `{id}`
    /// are replaced by the remote binary path, the config path and the instance id.
    pub start_command: Option<String>,
    /// Prefix for the commands that write the binary and the config (default `sudo`
    /// unless the user is root; set "" for a writable location).
    pub sudo: Option<String>,
    /// For tests only: dial this `host:port` instead of every instance's address (a
    /// loopback sshd standing in for the instances of a fake EC2 API).
    pub address_override: Option<String>,
}

/// Whether unknown host keys are accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Only hosts already in the known-hosts file.
    #[default]
    Strict,
    /// Unknown hosts are added to the known-hosts file; changed keys are refused.
    AcceptNew,
    /// Any key is accepted (trusted networks only).
    Off,
}

impl Ec2Config {
    /// Parses the settings from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| Error::Config(e.to_string()))
    }

    /// Takes the settings from a parsed TOML table (the `settings` of a deployer entry in
    /// camut.toml).
    pub fn from_table(table: toml::Table) -> Result<Self, Error> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.to_string()))
    }

    /// Reads the settings from a TOML file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// The image for a campaign: its own, else the zone's, the zone's region's (the
    /// configured region's when the campaign names no zone), the default.
    pub fn image_for(&self, campaign_image: &str, zone: &str) -> Option<String> {
        if !campaign_image.is_empty() {
            return Some(campaign_image.to_owned());
        }
        let keys: Vec<&str> = if zone.is_empty() {
            self.region.as_deref().into_iter().collect()
        } else {
            vec![zone, zone_region(zone)]
        };
        keys.iter()
            .find_map(|k| self.images.get(*k).cloned())
            .or_else(|| self.image.clone())
    }

    /// How long one EC2 API call may take.
    pub fn api_timeout(&self) -> Duration {
        Duration::from_secs(self.api_timeout_s.unwrap_or(30).max(1))
    }

    /// How long an instance lives past its launch, or past the last time its campaign
    /// was seen holding it.
    pub fn max_lifetime(&self) -> Duration {
        Duration::from_secs(self.max_lifetime_s.unwrap_or(DEFAULT_MAX_LIFETIME_S))
    }

    /// How long a create waits for running instances.
    pub fn running_timeout(&self) -> Duration {
        Duration::from_secs(self.running_timeout_s.unwrap_or(300))
    }

    /// How long a destroy waits for terminated instances.
    pub fn terminated_timeout(&self) -> Duration {
        Duration::from_secs(self.terminated_timeout_s.unwrap_or(300))
    }
}

impl SshConfig {
    /// The login user.
    pub fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("ubuntu")
    }

    /// The command prefix for privileged writes.
    pub fn sudo(&self) -> &str {
        match &self.sudo {
            Some(s) => s,
            None if self.user() == "root" => "",
            None => "sudo",
        }
    }

    /// The remote binary path.
    pub fn remote_binary(&self) -> &str {
        self.remote_binary
            .as_deref()
            .unwrap_or(DEFAULT_REMOTE_BINARY)
    }

    /// The remote drone config path of instance `id`.
    pub fn drone_config(&self, id: &str) -> String {
        self.drone_config
            .as_deref()
            .unwrap_or(DEFAULT_DRONE_CONFIG)
            .replace("{id}", id)
    }

    /// The start command of instance `id`, its placeholders replaced (paths quoted).
    pub fn start_command(&self, id: &str) -> String {
        self.start_command
            .as_deref()
            .unwrap_or(DEFAULT_START_COMMAND)
            .replace("{binary}", &shell_quote(self.remote_binary()))
            .replace("{config}", &shell_quote(&self.drone_config(id)))
            .replace("{id}", &shell_quote(id))
    }

    /// One connection attempt's timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_s.unwrap_or(10))
    }

    /// How long connecting is retried.
    pub fn connect_retry(&self) -> Duration {
        Duration::from_secs(self.connect_retry_s.unwrap_or(120))
    }

    /// One instance's configuration timeout.
    pub fn configure_timeout(&self) -> Duration {
        Duration::from_secs(self.configure_timeout_s.unwrap_or(300))
    }

    /// How many instances are configured at once.
    pub fn parallelism(&self) -> usize {
        self.parallelism.unwrap_or(16).max(1)
    }
}

/// The region of an availability zone (`eu-west-1a` → `eu-west-1`); a region is its own.
pub fn zone_region(zone: &str) -> &str {
    match zone.strip_suffix(|c: char| c.is_ascii_lowercase()) {
        Some(region) if region.ends_with(|c: char| c.is_ascii_digit()) => region,
        _ => zone,
    }
}

/// `s` quoted for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_images() {
        assert_eq!(zone_region("eu-west-1a"), "eu-west-1");
        assert_eq!(zone_region("eu-west-1"), "eu-west-1");
        assert_eq!(zone_region(""), "");
        let c = Ec2Config::from_toml(
            "region = \"us-east-1\"\nimage = \"ami-default\"\n[images]\n\"eu-west-1\" = \"ami-eu\"\n\"eu-west-1b\" = \"ami-eu-b\"\n\"us-east-1\" = \"ami-us\"\n",
        )
        .unwrap();
        assert_eq!(c.image_for("ami-mine", "eu-west-1a").unwrap(), "ami-mine");
        assert_eq!(c.image_for("", "eu-west-1a").unwrap(), "ami-eu");
        assert_eq!(c.image_for("", "eu-west-1b").unwrap(), "ami-eu-b");
        assert_eq!(c.image_for("", "").unwrap(), "ami-us");
        assert_eq!(c.image_for("", "ap-south-1a").unwrap(), "ami-default");
        assert!(Ec2Config::from_toml("regoin = 1").is_err(), "typos refused");
    }

    /// The commented ec2 section of examples/camut.toml, uncommented, is valid.
    #[test]
    fn the_example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/camut.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let start = text.find("# [deployers.aws]\n").expect("an ec2 example");
        let body: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let mut table: toml::Table = toml::from_str(&body).unwrap();
        let aws = table["deployers"].as_table_mut().unwrap()["aws"]
            .as_table_mut()
            .unwrap();
        assert_eq!(aws["kind"].as_str(), Some("ec2"));
        let settings = aws.remove("settings").unwrap();
        let c = Ec2Config::from_table(settings.as_table().unwrap().clone()).unwrap();
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.images.len(), 2);
        assert_eq!(c.ssh.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(c.ssh.parallelism(), 16);
        assert!(c.ssh.address_override.is_some());
    }

    #[test]
    fn ssh_defaults() {
        let s = SshConfig::default();
        assert_eq!(s.user(), "ubuntu");
        assert_eq!(s.sudo(), "sudo");
        assert_eq!(s.start_command("i-1"), DEFAULT_START_COMMAND);
        let s = SshConfig {
            user: Some("root".into()),
            start_command: Some("{binary} drone --env {config} # {id}".into()),
            remote_binary: Some("/opt/it's/camut".into()),
            drone_config: Some("/tmp/{id}.env".into()),
            ..SshConfig::default()
        };
        assert_eq!(s.sudo(), "");
        assert_eq!(
            s.start_command("i-1"),
            r"'/opt/it'\''s/camut' drone --env '/tmp/i-1.env' # 'i-1'"
        );
        let p: SshConfig = toml::from_str("host_key_policy = \"accept-new\"").unwrap();
        assert_eq!(p.host_key_policy, HostKeyPolicy::AcceptNew);
    }
}
