/* New-experiment form: presets, a spec read from the generated fields, server validation shown per field,
   and sparsity sweeps (dense baseline + chosen sparsities as sibling experiments sharing a sweep tag). */
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
  const boot = pageData("form-data") || {};
  const fieldNodes = [...form.querySelectorAll(".field[data-field]")];
  const fieldNames = fieldNodes.map((n) => n.dataset.field);
  const defaults = readSpec();
  let presets = [];

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

  function readSpec() {
    const spec = {};
    for (const name of fieldNames) spec[name] = readValue(name);
    return spec;
  }

  function fill(spec) {
    for (const name of fieldNames) writeValue(name, name in spec ? spec[name] : defaults[name]);
    clearErrors();
  }

  // --- errors ----------------------------------------------------------------------------------

  function clearErrors() {
    formError.hidden = true;
    formError.textContent = "";
    for (const box of form.querySelectorAll(".field-error")) { box.hidden = true; box.textContent = ""; }
    for (const f of form.querySelectorAll(".field.invalid")) f.classList.remove("invalid");
    for (const c of form.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
  }

  function fieldError(name, message) {
    const box = document.getElementById(`err-${name}`);
    if (!box) return false;
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

  /** Put each 422 item next to its field; spec-wide problems go on top and mark the fields they name. */
  function showErrors(detail, context) {
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
      const focusable = bad[0].querySelector("input, select");
      if (focusable) focusable.focus();
    } else {
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

  async function loadAssets() {
    const res = await api("GET", "/api/v1/assets");
    if (!res.ok) return;
    const lists = { model: res.data.models, dataset: res.data.datasets };
    for (const [field, items] of Object.entries(lists)) {
      const dl = document.getElementById(`dl-${field}`);
      if (!dl) continue;
      for (const a of items) dl.append(el("option", { value: a.name, text: `${a.usable ? "" : "(not installed) "}${a.detail}` }));
    }
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

  async function checkAdvice() {
    const seq = ++adviceSeq;
    const warnings = [];
    for (const spec of adviceSpecs()) {
      const res = await api("POST", "/ui/validate", { spec }, { quiet: true });
      if (seq !== adviceSeq) return;  // a newer check is under way
      if (res.ok && res.data && Array.isArray(res.data.warnings)) warnings.push(...res.data.warnings);
    }
    showAdvice(warnings);
  }

  function scheduleAdvice() {
    clearTimeout(adviceTimer);
    adviceTimer = setTimeout(checkAdvice, 300);
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

  function newTag() {
    const bytes = new Uint8Array(4);
    crypto.getRandomValues(bytes);
    return [...bytes].map((b) => b.toString(36).padStart(2, "0")).join("").slice(0, 6);
  }

  function go(exp) { window.location.href = `/experiments/${exp.id}`; }

  async function submitOne(body) {
    const res = await api("POST", "/api/v1/experiments", body);
    if (res.status === 201) return res.data;
    if (res.status === 503 && res.data && res.data.experiment) return res.data.experiment;  // recorded, queued
    showErrors(res.data ? res.data.detail : `server answered ${res.status}`);
    return null;
  }

  async function submitSweep(spec, name) {
    let values;
    try { values = sweepMembers(); } catch (err) { fieldError("sweep-values", err.message); sweepValues.focus(); return; }
    const tag = newTag();
    const base = name || `${spec.model}-${spec.dataset}`;
    const bodies = values.map((s) => ({ name: `${base} [sweep ${tag}] s=${s}`, spec: { ...spec, sparsity: s } }));
    for (const body of bodies) {  // validate every member before starting any
      const res = await api("POST", "/ui/validate", body);
      if (!res.ok) { showErrors(res.data ? res.data.detail : res.status, `sparsity ${body.spec.sparsity}`); return; }
    }
    const made = [];
    for (const body of bodies) {
      submitNote.textContent = `submitting ${made.length + 1} of ${bodies.length}…`;
      const exp = await submitOne(body);
      if (!exp) return;
      made.push(exp);
    }
    go(made.find((e) => e.spec.sparsity > 0) || made[0]);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors();
    submitBtn.disabled = true;
    submitNote.textContent = "submitting…";
    try {
      const spec = readSpec();
      const name = nameInput.value.trim() || (presetSel.value || null);
      if (sweepOn.checked) {
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
  form.addEventListener("input", scheduleAdvice);
  form.addEventListener("change", scheduleAdvice);
  if (boot.start_spec) fill(boot.start_spec);
  scheduleAdvice();
  loadPresets();
  loadAssets();
})();
