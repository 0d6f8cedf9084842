//! The web console in a real browser: a real server (with an API token), drones
//! started by the local deployer, the built-in target, and Debian's headless Chromium
//! driven by Playwright (`integration/ui/console.test.mjs`).
//!
//! Screenshots go to a temporary directory; with `CAMUT_UI_SCREENSHOTS=1` they go to
//! `docs/ui/` instead (how the pictures of docs/UI.md are refreshed).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use camut::Client;
use camut_integration::{
    camut_bin, control_campaign, pids_with, repo_root, show, temp_file, wait_for, ServerProcess,
    TargetProcess,
};

const TOKEN: &str = "console-test-token";

/// The campaign the browser uploads and runs: paced, bounded, with two thresholds.
fn demo_campaign(target: &str) -> String {
    format!(
        "// A paced campaign against the built-in target.\n\
         exports.campaign = {{\n\
         \x20 id: 'ui-demo',\n\
         \x20 drones: 2,\n\
         \x20 users: 3,\n\
         \x20 iterations: 120,\n\
         \x20 rampup: 2,\n\
         \x20 deploy: {{ deployer: 'local' }},\n\
         \x20 thresholds: {{\n\
         \x20   'http.response_time': ['p99 < 2000'],\n\
         \x20   'http.errors': ['rate < 0.01'],\n\
         \x20 }},\n\
         }};\n\
         exports.test = function (done) {{\n\
         \x20 camut.http({{ url: '{target}/?delay_ms=5', operation: 'home' }}, function (err) {{\n\
         \x20   setTimeout(done, 50);\n\
         \x20 }});\n\
         }};\n"
    )
}

#[test]
fn console_in_headless_chromium() {
    let ui_dir = repo_root().join("integration/ui");
    assert!(
        ui_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in {} (scripts/test.sh does)",
        ui_dir.display()
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: install Debian's chromium (scripts/test.sh does)"
    );
    let target = TargetProcess::start();
    let server = ServerProcess::start("ui", Some(&format!("token = \"{TOKEN}\"\n")));
    let good = temp_file("ui-demo.js", &demo_campaign(&target.url));
    let bad = temp_file(
        "bad.js",
        "exports.campaign = { id: 'bad', drones: 1, users: 1, iterations: 1 };\n\
         exports.test = function (done) {\n\
         \x20 done(;\n\
         };\n",
    );
    // The dummy deployer starts no drone: this campaign's deploy waits for ever.
    let stuck = control_campaign("ui-stuck", 2, 1, 1, "", "http://127.0.0.1:9")
        .replace("deployer: 'local'", "deployer: 'dummy'");
    let shots = if std::env::var_os("CAMUT_UI_SCREENSHOTS").is_some() {
        repo_root().join("docs/ui")
    } else {
        std::env::temp_dir().join(format!("camut-ui-shots-{}", std::process::id()))
    };
    std::fs::create_dir_all(&shots).unwrap();
    let profile = std::env::temp_dir().join(format!("camut-ui-profile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();

    let began = Instant::now();
    let mut child = Command::new("node")
        .arg(ui_dir.join("console.test.mjs"))
        .current_dir(&ui_dir)
        .env("CAMUT_UI_URL", format!("http://{}/ui", server.addr))
        .env("CAMUT_UI_TOKEN", TOKEN)
        .env("CAMUT_UI_GOOD_FILE", &good)
        .env("CAMUT_UI_BAD_FILE", &bad)
        .env("CAMUT_UI_STUCK_SOURCE", &stuck)
        .env("CAMUT_UI_SHOTS", &shots)
        .env("CAMUT_UI_PROFILE", &profile)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (scripts/test.sh installs it)");
    // Bounded: the script's own waits add up to less than this.
    let limit = Duration::from_secs(600);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if began.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = format!(
        "--- browser test stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        server.log()
    );
    let _ = std::fs::remove_dir_all(&profile);
    // The browser kills the campaign at the end; after a failure, this does.
    let drones = ["--id local-ui-demo-", &format!("http://{}", server.addr)];
    if !pids_with(&drones).is_empty() {
        let _ = Command::new(camut_bin())
            .args(["-s", &server.addr, "--token", TOKEN, "kill", "ui-demo"])
            .output();
    }
    let freed = wait_for(20, || pids_with(&drones).is_empty());
    assert!(
        status.is_some_and(|s| s.success()),
        "the browser test failed ({status:?} after {:?})\n{report}",
        began.elapsed()
    );
    assert!(stdout.contains("console test passed"), "{report}");
    assert!(
        freed,
        "the kill from the console stopped the drones\n{report}"
    );
    assert!(!stdout.contains("blocked request"), "{report}");
    for name in [
        "login",
        "create-error",
        "campaign-running",
        "jobs-active",
        "campaign-finished",
        "jobs",
        "logs",
        "campaigns",
        "commands",
    ] {
        let png = std::fs::read(shots.join(format!("{name}.png"))).unwrap_or_default();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "screenshot {name}.png\n{report}"
        );
    }
    if std::env::var_os("CAMUT_UI_SCREENSHOTS").is_none() {
        let _ = std::fs::remove_dir_all(&shots);
    }

    // A command from the CLI lands in the same command log, under the caller's name.
    let other = temp_file(
        "ui-cli.js",
        &control_campaign("ui-cli", 1, 1, 1, "", "http://127.0.0.1:9"),
    );
    let out = Command::new(camut_bin())
        .args(["-s", &server.addr, "--token", TOKEN, "new"])
        .arg(&other)
        .env("CAMUT_USER", "alice")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let log = console_get(&server.addr, "/ui/commands");
    assert!(log.starts_with("HTTP/1.1 200"), "{log}");
    let row = log
        .split("<tr")
        .find(|r| r.contains("ui-cli"))
        .unwrap_or_else(|| panic!("no ui-cli row in\n{log}"));
    assert!(
        row.contains(">alice<") && row.contains(">grpc 127.0.0.1:") && row.contains(">create<"),
        "{row}"
    );
    assert!(
        console_get_anonymous(&server.addr, "/ui/commands").starts_with("HTTP/1.1 401"),
        "the token is needed"
    );

    // What the browser did went through the API: the gRPC view agrees, to the request.
    let rt = camut_integration::rt();
    rt.block_on(async {
        let c = Client::connect(&server.addr, Some(TOKEN)).await.unwrap();
        let r = c.results("ui-demo").await.unwrap();
        assert_eq!(
            r.state().label(),
            "killed",
            "finished, then killed from the console"
        );
        let s = camut_integration::summary_value(&r);
        assert!(r.thresholds_ok, "{s}");
        assert_eq!(s["requests"].as_u64().unwrap(), target.served(), "{report}");
        assert_eq!(s["iterations"]["completed"], 2 * 3 * 120);
        assert_eq!(
            c.get("ui-stuck").await.unwrap_err().code(),
            Some(tonic::Code::NotFound),
            "deleted from the console"
        );
    });
}

/// `GET path` from the console with the token's cookie; the whole response.
fn console_get(addr: &str, path: &str) -> String {
    let hex: String = TOKEN.bytes().map(|b| format!("{b:02x}")).collect();
    http_get(addr, path, &format!("Cookie: camut_token={hex}\r\n"))
}

/// `GET path` without the token.
fn console_get_anonymous(addr: &str, path: &str) -> String {
    http_get(addr, path, "")
}

fn http_get(addr: &str, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
