// The chat example (/examples/chat): the client's optimistic publishing in
// two windows, loaded through web/slowproxy_test.go's HTTP proxy, which
// can hold or delay POST /publish on its way to the hub.
import {test, before, after} from "node:test";
import assert from "node:assert/strict";
import jwt from "jsonwebtoken";
import {launch, newPage, noErrors, screenshot, retrieve, unique, contrasts} from "./helpers.mjs";

const SLOW = process.env.HUBBUB_SLOW_URL;
const SLOW_CONTROL = process.env.HUBBUB_SLOW_CONTROL_URL;

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function slow(what) {
  assert.ok(SLOW_CONTROL, "HUBBUB_SLOW_CONTROL_URL is not set");
  const r = await fetch(SLOW_CONTROL + what, {method: "POST", signal: AbortSignal.timeout(10000)});
  assert.equal(r.status, 200, `slow proxy ${what}: ${await r.text()}`);
}

async function openChat(topic, name) {
  const page = await newPage(browser);
  const q = new URLSearchParams({topic, name});
  assert.equal((await page.goto(SLOW + "/examples/chat?" + q)).status(), 200);
  await page.locator('body[data-status="live"]').waitFor({timeout: 10000});
  return page;
}

async function send(page, text) {
  await page.getByLabel("Message", {exact: true}).fill(text);
  await page.getByLabel("Message", {exact: true}).press("Enter");
}

// messages lists a window's messages: text, state and seq, in page order.
function messages(page) {
  return page.$$eval("#messages li", (els) => els.map((e) => ({
    text: e.querySelector(".text").textContent, state: e.dataset.state, seq: e.dataset.seq || "",
  })));
}

test("a message shows in the sender's window before the hub answers, then in both", async (t) => {
  const topic = unique("chat");
  const ann = await openChat(topic, "Ann");
  const bob = await openChat(topic, "Bob");
  await slow("/hold");
  try {
    const start = Date.now();
    await send(ann, "hello from Ann");
    // The request is held before the hub: neither an answer nor an echo
    // can exist, yet the message shows, marked as sending.
    const mine = ann.locator("#messages li", {hasText: "hello from Ann"});
    await mine.waitFor({timeout: 1000});
    t.diagnostic(`shown ${Date.now() - start} ms after typing Enter began, with the publish held`);
    assert.equal(await mine.getAttribute("data-state"), "pending");
    assert.match(await mine.textContent(), /sending/);
    assert.deepEqual(await retrieve(topic), [], "the hub has it already");
    assert.deepEqual(await messages(bob), []);
    await screenshot(ann, "chat-pending");
  } finally {
    await slow("/release");
  }
  await ann.locator('#messages li[data-state="confirmed"][data-seq="1"]', {hasText: "hello from Ann"}).waitFor({timeout: 10000});
  await bob.locator('#messages li[data-state="confirmed"][data-seq="1"]', {hasText: "hello from Ann"}).waitFor({timeout: 10000});
  assert.equal((await messages(ann)).length, 1, "the echo showed the message twice");
  for (const c of await contrasts(ann, "h1, p, label, button, #messages strong, #messages .text, #messages .note")) {
    assert.ok(c.ratio >= 4.5, `contrast ${c.ratio.toFixed(2)} of "${c.text}"`);
  }
  noErrors(ann, "chat (Ann)");
  noErrors(bob, "chat (Bob)");
  await ann.context().close();
  await bob.context().close();
});

