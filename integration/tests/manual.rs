//! What the Camut manual promises, checked on real processes: CommonJS files in sloppy
//! mode, the testdrive printing what the TSDB receives, custom points as written,
//! `--tsdb` giving the address, the `error`/`errorKind` tags, `http.connections`, and
//! the manager's `new` (update) and `jobs cancel|delete` verbs. The TSDB is Debian's
//! victoria-metrics; the server and its drones are `camut` processes.

use std::collections::BTreeMap;

use camut_integration::victoria::{Series, Victoria};
use camut_integration::{
    camut, control_campaign, show, temp_file, wait_for, ServerProcess, TargetProcess,
};

/// `camut run FILE ARGS…` against `target`; exits 0.
fn run_ok(target: &TargetProcess, name: &str, source: &str, extra: &[&str]) -> String {
    let file = temp_file(&format!("{name}.js"), source);
    let out = target.run(&file, extra);
    assert!(out.status.success(), "{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `camut run` with `--tsdb addr -q --summary-json`: the summary.
fn run_to_tsdb(target: &TargetProcess, name: &str, source: &str, addr: &str) -> serde_json::Value {
    let file = temp_file(&format!("{name}.js"), source);
    let json = file.with_extension("json");
    let out = target.run(
        &file,
        &[
            "--tsdb",
            addr,
            "-q",
            "--threads",
            "1",
            "--summary-json",
            json.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

/// [`run_to_tsdb`], then every series of the campaign once all its points arrived.
fn run_and_export(
    target: &TargetProcess,
    vm: &Victoria,
    id: &str,
    source: &str,
    addr: &str,
) -> (serde_json::Value, Vec<Series>) {
    let summary = run_to_tsdb(target, id, source, addr);
    let produced = summary["tsdb"]["produced"].as_u64().unwrap();
    assert_eq!(
        summary["tsdb"]["sent"].as_u64(),
        Some(produced),
        "{summary}"
    );
    let all = vm.export_at_least(&format!("{{campaign=\"{id}\"}}"), produced);
    let samples: usize = all.iter().map(|s| s.values.len()).sum();
    assert_eq!(samples as u64, produced, "{id}: every point arrived once");
    (summary, all)
}

/// One point as printed by `camut run`: `put METRIC TS VALUE k=v…`.
#[derive(Debug, Clone)]
struct Printed {
    metric: String,
    value: f64,
    tags: BTreeMap<String, String>,
}

fn printed_points(stdout: &str) -> Vec<Printed> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("put "))
        .map(|l| {
            let mut f = l.split(' ');
            let metric = f.next().unwrap().to_string();
            let _ts = f.next().unwrap();
            let value = f.next().unwrap().parse().unwrap();
            let tags = f
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.to_string())
                })
                .collect();
            Printed {
                metric,
                value,
                tags,
            }
        })
        .collect()
}

/// The samples of `all` as points (one per sample), like [`printed_points`].
fn stored_points(all: &[Series]) -> Vec<Printed> {
    all.iter()
        .flat_map(|s| {
            let tags: BTreeMap<String, String> = s
                .labels
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            let metric = s.label("__name__").unwrap().to_string();
            s.values.iter().map(move |v| Printed {
                metric: metric.clone(),
                value: *v,
                tags: tags.clone(),
            })
        })
        .collect()
}

