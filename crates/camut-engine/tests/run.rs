//! Running campaigns against a real HTTP server on loopback: counts, load models, faults.

mod common;

use std::time::{Duration, Instant};

use camut_engine::{RunConfig, StopHandle};
use common::Env;

fn campaign(opts: &str, body: &str) -> String {
    format!("exports.campaign = {{ id: 't', {opts} }};\nexports.test = function (done) {{\n{body}\n}};\n")
}

#[test]
fn exact_request_count_closed_loop() {
    let env = Env::new();
    let src = campaign(
        "users: 7, iterations: 13",
        "camut.http({ url: camut.env.TARGET + '/', operation: 'home' }, function (err) { if (err) throw err; done(); });",
    );
    let (r, _) = env.run(&src, 2);
    let s = &r.summary;
    assert_eq!(s.requests, 7 * 13);
    assert_eq!(
        env.target.served(),
        7 * 13,
        "the target counted exactly users × iterations"
    );
    assert_eq!(s.iterations.completed, 7 * 13);
    assert_eq!(s.iterations.failed, 0);
    assert_eq!(s.errors, 0);
    assert_eq!(s.operations.len(), 1);
    assert_eq!(s.operations[0].operation, "home");
    let rt = &s.metrics["http.response_time"];
    assert_eq!(rt.count, 91);
    assert!(rt.min > 0.0 && rt.min <= rt.p50 && rt.p50 <= rt.p99 && rt.p99 <= rt.max);
    assert!(s.metrics["http.received"].count == 91 && s.metrics["http.transmitted"].min > 10.0);
    assert!(
        s.connections_opened >= 1 && s.connections_opened <= 7,
        "keep-alive pool reuses connections: {}",
        s.connections_opened
    );
    assert!(s.health.as_ref().unwrap().workers.len() == 2);
}

#[test]
fn promise_form_and_async_test() {
    let env = Env::new();
    let src = "export const campaign = { id: 'a', users: 3, iterations: 4 };\n\
               export async function test() {\n\
                 const r = await camut.http(camut.env.TARGET + '/?bytes=5');\n\
                 if (r.data !== 'xxxxx' || r.response.statusCode !== 200) throw new Error('bad ' + r.data);\n\
                 const r2 = await new camut.http({ hostname: '127.0.0.1', port: camut.env.TARGET.split(':')[2], path: '/?status=201' });\n\
                 if (r2.response.statusCode !== 201) throw new Error('bad status');\n\
               }\n";
    let (r, _) = env.run(src, 1);
    assert_eq!(
        r.summary.iterations.completed, 12,
        "{:?}",
        r.summary.error_messages
    );
    assert_eq!(r.summary.requests, 24);
    assert_eq!(env.target.served(), 24);
}

#[test]
fn async_rejection_is_an_error_and_vu_goes_on() {
    let env = Env::new();
    let src = "export const campaign = { id: 'a', users: 2, iterations: 3 };\n\
               export async function test() { await camut.http(camut.env.TARGET + '/?status=503'); }\n";
    let (r, _) = env.run(src, 1);
    let s = &r.summary;
    assert_eq!(s.iterations.failed, 6);
    assert_eq!(s.errors, 6);
    assert_eq!(s.requests, 6);
    assert!(
        s.error_messages
            .iter()
            .any(|e| e.message == "HTTP 503" && e.count == 6),
        "{:?}",
        s.error_messages
    );
}

#[test]
fn http_errors_set_err() {
    let env = Env::new();
    let src = campaign(
        "users: 1, iterations: 1, iterationTimeout: 5",
        "var seen = [];
         camut.http({ url: camut.env.TARGET + '/?status=500' }, function (err, data, res) {
           seen.push('500:' + err.message + ':' + res.statusCode);
           camut.http({ url: 'http://127.0.0.1:1/' }, function (err2) {
             seen.push('refused:' + err2.message.split(':')[0]);
             camut.http({ url: camut.env.TARGET + '/?delay_ms=2000', timeout: 50 }, function (err3) {
               seen.push('timeout:' + err3.message);
               console.log(seen.join('|'));
               done();
             });
           });
         });",
    );
    let (r, cap) = env.run(&src, 1);
    assert_eq!(
        cap.lines(),
        vec!["500:HTTP 500:500|refused:ECONNREFUSED|timeout:timeout".to_string()]
    );
    assert_eq!(r.summary.errors, 3);
    assert_eq!(r.summary.requests, 3);
    assert_eq!(r.summary.iterations.completed, 1);
    let msgs: Vec<&str> = r
        .summary
        .error_messages
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    assert!(
        msgs.contains(&"timeout") && msgs.iter().any(|m| m.starts_with("ECONNREFUSED")),
        "{msgs:?}"
    );
}