test("after a burst of concurrent sends from both windows, both show the hub's order", async (t) => {
  const topic = unique("chat-burst");
  const ann = await openChat(topic, "Ann");
  const bob = await openChat(topic, "Bob");
  const N = 8;
  // Each publish waits up to 400 ms at random in the proxy: the hub's
  // order differs from the order each window sent in.
  await slow("/delay?ms=400");
  try {
    await Promise.all([
      (async () => { for (let i = 1; i <= N; i++) await send(ann, `ann ${i}`); })(),
      (async () => { for (let i = 1; i <= N; i++) await send(bob, `bob ${i}`); })(),
    ]);
    const all = (page) => page.waitForFunction((n) => {
      const li = document.querySelectorAll("#messages li");
      return li.length === n && [...li].every((e) => e.dataset.state === "confirmed");
    }, 2 * N, {timeout: 20000});
    await Promise.all([all(ann), all(bob)]);
  } finally {
    await slow("/delay?ms=0");
  }
  const stored = (await retrieve(topic)).map((e) => e.data.text);
  assert.equal(stored.length, 2 * N, "stored once each");
  const a = await messages(ann), b = await messages(bob);
  assert.deepEqual(a.map((m) => m.text), stored, "Ann's window is not in the hub's order");
  assert.deepEqual(b.map((m) => m.text), stored, "Bob's window is not in the hub's order");
  assert.deepEqual(a.map((m) => m.seq), stored.map((_, i) => String(i + 1)));
  const reorders = await Promise.all([ann, bob].map((p) => p.evaluate(() => window.__chat.reorders)));
  t.diagnostic(`reorders: Ann ${reorders[0]}, Bob ${reorders[1]}`);
  await screenshot(ann, "chat-ann");
  await screenshot(bob, "chat-bob");
  noErrors(ann, "chat burst (Ann)");
  noErrors(bob, "chat burst (Bob)");
  await ann.context().close();
  await bob.context().close();
});

test("a message that cannot be sent is marked after its retries, and Send again sends it once", async () => {
  const topic = unique("chat-fail");
  const page = await openChat(topic, "Lee");
  // The client sends a message 6 times (5 retries) before giving up.
  await slow("/fail?n=6");
  try {
    await send(page, "lost in transit");
    const li = page.locator("#messages li", {hasText: "lost in transit"});
    await page.locator('#messages li[data-state="failed"]').waitFor({timeout: 20000});
    assert.match(await li.textContent(), /not sent/);
    assert.deepEqual(await retrieve(topic), []);
    await screenshot(page, "chat-failed");
    await li.getByRole("button", {name: "Send again"}).click();
    await page.locator('#messages li[data-state="confirmed"][data-seq="1"]', {hasText: "lost in transit"}).waitFor({timeout: 10000});
    assert.equal(await li.getByRole("button").count(), 0);
  } finally {
    await slow("/fail?n=0");
  }
  assert.deepEqual((await retrieve(topic)).map((e) => e.data.text), ["lost in transit"]);
  // Chromium logs each 503 answer as a console error; nothing else may show.
  const unexpected = page.errors.filter((e) => !/status of 503/.test(e));
  assert.deepEqual(unexpected, []);
  await page.context().close();
});

test("the chat reads and publishes a private topic with the token in its address", async () => {
  // HUBBUB_LOCKED_URL verifies tokens with HUBBUB_LOCKED_JWT_SECRET;
  // chat/** is private there, and publishing needs a credential.
  const base = process.env.HUBBUB_LOCKED_URL, secret = process.env.HUBBUB_LOCKED_JWT_SECRET;
  assert.ok(base && secret, "HUBBUB_LOCKED_URL and HUBBUB_LOCKED_JWT_SECRET are not set");
  const topic = unique("chat/private");
  const token = jwt.sign({sub: "kim", hubbub: {subscribe: [topic], publish: [topic]}}, secret, {algorithm: "HS256", expiresIn: "10m"});
  const page = await newPage(browser);
  const q = new URLSearchParams({topic, name: "Kim", access_token: token});
  assert.equal((await page.goto(base + "/examples/chat?" + q)).status(), 200);
  await page.locator('body[data-status="live"]').waitFor({timeout: 10000});
  await send(page, "a secret");
  await page.locator('#messages li[data-state="confirmed"][data-seq="1"]', {hasText: "a secret"}).waitFor({timeout: 10000});
  const r = await fetch(`${base}/events?topic=${encodeURIComponent(topic)}`, {headers: {Authorization: "Bearer " + token}});
  assert.equal(r.status, 200);
  assert.deepEqual((await r.json()).events.map((e) => e.data.text), ["a secret"]);
  const anonymous = await fetch(`${base}/events?topic=${encodeURIComponent(topic)}`);
  assert.equal(anonymous.status, 401, "the topic is not private");

  // The globe takes the same token the same way.
  const globe = await newPage(browser);
  await globe.goto(base + "/globe?" + new URLSearchParams({topic, access_token: token}));
  await globe.locator('body[data-status="live"]').waitFor({timeout: 10000});
  noErrors(page, "chat with a token");
  noErrors(globe, "globe with a token");
  await page.context().close();
  await globe.context().close();
});
