// Memory benchmark (bench/engine.py): every VU waits 4 s once, so all of them
// are alive at the same time; bench/engine.py runs it with --users 10 and
// --users 10000 and compares the peak RSS.
exports.campaign = {
  id: 'bench-idle',
  users: 10,
  iterations: 1,
};

exports.test = function (done) {
  setTimeout(done, 4000);
};
