/* Compare: accuracy, loss, cumulative upload, training OPs and wall time of several experiments, and accuracy
   against cumulative upload (Pareto view), from their per-round scalar series; refreshed in place while any of
   them still runs. Each run has one colour and one marker everywhere (its place in the table, oldest first) and is
   named in legends by its label (its name; plus a short id when two runs share a name). The curves can be drawn
   against the round or against elapsed wall time (the sum of the rounds' measured times). */
"use strict";

(() => {
  const { api, fmt, LINE_COLOURS: C, PLOT_CONFIG, layout, axis, pageData, plotText } = FH;
  const ids = pageData("compare-data") || [];
  const labels = pageData("compare-runs") || [];
  const { TERMINAL } = FH;
  const SYMBOLS = ["circle", "square", "diamond", "triangle-up", "x", "star", "cross", "triangle-down"];
  const xSel = document.getElementById("x-axis");
  let timer = null;
  let last = [];

  const colour = (i) => C[i % C.length];
  for (const sw of document.querySelectorAll(".swatch[data-colour]")) sw.style.background = colour(Number(sw.dataset.colour));

  function metricOf(series) { return series.accuracy.some((v) => v !== null) ? "accuracy" : "loss"; }
  function cumsum(xs, scale) { let c = 0; return xs.map((v) => { c += v || 0; return c * scale; }); }

  /** One line per run; x: its rounds or its elapsed time. */
  function traces(all, y, hover, byTime) {
    return all.map((s, i) => ({
      type: "scatter", mode: "lines+markers", name: plotText(labels[ids.indexOf(s.id)] || s.name),
      x: byTime ? cumsum(s.wall_time, 1) : s.round, y: y(s),
      text: s.round.map((r) => `round ${r}`),
      line: { color: colour(ids.indexOf(s.id)), width: 2, dash: s.spec.sparsity === 0 ? "dash" : "solid" },
      marker: { symbol: SYMBOLS[ids.indexOf(s.id) % SYMBOLS.length], size: 6 },
      hovertemplate: `${byTime ? "%{text}, %{x:.1f} s" : "round %{x}"}: ${hover}<extra>%{fullData.name}</extra>`,
    }));
  }

  function react(id, data, xTitle, yTitle, extra) {
    const rounds = Math.max(...data.map((t) => t.x.length), 0);
    const xa = axis(xTitle, xTitle === "round" ? { dtick: rounds <= 12 ? 1 : null } : { rangemode: "tozero" });  // time, MB: from 0
    Plotly.react(document.getElementById(id), data,
      layout({ showlegend: true, xaxis: xa, yaxis: axis(yTitle, extra || {}), margin: { l: 60, r: 20, t: 10, b: 48 } }),
      PLOT_CONFIG);
  }

  function draw(all) {
    const key = all.some((s) => metricOf(s) === "accuracy") ? "accuracy" : "loss";
    const isAcc = key === "accuracy";
    const pct = (s) => s[key].map((v) => (v === null ? null : isAcc ? v * 100 : v));
    const accHover = isAcc ? "%{y:.1f} %" : "%{y:.4f}";
    const accTitle = isAcc ? "test accuracy (%)" : "test loss (nats)";
    const byTime = xSel.value === "time";
    const xTitle = byTime ? "elapsed wall time (s)" : "round";

    react("chart-cacc", traces(all, pct, accHover, byTime), xTitle, accTitle, isAcc ? { ticksuffix: " %" } : {});
    const pareto = traces(all, pct, accHover, false).map((t, i) => ({ ...t, x: cumsum(all[i].bytes_up, 1e-6),
      hovertemplate: `%{text}: ${accHover} after %{x:.2f} MB<extra>%{fullData.name}</extra>` }));
    react("chart-pareto", pareto, "cumulative upload (MB, all clients)", accTitle, isAcc ? { ticksuffix: " %" } : {});
    react("chart-closs", traces(all, (s) => s.loss, "%{y:.4f}", byTime), xTitle, "test loss (nats)", { rangemode: "tozero" });
    react("chart-cup", traces(all, (s) => cumsum(s.bytes_up, 1e-6), "%{y:.2f} MB", byTime), xTitle,
      "cumulative upload (MB, all clients)", { rangemode: "tozero" });
    react("chart-cops", traces(all, (s) => s.ops.map((v) => v / 1e9), "%{y:.2f} GOPs", byTime), xTitle,
      "training OPs per round (GOPs)", { rangemode: "tozero" });
    react("chart-cwall", traces(all, (s) => s.wall_time, "%{y:.2f} s", false), "round",
      "measured wall time per round (s)", { rangemode: "tozero" });

    for (const s of all) {
      const cellNode = document.querySelector(`tr[data-id="${s.id}"] td[data-col="final"]`);
      const acc = s[key].filter((v) => v !== null);
      if (cellNode) cellNode.textContent = acc.length ? (isAcc ? fmt.pct(acc[acc.length - 1]) : fmt.num(acc[acc.length - 1])) : "–";
    }
  }

  async function load() {
    clearTimeout(timer);
    const results = await Promise.all(ids.map((id) => api("GET", `/ui/experiments/${id}/series`)));
    const all = results.filter((r) => r.ok).map((r) => r.data);
    last = all;
    if (all.length) draw(all);
    if (all.some((s) => !TERMINAL.includes(s.status))) timer = setTimeout(load, 4000);
  }

  xSel.addEventListener("change", () => { if (last.length) draw(last); });
  load();
})();
