// # Open model: a fixed arrival rate
//
// With `arrivalRate`, iterations start at a fixed rate (per second, per
// drone) whether or not the earlier ones have finished, as requests from
// independent visitors would. They run on a pool of `users` VUs: an arrival
// that finds every VU busy is not delayed but counted as dropped
// (`iterations.dropped` in the summary), and a growing number of drops means
// the pool, or the target, is too small for the rate.
//
// `iterations` is then the total number of iterations scheduled on the drone
// (not per VU), and `rampup` raises the rate linearly from 0 to
// `arrivalRate`. Here: 20 iterations during the 2 s ramp, then 80 at 20/s,
// about 6 seconds in all.
//
// Latencies are measured from each iteration's intended start, so time an
// iteration spent waiting behind a slow target counts (coordinated omission
// corrected). The raw time from sending to the full answer is kept as
// `http.service_time`.
//
//     camut run examples/open_model.js --env TARGET=http://127.0.0.1:8080

const TARGET = camut.env.TARGET || 'http://127.0.0.1:8080';

exports.campaign = {
  id: 'open-model-example',
  arrivalRate: 20,
  users: 10,
  iterations: 100,
  rampup: 2,
  thresholds: {
    'http.response_time': ['p95 < 500'],
    'http.service_time': ['p95 < 500'],
    'http.errors': ['rate < 0.01'],
  },
};

exports.test = function (done) {
  // Each call takes about 50 ms: at 20 arrivals per second about one VU of
  // the 10 is busy at a time, so nothing is dropped.
  camut.http({ url: TARGET + '/?delay_ms=50', operation: 'visit' }, function (err) {
    if (err) {
      console.warn('visit failed: ' + err.message);
    }
    done();
  });
};
