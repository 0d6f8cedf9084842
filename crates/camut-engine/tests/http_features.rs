//! `camut.http` features against the built-in target (in process): HTTPS, cookies,
//! redirects, compression, Basic auth, bodies, and the request object with abort().
//! Every count is checked against what the target served.

mod common;

use std::io::{Read, Write};

use common::Env;

fn errors(r: &camut_engine::RunResult) -> Vec<(String, u64)> {
    r.summary
        .error_messages
        .iter()
        .map(|e| (e.message.clone(), e.count))
        .collect()
}

#[test]
fn https_with_the_target_certificate_pools_and_measures_handshakes() {
    let env = Env::new_tls();
    let src = format!(
        "exports.campaign = {{ id: 't', users: 4, iterations: 5, tls: {{ ca: {} }} }};\n\
         exports.test = function (done) {{\n\
           camut.http(camut.env.TARGET + '/?bytes=10', function (err, data, res) {{\n\
             if (err) throw err;\n\
             if (data !== 'xxxxxxxxxx' || res.url !== camut.env.TARGET + '/?bytes=10') throw new Error('bad ' + data + ' ' + res.url);\n\
             done();\n\
           }});\n\
         }};\n",
        env.ca_js()
    );
    let (r, _) = env.run(&src, 1);
    let s = &r.summary;
    assert_eq!((s.requests, s.errors), (20, 0), "{:?}", errors(&r));
    assert_eq!(env.target.served(), 20);
    assert_eq!(s.connections_opened, 4, "one pooled connection per VU");
    assert_eq!(s.metrics["http.tls_handshake_time"].count, 4);
    // Socket bytes: the handshake's share goes to the first call of each connection.
    let rx = &s.metrics["http.received"];
    assert!(rx.max > rx.min + 200.0, "{rx:?}");
    let tx = &s.metrics["http.transmitted"];
    assert!(tx.max > tx.min + 100.0, "{tx:?}");
}

#[test]
fn without_the_ca_the_handshake_fails_as_a_counted_error() {
    let env = Env::new_tls();
    let src = "exports.campaign = { id: 't', users: 2, iterations: 2 };\n\
               exports.test = function (done) {\n\
                 camut.http(camut.env.TARGET + '/', function (err) {\n\
                   if (!err) throw new Error('no error');\n\
                   done();\n\
                 });\n\
               };\n";
    let (r, _) = env.run(src, 1);
    assert_eq!((r.summary.requests, r.summary.errors), (4, 4));
    assert_eq!(r.summary.iterations.completed, 4);
    let e = errors(&r);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].0.starts_with("TLS handshake failed: unknown issuer"),
        "{e:?}"
    );
    assert_eq!(env.target.served(), 0);
}

#[test]
fn session_cookie_from_login_is_sent_per_vu_across_iterations() {
    let env = Env::new_tls();
    let src = format!(
        "exports.campaign = {{ id: 't', users: 3, iterations: 4, tls: {{ ca: {} }} }};\n\
         exports.test = async function () {{\n\
           if (camut.vu.iteration === 0) {{\n\
             var login = await camut.http({{ url: camut.env.TARGET + '/login', method: 'POST', form: {{ user: 'u' + camut.vu.id, password: 'secret' }} }});\n\
             context = {{ sid: login.data.trim().split(' ')[1] }};\n\
           }}\n\
           var r = await camut.http(camut.env.TARGET + '/session');\n\
           if (r.data !== 'session ' + context.sid + '\\n') throw new Error('VU ' + camut.vu.id + ' got ' + r.data);\n\
           var jar = camut.cookies.get(camut.env.TARGET + '/');\n\
           if (jar.sid !== context.sid) throw new Error('jar ' + JSON.stringify(jar));\n\
         }};\n",
        env.ca_js()
    );
    let (r, _) = env.run(&src, 2);
    let s = &r.summary;
    assert_eq!(s.iterations.completed, 12, "{:?}", errors(&r));
    assert_eq!((s.requests, s.errors), (15, 0));
    assert_eq!(env.target.served_path("/login"), 3);
    assert_eq!(env.target.served_path("/session"), 12);
}

