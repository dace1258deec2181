// Small SVG charts for the overview, drawn by the page itself (no library,
// no external resources). Every node is made with createElementNS and
// attributes only, so the strict Content-Security-Policy holds. Each bar or
// point carries its figures as data- attributes and a <title> tooltip.

const NS = 'http://www.w3.org/2000/svg';
const W = 600;
const H = 160;
const PAD = { left: 40, right: 8, top: 8, bottom: 20 };

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** A round upper bound for the y axis. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function pad2(n) {
  return String(n).padStart(2, '0');
}

function label(iso, stepSeconds) {
  const d = new Date(iso);
  if (stepSeconds >= 3600) return `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}h`;
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

function frame(svg, max, fmt, series, stepSeconds) {
  const plotH = H - PAD.top - PAD.bottom;
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - f);
    svg.append(s('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }));
    svg.append(s('text', { class: 'tick', x: PAD.left - 4, y: y + 3, 'text-anchor': 'end' }, fmt(max * f)));
  }
  if (series.length) {
    const plotW = W - PAD.left - PAD.right;
    const ticks = [[0, 'start'], [Math.floor(series.length / 2), 'middle'], [series.length - 1, 'end']];
    for (const [i, anchor] of ticks) {
      const x = anchor === 'start' ? PAD.left : anchor === 'end' ? W - PAD.right : PAD.left + (plotW * (i + 0.5)) / series.length;
      svg.append(s('text', { class: 'tick', x, y: H - 6, 'text-anchor': anchor }, label(series[i].at, stepSeconds)));
    }
  }
}

function svgRoot(name) {
  return s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': name });
}

/**
 * Stacked bars of finished deliveries per point: succeeded, filtered, dead.
 * `series` is GET /api/stats `series`.
 */
export function deliveriesChart(series, stepSeconds) {
  const svg = svgRoot('deliveries by outcome over time');
  const keys = ['succeeded', 'filtered', 'dead'];
  const totals = series.map((p) => keys.reduce((n, k) => n + (p.deliveries[k] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  frame(svg, max, (v) => (Number.isInteger(v) ? v : v.toFixed(1)), series, stepSeconds);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const bw = plotW / Math.max(1, series.length);
  series.forEach((p, i) => {
    const g = s('g', {
      class: 'point', 'data-at': p.at, 'data-succeeded': p.deliveries.succeeded,
      'data-filtered': p.deliveries.filtered, 'data-dead': p.deliveries.dead,
    });
    let y = PAD.top + plotH;
    for (const k of keys) {
      const n = p.deliveries[k] || 0;
      if (!n) continue;
      const hgt = (plotH * n) / max;
      y -= hgt;
      g.append(s('rect', { class: k, x: PAD.left + i * bw + bw * 0.1, y, width: Math.max(0.5, bw * 0.8), height: hgt }));
    }
    g.append(s('title', {}, `${new Date(p.at).toLocaleString()}: ${p.deliveries.succeeded} succeeded, ` +
      `${p.deliveries.filtered} filtered, ${p.deliveries.dead} dead`));
    svg.append(g);
  });
  if (!totals.some((t) => t > 0)) {
    svg.append(s('text', { class: 'empty-chart', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'nothing finished in this window'));
  }
  return svg;
}

/** p50 and p95 attempt latency per point (gaps where nothing was attempted). */
export function latencyChart(series, stepSeconds) {
  const svg = svgRoot('attempt latency over time');
  const values = series.flatMap((p) => [p.latencyMs.p50, p.latencyMs.p95]).filter((v) => Number.isFinite(v));
  const max = niceMax(Math.max(0, ...values));
  const fmt = (v) => (v >= 1000 ? `${(v / 1000).toFixed(1)}s` : v < 10 && !Number.isInteger(v) ? `${v.toFixed(1)}ms` : `${Math.round(v)}ms`);
  frame(svg, max, fmt, series, stepSeconds);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (plotW * (i + 0.5)) / Math.max(1, series.length);
  const y = (v) => PAD.top + plotH * (1 - v / max);
  for (const q of ['p50', 'p95']) {
    let d = '';
    let pen = false;
    series.forEach((p, i) => {
      const v = p.latencyMs[q];
      if (!Number.isFinite(v)) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)} ${y(v).toFixed(1)} `;
      pen = true;
    });
    if (d) svg.append(s('path', { class: `line ${q}`, d: d.trim() }));
  }
  series.forEach((p, i) => {
    if (!Number.isFinite(p.latencyMs.p50)) return;
    const tip = `${new Date(p.at).toLocaleString()}: p50 ${p.latencyMs.p50} ms, p95 ${p.latencyMs.p95} ms`;
    svg.append(s('g', { class: 'point', 'data-at': p.at, 'data-p50': p.latencyMs.p50, 'data-p95': p.latencyMs.p95 },
      s('circle', { class: 'dot p50', cx: x(i), cy: y(p.latencyMs.p50), r: 2.5 }),
      s('circle', { class: 'dot p95', cx: x(i), cy: y(p.latencyMs.p95), r: 2.5 }),
      s('title', {}, tip)));
  });
  if (!values.length) {
    svg.append(s('text', { class: 'empty-chart', x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no attempts in this window'));
  }
  return svg;
}
