//! Points to a real TSDB: Debian's victoria-metrics with its OpenTSDB listeners, fed by
//! `camut run --tsdb` and by drones, through outages, full queues and stuck servers;
//! and the server's `/metrics`, read by prometheus_client's OpenMetrics parser.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use camut_integration::victoria::Series;
use camut_integration::victoria::Victoria;
use camut_integration::{camut, camut_bin, show, temp_file, wait_for, TargetProcess};

/// A campaign of 3 users × 4 iterations: one call each (the 4th iteration answers 500)
/// and one `camut.tsdb('shop.cart', …)` point after it.
fn known_campaign(id: &str, tsdb: &str) -> String {
    format!(
        "exports.campaign = {{ id: '{id}', users: 3, iterations: 4, tsdb: {{ host: 'ignored', {tsdb} }} }};\n\
         exports.test = function (done) {{\n\
           var status = camut.vu.iteration == 3 ? 500 : 200;\n\
           camut.http({{ url: camut.env.TARGET + '/?status=' + status, operation: 'home' }}, function () {{\n\
             camut.tsdb('shop.cart', camut.vu.iteration + 1, {{ page: 'cart' }});\n\
             done();\n\
           }});\n\
         }};\n"
    )
}

/// A paced campaign running `seconds`: `users` VUs, one call and one point every 50 ms.
fn paced_campaign(id: &str, users: u32, seconds: f64, tsdb: &str) -> String {
    format!(
        "exports.campaign = {{ id: '{id}', users: {users}, duration: '{seconds}s', tsdb: {{ host: 'ignored', {tsdb} }} }};\n\
         exports.test = function (done) {{\n\
           camut.http({{ url: camut.env.TARGET + '/' }}, function () {{\n\
             camut.tsdb('shop.paced', 1);\n\
             setTimeout(done, 50);\n\
           }});\n\
         }};\n"
    )
}

