//! A VU's cookie jar (RFC 6265): cookies from `Set-Cookie`, sent back in `Cookie` on the
//! calls whose URL matches their domain, path and `Secure` flag, until they expire.

use std::time::{Duration, SystemTime};

/// Most cookies a jar keeps; the oldest go first beyond it.
pub(crate) const MAX_COOKIES: usize = 300;
/// Longest cookie (name, value and attributes) accepted, as browsers do.
const MAX_COOKIE_LEN: usize = 4096;

/// One stored cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cookie {
    pub name: String,
    pub value: String,
    /// Lowercase domain, without a leading dot.
    pub domain: String,
    /// Only for exactly `domain` (no `Domain` attribute was given).
    pub host_only: bool,
    pub path: String,
    /// None: a session cookie (kept for the whole run).
    pub expires: Option<SystemTime>,
    pub secure: bool,
    pub http_only: bool,
}

/// The URL parts cookies are matched against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Site<'a> {
    pub https: bool,
    /// Lowercase host, without brackets or port.
    pub host: &'a str,
    pub path: &'a str,
}

/// The cookies of one VU.
#[derive(Debug, Default)]
pub(crate) struct CookieJar {
    cookies: Vec<Cookie>,
}

impl CookieJar {
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Forgets every cookie.
    pub fn clear(&mut self) {
        self.cookies.clear();
    }

    /// Stores the cookie of one `Set-Cookie` header received from `site`; returns
    /// whether it was accepted.
    pub fn store(&mut self, site: Site<'_>, header: &str, now: SystemTime) -> bool {
        let Some(c) = parse_set_cookie(site, header, now) else {
            return false;
        };
        self.cookies
            .retain(|o| !(o.name == c.name && o.domain == c.domain && o.path == c.path));
        if c.expires.is_some_and(|e| e <= now) {
            return true; // an expiry in the past deletes the cookie
        }
        if self.cookies.len() >= MAX_COOKIES {
            self.cookies.remove(0);
        }
        self.cookies.push(c);
        true
    }

    /// The `Cookie` header value for a call to `site`, if any cookie matches.
    pub fn header(&mut self, site: Site<'_>, now: SystemTime) -> Option<String> {
        self.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
        let mut matching: Vec<&Cookie> = self.cookies.iter().filter(|c| matches(c, site)).collect();
        if matching.is_empty() {
            return None;
        }
        // Longer paths first (RFC 6265 §5.4); the sort is stable, so older first otherwise.
        matching.sort_by_key(|c| std::cmp::Reverse(c.path.len()));
        let mut out = String::new();
        for c in matching {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&c.name);
            out.push('=');
            out.push_str(&c.value);
        }
        Some(out)
    }

    /// The cookies that would be sent to `site`, as (name, value).
    pub fn for_site(&mut self, site: Site<'_>, now: SystemTime) -> Vec<(String, String)> {
        self.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
        self.cookies
            .iter()
            .filter(|c| matches(c, site))
            .map(|c| (c.name.clone(), c.value.clone()))
            .collect()
    }

    /// Every cookie still valid.
    pub fn all(&mut self, now: SystemTime) -> &[Cookie] {
        self.cookies.retain(|c| c.expires.is_none_or(|e| e > now));
        &self.cookies
    }
}

fn matches(c: &Cookie, site: Site<'_>) -> bool {
    (site.https || !c.secure) && domain_matches(c, site.host) && path_matches(&c.path, site.path)
}

fn domain_matches(c: &Cookie, host: &str) -> bool {
    if c.host_only {
        return host == c.domain;
    }
    host == c.domain
        || (host.len() > c.domain.len()
            && host.ends_with(&c.domain)
            && host.as_bytes()[host.len() - c.domain.len() - 1] == b'.'
            && host.parse::<std::net::IpAddr>().is_err())
}

fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

/// The default cookie path: the request path up to its last `/` (RFC 6265 §5.1.4).
fn default_path(request_path: &str) -> String {
    let path = request_path.split('?').next().unwrap_or("");
    if !path.starts_with('/') {
        return "/".into();
    }
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_string(),
    }
}

