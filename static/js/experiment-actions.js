/* The experiment page's actions: tags and note (PATCH), cancel, resume, delete, the adapter of a chosen round, the
   rounds' export, and copying the spec as JSON or as a curl command. Reads the page state's view (experiment-state.js);
   the stream is opened and closed through the callbacks experiment.js passes. */
"use strict";

const FHActions = (() => {
  const { el, api, fmt, copyText, shq } = FH;
  const $ = FH.byId;
  const CANCELLABLE = ["queued", "running"], RESUMABLE = ["failed", "cancelled"];

  function note(msg) { $("action-note").textContent = msg; }

  const refusal = (res) => (res.data && res.data.detail ? res.data.detail : res.status);

  /** Tags (comma-separated in the input) and the note, saved with PATCH; the server's 422 is shown as it is. */
  function bindKeep(view) {
    const keepNote = (msg) => { $("keep-note").textContent = msg; };
    $("keep").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const tags = $("tags-input").value.split(",").map((t) => t.trim()).filter((t) => t);
      $("save-keep").disabled = true;
      const res = await api("PATCH", view.base, { tags, note: $("note-input").value });
      $("save-keep").disabled = false;
      if (res.ok) {
        $("tags-input").value = res.data.tags.join(", ");
        keepNote(`saved at ${fmt.clock()}`);
      } else if (res.status === 422 && Array.isArray(res.data.detail)) {
        keepNote(`not saved: ${res.data.detail.map((e) => `${e.loc.slice(1).join(".")}: ${e.msg}`).join("; ")}`);
      } else {
        keepNote(`not saved: ${refusal(res)}`);
      }
    });
  }

  function bindLifecycle(view, { openStream, closeStream }) {
    const exp = view.exp;
    $("btn-delete").addEventListener("click", async () => {
      if (!window.confirm(`Delete "${exp.name}" with its rounds, events and adapters? This cannot be undone.`)) return;
      $("btn-delete").disabled = true;
      const res = await api("DELETE", view.base);
      if (res.ok) { closeStream("deleted"); window.location.href = "/"; return; }
      note(`delete refused: ${refusal(res)}`);
      $("btn-delete").disabled = view.status === "running";
    });
    $("btn-cancel").addEventListener("click", async () => {
      $("btn-cancel").disabled = true;
      const res = await api("POST", `${view.base}/cancel`);
      note(res.ok ? res.data.message : `cancel refused: ${res.data ? res.data.detail : res.status}`);
      if (!res.ok) $("btn-cancel").disabled = !CANCELLABLE.includes(view.status);
    });
    $("btn-resume").addEventListener("click", async () => {
      $("btn-resume").disabled = true;
      const res = await api("POST", `${view.base}/resume`);
      if (res.ok || res.status === 503) {
        note(res.ok ? res.data.message : String(res.data.detail));
        openStream();
      } else {
        note(`resume refused: ${res.data ? res.data.detail : res.status}`);
        $("btn-resume").disabled = !RESUMABLE.includes(view.status);
      }
    });
  }

  function bindDownloads(view) {
    const exp = view.exp;
    $("dl-round").addEventListener("change", () => {
      $("dl-round-link").setAttribute("aria-disabled", $("dl-round").value ? "false" : "true");
    });
    $("dl-round-link").addEventListener("click", async (ev) => {
      ev.preventDefault();
      const n = $("dl-round").value;
      if (!n) { note("choose a round first"); return; }
      note(`building the adapter of round ${n}…`);
      const resp = await fetch(`${view.base}/adapter?round=${encodeURIComponent(n)}`);
      if (!resp.ok) {
        let detail = resp.status;
        try { detail = (await resp.json()).detail; } catch (_) { /* not JSON */ }
        note(`no adapter for round ${n}: ${detail}`);
        return;
      }
      const url = URL.createObjectURL(await resp.blob());
      const a = el("a", { href: url, download: `fedheads-${exp.id}-round-${n}.zip` });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      note(`downloaded the adapter of round ${n}`);
    });
    $("export-json").setAttribute("download", `${FH.slug(exp.name)}-rounds.json`);
    $("export-csv").addEventListener("click", async () => note(await FHExport.saveRoundsCsv(view.base, exp.name)));
    $("copy-json").addEventListener("click", async () => {
      note(await copyText(JSON.stringify(exp.spec, null, 2)) ? "spec copied as JSON" : "copy failed: select it in the Spec panel");
    });
    $("copy-curl").addEventListener("click", async () => {
      const body = { name: exp.name, spec: exp.spec };
      const cmd = `curl -X POST ${shq(`${window.location.origin}/api/v1/experiments`)} ` +
        `-H 'Content-Type: application/json' -d ${shq(JSON.stringify(body))}`;
      note(await copyText(cmd) ? "curl command copied" : "copy failed");
    });
  }

  /** Wire every action button of the page. */
  function bind(view, stream) {
    bindKeep(view);
    bindLifecycle(view, stream);
    bindDownloads(view);
  }

  /** The buttons that depend on the status (called on each status change). */
  function showStatus(status) {
    $("btn-cancel").disabled = !CANCELLABLE.includes(status);
    $("btn-resume").disabled = !RESUMABLE.includes(status);
    $("btn-delete").disabled = status === "running";
    $("btn-delete").title = status === "running" ? "running: cancel it first" : "";
  }

  return { bind, showStatus };
})();
