// Three SSE clients on one topic of a hub started with a short --heartbeat:
// @microsoft/fetch-event-source, the eventsource package (WHATWG
// EventSource), and a raw fetch that counts the comment lines going by.
// Once two heartbeats have passed, three events are published; the script
// prints one JSON line saying what each client received, and exits.
// Run by e2e/node_test.go (HUBBUB_URL, TOPIC).
import {fetchEventSource} from "@microsoft/fetch-event-source";
import {EventSource} from "eventsource";

// fetch-event-source is written for browsers.
globalThis.window ??= globalThis;
globalThis.document ??= {hidden: false, addEventListener() {}, removeEventListener() {}};

const hub = process.env.HUBBUB_URL;
const topic = process.env.TOPIC;
const url = hub + "/events?topic=" + encodeURIComponent(topic);
const state = {heartbeats: 0, comments: [], fetchMessages: [], fetchEmpty: 0, esMessages: [], published: false};
const abort = new AbortController();
const done = (code, extra) => {
  console.log(JSON.stringify({...state, ...extra}));
  abort.abort();
  es.close();
  process.exit(code);
};
setTimeout(() => done(1, {error: "timed out"}), 60_000).unref();

let fetchOpen = false;
let esOpen = false;
fetchEventSource(url, {
  signal: abort.signal,
  openWhenHidden: true,
  onopen: async (resp) => {
    if (resp.status !== 200) throw new Error("fetch-event-source: HTTP " + resp.status);
    fetchOpen = true;
  },
  onmessage: (m) => {
    if (m.data === "") state.fetchEmpty++;
    else state.fetchMessages.push(JSON.parse(m.data).data);
    check();
  },
  onerror: (err) => done(1, {error: "fetch-event-source: " + err}),
});

const es = new EventSource(url);
es.onopen = () => { esOpen = true; };
es.onmessage = (m) => { state.esMessages.push(JSON.parse(m.data).data); check(); };
es.onerror = (err) => done(1, {error: "eventsource: " + (err.message || err.type)});

// The raw stream: every line starting with ':' is a comment.
(async () => {
  const resp = await fetch(url, {headers: {accept: "text/event-stream"}, signal: abort.signal});
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of resp.body) {
    buf += dec.decode(chunk, {stream: true});
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith(":")) {
        state.comments.push(line);
        if (line === ": heartbeat") state.heartbeats++;
      }
    }
    await check();
  }
})().catch((err) => { if (!abort.signal.aborted) done(1, {error: "raw stream: " + err}); });

async function check() {
  if (!state.published && state.heartbeats >= 2 && fetchOpen && esOpen) {
    state.published = true;
    for (const n of [1, 2, 3]) {
      const r = await fetch(hub + "/publish", {method: "POST", headers: {"content-type": "application/json"},
        body: JSON.stringify({topic, data: n})});
      if (r.status !== 200) return done(1, {error: "publish: HTTP " + r.status});
    }
  }
  if (state.fetchMessages.length >= 3 && state.esMessages.length >= 3) done(0);
}
