// The chat example: /examples/chat[?topic=chat/lobby][&name=Ann][&access_token=T]
// A small page that uses the client's optimistic publishing: a message
// shows at once, marked "sending"; the hub's answer or the echo of the
// message confirms it; onReorder moves it when the hub's order differs
// from the order this window showed things in; a message that cannot be
// sent is marked, with a button that sends it again (with the same
// client_id: never twice). Every window ends up with the hub's order.
// access_token= is sent as the credential for publishing and reading.
(function () {
  "use strict";
  const KEEP = 200; // messages kept in the page
  const L = window.hubbubLive;
  const params = new URLSearchParams(location.search);
  const topic = params.get("topic") || "chat/lobby";
  const sub = {topics: [topic], token: params.get("access_token") || "", passOn: {},
    transport: params.get("transport") || "sse", after: ""};
  const list = document.getElementById("messages");
  const form = document.getElementById("chat-form");
  const nameIn = document.getElementById("chat-name");
  const textIn = document.getElementById("chat-text");
  const setStatus = L.banner(document.body, document.getElementById("chat-status"));
  const elOf = new Map(); // what the client hands back (its items, events) -> li
  const own = new Set(); // client_ids of this window's messages
  window.__chat = {reorders: 0}; // for tests

  nameIn.value = params.get("name") || "guest-" + Math.random().toString(36).slice(2, 6);
  document.title = "hubbub chat: " + topic;

  function entry(name, text) {
    const li = document.createElement("li");
    const who = document.createElement("strong");
    who.textContent = name;
    const what = document.createElement("span");
    what.className = "text";
    what.textContent = text;
    const note = document.createElement("span");
    note.className = "note";
    li.append(who, " ", what, " ", note);
    list.append(li);
    while (list.children.length > KEEP) {
      const first = list.firstElementChild;
      for (const [k, v] of elOf) if (v === first) elOf.delete(k);
      first.remove();
    }
    list.scrollTop = list.scrollHeight;
    return li;
  }

  function mark(li, state, seq, time) {
    li.dataset.state = state;
    if (seq) li.dataset.seq = String(seq);
    const note = li.querySelector(".note");
    note.textContent = state === "pending" ? "sending…" : state === "failed" ? "not sent" :
      time ? new Date(time).toLocaleTimeString() : "";
  }

  function showEvent(ev) {
    if (ev.client_id && own.has(ev.client_id)) return; // the echo of this window's message
    const d = ev.data && typeof ev.data === "object" ? ev.data : {};
    const li = entry(typeof d.name === "string" ? d.name : "?", typeof d.text === "string" ? d.text : L.titleOf(ev));
    mark(li, "confirmed", ev.seq, ev.time);
    elOf.set(ev, li);
  }

  function changed(item) {
    const li = elOf.get(item);
    if (!li) return;
    mark(li, item.state, item.seq, item.time);
    const old = li.querySelector("button");
    if (old) old.remove();
    if (item.state === "failed") {
      const retry = document.createElement("button");
      retry.type = "button";
      retry.textContent = "Send again";
      retry.title = item.error ? item.error.message : "";
      retry.addEventListener("click", function () { item.retry(); });
      li.append(retry);
    }
  }

  // reorder moves the entries the client lists, in the hub's order, to
  // the end of the list: everything before them was in order already.
  function reorder(order) {
    window.__chat.reorders++;
    for (const e of order) {
      const li = elOf.get(e);
      if (li) list.append(li);
    }
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    const text = textIn.value.trim();
    if (!text) return;
    const name = nameIn.value.trim() || "guest";
    const item = hubbub.publish("", {topic: topic, type: "chat", data: {name: name, text: text}}, {
      optimistic: true, key: sub.token || undefined, onChange: changed, onReorder: reorder,
    });
    own.add(item.client_id);
    const li = entry(name, text);
    li.dataset.clientId = item.client_id;
    elOf.set(item, li);
    mark(li, item.state);
    textIn.value = "";
    textIn.focus();
  });

  function goLive(after) {
    L.live(sub, after, {onEvent: showEvent, onStatus: setStatus});
  }
  L.recent(sub, 20).then(function (r) {
    for (const ev of r.events) showEvent(ev);
    goLive(r.cursor);
  }, function (err) {
    setStatus("error", {error: err});
    goLive(undefined);
  });
})();
