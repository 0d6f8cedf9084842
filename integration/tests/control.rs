//! The control plane end to end: a real server process, real drone processes started by
//! the local deployer, a real target; driven through the client crate and the CLI.

use camut::Client;
use camut_integration::{
    control_campaign, junit_cases, pids_with, rt, show, temp_file, wait_for, ServerProcess,
    TargetProcess,
};
use tonic::Code;

fn summary(r: &camut::v1::CampaignResults) -> serde_json::Value {
    camut_integration::summary_value(r)
}

#[test]
fn whole_workflow_with_exact_totals() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("workflow", None);
    let source = control_campaign(
        "wf",
        2,
        3,
        7,
        ", thresholds: { 'http.errors': ['rate < 0.01'] }",
        &target.url,
    );
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        let results = c
            .run_campaign("wf.js", &source)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_eq!(results.state().label(), "finished");
        let s = summary(&results);
        assert_eq!(s["requests"], 2 * 3 * 7, "{s}");
        assert_eq!(s["iterations"]["completed"], 2 * 3 * 7);
        assert_eq!(s["errors"], 0);
        assert_eq!(
            target.served(),
            2 * 3 * 7,
            "the target counted exactly drones × users × iterations"
        );
        let drones = s["drones"].as_array().unwrap();
        assert_eq!(drones.len(), 2);
        assert!(drones.iter().all(|d| d["requests"] == 21), "{s}");
        assert!(results.thresholds_ok);
        assert_eq!(s["metrics"]["http.response_time"]["count"], 42);
        let campaign = c.get("wf").await.unwrap();
        assert_eq!(campaign.instances.len(), 2);
        assert_eq!(
            pids_with(&["drone", "--id", "local-wf-"]).len(),
            2,
            "two drone processes run"
        );
        let kill = c.kill("wf").await.unwrap();
        let kill = c.wait_job(kill.id).await.unwrap();
        assert_eq!(kill.state().label(), "complete", "{kill:?}");
        assert!(
            wait_for(10, || pids_with(&["drone", "--id", "local-wf-"]).is_empty()),
            "kill frees the instances"
        );
        assert_eq!(c.get("wf").await.unwrap().state().label(), "killed");
        // The results are kept after kill.
        assert_eq!(summary(&c.results("wf").await.unwrap())["requests"], 42);
        c.delete("wf").await.unwrap();
        assert_eq!(c.get("wf").await.unwrap_err().code(), Some(Code::NotFound));
        let jobs = c.jobs(None).await.unwrap();
        assert!(
            jobs.iter().all(|j| j.campaign != "wf"),
            "delete removes the campaign's jobs"
        );
    });
}

#[test]
fn wrong_state_bad_upload_and_update_rules() {
    let server = ServerProcess::start("rules", None);
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        let e = c
            .create(
                "bad.js",
                "exports.campaign = { id: 'b' };\nexports.test = function (d) {\n  d(;\n};\n",
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(Code::InvalidArgument));
        assert!(e.to_string().contains("bad.js:3:"), "{e}");
        assert!(c.list().await.unwrap().is_empty(), "nothing stored");
        let src = control_campaign("r", 2, 1, 1, "", "http://127.0.0.1:9");
        c.create("r.js", &src).await.unwrap();
        assert_eq!(
            c.create("r.js", &src).await.unwrap_err().code(),
            Some(Code::AlreadyExists)
        );
        let e = c.start("r").await.unwrap_err();
        assert_eq!(e.code(), Some(Code::FailedPrecondition));
        assert!(e.to_string().contains("deploy first"), "{e}");
        assert_eq!(
            c.stop("r").await.unwrap_err().code(),
            Some(Code::FailedPrecondition)
        );
        let e = c
            .update(
                "r.js",
                &control_campaign("r", 3, 1, 1, "", "http://127.0.0.1:9"),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(Code::FailedPrecondition));
        assert!(
            e.to_string()
                .contains("delete the campaign and create it again"),
            "{e}"
        );
        let ok = c
            .update(
                "r.js",
                &control_campaign("r", 2, 5, 1, "", "http://127.0.0.1:9"),
            )
            .await
            .unwrap();
        assert_eq!(ok.users, 5);
        assert_eq!(
            c.spawn("nope").await.unwrap_err().code(),
            Some(Code::NotFound)
        );
    });
}

