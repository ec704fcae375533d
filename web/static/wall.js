// The live wall: /wall?topic=T[&topic=U][&tag=X][&near=...][&count=N][&after=CURSOR][&transport=sse|ws|poll]
// Subscribes to what the URL names and shows each event as it arrives: an
// event whose data links a picture (data.image, data.url ending in an
// image extension, data.photo.url, data.enclosure.url) full screen with its
// title over it, any other as a card. Filters (tag=, tags_all=, near=,
// q=, where.PATH=, fields=) are passed on to the hub, which applies them on
// every transport: the page shows what the same URL gives over SSE.
// count=N (at most 60) first shows the N newest stored events of the named
// topics (GET /events, the same filters), then goes live after them;
// patterns have no history to show, so they start live. Without topic=,
// the page is a small form that builds the address.
(function () {
  "use strict";
  const MAX_ITEMS = 60; // elements kept in the page
  const MAX_CARDS = 8; // cards shown at once
  const RESERVED = ["topic", "hub.topic", "after", "last_event_id", "transport", "wait", "format",
    "timeout", "count", "before", "hub.mode"];
  const IMAGE_EXT = /\.(png|jpe?g|gif|webp|avif|svg|bmp)(?:[?#].*)?$/i;

  const params = new URLSearchParams(location.search);
  const topics = params.getAll("topic").concat(params.getAll("hub.topic")).filter(Boolean);
  const passOn = {};
  for (const [k, v] of params) {
    if (RESERVED.indexOf(k) < 0 && v !== "") (passOn[k] = passOn[k] || []).push(v);
  }

  const body = document.body;
  const stage = document.getElementById("stage");
  const cards = document.getElementById("cards");
  const banner = document.getElementById("wall-status");
  const empty = document.getElementById("wall-empty");
  const items = [];

  function setStatus(s, info) {
    body.dataset.status = s;
    const text = {
      connecting: "Connecting…",
      reconnecting: "Reconnecting…",
      closed: "Closed",
      error: "Error: " + (info && info.error ? info.error.message : "cannot subscribe"),
    }[s];
    banner.hidden = s === "live";
    if (text) banner.textContent = text;
  }

  function httpURL(u) {
    if (typeof u !== "string" || u === "") return "";
    try {
      const url = new URL(u, location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : "";
    } catch (e) {
      return "";
    }
  }

  function imageOf(d) {
    if (!d || typeof d !== "object") return "";
    const found = [
      typeof d.image === "object" && d.image ? d.image.url : d.image,
      typeof d.url === "string" && IMAGE_EXT.test(d.url) ? d.url : "",
      d.photo && typeof d.photo === "object" ? d.photo.url : "",
      d.enclosure && typeof d.enclosure === "object" ? d.enclosure.url : "",
    ];
    for (const u of found) {
      const ok = httpURL(u);
      if (ok) return ok;
    }
    return "";
  }

  function titleOf(ev) {
    const d = ev.data;
    if (d && typeof d === "object") {
      for (const k of ["title", "name", "caption", "summary", "text"]) {
        if (typeof d[k] === "string" && d[k] !== "") return d[k];
      }
    }
    if (typeof d === "string" && d !== "") return d.slice(0, 140);
    return ev.type && ev.type !== "message" ? ev.type : ev.topic;
  }

  function metaOf(ev) {
    const t = ev.time ? new Date(ev.time).toLocaleTimeString() : "";
    return ev.topic + " · #" + ev.seq + (t ? " · " + t : "") + (ev.tags ? " · " + ev.tags.join(", ") : "");
  }

  function mark(el, ev) {
    el.classList.add("item");
    el.dataset.topic = ev.topic;
    el.dataset.seq = String(ev.seq);
    el.dataset.id = ev.id || "";
    return el;
  }

  function card(ev) {
    const el = mark(document.createElement("article"), ev);
    el.className += " card";
    const h = document.createElement("h2");
    h.textContent = titleOf(ev);
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = metaOf(ev);
    el.append(h, meta);
    let detail = "";
    if (ev.data_base64 !== undefined) detail = "(" + (ev.content_type || "binary") + " payload)";
    else if (ev.data !== undefined && typeof ev.data !== "string") detail = JSON.stringify(ev.data, null, 1);
    if (detail) {
      const pre = document.createElement("pre");
      pre.textContent = detail.length > 400 ? detail.slice(0, 400) + "…" : detail;
      el.append(pre);
    }
    cards.prepend(el);
    const shown = cards.querySelectorAll(".card:not([hidden])");
    for (let i = MAX_CARDS; i < shown.length; i++) shown[i].hidden = true;
    return el;
  }

  function photo(ev, src) {
    const fig = mark(document.createElement("figure"), ev);
    fig.className += " photo";
    const img = document.createElement("img");
    img.alt = titleOf(ev);
    img.decoding = "async";
    img.addEventListener("error", function () {
      // A picture that cannot load shows as a card instead.
      const i = items.indexOf(fig);
      fig.remove();
      if (i >= 0) items[i] = card(ev);
      showLatestPhoto();
    });
    img.src = src;
    const cap = document.createElement("figcaption");
    cap.textContent = titleOf(ev);
    fig.append(img, cap);
    stage.append(fig);
    for (const f of stage.querySelectorAll("figure.current")) f.classList.remove("current");
    fig.classList.add("current");
    body.classList.remove("no-photo");
    return fig;
  }

  function showLatestPhoto() {
    const figs = stage.querySelectorAll("figure");
    const last = figs[figs.length - 1];
    if (last && !last.classList.contains("current")) last.classList.add("current");
    body.classList.toggle("no-photo", !last);
  }

  function show(ev) {
    empty.hidden = true;
    const src = imageOf(ev.data);
    items.push(src ? photo(ev, src) : card(ev));
    while (items.length > MAX_ITEMS) items.shift().remove();
    showLatestPhoto();
  }

  function resetNotice(r) {
    show({topic: r.topic, seq: 0, type: "reset",
      data: {title: "History was lost (" + r.reason + "); going on from " + r.cursor}});
  }

  if (topics.length === 0) {
    banner.hidden = true;
    body.dataset.status = "idle";
    empty.hidden = true;
    document.getElementById("wall-form").hidden = false;
    return;
  }
  document.title = "hubbub wall: " + topics.join(", ");
  const transport = params.get("transport") || "sse";
  const filter = Object.keys(passOn).length === 0 ? undefined : passOn;

  function goLive(after) {
    window.hubbubWall = hubbub.subscribe("", {
      topics: topics,
      after: after || undefined,
      transport: transport,
      filter: filter,
      onEvent: show,
      onReset: resetNotice,
      onStatus: setStatus,
    });
  }

  // recent retrieves the newest n events of the topics, with the filters,
  // and shows them oldest first; it resolves to the cursor after them.
  function recent(n) {
    const q = new URLSearchParams();
    for (const t of topics) q.append("topic", t);
    q.set("count", String(n));
    for (const k of Object.keys(passOn)) for (const v of passOn[k]) q.append(k, v);
    return fetch("/events?" + q.toString(), {cache: "no-store", headers: {Accept: "application/json"}}).then(function (r) {
      return r.text().then(function (text) {
        if (!r.ok) throw new Error(text.trim() || "HTTP " + r.status);
        return JSON.parse(text);
      });
    }).then(function (answer) {
      const evs = (answer.events || []).slice().sort(function (a, b) {
        return a.time < b.time ? -1 : a.time > b.time ? 1 : a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.seq - b.seq;
      });
      for (const ev of evs.slice(-n)) show(ev);
      return answer.cursor;
    });
  }

  const count = Math.max(0, Math.min(MAX_ITEMS, parseInt(params.get("count") || "0", 10) || 0));
  const after = params.get("after") || params.get("last_event_id");
  if (count > 0 && !after && !topics.some(function (t) { return t.indexOf("*") >= 0; })) {
    recent(count).then(goLive, function (err) {
      setStatus("error", {error: err});
      goLive(undefined); // live events at least; its status replaces this one
    });
  } else {
    if (count > 0 && !after) empty.textContent = "Waiting for events… (count= shows the history of named topics; patterns start live)";
    goLive(after);
  }
})();
