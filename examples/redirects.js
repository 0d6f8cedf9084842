// Follow redirects: each hop is measured as its own request.
//
//   camut target --listen 127.0.0.1:8080 &
//   camut run examples/redirects.js --env TARGET=http://127.0.0.1:8080
//
// /redirect/3 answers 302 → /redirect/2 → /redirect/1 → /redirect/0 (200): four
// requests per call, under the operations `GET /redirect/3` … `GET /redirect/0`.

exports.campaign = {
  id: 'redirects',
  users: 5,
  iterations: 10,
  followRedirects: 5, // the default for every call; node's default is 0
};

exports.test = function (done) {
  camut.http(camut.env.TARGET + '/redirect/3', function (err, data, response) {
    if (err) throw err;
    // The final URL, after the hops.
    if (!/\/redirect\/0$/.test(response.url)) throw new Error('ended at ' + response.url);
    // A 303 (or a 302 after a POST) turns the next hop into a GET.
    camut.http({ url: camut.env.TARGET + '/redirect/1?status=303', method: 'POST', body: 'x' }, function (err) {
      if (err) throw err;
      done();
    });
  });
};