#[test]
fn throwing_test_is_counted_with_stack_and_vu_goes_on() {
    let env = Env::new();
    let src = campaign(
        "users: 2, iterations: 5",
        "if (camut.vu.iteration % 2 == 0) throw new Error('boom ' + camut.vu.index); done();",
    );
    let (r, _) = env.run(&src, 1);
    let s = &r.summary;
    assert_eq!(s.iterations.failed, 6);
    assert_eq!(s.iterations.completed, 4);
    let e = s
        .error_messages
        .iter()
        .find(|e| e.message == "boom 0")
        .expect("message kept");
    assert_eq!(e.count, 3);
    assert!(
        e.stack.as_deref().unwrap_or("").contains("test.js:3"),
        "stack names the file and line: {:?}",
        e.stack
    );
}

#[test]
fn exception_in_callback_fails_the_iteration() {
    let env = Env::new();
    let src = campaign(
        "users: 1, iterations: 3, iterationTimeout: 5",
        "camut.http(camut.env.TARGET + '/', function () { null.x; done(); });",
    );
    let (r, _) = env.run(&src, 1);
    assert_eq!(r.summary.iterations.failed, 3);
    assert_eq!(
        r.summary.iterations.timed_out, 0,
        "the exception ends the iteration at once"
    );
    assert!(
        r.summary.error_messages[0].message.contains("TypeError"),
        "{:?}",
        r.summary.error_messages
    );
}

#[test]
fn never_calling_done_times_out() {
    let env = Env::new();
    let src = campaign(
        "users: 3, iterations: 2, iterationTimeout: 0.2",
        "/* forgets done */",
    );
    let started = Instant::now();
    let (r, _) = env.run(&src, 1);
    assert_eq!(r.summary.iterations.timed_out, 6);
    assert_eq!(r.summary.iterations.failed, 6);
    assert!(r.summary.error_messages[0]
        .message
        .contains("iteration timed out"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the run ends by itself"
    );
}

#[test]
fn endless_loop_is_interrupted() {
    let env = Env::new();
    let src = campaign(
        "users: 2, iterations: 2, iterationTimeout: 0.3",
        "if (camut.vu.index == 0) { while (true) {} } done();",
    );
    let (r, _) = env.run(&src, 1);
    assert_eq!(
        r.summary.iterations.completed, 2,
        "the other VU is unaffected"
    );
    assert_eq!(r.summary.iterations.failed, 2);
    assert!(
        r.summary.error_messages[0].message.contains("interrupted"),
        "{:?}",
        r.summary.error_messages
    );
}

#[test]
fn memory_bomb_hits_the_limit() {
    let env = Env::new();
    let src = campaign(
        "users: 2, iterations: 2, memoryLimit: 64",
        "if (camut.vu.index == 0) { var a = []; while (true) a.push(new Array(100000).fill(1)); } done();",
    );
    let (r, _) = env.run(&src, 1);
    assert_eq!(r.summary.iterations.completed, 2);
    assert_eq!(r.summary.iterations.failed, 2);
    assert!(
        r.summary.error_messages[0]
            .message
            .contains("out of memory"),
        "{:?}",
        r.summary.error_messages
    );
}

#[test]
fn done_twice_counts_once() {
    let env = Env::new();
    let src = campaign("users: 2, iterations: 3", "done(); done();");
    let (r, _) = env.run(&src, 1);
    assert_eq!(r.summary.iterations.completed, 6);
    assert_eq!(r.summary.done_twice, 6);
}

#[test]
fn paced_model_starts_next_iteration_while_call_in_flight() {
    let env = Env::new();
    // Each iteration lasts 50 ms (timer) while its call takes 300 ms: calls overlap.
    let src = campaign(
        "users: 2, iterations: 4",
        "camut.http(camut.env.TARGET + '/?delay_ms=300', function (err) { if (err) throw err; });
         setTimeout(done, 50);",
    );
    let started = Instant::now();
    let (r, _) = env.run(&src, 1);
    assert_eq!(
        r.summary.requests, 8,
        "every call is awaited before the end"
    );
    assert_eq!(env.target.served(), 8);
    assert_eq!(r.summary.iterations.completed, 8);
    assert!(started.elapsed() < Duration::from_secs(5));
    // An iteration that waited for its call would last ≥ 300 ms.
    assert!(
        r.summary.metrics["iteration.duration"].max < 300.0,
        "iterations overlapped the calls"
    );
}

#[test]
fn scope_context_window_ids_and_timers() {
    let env = Env::new();
    let src = campaign(
        "users: 2, iterations: 3",
        "if (context === null) context = { n: 0 };
         context.n++;
         var self = this;
         var ticks = 0;
         var h = setInterval(function (a) {
           ticks += a;
           if (ticks >= 3) {
             clearInterval(h);
             var t = setTimeout(function () { throw new Error('cleared timer fired'); }, 1);
             clearTimeout(t);
             console.log(['vu', camut.vu.id, camut.vu.index, 'it', camut.vu.iteration, 'n', context.n,
                          'win', self === window, typeof window, camut.drone.index, camut.campaign.id].join(' '));
             done();
           }
         }, 5, 1);",
    );
    let (r, cap) = env.run(&src, 2);
    assert_eq!(
        r.summary.iterations.completed, 6,
        "{:?}",
        r.summary.error_messages
    );
    let mut lines = cap.lines();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "vu 1 0 it 0 n 1 win true object 0 t",
            "vu 1 0 it 1 n 2 win true object 0 t",
            "vu 1 0 it 2 n 3 win true object 0 t",
            "vu 2 1 it 0 n 1 win true object 0 t",
            "vu 2 1 it 1 n 2 win true object 0 t",
            "vu 2 1 it 2 n 3 win true object 0 t",
        ]
    );
}

