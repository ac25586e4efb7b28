/* New-experiment form: presets, a spec read from the generated fields, server validation shown per field
   (as the fields change and on submit: both are the server's words, from POST /ui/validate and the API's 422),
   model and dataset chosen from the catalog, fields that do not apply hidden (app/form_rules.py), and the
   submit. A sparsity sweep or a study of variants is submitted by new-study.js (FHStudyForm, loaded first),
   which gets from here only the functions it is handed below. */
"use strict";

(() => {
  const { el, api, pageData, byId } = FH;
  const form = byId("new-form");
  const presetSel = byId("preset");
  const presetAbout = byId("preset-about");
  const formError = byId("form-error");
  const submitBtn = byId("submit");
  const submitNote = byId("submit-note");
  const nameInput = byId("f-name");
  const boot = pageData("form-data") || {};
  const rules = boot.rules || { applies: {}, model_families: {}, dataset_tasks: {}, local_suffixes: [] };
  const pickModel = byId("pick-model");
  const pickDataset = byId("pick-dataset");
  const pickTask = byId("pick-task");
  const taskChoice = byId("task-choice");
  const fieldNames = [...form.querySelectorAll(".field[data-field]")].map((n) => n.dataset.field);
  const defaults = readFields();  // the spec's defaults: what a field that does not apply sends
  const studyForm = FHStudyForm({ fieldError, formLevel, showErrors, scheduleAdvice });
  let presets = [];
  let catalogLoaded = false;

  // --- reading and writing the fields --------------------------------------------------------

  function control(name) { return byId(`f-${name}`); }

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
    studyForm.clearRowMarks();
  }

  function fieldError(name, message) {
    const box = byId(`err-${name}`);
    if (!box || box.closest(".field[hidden]")) return false;  // a field that does not apply: said on top
    box.textContent = box.textContent ? `${box.textContent}; ${message}` : message;
    box.hidden = false;
    const wrap = box.closest(".field");
    if (wrap) wrap.classList.add("invalid");
    const c = control(name) || byId(name);
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
    const files = byId("dl-data_path");
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
  const adviceBox = byId("advice");
  let adviceSeq = 0;
  let adviceTimer = null;

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
    const members = studyForm.adviceSpecs(readSpec());
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

  // --- submit ------------------------------------------------------------------------------------

  function go(exp) { window.location.href = `/experiments/${exp.id}`; }

  async function submitOne(body) {
    const res = await api("POST", "/api/v1/experiments", body);
    if (res.status === 201) return res.data;
    if (res.status === 503 && res.data && res.data.experiment) return res.data.experiment;  // recorded, queued
    showErrors(res.data ? res.data.detail : `server answered ${res.status}`);
    return null;
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
      const chosen = studyForm.chosen();
      if (chosen === "study") {
        await studyForm.submitStudy(spec, name);
      } else if (chosen === "sweep") {
        const run = await studyForm.submitSweep(spec, name);
        if (run) go(run);
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
