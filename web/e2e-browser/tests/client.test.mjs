// The JavaScript client (/client.js): resume after a dropped connection,
// with no gaps and no duplicates, over each transport. The page is loaded
// through a TCP proxy the Go harness can cut.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import {HUB, PROXY, KEYED, ADMIN_KEY, launch, newPage, noErrors, publish, control, unique} from "./helpers.mjs";

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

function seqs(from, to) {
  const out = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

for (const transport of ["sse", "ws", "poll"]) {
  test(`client.js over ${transport} resumes after a dropped connection without duplicates`, async () => {
    assert.ok(PROXY, "HUBBUB_PROXY_URL is not set");
    const page = await newPage(browser);
    await page.goto(PROXY + "/explorer");
    const topic = unique("client-" + transport);
    await page.evaluate(({topic, transport}) => {
      window.got = [];
      window.statuses = [];
      window.sub = hubbub.subscribe("", {
        topics: [topic], transport,
        onEvent: (e) => window.got.push(e.seq),
        onStatus: (s) => window.statuses.push(s),
      });
    }, {topic, transport});
    await page.waitForFunction(() => window.statuses.includes("live"), null, {timeout: 10000});
    await publish([1, 2, 3].map((n) => ({topic, data: {n}})));
    await page.waitForFunction(() => window.got.length >= 3, null, {timeout: 5000});
    noErrors(page, "before the drop");

    // Cut every connection and refuse new ones; publish meanwhile.
    await control("/drop?hold=1");
    await page.waitForFunction(() => window.statuses.at(-1) === "reconnecting", null, {timeout: 10000});
    await publish([4, 5].map((n) => ({topic, data: {n}})));
    await control("/release");
    await page.waitForFunction(() => window.got.length >= 5 && window.statuses.at(-1) === "live", null, {timeout: 20000});
    await publish({topic, data: {n: 6}});
    await page.waitForFunction(() => window.got.length >= 6, null, {timeout: 10000});
    // A second drop, without a pause: EventSource-style reconnects must not replay.
    await control("/drop");
    await publish({topic, data: {n: 7}});
    await page.waitForFunction(() => window.got.length >= 7, null, {timeout: 20000});
    assert.deepEqual(await page.evaluate(() => window.got), seqs(1, 7));
    const cursor = await page.evaluate(() => window.sub.cursor());
    assert.match(cursor, /^[0-9a-f]+:7$/);
    await page.evaluate(() => window.sub.close());
    assert.equal(await page.evaluate(() => window.statuses.at(-1)), "closed");
    await page.context().close();
  });
}

test("client.js resumes from `after` and publishes", async () => {
  const page = await newPage(browser);
  await page.goto(HUB + "/explorer");
  const topic = unique("client-after");
  // Events of any type arrive (an EventSource would only show "message").
  const res = await publish([1, 2, 3].map((n) => ({topic, type: n === 2 ? "create" : "message", data: {n}})));
  const got = await page.evaluate(async ({topic, after}) => {
    const got = [];
    const done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no events within 5 s: " + JSON.stringify(got))), 5000);
      const sub = hubbub.subscribe("", {
        topics: topic, after,
        onEvent: (e) => {
          got.push(e.data.n);
          if (got.length === 3) { clearTimeout(timer); sub.close(); resolve(got); }
        },
      });
    });
    const answer = await hubbub.publish("", {topic, data: {n: 4}});
    if (answer.events[0].seq !== 4) throw new Error("publish answered " + JSON.stringify(answer));
    return done;
  }, {topic, after: res[0].id});
  assert.deepEqual(got, [2, 3, 4]);
  const err = await page.evaluate(() => hubbub.publish("", {data: 1}).then(() => null, (e) => e.status));
  assert.equal(err, 400);
  page.errors = page.errors.filter((e) => !/status of 400/.test(e)); // the refused publish above
  noErrors(page, "client");
  await page.context().close();
});

test("client.js sends options.headers over SSE and long-poll (the admin key for $sys/ topics)", async () => {
  assert.ok(KEYED && ADMIN_KEY, "HUBBUB_KEYED_URL and HUBBUB_ADMIN_KEY are not set");
  const page = await newPage(browser);
  await page.goto(KEYED + "/explorer");
  for (const transport of ["sse", "poll"]) {
    const got = await page.evaluate(({key, transport}) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no stats event within 8 s over " + transport)), 8000);
      const sub = hubbub.subscribe("", {
        topics: "$sys/stats/*", transport, headers: {Authorization: "Bearer " + key},
        onEvent: (e) => { clearTimeout(timer); sub.close(); resolve({type: e.type, node: e.data.node, topic: e.topic}); },
        onStatus: (s, info) => { if (s === "error") { clearTimeout(timer); reject(info.error); } },
      });
    }), {key: ADMIN_KEY, transport});
    assert.equal(got.type, "stats");
    assert.equal(got.topic, "$sys/stats/" + got.node);
  }
  noErrors(page, "client with headers");
  await page.context().close();
});
