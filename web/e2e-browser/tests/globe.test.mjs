// The live globe (/globe).
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {HUB, KEYED, ADMIN_KEY, launch, newPage, noErrors, screenshot, publish, control, unique, contrasts} from "./helpers.mjs";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function openGlobe(page, query, base = HUB) {
  assert.equal((await page.goto(base + "/globe?" + query)).status(), 200);
  await page.locator('body[data-status="live"]').waitFor({timeout: 10000});
  assert.ok(await page.locator("#globe-status").isHidden(), "the status banner shows while live");
}

// orthographic is this test's own projection of a point on Earth for a
// globe centred on (lat0, lon0) with radius r at (cx, cy), y down.
function orthographic(lat, lon, v) {
  const rad = Math.PI / 180;
  const l = (lon - v.lon0) * rad, p = lat * rad, p0 = v.lat0 * rad;
  return {
    x: v.cx + v.r * Math.cos(p) * Math.sin(l),
    y: v.cy - v.r * (Math.cos(p0) * Math.sin(p) - Math.sin(p0) * Math.cos(p) * Math.cos(l)),
    front: Math.sin(p0) * Math.sin(p) + Math.cos(p0) * Math.cos(p) * Math.cos(l) >= 0,
  };
}

// drawn reads, in one task (so no frame is drawn in between), where the
// page says it drew its newest point and the canvas pixel there.
function drawn(page) {
  return page.evaluate(() => {
    const lp = window.__globe.lastPoint;
    if (!lp) return null;
    const c = document.getElementById("globe-canvas");
    const k = c.width / c.clientWidth;
    const px = c.getContext("2d").getImageData(Math.round(lp.x * k), Math.round(lp.y * k), 1, 1).data;
    return Object.assign({}, lp, {pixel: [px[0], px[1], px[2]]});
  });
}

// The point's colour (#ffcc33 and #f5a623 shades): much red, little blue;
// land, sea and background are blue-grey.
function isPointColour([r, g, b]) {
  return r > 180 && g > 100 && b < 120;
}

test("the globe places a geo event within a second where its lat/lon projects, with its picture beside it", async (t) => {
  const page = await newPage(browser);
  const topic = unique("globe");
  await openGlobe(page, "topic=" + encodeURIComponent(topic));
  const image = HUB + "/static/test.png";
  const start = Date.now();
  await publish({topic, geo: {lat: 48.86, lon: 2.35}, data: {title: "Paris kitten", place: "Paris", image}});
  await page.waitForFunction(() => window.__globe.lastPoint && window.__globe.lastPoint.seq === 1, null, {timeout: 1000});
  const took = Date.now() - start;
  assert.ok(took <= 1000, `took ${took} ms`);

  // Where it was drawn is where this test projects it, in the view it
  // was drawn in (the globe turns), and the canvas shows a point there.
  const got = await drawn(page);
  assert.equal(got.view.mode, "globe");
  const want = orthographic(48.86, 2.35, got.view);
  assert.ok(want.front && got.visible, "the point is on the far side");
  const off = Math.hypot(got.x - want.x, got.y - want.y);
  assert.ok(off <= 2, `drawn at ${got.x},${got.y}, projects to ${want.x},${want.y}`);
  assert.ok(isPointColour(got.pixel), `the canvas at the point is rgb(${got.pixel}), not the point's colour`);
  t.diagnostic(`placed ${took} ms after the publish began, ${off.toFixed(2)} px from this test's projection`);

  // The picture shows beside its point.
  const thumb = page.locator('#thumbs img.thumb[data-seq="1"]');
  await thumb.waitFor({state: "visible", timeout: 2000});
  await page.waitForFunction(() => {
    const img = document.querySelector('#thumbs img.thumb[data-seq="1"]');
    return img && img.complete && img.naturalWidth > 0;
  }, null, {timeout: 5000});
  assert.equal(await thumb.getAttribute("src"), image);
  assert.equal(await thumb.getAttribute("alt"), "Paris kitten");
  const box = await thumb.boundingBox();
  const now = await drawn(page);
  assert.ok(Math.abs(box.x - now.x) < 120 && Math.abs(box.y + box.height - now.y) < 120,
    `thumbnail at ${box.x},${box.y}, point at ${now.x},${now.y}`);

  // The list, the counter, and the announcement.
  await page.locator('#globe-latest li[data-seq="1"]', {hasText: "Paris"}).waitFor();
  assert.equal(await page.locator("#globe-rate-n").textContent(), "1");
  await page.locator("#globe-announce", {hasText: "Paris kitten, Paris"}).waitFor({timeout: 10000});
  assert.equal(await page.locator("#globe-announce").getAttribute("aria-live"), "polite");

  // A point on the far side: the globe turns to it.
  await publish({topic, geo: {lat: -33.87, lon: 151.21}, data: {title: "Sydney"}});
  await page.waitForFunction(() => window.__globe.lastPoint?.seq === 2 && window.__globe.lastPoint.visible, null, {timeout: 5000});
  const far = await drawn(page);
  const farWant = orthographic(-33.87, 151.21, far.view);
  assert.ok(Math.hypot(far.x - farWant.x, far.y - farWant.y) <= 2, `drawn at ${far.x},${far.y}, projects to ${farWant.x},${farWant.y}`);
  // Events without geo count, but draw nothing.
  await publish({topic, data: {title: "nowhere"}});
  await page.locator("#globe-rate-n", {hasText: "3"}).waitFor({timeout: 5000});
  assert.equal(await page.evaluate(() => window.__globe.points), 2);

  // Keyboard: the canvas takes focus; M switches to the map.
  await page.locator("#globe-canvas").focus();
  await page.keyboard.press("m");
  assert.equal(await page.evaluate(() => window.__globe.view.mode), "map");
  await page.keyboard.press("m");
  assert.equal(await page.evaluate(() => window.__globe.view.mode), "globe");
  await page.waitForFunction(() => window.__globe.lastPoint?.seq === 2 && window.__globe.lastPoint.visible, null, {timeout: 5000});
  for (const c of await contrasts(page, "#globe-panel p, #globe-latest li")) {
    assert.ok(c.ratio >= 4.5, `contrast ${c.ratio.toFixed(2)} of "${c.text}"`);
  }
  await screenshot(page, "globe");
  noErrors(page, "globe");
  await page.context().close();
});