#[test]
fn cookies_false_keeps_no_jar() {
    let env = Env::new();
    let src = "exports.campaign = { id: 't', users: 1, iterations: 2, cookies: false };\n\
               exports.test = async function () {\n\
                 await camut.http({ url: camut.env.TARGET + '/login', method: 'POST', form: { password: 'secret' } });\n\
                 await camut.http(camut.env.TARGET + '/session');\n\
               };\n";
    let (r, _) = env.run(src, 1);
    assert_eq!((r.summary.requests, r.summary.errors), (4, 2));
    assert_eq!(r.summary.iterations.failed, 2);
    assert_eq!(
        errors(&r),
        vec![
            ("HTTP 401".to_string(), 2),
            ("HTTP 401 (GET /session)".to_string(), 2)
        ],
        "the rejected iteration, and the call"
    );
    assert_eq!(env.target.served_path("/session"), 2);
    assert_eq!(env.target.served_path("/login"), 2);
}

#[test]
fn cookie_paths_and_expiry_are_honoured() {
    let env = Env::new();
    let set = "/cookies/raw?c=a%3D1%3B%20Path%3D%2Fcookies&c=b%3D2%3B%20Path%3D%2Fother\
               &c=t%3D3%3B%20Max-Age%3D1&c=g%3D4%3B%20Expires%3DThu%2C%2001%20Jan%201970%2000%3A00%3A00%20GMT";
    let src = format!(
        "exports.campaign = {{ id: 't', users: 1, iterations: 1 }};\n\
         exports.test = function (done) {{\n\
           var T = camut.env.TARGET;\n\
           camut.http(T + '{set}', function (err) {{\n\
             if (err) throw err;\n\
             camut.http(T + '/cookies', function (err, first) {{\n\
               if (first !== 'a=1; t=3') throw new Error('first: ' + first);\n\
               setTimeout(function () {{\n\
                 camut.http(T + '/cookies', function (err, later) {{\n\
                   if (later !== 'a=1') throw new Error('after Max-Age: ' + later);\n\
                   camut.cookies.clear();\n\
                   camut.cookies.set(T + '/', 'm=5; Path=/');\n\
                   camut.http(T + '/cookies', function (err, last) {{\n\
                     if (last !== 'm=5') throw new Error('after clear/set: ' + last);\n\
                     done();\n\
                   }});\n\
                 }});\n\
               }}, 1100);\n\
             }});\n\
           }});\n\
         }};\n"
    );
    let (r, _) = env.run(&src, 1);
    assert_eq!(r.summary.iterations.completed, 1, "{:?}", errors(&r));
    assert_eq!((r.summary.requests, r.summary.errors), (4, 0));
    assert_eq!(env.target.served_path("/cookies"), 3);
}

#[test]
fn a_three_hop_redirect_chain_counts_each_hop() {
    let env = Env::new_tls();
    let src = format!(
        "exports.campaign = {{ id: 't', users: 2, iterations: 3, followRedirects: 3, tls: {{ ca: {} }} }};\n\
         exports.test = async function () {{\n\
           var r = await camut.http(camut.env.TARGET + '/redirect/3');\n\
           if (r.response.statusCode !== 200 || r.response.url !== camut.env.TARGET + '/redirect/0') throw new Error(r.response.url);\n\
           var p = await camut.http({{ url: camut.env.TARGET + '/redirect/1?status=303', method: 'POST', body: 'x', followRedirects: 1 }});\n\
           if (p.data !== 'redirects done\\n') throw new Error(p.data);\n\
           var no = await camut.http({{ url: camut.env.TARGET + '/redirect/1', followRedirects: 0 }});\n\
           if (no.response.statusCode !== 302) throw new Error('not followed: ' + no.response.statusCode);\n\
         }};\n",
        env.ca_js()
    );
    let (r, _) = env.run(&src, 1);
    let s = &r.summary;
    assert_eq!(s.iterations.completed, 6, "{:?}", errors(&r));
    // Per iteration: 4 hops, 2 hops, 1 call.
    assert_eq!((s.requests, s.errors), (6 * 7, 0));
    assert_eq!(env.target.served(), 42);
    for (path, n) in [
        ("/redirect/3", 6),
        ("/redirect/2", 6),
        ("/redirect/1", 18),
        ("/redirect/0", 12),
    ] {
        assert_eq!(env.target.served_path(path), n, "{path}");
    }
    let ops: Vec<(&str, u64)> = s
        .operations
        .iter()
        .map(|o| (o.operation.as_str(), o.requests))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("GET /redirect/0", 12),
            ("GET /redirect/1", 12),
            ("GET /redirect/2", 6),
            ("GET /redirect/3", 6),
            ("POST /redirect/1", 6),
        ],
        "each hop its own request; the 303 after a POST became a GET"
    );
}

