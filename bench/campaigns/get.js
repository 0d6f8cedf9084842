// Throughput benchmark (bench/engine.py): 50 VUs in a closed loop, one GET of
// TARGET/ per iteration. bench/engine.py sets the number of iterations with
// --iterations so that the run lasts about as long as the wrk and k6 runs.
const TARGET = camut.env.TARGET || 'http://127.0.0.1:8080';

exports.campaign = {
  id: 'bench-get',
  users: 50,
  iterations: 100,
};

exports.test = function (done) {
  camut.http(TARGET + '/', function () {
    done();
  });
};
