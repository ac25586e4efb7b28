/* The experiment page's client panels: the selection timeline (who was a candidate, who was picked, each round, and
   the strategy's reason) and the data panel (each client's label histogram). Functions of the page state's read-only
   view (experiment-state.js), drawn through the painter P; the data panel remembers only that it has loaded. */
"use strict";

const FHClients = (() => {
  const { PLOT_CONFIG, api, layout, axis, plotText } = FH;
  const $ = FH.byId;
  const VIRIDIS = ["#440154", "#482878", "#3e4a89", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
    "#fde725"];

  function create({ view, P }) {
    let loaded = false;

    function drawSelection() {
      P.paint("chart-sel", () => {
        const sel = view.selection;
        const fig = FHCharts.selectionFigure(sel);
        fig.layout.xaxis.dtick = sel.x.length <= 12 ? 1 : null;
        fig.layout.shapes = FHCurves.cursorShapes(view, "chart-sel", view.cursor);
        Plotly.react($("chart-sel"), fig.data, fig.layout, PLOT_CONFIG);
      }, "react");
    }

    function drawSelectionReason(n) {
      const rec = view.record(n);
      if (!rec) return;
      const s = rec.selection || {};
      $("sel-round").textContent = String(n);
      $("sel-reason").textContent = `${s.strategy ? `[${s.strategy}] ` : ""}${s.reason || "–"}`;
    }

    /** The clients' label histograms, stacked (once: they do not change during a run); false when none is stored. */
    async function loadData() {
      if (loaded) return true;
      const res = await api("GET", `${view.base}/clients`);
      if (!res.ok || !res.data.items.length) return false;
      const items = res.data.items;
      const labels = res.data.label_names.length ? res.data.label_names
        : items[0].label_histogram.map((_, i) => `label ${i}`);
      const n = labels.length;
      const colour = (i) => VIRIDIS[Math.round((n === 1 ? 0 : i / (n - 1)) * (VIRIDIS.length - 1))];  // along Viridis
      const traces = labels.map((name, i) => ({
        type: "bar", name: plotText(name), x: items.map((c) => c.client), y: items.map((c) => c.label_histogram[i] || 0),
        marker: { color: colour(i) }, hovertemplate: `client %{x}, ${plotText(name).replace(/[%{}]/g, "")}: %{y}<extra></extra>`,
      }));
      P.paint("chart-data", () => Plotly.react($("chart-data"), traces, layout({ barmode: "stack",
        xaxis: axis("client", { dtick: items.length > 40 ? null : 1 }), yaxis: axis("training examples") }), PLOT_CONFIG),
      "react");
      loaded = true;
      return true;
    }

    return { drawSelection, drawSelectionReason, loadData };
  }

  return { create };
})();
