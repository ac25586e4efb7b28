/* Where a running job is inside its round, on the experiment page: the stream's `progress` events (round r/R,
   client j/M, step k/S; never stored) as one line, with an estimate of the time left in the round and in the run.
   The line and the page's "created … ago" tick every second between reports.

   The estimate: inside a round, the clients' share done so far (client j of M at step k of S counts as
   (j - 1 + k/S) / M, the step itself extrapolated at the client's pace since its last report) stretches the time
   the round has taken into the time its clients will take, plus what the recorded rounds spent outside their
   clients (selection, aggregation, evaluation); before any client has moved, the recorded rounds' mean. The rest
   of the run: the rounds still to come at the recorded rounds' mean (this round's estimate before any is recorded).
   A function of the page state's read-only view (experiment-state.js); it keeps the latest report. */
"use strict";

const FHProgress = ({ view }) => {
  const { fmt } = FH;
  const $ = FH.byId;
  const RECENT = 3;  // recorded rounds that the means are taken over

  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

  /** Mean wall time of the last recorded rounds, and of their time outside the clients' own training. */
  function recorded(records) {
    const last = records.slice(-RECENT).filter((r) => typeof r.wall_time === "number");
    const outside = last.map((r) => Math.max(r.wall_time - (r.clients || []).reduce((a, c) => a + (c.wall_time || 0), 0), 0));
    return { round: mean(last.map((r) => r.wall_time)), outside: mean(outside) };
  }

  /**
   * Seconds left in the round and in the run, from report p received `since` seconds ago and the recorded rounds
   * (either may be null: not known yet). Also the share of the round's clients done, for the line.
   */
  function estimate(p, since, records) {
    const past = recorded(records || []);
    const now = p.at + since;
    const elapsed = p.round_started ? Math.max(now - p.round_started, 0) : null;
    const M = p.clients || 0, j = p.client_index || 0;
    let step = p.step || 0;
    if (p.phase === "client" && p.steps && step > 0 && p.client_started) {  // extrapolate at the client's pace
      const pace = (p.at - p.client_started) / step;
      if (pace > 0) step = Math.min(p.steps, step + since / pace);
    }
    let done = 0;
    if (p.phase === "client") done = M ? (j - 1 + (p.steps ? step / p.steps : 0)) / M : 0;
    else if (p.phase === "client_done") done = M ? j / M : 0;
    else if (p.phase === "aggregate") done = 1;
    let roundTotal = past.round;
    if (elapsed !== null && done > 0.02 && p.phase !== "aggregate") roundTotal = elapsed / done + (past.outside || 0);
    const roundLeft = roundTotal === null || elapsed === null ? null : Math.max(roundTotal - elapsed, 0);
    const perRound = past.round ?? roundTotal;
    const runLeft = roundLeft === null || perRound === null ? null : roundLeft + Math.max(p.rounds - p.round, 0) * perRound;
    return { roundLeft, runLeft, done, step };
  }

  /** "~42 s", "~3 min 5 s", "~2 h 10 min". */
  function about(s) {
    if (s === null) return "–";
    if (s < 1) return "< 1 s";
    if (s < 60) return `~${Math.round(s)} s`;
    if (s < 3600) return `~${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    return `~${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  }

  /** The progress line for report p received `since` seconds ago. */
  function describe(p, since, records) {
    if (p.phase === "prepare") return `preparing: loading the model and data (${Math.round(p.at ? since : 0)} s)`;
    const e = estimate(p, since, records);
    const parts = [`round ${p.round}/${p.rounds}`];
    if (p.phase === "select") parts.push("choosing clients");
    else if (p.phase === "aggregate") parts.push(`aggregating ${p.clients} clients and evaluating`);
    else {
      parts.push(`client ${p.client_index}/${p.clients}` + (p.client !== null && p.client !== undefined ? ` (#${p.client})` : ""));
      if (p.phase === "client_done") parts.push("done");
      else if (!p.steps) parts.push("scoring its heads");
      else parts.push(`step ${Math.floor(e.step)}/${p.steps}`);
    }
    const left = e.roundLeft === null ? "estimating the time left…"
      : `${about(e.roundLeft)} left in the round, ${about(e.runLeft)} in the run`;
    return `${parts.join(" · ")} — ${left}`;
  }

  let live = null;  // {p, got: Date.now() when received}

  function render() {
    const line = $("live-progress");
    const running = view.status === "running";
    line.hidden = !(running && live);
    if (running && live) {
      line.textContent = describe(live.p, (Date.now() - live.got) / 1000, view.records);
      line.dataset.phase = live.p.phase;
    }
    const created = $("created-ago");
    if (created && view.exp.created_at) created.textContent = fmt.ago(view.exp.created_at);
  }

  /** A `progress` event of the stream. */
  function onProgress(ev) {
    const p = JSON.parse(ev.data);
    live = p.phase === "done" ? null : { p, got: Date.now() };
    render();
  }

  /** The run is over (or not running): nothing to show until a report of a new run arrives. */
  function clear() { live = null; render(); }

  setInterval(render, 1000);
  render();
  return { onProgress, clear, render, estimate, describe };
};
