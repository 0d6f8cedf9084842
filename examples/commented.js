// # A commented campaign
//
// This file is a complete campaign for Camut. It runs as it is against the
// built-in target:
//
//     camut target --listen 127.0.0.1:8080 &
//     camut run examples/commented.js
//
// or against any other address with `--env TARGET=http://127.0.0.1:PORT`.
// `camut run` plays one drone locally: every VU, every iteration, then a
// summary; it exits with 0 when all thresholds hold and 1 otherwise.
//
// A campaign file is JavaScript evaluated once per virtual user (VU), as an
// ES module, which means strict mode: a variable must be declared before it
// is assigned. This file uses the CommonJS form (`exports.campaign`,
// `exports.test`); `export const campaign` / `export function test` and
// `module.exports = { campaign, test }` work as well. Line numbers in error
// messages are those of this file.
//
// The reference of every option and of the VU scope is docs/CAMPAIGN.md.

// ## Top-level code
//
// Code outside `test` runs once in each VU, when its context is created, and
// once more when the file is loaded to read its options. The globals described
// below already exist here; `camut.env` holds the `--env KEY=VALUE` pairs
// given to `camut run`, as strings.
const TARGET = camut.env.TARGET || 'http://127.0.0.1:8080';

// `camut.http` takes a full `http://` URL, or node's `http.request` options
// (`protocol`, `hostname`, `port`, `path`). The second call below uses the
// latter, so the target is split here with a regular expression (there is no
// `URL` class in the VU scope).
const parts = /^http:\/\/([^/:]+)(?::(\d+))?/.exec(TARGET);
const HOST = parts ? parts[1] : '127.0.0.1';
const PORT = parts && parts[2] ? parts[2] : '80';

// ## Options
//
// `exports.campaign` is plain data: numbers, strings, booleans, objects and
// arrays. A key Camut does not know is refused with a "did you mean" hint, so
// a typo such as `user: 10` cannot silently run with the default.
exports.campaign = {
  // `id` (required): the unique name of the campaign on the server. Letters,
  // digits, `-`, `_` and `.`, at most 128 characters. It is also the
  // `campaign` tag of every `camut.tsdb` point.
  id: 'commented-example',

  // `drones`: how many instances (drones) the server asks the deployer for.
  // Each drone runs the whole campaign below: `users` VUs each.
  // `minDrones`: the fewest drones the campaign may start with when the cloud
  // gives fewer than asked. Defaults to `drones`. `camut run` always plays a
  // single drone.
  drones: 1,
  minDrones: 1,

  // `users`: virtual users per drone (at least 1). Each VU has its own
  // JavaScript context and runs `test` iteration after iteration.
  users: 10,

  // `iterations`: how many times each VU runs `test` (default 1).
  // `duration` is the other way to size a run, exclusive with `iterations`:
  // seconds as a number, or a string such as '30s', '5m', '1h30m', '250ms';
  // every VU then starts iterations until that time has passed.
  iterations: 20,
  // duration: '30s',

  // `rampup`: seconds (or a duration string) over which the VU starts are
  // spread evenly. Here the 10 VUs start one every 0.2 s.
  rampup: 2,

  // `arrivalRate`: the open model (see examples/open_model.js). When set,
  // this many iterations are started per second per drone, taken from a pool
  // of `users` VUs, whether or not earlier ones have finished; `iterations`
  // then counts all the iterations scheduled on the drone, not per VU.
  // arrivalRate: 50,

  // `iterationTimeout`: seconds (default 60). An iteration whose `done()` is
  // not called in time is counted as the error "iteration timed out" and the
  // VU starts its next one. It also bounds one synchronous run of JavaScript:
  // an endless loop is interrupted instead of freezing the drone.
  iterationTimeout: 10,

  // `memoryLimit`: megabytes (default 1024) for the JavaScript runtime of each
  // worker thread, shared by the VUs of that thread. An allocation past it
  // throws "out of memory" in the VU that made it; the others go on.
  memoryLimit: 256,

  // `onDroneLoss`: what the server does when a drone disappears mid-run:
  // 'continue' (default; the others finish) or 'abort' (all are stopped).
  onDroneLoss: 'continue',

  // `browserEmulation`: reserved. `window` is an empty object for now.
  browserEmulation: false,

  // `deploy`: where the server creates the drones. `deployer` names one
  // ('local', 'dummy', 'ec2'); `zone`, `instanceType` and any further keys
  // are handed to that deployer. `camut run` ignores this section.
  deploy: { deployer: 'local' },

  // `tsdb`: the OpenTSDB server that receives the `camut.tsdb` points when
  // the campaign runs on drones: `host`, `port` (default 4242) and further
  // keys for the connector. Under `camut run` the points are printed to
  // stdout instead, so it is left out here.
  // tsdb: { host: 'tsdb.example.internal', port: 4242 },

  // `thresholds`: pass/fail criteria checked on the summary. Each key is a
  // metric, optionally restricted to one operation with
  // `metric{operation:NAME}`; each value is a list of expressions
  // `<aggregate> <operator> <number>`. Aggregates: min, max, avg, med, pNN,
  // p(NN.N), count, rate; operators: < <= > >= == !=. Times are in
  // milliseconds. For `http.errors`, `rate` is errors / requests. An entry may
  // be an object `{ expr, abortOnFail: true }`: on the server, breaking it
  // stops the campaign at once. A metric that recorded nothing fails its
  // thresholds: nothing was proven.
  thresholds: {
    'http.response_time': ['p99 < 500', 'p(99.9) < 1000'],
    'http.response_time{operation:home}': ['max < 1000'],
    'http.errors': [{ expr: 'rate < 0.01', abortOnFail: true }],
  },
};

