// Queue depths from GET /metrics (Prometheus text format, no auth): the
// store's queues as this gateway last read them. Delivery figures come from
// GET /api/stats instead (every gateway's, over time).

import { ApiError } from './api.js';

function parseLabels(s) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    while (i < s.length && (s[i] === ',' || s[i] === ' ')) i++;
    const eq = s.indexOf('=', i);
    if (eq < 0) break;
    const name = s.slice(i, eq).trim();
    i = eq + 1;
    if (s[i] !== '"') break;
    i++;
    let value = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) {
        const n = s[i + 1];
        value += n === 'n' ? '\n' : n;
        i += 2;
      } else {
        value += s[i++];
      }
    }
    i++;
    labels[name] = value;
  }
  return labels;
}

/** `[{name, labels, value}]` from exposition text; comments skipped. */
export function parseMetrics(text) {
  const out = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number.parseFloat(m[3]);
    out.push({ name: m[1], labels: m[2] ? parseLabels(m[2]) : {}, value: v });
  }
  return out;
}

/** Queue depths by status (`hookgate_queue_depth`), from the samples. */
export function queueDepths(samples) {
  const queue = {};
  for (const { name, labels, value } of samples) {
    if (name === 'hookgate_queue_depth' && Number.isFinite(value)) queue[labels.status] = value;
  }
  return queue;
}

export async function loadQueue() {
  let resp;
  try {
    resp = await fetch('/metrics', { cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `GET /metrics did not answer (${e.message})`);
  }
  const text = await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, `http_${resp.status}`, text.slice(0, 300) || resp.statusText);
  return queueDepths(parseMetrics(text));
}