#[test]
fn tsdb_points_carry_default_tags() {
    let env = Env::new();
    let src = campaign(
        "users: 2, iterations: 2",
        "camut.tsdb('shop.before', 1);
         camut.http({ url: camut.env.TARGET + '/?status=404' }, function () {
           camut.tsdb('shop.cart', 3, { page: 'cart', campaign: 'mine' });
           done();
         });",
    );
    let (_, cap) = env.run(&src, 1);
    let points = cap.points.lock().unwrap();
    assert_eq!(points.len(), 8);
    let tag =
        |p: &camut_engine::Point, k: &str| p.tags.iter().find(|t| t.0 == k).map(|t| t.1.clone());
    let cart: Vec<_> = points.iter().filter(|p| p.metric == "shop.cart").collect();
    assert_eq!(cart.len(), 4);
    for p in &cart {
        assert_eq!(p.value, 3.0);
        assert_eq!(tag(p, "page").as_deref(), Some("cart"));
        assert_eq!(
            tag(p, "campaign").as_deref(),
            Some("mine"),
            "the test's tags override"
        );
        assert_eq!(tag(p, "client").as_deref(), Some("local"));
        assert_eq!(
            tag(p, "error").as_deref(),
            Some("true"),
            "the last call failed"
        );
        assert!(tag(p, "url").unwrap().ends_with("/?status=404"));
        assert!(tag(p, "callId").is_some() && tag(p, "vu").is_some());
        assert!(p.timestamp_ms > 1_600_000_000_000, "milliseconds");
    }
    let first = points
        .iter()
        .find(|p| p.metric == "shop.before" && tag(p, "callId").is_none());
    assert!(
        first.is_some(),
        "before any call there is no url/callId tag"
    );
}

#[test]
fn per_call_records_when_asked() {
    let env = Env::new();
    let src = campaign(
        "id: 'calls', users: 3, iterations: 4",
        "camut.http({ url: camut.env.TARGET + '/?status=' + (camut.vu.iteration == 3 ? 500 : 200) },
           function () { done(); });",
    );
    let (r, cap) = env.run(&src, 1);
    assert!(cap.calls.lock().unwrap().is_empty(), "off by default");
    assert_eq!(r.summary.requests, 12);
    let (r, cap) = env.run_with(
        &src,
        RunConfig {
            threads: 2,
            call_points: true,
            ..RunConfig::default()
        },
    );
    assert_eq!(r.summary.requests, 12);
    let calls = cap.calls.lock().unwrap();
    assert_eq!(calls.len(), 12);
    let mut ids: Vec<u64> = calls.iter().map(|c| c.call_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "call ids are distinct across workers");
    let failed: Vec<_> = calls.iter().filter(|c| !c.error_kind.is_empty()).collect();
    assert_eq!(failed.len(), 3);
    assert!(failed
        .iter()
        .all(|c| c.status == 500 && c.error_kind == "HTTP_500"));
    for c in calls.iter() {
        assert!(c.url.starts_with(&env.target.url()));
        assert!((1..=3).contains(&c.vu));
        assert!(c.response_time_us >= c.response_begin_time_us);
        assert!(c.received > 0 && c.transmitted > 0);
        assert!(c.timestamp_ms > 1_600_000_000_000);
    }
}