/// How many points of each series, leaving out the tags in `varying` (which differ
/// from one run to the next).
fn series_counts(points: &[Printed], varying: &[&str]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for p in points {
        let tags: Vec<String> = p
            .tags
            .iter()
            .filter(|(k, _)| !varying.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        *out.entry(format!("{} {}", p.metric, tags.join(" ")))
            .or_default() += 1;
    }
    out
}

fn sum(points: &[Printed], metric: &str) -> f64 {
    points
        .iter()
        .filter(|p| p.metric == metric)
        .map(|p| p.value)
        .sum()
}

/// 2 users × 3 iterations: one call (the 3rd iteration answers 500) and one
/// `camut.tsdb('shop.cart', …)` point after it.
fn shop_campaign(id: &str, tsdb: &str) -> String {
    format!(
        "exports.campaign = {{ id: '{id}', users: 2, iterations: 3, tsdb: {{ {tsdb} }} }};\n\
         exports.test = function (done) {{\n\
           var status = camut.vu.iteration == 2 ? 500 : 200;\n\
           camut.http({{ url: camut.env.TARGET + '/?status=' + status, operation: 'home' }}, function () {{\n\
             camut.tsdb('shop.cart', camut.vu.iteration + 1, {{ page: 'cart' }});\n\
             done();\n\
           }});\n\
         }};\n"
    )
}

#[test]
fn commonjs_files_run_in_sloppy_mode_and_modules_stay_strict() {
    let target = TargetProcess::start();
    // Written for node's CommonJS: an undeclared assignment makes a global.
    let sloppy = "exports.campaign = { id: 'sloppy', users: 2, iterations: 3 };\n\
                  exports.test = function (done) {\n\
                    counter = (typeof counter === 'number' ? counter : 0) + 1;\n\
                    console.log('counter ' + counter + ' this ' + (this === window));\n\
                    done();\n\
                  };\n";
    let file = temp_file("sloppy.js", sloppy);
    let json = file.with_extension("json");
    let out = target.run(
        &file,
        &["--threads", "1", "--summary-json", json.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", show(&out));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(summary["iterations"]["completed"], 6, "{}", show(&out));
    assert_eq!(summary["iterations"]["failed"], 0, "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for n in 1..=3 {
        assert!(
            stdout.contains(&format!("counter {n} this true")),
            "each VU keeps its own global: {}",
            show(&out)
        );
    }
    // `module.exports = …` as node has it, and top-level `this` is `exports`.
    let module_exports = "this.marker = 1;\n\
        module.exports = { campaign: { id: 'cjs-module', users: 1, iterations: 2 },\n\
          test: function (done) { total = (typeof total === 'number' ? total : 0) + 1; done(); } };\n";
    let out = target.run(&temp_file("cjs-module.js", module_exports), &["-q"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 completed, 0 failed"),
        "{}",
        show(&out)
    );
    // An ES module is strict, as every module is.
    let strict = "export const campaign = { id: 'strict', users: 1, iterations: 2 };\n\
                  export function test(done) { counter = 1; done(); }\n";
    let out = target.run(&temp_file("strict.js", strict), &["-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 completed, 2 failed") && stdout.contains("counter is not defined"),
        "{}",
        show(&out)
    );
    // Errors keep the file's line and column.
    let bad = "exports.campaign = { id: 'bad', users: 1, iterations: 1 };\n\
               exports.test = function (done) {\n  var x = ;\n};\n";
    let out = target.run(&temp_file("bad-cjs.js", bad), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad-cjs.js:3:"),
        "{}",
        show(&out)
    );
}

#[test]
fn testdrive_prints_exactly_what_the_tsdb_receives() {
    let target = TargetProcess::start();
    let vm = Victoria::start("testdrive");
    // Call ids follow the order the calls are made in, which may differ between runs.
    for (mode, opts) in [
        ("call", "mode: 'call', precision: 's'"),
        ("aggregate", "precision: 's', interval: 200"),
    ] {
        let id = format!("drive-{mode}");
        let source = shop_campaign(&id, opts);
        let stdout = run_ok(&target, &id, &source, &["-q", "--threads", "1"]);
        let printed = printed_points(&stdout);
        let (_, all) = run_and_export(&target, &vm, &id, &source, &vm.telnet);
        let stored = stored_points(&all);
        assert!(
            printed.iter().any(|p| p.metric.starts_with("http.")),
            "{mode}: the automatic HTTP points are printed: {stdout}"
        );
        if mode == "call" {
            assert_eq!(
                series_counts(&printed, &["callId"]),
                series_counts(&stored, &["callId"]),
                "{mode}: the same points, series by series"
            );
            for m in ["shop.cart", "http.transmitted", "http.errors"] {
                assert_eq!(sum(&printed, m), sum(&stored, m), "{mode}: {m}");
            }
            assert_eq!(printed.len(), 6 * 5 + 2 + 6, "{mode}: {stdout}");
        } else {
            // Aggregates: the same series; how many intervals a run spans may differ.
            let names = |p: &[Printed]| -> Vec<String> {
                series_counts(p, &["callId"]).into_keys().collect()
            };
            assert_eq!(names(&printed), names(&stored), "{mode}");
            for m in ["http.requests.count", "iterations.count", "shop.cart"] {
                assert_eq!(sum(&printed, m), sum(&stored, m), "{mode}: {m}");
            }
            assert_eq!(sum(&printed, "http.requests.count"), 6.0);
        }
    }
}

#[test]
fn custom_points_reach_the_tsdb_as_the_test_wrote_them() {
    let target = TargetProcess::start();
    let vm = Victoria::start("custom");
    let id = "custom-agg";
    let source = format!(
        "exports.campaign = {{ id: '{id}', users: 2, iterations: 3, tsdb: {{ precision: 's', interval: 200 }} }};\n\
         exports.test = function (done) {{\n\
           camut.http({{ url: camut.env.TARGET + '/' }}, function () {{\n\
             camut.tsdb('cart.size', 10 * camut.vu.id + camut.vu.iteration, {{ shop: 'eu' }});\n\
             done();\n\
           }});\n\
         }};\n"
    );
    let (_, all) = run_and_export(&target, &vm, id, &source, &vm.telnet);
    let carts: Vec<&Series> = all
        .iter()
        .filter(|s| s.label("__name__") == Some("cart.size"))
        .collect();
    let mut values: Vec<f64> = carts.iter().flat_map(|s| s.values.clone()).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, vec![10.0, 11.0, 12.0, 20.0, 21.0, 22.0]);
    for s in &carts {
        assert_eq!(s.label("shop"), Some("eu"));
        assert_eq!(s.label("error"), Some("false"));
        assert!(s.label("vu").is_some() && s.label("callId").is_some());
    }
    assert!(
        !all.iter()
            .any(|s| s.label("__name__").unwrap().starts_with("cart.size.")),
        "custom points are not aggregated"
    );
    assert!(all
        .iter()
        .any(|s| s.label("__name__") == Some("http.response_time.p99")));
}

#[test]
fn the_tsdb_flag_gives_the_address_of_a_section_without_host() {
    let target = TargetProcess::start();
    let vm = Victoria::start("noaddr");
    let id = "no-host";
    let source = shop_campaign(id, "protocol: 'http', mode: 'call'");
    let (summary, all) = run_and_export(&target, &vm, id, &source, &vm.http_put);
    assert_eq!(summary["tsdb"]["produced"], 6 * 5 + 2 + 6, "{summary}");
    let stamps: Vec<u64> = all.iter().flat_map(|s| s.timestamps.clone()).collect();
    assert!(
        stamps.iter().any(|t| t % 1000 != 0),
        "the file's protocol (HTTP, millisecond stamps) is used"
    );
    // Without --tsdb the file is accepted too, and its points are printed.
    let stdout = run_ok(&target, id, &source, &["-q"]);
    assert!(stdout.contains("put http.response_time "), "{stdout}");
}

#[test]
fn http_points_carry_error_true_or_false_and_the_kind_apart() {
    let target = TargetProcess::start();
    let vm = Victoria::start("errors");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let id = "error-tags";
    // Iteration 0: 200, iteration 1: 500, iteration 2: a refused connection.
    let source = format!(
        "exports.campaign = {{ id: '{id}', users: 1, iterations: 3, tsdb: {{ mode: 'call', precision: 's' }} }};\n\
         exports.test = function (done) {{\n\
           var urls = [camut.env.TARGET + '/', camut.env.TARGET + '/?status=500', 'http://127.0.0.1:{closed}/'];\n\
           camut.http({{ url: urls[camut.vu.iteration], operation: 'op' + camut.vu.iteration }}, function () {{\n\
             camut.tsdb('after.call', 1);\n\
             done();\n\
           }});\n\
         }};\n"
    );
    let (_, all) = run_and_export(&target, &vm, id, &source, &vm.telnet);
    let times: BTreeMap<&str, &Series> = all
        .iter()
        .filter(|s| s.label("__name__") == Some("http.response_time"))
        .map(|s| (s.label("operation").unwrap(), s))
        .collect();
    assert_eq!(times.len(), 3, "{all:?}");
    let tags = |op: &str| (times[op].label("error"), times[op].label("errorKind"));
    assert_eq!(tags("op0"), (Some("false"), None));
    assert_eq!(tags("op1"), (Some("true"), Some("HTTP_500")));
    assert_eq!(tags("op2"), (Some("true"), Some("ECONNREFUSED")));
    let mut after: Vec<&str> = all
        .iter()
        .filter(|s| s.label("__name__") == Some("after.call"))
        .map(|s| s.label("error").unwrap())
        .collect();
    after.sort();
    assert_eq!(after, vec!["false", "true", "true"], "the VU's last call");
    // Aggregates carry `error` too.
    let agg = "error-tags-agg";
    let source = source
        .replace(id, agg)
        .replace("mode: 'call', ", "interval: 200, ");
    let (_, all) = run_and_export(&target, &vm, agg, &source, &vm.telnet);
    let counts: Vec<&Series> = all
        .iter()
        .filter(|s| s.label("__name__") == Some("http.requests.count"))
        .collect();
    let with = |e: &str| -> f64 {
        counts
            .iter()
            .filter(|s| s.label("error") == Some(e))
            .flat_map(|s| s.values.iter())
            .sum()
    };
    assert_eq!((with("false"), with("true")), (1.0, 2.0), "{counts:?}");
}

#[test]
fn http_connections_count_those_open_at_once() {
    let target = TargetProcess::start();
    let vm = Victoria::start("connections");
    // 4 VUs start together; each call waits 300 ms at the target, so 4 connections are
    // open at once; the next iterations reuse them (keep-alive).
    let campaign = |id: &str, tsdb: &str| {
        format!(
            "exports.campaign = {{ id: '{id}', users: 4, iterations: 3, tsdb: {{ precision: 's', {tsdb} }} }};\n\
             exports.test = function (done) {{\n\
               var delay = camut.vu.iteration == 0 ? 300 : 0;\n\
               camut.http({{ url: camut.env.TARGET + '/?delay_ms=' + delay }}, function () {{ done(); }});\n\
             }};\n"
        )
    };
    let id = "conn-call";
    let (summary, all) =
        run_and_export(&target, &vm, id, &campaign(id, "mode: 'call'"), &vm.telnet);
    assert_eq!(summary["connections_opened"], 4, "{summary}");
    assert_eq!(summary["connections_peak"], 4, "{summary}");
    let values: Vec<f64> = all
        .iter()
        .filter(|s| s.label("__name__") == Some("http.connections"))
        .flat_map(|s| s.values.clone())
        .collect();
    assert_eq!(values.len(), 12, "one per call");
    assert!(values.iter().all(|v| *v == 4.0), "{values:?}");
    let id = "conn-agg";
    let (summary, all) =
        run_and_export(&target, &vm, id, &campaign(id, "interval: 200"), &vm.telnet);
    assert_eq!(summary["connections_peak"], 4, "{summary}");
    let max_of = |m: &str| -> f64 {
        all.iter()
            .filter(|s| s.label("__name__") == Some(m))
            .flat_map(|s| s.values.iter().copied())
            .fold(0.0, f64::max)
    };
    assert_eq!(max_of("http.connections.max"), 4.0);
    assert_eq!(max_of("http.connections"), 4.0);
    // The text summary names both figures.
    let stdout = run_ok(&target, "conn-text", &campaign("conn-text", ""), &["-q"]);
    assert!(
        stdout.contains("connections: 4 opened, 4 at most at once"),
        "{stdout}"
    );
}

#[test]
fn new_on_an_existing_campaign_updates_it_under_the_update_rules() {
    let target = TargetProcess::start();
    let server = ServerProcess::start("new-update", None);
    let file = temp_file(
        "renew.js",
        &control_campaign("renew", 1, 2, 3, "", &target.url),
    );
    let f = file.to_str().unwrap();
    let out = server.camut(&["new", f]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("created "));
    std::fs::write(&file, control_campaign("renew", 1, 5, 3, "", &target.url)).unwrap();
    let out = server.camut(&["new", f]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("updated "),
        "{}",
        show(&out)
    );
    let out = server.camut(&["status", "renew", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["users"], 5, "{status}");
    // A change of drones is refused, saying why, as `update` does.
    std::fs::write(&file, control_campaign("renew", 2, 5, 3, "", &target.url)).unwrap();
    let out = server.camut(&["new", f]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let new_err = String::from_utf8_lossy(&out.stderr).into_owned();
    let out = server.camut(&["update", f]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert_eq!(
        new_err,
        String::from_utf8_lossy(&out.stderr),
        "same refusal"
    );
    assert!(new_err.contains("drones"), "{new_err}");
}

#[test]
fn jobs_cancel_and_delete_from_the_cli() {
    let server = ServerProcess::start("cli-jobs", None);
    // The dummy deployer starts no drone: the deploy job waits for drones that never come.
    let file = temp_file(
        "cli-stuck.js",
        &control_campaign("cli-stuck", 2, 1, 1, "", "http://127.0.0.1:9")
            .replace("deployer: 'local'", "deployer: 'dummy'"),
    );
    let ok = |args: &[&str]| {
        let out = server.camut(args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    ok(&["new", file.to_str().unwrap()]);
    ok(&["spawn", "cli-stuck"]);
    let deploy = ok(&["deploy", "cli-stuck", "--no-wait"]);
    let start = ok(&["start", "cli-stuck", "--no-wait"]);
    let state = |id: &str| -> String {
        let jobs: serde_json::Value =
            serde_json::from_str(&ok(&["jobs", "cli-stuck", "--json"])).unwrap();
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id.parse::<u64>().unwrap())
            .map(|j| j["state"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "gone".into())
    };
    assert!(wait_for(10, || state(&deploy) == "active"));
    let out = server.camut(&["jobs", "delete", &deploy]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("active"),
        "an active job must be cancelled first: {}",
        show(&out)
    );
    assert!(ok(&["jobs", "cancel", &start]).starts_with(&format!("cancelled job {start}")));
    assert_eq!(state(&start), "cancelled");
    assert!(ok(&["jobs", "cancel", &deploy]).starts_with(&format!("cancelled job {deploy}")));
    assert_eq!(state(&deploy), "cancelled");
    let out = server.camut(&["jobs", "cancel", &deploy]);
    assert_eq!(out.status.code(), Some(1), "already ended: {}", show(&out));
    assert_eq!(
        ok(&["jobs", "delete", &deploy]),
        format!("deleted job {deploy}")
    );
    assert_eq!(state(&deploy), "gone");
    let out = server.camut(&["jobs", "delete", &deploy]);
    assert_eq!(out.status.code(), Some(1), "no such job: {}", show(&out));
    let out = camut(&["help", "jobs"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("cancel") && help.contains("delete"), "{help}");
}
