// Small live line charts in inline SVG, for the dashboard: no library,
// nothing fetched. A chart keeps the samples of its window (by default the
// last 10 minutes) and redraws on render(). Each series is a line in its
// own colour with its latest value in the legend; the SVG has a text
// alternative (aria-label) that names the latest values, so the numbers
// are there for screen readers and tests alike.
//
//   const c = hubbubCharts.create(parent, {id: "events", title: "Events per second",
//     series: [{key: "in", label: "in", color: "#f5b83d"}], unit: "/s"});
//   c.push(Date.now(), {in: 12.5}); c.render();
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const W = 480, H = 170, LEFT = 44, RIGHT = 8, TOP = 10, BOTTOM = 22;

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k of Object.keys(attrs || {})) e.setAttribute(k, attrs[k]);
    return e;
  }

  // nice rounds a maximum up to 1, 2 or 5 times a power of ten.
  function nice(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  // fmt shows a value briefly: 0, 0.35, 3.5, 35, 350, 3.5k, 3.5M.
  function fmt(v) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
    if (a >= 10 || v === Math.round(v)) return String(Math.round(v));
    return v.toFixed(a >= 1 ? 1 : 2);
  }

  function create(parent, opts) {
    const windowMs = opts.windowMs || 10 * 60 * 1000;
    const series = opts.series.map(function (s) { return Object.assign({}, s); });
    const samples = []; // {t, v: {key: number}}

    const fig = document.createElement("figure");
    fig.className = "chart";
    fig.dataset.chart = opts.id;
    const cap = document.createElement("figcaption");
    cap.textContent = opts.title;
    const root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", focusable: "false"});
    const grid = svg("g", {"class": "grid"});
    const lines = svg("g", {"class": "lines"});
    root.append(grid, lines);
    for (const s of series) {
      s.line = svg("polyline", {fill: "none", stroke: s.color, "stroke-width": "2", "stroke-linejoin": "round",
        "vector-effect": "non-scaling-stroke", points: ""});
      s.line.dataset.series = s.key;
      lines.append(s.line);
    }
    const legend = document.createElement("ul");
    legend.className = "legend";
    for (const s of series) {
      const li = document.createElement("li");
      li.dataset.series = s.key;
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = s.color;
      const name = document.createElement("span");
      name.textContent = s.label + " ";
      s.value = document.createElement("strong");
      s.value.textContent = "–";
      li.append(sw, name, s.value);
      legend.append(li);
      s.item = li;
    }
    fig.append(cap, root, legend);
    parent.append(fig);

    function push(t, values) {
      samples.push({t: t, v: values});
      while (samples.length > 0 && samples[0].t < t - windowMs) samples.shift();
    }

    function render() {
      const now = samples.length ? samples[samples.length - 1].t : Date.now();
      let top = 0;
      for (const p of samples) for (const s of series) top = Math.max(top, Number(p.v[s.key]) || 0);
      top = nice(top);
      const x = function (t) { return LEFT + (W - LEFT - RIGHT) * (1 - (now - t) / windowMs); };
      const y = function (v) { return TOP + (H - TOP - BOTTOM) * (1 - Math.min(v, top) / top); };
      grid.replaceChildren();
      for (const f of [0, 0.5, 1]) {
        const gy = y(top * f);
        grid.append(svg("line", {x1: LEFT, x2: W - RIGHT, y1: gy, y2: gy}));
        const label = svg("text", {x: LEFT - 6, y: gy + 4, "text-anchor": "end"});
        label.textContent = fmt(top * f);
        grid.append(label);
      }
      const mins = Math.round(windowMs / 60000);
      for (const [f, text] of [[0, "−" + mins + " min"], [0.5, "−" + mins / 2 + " min"], [1, "now"]]) {
        const label = svg("text", {x: LEFT + (W - LEFT - RIGHT) * f, y: H - 6,
          "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle"});
        label.textContent = text;
        grid.append(label);
      }
      const said = [];
      for (const s of series) {
        const pts = [];
        let last = null;
        for (const p of samples) {
          const v = p.v[s.key];
          if (v === null || v === undefined || isNaN(v)) continue;
          pts.push(x(p.t).toFixed(1) + "," + y(v).toFixed(1));
          last = v;
        }
        s.line.setAttribute("points", pts.join(" "));
        s.value.textContent = fmt(last) + (opts.unit && last !== null ? opts.unit : "");
        s.item.dataset.value = last === null ? "" : String(last);
        said.push(s.label + " " + fmt(last) + (opts.unit || ""));
      }
      root.setAttribute("aria-label", opts.title + ", last " + mins + " minutes; now: " + said.join(", "));
      fig.dataset.samples = String(samples.length);
    }

    render();
    return {push: push, render: render, element: fig,
      last: function (key) { return samples.length ? samples[samples.length - 1].v[key] : undefined; }};
  }

  window.hubbubCharts = {create: create, format: fmt};
})();
