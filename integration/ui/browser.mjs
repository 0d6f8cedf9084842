// Debian's Chromium as the browser tests start it: exactly these switches, a fresh
// profile, and the pipe Playwright talks through.
import { chromium } from "playwright-core";

/** Launches the browser with the profile directory `profile`. */
export function launch(profile) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    ignoreDefaultArgs: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-quic",
      `--user-data-dir=${profile}`,
      "--remote-debugging-pipe",
    ],
    timeout: 60_000,
  });
}
