//! Numbered runs and campaign environments, end to end with real server, drone and
//! target processes: a finished run's results survive a failed redeploy and a second
//! run, and `camut.env` reaches every drone of a server campaign, secrets masked.

use camut::Client;
use camut_integration::{rt, show, temp_file, ServerProcess, TargetProcess};
use serde_json::Value;

/// A campaign whose target comes from `camut.env.TARGET`, and which prints a secret of
/// its environment once per VU.
const SOURCE: &str = "exports.campaign = { id: 'envrun', drones: 2, users: 2, iterations: 5, deploy: { deployer: 'local' } };\n\
exports.test = function (done) {\n\
  if (camut.vu.iteration === 0) { console.log('the key is ' + camut.env.API_KEY); }\n\
  camut.http({ url: camut.env.TARGET + '/', operation: 'home' }, function (err) { done(); });\n\
};\n";

const SECRET: &str = "s3cr3t-7f1c2a9e";

/// `camut ARGS` against the server, asserting success; its stdout.
fn ok(server: &ServerProcess, args: &[&str]) -> String {
    let out = server.camut(args);
    assert!(out.status.success(), "camut {args:?}: {}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs spawn, deploy and start through the CLI (each waits for its job).
fn full_run(server: &ServerProcess) {
    for step in ["spawn", "deploy", "start"] {
        ok(server, &[step, "envrun"]);
    }
}

#[test]
fn runs_are_kept_apart_and_env_reaches_every_drone_with_secrets_masked() {
    let target = TargetProcess::start();
    let mut server = ServerProcess::start("runs", None);
    let file = temp_file("envrun.js", SOURCE);
    let file = file.display().to_string();
    let target_env = format!("TARGET={}", target.url);
    let secret_env = format!("API_KEY={SECRET}");
    ok(
        &server,
        &[
            "new",
            &file,
            "--env",
            &target_env,
            "--secret-env",
            &secret_env,
        ],
    );

    // Run 1: the target comes from the environment, on both drones.
    full_run(&server);
    assert_eq!(target.served(), 2 * 2 * 5, "the target saw every request");
    let r1: Value = serde_json::from_str(&ok(&server, &["results", "envrun", "--json"])).unwrap();
    assert_eq!(r1["run"], 1, "{r1}");
    assert_eq!(r1["summary"]["requests"], 20, "{r1}");
    assert_eq!(r1["summary"]["errors"], 0, "{r1}");

    // The secret is masked in every view and log line; the plain variable is shown.
    let status = ok(&server, &["status", "envrun"]);
    assert!(status.contains("API_KEY=********"), "{status}");
    assert!(status.contains(&target_env), "{status}");
    let json = ok(&server, &["status", "envrun", "--json"]);
    assert!(!json.contains(SECRET), "{json}");
    let logs = ok(&server, &["logs", "--campaign", "envrun", "-n", "1000"]);
    assert!(
        logs.contains("the key is ********"),
        "the drones' lines arrive, masked: {logs}"
    );
    assert!(!logs.contains(SECRET), "{logs}");
    let (code, page) =
        camut_integration::http_request(&server.addr, "GET", "/ui/campaigns/envrun", "");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("envrun") && !page.contains(SECRET), "{page}");

    // A restart forgets the local deployer's instances: the redeploy fails.
    server.kill9_and_restart();
    let deploy = server.camut(&["deploy", "envrun"]);
    assert!(
        !deploy.status.success(),
        "the redeploy fails: {}",
        show(&deploy)
    );
    let after_failure: Value =
        serde_json::from_str(&ok(&server, &["results", "envrun", "--json"])).unwrap();
    assert_eq!(
        after_failure["run"], 1,
        "the latest results are still run 1's: {after_failure}"
    );
    assert_eq!(after_failure["summary"]["requests"], 20, "{after_failure}");
    assert_eq!(after_failure["finished"], true, "{after_failure}");

    // Run 2, after a kill and a new spawn.
    ok(&server, &["kill", "envrun"]);
    full_run(&server);
    assert_eq!(target.served(), 2 * 20, "the target saw both runs");
    let latest: Value =
        serde_json::from_str(&ok(&server, &["results", "envrun", "--json"])).unwrap();
    assert_eq!(latest["run"], 2, "{latest}");
    assert_eq!(latest["summary"]["requests"], 20, "run 2 alone: {latest}");
    let runs: Vec<u64> = latest["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run"].as_u64().unwrap())
        .collect();
    assert_eq!(runs, [1, 2], "{latest}");
    let first: Value =
        serde_json::from_str(&ok(&server, &["results", "envrun", "--run", "1", "--json"])).unwrap();
    assert_eq!(first["run"], 1);
    assert_eq!(
        first["summary"], r1["summary"],
        "run 1 reads exactly as when it finished"
    );
    let text = ok(&server, &["results", "envrun"]);
    assert!(text.contains("run 2") && text.contains("run   1"), "{text}");
    let missing = server.camut(&["results", "envrun", "--run", "7"]);
    assert!(!missing.status.success());
    assert!(
        show(&missing).contains("has no run 7 (runs: 1, 2)"),
        "{}",
        show(&missing)
    );
    // Each run's series adds up to its own results.
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        for run in [1, 2] {
            let series = c.run_series("envrun", run).await.unwrap().points();
            let total: u64 = series.iter().map(|p| p.total.requests).sum();
            assert_eq!(total, 20, "run {run}: {series:?}");
        }
        let _ = c.kill("envrun").await;
    });
}
