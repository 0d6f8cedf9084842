//! `camut.http` over HTTPS against a real nginx (certificates made by openssl for the
//! test) and against `camut target --tls`: verification, options, mutual TLS, the
//! handshake metric, and every count checked against what the server logged.

use camut_integration::nginx::Nginx;
use camut_integration::{camut, show, temp_file, wait_for, TargetProcess};

/// A JS string literal of `s` (PEM text goes into campaign files this way).
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// `camut run FILE --threads 1 --summary-json -` → (summary, output for messages).
fn run(file: &std::path::Path) -> (serde_json::Value, String) {
    summary(camut(&[
        "run",
        file.to_str().unwrap(),
        "--threads",
        "1",
        "--summary-json",
        "-",
        "--quiet",
    ]))
}

/// The summary JSON a `camut run … --summary-json -` printed, and its output shown.
fn summary(out: std::process::Output) -> (serde_json::Value, String) {
    let shown = show(&out);
    let summary = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("summary JSON on stdout ({e}): {shown}"));
    (summary, shown)
}

/// Checks the summary's calls and failed calls.
fn assert_counts(summary: &serde_json::Value, shown: &str, requests: u64, errors: u64) {
    assert_eq!(
        (summary["requests"].as_u64(), summary["errors"].as_u64()),
        (Some(requests), Some(errors)),
        "{shown}"
    );
}

fn error_messages(summary: &serde_json::Value) -> Vec<(String, u64)> {
    summary["error_messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["message"].as_str().unwrap().to_string(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Checks that nginx logged exactly `n` requests on `port`. It writes a request's
/// access-log line after the answer has left, so the count is awaited first.
fn assert_logged(nginx: &Nginx, port: u16, n: usize) {
    wait_for(5, || nginx.requests(port) >= n);
    assert_eq!(nginx.requests(port), n);
}

#[test]
fn nginx_certificates_are_verified_and_failures_say_why() {
    let nginx = Nginx::start("verify");
    // A CA given in the campaign's `tls`: 2 VUs × 10 calls on pooled connections.
    let file = temp_file(
        "valid.js",
        &format!(
            "exports.campaign = {{ id: 'tls-valid', users: 2, iterations: 10, tls: {{ ca: {ca} }} }};\n\
             exports.test = function (done) {{\n\
               camut.http('https://127.0.0.1:{port}/', function (err, data, res) {{\n\
                 if (err) throw err;\n\
                 if (data !== 'hello from nginx\\n') throw new Error('body ' + data);\n\
                 done();\n\
               }});\n\
             }};\n",
            ca = js(&nginx.ca_pem),
            port = nginx.valid_port
        ),
    );
    let (s, shown) = run(&file);
    assert_eq!(s["requests"], 20, "{shown}");
    assert_eq!(s["errors"], 0, "{shown}");
    assert_logged(&nginx, nginx.valid_port, 20);
    assert_eq!(
        s["connections_opened"], 2,
        "keep-alive pooling per VU: {shown}"
    );
    let hs = &s["metrics"]["http.tls_handshake_time"];
    assert_eq!(hs["count"], 2, "one handshake per connection: {shown}");
    assert!(hs["max"].as_f64().unwrap() > 0.0);
    // Bytes on the socket: the two calls that shook hands carry the certificates.
    let rx = &s["metrics"]["http.received"];
    assert!(
        rx["max"].as_f64().unwrap() > rx["min"].as_f64().unwrap() + 300.0,
        "{rx}"
    );

    // Unknown issuer, name mismatch, expired: counted errors saying why; nginx served
    // nothing.
    for (port, why) in [
        (nginx.unknown_ca_port, "unknown issuer"),
        (nginx.mismatch_port, "name mismatch"),
        (nginx.expired_port, "certificate expired"),
    ] {
        let file = temp_file(
            "bad.js",
            &format!(
                "exports.campaign = {{ id: 'tls-bad', users: 1, iterations: 3 }};\n\
                 exports.test = function (done) {{\n\
                   camut.http({{ url: 'https://127.0.0.1:{port}/', ca: {ca} }}, function (err) {{\n\
                     if (!err || err.message.indexOf('TLS handshake failed') !== 0) throw new Error('expected a handshake error, got ' + err);\n\
                     done();\n\
                   }});\n\
                 }};\n",
                ca = js(&nginx.ca_pem)
            ),
        );
        let (s, shown) = run(&file);
        assert_counts(&s, &shown, 3, 3);
        assert_eq!(s["iterations"]["completed"], 3, "{shown}");
        let errors = error_messages(&s);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].0.contains(why), "{errors:?}");
        assert_eq!(errors[0].1, 3);
        assert_eq!(nginx.requests(port), 0);
    }

    // insecureSkipVerify as node's rejectUnauthorized: false, with node's request fields.
    let file = temp_file(
        "insecure.js",
        &format!(
            "exports.campaign = {{ id: 'tls-insecure', users: 1, iterations: 4 }};\n\
             exports.test = function (done) {{\n\
               camut.http({{ protocol: 'https:', hostname: '127.0.0.1', port: {port}, path: '/x',\n\
                             rejectUnauthorized: false, minVersion: 'TLSv1.3' }}, function (err, data) {{\n\
                 if (err) throw err;\n\
                 done();\n\
               }});\n\
             }};\n",
            port = nginx.unknown_ca_port
        ),
    );
    let (s, shown) = run(&file);
    assert_counts(&s, &shown, 4, 0);
    assert_logged(&nginx, nginx.unknown_ca_port, 4);

    // servername: the certificate of the mismatch port is valid for other.test.
    let file = temp_file(
        "sni.js",
        &format!(
            "exports.campaign = {{ id: 'tls-sni', users: 1, iterations: 2,\n\
               tls: {{ ca: {ca}, servername: 'other.test' }} }};\n\
             exports.test = async function () {{\n\
               var r = await camut.http('https://127.0.0.1:{port}/');\n\
               if (r.response.statusCode !== 200) throw new Error('status ' + r.response.statusCode);\n\
             }};\n",
            ca = js(&nginx.ca_pem),
            port = nginx.mismatch_port
        ),
    );
    let (s, shown) = run(&file);
    assert_counts(&s, &shown, 2, 0);
    assert_logged(&nginx, nginx.mismatch_port, 2);
}

