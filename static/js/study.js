/* One study, live: its verdicts, its table (each variant over its seeds, paired differences against the
   baseline), the metric per round with a band over seeds, two Pareto views with the frontier marked, and its runs.
   Everything is drawn from the API's study detail (GET /api/v1/studies/{id}), embedded in the page at load. Each
   event of the study's stream (/api/v1/studies/{id}/events: every run's rounds and statuses) names its run; the
   page then reads only what changed: the study's status, counts and table with the runs named since the last read
   (?runs=...), and keeps its other runs as they were. A reconnect, an action or too many runs at once reads the
   whole study again. Tables download from the server as CSV and JSON; charts as PNG or SVG (Plotly, in the
   browser). User strings only ever go through textContent or FH.plotText. */
"use strict";

(() => {
  const { el, api, fmt, LINE_COLOURS: C, PLOT_CONFIG, layout, axis, pageData, plotText, slug } = FH;
  const $ = (id) => document.getElementById(id);
  const boot = pageData("study-data");
  const TERMINAL = ["succeeded", "failed", "cancelled"];
  const S = { study: boot.study, lastEvent: boot.last_event || 0, es: null, timer: null, busy: false, again: false,
    events: 0, closed: false, changed: new Set(), whole: false, reads: { whole: 0, runs: 0 } };
  const MAX_RUNS_READ = 40;  // more runs named than this since the last read: read the whole study
  const id = S.study.id;

  // --- numbers ----------------------------------------------------------------------------------

  const METRICS = { accuracy: ["accuracy", " %"], rougeL: ["ROUGE-L", ""], bleu: ["BLEU", ""] };
  /** [name, unit] of the study's metric: the table's, else the first a run has recorded (before any finished). */
  function metricOf(agg) {
    const run = (S.study.runs || []).find((r) => r.figures && r.figures.metric);
    return METRICS[agg.metric] || METRICS[run ? run.figures.metric : ""] || ["metric", ""];
  }
  const fixed = (x, d) => (x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toFixed(d));
  const signed = (x, d) => (x === null || x === undefined ? "–" : `${x > 0 ? "+" : ""}${Number(x).toFixed(d)}`);

  /** "mean ± half-range unit", the ± only over two seeds or more, "(n=k)" when fewer seeds count than finished. */
  function spread(s, d, unit, finished, sign) {
    if (!s || s.mean === null || s.mean === undefined) return "–";
    // a narrow column breaks a cell before its "±" only (no-break spaces inside each part)
    const u = unit.startsWith(" ") ? `\u00a0${unit.trim()}` : unit;
    let text = (sign ? signed(s.mean, d) : fixed(s.mean, d)) + (s.n > 1 ? ` ±\u00a0${fixed(s.half_range, d)}` : "") + u;
    if (finished !== undefined && s.n < finished) text += ` (n=${s.n})`;
    return text;
  }

  function colour(i) { return C[i % C.length]; }
  function faded(hex, alpha) {
    const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex.trim());
    return m ? `rgba(${parseInt(m[1], 16)}, ${parseInt(m[2], 16)}, ${parseInt(m[3], 16)}, ${alpha})` : hex;
  }

  // --- head, note and actions -----------------------------------------------------------------------

  function renderHead(st) {
    const agg = st.aggregate;
    $("status").textContent = st.status;
    $("status").className = `badge big st-${st.status}`;
    $("progress").max = st.runs_total;
    $("progress").value = agg.finished;
    $("progress-text").textContent = `${agg.finished}/${st.runs_total} runs finished`;
    const counts = Object.entries(st.counts).filter(([k]) => k !== "succeeded").map(([k, n]) => `${n} ${k}`);
    const note = $("partial-note");
    note.hidden = agg.complete;
    if (!agg.complete) {
      const going = !TERMINAL.includes(st.status);
      note.textContent = `${going ? "Partial" : "Incomplete"}: ${agg.finished} of ${st.runs_total} runs finished`
        + (counts.length ? ` (${counts.join(", ")})` : "") + ". The verdicts and the table count finished runs only; "
        + "the curves also show the rounds of runs still going."
        + (going ? " This page updates as runs finish." : " Resume the study to run the rest.");
    }
    const statuses = st.runs.map((r) => r.status);
    $("btn-cancel").disabled = !statuses.some((s) => s === "queued" || s === "running");
    $("btn-resume").disabled = !statuses.some((s) => s === "failed" || s === "cancelled");
    $("btn-delete").disabled = statuses.includes("running");
    $("btn-delete").title = statuses.includes("running") ? "a run is running: cancel the study first" : "";
    for (const node of document.querySelectorAll(".metric-name")) node.textContent = metricOf(agg)[0];
  }

  // --- tables -----------------------------------------------------------------------------------

  function targetText(t) {
    if (!t) return "";
    const name = (boot.metric_labels || {})[t.metric] || t.metric;  // the form's label, else the field's name
    if (t.within !== undefined && t.within !== null) return `${name} within ${t.within} points`;
    if (t.at_least !== undefined && t.at_least !== null) return `${name} ≥ ${t.at_least}`;
    return `${name} ≤ ${t.at_most}`;
  }

  function renderVerdicts(st) {
    const verdicts = st.aggregate.verdicts || [];
    $("verdicts-none").hidden = (st.definition.targets || []).length > 0;
    $("verdicts-table").hidden = !verdicts.length;
    $("verdicts-table").tBodies[0].replaceChildren(...verdicts.map((v) => {
      const unit = /accuracy|_vs_baseline$/.test(v.metric) ? "" : "×";
      const badge = v.met === null ? el("span", { class: "badge verdict-none", text: "not judged" })
        : el("span", { class: `badge ${v.met ? "verdict-met" : "verdict-not"}`, text: v.met ? "met" : "not met" });
      return el("tr", { "data-variant": v.variant, "data-target": v.target },
        el("td", { text: targetText(st.definition.targets[v.target]) }),
        el("th", { scope: "row", text: v.variant }),
        el("td", {}, badge, v.partial ? el("span", { class: "muted small", text: " partial" }) : ""),
        el("td", { class: "num", text: spread({ mean: v.value, half_range: v.half_range, n: v.seeds }, 2, unit) }),
        el("td", { class: "num", text: `${v.bound === "at_least" ? "≥" : "≤"} ${fixed(v.limit, 2)}${unit}` }),
        el("td", { class: "num", text: signed(v.margin, 2) }),
        el("td", { class: "num", text: v.seeds }),
        el("td", { class: "small", text: v.text }));
    }));
  }

  function renderAggregate(st) {
    const agg = st.aggregate;
    const unit = metricOf(agg)[1];
    const base = st.definition.baseline;
    $("aggregate-table").tBodies[0].replaceChildren(...agg.variants.map((v, i) => {
      const f = v.figures, p = v.vs_baseline, n = v.finished;
      const isBase = v.variant === base;
      const cell = (col, text) => el("td", { class: "num", "data-col": col, text });
      return el("tr", { "data-variant": v.variant },
        el("th", { scope: "row" }, el("span", { class: "swatch", style: `background:${colour(i)}`, "aria-hidden": "true" }),
          v.variant, isBase ? el("span", { class: "muted small", text: " (baseline)" }) : ""),
        cell("finished", `${v.finished}/${v.runs}`),
        cell("final_accuracy", spread(f.final_accuracy, 1, unit, n)),
        cell("last3_accuracy", spread(f.last3_accuracy, 1, unit, n)),
        cell("accuracy_vs_baseline", isBase ? "—" : spread(p.accuracy_vs_baseline, 2, " pts", n, true)),
        cell("last3_vs_baseline", isBase ? "—" : spread(p.last3_vs_baseline, 2, " pts", n, true)),
        cell("uplink_advantage", spread(f.uplink_advantage, 2, "×", n)),
        cell("total_advantage", spread(f.total_advantage, 2, "×", n)),
        cell("ops_reduction", spread(f.ops_reduction, 2, "×", n)),
        cell("ops_attention_reduction", spread(f.ops_attention_reduction, 2, "×", n)),
        cell("uplink_mb", spread(f.uplink_mb, 2, "", n)),
        cell("train_time_per_round", spread(f.train_time_per_round, 2, "", n)),
        cell("train_speedup", isBase ? "—" : spread(p.train_speedup, 2, "×", n)));
    }));
  }

  function renderRuns(st) {
    const unit = metricOf(st.aggregate)[1];
    $("runs-table").tBodies[0].replaceChildren(...st.runs.map((r) => {
      const f = r.figures || {};
      const status = el("span", { class: `badge st-${r.status}`, text: r.status, title: r.error || null });
      return el("tr", { "data-run": r.id, "data-variant": r.variant, "data-seed": r.seed },
        el("th", { scope: "row" }, el("a", { href: `/experiments/${r.id}`, class: "name", text: r.name })),
        el("td", { text: r.variant }),
        el("td", { class: "num", text: r.seed }),
        el("td", {}, status),
        el("td", { class: "num", text: `${r.progress.rounds_done}/${r.progress.rounds_total}` }),
        el("td", { class: "num", text: f.final_accuracy === undefined ? "–" : fixed(f.final_accuracy, 1) + unit }),
        el("td", { class: "num", text: f.last3_accuracy === undefined ? "–" : fixed(f.last3_accuracy, 1) + unit }),
        el("td", { class: "num", text: f.uplink_advantage === undefined ? "–" : fmt.times(f.uplink_advantage) }),
        el("td", { class: "num", text: f.uplink_mb === undefined ? "–" : fixed(f.uplink_mb, 2) }),
        el("td", { class: "num", text: f.train_time === undefined ? "–" : fixed(f.train_time, 1) }));
    }));
  }

  // --- charts -----------------------------------------------------------------------------------

  /** Plotly.react, or an empty box that says why (CSS) while there is nothing to draw. */
  function plot(chart, data, lay, cfg) {
    const gd = $(chart);
    if (!data.length) {
      if (gd.data) { Plotly.purge(gd); }
      gd.replaceChildren();
      return;
    }
    Plotly.react(gd, data, lay, cfg);
  }

  function config(chart) {
    return { ...PLOT_CONFIG, toImageButtonOptions: { format: "png", filename: `${slug(S.study.name)}-${chart}` } };
  }

  function drawRounds(st) {
    const agg = st.aggregate;
    const [name, unit] = metricOf(agg);
    const data = [];
    agg.variants.forEach((v, i) => {
      const pts = v.per_round || [];
      if (!pts.length) return;
      const x = pts.map((p) => p.round);
      const label = plotText(v.variant);
      const group = `v${i}`;
      data.push({ type: "scatter", mode: "lines", x, y: pts.map((p) => p.max), line: { width: 0 }, legendgroup: group,
        showlegend: false, hoverinfo: "skip", name: `${label} (highest)` });
      data.push({ type: "scatter", mode: "lines", x, y: pts.map((p) => p.min), line: { width: 0 }, fill: "tonexty",
        fillcolor: faded(colour(i), 0.18), legendgroup: group, showlegend: false, hoverinfo: "skip",
        name: `${label} (lowest)` });
      data.push({ type: "scatter", mode: "lines+markers", x, y: pts.map((p) => p.mean), name: label, legendgroup: group,
        line: { color: colour(i), width: 2, dash: v.variant === st.definition.baseline ? "dash" : "solid" },
        marker: { size: 5 }, customdata: pts.map((p) => [p.min, p.max, p.n]),
        hovertemplate: `round %{x}: %{y:.1f}${unit} (seeds %{customdata[2]}: %{customdata[0]:.1f}–%{customdata[1]:.1f})`
          + "<extra>%{fullData.name}</extra>" });
    });
    const rounds = Math.max(0, ...data.map((t) => t.x.length));
    plot("chart-rounds", data, layout({ showlegend: true, xaxis: axis("round", { dtick: rounds <= 15 ? 1 : null }),
      yaxis: axis(`${name}${unit ? " (%)" : ""}`) }), config("rounds"));
  }

  function drawPareto(st, chart, cost, title) {
    const agg = st.aggregate;
    const [name, unit] = metricOf(agg);
    const frontier = new Set((agg.pareto || {})[cost] || []);
    const data = [];
    const means = [];
    agg.variants.forEach((v, i) => {
      const a = v.figures.final_accuracy, c = v.figures[cost];
      const label = plotText(v.variant);
      const runs = st.runs.filter((r) => r.variant === v.variant && r.status === "succeeded" && r.figures
        && r.figures[cost] !== undefined && r.figures.final_accuracy !== null);
      if (runs.length) {
        data.push({ type: "scatter", mode: "markers", x: runs.map((r) => r.figures[cost]),
          y: runs.map((r) => r.figures.final_accuracy), name: `${label} runs`, legendgroup: `v${i}`, showlegend: false,
          marker: { color: colour(i), size: 6, opacity: 0.45 }, text: runs.map((r) => `seed ${r.seed}`),
          hovertemplate: `%{text}: %{y:.1f}${unit} at %{x:.2f}<extra>${label}</extra>` });
      }
      if (a.mean === null || c.mean === null) return;
      const onFront = frontier.has(v.variant);
      means.push({ x: c.mean, y: a.mean, onFront });
      data.push({ type: "scatter", mode: "markers", x: [c.mean], y: [a.mean], name: label + (onFront ? " ◆ frontier" : ""),
        legendgroup: `v${i}`,
        error_x: { type: "data", array: [c.half_range || 0], visible: a.n > 1, color: colour(i), thickness: 1.2 },
        error_y: { type: "data", array: [a.half_range || 0], visible: a.n > 1, color: colour(i), thickness: 1.2 },
        marker: { color: colour(i), size: 13, symbol: onFront ? "diamond" : "circle",
          line: { width: onFront ? 3 : 1, color: FH.themeColour("--fg", "#1d2430") } },
        hovertemplate: `mean of ${a.n} seed(s): %{y:.1f}${unit} at %{x:.2f}<extra>${label}</extra>` });
    });
    const front = means.filter((m) => m.onFront).sort((p, q) => p.x - q.x);
    if (front.length > 1) {
      data.push({ type: "scatter", mode: "lines", x: front.map((m) => m.x), y: front.map((m) => m.y), name: "Pareto frontier",
        line: { color: FH.themeColour("--fg", "#1d2430"), width: 1.5, dash: "dot" }, hoverinfo: "skip" });
    }
    plot(chart, data, layout({ showlegend: true, xaxis: axis(title, { rangemode: "tozero" }),
      yaxis: axis(`final ${name}${unit ? " (%)" : ""}`) }), config(chart.replace("chart-", "")));
  }

  // --- the whole page ------------------------------------------------------------------------------

  function render(st) {
    S.study = st;
    renderHead(st);
    renderVerdicts(st);
    renderAggregate(st);
    renderRuns(st);
    drawRounds(st);
    drawPareto(st, "chart-pareto-up", "uplink_mb", "cumulative uplink (MB, all clients)");
    drawPareto(st, "chart-pareto-time", "train_time", "client training time (s, all clients and rounds)");
    $("spec-json").textContent = JSON.stringify(st.definition, null, 2);
  }

  /** The runs an answer to ?runs= holds, in place of the page's copies; null if one of them is not on the page. */
  function mergedRuns(fresh) {
    const byId = new Map(fresh.map((r) => [r.id, r]));
    if (fresh.some((r) => !S.study.runs.some((mine) => mine.id === r.id))) return null;
    return S.study.runs.map((r) => byId.get(r.id) || r);
  }

  /** Read what changed: the runs named since the last read (with the study's status, counts and table), or the
     whole study when asked to (`whole`), when no run was named, or when too many were. One read at a time, and
     one more when events came during it. */
  async function refresh(whole) {
    if (whole) S.whole = true;
    if (S.busy) { S.again = true; return; }
    S.busy = true;
    const ids = [...S.changed];
    const all = S.whole || !ids.length || ids.length > MAX_RUNS_READ;
    S.changed.clear();
    S.whole = false;
    try {
      const query = all ? "" : "?" + ids.map((r) => `runs=${encodeURIComponent(r)}`).join("&");
      const res = await api("GET", `/api/v1/studies/${id}${query}`);
      if (res.ok) {
        const runs = all ? res.data.runs : mergedRuns(res.data.runs);
        S.reads[all ? "whole" : "runs"] += 1;
        if (runs) render({ ...res.data, runs });
        else { S.whole = true; S.again = true; }  // a run the page does not know: read everything
      } else {
        for (const r of ids) S.changed.add(r);  // not read: ask again with the next event or reconnect
        if (all) S.whole = true;
        if (res.status === 404) closeStream("the study was deleted");
      }
    } finally {
      S.busy = false;
      if (S.again) { S.again = false; scheduleRefresh(0); }
    }
  }

  function scheduleRefresh(delay) {
    clearTimeout(S.timer);
    S.timer = setTimeout(() => refresh(), delay === undefined ? 400 : delay);
  }

  // --- the live stream ------------------------------------------------------------------------------

  function describe(kind, d) {
    const who = `${d.variant} · seed ${d.seed}`;
    return kind === "round" ? `${who}: round ${d.round}/${d.rounds_total}` : `${who}: ${d.status}`;
  }

  function onEvent(ev) {
    S.lastEvent = Math.max(S.lastEvent, Number(ev.lastEventId) || 0);
    S.events += 1;
    let d = {};
    try { d = JSON.parse(ev.data); } catch (_) { d = {}; }
    $("stream-state").textContent = `live: ${S.events} event${S.events === 1 ? "" : "s"}; latest ${describe(ev.type, d)}`;
    if (d.run) S.changed.add(d.run);
    else S.whole = true;
    scheduleRefresh();
  }

  function openStream() {
    if (S.es || TERMINAL.includes(S.study.status)) {
      if (!S.es) $("stream-state").textContent = `every run has finished (study ${S.study.status})`;
      return;
    }
    S.closed = false;
    const es = new EventSource(`/api/v1/studies/${id}/events?after=${S.lastEvent}`);
    S.es = es;
    es.addEventListener("round", onEvent);
    es.addEventListener("status", onEvent);
    es.onopen = () => { if (!S.events) $("stream-state").textContent = "live: following every run's events"; };
    es.onerror = async () => {
      // the server ends the stream once no run is queued or running; otherwise it dropped: reconnect from the
      // last event seen (not EventSource's own retry, which would resend the first ?after=)
      es.close();
      S.es = null;
      await refresh(true);
      if (S.closed) return;
      if (TERMINAL.includes(S.study.status)) closeStream(`stream closed: every run has finished (study ${S.study.status})`);
      else { $("stream-state").textContent = "reconnecting…"; setTimeout(openStream, 2000); }
    };
  }

  function closeStream(msg) {
    S.closed = true;
    if (S.es) { S.es.close(); S.es = null; }
    $("stream-state").textContent = msg;
  }

  // --- actions and downloads ------------------------------------------------------------------------

  function note(msg) { $("action-note").textContent = msg; }
  const detailOf = (res) => (res.data && res.data.detail ? res.data.detail : res.status);

  $("btn-cancel").addEventListener("click", async () => {
    $("btn-cancel").disabled = true;
    const res = await api("POST", `/api/v1/studies/${id}/cancel`);
    note(res.ok ? res.data.message : `cancel refused: ${detailOf(res)}`);
    await refresh(true);
  });
  $("btn-resume").addEventListener("click", async () => {
    $("btn-resume").disabled = true;
    const res = await api("POST", `/api/v1/studies/${id}/resume`);
    if (res.ok || (res.status === 503 && res.data && res.data.study)) {
      note(res.ok ? "resumed: the failed and cancelled runs are queued again" : String(res.data.detail));
      render(res.ok ? res.data : res.data.study);
      openStream();
    } else {
      note(`resume refused: ${detailOf(res)}`);
      await refresh(true);
    }
  });
  $("btn-delete").addEventListener("click", async () => {
    if (!window.confirm(`Delete the study "${S.study.name}" and its ${S.study.runs_total} runs (rounds and artifacts)?`)) return;
    const res = await api("DELETE", `/api/v1/studies/${id}`);
    if (res.status === 204) { closeStream("deleted"); window.location.href = "/studies"; return; }
    note(`delete refused: ${detailOf(res)}`);
  });
  for (const btn of document.querySelectorAll("button.dl-image")) {
    btn.addEventListener("click", () => {
      const gd = $(btn.dataset.chart);
      Plotly.downloadImage(gd, { format: btn.dataset.format, filename: `${slug(S.study.name)}-${btn.dataset.chart.replace("chart-", "")}`,
        width: Math.max(gd.offsetWidth, 640), height: Math.max(gd.offsetHeight, 360) });
    });
  }

  render(S.study);
  openStream();
  window.fedheadsStudy = { state: S, refresh };
})();