/// Parses one `Set-Cookie` header received from `site` (RFC 6265 §5.2–5.3).
fn parse_set_cookie(site: Site<'_>, header: &str, now: SystemTime) -> Option<Cookie> {
    if header.len() > MAX_COOKIE_LEN {
        return None;
    }
    let mut parts = header.split(';');
    let (name, value) = parts.next()?.split_once('=')?;
    let (name, value) = (name.trim(), value.trim());
    if name.is_empty() {
        return None;
    }
    let mut c = Cookie {
        name: name.to_string(),
        value: value.to_string(),
        domain: site.host.to_string(),
        host_only: true,
        path: default_path(site.path),
        expires: None,
        secure: false,
        http_only: false,
    };
    let mut max_age: Option<Option<SystemTime>> = None;
    for attr in parts {
        let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "expires" => {
                if let Ok(t) = httpdate::parse_http_date(v) {
                    c.expires = Some(t);
                }
            }
            "max-age" => {
                if let Ok(secs) = v.parse::<i64>() {
                    max_age = Some(if secs <= 0 {
                        Some(SystemTime::UNIX_EPOCH)
                    } else {
                        Some(now + Duration::from_secs(secs as u64))
                    });
                }
            }
            "domain" if !v.is_empty() => {
                let d = v.trim_start_matches('.').to_ascii_lowercase();
                let suffix_of_host = site.host == d
                    || (site.host.ends_with(&d)
                        && site.host.as_bytes()[site.host.len() - d.len() - 1] == b'.');
                // A domain the host is not within, or a bare top-level name: refused.
                if !suffix_of_host || !d.contains('.') && d != site.host {
                    return None;
                }
                c.domain = d;
                c.host_only = false;
            }
            "path" if v.starts_with('/') => c.path = v.to_string(),
            "secure" => c.secure = true,
            "httponly" => c.http_only = true,
            _ => {}
        }
    }
    if let Some(m) = max_age {
        c.expires = m; // Max-Age wins over Expires
    }
    if c.secure && !site.https {
        return None; // a plain-HTTP site may not set a Secure cookie
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site<'a>(host: &'a str, path: &'a str) -> Site<'a> {
        Site {
            https: false,
            host,
            path,
        }
    }

    #[test]
    fn session_cookie_round_trip_and_replacement() {
        let now = SystemTime::now();
        let mut jar = CookieJar::default();
        assert!(jar.store(site("a.test", "/login"), "sid=1; HttpOnly", now));
        assert_eq!(
            jar.header(site("a.test", "/x"), now).as_deref(),
            Some("sid=1")
        );
        assert!(jar.store(site("a.test", "/login"), "sid=2", now));
        assert_eq!(
            jar.header(site("a.test", "/"), now).as_deref(),
            Some("sid=2")
        );
        assert_eq!(jar.header(site("b.test", "/"), now), None, "host-only");
        assert_eq!(jar.header(site("x.a.test", "/"), now), None, "host-only");
    }

    #[test]
    fn domain_path_secure_and_expiry_rules() {
        let now = SystemTime::now();
        let mut jar = CookieJar::default();
        let s = site("www.a.test", "/shop/cart");
        assert!(jar.store(s, "d=1; Domain=.a.test; Path=/", now));
        assert!(
            !jar.store(s, "evil=1; Domain=b.test", now),
            "foreign domain refused"
        );
        assert!(
            !jar.store(s, "tld=1; Domain=test", now),
            "top-level domain refused"
        );
        assert!(jar.store(s, "p=1", now), "default path /shop");
        assert!(jar.store(s, "old=1; Max-Age=1", now));
        assert!(jar.store(s, "gone=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT", now));
        assert!(!jar.store(s, "sec=1; Secure", now), "Secure needs https");
        let https = Site {
            https: true,
            host: "www.a.test",
            path: "/shop",
        };
        assert!(jar.store(https, "sec=1; Secure", now));
        assert_eq!(
            jar.header(site("api.a.test", "/"), now).as_deref(),
            Some("d=1"),
            "domain cookie on a sibling host"
        );
        assert_eq!(
            jar.header(site("www.a.test", "/shop/x"), now).as_deref(),
            Some("p=1; old=1; d=1"),
            "longest path first; no Secure on http; expired gone"
        );
        assert_eq!(
            jar.header(site("www.a.test", "/shopping"), now).as_deref(),
            Some("d=1"),
            "/shop does not match /shopping"
        );
        assert_eq!(
            jar.header(https, now).as_deref(),
            Some("p=1; old=1; d=1; sec=1")
        );
        let later = now + Duration::from_secs(2);
        assert_eq!(
            jar.header(site("www.a.test", "/shop/x"), later).as_deref(),
            Some("p=1; d=1"),
            "Max-Age=1 expired"
        );
        assert!(jar.store(s, "d=; Domain=a.test; Path=/; Max-Age=0", later));
        assert_eq!(jar.header(site("api.a.test", "/"), later), None, "deleted");
    }
}