#[test]
fn token_is_required_when_configured() {
    let server = ServerProcess::start("token", Some("token = \"s3cret-api-token-16\"\n"));
    rt().block_on(async {
        let none = Client::connect(&server.addr, None).await.unwrap();
        let e = none.list().await.unwrap_err();
        assert_eq!(e.code(), Some(Code::Unauthenticated));
        assert!(e.to_string().contains("token"), "{e}");
        let wrong = Client::connect(&server.addr, Some("nope")).await.unwrap();
        assert_eq!(
            wrong.list().await.unwrap_err().code(),
            Some(Code::Unauthenticated)
        );
        let right = Client::connect(&server.addr, Some("s3cret-api-token-16"))
            .await
            .unwrap();
        assert!(right.list().await.unwrap().is_empty());
    });
}

#[test]
fn reflection_serves_a_generic_client() {
    let server = ServerProcess::start("reflect", None);
    let out = server.camut(&[
        "new",
        temp_file(
            "refl.js",
            &control_campaign("refl", 1, 1, 1, "", "http://127.0.0.1:9"),
        )
        .to_str()
        .unwrap(),
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let script = camut_integration::repo_root().join("integration/scripts/reflect.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&server.addr)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    for s in [
        "camut.v1.Campaigns",
        "camut.v1.Jobs",
        "camut.v1.Drones",
        "camut.v1.Logs",
    ] {
        assert!(text.contains(&format!("service {s}")), "{text}");
    }
    assert!(
        text.contains("campaigns: 1") && text.contains("campaign refl created"),
        "{text}"
    );
}

/// A campaign whose iterations take a while (paced by a timer), so that things can
/// happen mid-run.
fn slow_campaign(id: &str, drones: u32, iterations: u64, extra: &str, target: &str) -> String {
    format!(
        "exports.campaign = {{ id: '{id}', drones: {drones}, users: 2, iterations: {iterations}, deploy: {{ deployer: 'local' }}{extra} }};\n\
         exports.test = function (done) {{\n\
           camut.http({{ url: '{target}/?delay_ms=20', operation: 'slow' }}, function (err) {{ setTimeout(done, 80); }});\n\
         }};\n"
    )
}

/// Waits (at most 10 s) until the campaign runs and its drones report finished iterations.
async fn until_under_way(c: &Client, id: &str) {
    for _ in 0..200 {
        let campaign = c.get(id).await.unwrap();
        if campaign.state().label() == "running" && campaign.iterations_done > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("campaign {id} never got under way");
}

#[test]
fn a_drone_killed_mid_run_is_lost_and_the_others_finish() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("loss", Some("drone_timeout_s = 3\n"));
    // ~40 iterations of 0.1 s per VU: about 4 s.
    let source = slow_campaign("loss", 2, 40, "", &target.url);
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("loss.js", &source).await.unwrap();
        for job in [
            c.spawn("loss").await.unwrap(),
            c.deploy("loss").await.unwrap(),
        ] {
            assert_eq!(
                c.wait_job(job.id).await.unwrap().state().label(),
                "complete",
                "{}",
                server.log()
            );
        }
        let start = c.start("loss").await.unwrap();
        until_under_way(&c, "loss").await;
        let victim = pids_with(&["drone", "--id", "local-loss-1"]);
        assert_eq!(victim.len(), 1);
        std::process::Command::new("kill")
            .args(["-9", &victim[0].to_string()])
            .status()
            .unwrap();
        let start = c.wait_job(start.id).await.unwrap();
        assert_eq!(
            start.state().label(),
            "complete",
            "{start:?}\n{}",
            server.log()
        );
        let r = c.results("loss").await.unwrap();
        assert!(r.degraded, "results are marked degraded");
        assert_eq!(r.lost.len(), 1);
        assert!(r.lost[0].starts_with("local-loss-1"), "{:?}", r.lost);
        let s = summary(&r);
        let drones = s["drones"].as_array().unwrap();
        let survivor = drones.iter().find(|d| d["id"] == "local-loss-0").unwrap();
        assert_eq!(
            survivor["iterations"], 80,
            "the other drone finished all its iterations: {s}"
        );
        assert!(!drones.iter().find(|d| d["id"] == "local-loss-1").unwrap()["lost"].is_null());
        // CI reads the loss: the JUnit case "no drone lost, no data lost" fails.
        let junit = std::env::temp_dir().join(format!("camut-loss-{}.xml", std::process::id()));
        let out = server.camut(&["results", "loss", "--junit", junit.to_str().unwrap()]);
        assert!(out.status.success(), "no threshold broke: {}", show(&out));
        let (totals, cases) = junit_cases(&junit);
        assert_eq!(
            (totals["tests"].as_u64(), totals["failures"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(cases[0].0, "no drone lost, no data lost");
        assert!(
            !cases[0].1 && cases[0].2.contains("local-loss-1"),
            "{cases:?}"
        );
        let _ = std::fs::remove_file(junit);
        let _ = c.kill("loss").await;
    });
}

#[test]
fn the_server_killed_mid_run_restarts_and_the_campaign_completes_exactly() {
    let target = TargetProcess::start();
    let mut server = ServerProcess::start("restart", None);
    let source = slow_campaign("rs", 2, 30, "", &target.url);
    let start_id = rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("rs.js", &source).await.unwrap();
        for job in [c.spawn("rs").await.unwrap(), c.deploy("rs").await.unwrap()] {
            assert_eq!(
                c.wait_job(job.id).await.unwrap().state().label(),
                "complete",
                "{}",
                server.log()
            );
        }
        let start = c.start("rs").await.unwrap();
        until_under_way(&c, "rs").await;
        start.id
    });
    server.kill9_and_restart();
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        let campaign = c.get("rs").await.unwrap();
        assert_eq!(
            campaign.state().label(),
            "running",
            "the campaign survived the restart"
        );
        let start = c.wait_job(start_id).await.unwrap();
        assert_eq!(
            start.state().label(),
            "complete",
            "{start:?}\n{}",
            server.log()
        );
        let r = c.results("rs").await.unwrap();
        let s = summary(&r);
        assert_eq!(s["requests"], 2 * 2 * 30, "{s}");
        assert_eq!(
            s["iterations"]["completed"],
            2 * 2 * 30,
            "nothing lost, nothing counted twice"
        );
        assert_eq!(target.served(), 2 * 2 * 30);
        assert!(!r.degraded, "{:?}", r.lost);
        // The per-second series spans the restart and still adds up exactly.
        let series = c.series("rs").await.unwrap().points();
        let in_series: u64 = series.iter().map(|p| p.total.requests).sum();
        assert_eq!(in_series, 2 * 2 * 30, "{series:?}");
        let jobs = c.jobs(Some("rs")).await.unwrap();
        assert!(
            jobs.iter()
                .any(|j| j.kind == "spawn" && j.state().label() == "complete"),
            "jobs survived: {jobs:?}"
        );
        let _ = c.kill("rs").await;
    });
}

