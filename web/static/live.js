// What the live pages (/wall, /globe) share: reading the subscription from
// the page's address, finding a picture and a title in an event, the
// connection banner, the stored events of count=, and going live with the
// client (/client.js). Defines the global hubbubLive.
//
// The address: topic= (repeatable; also hub.topic=), after= or
// last_event_id= (a cursor to resume after), transport=sse|ws|poll,
// count=N, access_token=TOKEN (sent to the hub as "Authorization: Bearer",
// or an auth op over WebSocket, so keys work too and the page's requests
// do not repeat it in URLs; the hubbub_token cookie works without it), and
// filters
// (tag=, tags_all=, near=, q=, where.PATH=, fields=) passed on to the
// hub, which applies them on every transport.
(function () {
  "use strict";
  const RESERVED = ["topic", "hub.topic", "after", "last_event_id", "transport", "wait", "format",
    "timeout", "count", "before", "hub.mode", "access_token", "view"];
  const IMAGE_EXT = /\.(png|jpe?g|gif|webp|avif|svg|bmp)(?:[?#].*)?$/i;

  // fromAddress reads the page's subscription from its query string.
  function fromAddress(search) {
    const params = new URLSearchParams(search);
    const topics = params.getAll("topic").concat(params.getAll("hub.topic")).filter(Boolean);
    const passOn = {};
    for (const [k, v] of params) {
      if (RESERVED.indexOf(k) < 0 && v !== "") (passOn[k] = passOn[k] || []).push(v);
    }
    return {
      params: params,
      topics: topics,
      passOn: passOn,
      filter: Object.keys(passOn).length === 0 ? undefined : passOn,
      token: params.get("access_token") || "",
      transport: params.get("transport") || "sse",
      after: params.get("after") || params.get("last_event_id") || "",
    };
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

  // imageOf finds the picture an event's data links: data.image (or
  // data.image.url), data.url ending in an image extension, data.photo.url,
  // data.enclosure.url; "" when none (or not http(s)).
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

  // banner returns an onStatus for the client that keeps body's
  // data-status and the status element (hidden while live) up to date.
  function banner(body, el) {
    return function (s, info) {
      body.dataset.status = s;
      const text = {
        connecting: "Connecting…",
        reconnecting: "Reconnecting…",
        closed: "Closed",
        error: "Error: " + (info && info.error ? info.error.message : "cannot subscribe"),
      }[s];
      el.hidden = s === "live";
      if (text) el.textContent = text;
    };
  }

  function authHeaders(sub) {
    return sub.token ? {Authorization: "Bearer " + sub.token} : {};
  }

  // recent retrieves the newest n stored events of the named topics, with
  // the filters, oldest first; it resolves to {events, cursor}.
  function recent(sub, n) {
    const q = new URLSearchParams();
    for (const t of sub.topics) q.append("topic", t);
    q.set("count", String(n));
    for (const k of Object.keys(sub.passOn)) for (const v of sub.passOn[k]) q.append(k, v);
    return fetch("/events?" + q.toString(), {
      cache: "no-store", headers: Object.assign({Accept: "application/json"}, authHeaders(sub)),
    }).then(function (r) {
      return r.text().then(function (text) {
        if (!r.ok) throw new Error(text.trim() || "HTTP " + r.status);
        return JSON.parse(text);
      });
    }).then(function (answer) {
      const evs = (answer.events || []).slice().sort(function (a, b) {
        return a.time < b.time ? -1 : a.time > b.time ? 1 : a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.seq - b.seq;
      });
      return {events: evs.slice(-n), cursor: answer.cursor};
    });
  }

  // hasHistory: count= can show stored events (named topics, no cursor).
  function hasHistory(sub) {
    return !sub.after && !sub.topics.some(function (t) { return t.indexOf("*") >= 0; });
  }

  // live subscribes with the client: resumes after drops without
  // duplicates; handlers are the client's onEvent, onReset, onStatus.
  function live(sub, after, handlers) {
    return hubbub.subscribe("", {
      topics: sub.topics,
      after: after || sub.after || undefined,
      transport: sub.transport,
      filter: sub.filter,
      token: sub.token || undefined,
      onEvent: handlers.onEvent,
      onReset: handlers.onReset,
      onStatus: handlers.onStatus,
    });
  }

  window.hubbubLive = {
    fromAddress: fromAddress, httpURL: httpURL, imageOf: imageOf, titleOf: titleOf,
    banner: banner, recent: recent, hasHistory: hasHistory, live: live,
  };
})();
