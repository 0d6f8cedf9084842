// # async/await and ES-module exports
//
// The same kind of campaign as examples/commented.js, written with
// `export` statements and an `async function test()`. Without a callback,
// `camut.http` returns a Promise of `{ data, response }`; it rejects with an
// Error for transport failures, timeouts and statuses of 400 and more (then
// `err.response` holds the response). The iteration is over when the promise
// returned by `test` settles; a rejection counts as a failed iteration.
//
//     camut run examples/async.js --env TARGET=http://127.0.0.1:8080

const TARGET = camut.env.TARGET || 'http://127.0.0.1:8080';

export const campaign = {
  id: 'async-example',
  users: 10,
  iterations: 10,
  thresholds: {
    'http.response_time{operation:list}': ['p99 < 500'],
    'http.response_time{operation:detail}': ['p99 < 500'],
    'http.errors': ['rate < 0.01'],
  },
};

// A promise that resolves after `ms` milliseconds: think time between calls.
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function test() {
  // Statuses of 400 and more reject: catch them to look at the response, or
  // let them propagate to fail the iteration with their message and stack.
  let list;
  try {
    list = await camut.http({ url: TARGET + '/?bytes=512', operation: 'list' });
  } catch (err) {
    const status = err.response ? err.response.statusCode : 'no response';
    console.warn('list failed (' + status + '): ' + err.message);
    return;
  }
  if (list.response.statusCode !== 200 || list.data.length === 0) {
    // A thrown error fails this iteration; it is counted by message in the
    // summary, and the VU carries on with its next iteration.
    throw new Error('unexpected list answer: ' + list.response.statusCode + ', ' + list.data.length + ' bytes');
  }

  await sleep(50);

  // Two calls in parallel: the iteration waits for both.
  const [a, b] = await Promise.all([
    camut.http({ url: TARGET + '/?delay_ms=10', operation: 'detail' }),
    camut.http({ url: TARGET + '/?delay_ms=20', operation: 'detail' }),
  ]);
  if (camut.vu.id === 1 && camut.vu.iteration === 0) {
    console.log('detail answers: ' + a.response.statusCode + ', ' + b.response.statusCode +
      ' (' + a.data.length + ' and ' + b.data.length + ' bytes)');
  }
}