#[test]
fn a_deployer_run_as_its_own_process_works_the_same() {
    let target = TargetProcess::start();
    let deployer = camut_integration::DeployerProcess::start("apart");
    let server = ServerProcess::start(
        "remote",
        Some(&format!(
            "[deployers.apart]\naddress = \"{}\"\n",
            deployer.url
        )),
    );
    let source = control_campaign("apart", 2, 2, 3, "", &target.url)
        .replace("deployer: 'local'", "deployer: 'apart'");
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        let r = c
            .run_campaign("apart.js", &source)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_eq!(summary(&r)["requests"], 12);
        assert_eq!(target.served(), 12);
        let kill = c.kill("apart").await.unwrap();
        assert_eq!(
            c.wait_job(kill.id).await.unwrap().state().label(),
            "complete"
        );
    });
}

#[test]
fn an_abort_on_fail_threshold_stops_every_drone() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("abort", None);
    // Every call fails (status 500): the error-rate threshold breaks within a second or two.
    let source = format!(
        "exports.campaign = {{ id: 'ab', drones: 2, users: 2, duration: '60s', deploy: {{ deployer: 'local' }},\n\
           thresholds: {{ 'http.errors': [{{ expr: 'rate < 0.5', abortOnFail: true }}] }} }};\n\
         exports.test = function (done) {{ camut.http('{}/?status=500', function () {{ setTimeout(done, 50); }}); }};\n",
        target.url
    );
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("ab.js", &source).await.unwrap();
        for job in [c.spawn("ab").await.unwrap(), c.deploy("ab").await.unwrap()] {
            assert_eq!(
                c.wait_job(job.id).await.unwrap().state().label(),
                "complete",
                "{}",
                server.log()
            );
        }
        let started = std::time::Instant::now();
        let start = c.start("ab").await.unwrap();
        let start = c.wait_job(start.id).await.unwrap();
        assert_eq!(start.state().label(), "complete", "{start:?}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "stopped long before its 60 s"
        );
        let campaign = c.get("ab").await.unwrap();
        assert_eq!(campaign.state().label(), "stopped");
        assert!(campaign.error.contains("abortOnFail"), "{}", campaign.error);
        let r = c.results("ab").await.unwrap();
        assert!(!r.thresholds_ok);
        let _ = c.kill("ab").await;
    });
}

