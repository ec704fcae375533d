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
// the page is a small form that builds the address. The address, the
// picture and title of an event and the connection come from live.js,
// shared with the globe; access_token= names a token for private topics.
(function () {
  "use strict";
  const MAX_ITEMS = 60; // elements kept in the page
  const MAX_CARDS = 8; // cards shown at once
  const L = window.hubbubLive;
  const sub = L.fromAddress(location.search);
  const topics = sub.topics;
  const imageOf = L.imageOf, titleOf = L.titleOf;

  const body = document.body;
  const stage = document.getElementById("stage");
  const cards = document.getElementById("cards");
  const empty = document.getElementById("wall-empty");
  const items = [];
  const setStatus = L.banner(body, document.getElementById("wall-status"));

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
    document.getElementById("wall-status").hidden = true;
    body.dataset.status = "idle";
    empty.hidden = true;
    document.getElementById("wall-form").hidden = false;
    return;
  }
  document.title = "hubbub wall: " + topics.join(", ");

  function goLive(after) {
    window.hubbubWall = L.live(sub, after, {onEvent: show, onReset: resetNotice, onStatus: setStatus});
  }

  const count = Math.max(0, Math.min(MAX_ITEMS, parseInt(sub.params.get("count") || "0", 10) || 0));
  if (count > 0 && L.hasHistory(sub)) {
    L.recent(sub, count).then(function (r) {
      for (const ev of r.events) show(ev);
      goLive(r.cursor);
    }, function (err) {
      setStatus("error", {error: err});
      goLive(undefined); // live events at least; its status replaces this one
    });
  } else {
    if (count > 0 && !sub.after) empty.textContent = "Waiting for events… (count= shows the history of named topics; patterns start live)";
    goLive(undefined);
  }
})();
