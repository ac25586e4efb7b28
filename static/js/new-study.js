/* The new-experiment form's two ways to submit a study (POST /api/v1/studies) instead of one experiment: the
   Sweep option (the dense baseline and each chosen sparsity as its variants, the form's seed) and the Study
   option (a table of named overrides of the form's spec, seeds, a baseline, and a table of targets: any metric a
   study can judge, with the bounds it takes (the server's list: app/web/form.py TARGET_METRICS); the server's 422s
   shown in the row of the variant or target they name). The form (new.js) calls FHStudyForm once with the
   functions of its own it lends (field errors, the top error box, the advice check) and uses only what it returns. */
"use strict";

const FHStudyForm = ({ fieldError, formLevel, showErrors, scheduleAdvice }) => {
  const { el, api, byId } = FH;
  const sweepOn = byId("sweep-on");
  const sweepValues = byId("sweep-values");
  const studyOn = byId("study-on");
  const studyBlock = byId("study-block");
  const studyRows = document.querySelector("#study-variants tbody");
  const studyErr = byId("err-study");
  const studySeeds = byId("study-seeds");
  const targetRows = document.querySelector("#study-targets tbody");
  const METRICS = (FH.pageData("form-data") || {}).targets || [];
  const metricOf = (name) => METRICS.find((m) => m.metric === name) || METRICS[0];
  const BOUND_WORDS = { within: "within", at_least: "at least", at_most: "at most" };
  let submittedTargets = [];  // the rows of the targets last sent, in order: a 422's targets[i] is row i

  // --- the variants table ------------------------------------------------------------------------------

  /** One row of the variants table: baseline radio, name, overrides, remove; its own error line. */
  function variantRow(name, overrides, baseline) {
    const n = studyRows.children.length;
    const nameInput = el("input", { type: "text", class: "v-name", value: name, maxlength: 100, autocomplete: "off",
      "aria-label": `name of variant ${n + 1}`, spellcheck: "false" });
    const overInput = el("input", { type: "text", class: "v-overrides", value: overrides, autocomplete: "off",
      "aria-label": `overrides of variant ${n + 1} (field=value, comma-separated)`, spellcheck: "false" });
    const radio = el("input", { type: "radio", name: "study-baseline", class: "v-base", checked: baseline,
      "aria-label": `variant ${n + 1} is the baseline` });
    const remove = el("button", { type: "button", class: "v-remove", text: "Remove", "aria-label": `remove variant ${n + 1}` });
    const err = el("div", { class: "field-error v-error", role: "alert", hidden: true });
    const row = el("tr", {}, el("td", { class: "v-base" }, radio), el("td", {}, nameInput),
      el("td", {}, overInput, err), el("td", {}, remove));
    remove.addEventListener("click", () => {
      row.remove();
      if (radio.checked && studyRows.firstElementChild) studyRows.querySelector("input.v-base").checked = true;
      scheduleAdvice();
    });
    studyRows.append(row);
    return row;
  }

  /** "a=1, b=[x, y], c=drop" -> {a: 1, b: ["x", "y"]... }: commas inside brackets or quotes do not split. */
  function parseOverrides(text) {
    const parts = [];
    let depth = 0, quote = null, cur = "";
    for (const ch of text) {
      if (quote) { if (ch === quote) quote = null; }
      else if (ch === '"' || ch === "'") quote = ch;
      else if (ch === "[" || ch === "{") depth += 1;
      else if (ch === "]" || ch === "}") depth -= 1;
      else if (ch === "," && depth === 0) { parts.push(cur); cur = ""; continue; }
      cur += ch;
    }
    parts.push(cur);
    const out = {};
    for (const raw of parts.map((p) => p.trim()).filter(Boolean)) {
      const eq = raw.indexOf("=");
      if (eq <= 0) throw new Error(`"${raw}" is not field=value`);
      const field = raw.slice(0, eq).trim();
      const text = raw.slice(eq + 1).trim();
      if (field in out) throw new Error(`${field} is set twice`);
      out[field] = jsonOrText(text);
    }
    return out;
  }

  function jsonOrText(text) {
    if (text === "") return "";
    try { return JSON.parse(text); } catch (_) { /* not JSON */ }
    if (/^'.*'$/.test(text)) return text.slice(1, -1);
    if (/^\[.*\]$/.test(text)) return text.slice(1, -1).split(",").map((v) => jsonOrText(v.trim())).filter((v) => v !== "");
    return text;
  }

  // --- the targets table -----------------------------------------------------------------------------

  /** What the value means for this metric and bound: "points below the baseline", "points", "×". */
  function unitText(m, bound) {
    if (bound === "within") return "points below the baseline";
    if (m.unit === "points" && m.bounds.includes("within")) return "points (variant − baseline)";
    return m.unit;
  }

  /** One row of the targets table: metric, bound, value with its unit, remove; its own error line. */
  function targetRow(metric, bound, value) {
    const n = targetRows.children.length + 1;
    const pick = el("select", { class: "t-metric", "aria-label": `metric of target ${n}` },
      ...METRICS.map((m) => el("option", { value: m.metric, text: m.label, title: m.help })));
    const boundSel = el("select", { class: "t-bound", "aria-label": `bound of target ${n}` });
    const input = el("input", { type: "number", class: "t-value", step: "any", "aria-label": `value of target ${n}` });
    const unit = el("span", { class: "t-unit muted" });
    const help = el("small", { class: "help t-help" });
    const err = el("div", { class: "field-error t-error", role: "alert", hidden: true });
    const remove = el("button", { type: "button", class: "t-remove", text: "Remove", "aria-label": `remove target ${n}` });
    const row = el("tr", { class: "t-row" }, el("td", {}, pick, help), el("td", {}, boundSel),
      el("td", {}, input, " ", unit, err), el("td", {}, remove));
    function showMetric(wanted) {
      const m = metricOf(pick.value);
      boundSel.replaceChildren(...m.bounds.map((b) => el("option", { value: b, text: BOUND_WORDS[b] })));
      boundSel.value = m.bounds.includes(wanted) ? wanted : m.bounds[0];
      unit.textContent = unitText(m, boundSel.value);
      help.textContent = m.help;
    }
    pick.value = metricOf(metric).metric;
    showMetric(bound);
    input.value = value === undefined ? String(metricOf(pick.value).default) : String(value);
    pick.addEventListener("change", () => {
      showMetric(boundSel.value);
      input.value = String(metricOf(pick.value).default);
    });
    boundSel.addEventListener("change", () => { unit.textContent = unitText(metricOf(pick.value), boundSel.value); });
    remove.addEventListener("click", () => { row.remove(); scheduleAdvice(); });
    targetRows.append(row);
    return row;
  }

  /** The table as the study's targets; a value that is not a number is marked here, the rest is the server's. */
  function readTargets() {
    const targets = [];
    let ok = true;
    for (const row of targetRows.children) {
      const raw = row.querySelector(".t-value").value.trim();
      const value = Number(raw);
      if (raw === "" || !Number.isFinite(value)) { rowError(row, "give the target's value (a number)"); ok = false; }
      targets.push({ metric: row.querySelector(".t-metric").value, [row.querySelector(".t-bound").value]: value });
    }
    return { targets, rows: [...targetRows.children], ok };
  }

  function rowError(row, message) {
    const box = row.querySelector(".v-error, .t-error");
    box.textContent = box.textContent ? `${box.textContent}; ${message}` : message;
    box.hidden = false;
    row.classList.add("invalid");
  }

  function studyError(message) {
    studyErr.textContent = studyErr.textContent ? `${studyErr.textContent}; ${message}` : message;
    studyErr.hidden = false;
  }

  /** The table as the study's variants and baseline; problems the server need not see are marked here. */
  function readVariants() {
    const variants = {};
    let baseline = null, ok = true;
    for (const row of studyRows.children) {
      const name = row.querySelector(".v-name").value.trim();
      if (!name) { rowError(row, "give the variant a name"); ok = false; continue; }
      if (name in variants) { rowError(row, `another variant is named "${name}"`); ok = false; continue; }
      try { variants[name] = parseOverrides(row.querySelector(".v-overrides").value); } catch (err) {
        rowError(row, `variant "${name}": ${err.message} (write field=value pairs separated by commas)`);
        ok = false;
      }
      if (row.querySelector(".v-base").checked) baseline = name;
    }
    if (!studyRows.children.length) { studyError("add at least one variant"); ok = false; }
    return { variants, baseline, ok };
  }

  function readSeeds() {
    const raw = studySeeds.value.split(",").map((x) => x.trim()).filter(Boolean);
    const seeds = raw.map(Number);
    const bad = raw.filter((x, i) => !Number.isInteger(seeds[i]) || seeds[i] < 0);
    if (bad.length || !raw.length) throw new Error(bad.length ? `not a whole number >= 0: ${bad.join(", ")}` : "give at least one seed");
    return seeds;
  }

  // --- the server's answer --------------------------------------------------------------------------------

  function rowOf(variant) {
    return [...studyRows.children].find((r) => r.querySelector(".v-name").value.trim() === variant) || null;
  }

  /** A study's 422 item as the form's own: a variant's or the base's field is the spec's field. */
  function studyErrorItem(item) {
    const loc = (item.loc || []).filter((p) => p !== "body");
    if (loc[0] === "variants" && loc.length > 2) return [[{ ...item, loc: ["spec", ...loc.slice(2)] }], `variant ${loc[1]}`];
    if (loc[0] === "base" && loc[1] === "overrides") return [[{ ...item, loc: ["spec", ...loc.slice(2)] }], ""];
    return [[item], ""];
  }

  /** A study's 422 item where it belongs: a variant's row, the seeds, the targets, the table, or the form's field. */
  function showStudyError(item) {
    const loc = (item.loc || []).filter((p) => p !== "body");
    const msg = String(item.msg || "invalid").replace(/^variant '[^']*': /, "").replace(/^Value error, /, "");
    if (loc[0] === "variants" && loc.length > 1) {
      const row = rowOf(String(loc[1]));
      const where = loc.length > 2 ? `variant "${loc[1]}", field ${loc.slice(2).join(".")}` : `variant "${loc[1]}"`;
      if (row) { rowError(row, `${where}: ${msg}`); return; }
      studyError(`${where}: ${msg}`);
      return;
    }
    if (loc[0] === "seeds") { fieldError("study-seeds", msg); return; }
    if (loc[0] === "targets" && Number.isInteger(loc[1]) && submittedTargets[loc[1]]) {
      const row = submittedTargets[loc[1]];
      const what = metricOf(row.querySelector(".t-metric").value).label;
      rowError(row, `target ${loc[1] + 1} (${what})${loc.length > 2 ? `, ${loc.slice(2).join(".")}` : ""}: ${msg}`);
      return;
    }
    if (loc[0] === "targets") { fieldError("study-targets", `${loc.join(".")}: ${msg}`); return; }
    if (loc[0] === "variants" || loc[0] === "baseline") { studyError(`${loc[0]}: ${msg}`); return; }
    showErrors(...studyErrorItem(item));
  }

  function focusStudyError() {
    const bad = studyRows.querySelector("tr.invalid .v-overrides") || (studyErr.hidden ? null : studyRows.querySelector("input"))
      || targetRows.querySelector("tr.invalid .t-value") || studyBlock.querySelector(".field.invalid input");
    if (bad) bad.focus();
  }

  /** "see the variants table", "see the targets table" or both: where the marks are. */
  function whereToLook() {
    const variants = studyRows.querySelector("tr.invalid") || !studyErr.hidden;
    const targets = targetRows.querySelector("tr.invalid") || !byId("err-study-targets").hidden;
    const seeds = !byId("err-study-seeds").hidden;
    const places = [variants && "the variants table", targets && "the targets table", seeds && "the seeds"].filter(Boolean);
    return `see ${places.length ? places.join(" and ") : "the study's fields"}`;
  }

  // --- submitting -------------------------------------------------------------------------------------

  /** The study's page on success; otherwise each problem in its row or field. */
  async function submitStudy(spec, name) {
    const { seed, ...base } = spec;  // a study's seeds are its own list
    const { variants, baseline, ok } = readVariants();
    const { targets, rows, ok: targetsOk } = readTargets();
    let seeds = [];
    let good = ok && targetsOk;
    try { seeds = readSeeds(); } catch (err) { fieldError("study-seeds", err.message); good = false; }
    if (!good) { formLevel(`The study was not submitted: ${whereToLook()}.`); focusStudyError(); return; }
    submittedTargets = rows;
    const body = { name: name || `${spec.model}-${spec.dataset}`, base: { preset: null, overrides: base },
                   variants, seeds, baseline: baseline || Object.keys(variants)[0], targets };
    const res = await api("POST", "/api/v1/studies", body);
    const study = res.status === 201 ? res.data : res.status === 503 && res.data ? res.data.study : null;
    if (study) { window.location.href = `/studies/${study.id}`; return; }
    const detail = res.data ? res.data.detail : `server answered ${res.status}`;
    if (!Array.isArray(detail)) { showErrors(detail); return; }
    for (const item of detail) showStudyError(item);
    if (studyBlock.querySelector("tr.invalid, .field-error:not([hidden])")) {
      formLevel(`The study was not created: ${whereToLook()}.`);
      focusStudyError();
    }
  }

  /** The sweep's sparsities: 0 (the dense baseline) and each listed one, sorted; throws on a bad list. */
  function sweepMembers() {
    const raw = sweepValues.value.split(",").map((s) => s.trim()).filter(Boolean);
    const values = [0];
    for (const r of raw) {
      const v = Number(r);
      if (!Number.isFinite(v)) throw new Error(`"${r}" is not a number`);
      if (!values.includes(v)) values.push(v);
    }
    if (values.length < 2) throw new Error("give at least one sparsity besides the dense baseline");
    return values.sort((a, b) => a - b);
  }

  /** The sweep as a study; resolves to the run whose page to open (a pruned one if any), or null after a 422. */
  async function submitSweep(spec, name) {
    let values;
    try { values = sweepMembers(); } catch (err) { fieldError("sweep-values", err.message); sweepValues.focus(); return null; }
    const { seed, ...base } = spec;  // a study's seeds are its own list
    const variants = Object.fromEntries(values.map((s) => [`s=${s}`, { sparsity: s }]));
    const body = { name: name || `${spec.model}-${spec.dataset}`, base: { preset: null, overrides: base },
                   variants, seeds: [seed ?? 0], baseline: "s=0" };
    const res = await api("POST", "/api/v1/studies", body);
    const study = res.status === 201 ? res.data : res.status === 503 && res.data ? res.data.study : null;
    if (!study) {
      const detail = res.data ? res.data.detail : `server answered ${res.status}`;
      if (!Array.isArray(detail)) { showErrors(detail); return null; }
      for (const item of detail) showErrors(...studyErrorItem(item));
      return null;
    }
    return study.runs.find((r) => r.variant !== study.definition.baseline) || study.runs[0];
  }

  // --- the two options: at most one on ----------------------------------------------------------------

  function showStudy() {
    studyBlock.hidden = !studyOn.checked;
    if (studyOn.checked && sweepOn.checked) sweepOn.checked = false;
  }

  studyOn.addEventListener("change", showStudy);
  sweepOn.addEventListener("change", () => { if (sweepOn.checked && studyOn.checked) { studyOn.checked = false; showStudy(); } });
  byId("study-add").addEventListener("click", () => {
    variantRow("", "", !studyRows.children.length).querySelector(".v-name").focus();
  });
  byId("target-add").addEventListener("click", () => {
    const used = new Set([...targetRows.querySelectorAll(".t-metric")].map((p) => p.value));
    const next = METRICS.find((m) => !used.has(m.metric)) || METRICS[0];
    targetRow(next.metric).querySelector(".t-value").focus();
  });
  variantRow("dense", "sparsity=0", true);
  variantRow("pruned", "sparsity=0.9", false);

  return Object.freeze({
    /** "study", "sweep", or null (the form submits one experiment). */
    chosen: () => (studyOn.checked ? "study" : sweepOn.checked ? "sweep" : null),
    /** The specs the advice check looks at: each member of a sweep (when its list reads), else the spec itself. */
    adviceSpecs(spec) {
      if (!sweepOn.checked) return [spec];
      try { return sweepMembers().map((s) => ({ ...spec, sparsity: s })); } catch (_) { return [spec]; }
    },
    /** Unmark the tables' rows (their error lines are the form's .field-error boxes, cleared with the rest). */
    clearRowMarks() { for (const r of studyBlock.querySelectorAll("tr.invalid")) r.classList.remove("invalid"); },
    submitStudy,
    submitSweep,
  });
};
