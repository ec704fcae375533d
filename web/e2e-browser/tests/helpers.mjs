// Shared setup of the browser tests. The Go test (web/browser_test.go)
// starts the hub and passes, in the environment:
//   HUBBUB_URL          the hub, http://127.0.0.1:PORT
//   HUBBUB_PROXY_URL    a TCP proxy to the hub whose connections can be cut
//   HUBBUB_CONTROL_URL  POST /stop, /start, /drop[?hold=1], /release
//   HUBBUB_ARTIFACTS    where screenshots go
//   HUBBUB_KEYED_URL    a second hub, started with --admin-key HUBBUB_ADMIN_KEY
import {chromium} from "playwright-core";
import assert from "node:assert/strict";
import path from "node:path";

export const HUB = need("HUBBUB_URL");
export const PROXY = process.env.HUBBUB_PROXY_URL || "";
export const CONTROL = process.env.HUBBUB_CONTROL_URL || "";
export const KEYED = process.env.HUBBUB_KEYED_URL || "";
export const ADMIN_KEY = process.env.HUBBUB_ADMIN_KEY || "";
const ARTIFACTS = process.env.HUBBUB_ARTIFACTS || path.resolve("artifacts");

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run these tests through go test ./web -run TestBrowser`);
  return v;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.HUBBUB_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync"],
    timeout: 30000,
  });
}

// newPage opens a page that records console errors and uncaught
// exceptions in page.errors.
export async function newPage(browser) {
  const context = await browser.newContext({viewport: {width: 1280, height: 800}});
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") page.errors.push(`console: ${m.text()} (${m.location().url || ""})`);
  });
  page.on("pageerror", (e) => page.errors.push(`exception: ${e.message}`));
  page.on("requestfailed", (r) => {
    if (r.failure()?.errorText !== "net::ERR_ABORTED") page.errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
  return page;
}

export function noErrors(page, what) {
  assert.deepEqual(page.errors, [], `${what}: errors in the browser`);
}

export async function screenshot(page, name) {
  await page.screenshot({path: path.join(ARTIFACTS, name + ".png"), animations: "disabled", timeout: 10000});
}

// publish posts events to the hub (from node) and returns the results.
export async function publish(body, base = HUB) {
  const r = await fetch(base + "/publish", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
    signal: AbortSignal.timeout(10000),
  });
  const text = await r.text();
  assert.equal(r.status, 200, `publish: ${text}`);
  return JSON.parse(text).events;
}

export async function retrieve(topic) {
  const r = await fetch(`${HUB}/events?topic=${encodeURIComponent(topic)}&count=1000`, {signal: AbortSignal.timeout(10000)});
  assert.equal(r.status, 200);
  return (await r.json()).events;
}

export async function control(what) {
  assert.ok(CONTROL, "HUBBUB_CONTROL_URL is not set");
  const r = await fetch(CONTROL + what, {method: "POST", signal: AbortSignal.timeout(30000)});
  const text = await r.text();
  assert.equal(r.status, 200, `control ${what}: ${text}`);
  return text;
}

export function unique(prefix) {
  return `${prefix}/${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

// contrast is the WCAG contrast ratio of an element's text against the
// first opaque background behind it, computed in the page.
export async function contrasts(page, selector) {
  return page.$$eval(selector, (els) => {
    function rgb(s) {
      const m = s.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
      return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
    }
    function lum(c) {
      const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
      return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
    }
    return els.filter((e) => e.offsetParent !== null && e.textContent.trim() !== "").map((e) => {
      const fg = rgb(getComputedStyle(e).color);
      let bg = null;
      for (let n = e; n && !bg; n = n.parentElement) {
        const c = rgb(getComputedStyle(n).backgroundColor);
        if (c && c.a >= 0.9) bg = c;
      }
      bg = bg || {r: 255, g: 255, b: 255};
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      return {text: e.textContent.trim().slice(0, 30), ratio: (a + 0.05) / (b + 0.05)};
    });
  });
}
