/* New-experiment form: presets, a spec read from the generated fields, server validation shown per field
   (as the fields change and on submit: both are the server's words, from POST /ui/validate and the API's 422),
   model and dataset chosen from the catalog, fields that do not apply hidden (app/form_rules.py), sparsity
   sweeps (a study, POST /api/v1/studies: the dense baseline and each chosen sparsity as its variants), and
   studies of any variants (a table of named overrides of this spec, seeds, a baseline and optional targets;
   the server's 422s shown in the table's row of the variant they name). */
"use strict";

(() => {
  const { el, api, pageData } = FH;
  const form = document.getElementById("new-form");
  const presetSel = document.getElementById("preset");
  const presetAbout = document.getElementById("preset-about");
  const formError = document.getElementById("form-error");
  const submitBtn = document.getElementById("submit");
  const submitNote = document.getElementById("submit-note");
  const nameInput = document.getElementById("f-name");
  const sweepOn = document.getElementById("sweep-on");
  const sweepValues = document.getElementById("sweep-values");
  const studyOn = document.getElementById("study-on");
  const studyBlock = document.getElementById("study-block");
  const studyRows = document.querySelector("#study-variants tbody");
  const studyErr = document.getElementById("err-study");
  const studySeeds = document.getElementById("study-seeds");
  const boot = pageData("form-data") || {};
  const rules = boot.rules || { applies: {}, model_families: {}, dataset_tasks: {}, local_suffixes: [] };
  const pickModel = document.getElementById("pick-model");
  const pickDataset = document.getElementById("pick-dataset");
  const pickTask = document.getElementById("pick-task");
  const taskChoice = document.getElementById("task-choice");
  const fieldNodes = [...form.querySelectorAll(".field[data-field]")];
  const fieldNames = fieldNodes.map((n) => n.dataset.field);
  const defaults = readFields();  // the spec's defaults: what a field that does not apply sends
  let presets = [];
  let catalogLoaded = false;

  // --- reading and writing the fields --------------------------------------------------------

  function control(name) { return document.getElementById(`f-${name}`); }

  function readValue(name) {
    const c = control(name);
    const type = c.dataset.type;
    if (type === "array") return [...c.querySelectorAll("input:checked")].map((i) => i.value);
    if (type === "boolean") return c.checked;
    const raw = c.value.trim();
    const nullable = c.dataset.nullable === "true";
    if (c.tagName === "SELECT") return raw;
    if (raw === "") return nullable ? null : (type === "string" ? "" : null);
    if (type === "integer" || type === "number") return Number(raw);
    return raw;
  }

  function writeValue(name, value) {
    const c = control(name);
    if (!c) return;
    const type = c.dataset.type;
    if (type === "array") {
      const want = new Set(value || []);
      for (const box of c.querySelectorAll("input")) box.checked = want.has(box.value);
    } else if (type === "boolean") {
      c.checked = Boolean(value);
    } else {
      c.value = value === null || value === undefined ? "" : String(value);
    }
  }

  function readFields() {
    const spec = {};
    for (const name of fieldNames) spec[name] = readValue(name);
    return spec;
  }

  /** The spec to send: a field that does not apply (hidden) sends its default, which the run ignores. */
  function readSpec() {
    const spec = {};
    for (const name of fieldNames) spec[name] = applies(name) ? readValue(name) : defaults[name];
    return spec;
  }

  function fill(spec) {
    for (const name of fieldNames) writeValue(name, name in spec ? spec[name] : defaults[name]);
    pickTask.value = spec.target_field ? "generation" : "classification";
    clearErrors();
    syncPickers();
    applyVisibility();
  }

  // --- fields that apply (the rules: app/form_rules.py) -------------------------------------------

  function facts() {
    const dataset = String(readValue("dataset") || "");
    let source = "other";
    if (dataset === "local") source = "local";
    else if (dataset.startsWith("hub:")) source = "hub";
    else if (dataset in rules.dataset_tasks) source = "builtin";
    const task = source === "builtin" ? rules.dataset_tasks[dataset] : pickTask.value;
    const family = rules.model_families[String(readValue("model") || "")] || "unknown";
    return { source, task, family };
  }

  function applies(name, known) {
    const rule = rules.applies[name];
    if (!rule) return true;
    const f = known || facts();
    return Object.entries(rule).every(([key, allowed]) => allowed.includes(String(key in f ? f[key] : readValue(key))));
  }

  function applyVisibility() {
    const f = facts();
    taskChoice.hidden = f.source === "builtin";
    for (const name of Object.keys(rules.applies)) {
      const wrap = form.querySelector(`.field[data-field="${name}"]`);
      if (!wrap) continue;
      const on = applies(name, f);
      wrap.hidden = !on;
      for (const c of wrap.querySelectorAll("input, select")) c.disabled = !on;
    }
  }

  // --- model and dataset from the catalog ---------------------------------------------------------

  // choices that are not catalog names start with "=" (no model or dataset name does)
  function offer(picker, value) {
    return [...picker.options].some((o) => o.value === value);
  }

  /** The choosers follow the spec's fields (a preset, a copied run); the text input shows when typing is the choice. */
  function syncPickers() {
    if (!catalogLoaded) return;
    const model = String(readValue("model") || "");
    pickModel.value = !model.startsWith("=") && offer(pickModel, model) ? model : model.startsWith("hub:") ? "=hub" : "=folder";
    control("model").hidden = !pickModel.value.startsWith("=");
    const dataset = String(readValue("dataset") || "");
    pickDataset.value = dataset === "local" ? "=local" : dataset.startsWith("hub:") ? "=hub"
      : !dataset.startsWith("=") && offer(pickDataset, dataset) ? dataset : "=other";
    control("dataset").hidden = !["=hub", "=other"].includes(pickDataset.value);
  }

  function picked(picker, name, typed) {
    const input = control(name);
    const v = picker.value;
    if (v === "=hub") {
      if (!input.value.startsWith("hub:")) input.value = "hub:";
    } else if (v === "=local") {
      input.value = "local";
    } else if (v.startsWith("=")) {
      if (input.value === "local" || input.value.startsWith("hub:") || offer(picker, input.value)) input.value = "";
    } else {
      input.value = v;
    }
    input.hidden = !typed.includes(v);
    applyVisibility();
    if (!input.hidden) input.focus();
    else if (v === "=local") control("data_path").focus();
  }

  // --- errors ----------------------------------------------------------------------------------

  function clearErrors() {
    formError.hidden = true;
    formError.textContent = "";
    for (const box of form.querySelectorAll(".field-error")) { box.hidden = true; box.textContent = ""; }
    for (const f of form.querySelectorAll(".field.invalid")) f.classList.remove("invalid");
    for (const c of form.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
    for (const r of studyRows.querySelectorAll("tr.invalid")) r.classList.remove("invalid");
  }

  function fieldError(name, message) {
    const box = document.getElementById(`err-${name}`);
    if (!box || box.closest(".field[hidden]")) return false;  // a field that does not apply: said on top
    box.textContent = box.textContent ? `${box.textContent}; ${message}` : message;
    box.hidden = false;
    const wrap = box.closest(".field");
    if (wrap) wrap.classList.add("invalid");
    const c = control(name) || document.getElementById(name);
    if (c) c.setAttribute("aria-invalid", "true");
    return true;
  }

  function formLevel(message) {
    formError.hidden = false;
    formError.append(el("div", { text: message }));
  }

  /** Put each 422 item next to its field; spec-wide problems go on top and mark the fields they name.
      ``focus``: move to the first bad field (on submit; not while the user types). */
  function showErrors(detail, context, focus = true) {
    const items = Array.isArray(detail) ? detail : [{ loc: [], msg: String(detail || "request failed") }];
    const prefix = context ? `${context}: ` : "";
    for (const item of items) {
      const loc = (item.loc || []).filter((p) => p !== "body");
      const msg = String(item.msg || "invalid").replace(/^Value error, /, "");
      let name = null;
      if (loc[0] === "name") name = "name";
      else if ((loc[0] === "spec" || loc[0] === "overrides" || loc[0] === "preset") && loc.length > 1) name = String(loc[1]);
      if (name === "sparsity" && context) name = "sweep-values";
      if (name && fieldError(name, prefix + msg)) continue;
      formLevel(prefix + (loc.length ? `${loc.join(".")}: ` : "") + msg);
      for (const f of fieldNames) {
        if (new RegExp(`\\b${f}\\b`).test(msg)) fieldError(f, msg);
      }
    }
    const bad = [...form.querySelectorAll(".field.invalid")];  // form order, not the server's
    if (bad.length) {
      const names = bad.map((f) => f.dataset.field || f.querySelector("input").id);
      formLevel(`${bad.length} field${bad.length === 1 ? " needs" : "s need"} attention: ${names.join(", ")}`);
      const focusable = bad[0].querySelector("input:not([hidden]), select:not([hidden])");
      if (focus && focusable) focusable.focus();
    } else if (focus) {
      formError.focus();
    }
  }

  // --- presets and asset hints -------------------------------------------------------------------

  async function loadPresets() {
    const res = await api("GET", "/api/v1/presets");
    if (!res.ok) return;
    presets = res.data;
    for (const p of presets) presetSel.append(el("option", { value: p.name, text: `${p.name} – ${p.about}` }));
    if (boot.preset && presets.some((p) => p.name === boot.preset)) {
      presetSel.value = boot.preset;
      applyPreset();
    }
  }

  function applyPreset() {
    const p = presets.find((x) => x.name === presetSel.value);
    fill(p ? p.spec : defaults);
    presetAbout.textContent = p ? p.about : "Fills every field below; change any of them before submitting.";
    scheduleAdvice();
  }

  function catalogOption(a) {
    return el("option", { value: a.name, title: a.detail, text: a.usable ? a.name : `${a.name} (not usable here)` });
  }

  async function loadAssets() {
    const res = await api("GET", "/api/v1/assets");
    if (!res.ok) return;  // no catalog: the model and dataset stay typed fields
    const isFile = (name) => rules.local_suffixes.some((s) => name.toLowerCase().endsWith(s));
    pickModel.replaceChildren(
      el("optgroup", { label: "offline models" }, ...res.data.models.map(catalogOption)),
      el("option", { value: "=hub", text: "a model hub id (hub:<id>)…" }),
      el("option", { value: "=folder", text: "a model folder in the model root…" }));
    pickDataset.replaceChildren(
      el("optgroup", { label: "built-in datasets" }, ...res.data.datasets.filter((a) => !isFile(a.name)).map(catalogOption)),
      el("option", { value: "=local", text: "a local file in the data root (data_path)…" }),
      el("option", { value: "=hub", text: "a hub dataset id (hub:<id>)…" }),
      el("option", { value: "=other", text: "another dataset name…" }));
    const files = document.getElementById("dl-data_path");
    files.replaceChildren(...res.data.datasets.filter((a) => isFile(a.name)).map((a) => el("option", { value: a.name })));
    catalogLoaded = true;
    pickModel.hidden = false;
    pickDataset.hidden = false;
    syncPickers();
    applyVisibility();
  }

  // --- advice from measured results -------------------------------------------------------------------

  /* The server's warnings for the combination chosen (benchmark rows like it that did not learn,
     app/services/advice.py), shown beside the submit button as the fields change; they never block submitting. */
  const adviceBox = document.getElementById("advice");
  let adviceSeq = 0;
  let adviceTimer = null;

  function adviceSpecs() {
    const spec = readSpec();
    if (!sweepOn.checked) return [spec];
    try { return sweepMembers().map((s) => ({ ...spec, sparsity: s })); } catch (_) { return [spec]; }
  }

  function showAdvice(warnings) {
    const seen = new Set();
    const lines = [];
    for (const w of warnings) {
      if (seen.has(w.message)) continue;
      seen.add(w.message);
      const p = el("p", { class: "advice-line" }, w.message);
      if (w.link) p.append(" ", el("a", { href: w.link, text: "See the table" }), ".");
      lines.push(p);
    }
    adviceBox.replaceChildren(...lines);
    adviceBox.hidden = !lines.length;
  }

  /* The same call also gives the server's 422 for the fields as they stand: shown next to the fields as the
     user types, in the words the API's 422 uses on submit (app/services/submit_checks.py). */
  async function checkAdvice() {
    const seq = ++adviceSeq;
    const warnings = [];
    let problems = null;
    const members = adviceSpecs();
    for (const spec of members) {
      const res = await api("POST", "/ui/validate", { spec }, { quiet: true });
      if (seq !== adviceSeq) return;  // a newer check is under way
      if (res.ok && res.data && Array.isArray(res.data.warnings)) warnings.push(...res.data.warnings);
      if (res.status === 422 && res.data && !problems) {
        problems = { detail: res.data.detail, context: members.length > 1 ? `sparsity ${spec.sparsity}` : "" };
      }
    }
    showAdvice(warnings);
    clearErrors();
    if (problems) showErrors(problems.detail, problems.context, false);
  }

  function scheduleAdvice() {
    clearTimeout(adviceTimer);
    adviceTimer = setTimeout(checkAdvice, 300);
  }

  // --- studies: variants x seeds -------------------------------------------------------------------------

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

  function rowError(row, message) {
    const box = row.querySelector(".v-error");
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

  function readTargets() {
    const targets = [];
    const within = document.getElementById("study-within").value.trim();
    const uplink = document.getElementById("study-uplink").value.trim();
    if (within !== "") targets.push({ metric: "accuracy_vs_baseline", within: Number(within) });
    if (uplink !== "") targets.push({ metric: "uplink_advantage", at_least: Number(uplink) });
    return targets;
  }

  function rowOf(variant) {
    return [...studyRows.children].find((r) => r.querySelector(".v-name").value.trim() === variant) || null;
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
    if (loc[0] === "targets") { fieldError("study-targets", `${loc.join(".")}: ${msg}`); return; }
    if (loc[0] === "variants" || loc[0] === "baseline") { studyError(`${loc[0]}: ${msg}`); return; }
    showErrors(...studyErrorItem(item));
  }

  async function submitStudy(spec, name) {
    const { seed, ...base } = spec;  // a study's seeds are its own list
    const { variants, baseline, ok } = readVariants();
    let seeds = [];
    let good = ok;
    try { seeds = readSeeds(); } catch (err) { fieldError("study-seeds", err.message); good = false; }
    if (!good) { formLevel("The study was not submitted: see the variants table."); focusStudyError(); return; }
    const body = { name: name || `${spec.model}-${spec.dataset}`, base: { preset: null, overrides: base },
                   variants, seeds, baseline: baseline || Object.keys(variants)[0], targets: readTargets() };
    const res = await api("POST", "/api/v1/studies", body);
    const study = res.status === 201 ? res.data : res.status === 503 && res.data ? res.data.study : null;
    if (study) { window.location.href = `/studies/${study.id}`; return; }
    const detail = res.data ? res.data.detail : `server answered ${res.status}`;
    if (!Array.isArray(detail)) { showErrors(detail); return; }
    for (const item of detail) showStudyError(item);
    if (studyBlock.querySelector("tr.invalid, .field-error:not([hidden])")) {
      formLevel("The study was not created: see the variants table.");
      focusStudyError();
    }
  }

  function focusStudyError() {
    const bad = studyRows.querySelector("tr.invalid .v-overrides") || (studyErr.hidden ? null : studyRows.querySelector("input"))
      || studyBlock.querySelector(".field.invalid input");
    if (bad) bad.focus();
  }

  function showStudy() {
    studyBlock.hidden = !studyOn.checked;
    if (studyOn.checked && sweepOn.checked) sweepOn.checked = false;
  }

  // --- submit ------------------------------------------------------------------------------------

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

  function go(exp) { window.location.href = `/experiments/${exp.id}`; }

  async function submitOne(body) {
    const res = await api("POST", "/api/v1/experiments", body);
    if (res.status === 201) return res.data;
    if (res.status === 503 && res.data && res.data.experiment) return res.data.experiment;  // recorded, queued
    showErrors(res.data ? res.data.detail : `server answered ${res.status}`);
    return null;
  }

  /** A study's 422 item as the form's own: a variant's or the base's field is the spec's field. */
  function studyErrorItem(item) {
    const loc = (item.loc || []).filter((p) => p !== "body");
    if (loc[0] === "variants" && loc.length > 2) return [{ ...item, loc: ["spec", ...loc.slice(2)] }, `variant ${loc[1]}`];
    if (loc[0] === "base" && loc[1] === "overrides") return [{ ...item, loc: ["spec", ...loc.slice(2)] }, ""];
    return [item, ""];
  }

  async function submitSweep(spec, name) {
    let values;
    try { values = sweepMembers(); } catch (err) { fieldError("sweep-values", err.message); sweepValues.focus(); return; }
    const { seed, ...base } = spec;  // a study's seeds are its own list
    const variants = Object.fromEntries(values.map((s) => [`s=${s}`, { sparsity: s }]));
    const body = { name: name || `${spec.model}-${spec.dataset}`, base: { preset: null, overrides: base },
                   variants, seeds: [seed ?? 0], baseline: "s=0" };
    const res = await api("POST", "/api/v1/studies", body);
    const study = res.status === 201 ? res.data : res.status === 503 && res.data ? res.data.study : null;
    if (!study) {
      const detail = res.data ? res.data.detail : `server answered ${res.status}`;
      if (!Array.isArray(detail)) { showErrors(detail); return; }
      for (const item of detail) showErrors(...studyErrorItem(item));
      return;
    }
    go(study.runs.find((r) => r.variant !== study.definition.baseline) || study.runs[0]);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearTimeout(adviceTimer);
    adviceSeq += 1;  // a check of the fields still under way must not redraw over the submit's answer
    clearErrors();
    submitBtn.disabled = true;
    submitNote.textContent = "submitting…";
    try {
      const spec = readSpec();
      const name = nameInput.value.trim() || (presetSel.value || null);
      if (studyOn.checked) {
        await submitStudy(spec, name);
      } else if (sweepOn.checked) {
        await submitSweep(spec, name);
      } else {
        const body = { spec };
        if (name) body.name = name;
        const exp = await submitOne(body);
        if (exp) go(exp);
      }
    } finally {
      submitBtn.disabled = false;
      if (!formError.hidden || form.querySelector(".field.invalid")) submitNote.textContent = "not submitted: see the errors";
      else submitNote.textContent = "";
    }
  });

  presetSel.addEventListener("change", applyPreset);
  studyOn.addEventListener("change", showStudy);
  sweepOn.addEventListener("change", () => { if (sweepOn.checked && studyOn.checked) { studyOn.checked = false; showStudy(); } });
  document.getElementById("study-add").addEventListener("click", () => {
    variantRow("", "", !studyRows.children.length).querySelector(".v-name").focus();
  });
  variantRow("dense", "sparsity=0", true);
  variantRow("pruned", "sparsity=0.9", false);
  pickModel.addEventListener("change", () => picked(pickModel, "model", ["=hub", "=folder"]));
  pickDataset.addEventListener("change", () => picked(pickDataset, "dataset", ["=hub", "=other"]));
  pickTask.addEventListener("change", () => {
    if (pickTask.value === "generation" && !readValue("target_field")) writeValue("target_field", "target");
    applyVisibility();
  });
  form.addEventListener("input", () => { applyVisibility(); scheduleAdvice(); });
  form.addEventListener("change", () => { applyVisibility(); scheduleAdvice(); });
  if (boot.start_spec) fill(boot.start_spec);
  else applyVisibility();
  scheduleAdvice();
  loadPresets();
  loadAssets();
})();
