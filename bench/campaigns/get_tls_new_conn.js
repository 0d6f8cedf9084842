// HTTPS with a new connection per iteration (bench/engine.py): 50 VUs, one GET per
// iteration on a connection of its own (`keepAlive: false`), so every request pays a
// full TCP connect and TLS handshake — k6's `noConnectionReuse`. bench/engine.py sets
// --iterations.
const TARGET = camut.env.TARGET || 'https://127.0.0.1:8443';

exports.campaign = {
  id: 'bench-get-tls-new-conn',
  users: 50,
  iterations: 100,
  keepAlive: false,
  tls: { insecureSkipVerify: true },
};

exports.test = function (done) {
  camut.http(TARGET + '/', function () {
    done();
  });
};
