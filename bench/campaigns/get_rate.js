// TSDB benchmark (bench/tsdb.py): the same GET as get.js, but at a fixed arrival
// rate, so that runs with and without a TSDB do the same work and their CPU time
// per request compares directly. bench/tsdb.py sets the duration.
const TARGET = camut.env.TARGET || 'http://127.0.0.1:8080';

exports.campaign = {
  id: 'bench-get-rate',
  arrivalRate: 20000,
  users: 200,
  duration: '5s',
};

exports.test = function (done) {
  camut.http(TARGET + '/', function () {
    done();
  });
};