#[test]
fn quickstart_runs_the_whole_workflow() {
    let out = camut_integration::camut(&[
        "quickstart",
        camut_integration::repo_root()
            .join("examples/quickstart.js")
            .to_str()
            .unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    for step in [
        "$ camut new",
        "[spawn] complete",
        "[deploy] complete",
        "[start] complete",
        "$ camut results",
        "[kill] complete",
    ] {
        assert!(text.contains(step), "missing {step:?}: {}", show(&out));
    }
    // 2 drones × 10 users × 40 iterations × 2 calls.
    assert!(
        text.contains("requests    1600 (0 errors"),
        "{}",
        show(&out)
    );
    assert!(text.contains("thresholds ok"), "{}", show(&out));
    // Live progress comes from the campaign's Watch stream while the run goes on.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.contains("iterations ") && l.contains("req/s")),
        "{}",
        show(&out)
    );
}

#[test]
fn healthz_answers_on_the_grpc_port() {
    use std::io::{Read, Write};
    let server = ServerProcess::start("healthz", None);
    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("ok\n"), "{body}");
}

#[test]
fn manager_cli_drives_a_campaign() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("cli", None);
    let file = temp_file("cli.js", &control_campaign("cli", 1, 2, 3, "", &target.url));
    let f = file.to_str().unwrap();
    let ok = |args: &[&str]| {
        let out = server.camut(args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["new", f]);
    assert!(ok(&["list"]).contains("cli"));
    let out = server.camut(&["start", "cli"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "start before deploy fails: {}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("deploy first"),
        "{}",
        show(&out)
    );
    ok(&["spawn", "cli"]);
    ok(&["deploy", "cli"]);
    ok(&["start", "cli"]);
    let results: serde_json::Value =
        serde_json::from_str(&ok(&["results", "cli", "--json"])).unwrap();
    assert_eq!(results["summary"]["requests"], 6, "{results}");
    assert_eq!(target.served(), 6);
    let jobs: serde_json::Value =
        serde_json::from_str(ok(&["jobs", "cli", "--json"]).trim()).unwrap();
    assert_eq!(jobs.as_array().map(|a| a.len()), Some(3), "{jobs}");
    ok(&["kill", "cli"]);
    let out = server.camut(&["del", "cli"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!ok(&["list"]).contains("cli "));
    let out = server.camut(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn stuck_and_queued_jobs_can_be_cancelled_and_deleted() {
    let server = ServerProcess::start("jobs", None);
    // The dummy deployer starts no drone: the deploy job waits for drones that never come.
    let source = control_campaign("stuck", 2, 1, 1, "", "http://127.0.0.1:9")
        .replace("deployer: 'local'", "deployer: 'dummy'");
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("stuck.js", &source).await.unwrap();
        let spawn = c.spawn("stuck").await.unwrap();
        assert_eq!(
            c.wait_job(spawn.id).await.unwrap().state().label(),
            "complete"
        );
        let deploy = c.deploy("stuck").await.unwrap();
        let start = c.start("stuck").await.unwrap();
        assert_eq!(
            c.job(start.id).await.unwrap().state().label(),
            "queued",
            "start waits behind deploy"
        );
        for _ in 0..100 {
            if c.job(deploy.id).await.unwrap().state().label() == "active" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let e = c.delete_job(deploy.id).await.unwrap_err();
        assert_eq!(
            e.code(),
            Some(Code::FailedPrecondition),
            "an active job must be cancelled first: {e}"
        );
        c.cancel_job(start.id).await.unwrap();
        assert_eq!(
            c.wait_job(start.id).await.unwrap().state().label(),
            "cancelled"
        );
        c.cancel_job(deploy.id).await.unwrap();
        assert_eq!(
            c.wait_job(deploy.id).await.unwrap().state().label(),
            "cancelled"
        );
        c.delete_job(deploy.id).await.unwrap();
        assert_eq!(
            c.job(deploy.id).await.unwrap_err().code(),
            Some(Code::NotFound)
        );
        assert_eq!(
            c.get("stuck").await.unwrap().state().label(),
            "spawned",
            "the campaign is back where it was"
        );
        let mut logs = c.logs(1000, false).await.unwrap();
        let mut lines = Vec::new();
        while let Some(l) = logs.message().await.unwrap() {
            lines.push(l.message);
        }
        assert!(
            lines.iter().any(|l| l.contains("campaign stuck created")),
            "{lines:?}"
        );
    });
}

#[test]
fn stop_ends_a_run_gracefully_and_keeps_the_drones() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("stop", None);
    let source = slow_campaign("st", 2, 1000, "", &target.url);
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("st.js", &source).await.unwrap();
        for job in [c.spawn("st").await.unwrap(), c.deploy("st").await.unwrap()] {
            assert_eq!(
                c.wait_job(job.id).await.unwrap().state().label(),
                "complete",
                "{}",
                server.log()
            );
        }
        let start = c.start("st").await.unwrap();
        until_under_way(&c, "st").await;
        let stop = c.stop("st").await.unwrap();
        assert_eq!(
            c.wait_job(stop.id).await.unwrap().state().label(),
            "complete"
        );
        assert_eq!(
            c.wait_job(start.id).await.unwrap().state().label(),
            "complete"
        );
        assert_eq!(c.get("st").await.unwrap().state().label(), "stopped");
        let s = summary(&c.results("st").await.unwrap());
        let done = s["iterations"]["completed"].as_u64().unwrap();
        assert!(done > 0 && done < 2 * 2 * 1000, "stopped part-way: {done}");
        assert_eq!(
            s["iterations"]["failed"], 0,
            "open iterations finished within the grace period"
        );
        assert_eq!(s["requests"].as_u64().unwrap(), target.served());
        assert_eq!(
            pids_with(&["drone", "--id", "local-st-"]).len(),
            2,
            "drones stay after stop"
        );
        let kill = c.kill("st").await.unwrap();
        assert_eq!(
            c.wait_job(kill.id).await.unwrap().state().label(),
            "complete"
        );
    });
}