#[test]
fn nginx_mutual_tls_with_and_without_a_client_certificate() {
    let nginx = Nginx::start("mtls");
    let file = temp_file(
        "mtls.js",
        &format!(
            "exports.campaign = {{ id: 'mtls', users: 2, iterations: 5,\n\
               tls: {{ ca: {ca}, cert: {cert}, key: {key} }} }};\n\
             exports.test = async function () {{\n\
               var r = await camut.http('https://localhost:{port}/');\n\
               if (r.data !== 'hello from nginx\\n') throw new Error('body ' + r.data);\n\
             }};\n",
            ca = js(&nginx.ca_pem),
            cert = js(&nginx.client_cert_pem),
            key = js(&nginx.client_key_pem),
            port = nginx.mtls_port
        ),
    );
    let (s, shown) = run(&file);
    assert_counts(&s, &shown, 10, 0);
    assert_eq!(nginx.statuses(nginx.mtls_port), vec![200; 10]);

    let file = temp_file(
        "nocert.js",
        &format!(
            "exports.campaign = {{ id: 'mtls-none', users: 1, iterations: 3, tls: {{ ca: {ca} }} }};\n\
             exports.test = function (done) {{\n\
               camut.http('https://localhost:{port}/', function (err) {{\n\
                 if (!err) throw new Error('expected the server to refuse');\n\
                 done();\n\
               }});\n\
             }};\n",
            ca = js(&nginx.ca_pem),
            port = nginx.mtls_port
        ),
    );
    let (s, shown) = run(&file);
    assert_counts(&s, &shown, 3, 3);
    assert_eq!(s["iterations"]["completed"], 3, "{shown}");
    // nginx answers 400 "No required SSL certificate was sent" to each call.
    assert_eq!(nginx.statuses(nginx.mtls_port)[10..], [400, 400, 400]);
    let errors = error_messages(&s);
    assert!(errors[0].0.starts_with("HTTP 400"), "{errors:?}");
}

#[test]
fn target_tls_serves_https_with_its_printed_certificate() {
    let target = TargetProcess::start_tls();
    assert!(
        target.url.starts_with("https://127.0.0.1:"),
        "{}",
        target.url
    );
    let ca = target
        .certificate
        .clone()
        .expect("--tls prints its certificate");
    let file = temp_file(
        "target-tls.js",
        &format!(
            "exports.campaign = {{ id: 'target-tls', users: 3, iterations: 7, tls: {{ ca: {ca} }} }};\n\
             exports.test = function (done) {{\n\
               camut.http({{ url: camut.env.TARGET + '/?bytes=100', operation: 'home' }}, function (err, data) {{\n\
                 if (err) throw err;\n\
                 if (data.length !== 100) throw new Error('length ' + data.length);\n\
                 done();\n\
               }});\n\
             }};\n",
            ca = js(&ca)
        ),
    );
    let (s, shown) =
        summary(target.run(&file, &["--threads", "1", "--summary-json", "-", "--quiet"]));
    assert_counts(&s, &shown, 21, 0);
    assert_eq!(target.served(), 21);
    assert_eq!(s["connections_opened"], 3);
    assert_eq!(s["metrics"]["http.tls_handshake_time"]["count"], 3);

    // A new connection per call (keepAlive: false): one full handshake each.
    let file = temp_file(
        "target-tls-close.js",
        &format!(
            "exports.campaign = {{ id: 'target-tls-close', users: 2, iterations: 4, keepAlive: false, tls: {{ ca: {ca} }} }};\n\
             exports.test = function (done) {{\n\
               camut.http(camut.env.TARGET + '/', function (err) {{ if (err) throw err; done(); }});\n\
             }};\n",
            ca = js(&ca)
        ),
    );
    let (s, shown) =
        summary(target.run(&file, &["--threads", "1", "--summary-json", "-", "--quiet"]));
    assert_counts(&s, &shown, 8, 0);
    assert_eq!(s["connections_opened"], 8);
    assert_eq!(s["metrics"]["http.tls_handshake_time"]["count"], 8);
    assert_eq!(target.served(), 29);
}
