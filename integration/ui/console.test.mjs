// Drives Debian's Chromium through the Camut web console. Started by
// integration/tests/ui.rs, which runs the server, the target and writes the files;
// everything it needs comes from the environment:
//   CAMUT_UI_URL         the console, e.g. http://127.0.0.1:PORT/ui
//   CAMUT_UI_TOKEN       the server's API token
//   CAMUT_UI_GOOD_FILE   a campaign file (id ui-demo, local deployer, aimed at the target)
//   CAMUT_UI_BAD_FILE    a campaign file with a syntax error
//   CAMUT_UI_STUCK_SOURCE a campaign (id ui-stuck) whose deploy never ends
//   CAMUT_UI_SHOTS       where to write the screenshots
//   CAMUT_UI_PROFILE     a fresh Chromium profile directory
//   CHROMIUM             the browser (default /usr/bin/chromium)
// Every wait is bounded; it exits non-zero on the first failed check.
import { launch } from "./browser.mjs";
import assert from "node:assert/strict";
import path from "node:path";

const env = process.env;
const BASE = env.CAMUT_UI_URL;
const TOKEN = env.CAMUT_UI_TOKEN;
const SHOTS = env.CAMUT_UI_SHOTS;
for (const k of ["CAMUT_UI_URL", "CAMUT_UI_TOKEN", "CAMUT_UI_GOOD_FILE", "CAMUT_UI_BAD_FILE", "CAMUT_UI_STUCK_SOURCE", "CAMUT_UI_SHOTS", "CAMUT_UI_PROFILE"]) {
  assert.ok(env[k], `${k} must be set`);
}
assert.match(BASE, /^http:\/\/127\.0\.0\.1:\d+\//, "loopback only");

const started = Date.now();
const step = (what) => console.log(`step ${((Date.now() - started) / 1000).toFixed(1)}s: ${what}`);

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  console.log(`screenshot ${name}.png`);
}

/** Polls `f` until it returns a truthy value or `ms` pass. */
async function until(what, ms, f) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
}

const stateOf = (page) => page.locator("#state").getAttribute("data-state");

async function waitState(page, want, ms) {
  await until(`state ${want}`, ms, async () => (await stateOf(page)) === want);
}

/** Runs `act` (a click that submits a form) and waits for the next document. */
async function navigates(page, act) {
  await page.evaluate(() => { window.__before = true; });
  await act();
  await until("the next page", 30_000, () => page.evaluate(() => !window.__before && document.readyState !== "loading"));
}

async function action(page, name) {
  await navigates(page, () => page.locator(`#actions button:text-is("${name}")`).click());
  if (await page.locator("#error").count()) {
    throw new Error(`${name} was refused: ${await page.locator("#error").textContent()}`);
  }
}

