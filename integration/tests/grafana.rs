//! The Grafana dashboards of deploy/grafana against what really arrives: a two-drone
//! campaign sends its points to a real victoria-metrics (OpenTSDB telnet), and every
//! metric and tag the OpenTSDB dashboard queries must be among them; every series the
//! Prometheus dashboard queries must be on the same server's `/metrics`.

use std::collections::{BTreeMap, BTreeSet};

use camut_integration::victoria::Victoria;
use camut_integration::{
    http_request, repo_root, show, temp_file, wait_for, ServerProcess, TargetProcess,
};

fn dashboard(name: &str) -> serde_json::Value {
    let path = repo_root().join("deploy/grafana").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

/// The `field` of every panel's every query.
fn queries(dashboard: &serde_json::Value, field: &str) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t[field].as_str().unwrap().to_string())
        .collect()
}

/// Every `camut_…` name in a PromQL expression.
fn prometheus_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("camut_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

#[test]
fn dashboards_query_what_the_connector_and_the_server_send() {
    let target = TargetProcess::start();
    let vm = Victoria::start("grafana");
    let server = ServerProcess::start("grafana", None);
    let (host, port) = vm.telnet.rsplit_once(':').unwrap();
    let source = format!(
        "exports.campaign = {{ id: 'grafana', drones: 2, users: 2, iterations: 20, deploy: {{ deployer: 'local' }},\n\
           tsdb: {{ host: '{host}', port: {port}, precision: 's', interval: 200 }} }};\n\
         exports.test = function (done) {{\n\
           var bad = camut.vu.iteration % 5 === 0;\n\
           camut.http({{ url: '{}/?delay_ms=5' + (bad ? '&status=500' : ''), operation: bad ? 'bad' : 'home' }}, function () {{\n\
             setTimeout(done, 30);\n\
           }});\n\
         }};\n",
        target.url
    );
    let file = temp_file("grafana.js", &source);
    for args in [
        vec!["new", file.to_str().unwrap()],
        vec!["spawn", "grafana"],
        vec!["deploy", "grafana"],
        vec!["start", "grafana"],
    ] {
        let out = server.camut(&args);
        assert!(out.status.success(), "{args:?}: {}", show(&out));
    }
    assert_eq!(target.served(), 80);

    // What victoria-metrics received: metric → tag keys, once every metric the
    // dashboard names has arrived (ingestion is asynchronous) or 15 s passed.
    let tsdb = dashboard("camut-opentsdb.json");
    let wanted: BTreeSet<String> = queries(&tsdb, "metric").into_iter().collect();
    let mut series = Vec::new();
    let mut sent: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    wait_for(15, || {
        series = vm.export("{campaign=\"grafana\"}");
        sent.clear();
        for s in &series {
            let name = s.label("__name__").unwrap().to_string();
            sent.entry(name)
                .or_default()
                .extend(s.labels.keys().filter(|k| *k != "__name__").cloned());
        }
        wanted.iter().all(|m| sent.contains_key(m))
    });
    let clients: BTreeSet<_> = series.iter().filter_map(|s| s.label("client")).collect();
    assert_eq!(clients.len(), 2, "two drones send: {clients:?}");

    let mut queried = 0;
    for panel in tsdb["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let metric = t["metric"].as_str().unwrap();
            let tags = sent.get(metric).unwrap_or_else(|| {
                panic!(
                    "panel {} queries {metric}, which is never sent: {sent:?}",
                    panel["title"]
                )
            });
            for f in t["filters"].as_array().unwrap() {
                let key = f["tagk"].as_str().unwrap();
                assert!(tags.contains(key), "{metric} has no tag {key}: {tags:?}");
            }
            queried += 1;
        }
    }
    assert!(queried >= 8, "{queried} queries");
    let mut variables = BTreeSet::new();
    for v in tsdb["templating"]["list"].as_array().unwrap() {
        // tag_values(METRIC, TAG[, filters])
        let q = v["query"].as_str().unwrap();
        let inner = q
            .strip_prefix("tag_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("unexpected variable query {q}"));
        let mut parts = inner.split(',').map(str::trim);
        let (metric, tag) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            sent.get(metric).is_some_and(|t| t.contains(tag)),
            "{q}: {sent:?}"
        );
        variables.insert(v["name"].as_str().unwrap().to_string());
    }
    assert_eq!(
        variables,
        ["campaign", "client", "operation"].map(String::from).into()
    );

    // The Prometheus dashboard against the server's /metrics.
    let (status, metrics) = http_request(&server.addr, "GET", "/metrics", "");
    assert_eq!(status, 200, "{metrics}");
    let families: BTreeSet<String> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect();
    let prom = dashboard("camut-prometheus.json");
    let mut exprs = queries(&prom, "expr");
    exprs.extend(
        prom["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["definition"].as_str().unwrap().to_string()),
    );
    let mut checked = 0;
    for expr in &exprs {
        for name in prometheus_names(expr) {
            assert!(
                families.contains(&name),
                "{expr}: {name} is not on /metrics: {families:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked} names");
}
