/* Experiments list: polls /ui/experiments every few seconds and updates the rows in place. */
"use strict";

(() => {
  const { el, api, fmt } = FH;
  const POLL_MS = 3000;
  const tbody = document.querySelector("#experiments tbody");
  const filter = document.getElementById("status-filter");
  const note = document.getElementById("list-note");
  const empty = document.getElementById("empty");
  const compareBtn = document.getElementById("compare-selected");
  const picked = new Set();
  let timer = null;

  function cell(tr, i) { return tr.children[i]; }

  function buildRow(item) {
    const tr = el("tr", { "data-id": item.id });
    const box = el("input", { type: "checkbox", class: "pick", value: item.id });
    tr.append(
      el("td", {}, box),
      el("td", {}, el("a", { class: "name", href: `/experiments/${item.id}` })),
      el("td", {}, el("span", { class: "badge" })),
      el("td", {}, el("progress", { "aria-label": "rounds done" }), el("span", { class: "prog" })),
      el("td", { class: "num" }), el("td", { class: "num" }), el("td", { class: "num" }),
      el("td", { class: "age" }),
      el("td", { class: "links" }, el("a", { href: `/experiments/${item.id}`, text: "open" })),
    );
    return tr;
  }

  function fillRow(tr, item, now) {
    const box = tr.querySelector("input.pick");
    box.setAttribute("aria-label", `select ${item.name}`);
    box.checked = picked.has(item.id);
    const link = tr.querySelector("a.name");
    link.textContent = item.name;
    const badge = cell(tr, 2).firstChild;
    badge.className = `badge st-${item.status}`;
    badge.textContent = item.status;
    const prog = cell(tr, 3).querySelector("progress");
    prog.max = Math.max(item.progress.rounds_total, 1);
    prog.value = item.progress.rounds_done;
    cell(tr, 3).querySelector(".prog").textContent = `${item.progress.rounds_done}/${item.progress.rounds_total}`;
    const f = item.figures || {};
    cell(tr, 4).textContent = fmt.pct(f.best_accuracy);
    cell(tr, 5).textContent = fmt.times(f.uplink_advantage);
    cell(tr, 6).textContent = fmt.times(f.ops_reduction);
    cell(tr, 7).textContent = fmt.ago(item.created_at, now);
    const links = cell(tr, 8);
    let sweep = links.querySelector("a.sweep");
    if (item.sweep && !sweep) {
      sweep = el("a", { class: "sweep", href: `/compare?sweep=${encodeURIComponent(item.sweep)}`, text: "sweep" });
      links.append(" ", sweep);
    }
  }

  function render(data) {
    const now = Date.parse(data.now) || Date.now();
    const existing = new Map([...tbody.querySelectorAll("tr[data-id]")].map((tr) => [tr.dataset.id, tr]));
    const wanted = data.items.map((it) => it.id);
    for (const [id, tr] of existing) if (!wanted.includes(id)) tr.remove();
    let prev = null;
    for (const item of data.items) {
      let tr = existing.get(item.id);
      if (!tr) tr = buildRow(item);
      fillRow(tr, item, now);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    empty.hidden = data.items.length > 0;
    const s = filter.value;
    note.textContent = `${data.total} experiment${data.total === 1 ? "" : "s"}${s ? ` with status ${s}` : ""}; ` +
      `updated ${fmt.clock()}`;
  }

  async function poll() {
    clearTimeout(timer);
    const q = filter.value ? `?status=${encodeURIComponent(filter.value)}` : "";
    const res = await api("GET", `/ui/experiments${q}`);
    if (res.ok) render(res.data);
    else note.textContent = `could not refresh (${res.status}); retrying`;
    timer = setTimeout(poll, POLL_MS);
  }

  function syncPicked() {
    compareBtn.disabled = picked.size < 2;
    compareBtn.textContent = picked.size ? `Compare selected (${picked.size})` : "Compare selected";
  }

  tbody.addEventListener("change", (ev) => {
    const box = ev.target.closest("input.pick");
    if (!box) return;
    if (box.checked) picked.add(box.value); else picked.delete(box.value);
    syncPicked();
  });
  compareBtn.addEventListener("click", () => {
    if (picked.size >= 2) window.location.href = `/compare?ids=${[...picked].map(encodeURIComponent).join(",")}`;
  });
  filter.addEventListener("change", () => {
    const url = new URL(window.location.href);
    if (filter.value) url.searchParams.set("status", filter.value); else url.searchParams.delete("status");
    history.replaceState(null, "", url);
    poll();
  });
  document.getElementById("filter-form").addEventListener("submit", (ev) => { ev.preventDefault(); poll(); });

  for (const box of tbody.querySelectorAll("input.pick")) if (box.checked) picked.add(box.value);
  syncPicked();
  poll();
})();