/// The bytes of one keep-alive response to `GET path`, read off a raw socket.
fn raw_response_len(addr: &str, path: &str, extra: &str) -> usize {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\n{extra}\r\n").unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            if raw.len() >= end + 4 + len {
                return end + 4 + len;
            }
        }
    }
}

#[test]
fn gzip_bodies_are_decoded_and_the_compressed_bytes_counted() {
    let env = Env::new();
    let addr = env.target.addr.to_string();
    let wire = raw_response_len(
        &addr,
        "/gzip?bytes=20000",
        "accept-encoding: gzip, deflate, br\r\n",
    );
    let src = "exports.campaign = { id: 't', users: 2, iterations: 3, compressed: true };\n\
               exports.test = function (done) {\n\
                 camut.http(camut.env.TARGET + '/gzip?bytes=20000', function (err, data, res) {\n\
                   if (err) throw err;\n\
                   if (data.length !== 20000 || data.slice(0, 16) !== 'camut gzip body\\n') throw new Error('decoded ' + data.length);\n\
                   if (Number(res.headers['content-length']) >= 20000) throw new Error('not compressed');\n\
                   done();\n\
                 });\n\
               };\n";
    let (r, _) = env.run(src, 1);
    let s = &r.summary;
    assert_eq!((s.requests, s.errors), (6, 0), "{:?}", errors(&r));
    assert_eq!(env.target.served_path("/gzip"), 7);
    let rx = &s.metrics["http.received"];
    assert_eq!(
        (rx.min, rx.max),
        (wire as f64, wire as f64),
        "the compressed bytes on the wire"
    );
    assert!(wire < 2000, "{wire}");
}

#[test]
fn basic_auth_bodies_headers_and_bytes() {
    let env = Env::new();
    let src = "exports.campaign = { id: 't', users: 1, iterations: 1 };\n\
               exports.test = async function () {\n\
                 var T = camut.env.TARGET;\n\
                 var ok = await camut.http({ url: T + '/basic-auth/alice/s3cret', auth: 'alice:s3cret' });\n\
                 if (ok.data !== 'authenticated\\n') throw new Error(ok.data);\n\
                 try { await camut.http({ url: T + '/basic-auth/alice/s3cret', auth: 'alice:wrong' }); throw new Error('accepted'); }\n\
                 catch (e) { if (e.statusCode !== 401) throw e; }\n\
                 var bin = await camut.http({ url: T + '/echo', method: 'POST', body: new Uint8Array([0, 1, 254, 255]), responseType: 'bytes' });\n\
                 if (!(bin.data instanceof Uint8Array) || bin.data.length !== 4 || bin.data[2] !== 254) throw new Error('bytes ' + bin.data);\n\
                 var ab = await camut.http({ url: T + '/echo', method: 'PUT', body: new Uint8Array([65, 66]).buffer });\n\
                 if (ab.data !== 'AB' || ab.response.headers['x-method'] !== 'PUT') throw new Error('buffer ' + ab.data);\n\
                 var js = await camut.http({ url: T + '/echo', method: 'POST', body: { a: [1, 2] } });\n\
                 if (js.data !== '{\"a\":[1,2]}' || js.response.headers['content-type'] !== 'application/json') throw new Error('json ' + js.data);\n\
                 var f = await camut.http({ url: T + '/echo', method: 'POST', form: { q: 'a b&c', n: 1 } });\n\
                 if (f.data !== 'q=a+b%26c&n=1' || f.response.headers['content-type'] !== 'application/x-www-form-urlencoded') throw new Error('form ' + f.data);\n\
                 var h = await camut.http({ url: T + '/headers', headers: { 'x-multi': ['one', 'two'] } });\n\
                 var multi = JSON.parse(h.data)['x-multi'];\n\
                 if (multi.join() !== 'one,two') throw new Error('headers ' + h.data);\n\
               };\n";
    let (r, _) = env.run(src, 1);
    let s = &r.summary;
    assert_eq!(s.iterations.completed, 1, "{:?}", errors(&r));
    assert_eq!((s.requests, s.errors), (7, 1));
    assert_eq!(
        errors(&r),
        vec![("HTTP 401 (GET /basic-auth/alice/s3cret)".to_string(), 1)]
    );
    assert_eq!(env.target.served_path("/basic-auth/alice/s3cret"), 2);
    assert_eq!(env.target.served_path("/echo"), 4);
}