test("with prefers-reduced-motion the globe is a still map, and points sit where lat/lon project", async () => {
  const context = await browser.newContext({viewport: {width: 1280, height: 800}, reducedMotion: "reduce"});
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (m) => { if (m.type() === "error") page.errors.push(m.text()); });
  page.on("pageerror", (e) => page.errors.push(e.message));
  const topic = unique("globe-still");
  await openGlobe(page, "topic=" + encodeURIComponent(topic));
  await publish({topic, geo: {lat: 35.68, lon: 139.69}, data: {title: "Tokyo"}});
  await page.waitForFunction(() => window.__globe.lastPoint?.seq === 1, null, {timeout: 5000});
  const got = await drawn(page);
  assert.equal(got.view.mode, "map");
  // This test's own equirectangular projection of the 1280x800 viewport:
  // the world (360 x 180 degrees) fitted with a 16 px margin, centred.
  const scale = Math.min((1280 - 32) / 360, (800 - 32) / 180);
  const want = {x: 640 + 139.69 * scale, y: 400 - 35.68 * scale};
  assert.ok(Math.hypot(got.x - want.x, got.y - want.y) <= 2, `drawn at ${got.x},${got.y}, projects to ${want.x},${want.y}`);
  assert.ok(isPointColour(got.pixel), `the canvas at the point is rgb(${got.pixel})`);
  // Nothing turns: the view stays as it was.
  const before = await page.evaluate(() => JSON.stringify(window.__globe.view));
  await publish({topic, geo: {lat: -22.9, lon: -43.2}, data: {title: "Rio"}});
  await page.waitForFunction(() => window.__globe.lastPoint?.seq === 2, null, {timeout: 5000});
  assert.equal(await page.evaluate(() => JSON.stringify(window.__globe.view)), before);
  await screenshot(page, "globe-map");
  assert.deepEqual(page.errors, []);
  await context.close();
});

