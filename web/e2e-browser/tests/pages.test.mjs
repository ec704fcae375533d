// The dashboard and the API explorer.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {HUB, launch, newPage, noErrors, screenshot, publish, retrieve, unique, contrasts} from "./helpers.mjs";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const TEXT = "body, h1, h2, h3, label, p, td, th, dt, dd, a, button, legend, .hint, .muted, .meta";

test("dashboard loads, shows metrics and a live tail of a topic", async () => {
  const page = await newPage(browser);
  const resp = await page.goto(HUB + "/");
  assert.equal(resp.status(), 200);
  assert.equal(await page.title(), "hubbub dashboard");
  await page.locator('#connections-body tr[data-transport="sse"]').waitFor();
  await page.locator('dd[data-metric="published"]').waitFor();

  const topic = unique("dash");
  await page.getByLabel("Topic or pattern").fill(topic);
  await page.getByLabel("Topic or pattern").press("Enter");
  await page.locator("#tail-status", {hasText: "Live"}).waitFor();
  await publish({topic, data: {title: "hello dashboard"}});
  await page.locator(`#tail-list li[data-seq="1"]`, {hasText: "hello dashboard"}).waitFor({timeout: 5000});
  // The SSE subscription of the tail shows up in the connection counts.
  await page.waitForFunction(() => {
    const td = document.querySelector('#connections-body tr[data-transport="sse"] td');
    return td && Number(td.textContent) >= 1;
  }, null, {timeout: 10000});
  const published = Number((await page.locator('dd[data-metric="published"]').textContent()).replace(/,/g, ""));
  assert.ok(published >= 1, `published count ${published}`);

  for (const c of await contrasts(page, TEXT)) assert.ok(c.ratio >= 4.5, `contrast ${c.ratio.toFixed(2)} of "${c.text}"`);
  await screenshot(page, "dashboard");
  noErrors(page, "dashboard");
  await page.context().close();
});

test("explorer: publish form stores an event and shows its id; retrieve and subscribe work", async () => {
  const page = await newPage(browser);
  assert.equal((await page.goto(HUB + "/explorer")).status(), 200);

  // Every form control has a label.
  const unlabelled = await page.$$eval("input, select, textarea", (els) => els.filter((e) => e.labels.length === 0).map((e) => e.id || e.name));
  assert.deepEqual(unlabelled, []);

  // Publish, by keyboard: type the topic, tab to the data, submit with Enter in a field.
  const topic = unique("explorer");
  await page.getByLabel("Topic", {exact: true}).first().focus();
  await page.keyboard.type(topic);
  await page.locator("#pub-data").fill('{"title":"from the explorer"}');
  await page.locator("#pub-type").focus();
  await page.keyboard.type("create");
  await page.keyboard.press("Enter");
  const stored = page.locator("#publish-stored");
  await stored.filter({hasText: /Stored: [0-9a-f]+:1$/}).waitFor({timeout: 5000});
  const id = (await stored.textContent()).replace("Stored: ", "");
  const events = await retrieve(topic);
  assert.equal(events.length, 1);
  assert.equal(events[0].id, id);
  assert.equal(events[0].type, "create");
  assert.deepEqual(events[0].data, {title: "from the explorer"});
  const req = await page.locator("#ex-request").textContent();
  assert.match(req, /^POST \/publish HTTP\/1\.1\nHost: /);
  assert.ok(req.includes('"topic":"' + topic + '"'), req);
  assert.match(await page.locator("#ex-curl").textContent(), /^curl -H 'Content-Type: application\/json' --data-binary '.*' 'http:\/\/127\.0\.0\.1:\d+\/publish'$/);
  assert.match(await page.locator("#ex-response").textContent(), /^HTTP\/1\.1 200/);
  await screenshot(page, "explorer-publish");

  // Retrieve.
  await page.locator("#ret-topic").fill(topic);
  await page.locator("#retrieve-form button[type=submit]").click();
  await page.locator("#ex-response", {hasText: id}).waitFor({timeout: 5000});
  assert.match(await page.locator("#ex-request").textContent(), /^GET \/events\?topic=.*&count=10 HTTP\/1\.1/);

  // Subscribe (SSE in the page): history after the cursor, then live events.
  await page.locator("#sub-topic").fill(topic);
  await page.locator("#sub-after").fill("0");
  await page.locator("#subscribe-form button[type=submit]").click();
  await page.locator("#ex-response", {hasText: "from the explorer"}).waitFor({timeout: 5000});
  await publish({topic, data: {title: "second one"}});
  await page.locator("#ex-response", {hasText: "second one"}).waitFor({timeout: 5000});
  assert.match(await page.locator("#ex-curl").textContent(), /^curl -N -H 'Accept: text\/event-stream' -H 'Last-Event-ID: 0' /);
  await screenshot(page, "explorer-subscribe");
  await page.locator("#sub-stop").click();

  for (const c of await contrasts(page, TEXT)) assert.ok(c.ratio >= 4.5, `contrast ${c.ratio.toFixed(2)} of "${c.text}"`);
  noErrors(page, "explorer");
  await page.context().close();
});

test("explorer: the WebSub form shows the hub's answer as it is", async () => {
  const page = await newPage(browser);
  await page.goto(HUB + "/explorer");
  await page.locator("#ws-topic").fill("websub/x");
  await page.locator("#ws-callback").fill("http://127.0.0.1:9/callback");
  await page.locator("#ws-secret").fill("s3cret");
  await page.locator("#websub-form button[type=submit]").click();
  await page.locator("#ex-response", {hasText: /^HTTP\/1\.1 \d{3}/}).waitFor({timeout: 5000});
  const shown = (await page.locator("#ex-request").textContent()) + (await page.locator("#ex-curl").textContent());
  assert.ok(!shown.includes("s3cret"), "the secret is shown: " + shown);
  assert.match(shown, /POST \/hub HTTP\/1\.1/);
  await page.context().close();
});