#[test]
fn abort_ends_a_call_with_a_counted_error() {
    let env = Env::new();
    let src = "exports.campaign = { id: 't', users: 3, iterations: 2 };\n\
               exports.test = function (done) {\n\
                 var req = new camut.http({ url: camut.env.TARGET + '/?delay_ms=5000' }, function (err, data) {\n\
                   if (!err || err.message !== 'aborted' || data !== undefined) throw new Error('expected aborted, got ' + err);\n\
                   done();\n\
                 });\n\
                 if (typeof req.callId !== 'number' || typeof req.abort !== 'function') throw new Error('request object');\n\
                 setTimeout(function () { req.abort(); req.abort(); }, 20);\n\
               };\n";
    let started = std::time::Instant::now();
    let (r, _) = env.run(src, 1);
    let s = &r.summary;
    assert_eq!(s.iterations.completed, 6, "{:?}", errors(&r));
    assert_eq!((s.requests, s.errors), (6, 6));
    assert_eq!(errors(&r), vec![("aborted".to_string(), 6)]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "abort does not wait for the answer"
    );
}

/// A response's headers are made on first read; before and after, the response shows
/// the same four fields (JSON, own keys once read), and its headers can be replaced.
#[test]
fn the_response_object_keeps_its_shape_with_headers_made_on_first_read() {
    let env = Env::new();
    let src = "exports.campaign = { id: 't', users: 2, iterations: 3 };\n\
               var seen = {};\n\
               exports.test = function (done) {\n\
                 var req = camut.http(camut.env.TARGET + '/?bytes=3', function (err, data, res) {\n\
                   if (err) throw err;\n\
                   var json = JSON.parse(JSON.stringify(res));\n\
                   if (Object.keys(json).join() !== 'statusCode,url,headers,body') throw new Error('json keys ' + Object.keys(json));\n\
                   if (json.statusCode !== 200 || json.body !== data || json.headers['content-length'] !== '3') throw new Error('json ' + JSON.stringify(json));\n\
                   var h = res.headers;\n\
                   if (h !== res.headers || h['content-type'] !== 'text/plain') throw new Error('headers ' + JSON.stringify(h));\n\
                   if (Object.keys(res).sort().join() !== 'body,headers,statusCode,url') throw new Error('own keys ' + Object.keys(res));\n\
                   res.headers = { replaced: true };\n\
                   if (res.headers.replaced !== true) throw new Error('assignment');\n\
                   if (seen[req.callId]) throw new Error('callId seen twice: ' + req.callId);\n\
                   seen[req.callId] = true;\n\
                   if (typeof req.callId !== 'number' || typeof req.abort !== 'function') throw new Error('request');\n\
                   done();\n\
                 });\n\
               };\n";
    let (r, _) = env.run(src, 1);
    let s = &r.summary;
    assert_eq!(s.iterations.completed, 6, "{:?}", errors(&r));
    assert_eq!((s.requests, s.errors), (6, 0));
}
