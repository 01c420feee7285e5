// gitmlm ui: the charts and the small behaviours of the pages. No build step, no framework.
// Every user string reaches the page through textContent (never innerHTML), and reaches
// plotly escaped (plotly reads a few HTML-like tags in its labels).
(function () {
  "use strict";

  var dataNode = document.getElementById("page-data");
  var DATA = dataNode ? JSON.parse(dataNode.textContent) : null;
  var STATIC = document.body.getAttribute("data-static") === "true";
  var MAX_POINTS = 4000; // per drawn line: more than a screen shows; min/max kept per bucket
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function label(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
    if (typeof v === "boolean") return v ? "true" : "false";
    return String(v);
  }

  // --- Runs ------------------------------------------------------------------------------

  function runsPage() {
    var form = document.getElementById("compare-form");
    if (!form) return;
    var button = document.getElementById("compare");
    var count = document.getElementById("selected");
    function update() {
      var n = form.querySelectorAll("input.pick:checked").length;
      count.textContent = n + " selected";
      button.disabled = n < 2 || n > 20;
    }
    form.addEventListener("change", update);
    update();
    if (STATIC && DATA && DATA.filter && window.gitmlmWhere) staticFilter(DATA.filter);
    document.querySelectorAll("#runs th.sorter").forEach(function (th) {
      th.addEventListener("click", function () { sortTable(th); });
    });
  }

  function staticFilter(data) {
    // The report has no server: the --where language runs here (static/where.js), on the rows
    // the page carries. ?where= in the URL fills it in, so a filtered view can be linked.
    var filter = null; // built on first use: 10,000 runs' values need not slow the first paint
    var form = document.getElementById("filter-form"), input = document.getElementById("where");
    var error = document.getElementById("where-error"), count = document.getElementById("where-count");
    function apply() {
      filter = filter || new window.gitmlmWhere(data);
      var got = filter.select(input.value), keep = {};
      (got.ids || []).forEach(function (id) { keep[id] = true; });
      document.querySelectorAll("#runs tbody tr.run").forEach(function (tr) {
        tr.hidden = !keep[tr.getAttribute("data-run")];
        if (tr.hidden) tr.querySelector("input.pick").checked = false;
      });
      error.textContent = got.error || "";
      error.hidden = !got.error;
      count.textContent = got.error ? "" : got.ids.length + " shown";
      document.getElementById("compare-form").dispatchEvent(new Event("change"));
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      apply();
      var url = new URL(location.href);
      url.searchParams.set("where", input.value);
      try { history.replaceState(null, "", url.href); } catch (e) { /* some file:// pages refuse */ }
    });
    var given = new URLSearchParams(location.search).get("where");
    if (given) { input.value = given; apply(); }
  }

  function sortTable(th) {
    var col = Number(th.getAttribute("data-col"));
    var desc = th.getAttribute("data-desc") !== "true";
    th.setAttribute("data-desc", desc ? "true" : "false");
    var body = document.querySelector("#runs tbody");
    var rows = Array.prototype.slice.call(body.querySelectorAll("tr.run"));
    function key(tr) {
      var text = tr.children[col].textContent.trim();
      var num = parseFloat(text);
      return text === "" ? null : (isNaN(num) || String(num) !== text && !/^-?[\d.e+-]+$/.test(text) ? text : num);
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null) return 1;
      if (y === null) return -1;
      var order = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return desc ? -order : order;
    });
    rows.forEach(function (tr) { body.appendChild(tr); });
  }

  // --- curves ----------------------------------------------------------------------------

  function smooth(values, weight) {
    // TensorBoard's debiased exponential moving average.
    if (!weight) return values;
    var out = new Array(values.length), last = 0, n = 0;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null || !isFinite(v)) { out[i] = v; continue; }
      last = last * weight + (1 - weight) * v;
      n++;
      out[i] = last / (1 - Math.pow(weight, n));
    }
    return out;
  }

  function decimate(xs, ys) {
    // Keep each bucket's first, min and max point, so a spike is never smoothed away.
    if (xs.length <= MAX_POINTS) return [xs, ys];
    var buckets = Math.floor(MAX_POINTS / 2), size = xs.length / buckets, ox = [], oy = [];
    for (var b = 0; b < buckets; b++) {
      var lo = Math.floor(b * size), hi = Math.min(xs.length, Math.floor((b + 1) * size));
      var imin = lo, imax = lo;
      for (var i = lo; i < hi; i++) {
        if (ys[i] < ys[imin]) imin = i;
        if (ys[i] > ys[imax]) imax = i;
      }
      var a = Math.min(imin, imax), z = Math.max(imin, imax);
      ox.push(xs[a]); oy.push(ys[a]);
      if (z !== a) { ox.push(xs[z]); oy.push(ys[z]); }
    }
    return [ox, oy];
  }

  function drawCurves(runs) {
    var box = document.getElementById("curves");
    if (!box || !window.Plotly) return;
    var metrics = [];
    runs.forEach(function (r) {
      Object.keys(r.steps || {}).forEach(function (m) { if (metrics.indexOf(m) < 0) metrics.push(m); });
    });
    metrics.sort();
    var logy = document.getElementById("logy"), slider = document.getElementById("smooth");
    // Every chart's box first, so each is drawn at its final width in the grid.
    var divs = metrics.map(function (metric) {
      var div = el("div", null, "chart curve");
      div.setAttribute("data-metric", metric);
      box.appendChild(div);
      return div;
    });
    function render() {
      var weight = slider ? Number(slider.value) : 0;
      metrics.forEach(function (metric, mi) {
        var div = divs[mi];
        var traces = [];
        runs.forEach(function (r, ri) {
          var s = (r.steps || {})[metric];
          if (!s) return;
          var color = COLORS[ri % COLORS.length];
          var name = label(r.name + " · " + r.id.slice(0, 8));
          if (weight) {
            var raw = decimate(s.step, s.value);
            traces.push({ x: raw[0], y: raw[1], type: "scatter", mode: "lines", name: name,
              line: { color: color, width: 1 }, opacity: 0.25, showlegend: false, hoverinfo: "skip" });
          }
          var d = decimate(s.step, smooth(s.value, weight));
          traces.push({ x: d[0], y: d[1], type: "scatter", mode: "lines", name: name,
            line: { color: color, width: 2 } });
        });
        var layout = { title: { text: label(metric) + " by step" }, height: 320,
          margin: { l: 50, r: 10, t: 40, b: 30 }, yaxis: { type: logy && logy.checked ? "log" : "linear" },
          legend: { orientation: "h", y: -0.12 } };
        Plotly.react(div, traces, layout, { displaylogo: false, responsive: true });
      });
      box.setAttribute("data-drawn", String(metrics.length));
    }
    if (logy) logy.addEventListener("change", render);
    if (slider) slider.addEventListener("input", render);
    render();
  }

  // --- Compare ---------------------------------------------------------------------------

  function runLink(r) {
    var a = el("a", r.name);
    a.href = DATA.run_href.replace("RUNIDHERE", encodeURIComponent(r.id));
    return a;
  }

  function keysOf(runs, field) {
    var keys = [];
    runs.forEach(function (r) {
      Object.keys(r[field] || {}).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); });
    });
    return keys.sort();
  }

  function table(id, runs, field, highlight) {
    var t = document.getElementById(id);
    var head = el("tr");
    head.appendChild(el("th", field));
    runs.forEach(function (r) { var th = el("th"); th.appendChild(runLink(r)); head.appendChild(th); });
    t.appendChild(head);
    keysOf(runs, field).forEach(function (k) {
      var tr = el("tr");
      tr.appendChild(el("th", k));
      var seen = {};
      runs.forEach(function (r) {
        var v = (r[field] || {})[k];
        seen[JSON.stringify(v === undefined ? null : v)] = true;
        tr.appendChild(el("td", fmt(v), typeof v === "number" ? "num" : ""));
      });
      if (highlight && Object.keys(seen).length > 1) tr.className = "differs";
      t.appendChild(tr);
    });
  }

  function numeric(runs, field, key) {
    return runs.every(function (r) {
      var v = (r[field] || {})[key];
      return v === undefined || v === null || typeof v === "number";
    });
  }

  function options(select, items) {
    items.forEach(function (item) {
      var o = el("option", item.label);
      o.value = item.value;
      select.appendChild(o);
    });
  }

  function drawParcoords(runs) {
    // Parallel coordinates as plain SVG lines (plotly's parcoords needs WebGL, which headless
    // and remote browsers often lack): one axis per param and the metric, each scaled to its
    // own range, categorical params spread evenly; one line per run.
    var metrics = keysOf(runs, "metrics"), params = keysOf(runs, "params");
    var pick = document.getElementById("pc-metric");
    if (!metrics.length) return;
    options(pick, metrics.map(function (m) { return { value: m, label: m }; }));
    function axis(field, key) {
      var values = runs.map(function (r) { var v = (r[field] || {})[key]; return v === undefined ? null : v; });
      if (numeric(runs, field, key)) {
        var present = values.filter(function (v) { return v !== null; });
        var lo = Math.min.apply(null, present), hi = Math.max.apply(null, present);
        return { label: field + "." + key, lo: fmt(lo), hi: fmt(hi), pos: values.map(function (v) {
          return v === null ? null : (hi === lo ? 0.5 : (v - lo) / (hi - lo)); }), raw: values };
      }
      var cats = [];
      values.forEach(function (v) { var s = fmt(v); if (cats.indexOf(s) < 0) cats.push(s); });
      cats.sort();
      return { label: field + "." + key, lo: cats[0], hi: cats[cats.length - 1], raw: values,
        pos: values.map(function (v) { return cats.length < 2 ? 0.5 : cats.indexOf(fmt(v)) / (cats.length - 1); }) };
    }
    function render() {
      var axes = params.map(function (p) { return axis("params", p); }).concat([axis("metrics", pick.value)]);
      var xs = axes.map(function (_, i) { return i; });
      var traces = runs.map(function (r, ri) {
        return { x: xs, y: axes.map(function (a) { return a.pos[ri]; }), type: "scatter", mode: "lines+markers",
          name: label(r.name), line: { color: COLORS[ri % COLORS.length], width: 2 },
          text: axes.map(function (a) { return label(a.label + " = " + fmt(a.raw[ri])); }), hoverinfo: "text+name" };
      });
      var notes = [];
      axes.forEach(function (a, i) {
        notes.push({ x: i, y: 1.04, text: label(a.hi), showarrow: false, font: { size: 11 } });
        notes.push({ x: i, y: -0.06, text: label(a.lo), showarrow: false, font: { size: 11 } });
      });
      var shapes = xs.map(function (i) {
        return { type: "line", x0: i, x1: i, y0: 0, y1: 1, line: { color: "#98a2b3", width: 1 } };
      });
      Plotly.react("parcoords", traces, { height: 360, margin: { l: 40, r: 40, t: 30, b: 60 },
        annotations: notes, shapes: shapes, showlegend: true,
        xaxis: { tickvals: xs, ticktext: axes.map(function (a) { return label(a.label); }), zeroline: false, showgrid: false },
        yaxis: { visible: false, range: [-0.12, 1.1] } }, { displaylogo: false, responsive: true });
    }
    pick.addEventListener("change", render);
    render();
  }

  function drawScatter(runs) {
    var metrics = keysOf(runs, "metrics"), params = keysOf(runs, "params");
    var sx = document.getElementById("sc-x"), sy = document.getElementById("sc-y");
    if (!metrics.length) return;
    options(sx, params.map(function (p) { return { value: "params:" + p, label: "params." + p }; })
      .concat(metrics.map(function (m) { return { value: "metrics:" + m, label: "metrics." + m }; })));
    options(sy, metrics.map(function (m) { return { value: m, label: "metrics." + m }; }));
    function value(r, spec) {
      var i = spec.indexOf(":"), field = spec.slice(0, i), key = spec.slice(i + 1);
      var v = (r[field] || {})[key];
      return v === undefined ? null : (typeof v === "number" ? v : fmt(v));
    }
    function render() {
      var traces = runs.map(function (r, i) {
        return { x: [value(r, sx.value)], y: [value(r, "metrics:" + sy.value)], type: "scatter",
          mode: "markers", name: label(r.name), marker: { size: 12, color: COLORS[i % COLORS.length] } };
      });
      Plotly.react("scatter", traces, { height: 360, margin: { l: 60, r: 10, t: 20, b: 50 },
        xaxis: { title: { text: label(sx.options[sx.selectedIndex].textContent) } },
        yaxis: { title: { text: label("metrics." + sy.value) } } }, { displaylogo: false, responsive: true });
    }
    sx.addEventListener("change", render);
    sy.addEventListener("change", render);
    render();
  }

  function comparePage(runs) {
    document.getElementById("count").textContent = runs.length + " runs";
    table("params-diff", runs, "params", true);
    table("metrics-table", runs, "metrics", true);
    drawCurves(runs);
    drawParcoords(runs);
    drawScatter(runs);
    // When everything is drawn, in ms since the navigation began (the benchmark reads it).
    document.body.setAttribute("data-drawn-ms", String(Math.round(performance.now())));
    document.body.setAttribute("data-ready", "true");
  }

  function compareError(text) {
    var p = document.getElementById("compare-error");
    p.textContent = text;
    p.hidden = false;
    document.body.setAttribute("data-ready", "true");
  }

  function loadStaticRuns() {
    // The static report cannot fetch files (file:// forbids it): each run's data is a script.
    var ids = new URLSearchParams(location.search).getAll("ids");
    if (ids.length < 2 || ids.length > 20) return compareError("compare 2 to 20 runs (got " + ids.length + "): tick them on Runs");
    window.gitmlmRuns = window.gitmlmRuns || {};
    var left = ids.length, failed = [];
    ids.forEach(function (id) {
      if (!/^[0-9a-z]+$/.test(id)) { failed.push(id); left--; return; }
      var s = document.createElement("script");
      s.src = "runs-data/" + id + ".js";
      s.onload = s.onerror = function () {
        if (!window.gitmlmRuns[id]) failed.push(id);
        if (--left === 0) done();
      };
      document.body.appendChild(s);
    });
    function done() {
      if (failed.length) return compareError("no run " + failed.join(", ") + " in this report");
      comparePage(ids.map(function (id) { return window.gitmlmRuns[id]; }));
    }
    if (left === 0) done();
  }

  // --- Monitor ---------------------------------------------------------------------------
  // One model's observations over time (the ui's Monitor page, `git mlm report`) and one
  // observation (`git mlm monitor --html`): the data comes from gitmlm/monitor/charts.py.

  var REF_COLOR = "#4c72b0", NOW_COLOR = "#dd8452";
  var STATUS_COLOR = { ok: "#2e7d32", DRIFT: "#c62828", SCHEMA: "#6a1b9a" };

  function drawAll(box, specs) {
    // Every chart's box first, so each is drawn at its final width in the grid.
    var divs = specs.map(function () { var div = el("div", null, "chart"); box.appendChild(div); return div; });
    specs.forEach(function (spec, i) {
      var layout = Object.assign({ title: { text: label(spec.title), font: { color: spec.color || "#222" } },
        height: 300, margin: { l: 50, r: 10, t: 40, b: 40 }, legend: { orientation: "h" } }, spec.layout || {});
      Plotly.newPlot(divs[i], spec.traces, layout, { displaylogo: false, responsive: true });
    });
    box.setAttribute("data-drawn", String(specs.length));
  }

  function dashed(y, color) {
    return { type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { dash: "dash", color: color, width: 1 } };
  }

  function windowCharts(c) {
    // Quality and latency per window; dashed: the run's training metric, the SLO. A window
    // that breached a bound is a red point.
    var specs = [];
    [["realised quality per window", c.quality, c.training || {}, " (dashed: the run's training metric)"],
     ["latency per window", c.latency, c.slo || {}, " (dashed: SLO)"]].forEach(function (part) {
      var series = part[1] || {}, refs = part[2], keys = Object.keys(series);
      if (!keys.length) return;
      var shapes = [], traces = [];
      keys.forEach(function (k, i) {
        var color = COLORS[i % COLORS.length], s = series[k];
        traces.push({ x: s.x, y: s.y, name: label(k), type: "scatter", mode: "lines+markers",
          line: { color: color }, marker: { color: s.breached.map(function (b) { return b ? "#c62828" : color; }),
            size: s.breached.map(function (b) { return b ? 11 : 6; }) } });
        if (typeof refs[k] === "number") shapes.push(dashed(refs[k], color));
      });
      specs.push({ title: part[0] + (shapes.length ? part[3] : ""), traces: traces, layout: { shapes: shapes } });
    });
    return specs;
  }

  function historyCharts(c) {
    return Object.keys(c.history).map(function (f) {
      var s = c.history[f];
      return { title: "feature " + f, traces: Object.keys(s.scores).map(function (k) {
        return { x: s.x, y: s.scores[k], name: k, type: "scatter", mode: "lines+markers" };
      }) };
    });
  }

  function featureChart(f) {
    var title = f.feature + ": " + f.status + (typeof f.psi === "number" ? ", psi " + fmt(Number(f.psi.toPrecision(3))) : "");
    var spec = { title: title, color: STATUS_COLOR[f.status], traces: [], layout: {} };
    if (f.kind === "numeric") {
      var e = f.edges, mids = [], widths = [];
      for (var i = 0; i + 1 < e.length; i++) { mids.push((e[i] + e[i + 1]) / 2); widths.push(e[i + 1] - e[i]); }
      spec.traces.push({ x: mids, y: f.training, width: widths, type: "bar", name: "training",
        marker: { color: REF_COLOR }, opacity: 0.45 });
      if (f.serving) {
        // A step line over the same bins: serving drawn on the training edges.
        spec.traces.push({ x: e, y: f.serving.concat([f.serving[f.serving.length - 1]]), type: "scatter",
          mode: "lines", line: { shape: "hv", color: NOW_COLOR, width: 2 }, name: "serving" });
      }
      spec.layout = { bargap: 0, yaxis: { title: { text: "density" } },
        xaxis: { title: { text: label(f.note), font: { color: NOW_COLOR, size: 11 } } } };
    } else if (f.kind === "categorical") {
      var names = f.categories.map(function (c, i) { return label(c + (f["new"][i] ? " (new)" : "")); });
      spec.traces.push({ y: names, x: f.training, type: "bar", orientation: "h", name: "training",
        marker: { color: REF_COLOR }, opacity: 0.7 });
      if (f.serving) spec.traces.push({ y: names, x: f.serving, type: "bar", orientation: "h", name: "serving",
        marker: { color: NOW_COLOR } });
      spec.layout = { barmode: "group", yaxis: { autorange: "reversed", automargin: true },
        xaxis: { title: { text: "share of values" } } };
    } else {
      spec.layout = { xaxis: { visible: false }, yaxis: { visible: false },
        annotations: [{ text: label(f.note), showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] };
    }
    return spec;
  }

  function monitorPage(c) {
    var box = document.getElementById("monitor-charts");
    if (!box || !window.Plotly) return;
    drawAll(box, historyCharts(c).concat(windowCharts(c)));
  }

  function observationPage(c) {
    var box = document.getElementById("monitor-charts"), windows = document.getElementById("window-charts");
    if (!box || !window.Plotly) return;
    drawAll(box, c.features.map(featureChart));
    drawAll(windows, windowCharts(c));
    document.body.setAttribute("data-ready", "true");
  }

  // --- start -----------------------------------------------------------------------------

  runsPage();
  if (DATA && DATA.page === "run") drawCurves(DATA.runs);
  if (DATA && DATA.page === "compare") {
    if (DATA.runs) comparePage(DATA.runs); else if (STATIC) loadStaticRuns();
  }
  if (DATA && DATA.page === "monitor") monitorPage(DATA.charts);
  if (DATA && DATA.page === "observation") observationPage(DATA.charts);
})();