#[test]
fn spawn_goes_on_with_fewer_than_asked_and_fails_below_the_minimum() {
    // A dummy deployer that can hold 3 instances: where a cloud gives fewer than asked.
    let server = ServerProcess::start(
        "spawn-rules",
        Some("[deployers.short]\nkind = \"dummy\"\ncapacity = 3\n"),
    );
    let file = |id: &str, drones: u32, min: u32| {
        format!(
            "exports.campaign = {{ id: '{id}', drones: {drones}, minDrones: {min}, users: 1, iterations: 1, deploy: {{ deployer: 'short' }} }};\n\
             exports.test = function (done) {{ done(); }};\n"
        )
    };
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        c.create("few.js", &file("few", 4, 2)).await.unwrap();
        let spawn = c.spawn("few").await.unwrap();
        let spawn = c.wait_job(spawn.id).await.unwrap();
        assert_eq!(spawn.state().label(), "complete", "{spawn:?}");
        assert!(
            spawn
                .log
                .iter()
                .any(|l| l.contains("made 3 of 4 instances")),
            "{:?}",
            spawn.log
        );
        assert_eq!(spawn.progress_done, 3);
        assert_eq!(c.get("few").await.unwrap().instances.len(), 3);

        // Nothing left: below the minimum, the spawn fails and holds nothing.
        c.create("none.js", &file("none", 2, 1)).await.unwrap();
        let spawn = c.spawn("none").await.unwrap();
        let spawn = c.wait_job(spawn.id).await.unwrap();
        assert_eq!(spawn.state().label(), "failed", "{spawn:?}");
        assert!(spawn.error.contains("needs at least 1"), "{}", spawn.error);
        let none = c.get("none").await.unwrap();
        assert_eq!(none.state().label(), "created");
        assert!(none.instances.is_empty());

        // Freed capacity is there again.
        let kill = c.kill("few").await.unwrap();
        assert_eq!(
            c.wait_job(kill.id).await.unwrap().state().label(),
            "complete"
        );
        let spawn = c.spawn("none").await.unwrap();
        assert_eq!(
            c.wait_job(spawn.id).await.unwrap().state().label(),
            "complete"
        );
        assert_eq!(c.get("none").await.unwrap().instances.len(), 2);
    });
}

