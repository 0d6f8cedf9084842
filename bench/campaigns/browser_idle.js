// Memory benchmark of browser emulation (bench/browser.py): every VU loads the 20 KB
// page into its document, makes its jQuery with a query, then waits 4 s so that all
// are alive at once. Run with --users 10 and --users 1000; PAGE is the page's URL.
// STAGE=window stops after the window (no page), STAGE=page after the page (no
// jQuery): the differences give where the bytes go.
exports.campaign = {
  id: 'bench-browser-idle',
  users: 10,
  iterations: 1,
  browserEmulation: true,
};

exports.test = async function () {
  var stage = camut.env.STAGE || 'jquery';
  if (stage !== 'window') await camut.browser.load(camut.env.PAGE);
  if (stage === 'jquery' && $('a.product-link').length === 0) throw new Error('the page has no products');
  await new Promise(function (ok) { setTimeout(ok, 4000); });
};
