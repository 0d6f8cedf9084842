//! Results people keep and CI systems read, from the real binary: the HTML report opened
//! by Chromium offline, the per-second series against the summary, JUnit XML checked by
//! a JUnit parser from PyPI (`junitparser`), shell completions checked by the shells
//! themselves, manual pages.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use camut_integration::{
    camut, control_campaign, http_request, junit_cases, repo_root, show, temp_file, ServerProcess,
    TargetProcess,
};

/// Runs the campaign of `file` (id `id`) on `server`: new, spawn, deploy, start.
fn run_on(server: &ServerProcess, file: &Path, id: &str) {
    for args in [
        vec!["new", file.to_str().unwrap()],
        vec!["spawn", id],
        vec!["deploy", id],
        vec!["start", id],
    ] {
        let out = server.camut(&args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
    }
}

/// `camut results ID --json FLAG PATH` of a campaign with a broken threshold: exit 1 and
/// the results as JSON.
fn broken_results(server: &ServerProcess, id: &str, flag: &str, path: &Path) -> serde_json::Value {
    let out = server.camut(&["results", id, "--json", flag, path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "p50 < 0.001 breaks: {}",
        show(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn run_junit_has_one_case_per_threshold_and_a_broken_one_fails() {
    let target = TargetProcess::start();
    let file = temp_file(
        "junit-run.js",
        "exports.campaign = { id: 'junit-run', users: 2, iterations: 5, thresholds: {\n\
           'http.response_time': ['p99 < 60000', 'max < 0.001'],\n\
           'http.errors': ['count == 0'] } };\n\
         exports.test = function (done) {\n\
           camut.http({ url: camut.env.TARGET + '/', operation: 'home' }, function () { done(); });\n\
         };\n",
    );
    let junit = file.with_extension("xml");
    let json = file.with_extension("json");
    let out = target.run(
        &file,
        &[
            "--junit",
            junit.to_str().unwrap(),
            "--summary-json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a broken threshold: {}",
        show(&out)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let (totals, cases) = junit_cases(&junit);
    assert_eq!(totals["suites"][0], "junit-run");
    assert_eq!(totals["tests"], 4, "{totals}");
    assert_eq!(totals["failures"], 1, "{totals}");
    assert_eq!(totals["errors"], 0, "{totals}");
    let thresholds = summary["thresholds"].as_array().unwrap();
    assert_eq!(thresholds.len(), 3);
    for (t, case) in thresholds.iter().zip(&cases) {
        let name = format!(
            "{} {}",
            t["metric"].as_str().unwrap(),
            t["expr"].as_str().unwrap()
        );
        assert_eq!(case.0, name);
        assert_eq!(case.1, t["ok"].as_bool().unwrap(), "{case:?} against {t}");
        if !case.1 {
            let value = t["value"].as_f64().unwrap();
            assert_eq!(case.2, format!("{name} (value {value:.3})"));
        }
    }
    assert_eq!(cases[3].0, "no drone lost, no data lost");
    assert!(cases[3].1, "a local run loses nothing");
}

#[test]
fn results_junit_of_a_two_drone_run_checks_against_the_verdicts() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("junit", None);
    let source = control_campaign(
        "junit",
        2,
        2,
        3,
        ", thresholds: { 'http.response_time': ['p99 < 60000', 'p50 < 0.001'], 'http.errors': ['rate < 0.5'] }",
        &target.url,
    );
    let file = temp_file("junit.js", &source);
    run_on(&server, &file, "junit");
    let junit = file.with_extension("xml");
    let results = broken_results(&server, "junit", "--junit", &junit);
    assert_eq!(results["summary"]["requests"], 12);
    assert_eq!(target.served(), 12);
    let (totals, cases) = junit_cases(&junit);
    let verdicts = results["thresholds"].as_array().unwrap();
    let broken = verdicts.iter().filter(|t| t["ok"] == false).count();
    assert_eq!(broken, 1, "{results}");
    assert_eq!(totals["tests"], verdicts.len() + 1);
    assert_eq!(totals["failures"], broken, "{totals}");
    for (t, case) in verdicts.iter().zip(&cases) {
        assert_eq!(case.1, t["ok"].as_bool().unwrap(), "{case:?} against {t}");
    }
    let integrity = cases.last().unwrap();
    assert_eq!(integrity.0, "no drone lost, no data lost");
    assert!(integrity.1, "both drones finished: {integrity:?}");
}

#[test]
fn completion_scripts_are_accepted_by_the_shells() {
    for (shell, check) in [
        ("bash", ["bash", "-n"]),
        ("zsh", ["zsh", "-n"]),
        ("fish", ["fish", "--no-execute"]),
    ] {
        let out = camut(&["completions", shell]);
        assert!(out.status.success(), "{}", show(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for verb in ["results", "run", "completions", "junit"] {
            assert!(script.contains(verb), "{shell} script lacks {verb}");
        }
        let path = temp_file(&format!("camut.{shell}"), &script);
        // zsh and fish are installed by scripts/test.sh.
        let parsed = Command::new(check[0])
            .arg(check[1])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", check[0]));
        assert!(parsed.status.success(), "{shell} -n: {}", show(&parsed));
    }
    let out = camut(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn man_pages_cover_every_command() {
    let out = camut(&["man"]);
    assert!(out.status.success(), "{}", show(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH camut 1"), "{page}");
    let dir = std::env::temp_dir().join(format!("camut-man-{}", std::process::id()));
    let out = camut(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    for page in [
        "camut.1",
        "camut-run.1",
        "camut-results.1",
        "camut-completions.1",
    ] {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page} is a manual page");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A two-drone campaign that runs a few seconds, with calls that fail (operation `bad`)
/// and a threshold that breaks.
fn two_drone_campaign(id: &str, target: &str) -> String {
    format!(
        "exports.campaign = {{ id: '{id}', drones: 2, users: 3, iterations: 40, deploy: {{ deployer: 'local' }},\n\
           thresholds: {{ 'http.response_time': ['p99 < 60000', 'p50 < 0.001'], 'http.errors': ['count < 1000000'] }} }};\n\
         exports.test = function (done) {{\n\
           var bad = camut.vu.iteration % 4 === 0;\n\
           camut.http({{ url: '{target}/?delay_ms=5' + (bad ? '&status=500' : ''), operation: bad ? 'bad' : 'home' }}, function () {{\n\
             setTimeout(done, 60);\n\
           }});\n\
         }};\n"
    )
}

/// Opens the report in headless Chromium, network off; returns what the page showed.
fn open_in_chromium(report: &Path, expect: &serde_json::Value) -> serde_json::Value {
    let ui_dir = repo_root().join("integration/ui");
    assert!(
        ui_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in {} (scripts/test.sh does)",
        ui_dir.display()
    );
    let profile = std::env::temp_dir().join(format!("camut-report-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let mut child = Command::new("node")
        .arg(ui_dir.join("report.test.mjs"))
        .current_dir(&ui_dir)
        .env("CAMUT_REPORT_FILE", report)
        .env("CAMUT_REPORT_EXPECT", expect.to_string())
        .env("CAMUT_REPORT_PROFILE", &profile)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/test.sh installs it)");
    let began = Instant::now();
    let finished = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if began.elapsed() > Duration::from_secs(180) {
            let _ = child.kill();
            break false;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        finished && out.status.success(),
        "the browser check failed: {}",
        show(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", show(&out)))
}

#[test]
fn report_and_series_of_a_two_drone_run() {
    let target = TargetProcess::start();
    let mut server = ServerProcess::start("report", None);
    let file = temp_file("report.js", &two_drone_campaign("report", &target.url));
    run_on(&server, &file, "report");
    let html = file.with_extension("html");
    let results = broken_results(&server, "report", "--html", &html);
    let summary = &results["summary"];
    assert_eq!(summary["requests"], 240, "{results}");
    for drone in summary["drones"].as_array().unwrap() {
        let workers = drone["health"]["workers"].as_array();
        assert!(
            workers.is_some_and(|w| !w.is_empty()),
            "each drone's health: {drone}"
        );
    }
    assert_eq!(target.served(), 240);

    // The series adds up to the summary, exactly: requests overall, requests and errors
    // per operation.
    let series_json = |server: &ServerProcess| -> serde_json::Value {
        let out = server.camut(&["results", "report", "--series", "json"]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let series = series_json(&server);
    let points = series["points"].as_array().unwrap();
    assert!(points.len() >= 2, "a run of seconds: {series}");
    let total: u64 = points
        .iter()
        .map(|p| p["total"]["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 240);
    let errors: u64 = points
        .iter()
        .map(|p| p["total"]["errors"].as_u64().unwrap())
        .sum();
    assert_eq!(errors, summary["errors"].as_u64().unwrap());
    assert!(errors > 0, "the bad operation fails");
    let operations = summary["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 2);
    for op in operations {
        let name = op["operation"].as_str().unwrap();
        let of = |field: &str| -> u64 {
            points
                .iter()
                .flat_map(|p| p["operations"].as_array().unwrap())
                .filter(|o| o["operation"] == name)
                .map(|o| o[field].as_u64().unwrap())
                .sum()
        };
        assert_eq!(of("requests"), op["requests"].as_u64().unwrap(), "{name}");
        assert_eq!(of("errors"), op["errors"].as_u64().unwrap(), "{name}");
    }
    assert!(points.iter().any(|p| p["active_vus"].as_u64().unwrap() > 0));
    assert!(points
        .iter()
        .all(|p| p["total"]["p99_ms"].as_f64().unwrap() >= 5.0));
    // The CSV holds the same rows: one `*` row and one per operation each second.
    let out = server.camut(&["results", "report", "--series", "csv"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("time_ms,operation,requests,errors,p50_ms,p90_ms,p99_ms,max_ms,active_vus")
    );
    let csv_total: u64 = lines
        .filter(|l| l.split(',').nth(1) == Some("*"))
        .map(|l| l.split(',').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(csv_total, 240);

    // The console offers the same report.
    let (status, page) = http_request(&server.addr, "GET", "/ui/campaigns/report/report.html", "");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("<span id=\"requests-total\">240</span>"),
        "{page}"
    );

    // Chromium opens the file offline: charts drawn, thresholds, request total, no fetch.
    let expect = serde_json::json!({
        "requests": target.served(),
        "thresholds": results["thresholds"],
    });
    let seen = open_in_chromium(&html, &expect);
    assert_eq!(seen["operations"], 2, "{seen}");
    assert_eq!(seen["drones"], 2, "{seen}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("2 of 2 drones reported their health"),
        "each drone's generator health: {page}"
    );
    assert!(page.len() < 2_000_000, "{} bytes", page.len());

    // The series is in the store: a restarted server has it, and its console draws it.
    server.kill9_and_restart();
    assert_eq!(series_json(&server), series);
    let (status, live) = http_request(&server.addr, "GET", "/ui/campaigns/report/live", "");
    assert_eq!(status, 200, "{live}");
    assert!(
        live.contains(&format!("data-points=\"{}\"", points.len())),
        "the console's charts after a restart: {live}"
    );
}

#[test]
fn run_series_and_report_add_up_to_the_summary() {
    let target = TargetProcess::start();
    let file = temp_file(
        "run-series.js",
        "exports.campaign = { id: 'run-series', users: 3, iterations: 30 };\n\
         exports.test = function (done) {\n\
           var bad = camut.vu.iteration % 3 === 0;\n\
           camut.http({ url: camut.env.TARGET + '/?delay_ms=5' + (bad ? '&status=503' : ''), operation: bad ? 'bad' : 'home' }, function () {\n\
             setTimeout(done, 40);\n\
           });\n\
         };\n",
    );
    let (csv, json, html, summary) = (
        file.with_extension("csv"),
        file.with_extension("series.json"),
        file.with_extension("html"),
        file.with_extension("summary.json"),
    );
    for series in [&csv, &json] {
        let out = target.run(
            &file,
            &[
                "--series",
                series.to_str().unwrap(),
                "--html",
                html.to_str().unwrap(),
                "--summary-json",
                summary.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", show(&out));
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(summary["requests"], 90);
    // The JSON series (second run) against that run's summary.
    let series: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(series["campaign"], "run-series");
    let points = series["points"].as_array().unwrap();
    for op in summary["operations"].as_array().unwrap() {
        let name = op["operation"].as_str().unwrap();
        let (requests, errors) = points
            .iter()
            .flat_map(|p| p["operations"].as_array().unwrap())
            .filter(|o| o["operation"] == name)
            .fold((0, 0), |a, o| {
                (
                    a.0 + o["requests"].as_u64().unwrap(),
                    a.1 + o["errors"].as_u64().unwrap(),
                )
            });
        assert_eq!(requests, op["requests"].as_u64().unwrap(), "{name}");
        assert_eq!(errors, op["errors"].as_u64().unwrap(), "{name}");
    }
    assert_eq!(summary["errors"], 30);
    // The CSV series (first run): 90 requests in its `*` rows too.
    let text = std::fs::read_to_string(&csv).unwrap();
    let total: u64 = text
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(1) == Some("*"))
        .map(|l| l.split(',').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 90);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<span id=\"requests-total\">90</span>"));
    assert_eq!(page.matches("<svg").count(), 4);
    assert!(page.contains("<td>local</td>"));
}
