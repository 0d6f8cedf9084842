// Scheduler benchmark (bench/engine.py): iterations that do nothing, to
// measure the cost of one iteration (call into the VU's context, done()).
exports.campaign = {
  id: 'bench-empty',
  users: 100,
  iterations: 1000,
};

exports.test = function (done) {
  done();
};
