// The live wall.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {HUB, KEYED, ADMIN_KEY, launch, newPage, noErrors, screenshot, publish, control, unique} from "./helpers.mjs";

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

test("without a topic the wall is a form that builds its address", async () => {
  const page = await newPage(browser);
  await page.goto(HUB + "/wall");
  const form = page.locator("#wall-form");
  await form.waitFor({state: "visible"});
  assert.ok(await page.locator("#wall-empty").isHidden(), "the waiting text shows under the form");
  const unlabelled = await page.$$eval("#wall-form input", (els) => els.filter((e) => e.labels.length === 0).map((e) => e.id));
  assert.deepEqual(unlabelled, []);
  const topic = unique("wall-form");
  await page.getByLabel("Topic or pattern").fill(topic);
  await page.getByLabel("Topic or pattern").press("Enter");
  await page.locator('body[data-status="live"]').waitFor({timeout: 10000});
  const q = new URL(page.url()).searchParams;
  assert.equal(q.get("topic"), topic);
  assert.equal(q.get("count"), "10");
  await publish({topic, data: {title: "from the form's wall"}});
  await page.locator('.card[data-seq="1"]', {hasText: "from the form's wall"}).waitFor({timeout: 5000});
  noErrors(page, "wall form");
  await page.context().close();
});

test("count= shows the newest stored events on load, then live ones, each once", async () => {
  const page = await newPage(browser);
  const a = unique("wall-count"), b = unique("wall-count");
  await publish([1, 2, 3, 4].map((n) => ({topic: a, data: {title: "a" + n}})));
  await publish({topic: b, data: {title: "b1"}, tags: ["skip"]});
  await publish({topic: b, data: {title: "b2"}});
  await openWall(page, `topic=${encodeURIComponent(a)}&topic=${encodeURIComponent(b)}&count=3`);
  // The three newest of both topics, oldest first: a4, b1, b2.
  await page.locator(`.card[data-topic="${b}"][data-seq="2"]`).waitFor({timeout: 5000});
  assert.deepEqual(await counts(page, a), {4: 1});
  assert.deepEqual(await counts(page, b), {1: 1, 2: 1});
  const titles = await page.$$eval("#cards .card h2", (els) => els.map((e) => e.textContent));
  assert.deepEqual(titles, ["b2", "b1", "a4"], "newest first on the wall");
  await publish({topic: a, data: {title: "a5"}});
  await page.locator(`.card[data-topic="${a}"][data-seq="5"]`).waitFor({timeout: 5000});
  assert.deepEqual(await counts(page, a), {4: 1, 5: 1});

  // With a filter, history is filtered the same way.
  const page2 = await newPage(browser);
  await openWall(page2, `topic=${encodeURIComponent(b)}&count=5&tag=skip`);
  await page2.locator(`.card[data-topic="${b}"][data-seq="1"]`).waitFor({timeout: 5000});
  assert.deepEqual(await counts(page2, b), {1: 1});
  noErrors(page, "wall with count=");
  noErrors(page2, "wall with count= and tag=");
  await page.context().close();
  await page2.context().close();
});

test("the wall takes a token from its address (access_token=), sent as a Bearer header", async () => {
  // $sys/ topics need admin rights: the hub's admin key, which the hub
  // takes only from the Authorization header, never from a URL.
  const page = await newPage(browser);
  assert.equal((await page.goto(KEYED + "/wall?topic=" + encodeURIComponent("$sys/stats/*") + "&access_token=" + encodeURIComponent(ADMIN_KEY))).status(), 200);
  await page.locator('body[data-status="live"]').waitFor({timeout: 10000});
  noErrors(page, "wall with a token");
  await page.context().close();
});