#[test]
fn tsdb_metric_names_are_checked() {
    let env = Env::new();
    let src = campaign(
        "users: 1, iterations: 1",
        "camut.tsdb('cart size', 1); done();",
    );
    let (r, cap) = env.run(&src, 1);
    assert!(cap.points.lock().unwrap().is_empty());
    assert_eq!(r.summary.iterations.failed, 1);
    let msg = &r.summary.error_messages[0].message;
    assert!(
        msg.contains("camut.tsdb: the metric name 'cart size' has ' '"),
        "{msg}"
    );
}

#[test]
fn rampup_spreads_starts() {
    let env = Env::new();
    let src = campaign(
        "users: 5, iterations: 1, rampup: 0.5",
        "camut.tsdb('start', 1); done();",
    );
    let (_, cap) = env.run(&src, 1);
    let mut ts: Vec<u64> = cap
        .points
        .lock()
        .unwrap()
        .iter()
        .map(|p| p.timestamp_ms)
        .collect();
    ts.sort();
    assert_eq!(ts.len(), 5);
    let spread = ts[4] - ts[0];
    assert!(
        (350..=900).contains(&spread),
        "starts spread over the rampup: {spread} ms"
    );
}

#[test]
fn duration_mode_stops_by_itself() {
    let env = Env::new();
    let src = campaign("users: 2, duration: '400ms'", "setTimeout(done, 20);");
    let started = Instant::now();
    let (r, _) = env.run(&src, 1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let n = r.summary.iterations.completed;
    assert!((10..=44).contains(&n), "about 2 × 400/20 iterations: {n}");
}

#[test]
fn open_model_counts_drops_and_corrects_latency() {
    let env = Env::new();
    // 100/s for 50 iterations with 2 VUs and 150 ms calls: at most ~2 in flight, the rest dropped.
    let src = campaign(
        "users: 2, iterations: 50, arrivalRate: 100",
        "camut.http(camut.env.TARGET + '/?delay_ms=150', function () { done(); });",
    );
    let (r, _) = env.run(&src, 1);
    let s = &r.summary;
    assert_eq!(
        s.iterations.started + s.iterations.dropped,
        50,
        "every arrival is run or dropped"
    );
    assert!(
        s.iterations.dropped >= 30,
        "dropped: {}",
        s.iterations.dropped
    );
    assert_eq!(s.requests, s.iterations.started);
    assert!(s.metrics["http.service_time"].min >= 150.0);
    assert!(s.metrics["http.response_time"].max >= s.metrics["http.service_time"].max);
}

#[test]
fn open_model_keeps_rate_independent_of_latency() {
    let env = Env::new();
    let src = campaign(
        "users: 40, iterations: 40, arrivalRate: 200",
        "camut.http(camut.env.TARGET + '/?delay_ms=20', function () { done(); });",
    );
    let started = Instant::now();
    let (r, _) = env.run(&src, 2);
    assert_eq!(r.summary.iterations.dropped, 0);
    assert_eq!(r.summary.requests, 40);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(180) && took < Duration::from_secs(2),
        "40 arrivals at 200/s: {took:?}"
    );
}

#[test]
fn thresholds_are_evaluated() {
    let env = Env::new();
    let src = campaign(
        "users: 2, iterations: 5, thresholds: { 'http.response_time': ['p99 < 5000', 'max < 0.001'], 'http.errors': ['rate < 0.01'], 'iterations': ['count == 10'] }",
        "camut.http(camut.env.TARGET + '/', function () { done(); });",
    );
    let (r, _) = env.run(&src, 1);
    let t = &r.summary.thresholds;
    let ok = |e: &str| t.iter().find(|v| v.expr == e).unwrap().ok;
    assert!(ok("p99 < 5000"));
    assert!(!ok("max < 0.001"));
    assert!(ok("rate < 0.01"));
    assert!(ok("count == 10"));
    assert!(!r.summary.thresholds_ok);
}

