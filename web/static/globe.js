// The live globe: /globe?topic=T[&topic=U][&tag=X][&near=...][&count=N][&view=globe|map][&access_token=T]
// The same subscription as the wall (live.js reads the address and keeps
// the connection: resumes without duplicates, "Reconnecting…" while
// away). Draws the Earth on a canvas from the outline in world.js (Natural
// Earth, embedded: no tiles, no network) as a turning orthographic globe,
// or a flat map (view=map, and the default under prefers-reduced-motion,
// which also stops the turning and the pulsing). Each event with geo is a
// point that pulses and fades; one with a picture shows it small beside
// its point for a few seconds; the globe turns to a point that arrives out
// of sight. A counter gives events per minute; a polite live region
// announces places, at most every few seconds.
//
// For tests, window.__globe.lastPoint is where the newest point was last
// drawn: {topic, seq, lat, lon, x, y (CSS pixels in the viewport),
// visible, view: {mode, lon0, lat0, r, scale, cx, cy}}.
(function () {
  "use strict";
  const MAX_POINTS = 400;
  const POINT_LIFE = 90000; // ms a point stays
  const THUMB_LIFE = 6000; // ms a thumbnail stays
  const MAX_THUMBS = 6;
  const ANNOUNCE_EVERY = 8000; // ms between announcements
  const TURN_SPEED = 4; // degrees of longitude per second
  const EASE_MS = 900; // turning to a new point
  const RAD = Math.PI / 180;

  const L = window.hubbubLive;
  const sub = L.fromAddress(location.search);
  const body = document.body;
  const canvas = document.getElementById("globe-canvas");
  const ctx = canvas.getContext("2d");
  const thumbs = document.getElementById("thumbs");
  const rateEl = document.getElementById("globe-rate-n");
  const latest = document.getElementById("globe-latest");
  const announcer = document.getElementById("globe-announce");
  const setStatus = L.banner(body, document.getElementById("globe-status"));
  const reduce = window.matchMedia ? window.matchMedia("(prefers-reduced-motion: reduce)") : {matches: false};

  const wanted = sub.params.get("view");
  const view = {mode: wanted === "map" || wanted === "globe" ? wanted : reduce.matches ? "map" : "globe",
    lon0: 0, lat0: 20, r: 1, scale: 1, cx: 0, cy: 0, w: 0, h: 0};
  let paused = false;
  let ease = null; // {from: [lon, lat], to: [lon, lat], start}
  const points = []; // {lat, lon, born, topic, seq, thumb}
  const arrivals = []; // times of events in the last minute
  let newest = null;
  const state = {lastPoint: null, points: 0, view: view};
  window.__globe = state;

  const land = decodeWorld(window.hubbubWorld);
  const flatLand = land.map(unwrap);

  // unwrap makes a ring's longitudes continuous where it crosses the
  // antimeridian (Chukotka, Fiji), and says at which shifts (0, and -360
  // or +360) to draw it on a flat map clipped to the world.
  function unwrap(ring) {
    let shift = 0, min = Infinity, max = -Infinity;
    const pts = ring.map(function (pt, i) {
      if (i > 0) {
        const d = pt[0] - ring[i - 1][0];
        if (d > 180) shift -= 360;
        else if (d < -180) shift += 360;
      }
      const lon = pt[0] + shift;
      min = Math.min(min, lon);
      max = Math.max(max, lon);
      return [lon, pt[1]];
    });
    const shifts = [0];
    if (max > 180) shifts.push(-360);
    if (min < -180) shifts.push(360);
    return {pts: pts, shifts: shifts};
  }

  function decodeWorld(w) {
    if (!w) return [];
    return w.rings.map(function (flat) {
      const out = [];
      let x = 0, y = 0;
      for (let i = 0; i + 1 < flat.length; i += 2) {
        x += flat[i];
        y += flat[i + 1];
        out.push([x / w.scale, y / w.scale]);
      }
      return out;
    });
  }

  // project gives [x, y, visible] in CSS pixels for a point on Earth.
  function project(lat, lon) {
    if (view.mode === "map") {
      return [view.cx + lon * view.scale, view.cy - lat * view.scale, true];
    }
    const l = (lon - view.lon0) * RAD, p = lat * RAD, p0 = view.lat0 * RAD;
    const cosc = Math.sin(p0) * Math.sin(p) + Math.cos(p0) * Math.cos(p) * Math.cos(l);
    const x = view.r * Math.cos(p) * Math.sin(l);
    const y = view.r * (Math.cos(p0) * Math.sin(p) - Math.sin(p0) * Math.cos(p) * Math.cos(l));
    return [view.cx + x, view.cy - y, cosc >= 0];
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    view.w = window.innerWidth;
    view.h = window.innerHeight;
    canvas.width = Math.round(view.w * dpr);
    canvas.height = Math.round(view.h * dpr);
    canvas.style.width = view.w + "px";
    canvas.style.height = view.h + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    view.cx = view.w / 2;
    view.cy = view.h / 2;
    view.r = Math.max(50, Math.min(view.w, view.h) / 2 - 24);
    view.scale = Math.max(0.5, Math.min((view.w - 32) / 360, (view.h - 32) / 180));
    draw(performance.now());
  }

  function drawEarth() {
    ctx.fillStyle = "#04060b";
    ctx.fillRect(0, 0, view.w, view.h);
    if (view.mode === "map") {
      ctx.fillStyle = "#0b1f36";
      ctx.fillRect(view.cx - 180 * view.scale, view.cy - 90 * view.scale, 360 * view.scale, 180 * view.scale);
      ctx.fillStyle = "#24496b";
      ctx.strokeStyle = "#5d8fb8";
      ctx.lineWidth = 0.8;
      ctx.save();
      ctx.beginPath();
      ctx.rect(view.cx - 180 * view.scale, view.cy - 90 * view.scale, 360 * view.scale, 180 * view.scale);
      ctx.clip();
      for (const ring of flatLand) {
        for (const shift of ring.shifts) {
          ctx.beginPath();
          ring.pts.forEach(function (pt, i) {
            const q = project(pt[1], pt[0] + shift);
            if (i === 0) ctx.moveTo(q[0], q[1]);
            else ctx.lineTo(q[0], q[1]);
          });
          ctx.closePath();
          ctx.fill();
          ctx.stroke();
        }
      }
      ctx.restore();
      return;
    }
    const g = ctx.createRadialGradient(view.cx - view.r / 3, view.cy - view.r / 3, view.r / 8, view.cx, view.cy, view.r);
    g.addColorStop(0, "#16365a");
    g.addColorStop(1, "#0a1a2e");
    ctx.fillStyle = g;
    ctx.beginPath();
    ctx.arc(view.cx, view.cy, view.r, 0, 2 * Math.PI);
    ctx.fill();
    // Graticule every 30 degrees, then the coasts: segments on the near side.
    ctx.lineWidth = 0.5;
    ctx.strokeStyle = "rgba(120, 160, 200, 0.18)";
    for (let lon = -180; lon < 180; lon += 30) line(function (t) { return [t, lon]; }, -90, 90);
    for (let lat = -60; lat <= 60; lat += 30) line(function (t) { return [lat, t]; }, -180, 180);
    ctx.lineWidth = 1.1;
    ctx.strokeStyle = "#6fa3cf";
    ctx.beginPath();
    for (const ring of land) {
      let pen = false;
      for (const pt of ring) {
        const q = project(pt[1], pt[0]);
        if (!q[2]) {
          pen = false;
          continue;
        }
        if (pen) ctx.lineTo(q[0], q[1]);
        else ctx.moveTo(q[0], q[1]);
        pen = true;
      }
    }
    ctx.stroke();
    ctx.strokeStyle = "rgba(150, 190, 230, 0.5)";
    ctx.beginPath();
    ctx.arc(view.cx, view.cy, view.r, 0, 2 * Math.PI);
    ctx.stroke();
  }

  // line strokes a parametric line (t from a to b, 3 degree steps) on the
  // near side of the globe.
  function line(at, a, b) {
    ctx.beginPath();
    let pen = false;
    for (let t = a; t <= b; t += 3) {
      const ll = at(t);
      const q = project(ll[0], ll[1]);
      if (!q[2]) {
        pen = false;
        continue;
      }
      if (pen) ctx.lineTo(q[0], q[1]);
      else ctx.moveTo(q[0], q[1]);
      pen = true;
    }
    ctx.stroke();
  }

  function drawPoints(now) {
    const still = reduce.matches;
    for (const p of points) {
      const q = project(p.lat, p.lon);
      p.x = q[0];
      p.y = q[1];
      p.visible = q[2];
      if (!q[2]) continue;
      const age = now - p.born;
      const life = Math.max(0, 1 - age / POINT_LIFE);
      const fresh = p === newest;
      ctx.globalAlpha = still ? (life > 0.5 ? 1 : 0.6) : 0.25 + 0.75 * life;
      if (!still && age < 4000) {
        // A ring that grows and fades, three times, as the point arrives.
        const phase = (age % 1333) / 1333;
        ctx.strokeStyle = "rgba(255, 204, 51, " + (1 - phase).toFixed(3) + ")";
        ctx.lineWidth = 2;
        ctx.beginPath();
        ctx.arc(q[0], q[1], 4 + phase * 22, 0, 2 * Math.PI);
        ctx.stroke();
      }
      ctx.fillStyle = fresh ? "#ffcc33" : "#f5a623";
      ctx.beginPath();
      ctx.arc(q[0], q[1], fresh ? 5 : 3.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    if (newest) {
      state.lastPoint = {topic: newest.topic, seq: newest.seq, lat: newest.lat, lon: newest.lon,
        x: newest.x, y: newest.y, visible: newest.visible,
        view: {mode: view.mode, lon0: view.lon0, lat0: view.lat0, r: view.r, scale: view.scale, cx: view.cx, cy: view.cy}};
      canvas.dataset.lastX = newest.x.toFixed(1);
      canvas.dataset.lastY = newest.y.toFixed(1);
    }
  }

  function placeThumbs(now) {
    for (const p of points) {
      if (!p.thumb) continue;
      if (now - p.born > THUMB_LIFE) {
        p.thumb.remove();
        p.thumb = null;
        continue;
      }
      p.thumb.hidden = !p.visible;
      p.thumb.style.transform = "translate(" + Math.round(p.x + 10) + "px, " + Math.round(p.y - 74) + "px)";
    }
  }

  let frame = 0;
  let lastTime = 0;
  function draw(now) {
    if (ease) {
      const t = Math.min(1, (now - ease.start) / EASE_MS);
      const k = t < 0.5 ? 2 * t * t : 1 - Math.pow(-2 * t + 2, 2) / 2;
      view.lon0 = ease.from[0] + (ease.to[0] - ease.from[0]) * k;
      view.lat0 = ease.from[1] + (ease.to[1] - ease.from[1]) * k;
      if (t >= 1) ease = null;
    } else if (view.mode === "globe" && !paused && !reduce.matches && lastTime) {
      view.lon0 = wrap(view.lon0 + TURN_SPEED * (now - lastTime) / 1000);
    }
    lastTime = now;
    drawEarth();
    drawPoints(now);
    placeThumbs(now);
  }

  function loop(now) {
    frame = 0;
    draw(now);
    if (!reduce.matches) frame = requestAnimationFrame(loop);
  }

  // redraw draws once more; under reduced motion that is the only drawing.
  function redraw() {
    if (reduce.matches) draw(performance.now());
    else if (!frame) frame = requestAnimationFrame(loop);
  }

  function wrap(lon) {
    return ((lon + 540) % 360) - 180;
  }

  // turnTo brings a point to the front of the globe, at once under
  // reduced motion.
  function turnTo(lat, lon) {
    const to = [lon, Math.max(-60, Math.min(60, lat))];
    if (reduce.matches) {
      view.lon0 = to[0];
      view.lat0 = to[1];
      return;
    }
    let from = view.lon0;
    if (to[0] - from > 180) from += 360;
    if (from - to[0] > 180) from -= 360;
    ease = {from: [from, view.lat0], to: to, start: performance.now()};
  }

  function validGeo(g) {
    return g && typeof g.lat === "number" && typeof g.lon === "number" &&
      g.lat >= -90 && g.lat <= 90 && g.lon >= -180 && g.lon <= 180;
  }

  function placeOf(ev) {
    const d = ev.data && typeof ev.data === "object" ? ev.data : {};
    for (const k of ["place", "location", "city", "country"]) {
      if (typeof d[k] === "string" && d[k] !== "") return d[k];
    }
    const g = ev.geo;
    return Math.abs(g.lat).toFixed(1) + "° " + (g.lat >= 0 ? "N" : "S") + ", " +
      Math.abs(g.lon).toFixed(1) + "° " + (g.lon >= 0 ? "E" : "W");
  }

  function thumbFor(p, src, title) {
    const shown = thumbs.querySelectorAll("img");
    if (shown.length >= MAX_THUMBS) {
      for (const q of points) {
        if (q.thumb === shown[0]) q.thumb = null;
      }
      shown[0].remove();
    }
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = title;
    img.decoding = "async";
    img.dataset.topic = p.topic;
    img.dataset.seq = String(p.seq);
    img.addEventListener("error", function () {
      img.remove();
      if (p.thumb === img) p.thumb = null;
    });
    img.src = src;
    thumbs.append(img);
    p.thumb = img;
  }

  let pendingNews = [];
  let lastAnnounce = 0;
  let announceTimer = null;
  function announce(text) {
    pendingNews.push(text);
    if (announceTimer) return;
    const wait = Math.max(0, lastAnnounce + ANNOUNCE_EVERY - Date.now());
    announceTimer = setTimeout(function () {
      announceTimer = null;
      lastAnnounce = Date.now();
      const n = pendingNews.length;
      announcer.textContent = pendingNews[n - 1] + (n > 1 ? " (and " + (n - 1) + " more)" : "");
      pendingNews = [];
    }, wait);
  }

  function remember(ev, title, place) {
    const li = document.createElement("li");
    li.dataset.topic = ev.topic;
    li.dataset.seq = String(ev.seq);
    li.textContent = title + " · " + place;
    latest.prepend(li);
    while (latest.children.length > 5) latest.lastChild.remove();
  }

  // show places an event; stored ones (count=) do not count as arrivals.
  function show(ev, stored) {
    const now = performance.now();
    if (stored !== true) arrivals.push(Date.now());
    updateRate();
    if (!validGeo(ev.geo)) return;
    const p = {lat: ev.geo.lat, lon: ev.geo.lon, born: now, topic: ev.topic, seq: ev.seq, thumb: null, x: 0, y: 0, visible: false};
    points.push(p);
    while (points.length > MAX_POINTS) {
      const old = points.shift();
      if (old.thumb) old.thumb.remove();
    }
    newest = p;
    state.points = points.length;
    const title = L.titleOf(ev), place = placeOf(ev);
    const src = L.imageOf(ev.data);
    if (src) thumbFor(p, src, title);
    remember(ev, title, place);
    announce(title + ", " + place);
    if (view.mode === "globe") {
      const q = project(p.lat, p.lon);
      const d = Math.hypot(q[0] - view.cx, q[1] - view.cy);
      if (!q[2] || d > view.r * 0.8) turnTo(p.lat, p.lon);
    }
    redraw();
  }

  function updateRate() {
    const since = Date.now() - 60000;
    while (arrivals.length && arrivals[0] < since) arrivals.shift();
    rateEl.textContent = String(arrivals.length);
  }

  canvas.addEventListener("keydown", function (e) {
    let handled = true;
    switch (e.key) {
      case "ArrowLeft": view.lon0 = wrap(view.lon0 - 15); break;
      case "ArrowRight": view.lon0 = wrap(view.lon0 + 15); break;
      case "ArrowUp": view.lat0 = Math.min(80, view.lat0 + 10); break;
      case "ArrowDown": view.lat0 = Math.max(-80, view.lat0 - 10); break;
      case " ": paused = !paused; break;
      case "m": case "M": view.mode = view.mode === "globe" ? "map" : "globe"; break;
      default: handled = false;
    }
    if (!handled) return;
    e.preventDefault();
    ease = null;
    redraw();
  });

  if (sub.topics.length === 0) {
    document.getElementById("globe-status").hidden = true;
    body.dataset.status = "idle";
    document.getElementById("globe-panel").hidden = true;
    canvas.hidden = true;
    document.getElementById("globe-form").hidden = false;
    return;
  }
  document.title = "hubbub globe: " + sub.topics.join(", ");
  window.addEventListener("resize", resize);
  if (reduce.addEventListener) reduce.addEventListener("change", function () { lastTime = 0; redraw(); });
  resize();
  redraw();
  // Once a second: the counter, and (drawn only on demand under reduced
  // motion) points and thumbnails that expire.
  setInterval(function () {
    updateRate();
    if (reduce.matches) draw(performance.now());
  }, 1000);

  function goLive(after) {
    window.hubbubGlobe = L.live(sub, after, {
      onEvent: function (ev) { show(ev, false); },
      onReset: function (r) { announce("History was lost (" + r.reason + "); going on from " + r.cursor); },
      onStatus: setStatus,
    });
  }
  const count = Math.max(0, Math.min(MAX_POINTS, parseInt(sub.params.get("count") || "0", 10) || 0));
  if (count > 0 && L.hasHistory(sub)) {
    L.recent(sub, count).then(function (r) {
      for (const ev of r.events) show(ev, true);
      goLive(r.cursor);
    }, function (err) {
      setStatus("error", {error: err});
      goLive(undefined);
    });
  } else {
    goLive(undefined);
  }
})();
