//! Results people keep and CI systems read, from the real binary: JUnit XML checked by a
//! JUnit parser from PyPI (`junitparser`), shell completions checked by the shells
//! themselves, manual pages.

use std::path::Path;
use std::process::Command;

use camut_integration::{camut, control_campaign, show, temp_file, ServerProcess, TargetProcess};

/// What `junitparser` reads in a JUnit file: per case (name, passed, failure message).
fn junit_cases(path: &Path) -> (serde_json::Value, Vec<(String, bool, String)>) {
    let script = r#"
import json, sys
from junitparser import JUnitXml, Failure
xml = JUnitXml.fromfile(sys.argv[1])
suites = list(xml) if hasattr(xml, '__iter__') else [xml]
cases = []
for suite in suites:
    for case in suite:
        failures = [r for r in case.result if isinstance(r, Failure)]
        cases.append([case.name, case.is_passed, failures[0].message if failures else ''])
print(json.dumps({'tests': xml.tests, 'failures': xml.failures, 'errors': xml.errors,
                  'suites': [s.name for s in suites], 'cases': cases}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "junitparser refused {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cases = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap().to_string(),
                c[1].as_bool().unwrap(),
                c[2].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (v, cases)
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
    let ok = |args: &[&str]| {
        let out = server.camut(args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
    };
    ok(&["new", file.to_str().unwrap()]);
    ok(&["spawn", "junit"]);
    ok(&["deploy", "junit"]);
    ok(&["start", "junit"]);
    let junit = file.with_extension("xml");
    let out = server.camut(&[
        "results",
        "junit",
        "--json",
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "p50 < 0.001 breaks: {}",
        show(&out)
    );
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
