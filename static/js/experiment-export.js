/* Export of one run's rounds: every stored round as a CSV row (its scalars, metrics and selection; the matrices
   stay in the JSON, which is the API's /rounds answer as it is). */
"use strict";

const FHExport = (() => {
  const isScalar = (v) => v === null || ["number", "string", "boolean"].includes(typeof v);
  const union = (lists) => [...new Set(lists.flat())];

  /** {header, rows} of the /rounds items: round, created_at, metrics.*, the record's scalars, selection.*. */
  function roundsTable(items) {
    const metrics = union(items.map((it) => Object.keys(it.record.metrics || {})));
    const scalars = union(items.map((it) => Object.keys(it.record).filter((k) => k !== "round" && isScalar(it.record[k]))));
    const header = ["round", "created_at", ...metrics.map((k) => `metrics.${k}`), ...scalars,
      "selection.strategy", "selection.selected", "selection.candidates", "selection.reason"];
    const rows = items.map((it) => {
      const r = it.record, s = r.selection || {}, m = r.metrics || {};
      return [it.round, it.created_at, ...metrics.map((k) => m[k]), ...scalars.map((k) => r[k]),
        s.strategy, (s.selected || []).join(" "), (s.candidates || []).join(" "), s.reason];
    });
    return { header, rows };
  }

  /** Fetch the stored rounds and save them as `<name>-rounds.csv`; returns a line for the action note. */
  async function saveRoundsCsv(base, name) {
    const res = await FH.api("GET", `${base}/rounds`);
    if (!res.ok) return `export failed: ${res.data ? res.data.detail : res.status}`;
    const { header, rows } = roundsTable(res.data.items);
    FH.download(`${FH.slug(name)}-rounds.csv`, FH.csv(header, rows));
    return `saved ${rows.length} rounds as CSV`;
  }

  return { roundsTable, saveRoundsCsv };
})();
