// The node peers of bench/browser.py, on the same page and the same three queries as
// bench/campaigns/browser_speed.js:
//   node peer.js jsdom PAGE N    # new JSDOM(page) + jQuery(window) per document
//   node peer.js cheerio PAGE N  # cheerio.load(page) per document
// Prints `docs N checksum C`; the process's CPU time is measured by the caller.
'use strict';
const fs = require('fs');
const [kind, pagePath, countText] = process.argv.slice(2);
const page = fs.readFileSync(pagePath, 'utf8');
const n = Number(countText);
let checksum = 0;
function queries($) {
  checksum += $('a.product-link').length;
  checksum += $('form#search input[name=q]').val().length;
  checksum += $('ul.products > li:nth-child(odd) .price').length;
}
if (kind === 'jsdom') {
  const { JSDOM } = require('jsdom');
  const jquery = require('jquery');
  for (let i = 0; i < n; i++) {
    const dom = new JSDOM(page);
    queries(jquery(dom.window));
    dom.window.close();
  }
} else if (kind === 'cheerio') {
  const cheerio = require('cheerio');
  for (let i = 0; i < n; i++) queries(cheerio.load(page));
} else {
  throw new Error('usage: node peer.js jsdom|cheerio PAGE N');
}
console.log(`docs ${n} checksum ${checksum}`);
