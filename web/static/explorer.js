// The API explorer: each form sends one request to this hub and shows the
// request as sent, a curl command that sends the same, and the answer.
// Secrets typed into a form (publish key, WebSub secret) are sent but never
// shown: the views put a shell variable in their place.
(function () {
  "use strict";
  const reqView = document.getElementById("ex-request");
  const curlView = document.getElementById("ex-curl");
  const respView = document.getElementById("ex-response");
  const stateView = document.getElementById("ex-state");
  const stored = document.getElementById("publish-stored");
  const subStop = document.getElementById("sub-stop");
  let streaming = null; // AbortController of the SSE subscription shown

  function q(s) {
    return "'" + String(s).replace(/'/g, "'\\''") + "'";
  }

  function val(form, name) {
    const el = form.elements.namedItem(name);
    return el ? el.value.trim() : "";
  }

  // show renders a request. r: {method, path, headers: [[name, value, shown?]],
  // body, curlData: [curl args for the body], stream}
  function show(r) {
    const lines = [r.method + " " + r.path + " HTTP/1.1", "Host: " + location.host];
    const curl = ["curl"];
    if (r.stream) curl.push("-N");
    if (r.method !== "GET" && !(r.method === "POST" && (r.body || r.curlData))) curl.push("-X", r.method);
    for (const h of r.headers) {
      lines.push(h[0] + ": " + (h[2] || h[1]));
      curl.push("-H", h[2] ? '"' + h[0] + ": " + h[2] + '"' : q(h[0] + ": " + h[1]));
    }
    if (r.body !== undefined) {
      lines.push("Content-Length: " + new TextEncoder().encode(r.body).length);
      lines.push("", r.shownBody || r.body);
      curl.push.apply(curl, r.curlData || ["--data-binary", q(r.body)]);
    }
    curl.push(q(location.origin + r.path));
    reqView.textContent = lines.join("\n");
    curlView.textContent = curl.join(" ");
    respView.textContent = "";
  }

  function statusLine(resp) {
    let s = "HTTP/1.1 " + resp.status + (resp.statusText ? " " + resp.statusText : "") + "\n";
    for (const [k, v] of resp.headers) s += k + ": " + v + "\n";
    return s + "\n";
  }

  function setState(text, cls) {
    stateView.textContent = text;
    stateView.className = "hint " + (cls || "");
  }

  // send shows r, sends it, and shows the whole answer. It resolves to
  // {resp, text}.
  function send(r) {
    show(r);
    setState("sending…");
    const headers = {};
    for (const h of r.headers) headers[h[0]] = h[1];
    return fetch(r.path, {method: r.method, headers: headers, body: r.body, cache: "no-store"}).then(function (resp) {
      return resp.text().then(function (text) {
        respView.textContent = statusLine(resp) + text;
        setState(resp.ok ? "done" : "HTTP " + resp.status, resp.ok ? "ok" : "error");
        return {resp: resp, text: text};
      });
    }, function (err) {
      respView.textContent = "(no answer: " + err.message + ")";
      setState("failed", "error");
      throw err;
    });
  }

  function invalid(input, message) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
    setState(message, "error");
  }

  document.getElementById("publish-form").addEventListener("submit", function (e) {
    e.preventDefault();
    const f = e.target;
    const dataIn = f.elements.namedItem("data");
    dataIn.removeAttribute("aria-invalid");
    const ev = {topic: val(f, "topic")};
    for (const k of ["type", "key"]) if (val(f, k)) ev[k] = val(f, k);
    const tags = val(f, "tags").split(",").map(function (t) { return t.trim(); }).filter(Boolean);
    if (tags.length) ev.tags = tags;
    if (dataIn.value.trim() !== "") {
      try {
        ev.data = JSON.parse(dataIn.value);
      } catch (err) {
        return invalid(dataIn, "Data is not JSON: " + err.message);
      }
    }
    const headers = [["Content-Type", "application/json"]];
    if (val(f, "auth")) headers.push(["Authorization", "Bearer " + val(f, "auth"), "Bearer $HUBBUB_PUBLISH_KEY"]);
    stored.textContent = "";
    send({method: "POST", path: "/publish", headers: headers, body: JSON.stringify(ev)}).then(function (x) {
      if (!x.resp.ok) return;
      const ids = JSON.parse(x.text).events.map(function (r) { return r.id; });
      stored.textContent = "Stored: " + ids.join(", ");
      stored.dataset.ids = ids.join(" ");
    }).catch(function () {});
  });

  document.getElementById("retrieve-form").addEventListener("submit", function (e) {
    e.preventDefault();
    const f = e.target;
    const p = new URLSearchParams();
    p.set("topic", val(f, "topic"));
    for (const k of ["count", "after", "before", "format"]) if (val(f, k)) p.set(k, val(f, k));
    send({method: "GET", path: "/events?" + p.toString(), headers: []}).catch(function () {});
  });

  function stopStream() {
    if (streaming) streaming.abort();
    streaming = null;
    subStop.disabled = true;
  }
  subStop.addEventListener("click", function () {
    stopStream();
    setState("stopped");
  });

  document.getElementById("subscribe-form").addEventListener("submit", function (e) {
    e.preventDefault();
    stopStream();
    const f = e.target;
    const headers = [["Accept", "text/event-stream"]];
    if (val(f, "after")) headers.push(["Last-Event-ID", val(f, "after")]);
    const r = {method: "GET", path: "/events?topic=" + encodeURIComponent(val(f, "topic")), headers: headers, stream: true};
    show(r);
    const ctrl = new AbortController();
    streaming = ctrl;
    subStop.disabled = false;
    setState("connecting…");
    const h = {};
    for (const x of headers) h[x[0]] = x[1];
    fetch(r.path, {headers: h, signal: ctrl.signal, cache: "no-store"}).then(function (resp) {
      respView.textContent = statusLine(resp);
      setState(resp.ok ? "streaming: events appear as they are published" : "HTTP " + resp.status, resp.ok ? "ok" : "error");
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      function pump() {
        return reader.read().then(function (x) {
          if (x.done) {
            if (streaming === ctrl) setState("the stream ended");
            return;
          }
          respView.textContent += dec.decode(x.value, {stream: true});
          respView.scrollTop = respView.scrollHeight;
          return pump();
        });
      }
      return pump();
    }).catch(function (err) {
      if (err.name !== "AbortError") setState("failed: " + err.message, "error");
    });
  });

  document.getElementById("websub-form").addEventListener("submit", function (e) {
    e.preventDefault();
    const f = e.target;
    const p = new URLSearchParams();
    const shown = new URLSearchParams();
    const curlData = [];
    for (const name of ["hub.mode", "hub.topic", "hub.callback", "hub.lease_seconds", "hub.secret"]) {
      const v = val(f, name);
      if (!v) continue;
      p.set(name, v);
      const secret = name === "hub.secret";
      shown.set(name, secret ? "********" : v);
      curlData.push("--data-urlencode", secret ? '"hub.secret=$HUBBUB_WEBSUB_SECRET"' : q(name + "=" + v));
    }
    send({method: "POST", path: "/hub", headers: [["Content-Type", "application/x-www-form-urlencoded"]],
      body: p.toString(), shownBody: shown.toString(), curlData: curlData}).catch(function () {});
  });

  // Prefill topics from ?topic= so a link can open the explorer ready to go.
  const topic = new URLSearchParams(location.search).get("topic");
  if (topic) {
    for (const id of ["pub-topic", "ret-topic", "sub-topic", "ws-topic"]) document.getElementById(id).value = topic;
  }
})();