/// `camut run` of `source` with `--tsdb addr`; returns the summary JSON.
fn run(target: &TargetProcess, name: &str, source: &str, addr: &str) -> serde_json::Value {
    let file = temp_file(&format!("{name}.js"), source);
    let json = file.with_extension("json");
    let out = target.run(
        &file,
        &[
            "--tsdb",
            addr,
            "-q",
            "--summary-json",
            json.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{}",
        show(&out)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

/// `camut run` of `source` with `--tsdb addr`, going on in the background.
struct BackgroundRun {
    child: std::process::Child,
    json: std::path::PathBuf,
}

impl BackgroundRun {
    fn start(target: &TargetProcess, name: &str, source: &str, addr: &str) -> BackgroundRun {
        let file = temp_file(&format!("{name}.js"), source);
        let json = file.with_extension("json");
        let env = format!("TARGET={}", target.url);
        let child = Command::new(camut_bin())
            .args(["run", file.to_str().unwrap(), "--env", &env, "-q"])
            .args(["--tsdb", addr, "--summary-json", json.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        BackgroundRun { child, json }
    }

    /// Waits for the end; the summary JSON.
    fn summary(mut self) -> serde_json::Value {
        assert!(self.child.wait().unwrap().success());
        serde_json::from_str(&std::fs::read_to_string(&self.json).unwrap()).unwrap()
    }
}

fn tsdb_counts(summary: &serde_json::Value) -> [u64; 6] {
    let t = &summary["tsdb"];
    [
        "produced", "sent", "retried", "dropped", "rejected", "unsent",
    ]
    .map(|k| {
        t[k].as_u64()
            .unwrap_or_else(|| panic!("tsdb.{k} in {summary}"))
    })
}

/// The sum of every sample of `metric` in `all` whose series has `labels`.
fn total(all: &[Series], metric: &str, labels: &[(&str, &str)]) -> f64 {
    all.iter()
        .filter(|s| s.label("__name__") == Some(metric))
        .filter(|s| labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .flat_map(|s| s.values.iter())
        .sum()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn per_call_points_arrive_exactly_over_telnet_and_http() {
    let target = TargetProcess::start();
    let vm = Victoria::start("calls");
    for (id, addr, opts) in [
        ("calls-telnet", &vm.telnet, "mode: 'call', precision: 's'"),
        ("calls-http", &vm.http_put, "mode: 'call', protocol: 'http'"),
    ] {
        let s = run(&target, id, &known_campaign(id, opts), addr);
        // 12 calls × 5 points, 3 failed calls × 1 `http.errors`, 12 `shop.cart`.
        let [produced, sent, _, dropped, rejected, unsent] = tsdb_counts(&s);
        assert_eq!(produced, 12 * 5 + 3 + 12, "{id}: {s}");
        assert_eq!(
            (sent, dropped, rejected, unsent),
            (produced, 0, 0, 0),
            "{id}"
        );
        let all = vm.export_at_least(&format!("{{campaign=\"{id}\"}}"), produced);
        let samples: usize = all.iter().map(|s| s.values.len()).sum();
        assert_eq!(samples as u64, produced, "{id}: every point arrived once");
        let of = |m: &'static str| all.iter().filter(move |s| s.label("__name__") == Some(m));
        let times: Vec<_> = of("http.response_time").collect();
        assert_eq!(times.len(), 12, "{id}: one series per call (callId tag)");
        let mut ids: Vec<_> = times.iter().map(|s| s.label("callId").unwrap()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 12);
        for s in &times {
            assert_eq!(s.label("client"), Some("local"));
            assert_eq!(s.label("operation"), Some("home"));
            assert!(
                s.label("url").unwrap().contains("127.0.0.1_"),
                "sanitised url"
            );
            assert!(matches!(s.label("status"), Some("200") | Some("500")));
            assert!(s.label("vu").is_some());
            assert!(s.values[0] > 0.0);
        }
        let errors: Vec<_> = of("http.errors").collect();
        assert_eq!(errors.len(), 3, "{id}");
        assert!(errors
            .iter()
            .all(|s| s.label("error") == Some("true") && s.label("errorKind") == Some("HTTP_500")));
        let carts: Vec<_> = of("shop.cart").collect();
        assert_eq!(carts.iter().map(|s| s.values.len()).sum::<usize>(), 12);
        assert!(carts.iter().all(|s| s.label("page") == Some("cart")));
        let stamps: Vec<u64> = all.iter().flat_map(|s| s.timestamps.clone()).collect();
        if id.ends_with("telnet") {
            assert!(stamps.iter().all(|t| t % 1000 == 0), "seconds precision");
        } else {
            assert!(stamps.iter().any(|t| t % 1000 != 0), "millisecond stamps");
        }
    }
}

#[test]
fn aggregates_count_every_call_over_telnet_and_http() {
    let target = TargetProcess::start();
    let vm = Victoria::start("aggregates");
    for (id, addr, opts) in [
        ("agg-telnet", &vm.telnet, "precision: 's', interval: 200"),
        ("agg-http", &vm.http_put, "protocol: 'http', interval: 200"),
    ] {
        let s = run(&target, id, &known_campaign(id, opts), addr);
        let [produced, sent, _, dropped, _, unsent] = tsdb_counts(&s);
        assert!(produced > 0);
        assert_eq!((sent, dropped, unsent), (produced, 0, 0), "{id}: {s}");
        let all = vm.export_at_least(&format!("{{campaign=\"{id}\"}}"), produced);
        let samples: usize = all.iter().map(|s| s.values.len()).sum();
        assert_eq!(samples as u64, produced, "{id}");
        let sum = |m: &str, status: Option<&str>| match status {
            Some(st) => total(&all, m, &[("status", st)]),
            None => total(&all, m, &[]),
        };
        assert_eq!(sum("http.requests.count", None), 12.0, "{id}");
        assert_eq!(sum("http.requests.count", Some("5xx")), 3.0, "{id}");
        assert_eq!(sum("http.errors.count", None), 3.0, "{id}");
        assert_eq!(sum("iterations.count", None), 12.0, "{id}");
        // `camut.tsdb` points are not aggregated: each arrives as written.
        let carts: Vec<&Series> = all
            .iter()
            .filter(|s| s.label("__name__") == Some("shop.cart"))
            .collect();
        assert_eq!(
            carts.iter().map(|s| s.values.len()).sum::<usize>(),
            12,
            "{id}"
        );
        assert_eq!(
            sum("shop.cart", None),
            3.0 * (1.0 + 2.0 + 3.0 + 4.0),
            "{id}"
        );
        for m in ["http.response_time.p99", "http.response_time.max"] {
            assert!(sum(m, None) > 0.0, "{id}: {m}");
        }
        for s in &all {
            if s.label("__name__") != Some("shop.cart") {
                assert!(
                    s.label("callId").is_none() && s.label("vu").is_none(),
                    "{s:?}"
                );
            }
            assert_eq!(s.label("client"), Some("local"));
        }
    }
}

#[test]
fn a_tsdb_outage_delays_points_but_loses_none() {
    let target = TargetProcess::start();
    let mut vm = Victoria::start_dedup("outage");
    let id = "outage";
    let source = paced_campaign(id, 4, 4.0, "mode: 'call', protocol: 'http'");
    let run = BackgroundRun::start(&target, id, &source, &vm.http_put);
    let selector = format!("{{campaign=\"{id}\"}}");
    assert!(
        wait_for(10, || vm.count(&selector) > 0),
        "points arrive before the outage"
    );
    vm.stop();
    let down = now_ms();
    // The outage lasts while the run makes 100 more calls (6 points each).
    let served = target.served();
    assert!(wait_for(10, || target.served() >= served + 100));
    let up = now_ms();
    vm.resume();
    let s = run.summary();
    let [produced, sent, _, dropped, rejected, unsent] = tsdb_counts(&s);
    assert!(produced > 4 * 5 * 20, "{s}");
    assert_eq!(
        (sent, dropped, rejected, unsent),
        (produced, 0, 0, 0),
        "{s}"
    );
    let all = vm.export_at_least(&format!("{{campaign=\"{id}\"}}"), produced);
    let samples: usize = all.iter().map(|s| s.values.len()).sum();
    assert_eq!(samples as u64, produced, "every point arrived exactly once");
    let during = all
        .iter()
        .flat_map(|s| s.timestamps.iter())
        .filter(|t| (down + 200..up.saturating_sub(200)).contains(*t))
        .count();
    assert!(
        during > 50,
        "points made while the TSDB was down arrived after: {during}"
    );
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_exactly() {
    let target = TargetProcess::start();
    let mut vm = Victoria::start_dedup("drops");
    vm.stop();
    let id = "drops";
    let opts = "mode: 'call', protocol: 'http', queue: 40, flushTimeout: 30000";
    let source = paced_campaign(id, 4, 3.0, opts);
    let run = BackgroundRun::start(&target, id, &source, &vm.http_put);
    // 100 calls make 600 points for a 40-point queue while the TSDB is down.
    assert!(wait_for(10, || target.served() >= 100));
    vm.resume();
    let s = run.summary();
    let [produced, sent, _, dropped, rejected, unsent] = tsdb_counts(&s);
    assert!(
        dropped > 0,
        "the queue overflowed while the TSDB was down: {s}"
    );
    assert_eq!((rejected, unsent), (0, 0));
    assert_eq!(sent + dropped, produced, "{s}");
    let all = vm.export_at_least(&format!("{{campaign=\"{id}\"}}"), sent);
    assert_eq!(all.iter().map(|s| s.values.len() as u64).sum::<u64>(), sent);
}

#[test]
fn an_unreachable_or_stuck_tsdb_never_slows_the_vus() {
    let target = TargetProcess::start();
    let vm = Victoria::start("slow");
    // Accepts connections (the kernel does) but never reads: writes end up blocked.
    let stuck = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stuck_addr = stuck.local_addr().unwrap().to_string();
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let opts = "mode: 'call', queue: 1000, flushTimeout: 300";
    // The three runs go side by side, so that whatever else loads the machine slows
    // them alike: only the TSDB differs.
    let iterations: Vec<(&str, u64, Duration)> = std::thread::scope(|scope| {
        let runs: Vec<_> = [
            ("up", &vm.telnet),
            ("stuck", &stuck_addr),
            ("refused", &refused),
        ]
        .into_iter()
        .map(|(name, addr)| {
            let target = &target;
            scope.spawn(move || {
                let started = Instant::now();
                let s = run(target, name, &paced_campaign(name, 5, 2.0, opts), addr);
                let n = s["iterations"]["completed"].as_u64().unwrap();
                (name, n, started.elapsed())
            })
        })
        .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let reference = iterations[0].1;
    assert!(reference > 5 * 20, "{iterations:?}");
    for (name, n, took) in &iterations[1..] {
        assert!(
            *n * 10 >= reference * 9,
            "{name}: {n} iterations vs {reference} with a working TSDB: {iterations:?}"
        );
        assert!(*took < Duration::from_secs(8), "{name} ended in {took:?}");
    }
    drop(stuck);
}

#[test]
fn camut_run_reports_a_bad_tsdb_option() {
    let file = temp_file(
        "badtsdb.js",
        "exports.campaign = { id: 'bad', tsdb: { host: 'h', protocol: 'udp' } };\n\
         exports.test = function (done) { done(); };\n",
    );
    let out = camut(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`tsdb.protocol` must be 'telnet' or 'http'"),
        "{}",
        show(&out)
    );
    let bad = temp_file(
        "badmetric.js",
        "exports.campaign = { id: 'badm', iterations: 1 };\n\
         exports.test = function (done) { camut.tsdb('cart size', 1); done(); };\n",
    );
    let out = camut(&["run", bad.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the metric name 'cart size' has ' '"),
        "{}",
        show(&out)
    );
}

#[test]
fn drones_send_aggregates_and_the_results_count_the_points() {
    let target = TargetProcess::start();
    let vm = Victoria::start("drones");
    let server = camut_integration::ServerProcess::start("tsdb-drones", None);
    let (host, port) = vm.telnet.split_once(':').unwrap();
    let extra =
        format!(", tsdb: {{ host: '{host}', port: {port}, precision: 's', interval: 300 }}");
    let source = camut_integration::control_campaign("tsdbd", 2, 3, 5, &extra, &target.url);
    let rt = camut_integration::rt();
    rt.block_on(async {
        let c = camut::Client::connect(&server.addr, None).await.unwrap();
        let results = c
            .run_campaign("tsdbd.js", &source)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
        assert_eq!(results.state().label(), "finished");
        let s: serde_json::Value = camut_integration::summary_value(&results);
        let [produced, sent, _, dropped, _, unsent] = tsdb_counts(&s);
        assert!(produced > 0, "{s}");
        assert_eq!(
            (sent, dropped, unsent),
            (produced, 0, 0),
            "merged over drones: {s}"
        );
        let all = vm.export_at_least("{campaign=\"tsdbd\"}", produced);
        assert_eq!(
            all.iter().map(|s| s.values.len() as u64).sum::<u64>(),
            produced
        );
        let requests = total(&all, "http.requests.count", &[]);
        assert_eq!(requests, 2.0 * 3.0 * 5.0);
        let mut clients: Vec<_> = all.iter().filter_map(|s| s.label("client")).collect();
        clients.sort();
        clients.dedup();
        assert_eq!(clients.len(), 2, "one client tag per drone: {clients:?}");
        let kill = c.kill("tsdbd").await.unwrap();
        c.wait_job(kill.id).await.unwrap();
    });
}

/// `/metrics` of `server`, parsed by prometheus_client's OpenMetrics parser.
fn scrape(addr: &str, token: Option<&str>) -> Result<Vec<serde_json::Value>, (u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status: u16 = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    if status != 200 {
        return Err((status, body.to_string()));
    }
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    let file = temp_file("metrics.txt", body);
    let script = camut_integration::repo_root().join("integration/scripts/parse_metrics.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the exposition does not parse: {}\n{body}",
        show(&out)
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect())
}

fn sample<'a>(
    samples: &'a [serde_json::Value],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a serde_json::Value> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
}

#[test]
fn metrics_parse_as_openmetrics_with_live_campaign_series() {
    let target = TargetProcess::start();
    let server = camut_integration::ServerProcess::start(
        "metrics",
        Some("token = \"s3cret-api-token-16\"\n"),
    );
    let before = scrape(&server.addr, Some("s3cret-api-token-16")).unwrap();
    assert_eq!(
        sample(&before, "camut_drones_connected", &[]).unwrap()["value"],
        0.0
    );
    let (status, body) = scrape(&server.addr, None).unwrap_err();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    assert_eq!(scrape(&server.addr, Some("wrong")).unwrap_err().0, 401);

    let source = camut_integration::control_campaign("prom", 2, 3, 4, "", &target.url);
    let rt = camut_integration::rt();
    rt.block_on(async {
        let c = camut::Client::connect(&server.addr, Some("s3cret-api-token-16"))
            .await
            .unwrap();
        let results = c.run_campaign("prom.js", &source).await.unwrap();
        assert_eq!(results.state().label(), "finished");
    });
    let m = scrape(&server.addr, Some("s3cret-api-token-16")).unwrap();
    let campaign = [("campaign", "prom")];
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&m, name, labels).unwrap_or_else(|| panic!("{name} {labels:?} in {m:?}"))["value"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(value("camut_campaign_requests_total", &campaign), 24.0);
    assert_eq!(value("camut_campaign_iterations_total", &campaign), 24.0);
    assert_eq!(value("camut_campaign_errors_total", &campaign), 0.0);
    assert_eq!(
        value("camut_campaign_response_time_seconds_count", &campaign),
        24.0
    );
    let p99 = value(
        "camut_campaign_response_time_seconds",
        &[("campaign", "prom"), ("quantile", "0.99")],
    );
    assert!(p99 > 0.0 && p99 < 5.0, "{p99}");
    assert!(value("camut_campaign_response_time_seconds_sum", &campaign) > 0.0);
    assert_eq!(
        value(
            "camut_campaign_info",
            &[("campaign", "prom"), ("state", "finished")]
        ),
        1.0
    );
    assert_eq!(value("camut_drones_connected", &[]), 2.0);
    assert_eq!(
        value(
            "camut_campaign_drones",
            &[("campaign", "prom"), ("state", "finished")]
        ),
        2.0
    );
    assert!(
        value("camut_jobs", &[("state", "complete")]) >= 3.0,
        "spawn, deploy, start"
    );
    assert!(value("camut_store_size_bytes", &[]) > 0.0);
    let summary = m
        .iter()
        .find(|s| s["name"] == "camut_campaign_response_time_seconds")
        .unwrap();
    assert_eq!(summary["type"], "summary");
}

#[test]
fn the_servers_default_tsdb_serves_campaigns_without_one() {
    let target = TargetProcess::start();
    let vm = Victoria::start("default");
    let (host, port) = vm.telnet.split_once(':').unwrap();
    let config = format!("[tsdb]\nhost = \"{host}\"\nport = {port}\nprecision = \"s\"\n");
    let server = camut_integration::ServerProcess::start("tsdb-default", Some(&config));
    let source = camut_integration::control_campaign("tsdbdef", 2, 2, 3, "", &target.url);
    let rt = camut_integration::rt();
    rt.block_on(async {
        let c = camut::Client::connect(&server.addr, None).await.unwrap();
        let results = c.run_campaign("tsdbdef.js", &source).await.unwrap();
        let s: serde_json::Value = camut_integration::summary_value(&results);
        let [produced, sent, ..] = tsdb_counts(&s);
        assert!(produced > 0 && sent == produced, "{s}");
        let all = vm.export_at_least("{campaign=\"tsdbdef\"}", produced);
        let requests = total(&all, "http.requests.count", &[]);
        assert_eq!(requests, 2.0 * 2.0 * 3.0);
        let kill = c.kill("tsdbdef").await.unwrap();
        c.wait_job(kill.id).await.unwrap();
    });

    // A bad default TSDB stops the server at start, naming the option.
    let dir = std::env::temp_dir().join(format!("camut-badtsdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("camut.toml");
    std::fs::write(&bad, "[tsdb]\nhost = \"h\"\nmode = \"every\"\n").unwrap();
    let out = camut(&[
        "server",
        "-c",
        bad.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tsdb.mode"),
        "{}",
        show(&out)
    );
}
