// Opens a Camut HTML report in Debian's Chromium from a file:// URL with the network
// off. Started by integration/tests/reports.rs, which runs the campaign and writes:
//   CAMUT_REPORT_FILE     the report (an absolute path)
//   CAMUT_REPORT_EXPECT   JSON: {requests, thresholds: [{metric, expr, ok}]} from the results
//   CAMUT_REPORT_PROFILE  a fresh Chromium profile directory
//   CHROMIUM              the browser (default /usr/bin/chromium)
// Prints one JSON line of what it found; exits non-zero on the first failed check.
import { launch } from "./browser.mjs";
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";

const env = process.env;
for (const k of ["CAMUT_REPORT_FILE", "CAMUT_REPORT_EXPECT", "CAMUT_REPORT_PROFILE"]) {
  assert.ok(env[k], `${k} must be set`);
}
const expect = JSON.parse(env.CAMUT_REPORT_EXPECT);
const url = pathToFileURL(env.CAMUT_REPORT_FILE).href;

const browser = await launch(env.CAMUT_REPORT_PROFILE);
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  context.setDefaultTimeout(30_000);
  await context.setOffline(true);
  const requests = [];
  const page = await context.newPage();
  page.on("request", (r) => requests.push(r.url()));
  page.on("pageerror", (e) => {
    console.log(`page error: ${e}`);
    process.exitCode = 1;
  });
  const res = await page.goto(url, { waitUntil: "load" });
  assert.ok(res === null || res.ok(), "the file opens");

  // The four charts, each with its lines drawn through every point of the series.
  const charts = await page.evaluate(() =>
    Object.fromEntries(
      ["requests", "latency", "errors", "vus"].map((k) => {
        const fig = document.querySelector(`#chart-${k}`);
        if (!fig) return [k, null];
        const lines = [...fig.querySelectorAll("svg polyline[stroke-width='2']")]
          .map((p) => p.getAttribute("points").trim().split(/\s+/).length);
        const box = fig.querySelector("svg").getBoundingClientRect();
        return [k, { lines, points: Number(fig.dataset.points), width: box.width, height: box.height }];
      }),
    ),
  );
  const wantLines = { requests: 1, latency: 3, errors: 1, vus: 1 };
  for (const [k, n] of Object.entries(wantLines)) {
    const c = charts[k];
    assert.ok(c, `chart ${k} is there`);
    assert.ok(c.points >= 2, `chart ${k} has a series (${c.points} points)`);
    assert.equal(c.lines.length, n, `chart ${k} draws ${n} line(s)`);
    for (const drawn of c.lines) assert.equal(drawn, c.points, `chart ${k}: a line through every point`);
    assert.ok(c.width > 100 && c.height > 100, `chart ${k} is laid out`);
  }

  // The thresholds as the results have them.
  const rows = await page.locator("#thresholds tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim())),
  );
  assert.equal(rows.length, expect.thresholds.length, "one row per threshold");
  expect.thresholds.forEach((t, i) => {
    assert.equal(rows[i][0], t.metric);
    assert.equal(rows[i][1], t.expr);
    assert.equal(rows[i][3], t.ok ? "held" : "broken", `${t.metric} ${t.expr}`);
  });
  const verdict = await page.locator("#verdict").textContent();
  assert.equal(verdict, expect.thresholds.every((t) => t.ok) ? "thresholds held" : "thresholds broken");

  const requestsTotal = Number(await page.locator("#requests-total").textContent());
  assert.equal(requestsTotal, expect.requests, "the request total");
  const operations = await page.locator("#operations tbody tr").count();
  const drones = await page.locator("#drones tbody tr").count();

  // Nothing but the file itself was asked for.
  assert.deepEqual(requests, [url], "no request but the report");
  console.log(JSON.stringify({ charts, requestsTotal, operations, drones, requests }));
} finally {
  await browser.close();
}
