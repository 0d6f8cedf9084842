//! The local deployer starting and killing real child processes: a shell script stands in
//! for the drone, recording its pid and arguments and then sleeping.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use camut::v1::{
    ConfigureInstancesRequest, CreateInstancesRequest, DeployedInstance, DestroyInstancesRequest,
    ListInstancesRequest,
};
use camut_deployer::{Deployer, LocalDeployer};
use tempfile::TempDir;
use tokio::sync::Mutex;
use tokio::time::{sleep, Instant};
use tonic::{Code, Request};

const SERVER: &str = "http://127.0.0.1:1";
const TOKEN: &str = "join-token";

/// Held by every test that starts processes. A script being written while another test
/// forks can fail to start ("text file busy"), so such tests run one at a time.
static PROCESSES: Mutex<()> = Mutex::const_new(());

/// Writes an executable script into `dir` that records `<pid>\n<args…>` into
/// `<dir>/<id>.run` (id being its last argument), prints a line on stdout and one on
/// stderr, then runs `tail`.
fn script(dir: &Path, tail: &str) -> PathBuf {
    let path = dir.join("fake-drone.sh");
    let text = format!(
        "#!/bin/sh\n\
         for last; do :; done\n\
         {{ echo $$; printf '%s\\n' \"$@\"; }} > '{dir}/'\"$last\".tmp\n\
         mv '{dir}/'\"$last\".tmp '{dir}/'\"$last\".run\n\
         echo \"out of $last\"\n\
         echo \"err of $last\" >&2\n\
         {tail}\n",
        dir = dir.display()
    );
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Waits up to 10 s for `check` to give a value.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

/// The pid and arguments the script recorded for instance `id`.
async fn recorded(dir: &Path, id: &str) -> (u32, Vec<String>) {
    let path = dir.join(format!("{id}.run"));
    let text = eventually(&format!("{} to be written", path.display()), || {
        fs::read_to_string(&path).ok()
    })
    .await;
    let mut lines = text.lines();
    let pid = lines.next().unwrap().parse().unwrap();
    (pid, lines.map(str::to_owned).collect())
}

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            state != Some(Some('Z'))
        }
        Err(_) => false,
    }
}

