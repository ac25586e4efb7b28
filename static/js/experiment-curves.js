/* The experiment page's curves: accuracy and loss, communication, cumulative upload, compute and wall time per
   round, with the round cursor marked and a sweep's dense baseline overlaid. A function of the page state's read-only
   view (experiment-state.js); it keeps only its own running sums and whether the dense overlay is final. Each draw
   goes through the painter P (charts are drawn when on screen); the curves are appended to, never rebuilt. */
"use strict";

const FHCurves = (() => {
  const { LINE_COLOURS: C, DENSE, PLOT_CONFIG, TERMINAL, api, layout, axis } = FH;
  const { ROUND_CHARTS, TIME_CHARTS } = FHExperimentState;
  const $ = FH.byId;
  const CURSOR = "#e8175d";  // the colour of "the one chosen" on every chart (the highlighted head too)

  const scale = (key) => (key === "accuracy" ? 100 : 1);
  const line = (name, colour, extra) => Object.assign({ type: "scatter", mode: "lines+markers", name, x: [], y: [], text: [],
    line: { color: colour, width: 2 }, marker: { size: 5 } }, extra || {});
  const dashed = (name, colour, extra) => line(name, colour, Object.assign({ line: { color: colour, dash: "dash", width: 2 },
    marker: { size: 4, symbol: "square" } }, extra || {}));

  /** A dotted line at round n across the whole figure; on the selection timeline, a frame round its column. */
  function cursorShapes(view, id, n) {
    if (n === null || n === undefined) return [];
    if (id === "chart-sel") {
      return [{ type: "rect", xref: "x", yref: "paper", x0: n - 0.5, x1: n + 0.5, y0: 0, y1: 1,
        line: { color: CURSOR, width: 2 } }];
    }
    const x = view.xTime && TIME_CHARTS.includes(id) ? view.elapsed(n) : n;
    return [{ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, layer: "above",
      line: { color: CURSOR, width: 1.5, dash: "dot" } }];
  }

  function create({ view, P }) {
    const xAxis = (extra) => FHCharts.xAxisOf(view.xTime, extra);
    let cumUp = 0, cumDense = 0;  // the cumulative-upload curve's running sums
    let denseDone = false;  // the dense baseline has finished and is drawn whole

    function newLines(id, traces, lay) { P.paint(id, () => Plotly.newPlot($(id), traces, lay, PLOT_CONFIG), "new"); }
    function extend(id, update, traces) { P.paint(id, () => Plotly.extendTraces($(id), update, traces)); }

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

    /** Empty curves for the run's metric (x: the round, or elapsed wall time when the view says so). */
    function build() {
      const key = view.metric;
      const at = FHCharts.xHover(view.xTime);
      cumUp = 0; cumDense = 0;
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

    /** Append round records (already in the view) to every curve. */
    function append(recs) {
      const xs = recs.map(view.xOf), rounds = recs.map((r) => r.round);
      const text = recs.map((r) => `round ${r.round}`);
      const k = view.metric;
      extend("chart-acc", {
        x: [xs, xs], text: [text, text],
        y: [recs.map((r) => (r.metrics[k] === null || r.metrics[k] === undefined ? null : r.metrics[k] * scale(k))),
          recs.map((r) => (r.metrics.loss === undefined ? null : r.metrics.loss))],
      }, [0, 1]);
      extend("chart-comm", {
        x: [xs, xs, xs], text: [text, text, text],
        y: [recs.map((r) => r.bytes_up / 1e6), recs.map((r) => r.bytes_up_dense / 1e6), recs.map((r) => r.bytes_down / 1e6)],
      }, [0, 1, 2]);
      const ups = [], denses = [];
      for (const r of recs) {
        cumUp += r.bytes_up; cumDense += r.bytes_up_dense;
        ups.push(cumUp / 1e6); denses.push(cumDense / 1e6);
      }
      extend("chart-cum", { x: [xs, xs], text: [text, text], y: [ups, denses] }, [0, 1]);
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
        const dtick = view.records.length <= 12 && !(view.xTime && TIME_CHARTS.includes(id)) ? 1 : null;
        P.paint(id, () => {
          const gd = $(id);
          if (gd.layout && gd.layout.xaxis && (gd.layout.xaxis.dtick ?? null) !== dtick) Plotly.relayout(gd, { "xaxis.dtick": dtick });
        }, "ticks");
      }
    }

    /** Mark the cursor's round (read when the chart is drawn) on every round-indexed chart. */
    function markRound() {
      for (const id of ROUND_CHARTS) {
        P.paint(id, () => {
          const gd = $(id);
          if (gd.layout) Plotly.relayout(gd, { shapes: cursorShapes(view, id, view.cursor) });
        }, "cursor");
      }
    }

    /** The dense run of a sweep, overlaid on the accuracy chart (traces 2 and 3) until it has finished. */
    async function overlayDense() {
      if (!view.dense || denseDone || !view.metric) return;
      const res = await api("GET", `/ui/experiments/${view.dense.id}/series`);
      if (!res.ok) return;
      const d = res.data;
      const k = view.metric;
      const acc = (d[k] || d.accuracy || []).map((v) => (v === null ? null : v * scale(k)));
      const x = view.xTime ? FHCharts.cumulative(d.wall_time || []) : d.round;
      const text = d.round.map((r) => `round ${r}`), at = FHCharts.xHover(view.xTime);
      const traces = [dashed(`dense baseline: ${k}`, DENSE, { x, y: acc, text,
        hovertemplate: k === "accuracy" ? `${at}: %{y:.1f} %` : `${at}: %{y:.4f}` }),
        dashed("dense baseline: loss", "#999999", { x, y: d.loss, text, yaxis: "y2", hovertemplate: `${at}: %{y:.4f}`,
          marker: { size: 4, symbol: "diamond-open" } })];
      P.paint("chart-acc", () => {
        const gd = $("chart-acc");
        if (gd.data.length > 2) Plotly.deleteTraces(gd, [2, 3]);
        Plotly.addTraces(gd, traces);
      }, "dense");
      denseDone = TERMINAL.includes(d.status);
    }

    /** Build the curves again from the stored rounds (after the x axis changed: the round or elapsed wall time);
     *  the dense overlay and the cursor follow with overlayDense() and markRound(). */
    function rebuild() {
      P.flush();  // nothing queued for the old axis may land on the new charts
      denseDone = false;
      build();
      append(view.records);
    }

    return { build, append, overlayDense, markRound, rebuild, xAxis };
  }

  return { create, cursorShapes, scale };
})();
