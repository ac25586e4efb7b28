/* The panels of the experiment page: line charts (accuracy and loss, communication, compute), head heatmaps
   (importance, masks, keep frequency, aggregation), the selection timeline and the data panel. Each draw goes
   through the painter P (charts are drawn when on screen); line charts are appended to, never rebuilt. */
"use strict";

const FHPanels = ({ S, P, exp }) => {
  const { api, LINE_COLOURS: C, DENSE, PLOT_CONFIG, layout, axis, plotText } = FH;
  const TERMINAL = ["succeeded", "failed", "cancelled"];
  const $ = (id) => document.getElementById(id);
  const BASE = `/api/v1/experiments/${exp.id}`;

  // --- structure of the model (block names come from the run's info; else from the matrices) ----------

  function blocks() {
    if (S.info && S.info.blocks && S.info.blocks.length) return S.info.blocks;
    const r = S.records[0] || S.first;
    const n = r && r.global_importance ? r.global_importance.length : 0;
    return [...Array(n).keys()].map((i) => `block ${i}`);
  }
  function heads() {
    if (S.info && S.info.heads_per_block) return S.info.heads_per_block;
    const r = S.records[0] || S.first;
    return r && r.global_importance && r.global_importance[0] ? r.global_importance[0].length : 0;
  }

  // --- line charts (x: the round, or elapsed wall time when S.xTime; the wall-time bars stay per round) --------

  const TIME_CHARTS = ["chart-acc", "chart-comm", "chart-cum", "chart-ops", "chart-pl"];
  /** The x of round record r on the curves (S.elapsed: the sum of measured round times up to r, kept by the page). */
  const xOf = (r) => (S.xTime ? S.elapsed.get(r.round) : r.round);
  const xAxis = (extra) => FHCharts.xAxisOf(S.xTime, extra);

  function newLines(id, traces, lay) { P.paint(id, () => Plotly.newPlot($(id), traces, lay, PLOT_CONFIG), "new"); }
  const line = (name, colour, extra) => Object.assign({ type: "scatter", mode: "lines+markers", name, x: [], y: [], text: [],
    line: { color: colour, width: 2 }, marker: { size: 5 } }, extra || {});
  const dashed = (name, colour, extra) => line(name, colour, Object.assign({ line: { color: colour, dash: "dash", width: 2 },
    marker: { size: 4, symbol: "square" } }, extra || {}));

  function metricKey(rec) {
    const m = rec.metrics || {};
    if ("accuracy" in m) return "accuracy";
    return Object.keys(m).find((k) => k !== "loss" && k !== "examples") || "accuracy";
  }
  const scale = (key) => (key === "accuracy" ? 100 : 1);

  /**
   * Accuracy and loss as two small charts on one round axis (accuracy above, loss below), each with its own
   * automatic round ticks; not two y axes over one plot, whose lines would cross for no reason. Accuracy reads in
   * percent; loss starts at zero, its floor, so a fall in loss is not drawn larger than it is.
   */
  function accuracyLossLayout(key) {
    const unit = key === "accuracy" ? "accuracy (%)" : key;
    return layout({
      xaxis: xAxis({ anchor: "y2" }),
      yaxis: axis(unit, { domain: [0.44, 1], anchor: "x", tickformat: key === "accuracy" ? ".0f" : null }),
      yaxis2: axis("loss (nats)", { domain: [0, 0.34], anchor: "x", rangemode: "tozero" }),
      margin: { l: 60, r: 20, t: 10, b: 48 },
    });
  }

  function buildLineCharts(key) {
    const at = FHCharts.xHover(S.xTime);
    newLines("chart-acc", [
      line(key === "accuracy" ? "accuracy" : key, C[0],
        { hovertemplate: key === "accuracy" ? `${at}: %{y:.1f} %` : `${at}: %{y:.4f}` }),
      line("loss", C[1], { yaxis: "y2", marker: { size: 5, symbol: "diamond" }, hovertemplate: `${at}: %{y:.4f}` }),
    ], accuracyLossLayout(key));
    const mb = { hovertemplate: `${at}: %{y:.3f} MB` }, gops = { hovertemplate: `${at}: %{y:.3f} GOPs` };
    newLines("chart-comm", [
      line("upload (pruned)", C[0], mb), dashed("upload, dense counterfactual", DENSE, mb), line("download", C[2], mb),
    ], layout({ xaxis: xAxis(), yaxis: axis("MB per round", { rangemode: "tozero" }) }));
    newLines("chart-cum", [
      line("upload (pruned)", C[0], { fill: "tozeroy", ...mb }), dashed("upload, dense counterfactual", DENSE, mb),
    ], layout({ xaxis: xAxis(), yaxis: axis("cumulative upload (MB)", { rangemode: "tozero" }) }));
    newLines("chart-ops", [
      line("whole training step", C[0], gops), dashed("whole step, dense", DENSE, gops),
      line("attention + LoRA part", C[3], gops),
      dashed("attention + LoRA, dense", "#999999", { line: { color: "#999999", dash: "dot", width: 2 }, ...gops }),
    ], layout({ xaxis: xAxis(), yaxis: axis("training OPs per round (GOPs)", { rangemode: "tozero" }) }));
    newLines("chart-wall", [{ type: "bar", name: "wall time", x: [], y: [], marker: { color: C[5] },
      hovertemplate: "round %{x}: %{y:.2f} s<extra></extra>" }],
      layout({ xaxis: axis("round"), yaxis: axis("measured wall time per round (s)", { rangemode: "tozero" }), showlegend: false }));
  }

  function extend(id, update, traces) { P.paint(id, () => Plotly.extendTraces($(id), update, traces)); }

  function extendLines(recs) {
    const xs = recs.map(xOf), rounds = recs.map((r) => r.round);
    const text = recs.map((r) => `round ${r.round}`);
    const k = S.metric;
    extend("chart-acc", {
      x: [xs, xs], text: [text, text],
      y: [recs.map((r) => (r.metrics[k] === null || r.metrics[k] === undefined ? null : r.metrics[k] * scale(k))),
        recs.map((r) => (r.metrics.loss === undefined ? null : r.metrics.loss))],
    }, [0, 1]);
    extend("chart-comm", {
      x: [xs, xs, xs], text: [text, text, text],
      y: [recs.map((r) => r.bytes_up / 1e6), recs.map((r) => r.bytes_up_dense / 1e6), recs.map((r) => r.bytes_down / 1e6)],
    }, [0, 1, 2]);
    const cumUp = [], cumDense = [];
    for (const r of recs) {
      S.cumUp = (S.cumUp || 0) + r.bytes_up; S.cumDense = (S.cumDense || 0) + r.bytes_up_dense;
      cumUp.push(S.cumUp / 1e6); cumDense.push(S.cumDense / 1e6);
    }
    extend("chart-cum", { x: [xs, xs], text: [text, text], y: [cumUp, cumDense] }, [0, 1]);
    extend("chart-ops", {
      x: [xs, xs, xs, xs], text: [text, text, text, text],
      y: [recs.map((r) => r.ops / 1e9), recs.map((r) => r.ops_dense / 1e9),
        recs.map((r) => (r.ops_attention ?? 0) / 1e9), recs.map((r) => (r.ops_attention_dense ?? 0) / 1e9)],
    }, [0, 1, 2, 3]);
    extend("chart-wall", { x: [rounds], y: [recs.map((r) => r.wall_time)] }, [0]);
    roundTicks(["chart-acc", "chart-comm", "chart-cum", "chart-ops", "chart-wall", "chart-pl"]);
  }

  /** Whole-number round ticks while there are few rounds (Plotly would show 0.5 steps); automatic after. */
  function roundTicks(ids) {
    for (const id of ids) {
      const dtick = S.records.length <= 12 && !(S.xTime && TIME_CHARTS.includes(id)) ? 1 : null;
      P.paint(id, () => {
        const gd = $(id);
        if (gd.layout && gd.layout.xaxis && (gd.layout.xaxis.dtick ?? null) !== dtick) Plotly.relayout(gd, { "xaxis.dtick": dtick });
      }, "ticks");
    }
  }

  // --- the round cursor on the round-indexed charts -------------------------------------------------

  const ROUND_CHARTS = ["chart-acc", "chart-comm", "chart-cum", "chart-ops", "chart-wall", "chart-sel", "chart-pl"];
  const CURSOR = "#e8175d";  // the colour of "the one chosen" on every chart (the highlighted head too)

  /** A dotted line at round n across the whole figure; on the selection timeline, a frame round its column. */
  function cursorShapes(id, n) {
    if (n === null || n === undefined) return [];
    if (id === "chart-sel") {
      return [{ type: "rect", xref: "x", yref: "paper", x0: n - 0.5, x1: n + 0.5, y0: 0, y1: 1,
        line: { color: CURSOR, width: 2 } }];
    }
    const x = S.xTime && TIME_CHARTS.includes(id) ? S.elapsed.get(n) : n;
    return [{ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, layer: "above",
      line: { color: CURSOR, width: 1.5, dash: "dot" } }];
  }

  /** Mark the cursor's round (S.cursor, read when the chart is drawn) on every round-indexed chart. */
  function markRound() {
    for (const id of ROUND_CHARTS) {
      P.paint(id, () => {
        const gd = $(id);
        if (gd.layout) Plotly.relayout(gd, { shapes: cursorShapes(id, S.cursor) });
      }, "cursor");
    }
  }

  /** The dense sibling of a sweep, overlaid on the accuracy chart (traces 2 and 3). */
  async function overlayDense() {
    if (!S.dense || S.denseDone || !S.metric) return;
    const res = await api("GET", `/ui/experiments/${S.dense.id}/series`);
    if (!res.ok) return;
    const d = res.data;
    const k = S.metric;
    const acc = (d[k] || d.accuracy || []).map((v) => (v === null ? null : v * scale(k)));
    const x = S.xTime ? FHCharts.cumulative(d.wall_time || []) : d.round;
    const text = d.round.map((r) => `round ${r}`), at = FHCharts.xHover(S.xTime);
    const traces = [dashed(`dense baseline: ${k}`, DENSE, { x, y: acc, text,
      hovertemplate: k === "accuracy" ? `${at}: %{y:.1f} %` : `${at}: %{y:.4f}` }),
      dashed("dense baseline: loss", "#999999", { x, y: d.loss, text, yaxis: "y2", hovertemplate: `${at}: %{y:.4f}`,
        marker: { size: 4, symbol: "diamond-open" } })];
    P.paint("chart-acc", () => {
      const gd = $("chart-acc");
      if (gd.data.length > 2) Plotly.deleteTraces(gd, [2, 3]);
      Plotly.addTraces(gd, traces);
    }, "dense");
    S.denseDone = TERMINAL.includes(d.status);
  }

  /** Draw the curves again against the round or elapsed wall time (the x-axis choice), from the stored rounds. */
  function redrawCurves(pruning) {
    if (!S.built) return;
    P.flush();  // nothing queued for the old axis may land on the new charts
    S.cumUp = 0; S.cumDense = 0; S.denseDone = false;
    buildLineCharts(S.metric);
    extendLines(S.records);
    pruning.redraw();
    overlayDense();
    markRound();
  }

  // --- head panels --------------------------------------------------------------------------------

  function record(n) { return S.byRound.get(n); }

  function drawImportance() {
    const rec = record(S.cursor);
    if (!rec) return;
    let matrix = rec.global_importance;
    let note = `Round ${rec.round}: importance of the global model (clients' scores weighted by n_k).`;
    if (S.impSource !== "global") {
      const c = rec.clients.find((x) => String(x.client) === S.impSource);
      matrix = c ? c.importance : null;
      note = c ? `Round ${rec.round}: client ${c.client}'s own scores on its local data.`
        : `Client ${S.impSource} was not selected in round ${rec.round}; no scores.`;
    }
    if ((rec.skipped || []).includes("importance")) {  // probe_passes 'needed': nothing in the run used the scores
      matrix = null;
      note = `Round ${rec.round}: not computed (probe_passes "needed": nothing in this run uses head importance).`;
    }
    $("imp-note").textContent = note;
    P.paint("chart-imp", () => {
      const flat = (matrix || []).flat().filter((v) => v !== null);
      const fig = FHCharts.headHeatmap(matrix, { blocks: blocks(), heads: heads(), title: "importance",
        zmin: flat.length ? Math.min(...flat) : 0, zmax: flat.length ? Math.max(...flat) : 1, highlight: S.head });
      Plotly.react($("chart-imp"), fig.data, fig.layout, PLOT_CONFIG);
    }, "react");
  }

  function drawStrip() {
    const rec = record(S.cursor);
    if (!rec) return;
    P.paint("chart-strip", () => {
      const fig = FHCharts.filmStrip(rec.clients.map((c) => ({ client: c.client, kept: c.kept })),
        { blocks: blocks(), heads: heads() });
      Plotly.react($("chart-strip"), fig.data, fig.layout, PLOT_CONFIG);
    }, "react");
  }

  function drawFreq() { P.paint("chart-freq", paintFreq, "react"); }

  function paintFreq() {
    const B = blocks().length, H = heads();
    let kept = null, n = 0;
    if (S.freqClient === "all") {
      kept = new Float64Array(B * H);
      for (const v of S.kept.values()) { v.counts.forEach((c, i) => { kept[i] += c; }); n += v.n; }
    } else if (S.kept.has(Number(S.freqClient))) {
      const v = S.kept.get(Number(S.freqClient)); kept = v.counts; n = v.n;
    }
    const matrix = [...Array(B).keys()].map((b) => [...Array(H).keys()].map((h) => (n && kept ? kept[b * H + h] / n : null)));
    const fig = FHCharts.headHeatmap(matrix, { blocks: blocks(), heads: H, title: "share kept", zmin: 0, zmax: 1, fmt: ".0%" });
    Plotly.react($("chart-freq"), fig.data, fig.layout, PLOT_CONFIG);
  }

  /** The head kept by at least one client in round n with the highest global importance; null if none was kept. */
  function mostImportantKeptHead(n) {
    const rec = record(n);
    if (!rec) return null;
    const imp = rec.global_importance || [];
    let best = null;
    for (const c of rec.clients || []) {
      (c.kept || []).forEach((row, b) => row.forEach((kept, h) => {
        const v = imp[b] && imp[b][h] !== null && imp[b][h] !== undefined ? imp[b][h] : -Infinity;
        if (kept && (best === null || v > best.v)) best = { block: b, head: h, v };
      }));
    }
    return best && { block: best.block, head: best.head };
  }

  function drawAggregation() {
    const rec = record(S.cursor);
    if (!rec) return;
    const { block: b, head: h } = S.head;
    const names = blocks();
    $("agg-head-name").textContent = `${names[b] ?? b} · head ${h}`;
    const ag = rec.agreement && rec.agreement[b] ? rec.agreement[b][h] : null;
    $("agg-agreement").textContent = ag === null || ag === undefined ? "n/a (fewer than two keepers)" : ag.toFixed(3);
    const w = rec.head_weights || [];
    const xs = rec.clients.map((c) => `client ${c.client}`);
    const ys = rec.clients.map((_, i) => (w[i] && w[i][b] ? w[i][b][h] : null));
    const keptBy = rec.clients.map((c) => Boolean(c.kept && c.kept[b] && c.kept[b][h]));
    const nobody = !keptBy.some(Boolean);
    const empty = nobody ? [{ text: "no selected client kept this head: it keeps its previous value", xref: "paper",
      yref: "paper", x: 0.5, y: 0.5, showarrow: false, font: { color: FH.themeColour("--muted", "#5a6472") } }] : [];
    P.paint("chart-aggw", () => Plotly.react($("chart-aggw"), [{
      type: "bar", x: xs, y: ys, marker: { color: keptBy.map((k) => (k ? FHCharts.V1 : "#bbbbbb")) },
      customdata: keptBy.map((k) => (k ? "kept the head" : "pruned it")),
      hovertemplate: "%{x}: weight %{y:.3f} (%{customdata})<extra></extra>",
    }], layout({ margin: { l: 60, r: 10, t: 6, b: 40 }, showlegend: false, xaxis: axis(""), annotations: empty,
      yaxis: axis("weight (share)", { range: [0, 1.05] }) }), PLOT_CONFIG), "react");
    const cells = (rec.agreement || []).flat();
    const blank = cells.filter((v) => v === null || v === undefined).length;
    $("agree-note").textContent = blank
      ? `White cells (${blank} of ${cells.length} heads this round): fewer than two of the round's clients kept ` +
        "that head, so there are no two updates to compare."
      : "Every head was kept by at least two of the round's clients.";
    P.paint("chart-agree", () => {
      const fig = FHCharts.headHeatmap(rec.agreement, { blocks: names, heads: heads(), title: "agreement (cos)",
        zmin: -1, zmax: 1, highlight: S.head, fmt: ".3f" });
      Plotly.react($("chart-agree"), fig.data, fig.layout, PLOT_CONFIG);
    }, "react");
  }

  // --- selection timeline -------------------------------------------------------------------------

  function initSelection() {
    const K = exp.spec.num_clients;
    const rows = K <= 300 ? [...Array(K).keys()] : [];
    S.sel = { rows, rowOf: new Map(rows.map((c, i) => [c, i])), x: [], z: rows.map(() => []), text: rows.map(() => []),
      revision: 0 };
  }

  function addSelectionColumn(rec) {
    const sel = S.sel;
    const s = rec.selection || {};
    const picked = new Set(s.selected || []);
    const cands = new Set(s.candidates || []);
    for (const c of [...cands, ...picked]) {
      if (!sel.rowOf.has(c)) {  // large federations: rows only for clients ever considered
        sel.rowOf.set(c, sel.rows.length); sel.rows.push(c);
        sel.z.push(sel.x.map(() => 0)); sel.text.push(sel.x.map((r) => `client ${c}, round ${r}: not a candidate`));
      }
    }
    sel.x.push(rec.round);
    const scores = s.scores || {};
    sel.rows.forEach((c, i) => {
      const state = picked.has(c) ? 2 : cands.has(c) ? 1 : 0;
      const score = scores[String(c)];
      sel.z[i].push(state);
      sel.text[i].push(`client ${c}, round ${rec.round}: ${["not a candidate", "candidate", "selected"][state]}` +
        (score === undefined || score === null ? "" : `<br>score ${Number(score).toPrecision(4)}`));
    });
    sel.revision += 1;
  }

  function drawSelection() {
    P.paint("chart-sel", () => {
      const fig = FHCharts.selectionFigure(S.sel);
      fig.layout.xaxis.dtick = S.sel.x.length <= 12 ? 1 : null;
      fig.layout.shapes = cursorShapes("chart-sel", S.cursor);
      Plotly.react($("chart-sel"), fig.data, fig.layout, PLOT_CONFIG);
    }, "react");
  }

  function drawSelectionReason(n) {
    const rec = record(n);
    if (!rec) return;
    const s = rec.selection || {};
    $("sel-round").textContent = String(n);
    $("sel-reason").textContent = `${s.strategy ? `[${s.strategy}] ` : ""}${s.reason || "–"}`;
  }

  // --- data panel ---------------------------------------------------------------------------------

  async function loadClients() {
    const res = await api("GET", `${BASE}/clients`);
    if (!res.ok || !res.data.items.length) return false;
    const items = res.data.items;
    const labels = res.data.label_names.length ? res.data.label_names
      : items[0].label_histogram.map((_, i) => `label ${i}`);
    const n = labels.length;
    const colour = (i) => {  // sampled along Viridis
      const stops = ["#440154", "#482878", "#3e4a89", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
      return stops[Math.round((n === 1 ? 0 : i / (n - 1)) * (stops.length - 1))];
    };
    const traces = labels.map((name, i) => ({
      type: "bar", name: plotText(name), x: items.map((c) => c.client), y: items.map((c) => c.label_histogram[i] || 0),
      marker: { color: colour(i) }, hovertemplate: `client %{x}, ${plotText(name).replace(/[%{}]/g, "")}: %{y}<extra></extra>`,
    }));
    P.paint("chart-data", () => Plotly.react($("chart-data"), traces, layout({ barmode: "stack",
      xaxis: axis("client", { dtick: items.length > 40 ? null : 1 }), yaxis: axis("training examples") }), PLOT_CONFIG),
    "react");
    S.clientsLoaded = true;
    return true;
  }

  return {
    blocks, heads, metricKey, buildLineCharts, extendLines, overlayDense, record, drawImportance, drawStrip,
    drawFreq, drawAggregation, initSelection, addSelectionColumn, drawSelection, drawSelectionReason, loadClients,
    markRound, mostImportantKeptHead, redrawCurves, xOf, xAxis,
  };
};
