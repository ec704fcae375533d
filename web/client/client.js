/**
 * hubbub client: subscribe to and publish on a hubbub hub, from a browser
 * or Node (>= 18). No dependencies, no build step. In a page:
 *   <script src="https://HUB/client.js"></script>     (defines the global `hubbub`)
 * From npm (package hubbub-client; this same file, with TypeScript types):
 *   import hubbub from "hubbub-client";                 (or {subscribe, publish})
 *   const hubbub = require("hubbub-client");
 *
 * hubbub.subscribe(baseUrl, options) -> {close(), cursor()}
 *   baseUrl            the hub, e.g. "https://hub.example.com"; "" = this page's
 *                      origin (in a page only: elsewhere give the URL)
 *   options.topics     a topic or pattern, or an array of them (required)
 *   options.after      cursor to resume after (an event's id); default: from now on
 *   options.transport  "sse" (default), "ws" (WebSocket, GET /ws) or "poll" (long-poll)
 *   options.filter     an object of the hub's filter query parameters
 *                      ({tag, tags_all, near: "LAT,LON,RADIUS_M", q,
 *                      "where.PATH": value, fields: "a,b"}), applied by the hub
 *                      on every transport; or a function (event) => boolean
 *                      applied here, in the client
 *   options.headers    an object of extra request headers for the SSE and
 *                      long-poll requests, e.g. {Authorization: "Bearer KEY"}
 *                      (the admin key that $sys/ topics need). Over WebSocket
 *                      they go only with options.WebSocket (browsers cannot
 *                      send headers there). From another origin, headers
 *                      other than Accept make the browser ask the hub first
 *                      (CORS preflight)
 *   options.token      a token (or key) for private topics: sent as
 *                      "Authorization: Bearer TOKEN" on SSE and long-poll, and
 *                      as {"op":"auth"} first thing over WebSocket
 *   options.WebSocket  the WebSocket class to use for transport "ws"; default
 *                      the global one. Node before 22 has none: pass the ws
 *                      package's (require("ws")), which also sends
 *                      options.headers with the upgrade request
 *   options.onEvent(event)          each event, as the hub's event JSON
 *   options.onReset(reset)          {topic, reason, cursor}: history was lost
 *   options.onStatus(status, info)  "connecting", "live", "reconnecting",
 *                                   "closed" or "error" (info: {transport, error, delay})
 *
 *   Every (re)connection resumes from the last cursor, so nothing is missed
 *   while history holds it; events are deduplicated by (topic, seq), so a
 *   reconnect never shows one twice. Reconnects back off exponentially with
 *   jitter (0.25 s up to 10 s). SSE is read with fetch (so events of every
 *   type arrive, not only "message"); when the stream cannot be opened twice
 *   in a row it falls back to long-polling with the last cursor, and tries
 *   SSE again later. A 4xx answer (bad topic or cursor) is final: "error".
 *   So is a hub on another origin that refuses this page's origin (CORS:
 *   start it with --cors-origin ORIGIN): after two such refusals in a row,
 *   "error" with an error that says so, not endless "reconnecting".
 *
 * hubbub.publish(baseUrl, event, {key, idempotencyKey}) -> Promise<answer>
 *   POST /publish with the event (or an array of events) as JSON; `key` is a
 *   publish key or token sent as "Authorization: Bearer KEY". Resolves to the
 *   hub's answer ({events: [{topic, id, seq, epoch, time}]}); rejects with an
 *   Error carrying .status and .body when the hub refuses.
 *
 * hubbub.publish(baseUrl, event, {optimistic: true, key, retries, timeout,
 *                onChange, onReorder}) -> item   (at once, not a promise)
 *   For pages that show what their user posts at once (one event, one
 *   topic). item = {client_id, topic, event, state: "pending" | "confirmed"
 *   | "failed", id, seq, time, error, attempts, done: Promise<item>,
 *   retry()}. client_id is the event's idempotency_key (made up unless the
 *   event has one), so the hub stores it once however often it is sent.
 *   The item is confirmed, with the hub's id, seq and time, by the publish
 *   answer or by its echo (the event coming back, with the same client_id,
 *   on any subscription of this client), whichever comes first. A publish
 *   that fails for a reason that may pass (no answer, timeout after
 *   options.timeout ms (10000), 408, 429, 5xx) is sent again with the same
 *   client_id, with backoff, up to options.retries times (5); a refusal
 *   (other 4xx) or running out of retries makes it "failed" (item.error;
 *   item.retry() makes it "pending" again, with a new done, and sends it
 *   again). onChange(item) follows each change of state; done resolves
 *   when confirmed and rejects when failed.
 *   Order sync: the client keeps, per topic, the order in which the page
 *   was told of things from the first unsettled optimistic item on (its own
 *   items when published, other events as delivered to its subscriptions).
 *   When the hub's order (seq) differs, onReorder(order) gets those items
 *   and events in the hub's order, still pending ones last: the page moves
 *   them, in that order, to the end of what it shows.
 *
 * Example:
 *   const sub = hubbub.subscribe("", {topics: "photos/**", onEvent: (e) => console.log(e)});
 *   await hubbub.publish("", {topic: "photos/user/42", data: {title: "kitten"}});
 *   sub.close();
 */