const browser = await launch(env.CAMUT_UI_PROFILE);
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  context.setDefaultTimeout(30_000);
  // Nothing leaves the machine: every request goes to the console's own address.
  const origin = new URL(BASE).origin;
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith("data:") || url.startsWith("about:")) return route.continue();
    console.log(`blocked request to ${url}`);
    return route.abort();
  });
  // Every page reports Content-Security-Policy violations: the console must work
  // under its own policy, so any violation fails the test.
  const cspViolations = [];
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const consoleLines = [];
  context.on("console", (m) => {
    const text = m.text();
    consoleLines.push(text);
    if (/CSP violation|Content Security Policy/.test(text) && !/frame-ancestors/.test(text)) {
      cspViolations.push(text);
    }
  });
  const page = await context.newPage();
  page.on("dialog", (d) => d.accept());
  page.on("pageerror", (e) => {
    console.log(`page error: ${e}`);
    process.exitCode = 1;
  });

  // ----- the token -----
  step("refused without the token");
  let res = await page.goto(`${BASE}/campaigns`);
  assert.equal(res.status(), 401, "no token, no console");
  await page.locator("#token").waitFor();
  assert.equal(await page.locator("#campaigns").count(), 0, "nothing shown before signing in");
  await shot(page, "login");
  await page.fill("#token", "not-the-token");
  await navigates(page, () => page.click("#sign-in"));
  assert.match(await page.locator("#error").textContent(), /wrong token/);
  step("signed in with the token");
  await page.fill("#token", TOKEN);
  await navigates(page, () => page.click("#sign-in"));
  assert.equal(page.url(), `${BASE}/campaigns`);
  await page.locator("#campaigns").waitFor();
  const cookies = await context.cookies();
  const cookie = cookies.find((c) => c.name === "camut_token");
  assert.ok(cookie, "the token is kept in a cookie");
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, "Strict");
  assert.ok(!page.url().includes(TOKEN), "never in a URL");

  // ----- security headers and framing -----
  step("the security headers, and a frame attempt is blocked");
  res = await page.goto(`${BASE}/campaigns`);
  const headers = res.headers();
  assert.equal(headers["x-frame-options"], "DENY");
  assert.equal(headers["x-content-type-options"], "nosniff");
  assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);
  assert.match(headers["content-security-policy"], /script-src 'self'/);
  const framer = await context.newPage();
  await framer.setContent(`<h1>another site</h1><iframe id="victim" src="${BASE}/campaigns" width="800" height="400"></iframe>`);
  // Chromium replaces a refused frame by its error page.
  await until("Chromium refusing the frame", 15_000, () =>
    framer.frames().some((f) => f !== framer.mainFrame() && f.url().startsWith("chrome-error://")));
  console.log(`frames: ${framer.frames().map((f) => f.url()).join(" ")}`);
  for (const frame of framer.frames()) {
    if (frame === framer.mainFrame()) continue;
    let shown = 0;
    try {
      shown = await frame.locator("#campaigns, #token, header").count();
    } catch (e) {
      shown = 0; // the browser's error page: nothing of the console
    }
    assert.equal(shown, 0, `the console was rendered in a frame (${frame.url()})`);
  }
  await framer.close();

  // ----- create: a compile error, then an upload -----
  step("a bad file shows its compile error with line and column");
  await page.setInputFiles("#upload", env.CAMUT_UI_BAD_FILE);
  await page.locator("#upload[data-loaded]").waitFor({ state: "attached" });
  await navigates(page, () => page.click("#create"));
  const error = await page.locator("#error").textContent();
  assert.match(error, /bad\.js:\d+:\d+/, `line:column in ${error}`);
  console.log(`compile error: ${error}`);
  await shot(page, "create-error");

  step("create by upload");
  await page.setInputFiles("#upload", env.CAMUT_UI_GOOD_FILE);
  await until("the upload read", 10_000, async () => (await page.locator("#file-name").inputValue()) === path.basename(env.CAMUT_UI_GOOD_FILE));
  await navigates(page, () => page.click("#create"));
  assert.equal(page.url(), `${BASE}/campaigns/ui-demo`);
  await waitState(page, "created", 10_000);
  assert.match(await page.locator("#options").textContent(), /VUs per drone\s*3/);

  // ----- spawn, deploy, start -----
  step("spawn");
  await action(page, "spawn");
  await waitState(page, "spawned", 30_000);
  step("deploy");
  await action(page, "deploy");
  await waitState(page, "deployed", 90_000);
  assert.match(await page.locator("#drone-counts").textContent(), /2 drones/);
  step("start");
  await action(page, "start");
  await waitState(page, "running", 30_000);

  // The job queue, in a second tab: the start job is active while the run goes on.
  const jobs = await context.newPage();
  jobs.on("dialog", (d) => d.accept());
  await jobs.goto(`${BASE}/jobs`);
  const startRow = jobs.locator("tr[id^=job-]", { has: jobs.locator("a", { hasText: "ui-demo" }) }).filter({ hasText: "start" }).first();
  const startId = await startRow.getAttribute("id");
  const startState = await startRow.getAttribute("data-state");
  console.log(`${startId} is ${startState}`);
  assert.ok(["queued", "active"].includes(startState), `start job still running, got ${startState}`);

  step("the charts follow the run");
  const charts = page.locator("#charts");
  await until("two points", 30_000, async () => parseInt(await charts.getAttribute("data-points"), 10) >= 2);
  const points1 = parseInt(await charts.getAttribute("data-points"), 10);
  const svg1 = await page.locator("#chart-requests svg").innerHTML();
  const refreshed1 = parseInt((await page.locator("#live").getAttribute("data-refreshed")) || "0", 10);
  for (const c of ["requests", "latency", "errors", "vus"]) {
    assert.equal(await page.locator(`#chart-${c} svg`).count(), 1, `chart ${c}`);
  }
  assert.match(await page.locator("#chart-latency svg").innerHTML(), /p99/);
  await until("a new point", 20_000, async () => parseInt(await charts.getAttribute("data-points"), 10) > points1);
  const svg2 = await page.locator("#chart-requests svg").innerHTML();
  assert.notEqual(svg2, svg1, "the requests/s chart changed between two refreshes");
  assert.ok(parseInt(await page.locator("#live").getAttribute("data-refreshed"), 10) > refreshed1, "refreshed in place, no reload");
  assert.match(await page.locator("#live-figures").textContent(), /requests\/s .* active VUs/);
  await shot(page, "campaign-running");

  step("the start job moves to complete");
  await jobs.bringToFront();
  await shot(jobs, "jobs-active");
  await until(`${startId} complete`, 90_000, async () => (await jobs.locator(`#${startId}`).getAttribute("data-state")) === "complete");
  assert.match(await jobs.locator(`#${startId}`).textContent(), /thresholds held/);

  step("the summary with threshold verdicts");
  await page.bringToFront();
  await waitState(page, "finished", 30_000);
  await page.locator("#summary").waitFor();
  assert.equal(await page.locator("#verdict").textContent(), "thresholds held");
  const verdicts = await page.locator("#thresholds tbody tr").allTextContents();
  assert.equal(verdicts.length, 2, `two thresholds: ${verdicts}`);
  for (const v of verdicts) assert.match(v, /held/);
  assert.match(await page.locator("#summary").textContent(), /requests\s*\d+/);
  await shot(page, "campaign-finished");

  step("update");
  const source = await page.locator("#update-form textarea").inputValue();
  await page.locator("#update-form textarea").fill(source.replace("p99 < 2000", "p99 < 1500"));
  await navigates(page, () => page.click("#update"));
  assert.equal(await page.locator("#error").count(), 0);
  assert.match(await page.locator("#options").textContent(), /p99 < 1500/);
  assert.match(await page.locator("#options").textContent(), /360 per drone/, "3 VUs × 120 iterations");

  // ----- a stuck job -----
  step("a stuck deploy is cancelled and deleted");
  await page.goto(`${BASE}/campaigns`);
  await page.fill("#source", env.CAMUT_UI_STUCK_SOURCE);
  await navigates(page, () => page.click("#create"));
  assert.equal(page.url(), `${BASE}/campaigns/ui-stuck`);
  await action(page, "spawn");
  await waitState(page, "spawned", 30_000);
  await action(page, "deploy");
  await jobs.goto(`${BASE}/jobs?state=active`);
  const stuck = jobs.locator("tr[id^=job-]", { has: jobs.locator("a", { hasText: "ui-stuck" }) }).filter({ hasText: "deploy" }).first();
  await until("the deploy active", 30_000, async () => (await stuck.getAttribute("data-state")) === "active");
  const stuckId = await stuck.getAttribute("id");
  await shot(jobs, "jobs");
  await jobs.goto(`${BASE}/jobs`);
  await navigates(jobs, () => jobs.locator(`#${stuckId} button:text-is("Cancel")`).click());
  await until(`${stuckId} cancelled`, 30_000, async () => (await jobs.locator(`#${stuckId}`).getAttribute("data-state")) === "cancelled");
  await navigates(jobs, () => jobs.locator(`#${stuckId} button:text-is("Delete")`).click());
  assert.equal(await jobs.locator("#error").count(), 0);
  assert.equal(await jobs.locator(`#${stuckId}`).count(), 0, "the stuck job is gone");

  // ----- service logs, following live -----
  step("service logs, filtered and following");
  await jobs.goto(`${BASE}/logs`);
  await jobs.selectOption("#campaign", "ui-stuck");
  await jobs.waitForURL(/campaign=ui-stuck/);
  const campaigns = await jobs.locator("#log tr td:nth-child(4)").allTextContents();
  assert.ok(campaigns.length > 0 && campaigns.every((c) => c === "ui-stuck"), `only ui-stuck lines: ${campaigns}`);
  assert.match(await jobs.locator("#log").textContent(), /campaign ui-stuck created/);
  assert.doesNotMatch(await jobs.locator("#log").textContent(), /kill:/);
  await page.goto(`${BASE}/campaigns/ui-stuck`);
  await action(page, "kill");
  await waitState(page, "killed", 30_000);
  await until("the kill in the followed log", 20_000, async () => /kill:/.test(await jobs.locator("#log").textContent()));
  await jobs.goto(`${BASE}/logs`);
  await jobs.locator("#log").waitFor();
  const all = await jobs.locator("#log").textContent();
  assert.match(all, /deployer local.*drone started/, "the local deployer's own lines");
  assert.match(all, /deployer dummy.*ui-stuck/, "the dummy deployer's lines, by campaign");
  await shot(jobs, "logs");
  await jobs.selectOption("#level", "warn");
  await jobs.waitForURL(/level=warn/);
  const levels = await jobs.locator("#log tr td:nth-child(2)").allTextContents();
  assert.ok(levels.every((l) => l === "warn" || l === "error"), `warn and above only: ${levels}`);

  step("delete");
  await navigates(page, () => page.click('button:text-is("Delete campaign")'));
  assert.equal(page.url(), `${BASE}/campaigns`);
  assert.equal(await page.locator('tr[data-campaign="ui-stuck"]').count(), 0);
  assert.equal(await page.locator('tr[data-campaign="ui-demo"]').count(), 1);
  await shot(page, "campaigns");

  step("kill frees the finished run's drones");
  await page.goto(`${BASE}/campaigns/ui-demo`);
  await action(page, "kill");
  await waitState(page, "killed", 30_000);
  await until("the kill job complete", 30_000, async () => /kill\s*complete/.test(await page.locator("#live").textContent()));

  // ----- the command log -----
  step("the command log");
  await page.goto(`${BASE}/commands`);
  const rows = await page.locator("#commands tbody tr").allTextContents();
  const has = (re) => rows.some((r) => re.test(r));
  for (const re of [/ui\s*ui 127\.0\.0\.1:\d+\s*create\s*ui-demo\s*ok/, /start\s*ui-demo\s*ok\s*job \d+/, /create\s*bad\.js\s*failed.*bad\.js:\d+:\d+/, /cancel-job\s*job \d+\s*ok/, /delete-job\s*job \d+\s*ok/, /delete\s*ui-stuck\s*ok/, /kill\s*ui-stuck/, /kill\s*ui-demo\s*ok/]) {
    assert.ok(has(re), `command log has ${re}:\n${rows.join("\n")}`);
  }
  await shot(page, "commands");

  step("sign out");
  await navigates(page, () => page.click('header button:text-is("Sign out")'));
  assert.equal(page.url(), `${BASE}/login`);
  res = await page.goto(`${BASE}/jobs`);
  assert.equal(res.status(), 401);
  assert.deepEqual(cspViolations, [], "the console works under its Content-Security-Policy");
  await context.close();
} finally {
  await browser.close();
}
console.log(`console test passed in ${((Date.now() - started) / 1000).toFixed(1)}s`);
