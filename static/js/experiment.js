/* One experiment, live. Loads the stored rounds once, then follows the SSE stream (replayed from the start;
   the browser resends Last-Event-ID on reconnect) and appends each new round: line charts grow with
   Plotly.extendTraces, heatmaps are redrawn in place with Plotly.react. Nothing re-fetches all rounds. */
"use strict";

(() => {
  const { el, api, fmt, painter, copyText, pageData, shq } = FH;
  const boot = pageData("exp-data");
  const exp = boot.exp;
  const ID = exp.id;
  const BASE = `/api/v1/experiments/${ID}`;
  const TERMINAL = ["succeeded", "failed", "cancelled"];
  const $ = (id) => document.getElementById(id);
  const CHARTS = ["chart-acc", "chart-data", "chart-imp", "chart-aggw", "chart-agree", "chart-strip", "chart-freq",
    "chart-sel", "chart-comm", "chart-cum", "chart-ops", "chart-wall", "chart-pl"];
  const P = painter(() => bindChartEvents());

  const S = {
    status: exp.status, info: exp.info, records: [], byRound: new Map(), lastEventId: 0,
    cursor: null, follow: true, head: { block: 0, head: 0 }, impSource: "global", freqClient: "all",
    metric: null, sums: { up: 0, upDense: 0, down: 0, ops: 0, opsDense: 0, att: 0, attDense: 0, wall: 0 },
    best: null, final: null, kept: new Map(), clientsSeen: new Set(), sel: null, es: null,
    dense: boot.dense, denseDone: false, playTimer: null, chain: Promise.resolve(), built: false,
    xTime: false, elapsed: new Map(),  // the curves' x: round, or elapsed wall time (round -> seconds after it)
  };

  // --- the panels (experiment-panels.js) ----------------------------------------------------------

  const {
    blocks, heads, metricKey, buildLineCharts, extendLines, overlayDense, drawImportance, drawStrip,
    drawFreq, drawAggregation, initSelection, addSelectionColumn, drawSelection, drawSelectionReason, loadClients,
    markRound, mostImportantKeptHead, redrawCurves, xOf, xAxis,
  } = FHPanels({ S, P, exp });
  const pruning = FHPruning({ S, P, xOf, xAxis });
  const live = FHProgress({ S, exp });  // the progress line inside a round (experiment-progress.js)

  // --- the round cursor ---------------------------------------------------------------------------

  function drawCursorPanels() {
    if (!S.records.length) return;
    $("round-out").textContent = `${S.cursor} / ${S.records[S.records.length - 1].round}`;
    drawImportance(); drawStrip(); drawAggregation(); drawSelectionReason(S.cursor); pruning.drawSparsity(); markRound();
  }

  function setCursor(n, fromUser) {
    if (!S.byRound.has(n)) return;
    S.cursor = n;
    $("round-slider").value = String(n);
    if (!S.headChosen) {  // the inspector opens on the most important head that a client kept
      S.headChosen = true;
      const best = mostImportantKeptHead(n);
      if (best) { S.head = best; $("agg-block").value = String(best.block); $("agg-head").value = String(best.head); }
    }
    if (fromUser) {
      S.follow = n === S.records[S.records.length - 1].round;
      $("follow").checked = S.follow;
    }
    drawCursorPanels();
  }

  function setHead(block, head) {
    S.head = { block, head };
    S.headChosen = true;
    $("agg-block").value = String(block);
    $("agg-head").value = String(head);
    drawImportance(); drawAggregation();
  }

  // --- appending rounds ---------------------------------------------------------------------------

  function buildHeadControls() {
    const names = blocks();
    const blockSel = $("agg-block"), headSel = $("agg-head");
    blockSel.replaceChildren(...names.map((n, i) => el("option", { value: i, text: n })));
    headSel.replaceChildren(...[...Array(heads()).keys()].map((h) => el("option", { value: h, text: `head ${h}` })));
    blockSel.value = String(S.head.block); headSel.value = String(S.head.head);
  }

  function ensureBuilt(first) {
    if (S.built) return;
    S.first = first;
    S.metric = metricKey(first);
    buildLineCharts(S.metric);
    initSelection();
    buildHeadControls();
    S.built = true;
    overlayDense();
  }

  function addClientOption(sel, c) {
    if (sel.querySelector(`option[value="${c}"]`)) return;
    const opts = [...sel.options].slice(1).map((o) => Number(o.value));
    const node = el("option", { value: c, text: `client ${c}` });
    const after = opts.findIndex((v) => v > c);
    sel.insertBefore(node, after < 0 ? null : sel.options[after + 1]);
  }

  function appendRounds(recs) {
    recs = recs.filter((r) => !S.byRound.has(r.round)).sort((a, b) => a.round - b.round);
    if (!recs.length) return;
    ensureBuilt(recs[0]);
    const B = blocks().length, H = heads();
    for (const r of recs) {
      S.records.push(r); S.byRound.set(r.round, r);
      const s = S.sums;
      s.up += r.bytes_up; s.upDense += r.bytes_up_dense; s.down += r.bytes_down; s.ops += r.ops;
      s.opsDense += r.ops_dense; s.att += r.ops_attention || 0; s.attDense += r.ops_attention_dense || 0;
      s.wall += r.wall_time || 0;
      S.elapsed.set(r.round, s.wall);
      const m = r.metrics ? r.metrics[S.metric] : null;
      if (m !== null && m !== undefined) { S.final = m; S.best = S.best === null ? m : Math.max(S.best, m); }
      for (const c of r.clients || []) {
        if (!S.kept.has(c.client)) S.kept.set(c.client, { counts: new Float64Array(B * H), n: 0 });
        const v = S.kept.get(c.client);
        v.n += 1;
        (c.kept || []).forEach((row, b) => row.forEach((k, h) => { if (k) v.counts[b * H + h] += 1; }));
        if (!S.clientsSeen.has(c.client)) {
          S.clientsSeen.add(c.client);
          addClientOption($("imp-source"), c.client); addClientOption($("freq-client"), c.client);
        }
      }
      addSelectionColumn(r);
      $("dl-round").append(el("option", { value: r.round, text: `round ${r.round}` }));
    }
    pruning.addRounds(recs);  // before extendLines: its chart is built before the round ticks reach it
    extendLines(recs);
    drawSelection();
    drawFreq();
    updateFigures();
    const last = S.records[S.records.length - 1].round;
    const slider = $("round-slider");
    slider.min = String(S.records[0].round); slider.max = String(last); slider.disabled = false;
    $("play").disabled = false;
    if (S.follow || S.cursor === null) setCursor(last, false); else $("round-out").textContent = `${S.cursor} / ${last}`;
    if (S.dense && !S.denseDone) overlayDense();
    bindChartEvents();
  }

  function updateFigures() {
    const s = S.sums;
    const k = S.metric;
    const show = (v) => (k === "accuracy" ? fmt.pct(v) : fmt.num(v));
    $("fig-best").textContent = show(S.best);
    $("fig-final").textContent = show(S.final);
    $("fig-adv").textContent = fmt.times(s.up ? s.upDense / s.up : null);
    $("fig-tadv").textContent = fmt.times(s.up + s.down ? (s.upDense + s.down) / (s.up + s.down) : null);
    $("fig-ops").textContent = fmt.times(s.ops ? s.opsDense / s.ops : null);
    $("fig-attops").textContent = fmt.times(s.att ? s.attDense / s.att : null);
    $("fig-mb").textContent = `${fmt.mb(s.up)} up`;
    $("fig-wall").textContent = fmt.secs(s.wall);
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
    S.status = status;
    const badge = $("status");
    badge.className = `badge big st-${status}`;
    badge.textContent = status;
    if (done !== undefined) {
      $("progress").max = Math.max(total, 1); $("progress").value = done;
      $("progress-text").textContent = `${done}/${total} rounds`;
    }
    $("btn-cancel").disabled = !["queued", "running"].includes(status);
    $("btn-resume").disabled = !["failed", "cancelled"].includes(status);
    $("btn-delete").disabled = status === "running";
    $("btn-delete").title = status === "running" ? "running: cancel it first" : "";
    if (TERMINAL.includes(status)) live.clear(); else live.render();
  }

  async function refreshDetail() {
    const res = await api("GET", `/ui/experiments/${ID}/state`);
    if (!res.ok) return;
    const d = res.data;
    if (d.info) S.info = d.info;
    S.statusTimes = d.status_times || {};
    $("dl-final").hidden = !d.has_adapter;
    $("error-box").hidden = !d.error;
    $("error-text").textContent = d.error || "";
    setStatus(d.status, d.progress.rounds_done, d.progress.rounds_total);
  }

  async function fetchRound(n) {
    const res = await api("GET", `${BASE}/rounds/${n}`);
    return res.ok ? res.data.record : null;
  }

  async function onRound(ev) {
    const id = Number(ev.lastEventId);
    if (id && id <= S.lastEventId) return;
    S.lastEventId = id || S.lastEventId;
    const d = JSON.parse(ev.data);
    const k = S.metric || "accuracy";
    const m = d.metrics && d.metrics[k] !== undefined ? d.metrics[k] : d.accuracy;
    const line = `round ${d.round}/${d.rounds_total}: ${k} ${k === "accuracy" ? fmt.pct(m) : fmt.num(m)}, ` +
      `upload ${fmt.mb(d.bytes_up)} (dense ${fmt.mb(d.bytes_up_dense)}), clients ${(d.selected || []).join(", ")}`;
    const finished = (r) => (r && r.finished_at ? new Date(r.finished_at * 1000) : new Date());
    setStatus(S.status, d.round, d.rounds_total);
    const have = S.records.length ? S.records[S.records.length - 1].round : 0;
    if (d.round <= have && S.byRound.has(d.round)) { logLine(id, line, finished(S.byRound.get(d.round))); return; }
    if (!S.info || !S.info.blocks) await refreshDetail();
    const recs = [];
    for (let n = have + 1; n <= d.round; n++) {  // normally just d.round; more only after a gap
      if (S.byRound.has(n)) continue;
      const r = await fetchRound(n);
      if (r) recs.push(r);
    }
    appendRounds(recs);
    logLine(id, line, finished(S.byRound.get(d.round)));
    if (!S.clientsLoaded) await loadClients();
  }

  async function onStatus(ev) {
    const id = Number(ev.lastEventId);
    if (id && id <= S.lastEventId) return;
    S.lastEventId = id || S.lastEventId;
    const d = JSON.parse(ev.data);
    let text = `status: ${d.status}`;
    if (d.runner) text += ` on ${d.runner}`;
    if (d.resumed_from) text += `, resuming after round ${d.resumed_from}`;
    if (d.note) text += ` (${d.note})`;
    if (d.error) text += ` – ${String(d.error).split("\n")[0]}`;
    if (id && !(S.statusTimes || {})[id]) await refreshDetail();  // a status newer than the page's list of them
    const when = (S.statusTimes || {})[id];
    logLine(id, text, when ? new Date(when) : new Date());
    setStatus(d.status, d.rounds_done, d.rounds_total);
    if (TERMINAL.includes(d.status) || (d.status === "running" && !S.info)) await refreshDetail();
    if (TERMINAL.includes(d.status)) {
      closeStream(`stream closed: the experiment ${d.status}`);
      if (!S.clientsLoaded) await loadClients();
    }
  }

  function openStream() {
    if (S.es) return;
    const url = `${BASE}/events?progress=true${S.lastEventId ? `&after=${S.lastEventId}` : ""}`;
    const es = new EventSource(url);
    S.es = es;
    $("stream-state").textContent = "connecting…";
    const queue = (fn) => (ev) => { S.chain = S.chain.then(() => fn(ev)).catch((err) => logLine(0, `error: ${err}`)); };
    es.addEventListener("round", queue(onRound));
    es.addEventListener("status", queue(onStatus));
    es.addEventListener("progress", (ev) => live.onProgress(ev));
    es.onopen = () => { $("stream-state").textContent = "live: following the event stream"; };
    es.onerror = () => {
      if (S.es !== es) return;
      $("stream-state").textContent = es.readyState === EventSource.CLOSED ? "stream closed"
        : "connection lost; reconnecting (missed events are replayed)…";
    };
  }

  function closeStream(msg) {
    if (S.es) { S.es.close(); S.es = null; }
    $("stream-state").textContent = msg;
  }

  // --- actions -------------------------------------------------------------------------------------

  function note(msg) { $("action-note").textContent = msg; }

  /** Tags (comma-separated in the input) and the note, saved with PATCH; the server's 422 is shown as it is. */
  function bindKeep() {
    const keepNote = (msg) => { $("keep-note").textContent = msg; };
    $("keep").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const tags = $("tags-input").value.split(",").map((t) => t.trim()).filter((t) => t);
      $("save-keep").disabled = true;
      const res = await api("PATCH", BASE, { tags, note: $("note-input").value });
      $("save-keep").disabled = false;
      if (res.ok) {
        exp.tags = res.data.tags; exp.note = res.data.note;
        $("tags-input").value = res.data.tags.join(", ");
        keepNote(`saved at ${fmt.clock()}`);
      } else if (res.status === 422 && Array.isArray(res.data.detail)) {
        keepNote(`not saved: ${res.data.detail.map((e) => `${e.loc.slice(1).join(".")}: ${e.msg}`).join("; ")}`);
      } else {
        keepNote(`not saved: ${res.data && res.data.detail ? res.data.detail : res.status}`);
      }
    });
    $("btn-delete").addEventListener("click", async () => {
      if (!window.confirm(`Delete "${exp.name}" with its rounds, events and adapters? This cannot be undone.`)) return;
      $("btn-delete").disabled = true;
      const res = await api("DELETE", BASE);
      if (res.ok) { closeStream("deleted"); window.location.href = "/"; return; }
      note(`delete refused: ${res.data && res.data.detail ? res.data.detail : res.status}`);
      $("btn-delete").disabled = S.status === "running";
    });
  }

  function bindActions() {
    bindKeep();
    $("btn-cancel").addEventListener("click", async () => {
      $("btn-cancel").disabled = true;
      const res = await api("POST", `${BASE}/cancel`);
      note(res.ok ? res.data.message : `cancel refused: ${res.data ? res.data.detail : res.status}`);
      if (!res.ok) $("btn-cancel").disabled = !["queued", "running"].includes(S.status);
    });
    $("btn-resume").addEventListener("click", async () => {
      $("btn-resume").disabled = true;
      const res = await api("POST", `${BASE}/resume`);
      if (res.ok || res.status === 503) {
        note(res.ok ? res.data.message : String(res.data.detail));
        openStream();
      } else {
        note(`resume refused: ${res.data ? res.data.detail : res.status}`);
        $("btn-resume").disabled = !["failed", "cancelled"].includes(S.status);
      }
    });
    $("dl-round").addEventListener("change", () => {
      const n = $("dl-round").value;
      $("dl-round-link").setAttribute("aria-disabled", n ? "false" : "true");
    });
    $("dl-round-link").addEventListener("click", async (ev) => {
      ev.preventDefault();
      const n = $("dl-round").value;
      if (!n) { note("choose a round first"); return; }
      note(`building the adapter of round ${n}…`);
      const resp = await fetch(`${BASE}/adapter?round=${encodeURIComponent(n)}`);
      if (!resp.ok) {
        let detail = resp.status;
        try { detail = (await resp.json()).detail; } catch (_) { /* not JSON */ }
        note(`no adapter for round ${n}: ${detail}`);
        return;
      }
      const url = URL.createObjectURL(await resp.blob());
      const a = el("a", { href: url, download: `fedheads-${ID}-round-${n}.zip` });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      note(`downloaded the adapter of round ${n}`);
    });
    $("export-json").setAttribute("download", `${FH.slug(exp.name)}-rounds.json`);
    $("export-csv").addEventListener("click", async () => note(await FHExport.saveRoundsCsv(BASE, exp.name)));
    const body = () => ({ name: exp.name, spec: exp.spec });
    $("copy-json").addEventListener("click", async () => {
      note(await copyText(JSON.stringify(exp.spec, null, 2)) ? "spec copied as JSON" : "copy failed: select it in the Spec panel");
    });
    $("copy-curl").addEventListener("click", async () => {
      const cmd = `curl -X POST ${shq(`${window.location.origin}/api/v1/experiments`)} ` +
        `-H 'Content-Type: application/json' -d ${shq(JSON.stringify(body()))}`;
      note(await copyText(cmd) ? "curl command copied" : "copy failed");
    });
    const slider = $("round-slider");
    slider.addEventListener("input", () => setCursor(Number(slider.value), true));
    $("follow").addEventListener("change", () => {
      S.follow = $("follow").checked;
      if (S.follow && S.records.length) setCursor(S.records[S.records.length - 1].round, false);
    });
    $("play").addEventListener("click", togglePlay);
    $("imp-source").addEventListener("change", () => { S.impSource = $("imp-source").value; drawImportance(); });
    $("freq-client").addEventListener("change", () => { S.freqClient = $("freq-client").value; drawFreq(); });
    $("agg-block").addEventListener("change", () => setHead(Number($("agg-block").value), S.head.head));
    $("agg-head").addEventListener("change", () => setHead(S.head.block, Number($("agg-head").value)));
    $("x-axis").addEventListener("change", () => { S.xTime = $("x-axis").value === "time"; redrawCurves(pruning); });
  }

  function bindChartEvents() {
    for (const id of ["chart-imp", "chart-agree", "chart-freq"]) {
      const gd = $(id);
      if (gd.on && !gd.dataset.bound) {
        gd.dataset.bound = "1";
        gd.on("plotly_click", (ev) => { const hit = FHCharts.clickedHead(ev, blocks()); if (hit) setHead(hit.block, hit.head); });
      }
    }
    const sel = $("chart-sel");
    if (sel.on && !sel.dataset.bound) {
      sel.dataset.bound = "1";
      sel.on("plotly_hover", (ev) => { const p = ev.points && ev.points[0]; if (p) drawSelectionReason(Number(p.x)); });
      sel.on("plotly_unhover", () => drawSelectionReason(S.cursor));
    }
  }

  function togglePlay() {
    const btn = $("play");
    if (S.playTimer) {
      clearInterval(S.playTimer); S.playTimer = null;
      btn.textContent = "▶ Play"; btn.setAttribute("aria-pressed", "false");
      return;
    }
    const rounds = S.records.map((r) => r.round);
    if (!rounds.length) return;
    S.follow = false; $("follow").checked = false;
    if (S.cursor === rounds[rounds.length - 1]) setCursor(rounds[0], false);
    btn.textContent = "❚❚ Pause"; btn.setAttribute("aria-pressed", "true");
    S.playTimer = setInterval(() => {
      const i = rounds.indexOf(S.cursor);
      const all = S.records.map((r) => r.round);
      if (i < 0 || S.cursor >= all[all.length - 1]) { togglePlay(); return; }
      setCursor(all[all.indexOf(S.cursor) + 1], false);
    }, 700);
  }

  // --- start ---------------------------------------------------------------------------------------

  async function start() {
    $("spec-json").textContent = JSON.stringify(exp.spec, null, 2);
    for (const id of CHARTS) P.watch(id);
    window.addEventListener("beforeprint", () => P.flush());
    setStatus(exp.status, exp.progress.rounds_done, exp.progress.rounds_total);
    S.xTime = $("x-axis").value === "time";  // a choice the browser kept across a reload
    bindActions();
    const res = await api("GET", `${BASE}/rounds`);
    if (res.ok && res.data.items.length) {
      if (!S.info) await refreshDetail();
      appendRounds(res.data.items.map((r) => r.record));
    }
    await loadClients();
    openStream();
    window.fedheads = { state: S, flush: () => P.flush() };  // for the browser tests and the curious
  }

  start();
})();
