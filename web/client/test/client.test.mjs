// hubbub-client under Node, as its users get it from npm (imported by its
// package name, so through package.json's "exports"), against a real hub:
// the ws package for WebSocket, the eventsource package as a standard SSE
// client the cursors must work with. Run by web/client_test.go, which
// starts the hub and passes, in the environment:
//   HUBBUB_URL          the hub
//   HUBBUB_PROXY_URL    a TCP proxy to it whose connections can be cut
//   HUBBUB_CONTROL_URL  POST /drop[?hold=1], /release
//   HUBBUB_KEYED_URL    a second hub, started with --admin-key HUBBUB_ADMIN_KEY
import {test} from "node:test";
import assert from "node:assert/strict";
import {createRequire} from "node:module";
import hubbub, {subscribe, publish} from "hubbub-client";
import WebSocket from "ws";
import {EventSource} from "eventsource";
import {need, unique} from "./env.mjs";

const require = createRequire(import.meta.url);
const HUB = need("HUBBUB_URL");
const PROXY = need("HUBBUB_PROXY_URL");
const CONTROL = need("HUBBUB_CONTROL_URL");
const KEYED = need("HUBBUB_KEYED_URL");
const ADMIN_KEY = need("HUBBUB_ADMIN_KEY");

async function control(what) {
  const r = await fetch(CONTROL + what, {method: "POST", signal: AbortSignal.timeout(30000)});
  assert.equal(r.status, 200, `control ${what}: ${await r.text()}`);
}

// until resolves once cond() holds, checking on every event the caller
// signals through the returned poke(), and rejects after ms.
function waiter() {
  let waiters = [];
  return {
    poke() {
      for (const w of waiters) w();
    },
    until(cond, ms, what) {
      if (cond()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { waiters = waiters.filter((x) => x !== check); reject(new Error("timed out waiting for " + what)); }, ms);
        const check = () => {
          if (!cond()) return;
          clearTimeout(timer);
          waiters = waiters.filter((x) => x !== check);
          resolve();
        };
        waiters.push(check);
      });
    },
  };
}

// watch subscribes and records events and statuses.
function watch(base, options) {
  const w = waiter();
  const got = [];
  const statuses = [];
  let lastInfo = null;
  const sub = subscribe(base, Object.assign({}, options, {
    onEvent: (e) => { got.push(e); w.poke(); },
    onStatus: (s, info) => { statuses.push(s); lastInfo = info; w.poke(); },
  }));
  return {sub, got, statuses, info: () => lastInfo, until: w.until};
}

test("one implementation behind import, require and the named exports", () => {
  const cjs = require("hubbub-client");
  assert.equal(typeof subscribe, "function");
  assert.equal(typeof publish, "function");
  assert.equal(hubbub.subscribe, subscribe);
  assert.equal(cjs.subscribe, subscribe);
  assert.equal(cjs.publish, publish);
  assert.equal(globalThis.hubbub, undefined, "the module sets no global");
});

