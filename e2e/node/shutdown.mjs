// Real clients through a graceful stop and restart of the hub: a ws
// WebSocket subscription must see close code 1001 with a reason, and an
// eventsource EventSource must reconnect by itself (with Last-Event-ID)
// and get the event published after the restart, and nothing twice.
//
// Run by e2e/node_test.go (HUBBUB_URL, TOPIC): the script publishes one
// event, prints {"ready":true} once both clients have it, then waits
// while the test stops the hub, starts it again on the same address and
// publishes a second event; it prints one JSON line of what happened and
// exits.
import WebSocket from "ws";
import {EventSource} from "eventsource";

const hub = process.env.HUBBUB_URL;
const topic = process.env.TOPIC;
const state = {wsEvents: [], wsClose: null, esMessages: [], esIDs: [], esOpens: 0, esErrors: 0};
const done = (code, extra) => {
  console.log(JSON.stringify({...state, ...extra}));
  es.close();
  process.exit(code);
};
setTimeout(() => done(1, {error: "timed out"}), 90_000).unref();

let wsReady = false;
let ready = false;
const ws = new WebSocket(hub.replace(/^http/, "ws") + "/ws");
ws.on("open", () => ws.send(JSON.stringify({op: "subscribe", sub: "s", topic})));
ws.on("message", (raw) => {
  const m = JSON.parse(raw.toString());
  if (m.op === "subscribed") { wsReady = true; publishFirst(); }
  if (m.op === "event") { state.wsEvents.push(m.data); check(); }
});
ws.on("close", (code, reason) => { state.wsClose = {code, reason: reason.toString()}; check(); });
ws.on("error", (err) => { state.wsError = String(err); });

const es = new EventSource(hub + "/events?topic=" + encodeURIComponent(topic));
es.onopen = () => { state.esOpens++; publishFirst(); check(); };
es.onerror = () => { state.esErrors++; };
es.onmessage = (m) => { state.esMessages.push(JSON.parse(m.data).data); state.esIDs.push(m.lastEventId); check(); };

let published = false;
async function publishFirst() {
  if (published || !wsReady || state.esOpens < 1) return;
  published = true;
  const r = await fetch(hub + "/publish", {method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({topic, data: "before"})});
  if (r.status !== 200) done(1, {error: "publish: HTTP " + r.status});
}

function check() {
  if (!ready && state.wsEvents.length === 1 && state.esMessages.length === 1) {
    ready = true;
    console.log(JSON.stringify({ready: true}));
  }
  if (state.wsClose && state.esOpens >= 2 && state.esMessages.includes("after")) done(0);
}
