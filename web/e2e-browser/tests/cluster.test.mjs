// The dashboard of a two-node Redis deployment (two hubs on one Redis,
// started by web/browser_test.go): both nodes are listed, report live
// numbers, and the charts move when events are published.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {launch, newPage, noErrors, screenshot, publish, unique} from "./helpers.mjs";

const A = process.env.HUBBUB_REDIS_A_URL || "";
const B = process.env.HUBBUB_REDIS_B_URL || "";
const SKIP = process.env.HUBBUB_REDIS_SKIP || "";

let browser;
before(async () => { if (!SKIP) browser = await launch(); });
after(async () => { await browser?.close(); });

// legendValue is the latest value a chart shows for a series.
function legendValue(page, chart, series) {
  return page.locator(`figure[data-chart="${chart}"] li[data-series="${series}"]`).getAttribute("data-value").then(Number);
}

test("a two-node Redis deployment's dashboard lists both nodes with live numbers, and its charts move with traffic", {skip: SKIP || false}, async () => {
  assert.ok(A && B, "HUBBUB_REDIS_A_URL and HUBBUB_REDIS_B_URL are not set");
  const page = await newPage(browser);
  assert.equal((await page.goto(A + "/")).status(), 200);
  await page.locator("#stats-status", {hasText: "Live"}).waitFor();
  // Both nodes report: the one the page is on, and the other, which
  // publishes its stats because a subscriber on A watches them.
  for (const id of ["browser-a", "browser-b"]) {
    const row = page.locator(`#nodes-body tr[data-node="${id}"][data-state="reporting"]`);
    await row.waitFor({timeout: 15000});
    assert.match(await row.textContent(), /127\.0\.0\.1:\d+/, `${id}: no address from /api/nodes`);
    await page.locator(`section.node[data-node="${id}"] dd[data-metric="events_in"]`).waitFor();
  }
  const traffic = page.locator('figure[data-chart="traffic"] polyline[data-series="in"]');
  const before = await traffic.getAttribute("points");

  // A live tail on A, and traffic published to B: in on B, out on A.
  const topic = unique("cluster-dash");
  await page.getByLabel("Topic or pattern").fill(topic);
  await page.getByLabel("Topic or pattern").press("Enter");
  await page.locator("#tail-status", {hasText: "Live"}).waitFor();
  const deadline = Date.now() + 30000;
  let n = 0;
  while ((await legendValue(page, "traffic", "in")) <= 0 || (await legendValue(page, "traffic", "out")) <= 0) {
    assert.ok(Date.now() < deadline, "the traffic chart did not move within 30s of publishing");
    await publish(Array.from({length: 5}, () => ({topic, data: {n: ++n}})), B);
    await page.waitForTimeout(250); // pacing the traffic; the loop waits on the chart, with a deadline
  }
  await page.locator(`#tail-list li[data-seq="${n}"]`).waitFor({timeout: 10000});
  assert.notEqual(await traffic.getAttribute("points"), before, "the events-in line did not change");
  const rate = page.locator('#nodes-body tr[data-node="browser-b"] td[data-col="events_in_rate"]');
  await page.waitForFunction((el) => Number(el.textContent) > 0, await rate.elementHandle(), {timeout: 10000});
  assert.ok((await legendValue(page, "connections", "sse")) >= 2, "the stats and tail SSE streams are not counted");
  const figures = await page.$$eval("figure.chart svg", (els) => els.map((e) => e.getAttribute("aria-label")));
  assert.equal(figures.length, 4);
  for (const label of figures) assert.match(label, /last 10 minutes; now: /);

  // Nothing scrolls sideways at 1280 px (newcomer report 15: the cramped nodes table).
  const overflow = await page.$$eval(".scroll", (els) => els.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.parentElement.id));
  assert.deepEqual(overflow, []);
  await page.setViewportSize({width: 1280, height: 1500});
  await page.evaluate(() => window.scrollTo(0, 0));
  await screenshot(page, "dashboard-two-nodes");
  noErrors(page, "dashboard of two Redis nodes");
  await page.context().close();
});
