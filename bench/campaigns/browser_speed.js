// Speed benchmark of browser emulation (bench/browser.py): one VU fetches the 20 KB
// page once, then each iteration parses it into the document and runs three jQuery
// queries — the same as bench/browser/peer.js does with jsdom and cheerio.
exports.campaign = {
  id: 'bench-browser-speed',
  users: 1,
  iterations: 1000,
  browserEmulation: true,
};

exports.test = async function () {
  if (context === null) {
    context = { page: (await camut.http(camut.env.PAGE)).data, checksum: 0 };
  }
  document.open();
  document.write(context.page);
  document.close();
  context.checksum += $('a.product-link').length;
  context.checksum += $('form#search input[name=q]').val().length;
  context.checksum += $('ul.products > li:nth-child(odd) .price').length;
  if (camut.vu.iteration === camut.campaign.iterations - 1) console.log('checksum ' + context.checksum);
};
