// DOM building and formatting for the dashboard. `h()` is the only way the
// page makes nodes: strings become text nodes, never markup, so untrusted
// values (payloads, headers, response bodies) cannot inject HTML.

/** Makes an element; strings and numbers among `children` become text. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export function emptyRow(cols, text) {
  return h('tr', {}, h('td', { class: 'empty', colspan: cols, text }));
}

// ---------- formatting ----------

const pad = (n) => String(n).padStart(2, '0');

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function timeCell(iso) {
  return h('td', { class: 'nowrap', title: iso || '' }, fmtTime(iso));
}

export function fmtPct(ratio) {
  if (!Number.isFinite(ratio)) return '—';
  const p = ratio * 100;
  return `${Number.isInteger(p) ? p : p.toFixed(1)}%`;
}

export function fmtMs(ms) {
  if (!Number.isFinite(ms)) return '—';
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (Number.isInteger(ms)) return ms === 0 ? '< 1 ms' : `${ms} ms`;
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
}

export const fmtCount = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '0');

export function badge(status) {
  return h('span', { class: `badge ${status}` }, status);
}