test("the globe shows a reconnecting state through a restart and resumes without duplicates", async () => {
  const page = await newPage(browser);
  const topic = unique("globe-restart");
  await openGlobe(page, "topic=" + encodeURIComponent(topic) + "&tag=geo");
  await publish([
    {topic, geo: {lat: 51.5, lon: -0.12}, tags: ["geo"], data: {title: "London"}},
    {topic, geo: {lat: 40.7, lon: -74}, tags: ["other"], data: {title: "filtered out"}},
    {topic, geo: {lat: 52.52, lon: 13.4}, tags: ["geo"], data: {title: "Berlin"}},
  ]);
  await page.waitForFunction(() => window.__globe.lastPoint?.seq === 3, null, {timeout: 5000});
  assert.equal(await page.evaluate(() => window.__globe.points), 2);

  await control("/stop");
  await page.locator('body[data-status="reconnecting"]').waitFor({timeout: 10000});
  const banner = page.locator("#globe-status");
  assert.ok(await banner.isVisible(), "no visible reconnecting state");
  assert.match(await banner.textContent(), /Reconnecting/);
  await screenshot(page, "globe-reconnecting");
  await control("/start");
  await publish({topic, geo: {lat: 41.9, lon: 12.5}, tags: ["geo"], data: {title: "Rome"}});
  await page.waitForFunction(() => window.__globe.lastPoint?.seq === 4, null, {timeout: 20000});
  await page.locator('body[data-status="live"]').waitFor({timeout: 10000});
  await publish({topic, geo: {lat: 59.33, lon: 18.07}, tags: ["geo"], data: {title: "Stockholm"}});
  await page.waitForFunction(() => window.__globe.lastPoint?.seq === 5, null, {timeout: 10000});
  assert.equal(await page.evaluate(() => window.__globe.points), 4, "a point twice");
  const seqs = await page.$$eval("#globe-latest li", (els) => els.map((e) => e.dataset.seq));
  assert.deepEqual(seqs, ["5", "4", "3", "1"]);
  assert.ok(await banner.isHidden());
  const unexpected = page.errors.filter((e) => !/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|ERR_INCOMPLETE_CHUNKED_ENCODING|Failed to fetch/.test(e));
  assert.deepEqual(unexpected, []);
  await page.context().close();
});

test("the globe takes a token from its address (access_token=), as the wall does", async () => {
  // $sys/ topics need admin rights: the hub's admin key, sent as a Bearer
  // header (keys are never accepted in URLs).
  const page = await newPage(browser);
  await openGlobe(page, "topic=" + encodeURIComponent("$sys/stats/*") + "&access_token=" + encodeURIComponent(ADMIN_KEY), KEYED);
  noErrors(page, "globe with a token");
  await page.context().close();
});

test("without a topic the globe is a form that builds its address", async () => {
  const page = await newPage(browser);
  await page.goto(HUB + "/globe");
  await page.locator("#globe-form").waitFor({state: "visible"});
  const topic = unique("globe-form");
  await page.getByLabel("Topic or pattern").fill(topic);
  await page.getByLabel("Topic or pattern").press("Enter");
  await page.locator('body[data-status="live"]').waitFor({timeout: 10000});
  assert.equal(new URL(page.url()).searchParams.get("topic"), topic);
  noErrors(page, "globe form");
  await page.context().close();
});

test("count= places the newest stored geo events on load, then live ones, each once", async () => {
  const page = await newPage(browser);
  const topic = unique("globe-count");
  await publish([
    {topic, geo: {lat: 10, lon: 10}, data: {title: "old"}},
    {topic, geo: {lat: 20, lon: 20}, data: {title: "recent"}},
    {topic, geo: {lat: 30, lon: 30}, data: {title: "newest"}},
  ]);
  await openGlobe(page, "topic=" + encodeURIComponent(topic) + "&count=2");
  await page.waitForFunction(() => window.__globe.lastPoint?.seq === 3, null, {timeout: 5000});
  assert.equal(await page.evaluate(() => window.__globe.points), 2);
  assert.equal(await page.locator("#globe-rate-n").textContent(), "0", "stored events counted as arrivals");
  await publish({topic, geo: {lat: 40, lon: 40}, data: {title: "live"}});
  await page.waitForFunction(() => window.__globe.lastPoint?.seq === 4, null, {timeout: 5000});
  assert.equal(await page.evaluate(() => window.__globe.points), 3);
  const seqs = await page.$$eval("#globe-latest li", (els) => els.map((e) => e.dataset.seq));
  assert.deepEqual(seqs, ["4", "3", "2"]);
  noErrors(page, "globe with count=");
  await page.context().close();
});
