// TSDB benchmark (bench/tsdb.py): every iteration records 100 custom points, no
// HTTP. bench/tsdb.py adds the `tsdb` section (per-call mode, so each point is sent
// as it is) and sets users and iterations.
exports.campaign = {
  id: 'bench-points',
  users: 10,
  iterations: 100,
};

exports.test = function (done) {
  for (var i = 0; i < 100; i++) {
    camut.tsdb('bench.points', i, { slot: 's' + (i % 10) });
  }
  done();
};
