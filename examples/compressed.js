// Ask for compressed responses and read them decoded.
//
//   camut target --listen 127.0.0.1:8080 &
//   camut run examples/compressed.js --env TARGET=http://127.0.0.1:8080
//
// `compressed: true` sends `Accept-Encoding: gzip, deflate, br`; `data` is the decoded
// body while `http.received` counts the compressed bytes that came over the wire.

exports.campaign = { id: 'compressed', users: 4, iterations: 25, compressed: true };

exports.test = function (done) {
  camut.http(camut.env.TARGET + '/gzip?bytes=50000', function (err, data, response) {
    if (err) throw err;
    if (data.length !== 50000) throw new Error('decoded ' + data.length + ' bytes');
    camut.tsdb('gzip.wire_bytes', Number(response.headers['content-length']));
    done();
  });
};