(function (root) {
  "use strict";

  const BASE_DELAY = 250;
  const MAX_DELAY = 10000;
  const POLL_TIMEOUT = "25";
  const SSE_RETRY_AFTER = 30000; // in long-poll fallback, try SSE again after this

  function trimBase(baseUrl) {
    let b = baseUrl == null ? "" : String(baseUrl);
    if (b === "" && typeof location !== "undefined") b = location.origin;
    return b.replace(/\/+$/, "");
  }

  function httpError(status, body) {
    const err = new Error("hubbub: HTTP " + status + ": " + String(body).trim());
    err.status = status;
    err.body = body;
    return err;
  }

  // wsFilter turns the filter query parameters into the members of a
  // WebSocket subscribe: {filter: {tags, near, where, contains}, fields}.
  function wsFilter(p) {
    const f = {}, out = {};
    const list = (v) => [].concat(v).map(String);
    for (const k of Object.keys(p)) {
      const v = p[k];
      if (k === "tag") (f.tags = f.tags || {}).any = list(v);
      else if (k === "tags_all") (f.tags = f.tags || {}).all = list(v);
      else if (k === "q") f.contains = String(v);
      else if (k === "fields") out.fields = String(v).split(",");
      else if (k === "near") {
        const [lat, lon, r] = String(v).split(",").map(Number);
        f.near = {lat: lat, lon: lon, radius_m: r};
      } else if (k.startsWith("where.")) {
        let val = v;
        try { val = JSON.parse(v); } catch (e) { /* a plain string */ }
        (f.where = f.where || {})[k.slice(6)] = val;
      }
    }
    if (Object.keys(f).length) out.filter = f;
    return out;
  }

  function subscribe(baseUrl, options) {
    const opts = options || {};
    const base = trimBase(baseUrl);
    if (base === "") throw new Error("hubbub.subscribe: give the hub's URL (there is no page origin here)");
    const topics = [].concat(opts.topics || []);
    if (topics.length === 0) throw new Error("hubbub.subscribe: give options.topics");
    const want = opts.transport || "sse";
    if (want !== "sse" && want !== "ws" && want !== "poll") {
      throw new Error('hubbub.subscribe: transport must be "sse", "ws" or "poll"');
    }
    const filterFn = typeof opts.filter === "function" ? opts.filter : null;
    const filterParams = opts.filter && !filterFn ? opts.filter : null;
    const noop = function () {};
    const onEvent = opts.onEvent || noop;
    const onReset = opts.onReset || noop;
    const onStatus = opts.onStatus || noop;
    const extraHeaders = Object.assign({}, opts.headers || {});
    if (opts.token) extraHeaders.Authorization = "Bearer " + opts.token;

    let cursor = opts.after ? String(opts.after) : "";
    let mode = want;
    let closed = false;
    let attempt = 0; // failed connection attempts in a row
    let sseFailures = 0; // SSE streams in a row that never opened
    let fallbackSince = 0; // when SSE fell back to long-poll
    let timer = null;
    let abort = noop; // ends the connection in progress
    let lastStatus = "";
    let refusals = 0; // failures in a row that look like a CORS refusal
    const lastSeq = new Map(); // topic -> highest seq shown

    function status(s, info) {
      if (s === lastStatus && s !== "error") return;
      lastStatus = s;
      try {
        onStatus(s, Object.assign({transport: mode}, info || {}));
      } catch (e) {
        setTimeout(function () { throw e; });
      }
    }

    function deliver(ev) {
      if (ev && typeof ev.topic === "string" && typeof ev.seq === "number") {
        const last = lastSeq.get(ev.topic);
        if (last !== undefined && ev.seq <= last) return; // a duplicate
        lastSeq.set(ev.topic, ev.seq);
      }
      const own = echo(ev);
      if (filterFn && !filterFn(ev)) return;
      if (!own) track(ev);
      try {
        onEvent(ev);
      } catch (e) {
        setTimeout(function () { throw e; });
      }
    }

    function reset(r) {
      if (r.topic) lastSeq.delete(r.topic); // seqs go on from the reset cursor
      try {
        onReset(r);
      } catch (e) {
        setTimeout(function () { throw e; });
      }
    }

    function eventsURL(extra) {
      const q = new URLSearchParams();
      for (const t of topics) q.append("topic", t);
      if (filterParams) {
        for (const k of Object.keys(filterParams)) {
          for (const v of [].concat(filterParams[k])) q.append(k, String(v));
        }
      }
      for (const k of Object.keys(extra)) {
        if (extra[k] !== "" && extra[k] != null) q.set(k, extra[k]);
      }
      return base + "/events?" + q.toString();
    }

    // failed handles a request that ended without an answer the page may
    // read. Cross-origin, that is a network error or a CORS refusal,
    // which the browser does not tell apart; a no-cors request to the hub
    // (answered, but unreadable) does: when it gets through twice in a
    // row the hub is up and refuses this origin, which is final ("error").
    function failed(err) {
      if (typeof location === "undefined" || err.status || new URL(base, location.href).origin === location.origin) return retry(err);
      fetch(base + "/healthz", {mode: "no-cors", cache: "no-store"}).then(function () {
        if (closed) return;
        if (++refusals < 2) return retry(err);
        fatal(new Error("hubbub: " + base + " refuses pages from " + location.origin +
          " (CORS); its operator can allow them with --cors-origin " + location.origin));
      }, function () {
        refusals = 0;
        retry(err);
      });
    }

    function fatal(err) {
      closed = true;
      abort();
      status("error", {error: err});
    }

    // retry schedules the next connection after a failure, with
    // exponential backoff and full jitter in its upper half.
    function retry(err) {
      if (closed) return;
      attempt++;
      const cap = Math.min(MAX_DELAY, BASE_DELAY * Math.pow(2, attempt - 1));
      const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
      status("reconnecting", {error: err, delay: delay});
      timer = setTimeout(connect, delay);
    }

    function connected() {
      attempt = 0;
      refusals = 0;
      status("live");
    }

    function connect() {
      timer = null;
      if (closed) return;
      if (mode === "poll" && want === "sse" && Date.now() - fallbackSince > SSE_RETRY_AFTER) {
        mode = "sse";
        sseFailures = 0;
      }
      if (mode === "ws") return connectWS();
      if (!cursor) return poll(true); // learn the cursor of "now" first
      if (mode === "sse") return connectSSE();
      return poll(false);
    }

    // poll does one long-poll (quick: only to learn the current cursor).
    function poll(quick) {
      const ctrl = new AbortController();
      abort = function () { ctrl.abort(); };
      const url = eventsURL({wait: "poll", timeout: quick ? "1ms" : POLL_TIMEOUT, after: cursor});
      fetch(url, {headers: extraHeaders, signal: ctrl.signal, cache: "no-store"}).then(function (resp) {
        return resp.text().then(function (text) {
          if (!resp.ok) throw httpError(resp.status, text);
          return JSON.parse(text);
        });
      }).then(function (body) {
        if (closed) return;
        if (mode !== "sse" || !quick) connected();
        const resets = body.resets || (body.reset ? [body.reset] : []);
        for (const r of resets) reset(r);
        for (const ev of body.events || []) deliver(ev);
        if (body.cursor) cursor = body.cursor;
        connect();
      }).catch(function (err) {
        if (closed) return;
        if (err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429) return fatal(err);
        failed(err);
      });
    }

    function connectSSE() {
      const ctrl = new AbortController();
      abort = function () { ctrl.abort(); };
      let opened = false;
      fetch(eventsURL({after: cursor}), {
        headers: Object.assign({}, extraHeaders, {Accept: "text/event-stream"}), signal: ctrl.signal, cache: "no-store",
      }).then(function (resp) {
        const ct = resp.headers.get("Content-Type") || "";
        if (!resp.ok || ct.indexOf("text/event-stream") !== 0 || !resp.body) {
          return resp.text().then(function (text) { throw httpError(resp.status, text); });
        }
        opened = true;
        sseFailures = 0;
        connected();
        return readSSE(resp.body.getReader());
      }).then(function () {
        if (closed) return;
        retry(new Error("hubbub: the event stream ended"));
      }, function (err) {
        if (closed) return;
        if (err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429) return fatal(err);
        if (!opened && ++sseFailures >= 2) {
          mode = "poll";
          fallbackSince = Date.now();
        }
        if (opened) return retry(err);
        failed(err);
      });
    }

    // readSSE parses a text/event-stream body as the HTML standard says.
    function readSSE(reader) {
      const dec = new TextDecoder();
      let buf = "";
      let data = [];
      let type = "";
      let id = null;
      function line(l) {
        if (l === "") {
          if (data.length > 0) dispatch(type || "message", data.join("\n"), id);
          else if (id) cursor = id; // an id alone (the start of a pattern stream)
          data = [];
          type = "";
          id = null;
          return;
        }
        if (l[0] === ":") return;
        const i = l.indexOf(":");
        const field = i < 0 ? l : l.slice(0, i);
        let value = i < 0 ? "" : l.slice(i + 1);
        if (value[0] === " ") value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") type = value;
        else if (field === "id" && value.indexOf("\0") < 0) id = value;
      }
      function pump() {
        return reader.read().then(function (r) {
          if (r.done || closed) return;
          buf += dec.decode(r.value, {stream: true});
          // A "\r" at the end may be half of a "\r\n": keep it for later.
          const held = buf[buf.length - 1] === "\r" ? "\r" : "";
          const lines = (held ? buf.slice(0, -1) : buf).split(/\r\n|\r|\n/);
          buf = lines.pop() + held;
          for (const l of lines) line(l);
          return pump();
        });
      }
      return pump();
    }

    function dispatch(type, data, id) {
      let v;
      try {
        v = JSON.parse(data);
      } catch (e) {
        return; // not ours
      }
      if (id) cursor = id;
      if (type === "reset") reset(v);
      else deliver(v);
    }

    function connectWS() {
      const WS = opts.WebSocket || (typeof WebSocket !== "undefined" ? WebSocket : null);
      if (!WS) {
        return fatal(new Error('hubbub: there is no WebSocket here; pass options.WebSocket (such as require("ws")) or use transport "sse"'));
      }
      let ws;
      try {
        const url = base.replace(/^http/, "ws") + "/ws";
        // The third argument is the ws package's options; browsers ignore it.
        ws = opts.WebSocket && Object.keys(extraHeaders).length ? new WS(url, [], {headers: extraHeaders}) : new WS(url);
      } catch (err) {
        return fatal(err);
      }
      abort = function () { ws.close(1000); };
      ws.onopen = function () {
        if (opts.token) ws.send(JSON.stringify({op: "auth", token: String(opts.token)}));
        const msg = {op: "subscribe", sub: "s", topics: topics};
        if (cursor) msg.after = cursor;
        if (filterParams) Object.assign(msg, wsFilter(filterParams));
        ws.send(JSON.stringify(msg));
      };
      ws.onmessage = function (m) {
        let msg;
        try {
          msg = JSON.parse(m.data);
        } catch (e) {
          return;
        }
        switch (msg.op) {
          case "subscribed":
            if (!cursor && msg.cursor) cursor = msg.cursor;
            connected();
            break;
          case "event": {
            cursor = msg.cursor || msg.id || cursor;
            const ev = Object.assign({}, msg);
            delete ev.op;
            delete ev.sub;
            delete ev.cursor;
            deliver(ev);
            break;
          }
          case "reset":
            // A reset's cursor is its topic's; it is the subscription's only
            // for one concrete topic (otherwise the next event's cursor is).
            if (topics.length === 1 && topics[0].indexOf("*") < 0 && msg.cursor) cursor = msg.cursor;
            reset({topic: msg.topic, reason: msg.reason, cursor: msg.cursor});
            break;
          case "error":
            if (msg.code === "bad_request" || msg.code === "forbidden") fatal(new Error("hubbub: " + msg.message));
            else ws.close(1000);
            break;
        }
      };
      ws.onclose = function (e) {
        if (closed) return;
        retry(new Error("hubbub: WebSocket closed (" + e.code + (e.reason ? ": " + e.reason : "") + ")"));
      };
    }

    const watch = {topics: topics, open: function () { return !closed; }};
    watching.add(watch);
    status("connecting");
    connect();
    return {
      close: function () {
        if (closed) return;
        closed = true;
        watching.delete(watch);
        if (timer) clearTimeout(timer);
        abort();
        status("closed");
      },
      cursor: function () { return cursor; },
    };
  }

  // Optimistic publishing. pending: the items not settled yet, by
  // client_id. trackers: per topic (of whichever hub), the local order of items and
  // events since the first unsettled item. watching: the open
  // subscriptions, to know whether an item's echo will come.
  const RETRIES = 5;
  const PUBLISH_TIMEOUT = 10000;
  const ECHO_WAIT = 5000; // after its answer, how long an item waits for its echo
  const MAX_TRACKED = 1000; // entries remembered per topic for order sync
  const pending = new Map();
  const settled = new Set(); // client_ids of the last settled items, so late echoes are known as own
  const SETTLED_KEPT = 1000;
  const trackers = new Map();
  const watching = new Set();

  function newClientID() {
    const c = typeof crypto !== "undefined" && crypto.getRandomValues ? crypto : null;
    let hex = "";
    if (c) {
      for (const b of c.getRandomValues(new Uint8Array(12))) hex += (b < 16 ? "0" : "") + b.toString(16);
    } else {
      for (let i = 0; i < 3; i++) hex += Math.random().toString(16).slice(2, 10);
    }
    return "c-" + hex;
  }

  // matches reports whether pattern (with * and **) covers topic.
  function matches(pattern, topic) {
    if (pattern.indexOf("*") < 0) return pattern === topic;
    const p = pattern.split("/"), t = topic.split("/");
    function at(i, j) {
      if (i === p.length) return j === t.length;
      if (p[i] === "**") {
        const min = i === p.length - 1 ? 1 : 0; // a trailing ** needs a segment
        for (let k = j + min; k <= t.length; k++) if (at(i + 1, k)) return true;
        return false;
      }
      return j < t.length && (p[i] === "*" || p[i] === t[j]) && at(i + 1, j + 1);
    }
    return at(0, 0);
  }

  function covered(topic) {
    for (const w of watching) {
      if (w.open() && w.topics.some(function (p) { return matches(p, topic); })) return true;
    }
    return false;
  }

  function later(fn, ms) {
    const t = setTimeout(fn, ms);
    if (t && typeof t.unref === "function") t.unref(); // never keeps Node running
    return t;
  }

  function call(fn, a, b) {
    if (!fn) return;
    try {
      fn(a, b);
    } catch (e) {
      setTimeout(function () { throw e; });
    }
  }

  // echo confirms the item whose echo ev is; it reports whether ev is one.
  function echo(ev) {
    const item = ev && ev.client_id ? pending.get(ev.client_id) : null;
    if (!item || item.topic !== ev.topic) return !!(ev && ev.client_id && settled.has(ev.client_id));
    item._echoed = true;
    item._confirm(ev, "echo");
    return true;
  }

  function track(ev) {
    const tr = trackers.get(ev.topic);
    if (!tr) return;
    tr.entries.push(ev);
    if (tr.entries.length > MAX_TRACKED) {
      // A busy topic while an item waits long: forget the oldest event.
      const i = tr.entries.findIndex(function (e) { return !e._tracker; });
      if (i >= 0) tr.entries.splice(i, 1);
    }
    sync(tr);
  }

  // sync calls onReorder when the entries that have a seq are out of order.
  function sync(tr) {
    let last = 0, sorted = true;
    for (const e of tr.entries) {
      if (typeof e.seq !== "number") continue;
      if (e.seq < last) sorted = false;
      last = e.seq;
    }
    if (sorted) return;
    const placed = tr.entries.filter(function (e) { return typeof e.seq === "number"; });
    placed.sort(function (a, b) { return a.seq - b.seq; });
    tr.entries = placed.concat(tr.entries.filter(function (e) { return typeof e.seq !== "number"; }));
    call(tr.onReorder, tr.entries.slice());
  }

  // settle drops the tracker of the item's topic once none of its items
  // may still move: each failed, or confirmed and echoed (so every event
  // before it was delivered) or not expecting an echo any more.
  function settle(tr) {
    for (const e of tr.entries) {
      if (e._tracker === tr && !e._settled()) return;
    }
    if (trackers.get(tr.key) === tr) trackers.delete(tr.key);
  }

  function publishOptimistic(base, event, opts) {
    if (!event || typeof event !== "object" || Array.isArray(event)) {
      throw new Error("hubbub.publish: an optimistic publish is one event");
    }
    const topics = [].concat(event.topics || event.topic || []);
    if (topics.length !== 1) throw new Error("hubbub.publish: an optimistic publish names one topic");
    const body = Object.assign({}, event);
    body.idempotency_key = event.idempotency_key || newClientID();
    const retries = opts.retries == null ? RETRIES : Math.max(0, opts.retries | 0);
    const timeout = opts.timeout || PUBLISH_TIMEOUT;
    const headers = {"Content-Type": "application/json"};
    if (opts.key) headers.Authorization = "Bearer " + opts.key;
    const key = topics[0];
    let tr = trackers.get(key);
    if (!tr) {
      tr = {key: key, entries: [], onReorder: null};
      trackers.set(key, tr);
    }
    if (opts.onReorder) tr.onReorder = opts.onReorder;

    let resolve, reject, timer = null, echoTimer = null, inflight = null;
    const item = {
      client_id: body.idempotency_key, topic: topics[0], event: body,
      state: "pending", id: null, seq: null, time: null, error: null, attempts: 0, done: null,
      retry: function () {
        if (item.state !== "failed") return;
        item.state = "pending";
        item.error = null;
        item.attempts = 0;
        begin();
        call(opts.onChange, item);
      },
    };
    Object.defineProperties(item, {
      _tracker: {value: tr, writable: true},
      _echoed: {value: false, writable: true},
      _settled: {value: function () {
        return item.state === "failed" || (item.state === "confirmed" && (item._echoed || !echoTimer));
      }},
      _confirm: {value: confirm},
    });

    function begin() {
      item.done = new Promise(function (ok, no) { resolve = ok; reject = no; });
      item.done.catch(function () {}); // a page that ignores done sees no unhandled rejection
      pending.set(item.client_id, item);
      if (tr.entries.indexOf(item) < 0) {
        if (trackers.get(key) !== tr) trackers.set(key, tr);
        tr.entries.push(item);
      }
      send();
    }

    function send() {
      if (item.state !== "pending") return;
      item.attempts++;
      const ctrl = typeof AbortController !== "undefined" ? new AbortController() : null;
      const attempt = {};
      inflight = attempt;
      const limit = later(function () { if (ctrl) ctrl.abort(); }, timeout);
      fetch(base + "/publish", {
        method: "POST", headers: headers, body: JSON.stringify(body), signal: ctrl ? ctrl.signal : undefined,
      }).then(function (resp) {
        return resp.text().then(function (text) {
          if (!resp.ok) {
            const err = httpError(resp.status, text);
            err.retryAfter = Number(resp.headers.get("Retry-After")) || 0;
            throw err;
          }
          return JSON.parse(text);
        });
      }).then(function (answer) {
        clearTimeout(limit);
        const r = answer && answer.events && answer.events[0];
        if (r) confirm(r, "answer");
      }, function (err) {
        clearTimeout(limit);
        if (inflight !== attempt || item.state !== "pending") return;
        const s = err.status || 0;
        const final = s >= 400 && s < 500 && s !== 408 && s !== 429;
        if (final || item.attempts > retries) return fail(err);
        const cap = Math.min(MAX_DELAY, BASE_DELAY * Math.pow(2, item.attempts - 1));
        const delay = Math.max(err.retryAfter * 1000 || 0, Math.round(cap / 2 + Math.random() * (cap / 2)));
        timer = setTimeout(send, delay);
      });
    }

    // confirm takes the hub's place for the item from its answer or its
    // echo, whichever comes first.
    function confirm(r, by) {
      if (item.state === "confirmed") {
        if (by === "echo") finish();
        return;
      }
      if (item.state !== "pending") return;
      if (timer) clearTimeout(timer);
      timer = null;
      inflight = null;
      item.state = "confirmed";
      item.id = r.id;
      item.seq = r.seq;
      item.time = r.time;
      item.confirmedBy = by;
      if (!item._echoed && covered(item.topic)) {
        echoTimer = later(finish, ECHO_WAIT);
      } else {
        forget();
      }
      sync(tr);
      call(opts.onChange, item);
      resolve(item);
      settle(tr);
    }

    function finish() {
      if (echoTimer) clearTimeout(echoTimer);
      echoTimer = null;
      forget();
      settle(tr);
    }

    function forget() {
      pending.delete(item.client_id);
      settled.add(item.client_id);
      if (settled.size > SETTLED_KEPT) settled.delete(settled.values().next().value);
    }

    function fail(err) {
      item.state = "failed";
      item.error = err;
      forget();
      const i = tr.entries.indexOf(item);
      if (i >= 0) tr.entries.splice(i, 1);
      call(opts.onChange, item);
      reject(err);
      settle(tr);
    }

    begin();
    return item;
  }

  function publish(baseUrl, event, options) {
    const opts = options || {};
    if (opts.optimistic) {
      const b = trimBase(baseUrl);
      if (b === "") throw new Error("hubbub.publish: give the hub's URL (there is no page origin here)");
      return publishOptimistic(b, event, opts);
    }
    const headers = {"Content-Type": "application/json"};
    if (opts.key) headers.Authorization = "Bearer " + opts.key;
    if (opts.idempotencyKey) headers["Idempotency-Key"] = opts.idempotencyKey;
    const base = trimBase(baseUrl);
    if (base === "") return Promise.reject(new Error("hubbub.publish: give the hub's URL (there is no page origin here)"));
    return fetch(base + "/publish", {
      method: "POST", headers: headers, body: JSON.stringify(event),
    }).then(function (resp) {
      return resp.text().then(function (text) {
        if (!resp.ok) throw httpError(resp.status, text);
        return JSON.parse(text);
      });
    });
  }

  const api = {subscribe: subscribe, publish: publish};
  if (typeof module === "object" && module && module.exports) module.exports = api;
  else root.hubbub = api;
})(typeof globalThis !== "undefined" ? globalThis : this);
