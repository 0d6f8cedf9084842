//! The ec2 deployer end to end: moto's server as the EC2 API, a real OpenSSH sshd on
//! 127.0.0.1 standing for every instance (the test-only `address_override` maps moto's
//! instances to it, so no moto-made address is ever dialled), and real `camut` server,
//! drone and target processes. boto3 checks what moto holds, independently of Camut.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use camut::v1::deployer_client::DeployerClient;
use camut::v1::{CreateInstancesRequest, DestroyInstancesRequest, ListInstancesRequest};
use camut::Client;
use camut_integration::cloud::{temp_dir, Moto, Sshd, AWS_ENV, MOTO_IMAGE};
use camut_integration::{
    camut_bin, control_campaign, pids_with, rt, show, wait_for, ServerProcess, TargetProcess,
};
use serde_json::Value;

/// The user this test runs as (the sshd accepts the throw-away key for any user).
fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The `[deployers.aws]` section of a server config for `moto`, plus `ssh` settings.
fn aws_section(moto: &Moto, ssh: &str, max_lifetime_s: u64) -> String {
    format!(
        "[deployers.aws]\nkind = \"ec2\"\n[deployers.aws.settings]\nregion = \"us-east-1\"\n\
         endpoint_url = \"{}\"\nimage = \"{MOTO_IMAGE}\"\ninstance_type = \"t3.micro\"\n\
         max_lifetime_s = {max_lifetime_s}\nrunning_timeout_s = 30\nterminated_timeout_s = 30\n\
         [deployers.aws.settings.ssh]\n{ssh}",
        moto.url
    )
}

/// `ssh` settings that start real drones on the loopback sshd standing for every
/// instance: the binary at `remote_bin`, configs and logs in `remote`.
fn drone_ssh_section(sshd: &Sshd, remote: &Path, remote_bin: &Path) -> String {
    format!(
        "user = \"{user}\"\nkey_file = \"{key}\"\nknown_hosts_file = \"{known}\"\n\
         host_key_policy = \"strict\"\naddress_override = \"127.0.0.1:{port}\"\n\
         remote_binary = \"{bin}\"\ndrone_config = \"{dir}/{{id}}.env\"\n\
         start_command = \"set -a; . {{config}}; set +a; nohup {{binary}} drone > {{config}}.log 2>&1 < /dev/null &\"\n\
         connect_retry_s = 20\nconfigure_timeout_s = 120\n",
        user = current_user(),
        key = sshd.user_key.display(),
        known = sshd.known_hosts.display(),
        port = sshd.port,
        bin = remote_bin.display(),
        dir = remote.display(),
    )
}

/// Seconds from now until each of the campaign's instances expires, read by boto3.
fn expiries(moto: &Moto, campaign: &str) -> Vec<f64> {
    let v = moto.boto(&format!(
        "now = datetime.datetime.now(datetime.timezone.utc)\n\
         out = []\n\
         for i in instances(Filters=[{{'Name': 'tag:camut:campaign', 'Values': ['{campaign}']}}]):\n    \
             t = {{x['Key']: x['Value'] for x in i['Tags']}}['camut:expires']\n    \
             out.append((datetime.datetime.fromisoformat(t.replace('Z', '+00:00')) - now).total_seconds())\n\
         print(json.dumps(out))"
    ));
    serde_json::from_value(v).unwrap()
}

/// Kills, on drop, the drone processes started from the binary at this path.
struct DronesOf(String);

