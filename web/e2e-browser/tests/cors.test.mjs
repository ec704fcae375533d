// The README's JavaScript client example served from another origin (a
// second loopback port): it works against a hub started with
// --cors-origin for that origin, and a hub without it refuses the page,
// whose subscription then ends in "error"; the audit's cross-site
// text/plain publish is refused too.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {HUB, launch, newPage, noErrors, publish, retrieve, unique} from "./helpers.mjs";

const CORS = process.env.HUBBUB_CORS_URL || "";
const PAGE = process.env.HUBBUB_PAGE_ORIGIN || "";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const kitten = (title) => ({topic: "photos/tag/kitten", geo: {lat: 51.5, lon: -0.12}, data: {title}});

test("the README example from another origin receives events over SSE and publishes, with --cors-origin", async () => {
  assert.ok(CORS && PAGE, "HUBBUB_CORS_URL and HUBBUB_PAGE_ORIGIN are not set");
  const page = await newPage(browser);
  await page.goto(PAGE + "/allowed.html");
  await page.waitForFunction(() => document.title === "kittens: live", null, {timeout: 15000});
  await publish(kitten("kitten from the hub"), CORS);
  await page.waitForFunction(() => document.querySelector("#events li")?.textContent === "kitten from the hub", null, {timeout: 10000});
  // A cross-origin publish from the page: JSON, so preflighted.
  const seq = await page.evaluate((hub) => hubbub.publish(hub, {
    topic: "photos/tag/kitten", geo: {lat: 51.5, lon: -0.12}, data: {title: "kitten from the page"},
  }).then((r) => r.events[0].seq), CORS);
  assert.equal(seq, 2);
  await page.waitForFunction(() => document.querySelector("#events li")?.textContent === "kitten from the page", null, {timeout: 10000});
  assert.equal(await page.title(), "kittens: live");
  noErrors(page, "the example page from another origin");
  await page.context().close();
});

test("without --cors-origin the page is refused: status error, no publish, no text/plain CSRF", async () => {
  assert.ok(PAGE, "HUBBUB_PAGE_ORIGIN is not set");
  const page = await newPage(browser);
  await page.goto(PAGE + "/refused.html");
  await page.waitForFunction(() => document.title === "kittens: error", null, {timeout: 20000});
  const topic = unique("csrf/browser");
  const got = await page.evaluate(async ({hub, topic}) => {
    const out = {};
    out.publish = await hubbub.publish(hub, {topic, data: 1}).then(() => "published", (e) => "rejected: " + e.message);
    // The audit's attack: a "simple" request that needs no preflight.
    out.noCors = await fetch(hub + "/publish", {
      method: "POST", mode: "no-cors", body: JSON.stringify({topic, data: {title: "published by a page from another origin"}}),
    }).then((r) => r.type, (e) => "failed: " + e.message);
    return out;
  }, {hub: HUB, topic});
  assert.match(got.publish, /^rejected/);
  assert.equal(got.noCors, "opaque"); // sent and answered (403), unreadable
  assert.deepEqual(await retrieve(topic), [], "a page from another origin published");
  await page.context().close();
});

test("the wall may be framed by the origins --frame-ancestors names, and by no one else", async () => {
  assert.ok(CORS && PAGE, "HUBBUB_CORS_URL and HUBBUB_PAGE_ORIGIN are not set");
  // The hub at CORS runs with --frame-ancestors PAGE; the one at HUB with none.
  const page = await newPage(browser);
  await page.goto(PAGE + "/frame-allowed.html");
  const wall = page.frameLocator("iframe");
  await wall.locator('body[data-status="live"]').waitFor({timeout: 10000});
  const topic = new URL(await page.locator("iframe").getAttribute("src")).searchParams.get("topic");
  await publish({topic, data: {title: "on the framed wall"}}, CORS);
  await wall.locator(".card", {hasText: "on the framed wall"}).waitFor({timeout: 5000});
  noErrors(page, "a page framing the wall it may frame");
  await page.context().close();

  for (const path of ["/frame-refused.html", "/frame-dashboard.html"]) {
    const refused = await newPage(browser);
    await refused.goto(PAGE + path);
    // Chromium replaces a frame its CSP refuses with an error page, and says why.
    const deadline = Date.now() + 10000;
    while (!refused.errors.some((e) => /frame-ancestors/.test(e))) {
      assert.ok(Date.now() < deadline, `${path}: no CSP refusal logged within 10s: ${refused.errors}`);
      await new Promise((r) => setTimeout(r, 50)); // polling the log, with a deadline
    }
    const frame = refused.frames().find((f) => f !== refused.mainFrame());
    assert.ok(frame, path + ": no frame");
    const ran = await frame.evaluate(() => !!document.querySelector("body[data-status], #panels")).catch(() => false);
    assert.equal(ran, false, path + ": the framed page ran");
    await refused.context().close();
  }
});
