// Mutual TLS: a client certificate, a private CA and a server name, per call.
//
//   camut run examples/mutual_tls.js --env TARGET=https://127.0.0.1:8443 \
//       --env CA="$(cat ca.pem)" --env CERT="$(cat client.pem)" --env KEY="$(cat client.key)"
//
// The same fields can go in the campaign's `tls` option (as PEM text), for every call.
// `servername` is the name the certificate is checked against (and sent as SNI) when
// the URL names the server by address. Calls with other TLS settings never share a
// pooled connection.

exports.campaign = {
  id: 'mutual-tls',
  users: 5,
  iterations: 20,
  tls: { minVersion: 'TLSv1.3' },
};

exports.test = function (done) {
  camut.http({
    url: camut.env.TARGET + '/',
    ca: camut.env.CA,
    cert: camut.env.CERT,
    key: camut.env.KEY,
    servername: 'api.internal',
  }, function (err) {
    if (err) throw err;
    done();
  });
};
