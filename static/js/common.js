/* Shared helpers of the fedheads pages. User-supplied strings only ever go through textContent. */
"use strict";

const FH = (() => {
  /** Create an element; attrs.text sets textContent, other attrs become attributes. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  /** A cookie's value, or "" (the CSRF cookie is readable by design; the session cookie is HttpOnly). */
  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === name) return decodeURIComponent(v.join("="));
    }
    return "";
  }

  /** After a 401: a notice at the top of the page with a link to /login that comes back here. */
  function showLoginNotice() {
    if (document.getElementById("login-needed")) return;
    const next = location.pathname + location.search;
    const link = el("a", { href: `/login?next=${encodeURIComponent(next)}`, id: "login-link", text: "log in" });
    const note = el("p", { id: "login-needed", class: "form-error", role: "alert" },
      "This server needs its API token for that: ", link, ".");
    (document.getElementById("main") || document.body).prepend(note);
  }

  const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

  /**
   * fetch + JSON; never throws for HTTP errors: {ok, status, data}. Mutations carry the CSRF header; a 401 on one
   * shows the login notice, unless options.quiet (a check the page makes on its own, not one the user asked for).
   */
  async function api(method, url, body, options) {
    const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (MUTATING.has(method.toUpperCase())) {
      const csrf = cookie("fedheads_csrf");
      if (csrf) opts.headers["X-CSRF-Token"] = csrf;
    }
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(url, opts);
    } catch (err) {
      return { ok: false, status: 0, data: { detail: `network error: ${err}` } };
    }
    let data = null;
    try { data = await resp.json(); } catch (_) { data = null; }
    if (resp.status === 401 && MUTATING.has(method.toUpperCase()) && !(options && options.quiet)) showLoginNotice();
    return { ok: resp.ok, status: resp.status, data };
  }

  const fmt = {
    pct: (x, d = 1) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(d)} %`),
    times: (x) => (x === null || x === undefined || !isFinite(x) ? "–" : `${x.toFixed(2)}×`),
    mb: (bytes) => (bytes === null || bytes === undefined ? "–" : `${(bytes / 1e6).toFixed(2)} MB`),
    secs: (s) => (s === null || s === undefined ? "–" : s < 120 ? `${s.toFixed(1)} s` : `${(s / 60).toFixed(1)} min`),
    num: (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d)),
    ago(iso, now) {
      if (!iso) return "";
      const secs = Math.max(0, ((now || Date.now()) - Date.parse(iso)) / 1000);
      if (secs >= 86400) return `${Math.floor(secs / 86400)} d ago`;
      if (secs >= 3600) return `${Math.floor(secs / 3600)} h ago`;
      if (secs >= 60) return `${Math.floor(secs / 60)} min ago`;
      return `${Math.floor(secs)} s ago`;
    },
    clock(date) { return (date || new Date()).toLocaleTimeString([], { hour12: false }); },
  };

  /** A colour of the page's theme (a CSS variable of app.css, light or dark as the system asks), for the charts. */
  function themeColour(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  /* Okabe-Ito: a colour-blind-safe palette for lines (its black is the text colour, for the dark theme);
     heatmaps use Viridis. */
  /** A job's final statuses (app/models.py's TERMINAL): nothing follows them but a resume. */
  const TERMINAL = Object.freeze(["succeeded", "failed", "cancelled"]);
  const byId = (id) => document.getElementById(id);

  const LINE_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
    themeColour("--fg", "#000000")];
  const DENSE = themeColour("--dense", "#555555");

  // --- CSV and downloads ----------------------------------------------------------------------------

  /** One CSV cell: quoted when needed; a text cell that a spreadsheet would run as a formula gets a leading '. */
  function csvCell(v) {
    if (v === null || v === undefined) return "";
    if (typeof v !== "string") return String(v);
    const s = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }

  /** CSV text (RFC 4180 line ends) of a header row and data rows. */
  function csv(header, rows) {
    return [header, ...rows].map((r) => r.map(csvCell).join(",")).join("\r\n") + "\r\n";
  }

  /** Save text as a file from the browser (nothing is uploaded). */
  function download(filename, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type: type || "text/csv;charset=utf-8" }));
    const a = el("a", { href: url, download: filename });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  /** A file name from free text: letters, digits, '-', '.' and '_' only. */
  function slug(s) { return String(s).replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 80) || "fedheads"; }

  const unescapeHtml = (s) => String(s).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

  /**
   * The data a chart draws, in long form: one row per point, columns trace, x, y (and z for heatmaps, one row
   * per cell). Exactly the numbers on the chart, whatever its kind.
   */
  function chartCsv(gd) {
    const heat = gd.data.some((t) => t.type === "heatmap");
    const rows = [];
    gd.data.forEach((t, i) => {
      const name = unescapeHtml(t.name || `trace ${i}`);
      if (t.type === "heatmap") {
        (t.z || []).forEach((row, r) => (row || []).forEach((z, c) => {
          rows.push([name, t.x ? t.x[c] : c, t.y ? t.y[r] : r, z]);
        }));
      } else {
        (t.x || []).forEach((x, k) => rows.push(heat ? [name, x, t.y[k], null] : [name, x, t.y[k]]));
      }
    });
    return csv(heat ? ["trace", "x", "y", "z"] : ["trace", "x", "y"], rows);
  }

  const CSV_BUTTON = {
    name: "downloadCsv", title: "Download data as CSV",
    icon: { width: 1000, height: 1000, path: "M430 80h140v420h150L500 740 280 500h150z M120 800h760v120H120z" },
    click: (gd) => download(`${slug(document.title.split("·")[0].trim())}-${gd.id || "chart"}.csv`, chartCsv(gd)),
  };

  /* The config of every chart on every page (pass it to each Plotly.newPlot / Plotly.react). No Plotly logo,
     and nothing that sends a chart away: Plotly's "Share chart..." button uploads the data to Plotly Cloud, so it
     is switched off, removed by name, and its destination emptied (a button that came back would do nothing).
     The camera button saves a PNG and the CSV button the chart's numbers, both in the browser. */
  const PLOT_CONFIG = Object.freeze({
    responsive: true, displaylogo: false, watermark: false, showSendToCloud: false, plotlyServerURL: "",
    modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d", "toggleSpikelines", "sendChartToCloud"],
    modeBarButtonsToAdd: [CSV_BUTTON],
  });

  function layout(extra) {
    return Object.assign({
      margin: { l: 60, r: 20, t: 10, b: 48 },
      font: { family: "system-ui, 'DejaVu Sans', sans-serif", size: 12, color: themeColour("--fg", "#1d2430") },
      paper_bgcolor: themeColour("--panel", "#ffffff"), plot_bgcolor: themeColour("--panel", "#ffffff"),
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      hoverlabel: { namelength: -1 },
    }, extra || {});
  }

  function axis(title, extra) {
    return Object.assign({ title: { text: title }, gridcolor: themeColour("--grid", "#e6e9ee"), zeroline: false, automargin: true }, extra || {});
  }

  /** Copy text to the clipboard; falls back to a selected textarea when the API is unavailable. */
  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return true; } catch (_) { /* fall through */ }
    }
    const ta = el("textarea", { "aria-hidden": "true" });
    ta.value = text;
    ta.style.position = "fixed"; ta.style.opacity = "0";
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
    ta.remove();
    return ok;
  }

  /** The JSON a page template embedded with |tojson. */
  function pageData(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  /** Text for Plotly labels: Plotly reads a small HTML subset in names, so user strings get entities. */
  function plotText(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

  /** Shell-quote for POSIX sh (single quotes). */
  function shq(s) { return `'${String(s).replace(/'/g, "'\\''")}'`; }

  /**
   * Draws charts only when they are on (or near) the screen, one chart per animation frame, so a page with many
   * charts stays responsive while rounds stream in. paint(id, fn, key): queue fn for chart id; a key replaces an
   * earlier queued fn with the same key (a full redraw), no key appends (e.g. extendTraces, all kept in order).
   */
  function painter(onPainted) {
    const pending = new Map();
    const visible = new Set();
    let seq = 0;
    let scheduled = false;
    const io = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (e.isIntersecting) visible.add(e.target.id); else visible.delete(e.target.id);
      }
      kick();
    }, { rootMargin: "400px 0px" });

    function kick() {
      if (!scheduled) { scheduled = true; requestAnimationFrame(step); }
    }
    function runChart(id) {
      const ops = pending.get(id);
      pending.delete(id);
      for (const fn of ops.values()) fn();
      if (onPainted) onPainted(id);
    }
    function step() {
      scheduled = false;
      for (const id of pending.keys()) {
        if (visible.has(id)) { runChart(id); kick(); return; }
      }
    }
    return {
      watch(id) { io.observe(document.getElementById(id)); },
      paint(id, fn, key) {
        if (!pending.has(id)) pending.set(id, new Map());
        pending.get(id).set(key === undefined ? `+${seq++}` : key, fn);
        kick();
      },
      /** Draw everything now (before printing or a full-page screenshot). */
      flush() { for (const id of [...pending.keys()]) runChart(id); },
    };
  }

  return {
    el, byId, api, fmt, painter, TERMINAL, LINE_COLOURS, DENSE, PLOT_CONFIG, layout, axis, copyText, pageData, shq,
    plotText, csv, download, slug, chartCsv, themeColour,
  };
})();
