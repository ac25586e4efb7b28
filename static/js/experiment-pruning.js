/* What pruning does to learning, on the experiment page: per round, the mean over the round's clients of three
   losses on each client's probe sample (the global model it received; that model as the client trains it, its
   pruned heads removed in drop mode; the network after local training), and the measured communication and
   compute sparsities of the cursor's round. Runs stored before clients recorded loss_pruned say "not recorded".
   A function of the page state's read-only view (experiment-state.js); it remembers only whether its chart is shown. */
"use strict";

const FHPruning = ({ view, P }) => {
  const { LINE_COLOURS: C, PLOT_CONFIG, layout, axis, fmt } = FH;
  const $ = FH.byId;
  const CHART = "chart-pl";
  const LOSSES = [
    ["loss_global", "global model received", C[0]],
    ["loss_pruned", "as the client trains it (pruned)", C[5]],
    ["loss_local", "after local training", C[2]],
  ];
  const NOT_RECORDED = "Not recorded: this run was stored before clients recorded the loss of the pruned network.";
  const SKIPPED = "Not computed: with probe_passes \"needed\" the clients skip the probe losses nothing in this run uses.";

  const finite = (v) => typeof v === "number" && Number.isFinite(v);
  let shown = false;  // the chart is drawn: some round recorded loss_pruned

  /** Mean of a client field over a round's clients (null when no client has it). */
  function meanOf(rec, key) {
    const vals = (rec.clients || []).map((c) => c[key]).filter(finite);
    return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
  }

  const recorded = (rec) => (rec.clients || []).some((c) => finite(c.loss_pruned));

  function build() {
    const at = FHCharts.xHover(view.xTime);
    const traces = LOSSES.map(([, name, colour], i) => ({
      type: "scatter", mode: "lines+markers", name, x: [], y: [], text: [],
      line: { color: colour, width: 2, dash: i === 1 ? "dot" : "solid" }, marker: { size: 5 }, hovertemplate: `${at}: %{y:.4f}`,
    }));
    const lay = layout({ xaxis: FHCharts.xAxisOf(view.xTime), yaxis: axis("mean client loss (nats)") });
    P.paint(CHART, () => Plotly.newPlot($(CHART), traces, lay, PLOT_CONFIG), "new");
  }

  function extend(recs) {
    const xs = recs.map(view.xOf), text = recs.map((r) => `round ${r.round}`);
    P.paint(CHART, () => Plotly.extendTraces($(CHART), {
      x: LOSSES.map(() => xs), text: LOSSES.map(() => text), y: LOSSES.map(([key]) => recs.map((r) => meanOf(r, key))),
    }, LOSSES.map((_, i) => i)));
  }

  /** Draw the chart again from the stored rounds (after the page's curves switched axis: round or elapsed time). */
  function redraw() {
    if (!shown) return;
    build();
    extend(view.records);
  }

  /** New rounds (the view already holds them): the chart starts at the first round that recorded loss_pruned. */
  function addRounds(recs) {
    if (!shown) {
      if (!recs.some(recorded)) {
        $(CHART).hidden = true;
        $("pl-note").textContent = recs.some((r) => (r.skipped || []).includes("loss_local")) ? SKIPPED : NOT_RECORDED;
        return;
      }
      shown = true;
      $(CHART).hidden = false;
      $("pl-note").textContent = $("pl-note").dataset.about;
      build();
      extend(view.records);
      return;
    }
    extend(recs);
  }

  /** Share of heads left out of a mask, mean over the round's clients that have it; null when none has. */
  function sparsity(rec, key) {
    const shares = (rec.clients || []).filter((c) => Array.isArray(c[key])).map((c) => {
      const cells = c[key].flat();
      return cells.length ? cells.filter((k) => !k).length / cells.length : null;
    }).filter(finite);
    return shares.length ? shares.reduce((a, b) => a + b, 0) / shares.length : null;
  }

  const sameMasks = (rec) => (rec.clients || []).every((c) => !Array.isArray(c.compute)
    || JSON.stringify(c.compute) === JSON.stringify(c.kept));

  /** The cursor's round: heads not uploaded (communication) and, when it differs, heads not in the forward (compute). */
  function drawSparsity() {
    const rec = view.record(view.cursor);
    if (!rec) return;
    const comm = sparsity(rec, "kept");
    $("sparsity-comm").textContent = fmt.pct(comm, 0);
    const differs = !sameMasks(rec);
    $("sparsity-compute-part").hidden = !differs;
    $("sparsity-compute").textContent = differs ? fmt.pct(sparsity(rec, "compute"), 0) : "–";
    $("sparsity-round").textContent = String(rec.round);
  }

  return { CHART, addRounds, drawSparsity, meanOf, sparsity, redraw };
};