async fn create(deployer: &LocalDeployer, campaign: &str, max: u32) -> Vec<DeployedInstance> {
    deployer
        .create_instances(Request::new(CreateInstancesRequest {
            campaign: campaign.into(),
            min: 1,
            max,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .instances
}

fn configure(campaign: &str, ids: &[&str]) -> Request<ConfigureInstancesRequest> {
    Request::new(ConfigureInstancesRequest {
        campaign: campaign.into(),
        instance_ids: ids.iter().map(|id| id.to_string()).collect(),
        server_address: SERVER.into(),
        join_token: TOKEN.into(),
        ..Default::default()
    })
}

async fn states(deployer: &LocalDeployer, campaign: &str) -> Vec<(String, String)> {
    deployer
        .list_instances(Request::new(ListInstancesRequest {
            campaign: campaign.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .instances
        .into_iter()
        .map(|i| (i.id, i.state))
        .collect()
}

fn pair(id: &str, state: &str) -> (String, String) {
    (id.to_owned(), state.to_owned())
}

#[tokio::test]
async fn configure_starts_drones_and_destroy_kills_them() {
    let _processes = PROCESSES.lock().await;
    let dir = TempDir::new().unwrap();
    let logs = dir.path().join("logs");
    let deployer = LocalDeployer::new(script(dir.path(), "exec sleep 30")).with_log_dir(&logs);

    let created = create(&deployer, "c", 2).await;
    let ids: Vec<&str> = created.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["local-c-0", "local-c-1"]);
    assert!(created.iter().all(|i| i.state == "pending"));
    assert!(
        !dir.path().join("local-c-0.run").exists(),
        "nothing runs before configure"
    );

    let response = deployer
        .configure_instances(configure("c", &["local-c-0", "local-c-1", "local-x-0"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.configured, ["local-c-0", "local-c-1"]);
    assert_eq!(response.failed.len(), 1);
    assert!(response.failed.contains_key("local-x-0"));

    let mut pids = Vec::new();
    for id in ["local-c-0", "local-c-1"] {
        let (pid, args) = recorded(dir.path(), id).await;
        assert_eq!(
            args,
            ["drone", "--server", SERVER, "--token", TOKEN, "--id", id]
        );
        assert!(alive(pid), "drone {id} runs");
        pids.push(pid);
    }
    let log = logs.join("local-c-0.log");
    let text = eventually("the drone's output in its log", || {
        let text = fs::read_to_string(&log).ok()?;
        text.contains("err of local-c-0").then_some(text)
    })
    .await;
    assert!(text.contains("out of local-c-0"), "{text}");
    assert_eq!(
        states(&deployer, "c").await,
        [
            pair("local-c-0", "configured"),
            pair("local-c-1", "configured")
        ]
    );

    let destroyed = deployer
        .destroy_instances(Request::new(DestroyInstancesRequest {
            campaign: "c".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .destroyed;
    assert_eq!(destroyed, ["local-c-0", "local-c-1"]);
    for pid in pids {
        assert!(!alive(pid), "drone {pid} killed and reaped");
    }
    assert!(states(&deployer, "").await.is_empty());
}

#[tokio::test]
async fn a_drone_that_exits_is_listed_terminated() {
    let _processes = PROCESSES.lock().await;
    let dir = TempDir::new().unwrap();
    let deployer = LocalDeployer::new(script(dir.path(), "exit 3"));
    create(&deployer, "c", 1).await;
    deployer
        .configure_instances(configure("c", &[]))
        .await
        .unwrap();
    recorded(dir.path(), "local-c-0").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while states(&deployer, "c").await != [pair("local-c-0", "terminated")] {
        assert!(Instant::now() < deadline, "drone never listed terminated");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn dropping_the_deployer_kills_its_drones() {
    let _processes = PROCESSES.lock().await;
    let dir = TempDir::new().unwrap();
    let deployer = LocalDeployer::new(script(dir.path(), "exec sleep 30"));
    create(&deployer, "c", 1).await;
    deployer
        .configure_instances(configure("c", &[]))
        .await
        .unwrap();
    let (pid, _) = recorded(dir.path(), "local-c-0").await;
    assert!(alive(pid));
    drop(deployer);
    eventually("the drone to die", || (!alive(pid)).then_some(())).await;
}

#[tokio::test]
async fn reconfiguring_replaces_the_drone() {
    let _processes = PROCESSES.lock().await;
    let dir = TempDir::new().unwrap();
    let deployer = LocalDeployer::new(script(dir.path(), "exec sleep 30"));
    create(&deployer, "c", 1).await;
    deployer
        .configure_instances(configure("c", &[]))
        .await
        .unwrap();
    let (first, _) = recorded(dir.path(), "local-c-0").await;
    fs::remove_file(dir.path().join("local-c-0.run")).unwrap();
    deployer
        .configure_instances(configure("c", &[]))
        .await
        .unwrap();
    let (second, _) = recorded(dir.path(), "local-c-0").await;
    assert_ne!(first, second);
    assert!(!alive(first), "the first drone was killed");
    assert!(alive(second));
}

#[tokio::test]
async fn a_missing_program_is_a_per_instance_failure() {
    let _processes = PROCESSES.lock().await;
    let dir = TempDir::new().unwrap();
    let deployer = LocalDeployer::new(dir.path().join("no-such-program"));
    create(&deployer, "c", 1).await;
    let response = deployer
        .configure_instances(configure("c", &[]))
        .await
        .unwrap()
        .into_inner();
    assert!(response.configured.is_empty());
    let why = &response.failed["local-c-0"];
    assert!(why.contains("no-such-program"), "{why}");
    assert_eq!(states(&deployer, "c").await, [pair("local-c-0", "pending")]);
}

#[tokio::test]
async fn configure_needs_an_address_and_a_token() {
    let _processes = PROCESSES.lock().await;
    let deployer = LocalDeployer::new("/nonexistent");
    create(&deployer, "c", 1).await;
    for (address, token) in [("", TOKEN), (SERVER, "")] {
        let status = deployer
            .configure_instances(Request::new(ConfigureInstancesRequest {
                campaign: "c".into(),
                instance_ids: vec![],
                server_address: address.into(),
                join_token: token.into(),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}
