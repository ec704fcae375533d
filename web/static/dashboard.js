// The dashboard. It watches the hub through the hub itself: it subscribes
// (with client.js, over SSE) to $sys/stats/*, where every node publishes
// its GET /api/stats body every 2 s while someone watches (on any node),
// and renders per node the connections, counters and busiest topics; the
// nodes panel lists the nodes seen there and those GET /api/nodes lists.
// Rates come from the difference of two reports of a node (by the node's
// own clock); every 2 s the charts (charts.js) take the sum over the
// nodes reporting of their latest rates and counts, and the largest
// webhook backlog (each node reports the whole deployment's). Both need admin rights: the admin key, kept in
// sessionStorage and sent as "Authorization: Bearer KEY", or a loopback
// client when the hub has no --admin-key.
//
// Optional APIs (GET /api/nodes, GET /api/subscriptions) are asked only
// when the stats body lists them in `features` ("nodes", "websub"), since
// Chromium logs every 4xx answer to a fetch as a console error. For the
// same reason the page learns whether it needs a key without a failing
// request: it asks for $sys/stats/* over WebSocket first, whose refusal is
// a message, not an HTTP error.
(function () {
  "use strict";
  const KEY_ITEM = "hubbub.adminKey";
  const STATS_TOPIC = "$sys/stats/*";
  const POLL_EVERY = 5000; // optional APIs
  const SILENT_AFTER = 10000; // a node with no report for this long is "silent"
  const TAIL_MAX = 100;
  const TRANSPORTS = ["sse", "ws", "poll", "stream"];
  const SAMPLE_EVERY = 2000; // charts
  const COLORS = {a: "#f5b83d", b: "#8cc8ff", c: "#7ee2a8", d: "#ff9b8f"};

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function fmt(n) {
    return n === undefined || n === null || n === "" ? "–" : Number(n).toLocaleString("en");
  }

  // when shows an RFC 3339 time as a local time (and date, when not today).
  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    if (isNaN(d) || d.getFullYear() < 2000) return "–";
    return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function timeEl(iso) {
    const t = el("time", when(iso));
    if (iso) t.dateTime = iso;
    return t;
  }

  // table builds a captioned table; cols are [label, isNumeric].
  function table(caption, cols) {
    const t = el("table");
    t.append(el("caption", caption, "muted"));
    const tr = el("tr");
    for (const [label, num] of cols) {
      const th = el("th", label, num ? "num" : undefined);
      th.scope = "col";
      tr.append(th);
    }
    const thead = el("thead");
    thead.append(tr);
    const tbody = el("tbody");
    t.append(thead, tbody);
    return {table: t, body: tbody};
  }

  // --- admin access ---------------------------------------------------------

  let adminKey = "";
  try {
    adminKey = sessionStorage.getItem(KEY_ITEM) || "";
  } catch (e) { /* no storage: ask each time */ }

  function authHeaders() {
    return adminKey ? {Authorization: "Bearer " + adminKey} : {};
  }

  function saveKey(k) {
    adminKey = k;
    try {
      if (k) sessionStorage.setItem(KEY_ITEM, k);
      else sessionStorage.removeItem(KEY_ITEM);
    } catch (e) { /* kept in memory only */ }
    document.getElementById("key-forget").hidden = !k;
  }

  // getJSON fetches an admin API path: {status, body} (body null unless 200).
  function getJSON(path) {
    return fetch(path, {headers: authHeaders(), cache: "no-store"}).then(function (r) {
      if (!r.ok) return r.text().then(function () { return {status: r.status, body: null}; });
      return r.json().then(function (b) { return {status: r.status, body: b}; });
    });
  }

  // probeAdmin asks for $sys/stats/* over WebSocket, which answers a
  // refusal with a message, so nothing is logged: true when this client is
  // an admin without a key, false when refused.
  function probeAdmin() {
    return new Promise(function (resolve, reject) {
      let ws;
      try {
        ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws");
      } catch (e) {
        reject(e);
        return;
      }
      let done = false;
      const finish = function (ok, err) {
        if (done) return;
        done = true;
        clearTimeout(timer);
        ws.onclose = null;
        ws.close(1000);
        if (err) reject(err);
        else resolve(ok);
      };
      const timer = setTimeout(function () { finish(false, new Error("no answer")); }, 5000);
      ws.onopen = function () {
        ws.send(JSON.stringify({op: "subscribe", sub: "probe", topics: [STATS_TOPIC]}));
      };
      ws.onmessage = function (m) {
        let msg;
        try {
          msg = JSON.parse(m.data);
        } catch (e) {
          return;
        }
        if (msg.op === "subscribed") finish(true);
        else if (msg.op === "error" && msg.code === "forbidden") finish(false);
        else if (msg.op === "error") finish(false, new Error(msg.message || msg.code));
      };
      ws.onclose = function () { finish(false, new Error("closed")); };
    });
  }

  const pill = document.getElementById("stats-status");
  function setPill(text, cls) {
    pill.textContent = text;
    pill.className = "status-pill " + (cls || "");
  }

  const keyPanel = document.getElementById("panel-key");
  const keyInput = document.getElementById("admin-key");
  const keyError = document.getElementById("key-error");

  function askKey(why) {
    stop();
    setPill("Admin key needed", "error");
    keyError.textContent = why || "";
    keyPanel.hidden = false;
    keyInput.value = "";
    keyInput.focus();
    document.getElementById("subs-status").textContent = "Needs the admin key.";
  }

  document.getElementById("key-form").addEventListener("submit", function (e) {
    e.preventDefault();
    const k = keyInput.value.trim();
    if (!k) return;
    saveKey(k);
    keyPanel.hidden = true;
    keyError.textContent = "";
    start();
  });
  document.getElementById("key-forget").addEventListener("click", function () {
    saveKey("");
    begin();
  });

  // --- stats: per node panels and the nodes panel ----------------------------

  const nodes = new Map(); // node -> {stats, seen, section parts, rows}
  const nodePanels = document.getElementById("node-panels");
  let features = [];
  let apiNodes = null; // the last /api/nodes list, when the hub offers it

  function nodeView(name) {
    let n = nodes.get(name);
    if (n) return n;
    const i = nodes.size;
    const sec = el("section", undefined, "panel node");
    sec.dataset.node = name;
    sec.setAttribute("aria-labelledby", "h-node-" + i);
    const h = el("h2", "Node ");
    h.id = "h-node-" + i;
    h.append(el("code", name));
    const updated = el("p", "", "muted updated");
    const conns = table("Open connections by transport", [["Transport"], ["Open", true]]);
    conns.table.className = "connections";
    const counters = el("dl", undefined, "counters");
    const grid = el("div", undefined, "node-grid");
    grid.append(conns.table, counters);
    const topics = table("Busiest topics on this node", [["Topic"], ["Events/min", true], ["History", true],
      ["Subscribers", true], ["Last seq", true], ["Last event"]]);
    topics.table.className = "topics";
    const scroll = el("div", undefined, "scroll");
    scroll.append(topics.table);
    const none = el("p", "No events published through this node yet.", "muted");
    sec.append(h, updated, grid, scroll, none);
    nodePanels.append(sec);
    n = {name: name, stats: null, seen: 0, updated: updated, conns: conns.body, counters: counters,
      topics: topics.body, none: none, rows: new Map(), rates: {}};
    nodes.set(name, n);
    return n;
  }

  function renderStats(st) {
    if (!st || typeof st.node !== "string") return;
    const n = nodeView(st.node);
    n.rates = rates(n.stats, st);
    n.stats = st;
    n.seen = Date.now();
    if (Array.isArray(st.features)) features = st.features.map(String);
    n.updated.textContent = "Report of " + when(st.time);

    const conns = st.connections || {};
    const names = TRANSPORTS.concat(Object.keys(conns).filter(function (t) { return TRANSPORTS.indexOf(t) < 0; }).sort());
    const rows = [];
    for (const t of names) {
      const tr = el("tr");
      tr.dataset.transport = t;
      const th = el("th", t);
      th.scope = "row";
      tr.append(th, el("td", fmt(conns[t] || 0), "num"));
      rows.push(tr);
    }
    n.conns.replaceChildren.apply(n.conns, rows);

    const wh = st.webhooks || {};
    const counters = [["Events in (published here)", "events_in", st.events_in], ["Delivered", "delivered", st.delivered],
      ["Cut off (slow)", "cut_off", st.cut_off], ["Live subscriptions", "live_subscriptions", st.live_subscriptions],
      ["Webhook POSTs ok", "deliveries_ok", wh.deliveries_ok], ["Webhook POSTs failed", "deliveries_failed", wh.deliveries_failed]];
    const dl = [];
    for (const [label, key, value] of counters) {
      const dd = el("dd", fmt(value));
      dd.dataset.metric = key;
      dl.push(el("dt", label), dd);
    }
    n.counters.replaceChildren.apply(n.counters, dl);
    renderTopics(n, Array.isArray(st.topics) ? st.topics : []);
    renderNodes();
  }

  // renderTopics updates the rows in place, so a focused link keeps focus.
  function renderTopics(n, topics) {
    const seen = new Set();
    let prev = null;
    for (const t of topics) {
      let tr = n.rows.get(t.topic);
      if (!tr) {
        tr = el("tr");
        tr.dataset.topic = t.topic;
        const th = el("th");
        th.scope = "row";
        const a = el("a", t.topic);
        a.href = "?topic=" + encodeURIComponent(t.topic);
        a.title = "Show a live tail of " + t.topic;
        a.addEventListener("click", function (e) {
          e.preventDefault();
          tail.watch(t.topic);
        });
        th.append(a);
        tr.append(th);
        for (const col of ["rate_per_min", "history", "subscribers", "last_seq", "last_time"]) {
          const td = el("td", "", col === "last_time" ? undefined : "num");
          td.dataset.col = col;
          tr.append(td);
        }
        n.rows.set(t.topic, tr);
      }
      const cells = tr.querySelectorAll("td");
      cells[0].textContent = Number(t.rate_per_min || 0).toFixed(2);
      cells[1].textContent = fmt(t.history);
      // The total, then how it splits by transport ("sse 2 · ws 1").
      const by = t.subscribers_by_transport || {};
      const parts = Object.keys(by).filter((k) => by[k] > 0).sort().map((k) => (k || "other") + " " + by[k]);
      cells[2].textContent = fmt(t.subscribers) + (parts.length ? " (" + parts.join(" · ") + ")" : "");
      cells[3].textContent = fmt(t.last_seq);
      cells[4].replaceChildren(timeEl(t.last_time));
      const want = prev ? prev.nextSibling : n.topics.firstChild;
      if (want !== tr) n.topics.insertBefore(tr, want);
      prev = tr;
      seen.add(t.topic);
    }
    for (const [topic, tr] of n.rows) {
      if (!seen.has(topic)) {
        tr.remove();
        n.rows.delete(topic);
      }
    }
    n.none.hidden = topics.length > 0;
  }

  // rates are a node's counters per second between two of its reports
  // (null where a counter went down: the node restarted).
  function rates(prev, st) {
    const out = {};
    if (!prev || !st) return out;
    const dt = (Date.parse(st.time) - Date.parse(prev.time)) / 1000;
    if (!(dt > 0)) return out;
    const get = {
      events_in: function (x) { return x.events_in; },
      delivered: function (x) { return x.delivered; },
      webhook_failed: function (x) { return (x.webhooks || {}).deliveries_failed; },
    };
    for (const k of Object.keys(get)) {
      const a = Number(get[k](prev)), b = Number(get[k](st));
      out[k] = isNaN(a) || isNaN(b) || b < a ? null : (b - a) / dt;
    }
    return out;
  }

  function nodeName(x) {
    if (typeof x === "string") return x;
    return x && (x.node || x.name || x.id || x.addr) ? String(x.node || x.name || x.id || x.addr) : "";
  }

  function renderNodes() {
    const body = document.getElementById("nodes-body");
    const names = Array.from(nodes.keys());
    const extra = {};
    for (const x of apiNodes || []) {
      const name = nodeName(x);
      if (!name) continue;
      extra[name] = x;
      if (names.indexOf(name) < 0) names.push(name);
    }
    names.sort();
    const rows = [];
    for (const name of names) {
      const n = nodes.get(name);
      const x = extra[name] && typeof extra[name] === "object" ? extra[name] : {};
      const st = n && n.stats;
      const state = !n ? "not reporting" : Date.now() - n.seen > SILENT_AFTER ? "silent" : "reporting";
      let open = 0;
      for (const k of Object.keys((st && st.connections) || {})) open += Number(st.connections[k]) || 0;
      const tr = el("tr");
      tr.dataset.node = name;
      tr.dataset.state = state;
      const th = el("th");
      th.scope = "row";
      th.append(el("code", name));
      // The build each node runs, so a mixed-version cluster shows.
      const ver = (st && st.build && st.build.version) || (x && typeof x.version === "string" && x.version) || "";
      const stateTd = el("td");
      stateTd.append(el("span", state, state === "reporting" ? "ok" : "muted"));
      if (st) stateTd.append(" · ", timeEl(st.time));
      const rate = n && n.rates && typeof n.rates.events_in === "number" ? n.rates.events_in : null;
      const rateTd = el("td", rate === null ? "–" : hubbubCharts.format(rate), "num");
      rateTd.dataset.col = "events_in_rate";
      const connTd = el("td", st ? fmt(open) : "–", "num");
      connTd.dataset.col = "connections";
      const liveTd = el("td", st ? fmt(st.live_subscriptions) : "–", "num");
      liveTd.dataset.col = "live";
      tr.append(th, stateTd, el("td", x.address ? String(x.address) : "–", x.address ? "url" : "muted"),
        el("td", ver || "–", ver ? "node-version" : "muted"), rateTd, connTd, liveTd);
      rows.push(tr);
    }
    if (rows.length === 0) {
      const td = el("td", "Waiting for the first report…", "muted");
      td.colSpan = 7;
      const tr = el("tr");
      tr.append(td);
      rows.push(tr);
    }
    body.replaceChildren.apply(body, rows);
    let caption = "Nodes reporting on $sys/stats/*";
    if (nodes.size > 0) {
      caption += features.indexOf("nodes") >= 0 ? " and listed by GET /api/nodes" : " (this hub does not list its nodes at /api/nodes)";
    }
    document.getElementById("nodes-caption").textContent = caption;
  }

  // --- charts -----------------------------------------------------------------

  const chartsEl = document.getElementById("charts");
  const charts = {
    traffic: hubbubCharts.create(chartsEl, {id: "traffic", title: "Events per second", unit: "/s", series: [
      {key: "in", label: "in (published)", color: COLORS.a}, {key: "out", label: "out (delivered)", color: COLORS.b}]}),
    connections: hubbubCharts.create(chartsEl, {id: "connections", title: "Open connections by transport",
      series: TRANSPORTS.map(function (t, i) { return {key: t, label: t, color: [COLORS.a, COLORS.b, COLORS.c, COLORS.d][i]}; })}),
    backlog: hubbubCharts.create(chartsEl, {id: "backlog", title: "Webhook backlog (events to deliver)", series: [
      {key: "backlog", label: "events pending", color: COLORS.a}]}),
    failures: hubbubCharts.create(chartsEl, {id: "failures", title: "Webhook failures per second", unit: "/s", series: [
      {key: "failed", label: "failed POSTs", color: COLORS.d}]}),
  };

  // sample adds one point to every chart from the nodes reporting now.
  function sample() {
    const now = Date.now();
    const sum = {in: 0, out: 0, failed: 0, backlog: 0};
    const conns = {};
    for (const t of TRANSPORTS) conns[t] = 0;
    let live = 0, rated = 0;
    for (const n of nodes.values()) {
      if (!n.stats || now - n.seen > SILENT_AFTER) continue;
      live++;
      const r = n.rates || {};
      if (typeof r.events_in === "number") rated++;
      sum.in += r.events_in || 0;
      sum.out += r.delivered || 0;
      sum.failed += r.webhook_failed || 0;
      sum.backlog = Math.max(sum.backlog, Number((n.stats.webhooks || {}).backlog) || 0);
      for (const t of TRANSPORTS) conns[t] += Number((n.stats.connections || {})[t]) || 0;
    }
    if (live === 0) return;
    if (rated === 0) sum.in = sum.out = sum.failed = null; // a rate needs two reports of a node
    charts.traffic.push(now, {in: sum.in, out: sum.out});
    charts.connections.push(now, conns);
    charts.backlog.push(now, {backlog: sum.backlog});
    charts.failures.push(now, {failed: sum.failed});
    for (const k of Object.keys(charts)) charts[k].render();
  }
  setInterval(sample, SAMPLE_EVERY);

  // --- webhook subscriptions --------------------------------------------------

  // renderSubs shows GET /api/subscriptions: the subscriptions, then the
  // requests whose verification has not succeeded (pending, failed,
  // denied), or null when the hub has no WebSub.
  function renderSubs(list, verifications) {
    const status = document.getElementById("subs-status");
    const wrap = document.getElementById("subs-table");
    const body = document.getElementById("subs-body");
    if (list === null) {
      status.textContent = "WebSub not available on this hub.";
      wrap.hidden = true;
      return;
    }
    verifications = verifications || [];
    let text = list.length === 0 ? "No webhook subscriptions." : list.length + " webhook subscription" + (list.length === 1 ? "" : "s") + ".";
    if (verifications.length > 0) text += " " + verifications.length + " request" + (verifications.length === 1 ? "" : "s") + " not verified.";
    status.textContent = text;
    const rows = [];
    for (const s of list) {
      // Only these fields are shown: never a secret, whatever the API sends.
      const tr = el("tr");
      tr.dataset.callback = String(s.callback || "");
      const th = el("th", String(s.topic || ""));
      th.scope = "row";
      const lease = el("td");
      lease.append(timeEl(s.lease_expires));
      const err = s.last_error ? String(s.last_error) : "";
      tr.append(th, el("td", String(s.callback || ""), "url"), el("td", String(s.state || ""), s.state === "suspended" ? "error" : ""), lease,
        el("td", fmt(s.lag), "num"), el("td", err || "–", err ? "error" : "muted"));
      rows.push(tr);
    }
    for (const v of verifications) {
      const tr = el("tr");
      tr.dataset.callback = String(v.callback || "");
      tr.dataset.verification = String(v.state || "");
      const th = el("th", String(v.topic || ""));
      th.scope = "row";
      const state = (v.mode === "unsubscribe" ? "unsubscribe " : "") + String(v.state || "") +
        (v.state === "pending" ? " (verifying)" : "");
      const err = el("td", v.last_error ? String(v.last_error) : "–", v.last_error ? "error" : "muted");
      if (v.state === "pending" && v.next_attempt) err.append(" · next try ", timeEl(v.next_attempt));
      tr.append(th, el("td", String(v.callback || ""), "url"), el("td", state), el("td", "–", "muted"),
        el("td", "–", "num muted"), err);
      rows.push(tr);
    }
    body.replaceChildren.apply(body, rows);
    wrap.hidden = rows.length === 0;
  }

  // --- outside feeds --------------------------------------------------------

  // interval shows a poll interval in seconds as "0.6 s", "45 s" or "12 min".
  function interval(s) {
    if (s >= 120) return Math.round(s / 60) + " min";
    return (s < 10 ? s.toFixed(1) : Math.round(s)) + " s";
  }

  // renderFeeds shows GET /api/feeds (the hub has --feeds), or hides the
  // panel when list is null.
  function renderFeeds(list) {
    const panel = document.getElementById("panel-feeds");
    panel.hidden = list === null;
    if (list === null) return;
    const wrap = document.getElementById("feeds-table");
    document.getElementById("feeds-status").textContent = list.length === 0 ?
      "No outside feed followed: one is followed once someone subscribes to its URL." :
      list.length + " outside feed" + (list.length === 1 ? "" : "s") + ".";
    const rows = [];
    for (const f of list) {
      const tr = el("tr");
      const th = el("th", String(f.topic || ""), "url");
      th.scope = "row";
      const method = f.method === "push" ? "push via " + String(f.hub || "hub") : "poll";
      const last = el("td");
      last.append(f.last_fetch ? timeEl(f.last_fetch) : "–");
      const change = el("td");
      change.append(f.last_change ? timeEl(f.last_change) : "–");
      const err = f.last_error ? String(f.last_error) : "";
      tr.append(th, el("td", String(f.state || ""), f.state === "gone" ? "error" : ""), el("td", method),
        el("td", interval(Number(f.interval_seconds) || 0), "num"), last, change,
        el("td", fmt(f.subscribers), "num"), el("td", err || "–", err ? "error" : "muted"));
      rows.push(tr);
    }
    document.getElementById("feeds-body").replaceChildren.apply(document.getElementById("feeds-body"), rows);
    wrap.hidden = rows.length === 0;
  }

  // --- the watching itself -------------------------------------------------------

  let sub = null;
  let pollTimer = null;
  let gen = 0; // answers of an earlier start are ignored

  function stop() {
    gen++;
    if (sub) sub.close();
    sub = null;
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  // pollOptional asks the optional APIs the hub says it has.
  function pollOptional(g) {
    const asks = [];
    if (features.indexOf("websub") >= 0) {
      asks.push(getJSON("/api/subscriptions").then(function (r) {
        if (g !== gen) return;
        if (r.status === 401 || r.status === 403) return askKey("The hub refused the admin key.");
        if (r.status === 200) {
          renderSubs(Array.isArray(r.body.subscriptions) ? r.body.subscriptions : [],
            Array.isArray(r.body.verifications) ? r.body.verifications : []);
        }
        else renderSubs(null);
      }));
    } else {
      renderSubs(null);
    }
    if (features.indexOf("feeds") >= 0) {
      asks.push(getJSON("/api/feeds").then(function (r) {
        if (g !== gen) return;
        renderFeeds(r.status === 200 && r.body && Array.isArray(r.body.feeds) ? r.body.feeds : null);
      }));
    } else {
      renderFeeds(null);
    }
    if (features.indexOf("nodes") >= 0) {
      asks.push(getJSON("/api/nodes").then(function (r) {
        if (g !== gen) return;
        apiNodes = r.status === 200 && r.body && Array.isArray(r.body.nodes) ? r.body.nodes : null;
      }));
    } else {
      apiNodes = null;
    }
    Promise.all(asks).catch(function () { /* the next round tries again */ }).then(function () {
      if (g !== gen) return;
      renderNodes();
      pollTimer = setTimeout(function () { pollOptional(g); }, document.hidden ? POLL_EVERY * 4 : POLL_EVERY);
    });
  }

  function start() {
    stop();
    const g = gen;
    setPill("Connecting…");
    document.getElementById("key-forget").hidden = !adminKey;
    getJSON("/api/stats").then(function (r) {
      if (g !== gen) return;
      if (r.status === 401 || r.status === 403) {
        return askKey(adminKey ? "The hub refused this key." : "");
      }
      if (r.status !== 200) throw new Error("GET /api/stats: HTTP " + r.status);
      renderStats(r.body);
      pollOptional(g);
      sub = hubbub.subscribe("", {
        topics: STATS_TOPIC,
        headers: authHeaders(),
        onEvent: function (ev) {
          if (ev.type === "stats" && ev.data) renderStats(ev.data);
        },
        onStatus: function (s, info) {
          if (g !== gen) return;
          const err = info && info.error;
          if (s === "error" && err && (err.status === 401 || err.status === 403)) return askKey("The hub refused the admin key.");
          const text = {connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", closed: "Stopped",
            error: "Error: " + (err ? err.message : "")}[s];
          setPill(text, s === "live" ? "ok" : s === "error" ? "error" : "");
        },
      });
    }).catch(function (err) {
      if (g === gen) setPill("Cannot read the hub's stats: " + err.message, "error");
    });
  }

  // begin starts with the stored key, or finds out whether one is needed.
  function begin() {
    stop();
    if (adminKey) return start();
    setPill("Checking admin access…");
    const g = gen;
    probeAdmin().then(function (ok) {
      if (g !== gen) return;
      if (ok) start();
      else askKey("");
    }, function () {
      if (g === gen) start(); // no answer over WebSocket: ask over HTTP
    });
  }

  setInterval(renderNodes, 2000); // ages the "last report" states

  // --- the live tail ----------------------------------------------------------------

  const tail = (function () {
    const form = document.getElementById("tail-form");
    const input = document.getElementById("tail-topic");
    const countIn = document.getElementById("tail-count");
    const stopBtn = document.getElementById("tail-stop");
    const list = document.getElementById("tail-list");
    const status = document.getElementById("tail-status");
    let tsub = null;

    function add(ev) {
      const li = el("li");
      li.dataset.topic = ev.topic;
      li.dataset.seq = String(ev.seq);
      const meta = el("div", ev.topic + " · #" + ev.seq + " · " + (ev.type || "message") + " · " + (ev.time || ""), "meta");
      const body = ev.data_base64 !== undefined ? "(" + (ev.content_type || "binary") + " payload)" : JSON.stringify(ev.data);
      li.append(meta, el("pre", body === undefined ? "" : body));
      list.prepend(li);
      while (list.children.length > TAIL_MAX) list.lastElementChild.remove();
    }

    function setStatus(text, cls) {
      status.textContent = text;
      status.className = "status-pill " + (cls || "");
    }

    function watch(topic, count) {
      if (count === undefined) count = Math.max(0, Math.min(100, Number(countIn.value) || 0));
      input.value = topic;
      const q = new URLSearchParams(location.search);
      q.set("topic", topic);
      history.replaceState(null, "", "?" + q.toString());
      if (tsub) tsub.close();
      list.replaceChildren();
      stopBtn.disabled = false;
      setStatus("Connecting…");
      const go = function (after) {
        tsub = hubbub.subscribe("", {
          topics: topic,
          after: after,
          headers: authHeaders(), // $sys/ topics need the admin key
          onEvent: add,
          onReset: function (r) { add({topic: r.topic, seq: "-", type: "reset", data: r}); },
          onStatus: function (s, info) {
            const text = {connecting: "Connecting…", live: "Live: " + topic, reconnecting: "Reconnecting…", closed: "Stopped",
              error: "Error: " + (info.error ? info.error.message : "")}[s];
            setStatus(text, s === "live" ? "ok" : s === "error" ? "error" : "");
          },
        });
      };
      if (count > 0 && topic.indexOf("*") < 0) {
        // Retrieve the recent events first, then go live after them.
        fetch("/events?topic=" + encodeURIComponent(topic) + "&count=" + count, {headers: authHeaders(), cache: "no-store"}).then(function (r) {
          return r.text().then(function (t) {
            if (!r.ok) throw new Error(t.trim() || "HTTP " + r.status);
            return JSON.parse(t);
          });
        }).then(function (body) {
          for (const ev of body.events) add(ev);
          go(body.cursor);
        }).catch(function (err) {
          setStatus("Error: " + err.message, "error");
          stopBtn.disabled = true;
        });
      } else {
        go(undefined);
      }
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      const topic = input.value.trim();
      if (topic) watch(topic);
    });
    stopBtn.addEventListener("click", function () {
      if (tsub) tsub.close();
      tsub = null;
      stopBtn.disabled = true;
    });
    const initial = new URLSearchParams(location.search).get("topic");
    if (initial) watch(initial);
    return {watch: watch};
  })();

  begin();
  window.hubbubDashboard = {nodes: nodes, charts: charts, features: function () { return features.slice(); }};
})();