#[test]
fn stop_ends_a_long_run() {
    let env = Env::new();
    let campaign = camut_engine::Campaign::from_source(
        "s.js",
        &campaign("users: 4, duration: '1h'", "setTimeout(done, 10);"),
    )
    .unwrap();
    let stop = StopHandle::new();
    let s2 = stop.clone();
    let capture = std::sync::Arc::new(common::Capture::default());
    let seen = capture.clone();
    // Stop once the run is visibly under way (more than 10 iterations reported).
    let t = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen
            .iterations_done
            .load(std::sync::atomic::Ordering::SeqCst)
            <= 10
            && Instant::now() < deadline
        {
            std::thread::park_timeout(Duration::from_millis(5));
        }
        s2.stop();
    });
    let started = Instant::now();
    let r = camut_engine::run(
        &campaign,
        RunConfig {
            threads: 1,
            interval: Duration::from_millis(50),
            ..RunConfig::default()
        },
        capture,
        stop,
    )
    .unwrap();
    t.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(r.summary.iterations.completed > 10);
    drop(env);
}

#[test]
fn overrides_apply() {
    let env = Env::new();
    let src = campaign(
        "users: 50, iterations: 50",
        "camut.http(camut.env.TARGET + '/', function () { done(); });",
    );
    let (r, _) = env.run_with(
        &src,
        RunConfig {
            threads: 1,
            users: Some(3),
            length: Some(camut_engine::campaign::RunLength::Iterations(2)),
            ..RunConfig::default()
        },
    );
    assert_eq!(r.summary.requests, 6);
    assert_eq!(r.summary.vus, 3);
}

#[test]
fn iterations_ending_in_a_later_interval_are_counted() {
    let env = Env::new();
    let src = campaign("users: 3, iterations: 1", "setTimeout(done, 250);");
    let (r, _) = env.run_with(
        &src,
        RunConfig {
            threads: 1,
            interval: Duration::from_millis(100),
            ..RunConfig::default()
        },
    );
    assert_eq!(r.summary.iterations.completed, 3);
    assert_eq!(r.summary.metrics["iteration.duration"].count, 3);
}

#[test]
fn huge_timer_delays_and_call_timeouts_neither_panic_nor_hang() {
    let env = Env::new();
    // A delay past 2^31 - 1 ms runs after 1 ms, as in node; a call timeout past it is a
    // clear call-time error thrown into the test.
    let src = campaign(
        "users: 2, iterations: 3, iterationTimeout: 5",
        "setTimeout(function () {\n\
           try { camut.http({ url: camut.env.TARGET + '/', timeout: 1e300 }, function () {}); }\n\
           catch (e) { if (String(e).indexOf('timeout') < 0) throw e; done(); return; }\n\
           throw new Error('a timeout of 1e300 ms was accepted');\n\
         }, 1e300);",
    );
    let started = Instant::now();
    let (r, _) = env.run(&src, 1);
    let s = &r.summary;
    assert_eq!(s.iterations.completed, 6, "{:?}", s.error_messages);
    assert_eq!(s.iterations.failed, 0);
    assert_eq!(env.target.served(), 0, "no call was made");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn operations_past_max_operations_are_counted_under_one_overflow_series() {
    let env = Env::new();
    // 40 distinct paths (the default operation is method and path) against a bound of 5.
    let src = campaign(
        "users: 4, iterations: 10, maxOperations: 5",
        "camut.http(camut.env.TARGET + '/item/' + (camut.vu.id * 10 + camut.vu.iteration), function (err) { if (err) throw err; done(); });",
    );
    let (r, capture) = env.run(&src, 2);
    let s = &r.summary;
    assert_eq!(s.iterations.completed, 40, "{:?}", s.error_messages);
    assert_eq!(s.requests, 40);
    assert_eq!(env.target.served(), 40, "every call was counted");
    let ops: Vec<&str> = s.operations.iter().map(|o| o.operation.as_str()).collect();
    assert_eq!(ops.len(), 6, "5 operations and the overflow: {ops:?}");
    let overflow = s
        .operations
        .iter()
        .find(|o| o.operation == camut_engine::stats::OVERFLOW_OPERATION)
        .expect("an overflow series");
    assert_eq!(overflow.requests, 35);
    let warnings: Vec<String> = capture
        .console
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, m)| m.contains("maxOperations"))
        .map(|(_, _, m)| m.clone())
        .collect();
    assert_eq!(warnings.len(), 1, "warned once: {warnings:?}");
    assert!(warnings[0].contains("operation"), "{}", warnings[0]);
}
