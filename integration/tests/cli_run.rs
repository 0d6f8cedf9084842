//! `camut run` and `camut target` as real processes: output, summary JSON, exit codes.

use camut_integration::{camut, repo_root, show, temp_file, TargetProcess};

#[test]
fn run_prints_points_and_summary_and_counts_exactly() {
    let target = TargetProcess::start();
    let file = temp_file(
        "ok.js",
        "exports.campaign = { id: 'cli-ok', users: 4, iterations: 25, thresholds: { 'http.response_time': ['p99 < 5000'] } };\n\
         exports.test = function (done) {\n\
           camut.http({ url: camut.env.TARGET + '/', operation: 'home' }, function (err) {\n\
             camut.tsdb('cli.metric', 2, { k: 'v' });\n\
             done();\n\
           });\n\
         };\n",
    );
    let json = file.with_extension("json");
    let out = target.run(
        &file,
        &["--threads", "2", "--summary-json", json.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let puts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("put cli.metric "))
        .collect();
    assert_eq!(puts.len(), 100, "{}", show(&out));
    let fields: Vec<&str> = puts[0].split(' ').collect();
    assert_eq!(fields[3], "2");
    assert_eq!(fields[2].len(), 13, "millisecond timestamps: {}", puts[0]);
    assert!(
        puts[0].contains(" campaign=cli-ok ")
            && puts[0].contains(" client=local ")
            && puts[0].ends_with(" k=v")
    );
    assert!(stdout.contains("finished in"), "{}", show(&out));
    assert!(stdout.contains("p99.9"), "summary table: {}", show(&out));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["requests"], 100);
    assert_eq!(summary["errors"], 0);
    assert_eq!(summary["iterations"]["completed"], 100);
    assert_eq!(summary["iterations"]["failed"], 0);
    assert!(summary["duration_s"].as_f64().unwrap() > 0.0);
    let rt = &summary["metrics"]["http.response_time"];
    assert_eq!(rt["count"], 100);
    for k in ["min", "p50", "p90", "p99", "max"] {
        assert!(rt[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert_eq!(summary["thresholds"][0]["metric"], "http.response_time");
    assert_eq!(summary["thresholds"][0]["ok"], true);
    assert!(summary["thresholds"][0]["value"].as_f64().is_some());
    assert_eq!(target.served(), 100);
}

#[test]
fn failed_threshold_exits_1_and_json_to_stdout() {
    let target = TargetProcess::start();
    let file = temp_file(
        "thr.js",
        "exports.campaign = { id: 'thr', users: 2, iterations: 3, thresholds: { 'http.errors': ['rate < 0.5'] } };\n\
         exports.test = function (done) { camut.http(camut.env.TARGET + '/?status=500', function () { done(); }); };\n",
    );
    let out = target.run(&file, &["--summary-json", "-", "--quiet"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is only the JSON");
    assert_eq!(summary["errors"], 6);
    assert_eq!(summary["thresholds"][0]["ok"], false);
    assert_eq!(summary["thresholds"][0]["value"], 1.0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("✗ http.errors rate < 0.5"));
}

#[test]
fn broken_campaign_exits_1_with_position() {
    let file = temp_file(
        "broken.js",
        "exports.campaign = { id: 'b' };\nexports.test = function (done) {\n  done(;\n};\n",
    );
    let out = camut(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.js:3:"), "{err}");
    assert!(err.contains("syntax error"), "{err}");
}

#[test]
fn bad_option_and_missing_file_exit_1() {
    let file = temp_file(
        "typo.js",
        "exports.campaign = { id: 'b', userz: 3 };\nexports.test = function (d) { d(); };\n",
    );
    let out = camut(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("did you mean `users`"),
        "{}",
        show(&out)
    );
    let out = camut(&["run", "/nonexistent/campaign.js"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read campaign file"),
        "{}",
        show(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["run"],
        vec!["run", "x.js", "--users", "many"],
        vec!["frobnicate"],
        vec!["run", "x.js", "--duration", "5x"],
    ] {
        let out = camut(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
    }
}

#[test]
fn overrides_from_the_command_line() {
    let target = TargetProcess::start();
    let file = temp_file("ovr.js", "exports.campaign = { id: 'o', users: 100, iterations: 100 };\nexports.test = function (done) { camut.http(camut.env.TARGET + '/', function () { done(); }); };\n");
    let out = target.run(
        &file,
        &[
            "--users",
            "3",
            "--iterations",
            "4",
            "--summary-json",
            "-",
            "-q",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["requests"], 12);
    assert_eq!(target.served(), 12);
}

#[test]
fn target_shapes_answers() {
    let target = TargetProcess::start();
    let file = temp_file(
        "shape.js",
        "exports.campaign = { id: 's', users: 1, iterations: 1 };\n\
         exports.test = function (done) {\n\
           camut.http(camut.env.TARGET + '/?bytes=7&status=202', function (err, data, res) {\n\
             console.log(res.statusCode + ' ' + data.length + ' ' + res.headers['content-type']);\n\
             done();\n\
           });\n\
         };\n",
    );
    let out = target.run(&file, &["-q"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "202 7 text/plain"),
        "{}",
        show(&out)
    );
}

#[test]
fn every_example_runs_against_the_target() {
    let target = TargetProcess::start();
    let dir = repo_root().join("examples");
    let mut ran = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "js") {
            let out = target.run(&path, &["-q", "--summary-json", "-"]);
            assert!(out.status.success(), "{}: {}", path.display(), show(&out));
            let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{}: {e}: {}", path.display(), show(&out)));
            assert!(
                summary["iterations"]["completed"].as_u64().unwrap() > 0,
                "{}",
                path.display()
            );
            assert_eq!(
                summary["iterations"]["failed"],
                0,
                "{}: {}",
                path.display(),
                show(&out)
            );
            ran += 1;
        }
    }
    assert!(ran >= 4, "examples found: {ran}");
}
