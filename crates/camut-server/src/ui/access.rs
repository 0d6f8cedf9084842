//! Who may reach the console, and the headers every console answer carries.
//!
//! A browser page from any site can make the operator's browser send requests to a
//! loopback server; with DNS rebinding the page's own host name resolves to the
//! server's address, so that `Host` and `Origin` both name the attacker's site and
//! agree with each other. The console therefore answers only to the `Host` values it
//! is known by — its listen address, `localhost`, the configured `public_url` and
//! `allowed_hosts` — and accepts form posts only from the origins made of those,
//! whether or not the server has a token. Its pages forbid framing and sniffing and
//! carry a Content-Security-Policy that allows the console's own files only.

use std::net::SocketAddr;

use axum::http::{header, HeaderName, HeaderValue, Request};

/// The console's Content-Security-Policy: its own script and style sheet, the charts
/// inlined as SVG, posts and fetches to itself, no framing.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The security headers of every console answer.
pub(crate) fn security_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
    ]
}

/// The `Host` values the console answers to and the origins it accepts posts from.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Lower-case `host[:port]` values.
    hosts: Vec<String>,
    /// Lower-case `scheme://host[:port]` origins, default ports left out.
    origins: Vec<String>,
}

/// `host:port` of an address, IPv6 in brackets.
fn authority(addr: SocketAddr) -> String {
    addr.to_string()
}

/// The default port of a scheme.
fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

/// `host` without `:port` when the port is the scheme's default.
fn without_default_port(host: &str, scheme: &str) -> String {
    let suffix = format!(":{}", default_port(scheme));
    host.strip_suffix(&suffix).unwrap_or(host).to_string()
}

impl Access {
    /// The console of a server bound to `bound`, served over TLS or not, known to its
    /// users as `public_url` (when set) and by the `extra_hosts` (`host[:port]`).
    pub fn new(
        bound: SocketAddr,
        tls: bool,
        public_url: Option<&str>,
        extra_hosts: &[String],
    ) -> Access {
        let scheme = if tls { "https" } else { "http" };
        let port = bound.port();
        let mut access = Access::default();
        let mut local = vec![format!("localhost:{port}")];
        if bound.ip().is_unspecified() {
            // Every interface: the loopback addresses stand for "this machine"; other
            // names come from public_url and allowed_hosts.
            local.push(format!("127.0.0.1:{port}"));
            local.push(format!("[::1]:{port}"));
        } else {
            local.push(authority(bound));
        }
        for host in local.iter().chain(extra_hosts) {
            access.add(scheme, host);
        }
        if let Some((scheme, rest)) = public_url.and_then(|u| u.split_once("://")) {
            let host = rest.split('/').next().unwrap_or_default();
            if !host.is_empty() {
                access.add(&scheme.to_ascii_lowercase(), host);
            }
        }
        access
    }

    fn add(&mut self, scheme: &str, host: &str) {
        let host = host.trim().to_ascii_lowercase();
        let bare = without_default_port(&host, scheme);
        let has_port = match bare.rsplit_once(']') {
            Some((_, after)) => after.starts_with(':'),
            None => bare.contains(':'),
        };
        let mut forms = vec![host.clone(), bare.clone()];
        if !has_port {
            forms.push(format!("{bare}:{}", default_port(scheme)));
        }
        for h in forms {
            if !h.is_empty() && !self.hosts.contains(&h) {
                self.hosts.push(h);
            }
        }
        let origin = format!("{scheme}://{bare}");
        if !self.origins.contains(&origin) {
            self.origins.push(origin);
        }
    }

    /// The `Host` values allowed, for messages.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The host a request names: its `Host` header, or the authority of an HTTP/2
    /// request.
    pub fn requested_host<B>(req: &Request<B>) -> Option<String> {
        req.headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
    }

    /// Whether a request names one of the console's hosts.
    pub fn allows_host<B>(&self, req: &Request<B>) -> bool {
        Self::requested_host(req)
            .is_some_and(|h| self.hosts.contains(&h.trim().to_ascii_lowercase()))
    }

    /// Whether a post comes from another site: an `Origin` that is not one of the
    /// console's, or a browser saying so in `Sec-Fetch-Site`. A request with neither
    /// comes from a program, not a page (the `Host` check still applies to it).
    pub fn cross_site<B>(&self, req: &Request<B>) -> bool {
        let h = req.headers();
        if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            if !matches!(site, "same-origin" | "none") {
                return true;
            }
        }
        match h.get(header::ORIGIN).map(|v| v.to_str()) {
            Some(Ok(origin)) => !self
                .origins
                .contains(&origin.trim().trim_end_matches('/').to_ascii_lowercase()),
            Some(Err(_)) => true,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method("POST").uri("/ui/x");
        for (k, v) in pairs {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn hosts_are_the_listen_address_localhost_and_public_url() {
        let a = Access::new("127.0.0.1:7200".parse().unwrap(), false, None, &[]);
        for ok in ["127.0.0.1:7200", "localhost:7200", "LOCALHOST:7200"] {
            assert!(a.allows_host(&req(&[("host", ok)])), "{ok}");
        }
        for bad in ["attacker.example:7200", "127.0.0.1:7201", "localhost", ""] {
            assert!(!a.allows_host(&req(&[("host", bad)])), "{bad}");
        }
        assert!(!a.allows_host(&req(&[])), "no Host at all");
        let h2 = Request::builder()
            .uri("https://localhost:7200/ui")
            .body(())
            .unwrap();
        assert!(a.allows_host(&h2), "an HTTP/2 authority");

        let a = Access::new(
            "0.0.0.0:443".parse().unwrap(),
            true,
            Some("https://camut.example.com/"),
            &["proxy.internal:8443".into()],
        );
        for ok in [
            "camut.example.com",
            "camut.example.com:443",
            "127.0.0.1:443",
            "localhost",
            "proxy.internal:8443",
        ] {
            assert!(a.allows_host(&req(&[("host", ok)])), "{ok}");
        }
        assert!(!a.allows_host(&req(&[("host", "0.0.0.0:443")])));
        assert!(!a.allows_host(&req(&[("host", "10.1.2.3:443")])));
    }

    #[test]
    fn origins_are_compared_with_the_configured_ones_never_with_host() {
        let a = Access::new(
            "127.0.0.1:7200".parse().unwrap(),
            false,
            Some("https://camut.example.com"),
            &[],
        );
        assert!(!a.cross_site(&req(&[("host", "127.0.0.1:7200")])));
        for ok in [
            "http://127.0.0.1:7200",
            "http://localhost:7200",
            "https://camut.example.com",
        ] {
            assert!(!a.cross_site(&req(&[("origin", ok)])), "{ok}");
        }
        // A rebinding page: Host and Origin agree, and name the attacker.
        assert!(a.cross_site(&req(&[
            ("host", "attacker.example:7200"),
            ("origin", "http://attacker.example:7200"),
            ("sec-fetch-site", "same-origin"),
        ])));
        for bad in [
            "http://evil.example",
            "https://127.0.0.1:7200",
            "http://camut.example.com",
            "null",
        ] {
            assert!(a.cross_site(&req(&[("origin", bad)])), "{bad}");
        }
        assert!(a.cross_site(&req(&[("sec-fetch-site", "cross-site")])));
        assert!(!a.cross_site(&req(&[("sec-fetch-site", "same-origin")])));
    }
}
