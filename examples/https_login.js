// Log in over HTTPS with a form, then browse with the session cookie.
//
// Against the built-in target with its self-signed certificate:
//
//   camut target --tls --listen 127.0.0.1:8443      # prints: certificate /tmp/camut-target-8443.pem
//   camut run examples/https_login.js --env TARGET=https://127.0.0.1:8443 \
//       --env CA="$(cat /tmp/camut-target-8443.pem)"
//
// Each VU logs in on its first iteration; the server's `Set-Cookie: sid=…` goes into
// that VU's own cookie jar, which is kept across its iterations (like `context`) and
// sent back on every later call. Against a site with a publicly trusted certificate,
// leave out `ca` (it also runs against the plain `camut target`, without CA).

exports.campaign = {
  id: 'https-login',
  users: 10,
  iterations: 20,
  thresholds: { 'http.errors': ['rate < 0.01'] },
};

exports.test = async function () {
  // Options are read before `camut.env` exists, so the CA goes on each call.
  var tls = camut.env.CA ? { ca: camut.env.CA } : {};
  if (camut.vu.iteration === 0) {
    var login = await camut.http(Object.assign({
      url: camut.env.TARGET + '/login',
      method: 'POST',
      form: { user: 'user' + camut.vu.id, password: 'secret' },
      operation: 'login',
    }, tls));
    context = { session: camut.cookies.get(camut.env.TARGET + '/').sid };
  }
  var page = await camut.http(Object.assign({ url: camut.env.TARGET + '/session', operation: 'session' }, tls));
  if (page.data.trim() !== 'session ' + context.session) {
    throw new Error('lost the session: ' + page.data);
  }
};
