// The request object: its call id, and abort().
//
//   camut target --listen 127.0.0.1:8080 &
//   camut run examples/abort.js --env TARGET=http://127.0.0.1:8080
//
// A call that takes longer than the test is willing to wait is aborted: its callback
// gets the error `aborted`, and the call counts in `http.errors` under that message.

exports.campaign = { id: 'abort', users: 3, iterations: 5 };

exports.test = function (done) {
  var request = new camut.http({ url: camut.env.TARGET + '/?delay_ms=2000' }, function (err) {
    if (err && err.message === 'aborted') console.log('call', request.callId, 'aborted');
    done();
  });
  setTimeout(function () { request.abort(); }, 100);
};
