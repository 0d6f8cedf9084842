// # A custom metric
//
// `camut.tsdb(metric, value, tags)` records one point of a metric of your
// own, timestamped now (milliseconds). Its default tags are campaign, client
// (the drone id: 'local' under `camut run`), vu, and the url, error and
// callId of this VU's last HTTP call; the tags given add to them and
// override them. On drones the points go to the campaign's `tsdb` server
// (OpenTSDB); under `camut run` each one is printed to stdout as a line
//
//     put shop.cart_size 1735000000000 3 campaign=tsdb-metric-example client=local vu=1 page=cart url=…
//
//     camut run examples/tsdb_metric.js --env TARGET=http://127.0.0.1:8080

const TARGET = camut.env.TARGET || 'http://127.0.0.1:8080';

exports.campaign = {
  id: 'tsdb-metric-example',
  users: 3,
  iterations: 5,
  thresholds: {
    'http.errors': ['rate < 0.01'],
  },
};

exports.test = function (done) {
  // A cart of 1 to 5 items, different for each VU and iteration.
  const n = 1 + ((camut.vu.id + camut.vu.iteration) % 5);

  // The built-in target answers `bytes` bytes: about 200 per item.
  camut.http({ url: TARGET + '/?bytes=' + n * 200, operation: 'cart' }, function (err) {
    if (!err) {
      // Recorded after the call, so the point also carries that call's url.
      camut.tsdb('shop.cart_size', n, { page: 'cart' });
    }
    done();
  });
};
