// Node request fields: Basic auth, several values of one header, and bodies as text,
// bytes, JSON or a URL-encoded form; responses read as text or as bytes.
//
//   camut target --listen 127.0.0.1:8080 &
//   camut run examples/bodies_and_auth.js --env TARGET=http://127.0.0.1:8080

exports.campaign = { id: 'bodies-and-auth', users: 2, iterations: 10 };

exports.test = async function () {
  var T = camut.env.TARGET;
  // `auth` sends `Authorization: Basic …`, as in node's http.request.
  await camut.http({ url: T + '/basic-auth/alice/s3cret', auth: 'alice:s3cret' });
  // A header with several values.
  await camut.http({ url: T + '/headers', headers: { 'x-tag': ['a', 'b'] } });
  // Bytes in, bytes out.
  var bin = await camut.http({
    url: T + '/echo', method: 'POST', body: new Uint8Array([1, 2, 3]), responseType: 'bytes',
  });
  if (bin.data[2] !== 3) throw new Error('bytes');
  // An object is sent as JSON, `form` URL-encoded.
  await camut.http({ url: T + '/echo', method: 'POST', body: { item: 42, qty: 1 } });
  await camut.http({ url: T + '/echo', method: 'POST', form: { q: 'load test', page: 2 } });
};
