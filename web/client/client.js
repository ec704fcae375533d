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
 *   publish key sent as "Authorization: Bearer KEY". Resolves to the hub's
 *   answer ({events: [{topic, id, seq, epoch, time}]}); rejects with an
 *   Error carrying .status and .body when the hub refuses.
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
      if (filterFn && !filterFn(ev)) return;
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

    status("connecting");
    connect();
    return {
      close: function () {
        if (closed) return;
        closed = true;
        if (timer) clearTimeout(timer);
        abort();
        status("closed");
      },
      cursor: function () { return cursor; },
    };
  }

  function publish(baseUrl, event, options) {
    const opts = options || {};
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
