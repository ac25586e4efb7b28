/* Figure builders for the head panels: blocks x heads heatmaps (grouped: encoder / decoder / cross-attention
   side by side), the pruning-mask film strip, and the client-selection timeline. Pure functions returning
   {data, layout}; the page calls Plotly.react with them, so charts update in place. And the x axis of the
   per-round curves: the round, or elapsed wall time (the sum of the rounds' measured times). */
"use strict";

const FHCharts = (() => {
  const { layout, axis } = FH;
  // Viridis end points, for two- and three-state discrete maps.
  const V0 = "#440154", V1 = "#21918c", V2 = "#fde725";
  const OFF = FH.themeColour("--cell-off", "#f2f2f2");  // "not a candidate": nearly the panel's colour

  /** Block groups in model order: names "enc.0", "dec.3", "cross.1" -> groups enc, dec, cross. */
  function blockGroups(blockNames) {
    const order = [];
    const byName = new Map();
    blockNames.forEach((name, i) => {
      const key = String(name).includes(".") ? String(name).split(".")[0] : "";
      if (!byName.has(key)) { byName.set(key, []); order.push(key); }
      byName.get(key).push(i);
    });
    return order.map((key) => ({ key, title: GROUP_TITLES[key] || key, blocks: byName.get(key) }));
  }
  const GROUP_TITLES = { enc: "encoder", dec: "decoder", cross: "cross-attn", layer: "layers", "": "" };

  /**
   * Heatmap(s) of a [blocks][heads] matrix, one subplot per block group, one shared colour bar.
   * opts: {blocks: names, heads: H, title: colour-bar title, zmin, zmax, highlight: {block, head}, fmt}
   */
  function headHeatmap(matrix, opts) {
    const groups = blockGroups(opts.blocks);
    const heads = [...Array(opts.heads).keys()];
    const gap = groups.length > 1 ? 0.07 : 0;
    const width = (1 - gap * (groups.length - 1)) / groups.length;
    const data = [];
    const lay = layout({ margin: { l: 70, r: 10, t: groups.length > 1 ? 28 : 10, b: 48 }, annotations: [], shapes: [] });
    lay.coloraxis = {
      colorscale: "Viridis", cmin: opts.zmin, cmax: opts.zmax,
      colorbar: { title: { text: opts.title, side: "right" }, thickness: 14, len: 1 },
    };
    groups.forEach((g, gi) => {
      const sfx = gi === 0 ? "" : String(gi + 1);
      const x0 = gi * (width + gap);
      data.push({
        type: "heatmap", coloraxis: "coloraxis", xaxis: `x${sfx}`, yaxis: `y${sfx}`,
        x: heads, y: g.blocks.map((b) => opts.blocks[b]),
        z: g.blocks.map((b) => (matrix && matrix[b]) ? matrix[b] : heads.map(() => null)),
        xgap: 1, ygap: 1, hoverongaps: false,
        hovertemplate: `block %{y}, head %{x}<br>${opts.title}: %{z:${opts.fmt || ".4f"}}<extra></extra>`,
      });
      lay[`xaxis${sfx}`] = axis(gi === 0 || groups.length > 1 ? "head" : "", {
        domain: [x0, x0 + width], anchor: `y${sfx}`, dtick: 1, showgrid: false, fixedrange: true,
        range: [-0.5, opts.heads - 0.5],
      });
      // several groups: rows are labelled by layer number under the group's title, to fit side by side
      const names = g.blocks.map((b) => opts.blocks[b]);
      const ticks = groups.length > 1 ? { tickvals: names, ticktext: names.map((n) => String(n).split(".").slice(1).join(".")) } : {};
      lay[`yaxis${sfx}`] = axis(gi === 0 ? (groups.length > 1 ? "layer" : "attention block") : "", {
        anchor: `x${sfx}`, autorange: "reversed", type: "category", showgrid: false, fixedrange: true, ...ticks,
      });
      if (groups.length > 1) {
        lay.annotations.push({ text: g.title, xref: "paper", yref: "paper", x: x0 + width / 2, y: 1.0,
          yanchor: "bottom", showarrow: false, font: { size: 12 } });
      }
      const hl = opts.highlight;
      if (hl && g.blocks.includes(hl.block)) {
        const row = g.blocks.indexOf(hl.block);
        lay.shapes.push({ type: "rect", xref: `x${sfx}`, yref: `y${sfx}`, x0: hl.head - 0.5, x1: hl.head + 0.5,
          y0: row - 0.5, y1: row + 0.5, line: { color: "#e8175d", width: 3 } });
      }
    });
    return { data, layout: lay };
  }

  /** Block index of a click on a headHeatmap (points carry the block name as y). */
  function clickedHead(ev, blockNames) {
    const p = ev && ev.points && ev.points[0];
    if (!p) return null;
    const block = blockNames.indexOf(p.y);
    return block < 0 ? null : { block, head: Number(p.x) };
  }

  /** Film strip: one blocks x heads frame per client (kept = 1, pruned = 0), frames side by side. */
  function filmStrip(frames, opts) {
    const H = opts.heads;
    const width = frames.length * (H + 1) - 1;
    const z = opts.blocks.map(() => new Array(Math.max(width, 0)).fill(null));
    const text = opts.blocks.map(() => new Array(Math.max(width, 0)).fill(""));
    frames.forEach((f, i) => {
      const off = i * (H + 1);
      for (let b = 0; b < opts.blocks.length; b++) {
        for (let h = 0; h < H; h++) {
          const kept = f.kept && f.kept[b] ? f.kept[b][h] : null;
          z[b][off + h] = kept === null || kept === undefined ? null : (kept ? 1 : 0);
          text[b][off + h] = `client ${f.client}, block ${opts.blocks[b]}, head ${h}: ${kept ? "kept" : "pruned"}`;
        }
      }
    });
    const ticks = frames.map((_, i) => i * (H + 1) + (H - 1) / 2);
    const data = [{
      type: "heatmap", x: [...Array(width).keys()], y: opts.blocks, z, text, hoverinfo: "text", hoverongaps: false,
      zmin: 0, zmax: 1, xgap: 1, ygap: 1,
      colorscale: [[0, V0], [0.5, V0], [0.5, V2], [1, V2]],
      colorbar: { tickvals: [0.25, 0.75], ticktext: ["pruned", "kept"], thickness: 14, len: 1 },
    }];
    const lay = layout({ margin: { l: 70, r: 10, t: 10, b: 48 } });
    lay.xaxis = axis("client (one frame of heads each)", { tickvals: ticks, ticktext: frames.map((f) => `client ${f.client}`),
      showgrid: false, fixedrange: true, range: [-0.5, Math.max(width, 1) - 0.5] });
    lay.yaxis = axis("attention block", { type: "category", autorange: "reversed", showgrid: false, fixedrange: true });
    return { data, layout: lay };
  }

  /** Selection timeline: z[row][round-1] in {0 not a candidate, 1 candidate, 2 selected}. */
  function selectionFigure(sel) {
    const data = [{
      type: "heatmap", x: sel.x, y: sel.rows, z: sel.z, text: sel.text, hoverinfo: "text", hoverongaps: false,
      zmin: 0, zmax: 2, xgap: sel.x.length > 120 ? 0 : 1, ygap: sel.rows.length > 60 ? 0 : 1,
      colorscale: [[0, OFF], [0.333, OFF], [0.333, V1], [0.667, V1], [0.667, V0], [1, V0]],
      colorbar: { tickvals: [1 / 3, 1, 5 / 3], ticktext: ["not a candidate", "candidate", "selected"],
        thickness: 14, len: 1 },
    }];
    const lay = layout({ margin: { l: 70, r: 10, t: 10, b: 48 }, datarevision: sel.revision });
    lay.xaxis = axis("round", { showgrid: false });
    lay.yaxis = axis("client", { autorange: "reversed", showgrid: false,
      type: "category", nticks: Math.min(sel.rows.length, 30) });
    return { data, layout: lay };
  }

  // --- the x axis of the per-round curves: the round, or elapsed wall time ------------------------------

  const TIME_TITLE = "elapsed wall time (s)";

  /** Running sums (elapsed wall time after each round from the rounds' measured times; null counts as 0). */
  function cumulative(xs) { let c = 0; return xs.map((v) => { c += v || 0; return c; }); }

  /** Title and extra settings of a curve's x axis: rounds, or seconds from zero when byTime. */
  function xAxisOf(byTime, extra) {
    return FH.axis(byTime ? TIME_TITLE : "round", Object.assign(byTime ? { rangemode: "tozero" } : {}, extra || {}));
  }

  /** Hover text of a curve point: its round, and its elapsed time when the axis is time. */
  function xHover(byTime) { return byTime ? "%{text}, %{x:.1f} s" : "%{text}"; }

  return { blockGroups, headHeatmap, clickedHead, filmStrip, selectionFigure, V0, V1, V2, TIME_TITLE, cumulative,
    xAxisOf, xHover };
})();
