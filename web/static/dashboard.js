// The dashboard: panels that show what the hub can tell through its public
// endpoints. Each panel is an entry of `panels` with the id of its section
// and a start function; a new panel (topics, webhook subscriptions, nodes,
// once the hub serves them under /api) is one more section in index.html
// and one more entry here.
(function () {
  "use strict";
  const METRICS_EVERY = 2000;
  const TAIL_MAX = 100;
  const TRANSPORTS = ["sse", "ws", "poll", "stream", "retrieve"];

  // parseMetrics reads the Prometheus text format into
  // {name: [{labels: {k: v}, value: n}]}.
  function parseMetrics(text) {
    const out = {};
    const re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
    for (const line of text.split("\n")) {
      if (line === "" || line[0] === "#") continue;
      const m = re.exec(line);
      if (!m) continue;
      const labels = {};
      const lre = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = lre.exec(m[2] || "")) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
      (out[m[1]] = out[m[1]] || []).push({labels: labels, value: Number(m[3])});
    }
    return out;
  }

  function byTransport(metrics, name) {
    const res = {};
    for (const s of metrics[name] || []) res[s.labels.transport] = s.value;
    return res;
  }

  function total(metrics, name) {
    let n = 0;
    for (const s of metrics[name] || []) n += s.value;
    return n;
  }

  function fmt(n) {
    return n === undefined ? "–" : Number(n).toLocaleString("en");
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  // The metrics panels: connections per transport and event counts,
  // refreshed from /metrics.
  function startMetrics() {
    const conns = document.getElementById("connections-body");
    const counts = document.getElementById("event-counts");
    const status = document.getElementById("metrics-status");
    let timer = null;
    function render(m) {
      const open = byTransport(m, "hubbub_connections");
      const delivered = byTransport(m, "hubbub_events_delivered_total");
      const rows = [];
      for (const t of TRANSPORTS) {
        const tr = el("tr");
        tr.dataset.transport = t;
        const th = el("th", t);
        th.scope = "row";
        tr.append(th, el("td", t === "retrieve" ? "–" : fmt(open[t] || 0), "num"), el("td", fmt(delivered[t] || 0), "num"));
        rows.push(tr);
      }
      conns.replaceChildren.apply(conns, rows);
      const entries = [
        ["Published", "published", total(m, "hubbub_events_published_total")],
        ["Delivered", "delivered", total(m, "hubbub_events_delivered_total")],
        ["Duplicate publishes", "duplicates", total(m, "hubbub_publish_duplicates_total")],
        ["Live subscriptions", "subscriptions", total(m, "hubbub_live_subscriptions")],
        ["Slow disconnects", "slow", total(m, "hubbub_slow_disconnects_total")],
      ];
      const nodes = [];
      for (const [label, key, value] of entries) {
        const dd = el("dd", fmt(value));
        dd.dataset.metric = key;
        nodes.push(el("dt", label), dd);
      }
      counts.replaceChildren.apply(counts, nodes);
    }
    function tick() {
      fetch("/metrics", {cache: "no-store"}).then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      }).then(function (text) {
        render(parseMetrics(text));
        status.className = "muted";
        status.textContent = "Updated " + new Date().toLocaleTimeString();
      }).catch(function (err) {
        status.className = "error";
        status.textContent = "Cannot read /metrics: " + err.message;
      }).finally(function () {
        timer = setTimeout(tick, document.hidden ? METRICS_EVERY * 5 : METRICS_EVERY);
      });
    }
    tick();
    return function () { clearTimeout(timer); };
  }

  // The live tail: the recent events of a topic, then new ones as they come.
  function startTail() {
    const form = document.getElementById("tail-form");
    const input = document.getElementById("tail-topic");
    const countIn = document.getElementById("tail-count");
    const stop = document.getElementById("tail-stop");
    const list = document.getElementById("tail-list");
    const pill = document.getElementById("tail-status");
    let sub = null;

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

    function setPill(text, cls) {
      pill.textContent = text;
      pill.className = "status-pill " + (cls || "");
    }

    function watch(topic, count) {
      if (sub) sub.close();
      list.replaceChildren();
      stop.disabled = false;
      setPill("Connecting…");
      const begin = function (after) {
        sub = hubbub.subscribe("", {
          topics: topic,
          after: after,
          onEvent: add,
          onReset: function (r) { add({topic: r.topic, seq: "-", type: "reset", data: r}); },
          onStatus: function (s, info) {
            const text = {connecting: "Connecting…", live: "Live: " + topic, reconnecting: "Reconnecting…", closed: "Stopped",
              error: "Error: " + (info.error ? info.error.message : "")}[s];
            setPill(text, s === "live" ? "ok" : s === "error" ? "error" : "");
          },
        });
      };
      if (count > 0 && topic.indexOf("*") < 0) {
        // Retrieve the recent events first, then go live after them.
        fetch("/events?topic=" + encodeURIComponent(topic) + "&count=" + count, {cache: "no-store"}).then(function (r) {
          return r.text().then(function (t) {
            if (!r.ok) throw new Error(t.trim() || "HTTP " + r.status);
            return JSON.parse(t);
          });
        }).then(function (body) {
          for (const ev of body.events) add(ev);
          begin(body.cursor);
        }).catch(function (err) {
          setPill("Error: " + err.message, "error");
          stop.disabled = true;
        });
      } else {
        begin(undefined);
      }
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      const topic = input.value.trim();
      if (!topic) return;
      const q = new URLSearchParams(location.search);
      q.set("topic", topic);
      history.replaceState(null, "", "?" + q.toString());
      watch(topic, Math.max(0, Math.min(100, Number(countIn.value) || 0)));
    });
    stop.addEventListener("click", function () {
      if (sub) sub.close();
      sub = null;
      stop.disabled = true;
    });
    const initial = new URLSearchParams(location.search).get("topic");
    if (initial) {
      input.value = initial;
      watch(initial, Number(countIn.value) || 0);
    }
  }

  const panels = [
    {id: "panel-connections", start: startMetrics}, // also fills panel-events
    {id: "panel-tail", start: startTail},
  ];
  for (const p of panels) {
    if (document.getElementById(p.id)) p.start();
  }
  window.hubbubDashboard = {parseMetrics: parseMetrics};
})();
