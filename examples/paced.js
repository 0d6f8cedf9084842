// # Paced iterations
//
// Each VU starts one iteration per second, however long the HTTP call takes:
// `done` is called from a timer, independently of the call, so a slow answer
// does not slow the pace (the call is still in flight when the next iteration
// starts). Compare with examples/commented.js, where `done()` is called when
// the work is over (closed loop: a slower target means fewer iterations).
//
//     camut run examples/paced.js --env TARGET=http://127.0.0.1:8080
//
// 5 VUs x 10 iterations at one per second: about 10 seconds, 50 requests.

const TARGET = camut.env.TARGET || 'http://127.0.0.1:8080';

exports.campaign = {
  id: 'paced-example',
  users: 5,
  iterations: 10,
  rampup: 1,
  thresholds: {
    'http.response_time': ['p95 < 500'],
    'http.errors': ['rate < 0.01'],
  },
};

exports.test = function (done) {
  // The next iteration of this VU starts in one second, whatever happens to
  // the call below.
  setTimeout(done, 1000);

  // `delay_ms` makes the built-in target answer after 200 ms: the pace stays
  // one iteration per second. The callback only reports; it does not end the
  // iteration.
  camut.http({ url: TARGET + '/?delay_ms=200', operation: 'paced-get' }, function (err) {
    if (err) {
      console.warn('vu ' + camut.vu.id + ' iteration ' + camut.vu.iteration + ': ' + err.message);
    }
  });
};
