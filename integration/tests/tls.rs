//! TLS on the server's one port, end to end: a real server with a self-signed
//! certificate (`--tls-self-signed`), drones started by the local deployer and the CLI
//! connecting with `--ca`, refusals of untrusting and plaintext clients, `--insecure`,
//! and the plaintext rule beyond loopback.

use std::path::PathBuf;
use std::process::Command;

use camut::tls::TlsOptions;
use camut::Client;
use camut_integration::nginx::certificate;
use camut_integration::{
    camut_bin, control_campaign, https_get, rt, show, temp_file, wait_for, ServerProcess,
    TargetProcess,
};
use tonic::Code;

/// A server with a self-signed certificate, and the CA file it wrote for clients.
fn tls_server(name: &str) -> (ServerProcess, PathBuf) {
    let server = ServerProcess::start_with_args(name, None, &["--tls-self-signed"], &[]);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let ca = server.data_dir.join("tls/ca.pem");
    assert!(ca.exists(), "{:?}", server.banner);
    (server, ca)
}

/// `camut ARGS` with a clean environment for CAMUT_CA.
fn camut(args: &[&str]) -> std::process::Output {
    Command::new(camut_bin())
        .args(args)
        .env_remove("CAMUT_CA")
        .output()
        .unwrap()
}

/// `camut -s URL --ca CA` new, spawn, deploy, start: each must succeed.
fn cli_workflow(server: &ServerProcess, ca: &str, file: &std::path::Path, id: &str) {
    for step in [
        vec!["new", file.to_str().unwrap()],
        vec!["spawn", id],
        vec!["deploy", id],
        vec!["start", id],
    ] {
        let mut args = vec!["-s", server.url.as_str(), "--ca", ca];
        args.extend(step.iter());
        let out = camut(&args);
        assert!(
            out.status.success(),
            "{step:?}: {}\n{}",
            show(&out),
            server.log()
        );
    }
}

#[test]
fn a_whole_campaign_runs_over_tls_with_drones_and_cli_trusting_the_ca() {
    let target = TargetProcess::start();
    let (server, ca) = tls_server("tls-workflow");
    let ca_arg = ca.to_str().unwrap();

    // The banner names the CA file and the certificate's SHA-256 fingerprint, the one
    // openssl computes.
    let banner = server.banner.join("\n");
    assert!(banner.contains(ca_arg), "{banner}");
    let openssl = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", ca_arg])
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&openssl.stdout)
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(fingerprint.len(), 95, "{}", show(&openssl));
    assert!(
        banner.contains(&format!("fingerprint {fingerprint}")),
        "{banner}"
    );

    let file = temp_file("tls.js", &control_campaign("tls", 2, 2, 5, "", &target.url));
    let s = server.url.as_str();
    cli_workflow(&server, ca_arg, &file, "tls");
    let out = camut(&["-s", s, "--ca", ca_arg, "results", "tls", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results["summary"]["requests"], 2 * 2 * 5, "{results}");
    assert_eq!(target.served(), 20, "the drones joined over TLS and ran");
    // The local deployer handed the drones the CA: they dialed https:// with --ca.
    let drone_log = std::fs::read_dir(server.data_dir.join("drones"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ca.pem"))
        .count();
    assert_eq!(drone_log, 2, "one CA file per drone");

    // The client crate, /healthz, /metrics and the console on the same TLS port.
    rt().block_on(async {
        let tls = TlsOptions::with_ca_file(&ca).unwrap();
        let c = Client::connect_with(s, None, &tls).await.unwrap();
        assert_eq!(c.list().await.unwrap().len(), 1);
        let kill = c.kill("tls").await.unwrap();
        assert_eq!(
            c.wait_job(kill.id).await.unwrap().state().label(),
            "complete"
        );
    });
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert_eq!(
        https_get(&server.addr, "/healthz", &pem),
        (200, "ok\n".into())
    );
    let (status, metrics) = https_get(&server.addr, "/metrics", &pem);
    assert_eq!(status, 200);
    assert!(metrics.contains("camut_"), "{metrics}");
    let (status, page) = https_get(&server.addr, "/ui/campaigns", &pem);
    assert_eq!(status, 200);
    assert!(page.contains("tls"), "{page}");
    // Browsers speak HTTP/2 over TLS, naming the host in `:authority`, not `Host`.
    let curl = |url: &str, extra: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-D",
                "-",
                "-o",
                "/dev/null",
                "--http2",
                "--max-time",
                "10",
                "--cacert",
            ])
            .arg(&ca)
            .args(extra)
            .arg(url)
            .output()
            .expect("curl (apt-get install curl)");
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    let port = server.addr.rsplit_once(':').unwrap().1;
    let head = curl(&format!("https://localhost:{port}/ui/campaigns"), &[]);
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("x-frame-options: deny"), "{head}");
    let head = curl(
        &format!("https://localhost:{port}/ui/campaigns"),
        &["-H", &format!("Host: attacker.example:{port}")],
    );
    assert!(head.starts_with("http/2 421"), "{head}");
}

