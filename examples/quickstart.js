// The quick start's campaign (`camut quickstart`): two drones, ten virtual users each,
// a GET and a POST per iteration, paced at one iteration per VU every 50 ms.
// `camut quickstart` points http://127.0.0.1:8080 at its built-in target; with
// `camut run` give the address with --env TARGET=http://HOST:PORT.
const TARGET = camut.env.TARGET || 'http://127.0.0.1:8080';

exports.campaign = {
  id: 'quickstart',
  drones: 2,
  users: 10,
  iterations: 40,
  rampup: 1,
  deploy: { deployer: 'local' },
  thresholds: {
    'http.response_time': ['p99 < 500'],
    'http.errors': [{ expr: 'rate < 0.01', abortOnFail: true }],
  },
};

exports.test = function (done) {
  camut.http({ url: TARGET + '/?bytes=512', operation: 'home' }, function (err) {
    if (err) return done();
    camut.http({ url: TARGET + '/?delay_ms=5', method: 'POST', body: { vu: camut.vu.id }, operation: 'order' }, function () {
      setTimeout(done, 50);
    });
  });
};
