/* The experiment page's state, owned here and nowhere else: the stored rounds and what is summed over them
   (figures, keep counts, the selection timeline), the run's status and info, and the viewer's choices (the round
   cursor, the inspected head, the curves' x axis). The panels (experiment-curves.js, -heads.js, -clients.js,
   -pruning.js, -progress.js) get `view`: read-only getters and derived reads, frozen, so a panel cannot write
   the state; experiment.js changes it through the functions create() returns. The page's chart ids are here too. */
"use strict";

const FHExperimentState = (() => {
  // every chart of the page, watched by the painter (drawn when on screen)
  const CHARTS = ["chart-acc", "chart-data", "chart-imp", "chart-aggw", "chart-agree", "chart-strip", "chart-freq",
    "chart-sel", "chart-comm", "chart-cum", "chart-ops", "chart-wall", "chart-pl"];
  // the charts whose x is the round; of them, the curves that can switch to elapsed wall time
  const ROUND_CHARTS = ["chart-acc", "chart-comm", "chart-cum", "chart-ops", "chart-wall", "chart-sel", "chart-pl"];
  const TIME_CHARTS = ["chart-acc", "chart-comm", "chart-cum", "chart-ops", "chart-pl"];
  const MAX_TIMELINE_ROWS = 300;  // above, the selection timeline has rows only for clients ever considered

  /** The metric the page leads with: accuracy when the run has it, else its first task metric. */
  function metricKey(rec) {
    const m = rec.metrics || {};
    if ("accuracy" in m) return "accuracy";
    return Object.keys(m).find((k) => k !== "loss" && k !== "examples") || "accuracy";
  }

  /** The page's state from the server's boot data ({exp, dense, siblings}). */
  function create(boot) {
    const exp = Object.freeze(boot.exp);
    const s = {
      status: exp.status, info: exp.info, statusTimes: {}, lastEventId: 0, records: [], byRound: new Map(), first: null,
      metric: null, sums: { up: 0, upDense: 0, down: 0, ops: 0, opsDense: 0, att: 0, attDense: 0, wall: 0 },
      best: null, final: null, elapsed: new Map(),  // round -> elapsed wall time after it
      kept: new Map(), clientsSeen: new Set(), sel: null,
      cursor: null, follow: true, head: { block: 0, head: 0 }, headChosen: false, impSource: "global",
      freqClient: "all", xTime: false,
    };

    // --- derived reads -------------------------------------------------------------------------------

    /** Block names from the run's info; else numbered from the first round's matrices. */
    function blocks() {
      if (s.info && s.info.blocks && s.info.blocks.length) return s.info.blocks;
      const r = s.records[0] || s.first;
      const n = r && r.global_importance ? r.global_importance.length : 0;
      return [...Array(n).keys()].map((i) => `block ${i}`);
    }
    function heads() {
      if (s.info && s.info.heads_per_block) return s.info.heads_per_block;
      const r = s.records[0] || s.first;
      return r && r.global_importance && r.global_importance[0] ? r.global_importance[0].length : 0;
    }

    /** The x of round record r on the curves: the round, or the elapsed wall time after it. */
    const xOf = (r) => (s.xTime ? s.elapsed.get(r.round) : r.round);

    /** Share of rounds each head was kept in, for one client ("all": over every client); null cells when none. */
    function keptShare(client) {
      const B = blocks().length, H = heads();
      let kept = null, n = 0;
      if (client === "all") {
        kept = new Float64Array(B * H);
        for (const v of s.kept.values()) { v.counts.forEach((c, i) => { kept[i] += c; }); n += v.n; }
      } else if (s.kept.has(Number(client))) {
        const v = s.kept.get(Number(client)); kept = v.counts; n = v.n;
      }
      return [...Array(B).keys()].map((b) => [...Array(H).keys()].map((h) => (n && kept ? kept[b * H + h] / n : null)));
    }

    /** The head kept by at least one client in round n with the highest global importance; null if none was kept. */
    function mostImportantKeptHead(n) {
      const rec = s.byRound.get(n);
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

    /** The headline figures so far (the definitions of fedcore.summary.summarize). */
    function figures() {
      const t = s.sums, ratio = (dense, actual) => (actual ? dense / actual : null);
      return { best: s.best, final: s.final, uplinkAdvantage: ratio(t.upDense, t.up),
        totalAdvantage: ratio(t.upDense + t.down, t.up + t.down), opsReduction: ratio(t.opsDense, t.ops),
        attentionReduction: ratio(t.attDense, t.att), bytesUp: t.up, wallTime: t.wall };
    }

    const view = Object.freeze({
      exp, dense: boot.dense, base: `/api/v1/experiments/${exp.id}`,  // the run's REST resource
      get status() { return s.status; }, get info() { return s.info; }, get statusTimes() { return s.statusTimes; },
      get lastEventId() { return s.lastEventId; }, get records() { return s.records; },
      get lastRound() { return s.records.length ? s.records[s.records.length - 1].round : null; },
      get metric() { return s.metric; }, get selection() { return s.sel; },
      get cursor() { return s.cursor; }, get follow() { return s.follow; }, get head() { return { ...s.head }; },
      get headChosen() { return s.headChosen; }, get impSource() { return s.impSource; },
      get freqClient() { return s.freqClient; }, get xTime() { return s.xTime; },
      record: (n) => s.byRound.get(n), has: (n) => s.byRound.has(n), elapsed: (n) => s.elapsed.get(n),
      blocks, heads, xOf, keptShare, mostImportantKeptHead, figures,
    });

    // --- changes (experiment.js only) -------------------------------------------------------------------

    function timelineFor(numClients) {
      const rows = numClients <= MAX_TIMELINE_ROWS ? [...Array(numClients).keys()] : [];
      return { rows, rowOf: new Map(rows.map((c, i) => [c, i])), x: [], z: rows.map(() => []), text: rows.map(() => []),
        revision: 0 };
    }

    function addSelectionColumn(rec) {
      const sel = s.sel;
      const sl = rec.selection || {};
      const picked = new Set(sl.selected || []);
      const cands = new Set(sl.candidates || []);
      for (const c of [...cands, ...picked]) {
        if (!sel.rowOf.has(c)) {  // large federations: rows only for clients ever considered
          sel.rowOf.set(c, sel.rows.length); sel.rows.push(c);
          sel.z.push(sel.x.map(() => 0)); sel.text.push(sel.x.map((r) => `client ${c}, round ${r}: not a candidate`));
        }
      }
      sel.x.push(rec.round);
      const scores = sl.scores || {};
      sel.rows.forEach((c, i) => {
        const state = picked.has(c) ? 2 : cands.has(c) ? 1 : 0;
        const score = scores[String(c)];
        sel.z[i].push(state);
        sel.text[i].push(`client ${c}, round ${rec.round}: ${["not a candidate", "candidate", "selected"][state]}` +
          (score === undefined || score === null ? "" : `<br>score ${Number(score).toPrecision(4)}`));
      });
      sel.revision += 1;
    }

    /** Take in round records (any order, repeats ignored): returns the new ones in order and the clients first
     *  seen in them. The first call fixes the metric and the selection timeline's rows. */
    function addRounds(recs) {
      recs = recs.filter((r) => !s.byRound.has(r.round)).sort((a, b) => a.round - b.round);
      const newClients = [];
      if (!recs.length) return { added: recs, newClients };
      if (s.metric === null) { s.first = recs[0]; s.metric = metricKey(recs[0]); s.sel = timelineFor(exp.spec.num_clients); }
      const B = blocks().length, H = heads();
      for (const r of recs) {
        s.records.push(r); s.byRound.set(r.round, r);
        const t = s.sums;
        t.up += r.bytes_up; t.upDense += r.bytes_up_dense; t.down += r.bytes_down; t.ops += r.ops;
        t.opsDense += r.ops_dense; t.att += r.ops_attention || 0; t.attDense += r.ops_attention_dense || 0;
        t.wall += r.wall_time || 0;
        s.elapsed.set(r.round, t.wall);
        const m = r.metrics ? r.metrics[s.metric] : null;
        if (m !== null && m !== undefined) { s.final = m; s.best = s.best === null ? m : Math.max(s.best, m); }
        for (const c of r.clients || []) {
          if (!s.kept.has(c.client)) s.kept.set(c.client, { counts: new Float64Array(B * H), n: 0 });
          const v = s.kept.get(c.client);
          v.n += 1;
          (c.kept || []).forEach((row, b) => row.forEach((k, h) => { if (k) v.counts[b * H + h] += 1; }));
          if (!s.clientsSeen.has(c.client)) { s.clientsSeen.add(c.client); newClients.push(c.client); }
        }
        addSelectionColumn(r);
      }
      return { added: recs, newClients };
    }

    /** An event id of the stream: false when it was seen already (a replay after a reconnect). */
    function takeEvent(id) {
      if (id && id <= s.lastEventId) return false;
      s.lastEventId = id || s.lastEventId;
      return true;
    }

    return {
      view, addRounds, takeEvent,
      setStatus(status) { s.status = status; },
      setDetail(info, statusTimes) { if (info) s.info = info; s.statusTimes = statusTimes || {}; },
      setCursor(n) { s.cursor = n; },
      setFollow(on) { s.follow = on; },
      setHead(block, head) { s.head = { block, head }; s.headChosen = true; },
      /** The inspector's first head: the most important one a client kept in round n (tried once); true if found. */
      openOnBestHead(n) {
        s.headChosen = true;
        const best = mostImportantKeptHead(n);
        if (best) s.head = best;
        return Boolean(best);
      },
      setImpSource(source) { s.impSource = source; },
      setFreqClient(client) { s.freqClient = client; },
      setXTime(on) { s.xTime = on; },
    };
  }

  return { CHARTS, ROUND_CHARTS, TIME_CHARTS, metricKey, create };
})();
