// HTTPS throughput benchmark (bench/engine.py): 50 VUs in a closed loop, one GET of
// TARGET/ per iteration over keep-alive TLS connections. The certificate is not
// verified, as with wrk and k6 (`insecureSkipTLSVerify`): the row measures TLS, not
// certificate checks. bench/engine.py sets --iterations.
const TARGET = camut.env.TARGET || 'https://127.0.0.1:8443';

exports.campaign = {
  id: 'bench-get-tls',
  users: 50,
  iterations: 100,
  tls: { insecureSkipVerify: true },
};

exports.test = function (done) {
  camut.http(TARGET + '/', function () {
    done();
  });
};
