// Per-webhook figures from GET /metrics (Prometheus text format, no auth):
// attempts by result, final outcomes, attempt durations, retries and
// rate-limit hits, as counted by this gateway process since it started.

import { ApiError } from './api.js';

export const ERROR_TYPES = ['http_4xx', 'http_5xx', 'timeout', 'connect_error', 'plugin_error'];

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

export function blankStats() {
  return {
    attempts: Object.fromEntries(['success', ...ERROR_TYPES].map((t) => [t, 0])),
    attemptsTotal: 0,
    outcomes: { succeeded: 0, dead: 0, filtered: 0 },
    durSum: 0,
    durCount: 0,
    retries: 0,
    rateLimited: 0,
  };
}

/** Per-webhook figures, overall figures and queue depths from the samples. */
export function summarize(samples) {
  const byHook = new Map();
  const all = blankStats();
  const queue = {};
  const of = (id) => {
    if (!byHook.has(id)) byHook.set(id, blankStats());
    return byHook.get(id);
  };
  for (const { name, labels, value } of samples) {
    if (name === 'hookgate_queue_depth') {
      queue[labels.status] = value;
      continue;
    }
    if (labels.webhook === undefined || !Number.isFinite(value)) continue;
    for (const st of [of(labels.webhook), all]) {
      switch (name) {
        case 'hookgate_delivery_attempts_total':
          st.attempts[labels.result] = (st.attempts[labels.result] || 0) + value;
          st.attemptsTotal += value;
          break;
        case 'hookgate_deliveries_total':
          st.outcomes[labels.outcome] = (st.outcomes[labels.outcome] || 0) + value;
          break;
        case 'hookgate_delivery_duration_seconds_sum':
          st.durSum += value;
          break;
        case 'hookgate_delivery_duration_seconds_count':
          st.durCount += value;
          break;
        case 'hookgate_retries_total':
          st.retries += value;
          break;
        case 'hookgate_rate_limited_total':
          st.rateLimited += value;
          break;
        default:
      }
    }
  }
  return { byHook, all, queue };
}

export async function loadMetrics() {
  let resp;
  try {
    resp = await fetch('/metrics', { cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `GET /metrics did not answer (${e.message})`);
  }
  const text = await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, `http_${resp.status}`, text.slice(0, 300) || resp.statusText);
  return summarize(parseMetrics(text));
}
