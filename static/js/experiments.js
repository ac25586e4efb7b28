/* Experiments list: polls /ui/experiments every few seconds with the page's filters (name, status, tag) and
   order (a column heading sorts by it; again flips it), and updates the rows in place. Rows can be deleted. */
"use strict";

(() => {
  const { el, api, fmt } = FH;
  const POLL_MS = 3000;
  const SEARCH_DELAY_MS = 250;
  const tbody = document.querySelector("#experiments tbody");
  const form = document.getElementById("filter-form");
  const search = document.getElementById("search");
  const filter = document.getElementById("status-filter");
  const tagFilter = document.getElementById("tag-filter");
  const sortKey = document.getElementById("sort-key");
  const sortOrder = document.getElementById("sort-order");
  const note = document.getElementById("list-note");
  const empty = document.getElementById("empty");
  const compareBtn = document.getElementById("compare-selected");
  const picked = new Set();
  let timer = null;
  let searchTimer = null;
  let seq = 0;

  // column order: pick, name, status, model, dataset, sparsity, mode, rounds, best, adv, ops, created, links
  function cell(tr, i) { return tr.children[i]; }

  function buildRow(item) {
    const tr = el("tr", { "data-id": item.id });
    const box = el("input", { type: "checkbox", class: "pick", value: item.id });
    tr.append(
      el("td", {}, box),
      el("td", {}, el("a", { class: "name", href: `/experiments/${item.id}` }), " ", el("span", { class: "tags" })),
      el("td", {}, el("span", { class: "badge" })),
      el("td", { class: "c-model" }), el("td", { class: "c-dataset" }), el("td", { class: "num c-sparsity" }),
      el("td", { class: "c-mode" }),
      el("td", {}, el("progress", { "aria-label": "rounds done" }), el("span", { class: "prog" })),
      el("td", { class: "num" }), el("td", { class: "num" }), el("td", { class: "num" }),
      el("td", { class: "age" }),
      el("td", { class: "links" }, el("a", { href: `/experiments/${item.id}`, text: "open" }), " ",
        el("button", { type: "button", class: "delete linkish", text: "delete" })),
    );
    return tr;
  }

  function fillTags(span, tags) {
    const now = [...span.querySelectorAll("button.tag")].map((b) => b.dataset.tag);
    if (now.join("\n") === tags.join("\n")) return;
    span.replaceChildren(...tags.map((t) => el("button", {
      type: "button", class: "tag", "data-tag": t, title: `show only runs tagged ${t}`, text: t })));
  }

  function fillRow(tr, item, now) {
    const box = tr.querySelector("input.pick");
    box.setAttribute("aria-label", `select ${item.name}`);
    box.checked = picked.has(item.id);
    tr.querySelector("a.name").textContent = item.name;
    fillTags(tr.querySelector("span.tags"), item.tags || []);
    const badge = cell(tr, 2).firstChild;
    badge.className = `badge st-${item.status}`;
    badge.textContent = item.status;
    const spec = item.spec || {};
    cell(tr, 3).textContent = spec.model ?? "–";
    cell(tr, 4).textContent = spec.dataset ?? "–";
    cell(tr, 5).textContent = spec.sparsity ?? "–";
    cell(tr, 6).textContent = spec.sparsity ? spec.prune_mode : "dense";
    const prog = cell(tr, 7).querySelector("progress");
    prog.max = Math.max(item.progress.rounds_total, 1);
    prog.value = item.progress.rounds_done;
    cell(tr, 7).querySelector(".prog").textContent = `${item.progress.rounds_done}/${item.progress.rounds_total}`;
    const f = item.figures || {};
    cell(tr, 8).textContent = fmt.pct(f.best_accuracy);
    cell(tr, 9).textContent = fmt.times(f.uplink_advantage);
    cell(tr, 10).textContent = fmt.times(f.ops_reduction);
    cell(tr, 11).textContent = fmt.ago(item.created_at, now);
    const links = cell(tr, 12);
    let sweep = links.querySelector("a.sweep");
    if (item.sweep && !sweep) {
      sweep = el("a", { class: "sweep", href: `/compare?sweep=${encodeURIComponent(item.sweep)}`, text: "sweep" });
      links.querySelector("a").after(" ", sweep);
    }
    const del = links.querySelector("button.delete");
    del.setAttribute("aria-label", `delete ${item.name}`);
    del.dataset.name = item.name;
    del.disabled = item.status === "running";
    del.title = item.status === "running" ? "running: cancel it first" : "";
  }

  function fillTagOptions(tags) {
    const chosen = tagFilter.value;
    const all = [...new Set([...tags, ...(chosen ? [chosen] : [])])].sort();
    const now = [...tagFilter.options].slice(1).map((o) => o.value);
    if (now.join("\n") === all.join("\n")) return;
    tagFilter.replaceChildren(el("option", { value: "", text: "any" }),
      ...all.map((t) => el("option", { value: t, text: t })));
    tagFilter.value = chosen;
  }

  function render(data) {
    const now = Date.parse(data.now) || Date.now();
    const existing = new Map([...tbody.querySelectorAll("tr[data-id]")].map((tr) => [tr.dataset.id, tr]));
    const wanted = new Set(data.items.map((it) => it.id));
    for (const [id, tr] of existing) if (!wanted.has(id)) tr.remove();
    let prev = null;
    for (const item of data.items) {
      let tr = existing.get(item.id);
      if (!tr) tr = buildRow(item);
      fillRow(tr, item, now);
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    fillTagOptions(data.tags || []);
    const filtered = filter.value || search.value.trim() || tagFilter.value;
    empty.hidden = data.items.length > 0;
    note.textContent = `${data.total} experiment${data.total === 1 ? "" : "s"}${filtered ? " that match" : ""}; ` +
      `updated ${fmt.clock()}`;
  }

  /** The filters and order, as the query string of both the page and /ui/experiments. */
  function params() {
    const p = new URLSearchParams();
    if (search.value.trim()) p.set("q", search.value.trim());
    if (filter.value) p.set("status", filter.value);
    if (tagFilter.value) p.set("tag", tagFilter.value);
    if (sortKey.value !== "created") p.set("sort", sortKey.value);
    if (sortOrder.value !== "desc") p.set("order", sortOrder.value);
    return p;
  }

  async function poll() {
    clearTimeout(timer);
    const mine = ++seq;
    const q = params().toString();
    const res = await api("GET", `/ui/experiments${q ? `?${q}` : ""}`);
    if (mine !== seq) return;  // a newer request (the filters changed meanwhile) answers instead
    if (res.ok) render(res.data);
    else note.textContent = `could not refresh (${res.status}); retrying`;
    timer = setTimeout(poll, POLL_MS);
  }

  function showSort() {
    for (const th of document.querySelectorAll("#experiments th[data-sort]")) {
      const on = th.dataset.sort === sortKey.value;
      th.setAttribute("aria-sort", on ? (sortOrder.value === "desc" ? "descending" : "ascending") : "none");
      th.querySelector(".arrow").textContent = on ? (sortOrder.value === "desc" ? "▼" : "▲") : "";
    }
  }

  function changed() {
    const q = params().toString();
    history.replaceState(null, "", `${window.location.pathname}${q ? `?${q}` : ""}`);
    showSort();
    poll();
  }

  function syncPicked() {
    compareBtn.disabled = picked.size < 2;
    compareBtn.textContent = picked.size ? `Compare selected (${picked.size})` : "Compare selected";
  }

  async function remove(button) {
    const tr = button.closest("tr[data-id]");
    const name = button.dataset.name || tr.querySelector("a.name").textContent;
    if (!window.confirm(`Delete "${name}" with its rounds, events and adapters? This cannot be undone.`)) return;
    button.disabled = true;
    const res = await api("DELETE", `/api/v1/experiments/${tr.dataset.id}`);
    if (res.ok) {
      picked.delete(tr.dataset.id); syncPicked();
      tr.remove();
      note.textContent = `deleted ${name}`;
      poll();
    } else {
      button.disabled = false;
      note.textContent = `could not delete ${name}: ${res.data && res.data.detail ? res.data.detail : res.status}`;
    }
  }

  tbody.addEventListener("change", (ev) => {
    const box = ev.target.closest("input.pick");
    if (!box) return;
    if (box.checked) picked.add(box.value); else picked.delete(box.value);
    syncPicked();
  });
  tbody.addEventListener("click", (ev) => {
    const tag = ev.target.closest("button.tag");
    if (tag) {
      if (![...tagFilter.options].some((o) => o.value === tag.dataset.tag)) {
        tagFilter.append(el("option", { value: tag.dataset.tag, text: tag.dataset.tag }));
      }
      tagFilter.value = tag.dataset.tag;
      changed();
      return;
    }
    const del = ev.target.closest("button.delete");
    if (del) remove(del);
  });
  document.querySelector("#experiments thead").addEventListener("click", (ev) => {
    const link = ev.target.closest("a.sort");
    if (!link) return;
    ev.preventDefault();
    const key = link.closest("th").dataset.sort;
    if (sortKey.value === key) sortOrder.value = sortOrder.value === "desc" ? "asc" : "desc";
    else { sortKey.value = key; sortOrder.value = key === "name" ? "asc" : "desc"; }
    changed();
  });
  compareBtn.addEventListener("click", () => {
    if (picked.size >= 2) window.location.href = `/compare?ids=${[...picked].map(encodeURIComponent).join(",")}`;
  });
  filter.addEventListener("change", changed);
  tagFilter.addEventListener("change", changed);
  search.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(changed, SEARCH_DELAY_MS); });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); changed(); });

  for (const box of tbody.querySelectorAll("input.pick")) if (box.checked) picked.add(box.value);
  syncPicked();
  poll();
})();
