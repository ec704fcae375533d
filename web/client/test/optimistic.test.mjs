// Optimistic publishing (publish(..., {optimistic: true})) under Node,
// against a real hub behind web/slowproxy_test.go's HTTP proxy, which can
// hold, fail or lose POST /publish requests. Run by web/client_test.go:
//   HUBBUB_URL               the hub
//   HUBBUB_SLOW_URL          the proxy to it
//   HUBBUB_SLOW_CONTROL_URL  POST /hold, /hold-answers, /release, /fail?n=, /lose?n=
import {test} from "node:test";
import assert from "node:assert/strict";
import {subscribe, publish} from "hubbub-client";
import {need, unique} from "./env.mjs";

const HUB = need("HUBBUB_URL");
const SLOW = need("HUBBUB_SLOW_URL");
const SLOW_CONTROL = need("HUBBUB_SLOW_CONTROL_URL");

async function slow(what) {
  const r = await fetch(SLOW_CONTROL + what, {method: "POST", signal: AbortSignal.timeout(10000)});
  assert.equal(r.status, 200, `slow proxy ${what}: ${await r.text()}`);
}

async function stored(topic) {
  const r = await fetch(`${HUB}/events?topic=${encodeURIComponent(topic)}&count=100`, {signal: AbortSignal.timeout(10000)});
  assert.equal(r.status, 200);
  return (await r.json()).events;
}

// changes records an item's onChange calls and lets a test wait for a state.
function changes() {
  const seen = [];
  let wake = () => {};
  return {
    seen,
    onChange(item) {
      seen.push(item.state);
      wake();
    },
    until(cond, ms, what) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("timed out waiting for " + what)), ms);
        const check = () => {
          if (!cond()) return;
          clearTimeout(timer);
          resolve();
        };
        wake = check;
        check();
      });
    },
  };
}

// live subscribes to a topic on the hub directly and resolves once live.
function live(topic, onEvent) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the subscription did not go live")), 10000);
    const sub = subscribe(HUB, {
      topics: topic, onEvent,
      onStatus: (s) => {
        if (s === "live") {
          clearTimeout(timer);
          resolve(sub);
        }
      },
    });
  });
}

test("an optimistic publish returns a pending item at once, then the hub's place", async () => {
  const topic = unique("opt");
  await slow("/hold");
  const c = changes();
  let item;
  try {
    item = publish(SLOW, {topic, data: {text: "hello"}}, {optimistic: true, onChange: c.onChange});
    assert.equal(item.state, "pending");
    assert.match(item.client_id, /^c-[0-9a-f]{24}$/);
    assert.equal(item.topic, topic);
    assert.equal(item.event.idempotency_key, item.client_id);
    assert.equal(item.seq, null);
  } finally {
    await slow("/release");
  }
  const done = await item.done;
  assert.equal(done, item);
  assert.equal(item.state, "confirmed");
  assert.equal(item.confirmedBy, "answer");
  const evs = await stored(topic);
  assert.equal(evs.length, 1);
  assert.deepEqual({id: item.id, seq: item.seq, time: item.time}, {id: evs[0].id, seq: evs[0].seq, time: evs[0].time});
  assert.equal(evs[0].client_id, item.client_id, "the stored event shows the client_id");
  assert.deepEqual(c.seen, ["confirmed"]);
});

test("the echo confirms an item before the hub's answer comes back", async () => {
  const topic = unique("opt-echo");
  const got = [];
  const sub = await live(topic, (e) => got.push(e));
  await slow("/hold-answers");
  try {
    const c = changes();
    const item = publish(SLOW, {topic, data: {text: "echo first"}}, {optimistic: true, onChange: c.onChange});
    await c.until(() => item.state === "confirmed", 10000, "the echo");
    assert.equal(item.confirmedBy, "echo");
    assert.equal(item.seq, 1);
    assert.equal(got.length, 1);
    assert.equal(got[0].client_id, item.client_id, "the echo is delivered too, with the item's client_id");
  } finally {
    await slow("/release");
    sub.close();
  }
});

test("a publish whose answer is lost is sent again with its client_id and stored once", async () => {
  const topic = unique("opt-retry");
  await slow("/lose?n=2");
  const item = publish(SLOW, {topic, data: {n: 1}}, {optimistic: true});
  await item.done;
  assert.equal(item.attempts, 3);
  const evs = await stored(topic);
  assert.equal(evs.length, 1, "stored once");
  assert.equal(evs[0].seq, item.seq);
});

test("a publish that keeps failing is reported failed after its retries, and retry() sends it again", async () => {
  const topic = unique("opt-fail");
  await slow("/fail?n=3");
  const c = changes();
  const item = publish(SLOW, {topic, data: {n: 1}}, {optimistic: true, retries: 2, onChange: c.onChange});
  await assert.rejects(item.done, (err) => err.status === 503);
  assert.equal(item.state, "failed");
  assert.equal(item.attempts, 3);
  assert.deepEqual(c.seen, ["failed"]);
  assert.deepEqual(await stored(topic), []);
  item.retry();
  assert.equal(item.state, "pending");
  await item.done;
  assert.equal(item.state, "confirmed");
  assert.deepEqual(c.seen, ["failed", "pending", "confirmed"]);
  assert.equal((await stored(topic)).length, 1);

  // A refusal is final at once: no retries.
  const refused = publish(SLOW, {topic: "$sys/nope", data: 1}, {optimistic: true});
  await assert.rejects(refused.done, (err) => err.status === 403);
  assert.equal(refused.attempts, 1);
  assert.throws(() => publish(SLOW, {topics: ["a", "b"], data: 1}, {optimistic: true}), /one topic/);
});

test("onReorder gives the hub's order when it differs from the local one", async () => {
  const topic = unique("opt-order");
  const got = [];
  let delivered;
  const first = new Promise((r) => { delivered = r; });
  const sub = await live(topic, (e) => { got.push(e); delivered(); });
  const orders = [];
  await slow("/hold");
  let item;
  try {
    // The page shows its own message first; another publisher's event
    // reaches the hub before it.
    item = publish(SLOW, {topic, data: {text: "mine"}}, {optimistic: true, onReorder: (o) => orders.push(o)});
    await publish(HUB, {topic, data: {text: "theirs"}});
    await Promise.race([first, new Promise((_, no) => setTimeout(() => no(new Error("theirs was not delivered")), 10000).unref())]);
    assert.equal(got.length, 1);
  } finally {
    await slow("/release");
  }
  try {
    await item.done;
    assert.equal(item.seq, 2);
    assert.equal(orders.length, 1, "one reorder");
    assert.deepEqual(orders[0].map((e) => e === item ? "mine" : e.data.text), ["theirs", "mine"]);
    assert.equal(orders[0][0], got[0], "the event as delivered");

    // In order already: no reorder.
    const next = publish(HUB, {topic, data: {text: "again"}}, {optimistic: true, onReorder: (o) => orders.push(o)});
    await next.done;
    assert.equal(next.seq, 3);
    assert.equal(orders.length, 1);
  } finally {
    sub.close();
  }
});
