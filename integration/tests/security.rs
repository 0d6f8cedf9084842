//! The console against DNS rebinding and framing, and the API token rules, on a real
//! server process: a foreign `Host` is refused on a token-less server, posts are
//! checked against the configured origins, every console answer carries the security
//! headers, weak tokens are refused, generated ones work, and join tokens give no API
//! access.

use std::io::{Read, Write};
use std::process::Command;

use camut::Client;
use camut_integration::{
    camut_bin, control_campaign, pids_with, rt, show, wait_for, ServerProcess, TargetProcess,
};
use tonic::Code;

/// One raw HTTP/1.1 request to `addr` with the given headers: status, head, body.
fn raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// `application/x-www-form-urlencoded` of one campaign upload.
fn upload_form(source: &str) -> String {
    let enc: String = source
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("file=r.js&source={enc}")
}

fn campaigns(addr: &str) -> usize {
    rt().block_on(async {
        Client::connect(addr, None)
            .await
            .unwrap()
            .list()
            .await
            .unwrap()
            .len()
    })
}

#[test]
fn rebinding_requests_are_refused_on_a_token_less_server() {
    let server = ServerProcess::start("rebinding", None);
    let addr = server.addr.as_str();
    let port = addr.rsplit_once(':').unwrap().1;
    let evil_host = format!("attacker.example:{port}");
    let evil_origin = format!("http://{evil_host}");
    let form = upload_form(&control_campaign("rb", 1, 1, 1, "", "http://127.0.0.1:9"));
    let form_headers = |host: &str, origin: &str| {
        vec![
            ("Host", host.to_string()),
            ("Origin", origin.to_string()),
            ("Sec-Fetch-Site", "same-origin".to_string()),
            (
                "Content-Type",
                "application/x-www-form-urlencoded".to_string(),
            ),
        ]
    };
    let send = |headers: Vec<(&'static str, String)>, method: &str, path: &str, body: &str| {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        raw(addr, method, path, &pairs, body)
    };

    // The rebinding POST: Host and Origin agree, and name the attacker's site.
    let (status, head, body) = send(
        form_headers(&evil_host, &evil_origin),
        "POST",
        "/ui/campaigns",
        &form,
    );
    assert_eq!(status, 421, "{head}\n{body}");
    assert!(body.contains("not to Host attacker.example"), "{body}");
    assert!(head.contains("x-frame-options: deny"), "{head}");
    // And a spawn of a campaign of that name.
    let (status, _, _) = send(
        form_headers(&evil_host, &evil_origin),
        "POST",
        "/ui/campaigns/rb/spawn",
        "",
    );
    assert_eq!(status, 421);
    assert_eq!(campaigns(addr), 0, "nothing was created");

    // A GET with a foreign Host: refused too, so the page cannot be read.
    let (status, _, body) = send(
        vec![("Host", evil_host.clone())],
        "GET",
        "/ui/campaigns",
        "",
    );
    assert_eq!(status, 421, "{body}");

    // The right Host but another site's Origin: refused as cross-site.
    let (status, _, body) = send(
        form_headers(addr, "http://attacker.example"),
        "POST",
        "/ui/campaigns",
        &form,
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(campaigns(addr), 0, "nothing was created");

    // The console's own origin, as `localhost`: accepted (the checks are not blanket).
    let local = format!("localhost:{port}");
    let (status, head, _) = send(
        form_headers(&local, &format!("http://{local}")),
        "POST",
        "/ui/campaigns",
        &form,
    );
    assert_eq!(status, 303, "{head}");
    assert_eq!(campaigns(addr), 1);
}

#[test]
fn console_answers_carry_the_security_headers() {
    let server = ServerProcess::start("headers", Some("token = \"headers-test-token-16\"\n"));
    for path in [
        "/ui/campaigns",
        "/ui/login",
        "/ui/jobs",
        "/ui/assets/console.js",
        "/ui/assets/console.css",
        "/ui/nowhere",
    ] {
        let (status, head, _) = raw(&server.addr, "GET", path, &[("Host", &server.addr)], "");
        assert!(status > 0, "{path}");
        for header in [
            "x-frame-options: deny",
            "x-content-type-options: nosniff",
            "content-security-policy: default-src 'none'; script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(head.contains(header), "{path}: {header} missing in\n{head}");
        }
    }
}

#[test]
fn weak_tokens_are_refused_and_generated_ones_work() {
    for weak in [" ", "a", "fifteen-chars-x"] {
        let dir = std::env::temp_dir().join(format!("camut-weak-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("camut.toml");
        std::fs::write(&config, format!("token = {weak:?}\n")).unwrap();
        let out = Command::new(camut_bin())
            .args(["server", "--listen", "127.0.0.1:0", "-c"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{weak:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("at least 16 characters"), "{err}");
    }

    let server = ServerProcess::start_with_args("generated", None, &["--generate-token"], &[]);
    let token = server.generated_token();
    assert_eq!(token.len(), 48, "{token}");
    rt().block_on(async {
        let none = Client::connect(&server.addr, None).await.unwrap();
        assert_eq!(
            none.list().await.unwrap_err().code(),
            Some(Code::Unauthenticated)
        );
        let wrong = Client::connect(&server.addr, Some(&token[..47]))
            .await
            .unwrap();
        assert_eq!(
            wrong.list().await.unwrap_err().code(),
            Some(Code::Unauthenticated)
        );
        let right = Client::connect(&server.addr, Some(&token)).await.unwrap();
        assert!(right.list().await.unwrap().is_empty());
    });
    let out = server.camut(&["--token", &token, "list"]);
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn join_tokens_are_random_per_campaign_and_give_no_api_access() {
    const API: &str = "join-test-api-token-16";
    let target = TargetProcess::start();
    let server = ServerProcess::start("join", Some(&format!("token = \"{API}\"\n")));
    rt().block_on(async {
        let c = Client::connect(&server.addr, Some(API)).await.unwrap();
        let mut joins = Vec::new();
        for id in ["ja", "jb"] {
            c.create(
                &format!("{id}.js"),
                &control_campaign(id, 1, 1, 1, "", &target.url),
            )
            .await
            .unwrap();
            let spawn = c.spawn(id).await.unwrap();
            assert_eq!(
                c.wait_job(spawn.id).await.unwrap().state().label(),
                "complete"
            );
            let deploy = c.deploy(id).await.unwrap();
            assert_eq!(
                c.wait_job(deploy.id).await.unwrap().state().label(),
                "complete"
            );
            // The drone's command line holds its campaign's join token.
            let needle = format!("local-{id}-0");
            assert!(wait_for(10, || !pids_with(&["drone", &needle]).is_empty()));
            let pid = pids_with(&["drone", &needle])[0];
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).to_string())
                .collect();
            let i = args.iter().position(|a| a == "--token").unwrap();
            joins.push(args[i + 1].clone());
        }
        assert_ne!(joins[0], joins[1], "one join token per campaign");
        for join in &joins {
            assert_eq!(join.len(), 32, "128 random bits: {join}");
            assert_ne!(join, API);
            let drone_as_client = Client::connect(&server.addr, Some(join)).await.unwrap();
            let e = drone_as_client.list().await.unwrap_err();
            assert_eq!(e.code(), Some(Code::Unauthenticated), "{e}");
        }
        for id in ["ja", "jb"] {
            let kill = c.kill(id).await.unwrap();
            c.wait_job(kill.id).await.unwrap();
        }
    });
}
