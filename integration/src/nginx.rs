//! A real nginx (Debian's `nginx-light`) serving HTTPS on loopback ports, with
//! certificates made by `openssl` for the test: a CA and a server certificate it signs,
//! a certificate for another name, one from an unknown CA, and a client certificate for
//! mutual TLS. Each server counts its requests in its own access log. Stopped on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cloud::free_port;
use crate::wait_for;

/// An nginx with five HTTPS servers.
pub struct Nginx {
    dir: PathBuf,
    /// Certificate signed by `ca_pem`, valid for localhost and 127.0.0.1.
    pub valid_port: u16,
    /// Certificate signed by `ca_pem`, valid only for `other.test`.
    pub mismatch_port: u16,
    /// Certificate from a CA the client does not know.
    pub unknown_ca_port: u16,
    /// Like `valid_port`, but asks for a client certificate (`ssl_verify_client on`).
    pub mtls_port: u16,
    /// Certificate signed by `ca_pem` for localhost and 127.0.0.1, expired in 2020.
    pub expired_port: u16,
    /// The test CA, PEM.
    pub ca_pem: String,
    /// A client certificate signed by the client CA nginx trusts, PEM.
    pub client_cert_pem: String,
    /// Its key, PEM.
    pub client_key_pem: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl req` arguments for a new P-256 key, unencrypted, written to the file that
/// follows them.
const NEW_KEY: &[&str] = &[
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
];

/// Makes `name.key` and `name.pem` in `dir`, signed by `ca` (the name of a CA made
/// before in `dir`) for the subject alternative names `san` (`DNS:localhost,IP:…`), or
/// a self-signed CA when `ca` is None.
pub fn certificate(dir: &Path, name: &str, ca: Option<&str>, san: &str) {
    let key = format!("{name}.key");
    let pem = format!("{name}.pem");
    match ca {
        None => openssl(
            dir,
            &[
                &["req", "-x509"],
                NEW_KEY,
                &[
                    &key,
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={name}"),
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        ),
        Some(ca) => {
            let (csr, ext) = request(dir, name, san);
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ],
            );
        }
    }
}

/// Makes `name.key` and the signing request `name.csr` for the subject alternative
/// names `san`, with the extensions file `name.ext`; their file names.
fn request(dir: &Path, name: &str, san: &str) -> (String, String) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            &["req"],
            NEW_KEY,
            &[&key, "-out", &csr, "-subj", &format!("/CN={name}")],
        ]
        .concat(),
    );
    (csr, ext)
}

/// Makes `name.key` and `name.pem` in `dir`, signed by the CA `ca` for `san`, valid
/// only on 1 January 2020: expired. (`openssl x509 -req` cannot date a certificate
/// back; `openssl ca` can.)
pub fn expired_certificate(dir: &Path, name: &str, ca: &str, san: &str) {
    let (csr, ext) = request(dir, name, san);
    let db = format!("{name}-index.txt");
    let serial = format!("{name}-serial");
    let conf = format!("{name}-ca.cnf");
    std::fs::write(dir.join(&db), "").unwrap();
    std::fs::write(dir.join(&serial), "01\n").unwrap();
    std::fs::write(
        dir.join(&conf),
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {db}\nnew_certs_dir = .\nserial = {serial}\n\
             default_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n"
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-notext",
            "-config",
            &conf,
            "-cert",
            &format!("{ca}.pem"),
            "-keyfile",
            &format!("{ca}.key"),
            "-in",
            &csr,
            "-out",
            &format!("{name}.pem"),
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-extfile",
            &ext,
        ],
    );
}

impl Nginx {
    /// Makes the certificates and the config in a fresh directory named after `name`,
    /// starts nginx and waits until its five ports accept connections.
    pub fn start(name: &str) -> Nginx {
        let dir = std::env::temp_dir().join(format!("camut-nginx-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        certificate(&dir, "ca", None, "");
        certificate(&dir, "server", Some("ca"), "DNS:localhost,IP:127.0.0.1");
        certificate(&dir, "other", Some("ca"), "DNS:other.test");
        certificate(&dir, "stranger-ca", None, "");
        certificate(
            &dir,
            "stranger",
            Some("stranger-ca"),
            "DNS:localhost,IP:127.0.0.1",
        );
        certificate(&dir, "client-ca", None, "");
        certificate(&dir, "client", Some("client-ca"), "DNS:client.test");
        expired_certificate(&dir, "expired", "ca", "DNS:localhost,IP:127.0.0.1");
        let ports: [u16; 5] = std::array::from_fn(|_| free_port());
        let d = dir.display();
        let server = |port: u16, cert: &str, extra: &str| {
            format!(
                "server {{\n listen 127.0.0.1:{port} ssl;\n ssl_certificate {d}/{cert}.pem;\n \
                 ssl_certificate_key {d}/{cert}.key;\n ssl_protocols TLSv1.2 TLSv1.3;\n {extra}\n \
                 access_log {d}/access-{port}.log;\n keepalive_requests 100000;\n \
                 location / {{ return 200 \"hello from nginx\\n\"; }}\n}}\n"
            )
        };
        let config = format!(
            "daemon on;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n client_body_temp_path {d}/tmp/body;\n proxy_temp_path {d}/tmp/proxy;\n \
             fastcgi_temp_path {d}/tmp/fastcgi;\n uwsgi_temp_path {d}/tmp/uwsgi;\n \
             scgi_temp_path {d}/tmp/scgi;\n default_type text/plain;\n{}{}{}{}{}}}\n",
            server(ports[0], "server", ""),
            server(ports[1], "other", ""),
            server(ports[2], "stranger", ""),
            server(
                ports[3],
                "server",
                &format!("ssl_verify_client on;\n ssl_client_certificate {d}/client-ca.pem;"),
            ),
            server(ports[4], "expired", ""),
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let out = Command::new("nginx")
            .args([
                "-p",
                &dir.to_string_lossy(),
                "-c",
                "nginx.conf",
                "-e",
                "error.log",
            ])
            .output()
            .expect("nginx (apt-get install nginx-light)");
        assert!(
            out.status.success(),
            "nginx did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
        let nginx = Nginx {
            valid_port: ports[0],
            mismatch_port: ports[1],
            unknown_ca_port: ports[2],
            mtls_port: ports[3],
            expired_port: ports[4],
            ca_pem: read("ca.pem"),
            client_cert_pem: read("client.pem"),
            client_key_pem: read("client.key"),
            dir,
        };
        for port in ports {
            assert!(
                wait_for(10, || std::net::TcpStream::connect(("127.0.0.1", port))
                    .is_ok()),
                "nginx does not listen on {port}"
            );
        }
        nginx
    }

    /// Requests the server on `port` logged (its access log, one line per request).
    pub fn requests(&self, port: u16) -> usize {
        std::fs::read_to_string(self.dir.join(format!("access-{port}.log")))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// Status codes of the requests logged by the server on `port`.
    pub fn statuses(&self, port: u16) -> Vec<u16> {
        std::fs::read_to_string(self.dir.join(format!("access-{port}.log")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                // combined format: … "GET / HTTP/1.1" 200 17 …
                let after = l.split('"').nth(2)?;
                after.split_whitespace().next()?.parse().ok()
            })
            .collect()
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("nginx.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on the nginx master this test started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            wait_for(10, || unsafe { libc::kill(pid, 0) } != 0);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
