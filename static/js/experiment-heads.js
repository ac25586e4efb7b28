/* The experiment page's head panels for the cursor's round: importance (global or one client's), the clients'
   masks as a film strip, how often each head was kept, and the aggregation inspector of one head (the clients'
   weights and the agreement of their updates). Functions of the page state's read-only view (experiment-state.js),
   drawn through the painter P; they keep nothing of their own. */
"use strict";

const FHHeads = (() => {
  const { PLOT_CONFIG, el, layout, axis } = FH;
  const $ = FH.byId;

  function create({ view, P }) {
    /** The block and head pickers of the inspector, and the client pickers, once the model is known. */
    function buildControls() {
      const blockSel = $("agg-block"), headSel = $("agg-head");
      blockSel.replaceChildren(...view.blocks().map((n, i) => el("option", { value: i, text: n })));
      headSel.replaceChildren(...[...Array(view.heads()).keys()].map((h) => el("option", { value: h, text: `head ${h}` })));
      showHead();
    }

    function showHead() {
      const { block, head } = view.head;
      $("agg-block").value = String(block); $("agg-head").value = String(head);
    }

    /** Clients seen for the first time: options of the importance and keep-frequency pickers, in client order. */
    function addClients(clients) {
      for (const c of clients) for (const sel of [$("imp-source"), $("freq-client")]) {
        if (sel.querySelector(`option[value="${c}"]`)) continue;
        const opts = [...sel.options].slice(1).map((o) => Number(o.value));
        const after = opts.findIndex((v) => v > c);
        sel.insertBefore(el("option", { value: c, text: `client ${c}` }), after < 0 ? null : sel.options[after + 1]);
      }
    }

    function drawImportance() {
      const rec = view.record(view.cursor);
      if (!rec) return;
      let matrix = rec.global_importance;
      let note = `Round ${rec.round}: importance of the global model (clients' scores weighted by n_k).`;
      const source = view.impSource;
      if (source !== "global") {
        const c = rec.clients.find((x) => String(x.client) === source);
        matrix = c ? c.importance : null;
        note = c ? `Round ${rec.round}: client ${c.client}'s own scores on its local data.`
          : `Client ${source} was not selected in round ${rec.round}; no scores.`;
      }
      if ((rec.skipped || []).includes("importance")) {  // probe_passes 'needed': nothing in the run used the scores
        matrix = null;
        note = `Round ${rec.round}: not computed (probe_passes "needed": nothing in this run uses head importance).`;
      }
      $("imp-note").textContent = note;
      P.paint("chart-imp", () => {
        const flat = (matrix || []).flat().filter((v) => v !== null);
        const fig = FHCharts.headHeatmap(matrix, { blocks: view.blocks(), heads: view.heads(), title: "importance",
          zmin: flat.length ? Math.min(...flat) : 0, zmax: flat.length ? Math.max(...flat) : 1, highlight: view.head });
        Plotly.react($("chart-imp"), fig.data, fig.layout, PLOT_CONFIG);
      }, "react");
    }

    function drawStrip() {
      const rec = view.record(view.cursor);
      if (!rec) return;
      P.paint("chart-strip", () => {
        const fig = FHCharts.filmStrip(rec.clients.map((c) => ({ client: c.client, kept: c.kept })),
          { blocks: view.blocks(), heads: view.heads() });
        Plotly.react($("chart-strip"), fig.data, fig.layout, PLOT_CONFIG);
      }, "react");
    }

    function drawFreq() {
      P.paint("chart-freq", () => {
        const fig = FHCharts.headHeatmap(view.keptShare(view.freqClient), { blocks: view.blocks(), heads: view.heads(),
          title: "share kept", zmin: 0, zmax: 1, fmt: ".0%" });
        Plotly.react($("chart-freq"), fig.data, fig.layout, PLOT_CONFIG);
      }, "react");
    }

    function drawAggregation() {
      const rec = view.record(view.cursor);
      if (!rec) return;
      const { block: b, head: h } = view.head;
      const names = view.blocks();
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
        const fig = FHCharts.headHeatmap(rec.agreement, { blocks: names, heads: view.heads(), title: "agreement (cos)",
          zmin: -1, zmax: 1, highlight: view.head, fmt: ".3f" });
        Plotly.react($("chart-agree"), fig.data, fig.layout, PLOT_CONFIG);
      }, "react");
    }

    return { buildControls, showHead, addClients, drawImportance, drawStrip, drawFreq, drawAggregation };
  }

  return { create };
})();
