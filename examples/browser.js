// Browser emulation: sign in through an HTML form, as a browser user would.
//
//   camut target --listen 127.0.0.1:8080 &
//   camut run examples/browser.js --env TARGET=http://127.0.0.1:8080
//
// Each iteration loads the sign-in page into the VU's document, reads the hidden CSRF
// token with jQuery, fills the form and posts it serialized (the target answers 303
// to the account page with a session cookie; the call follows it), then follows the
// "orders" link found in the page and counts the rows. Every request is measured and
// tagged: page loads and `$.ajax` calls take an `operation` like camut.http's.

exports.campaign = {
  id: 'browser-login',
  users: 5,
  iterations: 4,
  // `true` is enough; the object form sets the user agent (also sent as User-Agent).
  browserEmulation: { userAgent: 'Mozilla/5.0 (compatible; camut-example)' },
};

exports.test = async function () {
  var base = camut.env.TARGET || 'http://127.0.0.1:8080';
  await camut.browser.load(base + '/site/login', { operation: 'login page' });

  var token = $('#login input[name=csrf]').val();
  if (!/^t[0-9a-f]{16}$/.test(token)) throw new Error('no CSRF token in the page: ' + token);
  $('#login input[name=user]').val('user' + camut.vu.id);
  $('#login input[name=password]').val('secret');

  // The form as the browser would send it: csrf, user, password, lang.
  var account = await $.ajax({
    url: $('#login').attr('action'),
    method: 'POST',
    data: $('#login').serialize(),
    operation: 'sign in',
  });
  document.open();
  document.write(account);
  document.close();
  var who = $('#welcome').data('user');
  if (who !== 'user' + camut.vu.id) throw new Error('signed in as ' + who);

  // Follow the link found in the page (resolved against the page's address).
  var orders = $('a.next').prop('href');
  await camut.browser.load(orders, { operation: 'orders' });
  var rows = $('#orders tr.order').length;
  if (rows !== 3) throw new Error('expected 3 orders, got ' + rows);
};