// ## The test
//
// `test` is called once per iteration with `done`, and with `this` bound to
// `window`. The VU's next iteration starts the moment `done()` is called:
// calling it when the work is over makes a closed loop (this file); calling
// it from `setTimeout(done, 1000)` paces the VU at one iteration per second
// even while earlier calls are still in flight (examples/paced.js). Calling
// `done()` twice counts once (the summary reports it as `done_twice`). An
// `async function test()` needs no `done`: it completes when its promise
// settles (examples/async.js).
//
// If `test` or one of its callbacks throws, the iteration fails: the message
// and stack are counted in the summary's errors and the VU carries on.
exports.test = function (done) {
  // ### The VU's identity
  //
  // `camut.vu.id` is 1-based across the drone, `camut.vu.index` 0-based
  // within it, `camut.vu.iteration` the 0-based number of this iteration.
  // `camut.drone` = { id, index, count } (id is 'local' under `camut run`);
  // `camut.campaign` = { id, users, iterations or duration }.
  const vu = camut.vu;

  // ### `context`
  //
  // Each VU has its own JavaScript context, and its globals persist across
  // its iterations. `context` is a global made for that: null at first, and
  // whatever is assigned to it is kept for this VU's next iterations.
  if (context === null) {
    context = { session: 'vu-' + vu.id + '-' + camut.drone.id, calls: 0 };
  }

  // ### `console`
  //
  // `console.log` and `console.info` print a line to stdout as it is;
  // `console.warn`, `console.error` and `console.debug` prefix it with
  // `[warn] `, `[error] `, `[debug] `. Printed once here, not on every
  // iteration.
  if (vu.id === 1 && vu.iteration === 0) {
    console.log('campaign ' + camut.campaign.id + ': ' + camut.campaign.users +
      ' users on drone ' + camut.drone.id + ' (' + (camut.drone.index + 1) +
      ' of ' + camut.drone.count + '), target ' + TARGET);
  }

  // ### `window`
  //
  // `window` is an empty object (browser emulation is reserved) and `this`
  // is `window`; like any global it keeps what is stored on it.
  this.visits = (this.visits || 0) + 1;

  // ### `camut.http`
  //
  // Options: `url` (a full http:// URL) or node's `protocol`, `hostname`
  // (or `host`), `port`, `path`; `method` (default GET); `headers` (an
  // object); `body` (a string, or an object sent as JSON with content-type
  // application/json); `timeout` in milliseconds (default 60000; the error is
  // then 'timeout'); `operation`, the name of this call in the statistics
  // (default: the method and the path without its query). A bare string is a
  // URL to GET.
  //
  // The callback gets `(err, data, response)`: `data` is the body as a
  // string, `response` is `{ statusCode, headers, body }` with header names in
  // lower case. `err` is an Error for transport failures ('ECONNREFUSED …'),
  // timeouts ('timeout') and statuses of 400 and more ('HTTP 500'); the
  // response is still there for the latter. Without a callback, `camut.http`
  // returns a Promise of `{ data, response }` instead. `new camut.http(...)`
  // works too.
  //
  // Every call records `http.response_time` (ms, until the whole response),
  // `http.response_begin_time` (ms, until its first byte), `http.received`
  // and `http.transmitted` (bytes), `http.connections` (new TCP connections:
  // keep-alive connections are pooled per worker thread) and `http.errors`.
  camut.http({
    url: TARGET + '/',
    headers: { 'x-session': context.session },
    timeout: 5000,
    operation: 'home',
  }, function (err, data, response) {
    if (err) {
      // The iteration still ends with `done()`: otherwise it would wait for
      // `iterationTimeout` and count as timed out as well.
      console.warn('home failed: ' + err.message);
      return done();
    }
    context.calls += 1;

    // ### `camut.tsdb`
    //
    // Records a point of a custom metric, timestamped now in milliseconds.
    // Default tags: campaign, client (the drone id), vu, and the url, error
    // and callId of this VU's last HTTP call; the tags given here are added
    // and override them. Under `camut run` each point is printed to stdout as
    // an OpenTSDB line: `put home.body_bytes <ms> <value> campaign=… …`.
    if (vu.iteration === 0) {
      camut.tsdb('home.body_bytes', data.length, { status: String(response.statusCode) });
    }

    // A second call, with node-style options and a JSON body. The built-in
    // target takes `delay_ms`, `status` and `bytes` in the query to shape its
    // answer; here it waits 5 ms before answering.
    camut.http({
      protocol: 'http:',
      hostname: HOST,
      port: PORT,
      path: '/?delay_ms=5',
      method: 'POST',
      body: { session: context.session, visit: context.calls },
      operation: 'post-visit',
    }, function (err2) {
      if (err2) {
        console.warn('post-visit failed: ' + err2.message);
      }

      // ### Timers
      //
      // `setTimeout(fn, ms, ...args)`, `setInterval`, `clearTimeout` and
      // `clearInterval` work as in a browser. Here: 10 ms of think time,
      // then the iteration ends and the next one starts.
      setTimeout(done, 10);
    });
  });

  // ### What is not there
  //
  // No `require`, no file system, no processes, and no network other than
  // `camut.http`: a campaign file is sent to every drone and runs sandboxed.
};