#[test]
fn untrusting_plaintext_and_insecure_clients() {
    let (server, ca) = tls_server("tls-refusals");
    let s = server.url.as_str();

    // Without the CA: refused, saying it is the certificate and what to do.
    let out = camut(&["-s", s, "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate") && err.contains("--ca"), "{err}");
    // The same from the client crate with the system's roots.
    rt().block_on(async {
        let e = Client::connect_with(s, None, &TlsOptions::system_roots())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid peer certificate"), "{e}");
    });

    // --insecure: works, and says loudly what it gives up.
    let out = camut(&["-s", s, "--insecure", "list"]);
    assert!(out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WARN") && err.contains("--insecure"), "{err}");

    // A plaintext client against the TLS port: a clean refusal, no hang.
    let started = std::time::Instant::now();
    let out = camut(&["-s", &format!("http://{}", server.addr), "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(started.elapsed().as_secs() < 20);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("https://"), "{err}");
    assert!(
        wait_for(5, || server.log().contains("TLS handshake failed")),
        "{}",
        server.log()
    );
    // The server is unharmed and still answers those that trust it.
    let out = camut(&["-s", s, "--ca", ca.to_str().unwrap(), "list"]);
    assert!(out.status.success(), "{}", show(&out));
    // CAMUT_CA works as --ca does.
    let out = Command::new(camut_bin())
        .args(["-s", s, "list"])
        .env("CAMUT_CA", &ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn plaintext_beyond_loopback_needs_allow_plaintext() {
    let dir = std::env::temp_dir().join(format!("camut-plain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(camut_bin())
        .args(["server", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("beyond loopback) without TLS is refused")
            && err.contains("--allow-plaintext"),
        "{err}"
    );

    // Allowed: it starts, warns, and makes a token since it has none. It binds every
    // interface; the test talks to it on 127.0.0.1 only.
    let server = ServerProcess::start_with_args(
        "plain",
        None,
        &["--listen", "0.0.0.0:0", "--allow-plaintext"],
        &[],
    );
    let port = server.addr.rsplit_once(':').unwrap().1.to_string();
    let local = format!("127.0.0.1:{port}");
    assert!(
        wait_for(5, || server.log().contains("serving in plaintext")),
        "{}",
        server.log()
    );
    let token = server.generated_token();
    assert!(token.len() >= 32, "{token}");
    rt().block_on(async {
        let none = Client::connect(&local, None).await.unwrap();
        assert_eq!(
            none.list().await.unwrap_err().code(),
            Some(Code::Unauthenticated)
        );
        let with = Client::connect(&local, Some(&token)).await.unwrap();
        assert!(with.list().await.unwrap().is_empty());
    });
}

#[test]
fn a_certificate_from_a_private_ca_in_the_config_or_on_the_command_line() {
    let dir = std::env::temp_dir().join(format!("camut-tls-ca-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    certificate(&dir, "ca", None, "");
    certificate(&dir, "server", Some("ca"), "DNS:localhost,IP:127.0.0.1");
    let (cert, key, ca) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ca.pem"),
    );
    let ca_arg = ca.to_str().unwrap();

    // `[tls]` in camut.toml, with the CA the deployers hand to the drones: a campaign
    // runs on drones that trust that CA only.
    let target = TargetProcess::start();
    let config = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\nca = {:?}\n",
        cert.display().to_string(),
        key.display().to_string(),
        ca_arg
    );
    let server = ServerProcess::start("tls-config", Some(&config));
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let file = temp_file("pca.js", &control_campaign("pca", 1, 2, 3, "", &target.url));
    cli_workflow(&server, ca_arg, &file, "pca");
    assert_eq!(target.served(), 6);

    // --tls-cert/--tls-key: the same certificate from the command line.
    let flags = ServerProcess::start_with_args(
        "tls-flags",
        None,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let out = camut(&["-s", &flags.url, "--ca", ca_arg, "list"]);
    assert!(out.status.success(), "{}", show(&out));
    let out = camut(&["-s", &flags.url, "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let pem = std::fs::read_to_string(&ca).unwrap();
    assert_eq!(
        https_get(&flags.addr, "/healthz", &pem),
        (200, "ok\n".into())
    );

    // A key that is not the certificate's: the server says so and does not start.
    certificate(&dir, "other", Some("ca"), "DNS:localhost");
    let out = Command::new(camut_bin())
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .args(["--tls-cert", cert.to_str().unwrap(), "--tls-key"])
        .arg(dir.join("other.key"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("do not make a pair"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_drone_checks_the_certificate_unless_told_insecure() {
    let (server, ca) = tls_server("tls-drone");
    let drone = |extra: &[&str], log: &std::path::Path| {
        Command::new(camut_bin())
            .args([
                "drone",
                "--server",
                &server.url,
                "--token",
                "not-a-join-token",
            ])
            .args(["--id", "tls-drone"])
            .args(extra)
            .env_remove("CAMUT_CA")
            .env("CAMUT_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    };
    // Trusting nothing but the system's roots: it keeps retrying, saying why.
    let log = server.data_dir.join("drone-untrusting.log");
    let mut untrusting = drone(&[], &log);
    let said = wait_for(15, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("invalid peer certificate") && text.contains("--ca")
    });
    let _ = untrusting.kill();
    let _ = untrusting.wait();
    assert!(
        said,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // With --ca, or --insecure (warned), it reaches the server, which refuses the
    // bogus join token: the drone ends saying so.
    for (name, extra) in [
        ("ca", vec!["--ca", ca.to_str().unwrap()]),
        ("insecure", vec!["--insecure"]),
    ] {
        let log = server.data_dir.join(format!("drone-{name}.log"));
        let mut child = drone(&extra, &log);
        assert!(
            wait_for(15, || child.try_wait().unwrap().is_some()),
            "{name}: the drone goes on"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("unknown join token"), "{name}: {text}");
        assert_eq!(
            text.contains("--insecure: the server's certificate is not checked"),
            name == "insecure",
            "{name}: {text}"
        );
    }
}

#[test]
fn a_deployer_of_its_own_process_gives_its_drones_the_servers_ca() {
    let target = TargetProcess::start();
    let deployer = camut_integration::DeployerProcess::start("tls-apart");
    let server = ServerProcess::start_with_args(
        "tls-remote",
        Some(&format!(
            "[deployers.apart]\naddress = \"{}\"\n",
            deployer.url
        )),
        &["--tls-self-signed"],
        &[],
    );
    let ca = server.data_dir.join("tls/ca.pem");
    let source = control_campaign("apart", 2, 2, 3, "", &target.url)
        .replace("deployer: 'local'", "deployer: 'apart'");
    let file = temp_file("apart.js", &source);
    cli_workflow(&server, ca.to_str().unwrap(), &file, "apart");
    assert_eq!(
        target.served(),
        12,
        "the remote deployer's drones dialed https:// trusting the server's CA\n{}",
        server.log()
    );
}
