// The dashboard and the API explorer.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {HUB, KEYED, ADMIN_KEY, launch, newPage, noErrors, screenshot, publish, retrieve, unique, contrasts} from "./helpers.mjs";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const TEXT = "body, h1, h2, h3, label, p, td, th, dt, dd, a, button, legend, .hint, .muted, .meta";

// historyCell is the history size the dashboard shows for a topic.
function historyCell(page, topic) {
  return page.locator(`section.node tr[data-topic="${topic}"] td[data-col="history"]`);
}

test("dashboard loads, shows stats over $sys/stats and a live tail of a topic", async () => {
  const page = await newPage(browser);
  const resp = await page.goto(HUB + "/");
  assert.equal(resp.status(), 200);
  assert.equal(await page.title(), "hubbub dashboard");
  // A loopback client of a hub without --admin-key is an admin: no key asked.
  await page.locator("#stats-status", {hasText: "Live"}).waitFor();
  assert.ok(await page.locator("#panel-key").isHidden(), "the key form shows without --admin-key");
  await page.locator('section.node tr[data-transport="sse"]').waitFor();
  await page.locator('section.node dd[data-metric="events_in"]').waitFor();
  await page.locator("#nodes-body tr[data-node]").waitFor();
  // Each node shows the build it runs (from its stats' "build").
  await page.locator("#nodes-body tr[data-node] .node-version").waitFor();
  // The hub serves WebSub: the panel lists its subscriptions (none or some).
  await page.locator("#subs-status", {hasText: /webhook subscription/}).waitFor();

  const topic = unique("dash");
  await page.getByLabel("Topic or pattern").fill(topic);
  await page.getByLabel("Topic or pattern").press("Enter");
  await page.locator("#tail-status", {hasText: "Live"}).waitFor();
  await publish({topic, data: {title: "hello dashboard"}});
  await page.locator(`#tail-list li[data-seq="1"]`, {hasText: "hello dashboard"}).waitFor({timeout: 5000});

  // A topic shows with its history size within a few seconds, from the
  // stats each node publishes on $sys/stats every 2 s.
  const busy = unique("dash-busy");
  const start = Date.now();
  await publish(Array.from({length: 10}, (_, n) => ({topic: busy, data: {n}})));
  await historyCell(page, busy).filter({hasText: /^10$/}).waitFor({timeout: 6000});
  const took = Date.now() - start;
  assert.ok(took <= 6000, `took ${took} ms`);
  const row = page.locator(`section.node tr[data-topic="${busy}"]`);
  assert.equal(await row.locator('td[data-col="last_seq"]').textContent(), "10");
  assert.ok(Number(await row.locator('td[data-col="rate_per_min"]').textContent()) > 0);

  // The SSE subscriptions (tail and stats) show up in the connection counts.
  await page.waitForFunction(() => {
    const td = document.querySelector('section.node tr[data-transport="sse"] td');
    return td && Number(td.textContent) >= 2;
  }, null, {timeout: 10000});
  const published = Number((await page.locator('section.node dd[data-metric="events_in"]').textContent()).replace(/,/g, ""));
  assert.ok(published >= 11, `events in ${published}`);

  for (const c of await contrasts(page, TEXT)) assert.ok(c.ratio >= 4.5, `contrast ${c.ratio.toFixed(2)} of "${c.text}"`);
  await page.setViewportSize({width: 1280, height: 1400});
  await screenshot(page, "dashboard");

  // A topic's link starts a live tail of it.
  await row.locator("a").click();
  await page.locator("#tail-status", {hasText: "Live: " + busy}).waitFor();
  await page.locator(`#tail-list li[data-seq="10"]`).waitFor();
  noErrors(page, "dashboard");
  await page.context().close();
});