for (const transport of ["sse", "ws", "poll"]) {
  test(`over ${transport}: resumes after dropped connections, no gaps, no duplicates`, async () => {
    const topic = unique("node-" + transport);
    const w = watch(PROXY, {topics: [topic], transport, WebSocket});
    await w.until(() => w.statuses.includes("live"), 10000, "live");
    await publish(HUB, [1, 2, 3].map((n) => ({topic, data: {n}})));
    await w.until(() => w.got.length >= 3, 10000, "3 events");

    await control("/drop?hold=1"); // cut every connection, refuse new ones
    await w.until(() => w.statuses.at(-1) === "reconnecting", 10000, "reconnecting");
    await publish(HUB, [4, 5].map((n) => ({topic, data: {n}})));
    await control("/release");
    await w.until(() => w.got.length >= 5 && w.statuses.at(-1) === "live", 20000, "5 events, live again");
    await control("/drop"); // and again at once
    await publish(HUB, {topic, data: {n: 6}});
    await w.until(() => w.got.length >= 6, 20000, "6 events");

    assert.deepEqual(w.got.map((e) => e.seq), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(w.got.map((e) => e.data.n), [1, 2, 3, 4, 5, 6]);
    assert.match(w.sub.cursor(), /^[0-9a-f]+:6$/);
    w.sub.close();
    assert.equal(w.statuses.at(-1), "closed");
  });
}

test("a pattern subscription resumes from its own cursor", async () => {
  const root = unique("node-pattern");
  const first = watch(HUB, {topics: [root + "/*"]});
  await first.until(() => first.statuses.includes("live"), 10000, "live");
  await publish(HUB, [{topic: root + "/a", data: "a1"}, {topic: root + "/b", data: "b1"}]);
  await first.until(() => first.got.length >= 2, 10000, "2 events");
  const cursor = first.sub.cursor();
  first.sub.close();
  assert.match(cursor, /^m\./, "several topics: the m. cursor");

  await publish(HUB, [{topic: root + "/b", data: "b2"}, {topic: root + "/a", data: "a2"}]);
  for (const transport of ["sse", "ws", "poll"]) {
    const again = watch(HUB, {topics: [root + "/*"], after: cursor, transport, WebSocket});
    await again.until(() => again.got.length >= 2, 10000, "the 2 events published while away over " + transport);
    again.sub.close();
    assert.deepEqual(again.got.map((e) => e.data).sort(), ["a2", "b2"], transport);
  }
});

test("options.headers reach the hub over SSE, long-poll and ws (the admin key for $sys/ topics)", async () => {
  for (const transport of ["sse", "poll", "ws"]) {
    const w = watch(KEYED, {topics: "$sys/stats/*", transport, WebSocket, headers: {Authorization: "Bearer " + ADMIN_KEY}});
    await w.until(() => w.got.length >= 1 || w.statuses.includes("error"), 10000, "a stats event over " + transport);
    w.sub.close();
    assert.equal(w.statuses.includes("error"), false, `${transport}: ${w.info()?.error}`);
    assert.equal(w.got[0].type, "stats");
  }
  // Without the key: refused, and the subscription says so once.
  const w = watch(KEYED, {topics: "$sys/stats/*"});
  await w.until(() => w.statuses.includes("error"), 10000, "error");
  assert.equal(w.info().error.status, 403);
});

test("options.token is a Bearer header over SSE and long-poll, and an auth op over WebSocket", async () => {
  // A WebSocket class that, like a browser's, sends no headers: only the
  // auth op can carry the credential.
  class Headerless extends WebSocket {
    constructor(url) { super(url); }
  }
  for (const [transport, WS] of [["sse", undefined], ["poll", undefined], ["ws", Headerless]]) {
    const w = watch(KEYED, {topics: "$sys/stats/*", transport, WebSocket: WS, token: ADMIN_KEY});
    await w.until(() => w.got.length >= 1 || w.statuses.includes("error"), 10000, "a stats event over " + transport);
    w.sub.close();
    assert.equal(w.statuses.includes("error"), false, `${transport}: ${w.info()?.error}`);
    assert.equal(w.got[0].type, "stats");
  }
});

test("the eventsource package resumes from the client's cursor, and the client from its lastEventId", async () => {
  const topic = unique("node-es");
  const res = (await publish(HUB, [1, 2].map((n) => ({topic, data: {n}})))).events;
  // The client reads the topic from its start, then stops.
  const w = watch(HUB, {topics: topic, after: res[0].id.replace(/:1$/, ":0")});
  await w.until(() => w.got.length >= 2, 10000, "2 events");
  w.sub.close();
  const cursor = w.sub.cursor();
  assert.equal(cursor, res[1].id);

  // A standard EventSource picks up there (Last-Event-ID) and tracks ids.
  const more = (await publish(HUB, [3, 4].map((n) => ({topic, data: {n}})))).events;
  const es = new EventSource(`${HUB}/events?topic=${encodeURIComponent(topic)}`, {
    fetch: (url, init) => fetch(url, Object.assign({}, init, {headers: Object.assign({}, init.headers, {"Last-Event-ID": cursor})})),
  });
  const esGot = [];
  let lastId = "";
  const ew = waiter();
  es.onmessage = (m) => { esGot.push(JSON.parse(m.data).seq); lastId = m.lastEventId; ew.poke(); };
  await ew.until(() => esGot.length >= 2, 10000, "events 3 and 4 over EventSource");
  es.close();
  assert.deepEqual(esGot, [3, 4]);
  assert.equal(lastId, more[1].id);

  // And the client resumes from what the EventSource saw.
  await publish(HUB, {topic, data: {n: 5}});
  const w2 = watch(HUB, {topics: topic, after: lastId});
  await w2.until(() => w2.got.length >= 1, 10000, "event 5");
  w2.sub.close();
  assert.deepEqual(w2.got.map((e) => e.seq), [5]);
});

test("publish answers where it stored, and rejects with the hub's status and reason", async () => {
  const topic = unique("node-publish");
  const answer = await publish(HUB, {topic, data: {n: 1}}, {idempotencyKey: "once"});
  assert.equal(answer.events[0].seq, 1);
  const again = await publish(HUB, {topic, data: {n: 1}}, {idempotencyKey: "once"});
  assert.equal(again.events[0].duplicate, true);
  await assert.rejects(publish(HUB, {data: 1}), (err) => err.status === 400 && /topic/.test(err.body));
  await assert.rejects(publish("", {topic, data: 1}), /give the hub's URL/);
  assert.throws(() => subscribe("", {topics: topic}), /give the hub's URL/);
  assert.throws(() => subscribe(HUB, {topics: []}), /options.topics/);
});

test("transport ws without a WebSocket class: the global one, or an error that says what to pass", async () => {
  const w = watch(HUB, {topics: unique("node-nows"), transport: "ws"});
  await w.until(() => w.statuses.includes("live") || w.statuses.includes("error"), 10000, "live or error");
  w.sub.close();
  if (typeof globalThis.WebSocket === "function") {
    assert.ok(w.statuses.includes("live"), "Node's own WebSocket works");
  } else {
    assert.ok(w.statuses.includes("error") && !w.statuses.includes("live"), w.statuses.join());
    assert.match(String(w.info().error), /options\.WebSocket/);
  }
});
