// The live wall.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {HUB, launch, newPage, noErrors, screenshot, publish, control, unique} from "./helpers.mjs";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function openWall(page, query) {
  assert.equal((await page.goto(HUB + "/wall?" + query)).status(), 200);
  await page.locator('body[data-status="live"]').waitFor({timeout: 10000});
  assert.ok(await page.locator("#wall-status").isHidden(), "the status banner shows while live");
}

// counts returns, per seq, how many elements of the topic show it.
function counts(page, topic) {
  return page.$$eval(".item", (els, t) => {
    const n = {};
    for (const e of els) if (e.dataset.topic === t) n[e.dataset.seq] = (n[e.dataset.seq] || 0) + 1;
    return n;
  }, topic);
}

test("the wall shows a published image event full screen within a second", async () => {
  const page = await newPage(browser);
  const topic = unique("wall");
  await openWall(page, "topic=" + encodeURIComponent(topic));
  const image = HUB + "/static/test.png";
  const start = Date.now();
  await publish({topic, data: {title: "kitten", image}});
  const fig = page.locator('#stage figure.photo.current[data-seq="1"]');
  await fig.waitFor({timeout: 1000});
  await page.waitForFunction(() => {
    const img = document.querySelector("#stage figure.current img");
    return img && img.complete && img.naturalWidth > 0;
  }, null, {timeout: Math.max(1, 1000 - (Date.now() - start))});
  const took = Date.now() - start;
  assert.ok(took <= 1000, `took ${took} ms`);
  assert.equal(await fig.locator("figcaption").textContent(), "kitten");
  assert.equal(await fig.locator("img").getAttribute("src"), image);
  const box = await fig.locator("img").boundingBox();
  assert.ok(box.width >= 1280 - 1 && box.height >= 800 - 1, `picture is ${box.width}x${box.height}, not full screen`);

  // Other events show as cards.
  await publish({topic, data: {title: "just words", n: 2}});
  await page.locator('#cards .card[data-seq="2"]', {hasText: "just words"}).waitFor({timeout: 5000});
  await screenshot(page, "wall");
  noErrors(page, "wall");
  await page.context().close();
});

test("the wall applies tag= and shows a reconnecting state through a restart, without duplicates", async () => {
  const page = await newPage(browser);
  const topic = unique("wall-restart");
  await openWall(page, "topic=" + encodeURIComponent(topic) + "&tag=kitten");
  await publish([
    {topic, data: {title: "tagged one", image: HUB + "/static/test.png"}, tags: ["kitten"]},
    {topic, data: {title: "untagged"}, tags: ["dog"]},
    {topic, data: {title: "tagged card"}, tags: ["kitten", "cute"]},
  ]);
  await page.locator('.item[data-seq="3"]').waitFor({timeout: 5000});
  assert.deepEqual(await counts(page, topic), {1: 1, 3: 1});
  noErrors(page, "wall before the restart");

  await control("/stop");
  await page.locator('body[data-status="reconnecting"]').waitFor({timeout: 10000});
  const banner = page.locator("#wall-status");
  assert.ok(await banner.isVisible(), "no visible reconnecting state");
  assert.match(await banner.textContent(), /Reconnecting/);
  await screenshot(page, "wall-reconnecting");

  await control("/start");
  await publish({topic, data: {title: "after the restart", image: HUB + "/static/test.png"}, tags: ["kitten"]});
  await page.locator('#stage figure.current[data-seq="4"]', {hasText: "after the restart"}).waitFor({timeout: 20000});
  await page.locator('body[data-status="live"]').waitFor({timeout: 10000});
  await publish({topic, data: {title: "and one more"}, tags: ["kitten"]});
  await page.locator('.card[data-seq="5"]').waitFor({timeout: 10000});
  assert.deepEqual(await counts(page, topic), {1: 1, 3: 1, 4: 1, 5: 1});
  assert.ok(await banner.isHidden(), "the reconnecting banner stays after reconnecting");
  // Only failures to reach the stopped hub may have been logged.
  const unexpected = page.errors.filter((e) => !/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|ERR_INCOMPLETE_CHUNKED_ENCODING|Failed to fetch/.test(e));
  assert.deepEqual(unexpected, []);
  await page.context().close();
});

test("the wall without a topic explains what to put in the URL", async () => {
  const page = await newPage(browser);
  await page.goto(HUB + "/wall");
  await page.locator("#wall-empty", {hasText: "/wall?topic="}).waitFor();
  noErrors(page, "wall without topic");
  await page.context().close();
});