test("dashboard with --admin-key asks for the key, then shows the data", async () => {
  assert.ok(KEYED && ADMIN_KEY, "HUBBUB_KEYED_URL and HUBBUB_ADMIN_KEY are not set");
  const page = await newPage(browser);
  assert.equal((await page.goto(KEYED + "/")).status(), 200);
  const form = page.locator("#panel-key");
  await form.waitFor({state: "visible"});
  await page.locator("#stats-status", {hasText: "Admin key needed"}).waitFor();
  assert.equal(await page.locator("section.node").count(), 0);
  // The field is labelled and has the focus: type the key and press Enter.
  const input = page.getByLabel("Admin key", {exact: true});
  assert.equal(await input.getAttribute("type"), "password");
  assert.ok(await input.evaluate((e) => e === document.activeElement), "the key field does not have the focus");
  for (const c of await contrasts(page, TEXT)) assert.ok(c.ratio >= 4.5, `contrast ${c.ratio.toFixed(2)} of "${c.text}"`);
  await screenshot(page, "dashboard-admin-key");
  await page.keyboard.type(ADMIN_KEY);
  await page.keyboard.press("Enter");
  await form.waitFor({state: "hidden"});
  await page.locator("#stats-status", {hasText: "Live"}).waitFor();

  const topic = unique("keyed");
  await publish([1, 2, 3].map((n) => ({topic, data: {n}})), KEYED);
  await historyCell(page, topic).filter({hasText: /^3$/}).waitFor({timeout: 6000});
  assert.equal(await page.evaluate(() => sessionStorage.getItem("hubbub.adminKey")), ADMIN_KEY);
  await screenshot(page, "dashboard-keyed");

  // A reload in the same tab keeps the key; forgetting it asks again.
  await page.reload();
  await historyCell(page, topic).filter({hasText: /^3$/}).waitFor({timeout: 6000});
  assert.ok(await form.isHidden());
  await page.locator("#key-forget").click();
  await form.waitFor({state: "visible"});
  assert.equal(await page.evaluate(() => sessionStorage.getItem("hubbub.adminKey")), null);
  noErrors(page, "dashboard with an admin key");
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

test("dashboard: webhook subscriptions and listed nodes when the stats say the hub has them; never a secret", async () => {
  // Stand in for /api/subscriptions and /api/nodes (a node that does not
  // report), and for the `features` list of /api/stats that announces them.
  const page = await newPage(browser);
  await page.route("**/api/stats", async (route) => {
    const resp = await route.fetch();
    const body = await resp.json();
    await route.fulfill({response: resp, json: {...body, features: ["nodes", "websub"]}});
  });
  await page.route("**/api/subscriptions", (route) => route.fulfill({json: {subscriptions: [
    {topic: "websub/a", callback: "https://example.com/cb", state: "active", lease_expires: new Date(Date.now() + 3600e3).toISOString(),
      lag: 3, last_error: "", secret: "s3cret", cursor: "e1:3"},
    {topic: "websub/b", callback: "https://example.org/hook", state: "suspended", lease_expires: "", lag: 12,
      last_error: "callback answered 500", cursor: "e1:9"},
  ], verifications: [
    {topic: "websub/c", callback: "https://example.net/new", mode: "subscribe", state: "pending", attempts: 2,
      last_error: "callback could not be reached", next_attempt: new Date(Date.now() + 20e3).toISOString()},
    {topic: "websub/d", callback: "https://example.net/old", mode: "subscribe", state: "failed", attempts: 1,
      last_error: "callback answered 404"},
  ]}}));
  await page.route("**/api/nodes", (route) => route.fulfill({json: {self: "x", nodes: [
    {id: "elsewhere:8080", address: "10.0.0.9:8080", version: "v9", connections: 0}]}}));
  await page.goto(HUB + "/");
  const rows = page.locator("#subs-body tr");
  await rows.nth(3).waitFor();
  assert.equal(await rows.count(), 4);
  assert.deepEqual(await rows.nth(0).locator("th, td").allTextContents().then((t) => [t[0], t[1], t[2], t[4]]),
    ["websub/a", "https://example.com/cb", "active", "3"]);
  assert.match(await rows.nth(1).textContent(), /suspended.*12.*callback answered 500/);
  // A suspended subscription's state stands out (no more deliveries until resumed).
  assert.equal(await rows.nth(1).locator("td").nth(1).getAttribute("class"), "error");
  // Requests not verified (yet) are shown too, with their reason.
  assert.match(await rows.nth(2).textContent(), /websub\/c.*pending \(verifying\).*callback could not be reached · next try/);
  assert.match(await rows.nth(3).textContent(), /websub\/d.*failed.*callback answered 404/);
  await page.locator("#subs-status", {hasText: "2 webhook subscriptions. 2 requests not verified."}).waitFor();
  const other = page.locator('#nodes-body tr[data-node="elsewhere:8080"][data-state="not reporting"]');
  await other.waitFor();
  assert.match(await other.textContent(), /10\.0\.0\.9:8080.*v9/);
  await page.locator("section.node").first().waitFor();
  assert.ok(!(await page.content()).includes("s3cret"), "a secret is shown");
  await screenshot(page, "dashboard-websub");
  noErrors(page, "dashboard with WebSub");
  await page.context().close();
});
