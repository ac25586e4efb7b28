/* Compare: accuracy per round and accuracy against cumulative upload (Pareto view) of several experiments,
   from their per-round scalar series; refreshed in place while any of them still runs. */
"use strict";

(() => {
  const { api, fmt, LINE_COLOURS: C, PLOT_CONFIG, layout, axis, pageData, plotText } = FH;
  const ids = pageData("compare-data") || [];
  const TERMINAL = ["succeeded", "failed", "cancelled"];
  const SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "star", "cross", "triangle-down"];
  let timer = null;

  function metricOf(series) { return series.accuracy.some((v) => v !== null) ? "accuracy" : "loss"; }

  function draw(all) {
    const key = all.some((s) => metricOf(s) === "accuracy") ? "accuracy" : "loss";
    const mul = key === "accuracy" ? 100 : 1;
    const unit = key === "accuracy" ? "test accuracy (%)" : "test loss (nats)";
    const perRound = [], pareto = [];
    all.forEach((s, i) => {
      const y = s[key].map((v) => (v === null ? null : v * mul));
      const style = { color: C[i % C.length], width: 2, dash: s.spec.sparsity === 0 ? "dash" : "solid" };
      const marker = { symbol: SYMBOLS[i % SYMBOLS.length], size: 6 };
      const label = plotText(`${s.name} (s=${s.spec.sparsity})`);
      perRound.push({ type: "scatter", mode: "lines+markers", name: label, x: s.round, y, line: style, marker,
        hovertemplate: "round %{x}: %{y:.2f}<extra>%{fullData.name}</extra>" });
      let cum = 0;
      const x = s.bytes_up.map((b) => { cum += b; return cum / 1e6; });
      pareto.push({ type: "scatter", mode: "lines+markers", name: label, x, y, line: style, marker,
        text: s.round.map((r) => `round ${r}`),
        hovertemplate: "%{text}: %{y:.2f} after %{x:.2f} MB<extra>%{fullData.name}</extra>" });
    });
    const common = { showlegend: true, legend: { orientation: "h", x: 0, y: -0.25, yanchor: "top" },
      margin: { l: 60, r: 20, t: 10, b: 60 } };
    const rounds = Math.max(...all.map((s) => s.round.length), 0);
    Plotly.react(document.getElementById("chart-cacc"), perRound,
      layout({ ...common, xaxis: axis("round", { dtick: rounds <= 12 ? 1 : null }), yaxis: axis(unit) }), PLOT_CONFIG);
    Plotly.react(document.getElementById("chart-pareto"), pareto,
      layout({ ...common, xaxis: axis("cumulative upload (MB, all clients)", { rangemode: "tozero" }), yaxis: axis(unit) }),
      PLOT_CONFIG);
    for (const s of all) {
      const cellNode = document.querySelector(`tr[data-id="${s.id}"] td[data-col="final"]`);
      const acc = s[key].filter((v) => v !== null);
      if (cellNode) cellNode.textContent = acc.length ? (key === "accuracy" ? fmt.pct(acc[acc.length - 1]) : fmt.num(acc[acc.length - 1])) : "–";
    }
  }

  async function load() {
    clearTimeout(timer);
    const results = await Promise.all(ids.map((id) => api("GET", `/ui/experiments/${id}/series`)));
    const all = results.filter((r) => r.ok).map((r) => r.data);
    if (all.length) draw(all);
    if (all.some((s) => !TERMINAL.includes(s.status))) timer = setTimeout(load, 4000);
  }

  load();
})();