impl Drop for DronesOf {
    fn drop(&mut self) {
        for pid in pids_with(&[&self.0, "drone"]) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

#[test]
fn spawn_deploy_run_kill_through_moto_and_a_real_sshd() {
    let moto = Moto::start();
    let sshd = Sshd::start("e2e");
    let target = TargetProcess::start();
    let remote = temp_dir("remote-host");
    let remote_bin = remote.join("bin").join("camut");
    // The "image" carries an old camut: the deployer must replace it.
    std::fs::create_dir_all(remote_bin.parent().unwrap()).unwrap();
    std::fs::write(&remote_bin, "#!/bin/sh\necho camut 0.0.0-old\n").unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&remote_bin)
        .status()
        .unwrap();
    let ssh = drone_ssh_section(&sshd, &remote, &remote_bin);
    let config = format!(
        "server_id = \"camut-it-ec2\"\n{}",
        aws_section(&moto, &ssh, 3600)
    );
    let server = ServerProcess::start_with_env("ec2-e2e", Some(&config), &AWS_ENV);
    // The drones run detached on the "instance": end them even when an assertion fails.
    let _drones = DronesOf(remote_bin.display().to_string());
    // Three asked, two at least: moto launches MinCount, so the spawn gets fewer than
    // asked and must go on with them.
    let source = control_campaign("cloud", 3, 2, 5, ", minDrones: 2", &target.url).replace(
        "deployer: 'local'",
        "deployer: 'aws', zone: 'us-east-1a', instanceType: 't3.nano'",
    );
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("cloud.js", &source).await.unwrap();

        let started = Instant::now();
        let spawn = c.spawn("cloud").await.unwrap();
        let spawn = c.wait_job(spawn.id).await.unwrap();
        let spawn_ms = started.elapsed().as_millis();
        assert_eq!(spawn.state().label(), "complete", "{spawn:?}\n{}", server.log());
        assert!(
            spawn.log.iter().any(|l| l.contains("made 2 of 3 instances")),
            "fewer than asked is reported: {:?}",
            spawn.log
        );
        let made = moto.campaign_instances("cloud");
        assert_eq!(made.len(), 2, "{made:?}");
        for i in &made {
            // If one was terminated, the server's log says by whom.
            assert_eq!(i.state, "running", "{made:?}\n{}", server.log());
            assert_eq!(i.instance_type, "t3.nano", "the campaign's type wins");
            assert_eq!(i.image, MOTO_IMAGE);
            assert_eq!(i.tags["camut:managed"], "true");
            assert_eq!(i.tags["camut:server"], "camut-it-ec2");
        }
        for left in expiries(&moto, "cloud") {
            assert!(
                (3400.0..=3600.0).contains(&left),
                "expires max_lifetime_s after launch: {left} s left"
            );
        }
        let campaign = c.get("cloud").await.unwrap();
        let held: BTreeSet<String> = campaign.instances.iter().map(|i| i.id.clone()).collect();
        let in_moto: BTreeSet<String> = made.iter().map(|i| i.id.clone()).collect();
        assert_eq!(held, in_moto);

        let started = Instant::now();
        let deploy = c.deploy("cloud").await.unwrap();
        let deploy = c.wait_job(deploy.id).await.unwrap();
        let deploy_ms = started.elapsed().as_millis();
        assert_eq!(
            deploy.state().label(),
            "complete",
            "{deploy:?}\n{}\nsshd: {}",
            server.log(),
            sshd.log()
        );
        assert_eq!(
            std::fs::metadata(&remote_bin).unwrap().len(),
            std::fs::metadata(camut_bin()).unwrap().len(),
            "the old binary was replaced by this camut"
        );
        for id in &in_moto {
            let env = std::fs::read_to_string(remote.join(format!("{id}.env"))).unwrap();
            assert!(env.contains(&format!("CAMUT_DRONE_ID='{id}'")), "{env}");
            assert!(env.contains(&format!("CAMUT_SERVER='http://{}'", server.addr)));
        }

        let start = c.start("cloud").await.unwrap();
        let start = c.wait_job(start.id).await.unwrap();
        assert_eq!(start.state().label(), "complete", "{start:?}");
        let results = c.results("cloud").await.unwrap();
        let summary: Value = camut_integration::summary_value(&results);
        assert_eq!(summary["requests"], 2 * 2 * 5, "{summary}");
        assert_eq!(summary["errors"], 0);
        assert_eq!(target.served(), 2 * 2 * 5, "the target saw every request");

        let listed = server.camut(&["instances", "--json"]);
        assert!(listed.status.success(), "{}", show(&listed));
        let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
        let listed = listed["instances"].as_array().unwrap();
        let aws: Vec<&Value> = listed.iter().filter(|i| i["deployer"] == "aws").collect();
        assert_eq!(aws.len(), 2, "{listed:?}");
        assert!(aws.iter().all(|i| i["zombie"] == "" && i["campaign"] == "cloud"));

        let kill = c.kill("cloud").await.unwrap();
        let kill = c.wait_job(kill.id).await.unwrap();
        assert_eq!(kill.state().label(), "complete", "{kill:?}");
        let after = moto.campaign_instances("cloud");
        assert!(
            after.iter().all(|i| i.state == "terminated"),
            "kill terminates them: {after:?}"
        );
        let bin = remote_bin.display().to_string();
        assert!(
            wait_for(15, || pids_with(&[&bin, "drone"]).is_empty()),
            "the drones exit on kill"
        );
        eprintln!(
            "ec2 figures: spawn of 2 instances in moto {spawn_ms} ms; deploy (ssh configure + upload of {} MB, drones ready) {deploy_ms} ms",
            std::fs::metadata(camut_bin()).unwrap().len() / 1_000_000
        );
    });
}