#[test]
fn huge_and_many_log_lines_neither_break_the_stream_nor_lose_results() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("biglogs", None);
    // Each iteration logs 5 MB (more than a gRPC message may hold) and 300 small lines.
    let source = format!(
        "exports.campaign = {{ id: 'logs', drones: 1, users: 2, iterations: 3, deploy: {{ deployer: 'local' }} }};\n\
         exports.test = function (done) {{\n\
           console.log('big ' + 'z'.repeat(5 * 1024 * 1024));\n\
           for (var i = 0; i < 300; i++) console.log('small ' + i);\n\
           camut.http({{ url: '{}/', operation: 'home' }}, function (err) {{ done(); }});\n\
         }};\n",
        target.url
    );
    rt().block_on(async {
        let c = Client::connect(&server.addr, None).await.unwrap();
        let results = c
            .run_campaign("logs.js", &source)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_eq!(results.state().label(), "finished", "{}", server.log());
        let s = summary(&results);
        assert_eq!(s["requests"], 6, "{s}");
        assert_eq!(target.served(), 6);
        assert!(!results.degraded, "no drone lost: {s}");
        let mut stream = c
            .tail(camut::v1::TailRequest {
                lines: 10_000,
                campaign: "logs".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut lines = Vec::new();
        while let Some(l) = stream.message().await.unwrap() {
            lines.push(l);
        }
        let big: Vec<_> = lines
            .iter()
            .filter(|l| l.message.contains("big zzz"))
            .collect();
        assert!(!big.is_empty(), "the big lines arrive, cut");
        assert!(big
            .iter()
            .all(|l| l.message.len() <= camut::logs::MAX_LINE_BYTES
                && l.message.contains("bytes in all")));
        assert!(
            lines
                .iter()
                .any(|l| l.message.contains("log lines were dropped")),
            "the throttled lines are reported"
        );
    });
}
