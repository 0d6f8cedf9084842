//! Real peers of the ec2 deployer's tests: moto's server as the EC2 API, an OpenSSH
//! sshd standing for every instance, and boto3 as an independent EC2 client. All on
//! 127.0.0.1, all killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::wait_for;

/// Static credentials and region of the fake EC2 API.
pub const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
];

/// An image moto knows (from its bundled image list).
pub const MOTO_IMAGE: &str = "ami-03cf127a";

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A fresh temporary directory named after `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("camut-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Kills and reaps a child (it may have exited already).
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `moto_server` on a free loopback port.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Moto {
    /// Starts moto's server and waits until it accepts connections.
    pub fn start() -> Moto {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server: {e} (pip install 'moto[server]'; scripts/test.sh does)")
            });
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let up = wait_for(30, || TcpStream::connect(("127.0.0.1", port)).is_ok());
        if !up {
            stop(&mut moto.child);
            panic!("moto_server did not listen on port {port} within 30 s");
        }
        moto
    }

    /// Runs a boto3 snippet against this server; `c` is an EC2 client. Returns what the
    /// snippet prints, parsed as JSON.
    pub fn boto(&self, snippet: &str) -> serde_json::Value {
        let script = format!(
            "import boto3, json, datetime\n\
             c = boto3.client('ec2', endpoint_url='{}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             def instances(**kw):\n    \
                 return [i for r in c.describe_instances(**kw)['Reservations'] for i in r['Instances']]\n\
             {snippet}\n",
            self.url
        );
        let out = Command::new("python3")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "boto3 snippet failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "boto3 output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Instances tagged `camut:campaign=<campaign>`: (id, state, type, tags).
    pub fn campaign_instances(&self, campaign: &str) -> Vec<MotoInstance> {
        let v = self.boto(&format!(
            "print(json.dumps([{{'id': i['InstanceId'], 'state': i['State']['Name'], 'type': i['InstanceType'], 'image': i['ImageId'], \
             'tags': {{t['Key']: t['Value'] for t in i.get('Tags', [])}}}} \
             for i in instances(Filters=[{{'Name': 'tag:camut:campaign', 'Values': ['{campaign}']}}])]))"
        ));
        serde_json::from_value(v).expect("instance list")
    }

    /// Launches `count` instances with `tags` directly (not through Camut); their ids.
    pub fn launch(&self, count: u32, tags: &[(&str, &str)]) -> Vec<String> {
        let tags: Vec<String> = tags
            .iter()
            .map(|(k, v)| format!("{{'Key': '{k}', 'Value': '{v}'}}"))
            .collect();
        let spec = if tags.is_empty() {
            String::new()
        } else {
            format!(
                ", TagSpecifications=[{{'ResourceType': 'instance', 'Tags': [{}]}}]",
                tags.join(", ")
            )
        };
        let v = self.boto(&format!(
            "r = c.run_instances(ImageId='{MOTO_IMAGE}', MinCount={count}, MaxCount={count}{spec})\n\
             print(json.dumps([i['InstanceId'] for i in r['Instances']]))"
        ));
        serde_json::from_value(v).expect("ids")
    }

    /// The state of instance `id`.
    pub fn state(&self, id: &str) -> String {
        let v = self.boto(&format!(
            "print(json.dumps(instances(InstanceIds=['{id}'])[0]['State']['Name']))"
        ));
        v.as_str().expect("state").to_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// One instance as moto reports it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct MotoInstance {
    /// Instance id.
    pub id: String,
    /// State name.
    pub state: String,
    /// Instance type.
    #[serde(rename = "type")]
    pub instance_type: String,
    /// Image id.
    pub image: String,
    /// Tags.
    pub tags: std::collections::BTreeMap<String, String>,
}

/// A real OpenSSH server on a free loopback port with a throw-away host key, accepting
/// one throw-away user key for the current user.
pub struct Sshd {
    child: Child,
    /// Its port.
    pub port: u16,
    /// The client's private key.
    pub user_key: PathBuf,
    /// A known-hosts file holding this server's host key.
    pub known_hosts: PathBuf,
    /// Its directory (keys, config, log).
    pub dir: PathBuf,
}

/// Where Debian's sshd lives (often not on a user's PATH).
pub fn sshd_program() -> PathBuf {
    let usual = Path::new("/usr/sbin/sshd");
    if usual.exists() {
        return usual.to_path_buf();
    }
    PathBuf::from("sshd")
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen runs (apt-get install openssh-client)");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    /// Starts sshd in the foreground and waits until it accepts connections.
    pub fn start(name: &str) -> Sshd {
        let dir = temp_dir(&format!("sshd-{name}"));
        let host_key = dir.join("host_ed25519");
        let user_key = dir.join("user_ed25519");
        keygen(&host_key);
        keygen(&user_key);
        std::fs::copy(user_key.with_extension("pub"), dir.join("authorized_keys")).unwrap();
        // sshd refuses to start without its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (run as root)");
        let port = free_port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {auth}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPidFile {pid}\nMaxSessions 64\nMaxStartups 64\n",
                host = host_key.display(),
                auth = dir.join("authorized_keys").display(),
                pid = dir.join("sshd.pid").display(),
            ),
        )
        .unwrap();
        let pub_key = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {pub_key}")).unwrap();
        let child = Command::new(sshd_program())
            .arg("-D")
            .arg("-f")
            .arg(&config)
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start sshd: {e} (apt-get install openssh-server; scripts/test.sh does)"
                )
            });
        let mut sshd = Sshd {
            child,
            port,
            user_key,
            known_hosts,
            dir,
        };
        let up = wait_for(15, || TcpStream::connect(("127.0.0.1", port)).is_ok());
        if !up {
            let log = sshd.log();
            stop(&mut sshd.child);
            panic!("sshd did not listen on port {port}: {log}");
        }
        sshd
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