#[test]
fn zombies_are_found_and_reaped_and_a_missing_image_fails_cleanly() {
    let moto = Moto::start();
    let early = moto.launch(
        1,
        &[
            ("camut:managed", "true"),
            ("camut:campaign", "ghost-early"),
            ("camut:server", "camut-it-zombies"),
        ],
    );
    let config = format!(
        "server_id = \"camut-it-zombies\"\n{}",
        aws_section(&moto, "user = \"nobody\"\n", 3600)
    );
    let server = ServerProcess::start_with_env("ec2-zombies", Some(&config), &AWS_ENV);
    assert!(
        wait_for(30, || moto.state(&early[0]) == "terminated"),
        "the server reaps zombies at start-up: {}",
        server.log()
    );

    let unknown = moto.launch(
        1,
        &[
            ("camut:managed", "true"),
            ("camut:campaign", "ghost"),
            ("camut:server", "camut-it-zombies"),
        ],
    );
    let expired = moto.launch(
        1,
        &[
            ("camut:managed", "true"),
            ("camut:campaign", "elsewhere"),
            ("camut:server", "another-server"),
            ("camut:expires", "2020-01-01T00:00:00Z"),
        ],
    );
    let theirs = moto.launch(
        1,
        &[
            ("camut:managed", "true"),
            ("camut:campaign", "theirs"),
            ("camut:server", "another-server"),
            ("camut:expires", "2099-01-01T00:00:00Z"),
        ],
    );
    let unmanaged = moto.launch(1, &[("Name", "not-camut")]);
    // A campaign the server knows, holding no instances (as after a spawn cut short by
    // a restart): an instance of it is not held.
    let known = "exports.campaign = { id: 'known', drones: 1, users: 1, iterations: 1, deploy: { deployer: 'aws' } };\n\
                 exports.test = function (done) { done(); };\n";
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("known.js", known).await.unwrap();
    });
    let orphan = moto.launch(
        1,
        &[
            ("camut:managed", "true"),
            ("camut:campaign", "known"),
            ("camut:server", "camut-it-zombies"),
        ],
    );

    let out = server.camut(&["instances", "--zombies", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let zombies: Vec<(String, String)> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_owned(),
                i["zombie"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(zombies.len(), 3, "{zombies:?}");
    let why = |id: &str| zombies.iter().find(|z| z.0 == id).map(|z| z.1.clone());
    assert!(why(&unknown[0]).unwrap().contains("unknown to this server"));
    assert!(why(&expired[0]).unwrap().contains("expired"));
    assert!(why(&orphan[0]).unwrap().contains("does not hold it"));

    let out = server.camut(&["instances"]);
    assert!(out.status.success(), "{}", show(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains(&theirs[0]),
        "another server's live instance is listed: {table}"
    );
    assert!(
        !table.contains(&unmanaged[0]),
        "unmanaged instances are not Camut's"
    );

    let out = server.camut(&["instances", "--reap"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reaped 3 instances"),
        "{}",
        show(&out)
    );
    assert_eq!(moto.state(&unknown[0]), "terminated");
    assert_eq!(moto.state(&expired[0]), "terminated");
    assert_eq!(moto.state(&orphan[0]), "terminated");
    assert_eq!(moto.state(&theirs[0]), "running", "not ours, not expired");
    assert_eq!(moto.state(&unmanaged[0]), "running");

    // An image that does not exist: moto would launch it anyway, the deployer refuses.
    let source = "exports.campaign = { id: 'noimg', drones: 1, users: 1, iterations: 1, deploy: { deployer: 'aws', image: 'ami-00000000' } };\n\
                  exports.test = function (done) { done(); };\n";
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("noimg.js", source).await.unwrap();
        let spawn = c.spawn("noimg").await.unwrap();
        let spawn = c.wait_job(spawn.id).await.unwrap();
        assert_eq!(spawn.state().label(), "failed");
        assert!(
            spawn
                .error
                .contains("image ami-00000000 not found in region us-east-1"),
            "{}",
            spawn.error
        );
        assert_eq!(c.get("noimg").await.unwrap().state().label(), "created");
    });
    assert!(
        moto.campaign_instances("noimg").is_empty(),
        "nothing launched"
    );
}

#[test]
fn a_standalone_ec2_deployer_launches_once_per_client_token() {
    let moto = Moto::start();
    let dir = temp_dir("ec2-apart");
    let (deployer, url) = standalone_deployer(
        &dir,
        "ec2",
        &format!(
            "region = \"us-east-1\"\nendpoint_url = \"{}\"\nimage = \"{MOTO_IMAGE}\"\nrunning_timeout_s = 30\nterminated_timeout_s = 30\n",
            moto.url
        ),
    );
    let create = |token: &str| CreateInstancesRequest {
        campaign: "idem".into(),
        min: 2,
        max: 2,
        client_token: token.into(),
        tags: [("camut:server".to_string(), "apart".to_string())].into(),
        ..Default::default()
    };
    rt().block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut d = DeployerClient::new(channel);
        let ids = |r: camut::v1::CreateInstancesResponse| -> BTreeSet<String> {
            r.instances.into_iter().map(|i| i.id).collect()
        };
        let first = ids(d
            .create_instances(create("idem-1"))
            .await
            .unwrap()
            .into_inner());
        let again = ids(d
            .create_instances(create("idem-1"))
            .await
            .unwrap()
            .into_inner());
        assert_eq!(first.len(), 2);
        assert_eq!(first, again, "a retried create returns the first instances");
        assert_eq!(
            moto.campaign_instances("idem").len(),
            2,
            "and starts no others"
        );
        let next = ids(d
            .create_instances(create("idem-2"))
            .await
            .unwrap()
            .into_inner());
        assert!(next.is_disjoint(&first), "a new attempt launches anew");

        let listed = d
            .list_instances(ListInstancesRequest {
                campaign: "idem".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .instances;
        assert_eq!(listed.len(), 4);
        assert!(listed
            .iter()
            .all(|i| i.server == "apart" && i.expires_unix_ms > 0));

        let destroyed = d
            .destroy_instances(DestroyInstancesRequest {
                campaign: "idem".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .destroyed;
        assert_eq!(destroyed.len(), 4);
        assert!(moto
            .campaign_instances("idem")
            .iter()
            .all(|i| i.state == "terminated"));
        let bad = d
            .create_instances(CreateInstancesRequest {
                min: 3,
                ..create("idem-3")
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    });
    drop(deployer);
}

/// A child process killed on drop (also when an assertion fails).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `camut deployer ec2 --listen 127.0.0.1:0 --config <dir>/NAME.toml` with `body`; the
/// process and its URL.
fn standalone_deployer(dir: &Path, name: &str, body: &str) -> (Killed, String) {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, body).unwrap();
    let mut child = Command::new(camut_bin())
        .args(["deployer", "ec2", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .envs(AWS_ENV)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("deployer address in {line:?}"))
        .to_string();
    (Killed(child), url)
}

/// A client of the deployer serving at `url`.
async fn connect(url: String) -> DeployerClient<tonic::transport::Channel> {
    DeployerClient::new(
        tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

/// A CA certificate as the server hands it to deployers (only carried, never parsed).
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n";

#[test]
fn configure_reports_each_instance_and_refuses_unknown_host_keys() {
    let moto = Moto::start();
    let sshd = Sshd::start("hostkeys");
    let dir = temp_dir("ec2-configure");
    let remote_bin = dir.join("bin").join("camut");
    let empty_known_hosts = dir.join("empty_known_hosts");
    std::fs::write(&empty_known_hosts, "").unwrap();
    let settings = |known_hosts: &Path| {
        format!(
            "region = \"us-east-1\"\nendpoint_url = \"{}\"\nimage = \"{MOTO_IMAGE}\"\n[ssh]\n\
             user = \"{}\"\nkey_file = \"{}\"\nknown_hosts_file = \"{}\"\n\
             address_override = \"127.0.0.1:{}\"\nremote_binary = \"{}\"\n\
             drone_config = \"{}/{{id}}.env\"\nstart_command = \"true\"\nconnect_retry_s = 5\n",
            moto.url,
            current_user(),
            sshd.user_key.display(),
            known_hosts.display(),
            sshd.port,
            remote_bin.display(),
            dir.display(),
        )
    };
    let (strict_process, strict_url) =
        standalone_deployer(&dir, "strict", &settings(&empty_known_hosts));
    let (good_process, good_url) = standalone_deployer(&dir, "good", &settings(&sshd.known_hosts));
    rt().block_on(async {
        let mut strict = connect(strict_url).await;
        let mut good = connect(good_url).await;
        let made = good
            .create_instances(CreateInstancesRequest {
                campaign: "cfg".into(),
                min: 1,
                max: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .instances;
        let id = made[0].id.clone();
        let configure = |ids: Vec<String>| camut::v1::ConfigureInstancesRequest {
            campaign: "cfg".into(),
            instance_ids: ids,
            server_address: "http://127.0.0.1:9".into(),
            join_token: "t0k3n".into(),
            ca_pem: CA_PEM.into(),
        };

        // The host key is not in the known-hosts file: refused, with what to do.
        let out = strict
            .configure_instances(configure(vec![id.clone()]))
            .await
            .unwrap()
            .into_inner();
        assert!(out.configured.is_empty());
        let why = &out.failed[&id];
        assert!(why.contains("Host key verification failed"), "{why}");
        assert!(why.contains("host_key_policy"), "{why}");
        assert!(!remote_bin.exists(), "nothing was uploaded");

        // One instance unknown, one fine: each gets its own outcome.
        let out = good
            .configure_instances(configure(vec![id.clone(), "i-0000000000".into()]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(out.configured, vec![id.clone()], "{out:?}");
        assert!(out.failed["i-0000000000"].contains("no live instance"));
        let env = std::fs::read_to_string(dir.join(format!("{id}.env"))).unwrap();
        assert!(env.contains("CAMUT_TOKEN='t0k3n'"), "{env}");
        // The server's CA went beside the drone's config, named by CAMUT_CA.
        let ca_file = dir.join(format!("{id}.env.ca.pem"));
        assert!(
            env.contains(&format!("CAMUT_CA='{}'", ca_file.display())),
            "{env}"
        );
        assert_eq!(std::fs::read_to_string(&ca_file).unwrap(), CA_PEM);
        let uploaded = std::fs::metadata(&remote_bin).unwrap().modified().unwrap();

        // Same version on the host: configured again without an upload.
        let started = Instant::now();
        let out = good
            .configure_instances(configure(vec![id.clone()]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(out.configured, vec![id.clone()]);
        assert_eq!(
            std::fs::metadata(&remote_bin).unwrap().modified().unwrap(),
            uploaded,
            "the binary is not uploaded again"
        );
        eprintln!(
            "ec2 figures: configure of one instance over ssh without upload {} ms",
            started.elapsed().as_millis()
        );
        good.destroy_instances(DestroyInstancesRequest {
            campaign: "cfg".into(),
        })
        .await
        .unwrap();
    });
    drop((strict_process, good_process));
}

/// What the fault proxy does to one EC2 action.
#[derive(Clone, Copy)]
enum Fault {
    /// Answers with EC2's error for a launch it has no capacity for.
    NoCapacity,
    /// Holds the request this long, then closes without an answer.
    Delay(std::time::Duration),
}

/// A plain-HTTP proxy on 127.0.0.1 in front of moto that applies `fault` to requests of
/// `action` and forwards every other request unchanged. It counts the faulted requests
/// and stops serving when dropped; each connection is bounded in time.
struct FaultProxy {
    url: String,
    faulted: std::sync::Arc<std::sync::atomic::AtomicU32>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FaultProxy {
    fn start(moto_url: &str, action: &'static str, fault: Fault) -> FaultProxy {
        use std::sync::atomic::{AtomicBool, AtomicU32};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = moto_url.trim_start_matches("http://").to_string();
        let faulted = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (faulted.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + std::time::Duration::from_secs(300);
            while !halt.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (upstream, count, halt) =
                            (upstream.clone(), count.clone(), halt.clone());
                        std::thread::spawn(move || {
                            proxy_one(client, &upstream, action, fault, &count, &halt)
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                }
            }
        });
        FaultProxy { url, faulted, stop }
    }

    fn faulted(&self) -> u32 {
        self.faulted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Serves one connection: one request (headers and a Content-Length body), then close.
fn proxy_one(
    mut client: std::net::TcpStream,
    upstream: &str,
    action: &str,
    fault: Fault,
    count: &std::sync::atomic::AtomicU32,
    halt: &std::sync::atomic::AtomicBool,
) {
    use std::io::{Read, Write};
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    if body.contains(&format!("Action={action}")) {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match fault {
            Fault::NoCapacity => {
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
                    <Code>InsufficientInstanceCapacity</Code><Message>We currently do not have \
                    sufficient t3.nano capacity in the Availability Zone you requested \
                    (us-east-1a).</Message></Error></Errors><RequestID>7a62c49f-347e-4fc4-9331-\
                    6e8eEXAMPLE</RequestID></Response>";
                let _ = write!(
                    client,
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml;charset=UTF-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                );
            }
            Fault::Delay(d) => {
                let until = Instant::now() + d;
                while Instant::now() < until && !halt.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
            }
        }
        return;
    }
    // Anything else goes to moto, one request per connection.
    let Ok(mut up) = std::net::TcpStream::connect(upstream) else {
        return;
    };
    let _ = up.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let head = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\r\n");
    let _ = up.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes());
    let _ = up.write_all(&buf[head_end..]);
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    let _ = client.write_all(&answer);
}

/// A server whose `aws` deployer talks to EC2 at `endpoint`, with `extra` settings.
fn server_on_endpoint(name: &str, endpoint: &str, extra: &str) -> ServerProcess {
    let config = format!(
        "server_id = \"camut-it-{name}\"\n[deployers.aws]\nkind = \"ec2\"\n[deployers.aws.settings]\n\
         region = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\nimage = \"{MOTO_IMAGE}\"\n\
         instance_type = \"t3.micro\"\nrunning_timeout_s = 30\nterminated_timeout_s = 30\n{extra}"
    );
    ServerProcess::start_with_env(name, Some(&config), &AWS_ENV)
}

/// A one-drone campaign on the `aws` deployer.
fn aws_campaign(id: &str) -> String {
    format!(
        "exports.campaign = {{ id: '{id}', drones: 1, users: 1, iterations: 1, deploy: {{ deployer: 'aws', zone: 'us-east-1a', instanceType: 't3.nano' }} }};\n\
         exports.test = function (done) {{ done(); }};\n"
    )
}

#[test]
fn ec2_capacity_errors_are_final_and_read_in_one_line() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.url, "RunInstances", Fault::NoCapacity);
    let server = server_on_endpoint("ec2-capacity", &proxy.url, "");
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("cap.js", &aws_campaign("cap")).await.unwrap();
        let started = Instant::now();
        let spawn = c.spawn("cap").await.unwrap();
        let spawn = c.wait_job(spawn.id).await.unwrap();
        assert_eq!(spawn.state().label(), "failed", "{spawn:?}");
        assert!(
            spawn.error.contains("InsufficientInstanceCapacity")
                && spawn.error.contains("try another zone or instance type"),
            "EC2's code and what to do: {}",
            spawn.error
        );
        assert!(
            spawn.error.len() < 500
                && !spawn.error.contains("RequestID")
                && !spawn.error.contains("<"),
            "no SDK debug output: {}",
            spawn.error
        );
        let log = spawn.log.join("\n");
        assert!(
            !log.contains("trying again"),
            "a final error is not retried: {log}"
        );
        assert_eq!(proxy.faulted(), 1, "RunInstances was asked once");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        assert!(
            moto.campaign_instances("cap").is_empty(),
            "nothing was launched"
        );
    });
}

#[test]
fn an_ec2_call_that_hangs_times_out_and_says_so() {
    let moto = Moto::start();
    let proxy = FaultProxy::start(
        &moto.url,
        "DescribeImages",
        Fault::Delay(std::time::Duration::from_secs(100)),
    );
    let server = server_on_endpoint("ec2-timeout", &proxy.url, "api_timeout_s = 2\n");
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("slow.js", &aws_campaign("slow")).await.unwrap();
        let started = Instant::now();
        let spawn = c.spawn("slow").await.unwrap();
        let spawn = c.wait_job(spawn.id).await.unwrap();
        let took = started.elapsed();
        assert_eq!(spawn.state().label(), "failed", "{spawn:?}");
        assert!(
            spawn.error.contains("DescribeImages")
                && spawn.error.contains("api_timeout_s")
                && spawn.error.contains("tried 3 times with backoff"),
            "{}",
            spawn.error
        );
        assert_eq!(proxy.faulted(), 3, "three tries of the hanging call");
        // 3 × 2 s, plus 1 s and 2 s of backoff: far below the 100 s of the delay.
        assert!(took < std::time::Duration::from_secs(40), "{took:?}");
        let log = spawn.log.join("\n");
        assert!(
            log.contains("asking deployer 'aws'"),
            "the job says what it waits for: {log}"
        );
    });
    drop(proxy);
}

#[test]
fn ssh_failures_are_quick_and_name_their_cause() {
    let moto = Moto::start();
    let sshd = Sshd::start("sshfail");
    let dir = temp_dir("ec2-sshfail");
    let remote_bin = dir.join("bin").join("camut");
    let settings = |user: &str, start: &str| {
        format!(
            "region = \"us-east-1\"\nendpoint_url = \"{}\"\nimage = \"{MOTO_IMAGE}\"\n[ssh]\n\
             user = \"{user}\"\nkey_file = \"{}\"\nknown_hosts_file = \"{}\"\n\
             address_override = \"127.0.0.1:{}\"\nremote_binary = \"{}\"\nsudo = \"\"\n\
             drone_config = \"{}/{{id}}.env\"\nstart_command = \"{start}\"\nconnect_retry_s = 60\n\
             configure_timeout_s = 60\n",
            moto.url,
            sshd.user_key.display(),
            sshd.known_hosts.display(),
            sshd.port,
            remote_bin.display(),
            dir.display(),
        )
    };
    let me = current_user();
    let (p1, wrong_user) =
        standalone_deployer(&dir, "wrong-user", &settings("camut-no-such-user", "true"));
    let (p2, attached) =
        standalone_deployer(&dir, "attached", &settings(&me, "echo started; sleep 58"));
    let (p3, missing) = standalone_deployer(
        &dir,
        "missing",
        &settings(&me, "no-such-sudo-xyz systemctl restart camut-drone"),
    );
    rt().block_on(async {
        let mut wrong_user = connect(wrong_user).await;
        let mut attached = connect(attached).await;
        let mut missing = connect(missing).await;
        let id = attached
            .create_instances(CreateInstancesRequest {
                campaign: "ssh".into(),
                min: 1,
                max: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .instances[0]
            .id
            .clone();
        let configure = || camut::v1::ConfigureInstancesRequest {
            campaign: "ssh".into(),
            instance_ids: vec![id.clone()],
            server_address: "http://127.0.0.1:9".into(),
            join_token: "t0k3n".into(),
            ca_pem: String::new(),
        };

        // A refused login is not retried for connect_retry_s (60 s): it fails at once
        // and names the settings to check.
        let started = Instant::now();
        let out = wrong_user
            .configure_instances(configure())
            .await
            .unwrap()
            .into_inner();
        let took = started.elapsed();
        let why = &out.failed[&id];
        assert!(took < std::time::Duration::from_secs(10), "{took:?}: {why}");
        assert!(why.contains("Permission denied"), "{why}");
        assert!(
            why.contains("ssh.user = 'camut-no-such-user'") && why.contains("ssh.key_file"),
            "{why}"
        );

        // A start command that keeps its output attached cannot hang the deploy.
        let started = Instant::now();
        let out = attached
            .configure_instances(configure())
            .await
            .unwrap()
            .into_inner();
        let took = started.elapsed();
        assert_eq!(out.configured, vec![id.clone()], "{out:?}");
        assert!(took < std::time::Duration::from_secs(45), "{took:?}");

        // A start command that fails: its exit code and the shell's own words.
        let out = missing
            .configure_instances(configure())
            .await
            .unwrap()
            .into_inner();
        let why = &out.failed[&id];
        assert!(why.contains("exited with 127"), "{why}");
        assert!(
            why.contains("no-such-sudo-xyz") && why.contains("not found"),
            "{why}"
        );

        attached
            .destroy_instances(DestroyInstancesRequest {
                campaign: "ssh".into(),
            })
            .await
            .unwrap();
    });
    let _ = Command::new("pkill").args(["-f", "sleep 58"]).status();
    drop((p1, p2, p3));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_running_campaign_past_its_lifetime_keeps_its_instances_across_a_restart() {
    let moto = Moto::start();
    let sshd = Sshd::start("lifetime");
    let target = TargetProcess::start();
    let remote = temp_dir("lifetime-host");
    let remote_bin = remote.join("bin").join("camut");
    let ssh = drone_ssh_section(&sshd, &remote, &remote_bin);
    // Instances expire 6 s after launch unless their campaign's server pushes it back.
    let config = format!(
        "server_id = \"camut-it-lifetime\"\n{}",
        aws_section(&moto, &ssh, 6)
    );
    let mut server = ServerProcess::start_with_env("ec2-lifetime", Some(&config), &AWS_ENV);
    let _drones = DronesOf(remote_bin.display().to_string());
    // About 0.1 s per iteration: 150 iterations per VU run for some 15 s.
    let source = format!(
        "exports.campaign = {{ id: 'long', drones: 2, users: 1, iterations: 150, deploy: {{ deployer: 'aws', zone: 'us-east-1a' }} }};\n\
         exports.test = function (done) {{\n\
           camut.http({{ url: '{}/', operation: 'home' }}, function () {{ setTimeout(done, 100); }});\n\
         }};\n",
        target.url
    );
    let start_id = rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("long.js", &source).await.unwrap();
        for job in [
            c.spawn("long").await.unwrap(),
            c.deploy("long").await.unwrap(),
        ] {
            let job = c.wait_job(job.id).await.unwrap();
            assert_eq!(job.state().label(), "complete", "{job:?}\n{}", server.log());
        }
        let start = c.start("long").await.unwrap();
        start.id
    });
    let held: Vec<String> = moto
        .campaign_instances("long")
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(held.len(), 2);
    // Past the launch lifetime while running: the expiry was pushed back.
    std::thread::sleep(std::time::Duration::from_secs(7));
    for left in expiries(&moto, "long") {
        assert!(left > 0.0, "a held instance's expiry moves: {left} s left");
    }
    // The server dies and stays down past the instances' expiry.
    server.kill9_and_restart_after(std::time::Duration::from_secs(8));
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        let start = c.wait_job(start_id).await.unwrap();
        assert_eq!(
            start.state().label(),
            "complete",
            "{start:?}\n{}",
            server.log()
        );
        let results = c.results("long").await.unwrap();
        let summary = camut_integration::summary_value(&results);
        assert_eq!(summary["requests"], 2 * 150, "{summary}");
        assert_eq!(target.served(), 2 * 150);
        for id in &held {
            assert_eq!(
                moto.state(id),
                "running",
                "held instance {id} was not reaped"
            );
        }
        let log = server.log();
        assert!(
            log.contains("kept: held by campaign 'long'"),
            "the reconcile says why it kept them: {log}"
        );
        let listed = c.get("long").await.unwrap();
        assert_eq!(listed.instances.len(), 2);
        let _ = c.kill("long").await;
    });
}
