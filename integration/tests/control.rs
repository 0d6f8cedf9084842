//! The control plane end to end: a real server process, real drone processes started by
//! the local deployer, a real target; driven through the client crate and the CLI.

use camut::Client;
use camut_integration::{
    control_campaign, pids_with, show, temp_file, wait_for, ServerProcess, TargetProcess,
};
use tonic::Code;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn summary(r: &camut::v1::Results) -> serde_json::Value {
    serde_json::from_str(&r.summary_json).expect("summary is JSON")
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
        assert_eq!(results.state, "finished");
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
        assert_eq!(kill.state, "complete", "{kill:?}");
        assert!(
            wait_for(10, || pids_with(&["drone", "--id", "local-wf-"]).is_empty()),
            "kill frees the instances"
        );
        assert_eq!(c.get("wf").await.unwrap().state, "killed");
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
    let server = ServerProcess::start("token", Some("token = \"s3cret\"\n"));
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
        let right = Client::connect(&server.addr, Some("s3cret")).await.unwrap();
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
