/* One experiment, live. Loads the stored rounds once, then follows the SSE stream (replayed from the start;
   the browser resends Last-Event-ID on reconnect) and appends each new round: line charts grow with
   Plotly.extendTraces, heatmaps are redrawn in place with Plotly.react. Nothing re-fetches all rounds.

   This file wires the page: the state (experiment-state.js) is changed here and only here; the panels are functions
   of its read-only view (experiment-curves.js, -heads.js, -clients.js, -pruning.js, -progress.js) and the buttons
   are in experiment-actions.js. */
"use strict";

(() => {
  const { el, api, fmt, painter, pageData, TERMINAL } = FH;
  const $ = FH.byId;
  const state = FHExperimentState.create(pageData("exp-data"));
  const view = state.view;
  const P = painter(() => bindChartEvents());
  const curves = FHCurves.create({ view, P });
  const heads = FHHeads.create({ view, P });
  const clients = FHClients.create({ view, P });
  const pruning = FHPruning({ view, P });
  const live = FHProgress({ view });  // the progress line inside a round
  let es = null;  // the event stream, while open
  let chain = Promise.resolve();  // the stream's events, handled one after another
  let playTimer = null;

  // --- the round cursor and the inspected head ----------------------------------------------------

  function drawCursorPanels() {
    if (!view.records.length) return;
    $("round-out").textContent = `${view.cursor} / ${view.lastRound}`;
    heads.drawImportance(); heads.drawStrip(); heads.drawAggregation(); clients.drawSelectionReason(view.cursor);
    pruning.drawSparsity(); curves.markRound();
  }

  function setCursor(n, fromUser) {
    if (!view.has(n)) return;
    state.setCursor(n);
    $("round-slider").value = String(n);
    if (!view.headChosen && state.openOnBestHead(n)) heads.showHead();  // once, on the cursor's first round
    if (fromUser) {
      state.setFollow(n === view.lastRound);
      $("follow").checked = view.follow;
    }
    drawCursorPanels();
  }

  function setHead(block, head) {
    state.setHead(block, head);
    heads.showHead();
    heads.drawImportance(); heads.drawAggregation();
  }

  // --- appending rounds ---------------------------------------------------------------------------

  function appendRounds(recs) {
    const first = view.metric === null;
    const { added, newClients } = state.addRounds(recs);
    if (!added.length) return;
    if (first) { curves.build(); heads.buildControls(); }
    heads.addClients(newClients);
    for (const r of added) $("dl-round").append(el("option", { value: r.round, text: `round ${r.round}` }));
    pruning.addRounds(added);  // before the curves: its chart is built before the round ticks reach it
    curves.append(added);
    clients.drawSelection();
    heads.drawFreq();
    showFigures();
    const slider = $("round-slider");
    slider.min = String(view.records[0].round); slider.max = String(view.lastRound); slider.disabled = false;
    $("play").disabled = false;
    if (view.follow || view.cursor === null) setCursor(view.lastRound, false);
    else $("round-out").textContent = `${view.cursor} / ${view.lastRound}`;
    curves.overlayDense();
    bindChartEvents();
  }

  function showFigures() {
    const f = view.figures();
    const show = (v) => (view.metric === "accuracy" ? fmt.pct(v) : fmt.num(v));
    $("fig-best").textContent = show(f.best);
    $("fig-final").textContent = show(f.final);
    $("fig-adv").textContent = fmt.times(f.uplinkAdvantage);
    $("fig-tadv").textContent = fmt.times(f.totalAdvantage);
    $("fig-ops").textContent = fmt.times(f.opsReduction);
    $("fig-attops").textContent = fmt.times(f.attentionReduction);
    $("fig-mb").textContent = `${fmt.mb(f.bytesUp)} up`;
    $("fig-wall").textContent = fmt.secs(f.wallTime);
  }

  // --- status, log, live stream ------------------------------------------------------------------

  /** Newest first, each with its time: a round's own finish time, or when the status event was stored. */
  function logLine(id, text, when) {
    const list = $("event-log");
    const stamp = when ? el("time", { text: fmt.clock(when), datetime: when.toISOString() }) : "";
    list.prepend(el("li", { "data-event": id }, stamp, text));
    while (list.children.length > 400) list.lastChild.remove();
  }

  function setStatus(status, done, total) {
    state.setStatus(status);
    const badge = $("status");
    badge.className = `badge big st-${status}`;
    badge.textContent = status;
    if (done !== undefined) {
      $("progress").max = Math.max(total, 1); $("progress").value = done;
      $("progress-text").textContent = `${done}/${total} rounds`;
    }
    FHActions.showStatus(status);
    if (TERMINAL.includes(status)) live.clear(); else live.render();
  }

  async function refreshDetail() {
    const res = await api("GET", `/ui/experiments/${view.exp.id}/state`);
    if (!res.ok) return;
    const d = res.data;
    state.setDetail(d.info, d.status_times);
    $("dl-final").hidden = !d.has_adapter;
    $("error-box").hidden = !d.error;
    $("error-text").textContent = d.error || "";
    setStatus(d.status, d.progress.rounds_done, d.progress.rounds_total);
  }

  async function fetchRound(n) {
    const res = await api("GET", `${view.base}/rounds/${n}`);
    return res.ok ? res.data.record : null;
  }

  async function onRound(ev) {
    const id = Number(ev.lastEventId);
    if (!state.takeEvent(id)) return;
    const d = JSON.parse(ev.data);
    const k = view.metric || "accuracy";
    const m = d.metrics && d.metrics[k] !== undefined ? d.metrics[k] : d.accuracy;
    const line = `round ${d.round}/${d.rounds_total}: ${k} ${k === "accuracy" ? fmt.pct(m) : fmt.num(m)}, ` +
      `upload ${fmt.mb(d.bytes_up)} (dense ${fmt.mb(d.bytes_up_dense)}), clients ${(d.selected || []).join(", ")}`;
    const finished = (r) => (r && r.finished_at ? new Date(r.finished_at * 1000) : new Date());
    setStatus(view.status, d.round, d.rounds_total);
    const have = view.lastRound ?? 0;
    if (d.round <= have && view.has(d.round)) { logLine(id, line, finished(view.record(d.round))); return; }
    if (!view.info || !view.info.blocks) await refreshDetail();
    const recs = [];
    for (let n = have + 1; n <= d.round; n++) {  // normally just d.round; more only after a gap
      if (view.has(n)) continue;
      const r = await fetchRound(n);
      if (r) recs.push(r);
    }
    appendRounds(recs);
    logLine(id, line, finished(view.record(d.round)));
    await clients.loadData();
  }

  async function onStatus(ev) {
    const id = Number(ev.lastEventId);
    if (!state.takeEvent(id)) return;
    const d = JSON.parse(ev.data);
    let text = `status: ${d.status}`;
    if (d.runner) text += ` on ${d.runner}`;
    if (d.resumed_from) text += `, resuming after round ${d.resumed_from}`;
    if (d.note) text += ` (${d.note})`;
    if (d.error) text += ` – ${String(d.error).split("\n")[0]}`;
    if (id && !view.statusTimes[id]) await refreshDetail();  // a status newer than the page's list of them
    const when = view.statusTimes[id];
    logLine(id, text, when ? new Date(when) : new Date());
    setStatus(d.status, d.rounds_done, d.rounds_total);
    if (TERMINAL.includes(d.status) || (d.status === "running" && !view.info)) await refreshDetail();
    if (TERMINAL.includes(d.status)) {
      closeStream(`stream closed: the experiment ${d.status}`);
      await clients.loadData();
    }
  }

  function openStream() {
    if (es) return;
    const after = view.lastEventId;
    const source = new EventSource(`${view.base}/events?progress=true${after ? `&after=${after}` : ""}`);
    es = source;
    $("stream-state").textContent = "connecting…";
    const queue = (fn) => (ev) => { chain = chain.then(() => fn(ev)).catch((err) => logLine(0, `error: ${err}`)); };
    source.addEventListener("round", queue(onRound));
    source.addEventListener("status", queue(onStatus));
    source.addEventListener("progress", (ev) => live.onProgress(ev));
    source.onopen = () => { $("stream-state").textContent = "live: following the event stream"; };
    source.onerror = () => {
      if (es !== source) return;
      $("stream-state").textContent = source.readyState === EventSource.CLOSED ? "stream closed"
        : "connection lost; reconnecting (missed events are replayed)…";
    };
  }

  function closeStream(msg) {
    if (es) { es.close(); es = null; }
    $("stream-state").textContent = msg;
  }

  // --- the viewer's controls ----------------------------------------------------------------------

  function bindControls() {
    const slider = $("round-slider");
    slider.addEventListener("input", () => setCursor(Number(slider.value), true));
    $("follow").addEventListener("change", () => {
      state.setFollow($("follow").checked);
      if (view.follow && view.records.length) setCursor(view.lastRound, false);
    });
    $("play").addEventListener("click", togglePlay);
    $("imp-source").addEventListener("change", () => { state.setImpSource($("imp-source").value); heads.drawImportance(); });
    $("freq-client").addEventListener("change", () => { state.setFreqClient($("freq-client").value); heads.drawFreq(); });
    $("agg-block").addEventListener("change", () => setHead(Number($("agg-block").value), view.head.head));
    $("agg-head").addEventListener("change", () => setHead(view.head.block, Number($("agg-head").value)));
    $("x-axis").addEventListener("change", () => {
      state.setXTime($("x-axis").value === "time");
      if (view.metric === null) return;  // no curves yet: they are built on the chosen axis
      curves.rebuild(); pruning.redraw(); curves.overlayDense(); curves.markRound();
    });
  }

  function bindChartEvents() {
    for (const id of ["chart-imp", "chart-agree", "chart-freq"]) {
      const gd = $(id);
      if (gd.on && !gd.dataset.bound) {
        gd.dataset.bound = "1";
        gd.on("plotly_click", (ev) => { const hit = FHCharts.clickedHead(ev, view.blocks()); if (hit) setHead(hit.block, hit.head); });
      }
    }
    const sel = $("chart-sel");
    if (sel.on && !sel.dataset.bound) {
      sel.dataset.bound = "1";
      sel.on("plotly_hover", (ev) => { const p = ev.points && ev.points[0]; if (p) clients.drawSelectionReason(Number(p.x)); });
      sel.on("plotly_unhover", () => clients.drawSelectionReason(view.cursor));
    }
  }

  function togglePlay() {
    const btn = $("play");
    if (playTimer) {
      clearInterval(playTimer); playTimer = null;
      btn.textContent = "▶ Play"; btn.setAttribute("aria-pressed", "false");
      return;
    }
    const rounds = view.records.map((r) => r.round);
    if (!rounds.length) return;
    state.setFollow(false); $("follow").checked = false;
    if (view.cursor === rounds[rounds.length - 1]) setCursor(rounds[0], false);
    btn.textContent = "❚❚ Pause"; btn.setAttribute("aria-pressed", "true");
    playTimer = setInterval(() => {
      const i = rounds.indexOf(view.cursor);
      const all = view.records.map((r) => r.round);
      if (i < 0 || view.cursor >= all[all.length - 1]) { togglePlay(); return; }
      setCursor(all[all.indexOf(view.cursor) + 1], false);
    }, 700);
  }

  // --- start ---------------------------------------------------------------------------------------

  async function start() {
    $("spec-json").textContent = JSON.stringify(view.exp.spec, null, 2);
    for (const id of FHExperimentState.CHARTS) P.watch(id);
    window.addEventListener("beforeprint", () => P.flush());
    setStatus(view.status, view.exp.progress.rounds_done, view.exp.progress.rounds_total);
    state.setXTime($("x-axis").value === "time");  // a choice the browser kept across a reload
    FHActions.bind(view, { openStream, closeStream });
    bindControls();
    const res = await api("GET", `${view.base}/rounds`);
    if (res.ok && res.data.items.length) {
      if (!view.info) await refreshDetail();
      appendRounds(res.data.items.map((r) => r.record));
    }
    await clients.loadData();
    openStream();
    window.fedheads = { state: view, flush: () => P.flush() };  // for the browser tests and the curious
  }

  start();
})();
