/* The studies list: "Reproduce the paper table" posts the quick paper-table study that the server put in the page
   (#paper-table-data: bench/studies/paper_table.yaml sized by app/services/paper_table.py) to POST /api/v1/studies,
   then opens the study's page. */
"use strict";

(() => {
  const { api, byId, pageData } = FH;
  const button = byId("btn-paper-table");
  if (!button) return;  // no study file on this server
  const note = byId("paper-table-note");

  button.addEventListener("click", async () => {
    button.disabled = true;
    note.textContent = "creating the study…";
    const res = await api("POST", "/api/v1/studies", pageData("paper-table-data"));
    // 503: recorded and kept queued while the broker is unreachable (dispatched when it is back)
    const study = res.status === 201 ? res.data : res.status === 503 && res.data ? res.data.study : null;
    if (study) { window.location.href = `/studies/${study.id}`; return; }
    const detail = res.data ? res.data.detail : `the server answered ${res.status}`;
    note.textContent = `The study was not created: ${Array.isArray(detail)
      ? detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ") : detail}`;
    button.disabled = false;
  });
})();
