// hookgate delivery dashboard (docs/operations.md). Plain JavaScript modules, no build
// step, no external resources. It reads the gateway's own API with a bearer
// token kept in sessionStorage: GET /api/stats for the figures of every
// gateway on the store over a chosen window (charts drawn by charts.js), and
// /metrics (no auth) for the queue depths. Views: webhooks (overview),
// delivery history, one delivery, dead letters; the URL hash names the view,
// so the back button and links work. Webhooks are shown by name everywhere.
//
// Safety: everything from the API (payloads, headers, response bodies, names)
// is untrusted. The page never uses innerHTML: every node is made by `h()`
// (ui.js), which puts strings in as text nodes, so nothing inserted can become
// markup. The server also sends a Content-Security-Policy without inline script.

import { ApiError, TOKEN_KEY, api, query } from './api.js';
import { deliveriesChart, latencyChart } from './charts.js';
import { loadQueue } from './metrics.js';
import { badge, emptyRow, fill, fmtCount, fmtMs, fmtPct, fmtTime, h, timeCell } from './ui.js';

const REFRESH_MS = 5000;
const FAST_POLL_MS = 1000;
const FAST_POLL_FOR_MS = 60000;
const RETRYABLE = new Set(['dead', 'succeeded', 'filtered']);
const WINDOW_KEY = 'hookgate.window';
// Attempt results that are errors: API field -> label (as in the metrics).
const ERROR_TYPES = [['http4xx', 'http_4xx'], ['http5xx', 'http_5xx'], ['timeout', 'timeout'],
  ['connectError', 'connect_error'], ['pluginError', 'plugin_error']];

const $ = (id) => document.getElementById(id);

// ---------- errors ----------

const alerts = new Map(); // context -> element
let pausedUntil = 0; // auto-refresh pauses after a 429

function showAlert(context, title, body, kind) {
  clearAlert(context);
  const el = h('div', { class: `alert ${kind || ''}`, 'data-context': context },
    h('div', { class: 'alert-body' }, h('span', { class: 'alert-title' }, title), ' ', body),
    h('button', { type: 'button', class: 'ghost', onclick: () => clearAlert(context) }, 'Dismiss'));
  alerts.set(context, el);
  $('alerts').append(el);
}

function clearAlert(context) {
  const el = alerts.get(context);
  if (el) el.remove();
  alerts.delete(context);
}

function clearAlerts() {
  for (const c of [...alerts.keys()]) clearAlert(c);
}

/** Shows an error from `context` (e.g. "Loading deliveries"); never swallows it. */
function report(context, err) {
  if (err instanceof ApiError && err.status === 401) {
    signOut(`The gateway refused the token (401 ${err.code}: ${err.message}). Enter a valid API token.`);
    return;
  }
  if (err instanceof ApiError && err.status === 429) {
    const secs = Number.parseInt(err.retryAfter, 10);
    const wait = Number.isFinite(secs) ? secs : 10;
    pausedUntil = Date.now() + wait * 1000;
    showAlert(context, 'Rate limited (429).',
      `${err.message} Retry after ${err.retryAfter ?? '?'} s (Retry-After); auto-refresh pauses until then.`, 'warn');
    return;
  }
  if (err instanceof ApiError) {
    const what = err.status ? `${err.status} ${err.code}` : err.code;
    showAlert(context, `${context} failed:`, `${what}: ${err.message}`);
    return;
  }
  showAlert(context, `${context} failed:`, String(err && err.message ? err.message : err));
}

// ---------- webhooks (overview) ----------

let webhooks = [];

function fillWebhookSelects() {
  for (const sel of [$('f-webhook'), $('dl-webhook')]) {
    const current = sel.value;
    fill(sel, h('option', { value: '' }, 'All webhooks'),
      webhooks.map((w) => h('option', { value: w.id }, w.name && w.name !== w.id ? `${w.name} (${w.id})` : w.id)));
    if (current && !webhooks.some((w) => w.id === current)) sel.append(h('option', { value: current }, current));
    sel.value = current;
  }
}

// GET /api/webhooks is paged: follow nextCursor, up to WEBHOOK_PAGES pages
// of 500 (a refresh every few seconds stays well under the API rate limit).
const WEBHOOK_PAGES = 20;

async function loadWebhooks() {
  const all = [];
  let cursor = null;
  for (let page = 0; page < WEBHOOK_PAGES; page++) {
    const query = cursor ? `?limit=500&cursor=${encodeURIComponent(cursor)}` : '?limit=500';
    const answer = await api('GET', `/api/webhooks${query}`);
    if (Array.isArray(answer && answer.data)) all.push(...answer.data);
    cursor = answer && typeof answer.nextCursor === 'string' ? answer.nextCursor : null;
    if (!cursor) break;
  }
  if (cursor) {
    showAlert('Webhook list', `Showing the first ${fmtCount(all.length)} webhooks.`,
      'Page through the rest with GET /api/webhooks?cursor=…', 'warn');
  } else clearAlert('Webhook list');
  webhooks = all;
  fillWebhookSelects();
  return webhooks;
}

/** A webhook shown by name, with its id below (the id alone if unknown). */
function hookRef(id, link) {
  const w = webhooks.find((x) => x.id === id);
  const name = w && w.name && w.name !== id ? w.name : null;
  const main = link ? h('a', { href: link, class: name ? 'hook-name' : 'id' }, name || id) : h('span', { class: name ? 'hook-name' : 'id' }, name || id);
  return h('span', { class: 'hook-ref', 'data-webhook': id, title: id }, main, name ? h('span', { class: 'sub id' }, id) : null);
}

function rateCell(ratio, detail, cls) {
  if (!Number.isFinite(ratio)) return h('td', { class: cls }, h('span', { class: 'muted' }, '—'), h('div', { class: 'sub' }, detail));
  const fillEl = h('span');
  fillEl.style.width = `${Math.max(0, Math.min(100, ratio * 100))}%`;
  const level = ratio >= 0.95 ? '' : ratio >= 0.8 ? 'mid' : 'low';
  return h('td', { class: cls },
    h('div', { class: 'rate' }, h('span', { class: 'pct' }, fmtPct(ratio)), h('span', { class: `bar ${level}` }, fillEl)),
    h('div', { class: 'sub' }, detail));
}

function errorChips(f) {
  const total = f.attempts.total;
  const chips = ERROR_TYPES.filter(([k]) => f.attempts[k] > 0).map(([k, label]) =>
    h('span', { class: 'chip bad', title: `${fmtCount(f.attempts[k])} of ${fmtCount(total)} attempts` },
      `${label} ${fmtPct(f.attempts[k] / total)}`));
  return chips.length ? h('div', { class: 'chips' }, chips) : h('span', { class: 'muted' }, 'none');
}

// The circuit breaker: nothing when closed; open or probing with the time
// of the next probe.
function circuitNote(c) {
  if (!c || c.state === 'closed') return null;
  const label = c.state === 'open' ? 'circuit open' : 'circuit half-open (probing)';
  return h('div', { class: 'sub circuit', 'data-circuit': c.state },
    badge(label), c.nextProbeAt ? ` next probe ${new Date(c.nextProbeAt).toLocaleTimeString()}` : '');
}

function blankFigures() {
  return {
    attempts: { total: 0, success: 0, http4xx: 0, http5xx: 0, timeout: 0, connectError: 0, pluginError: 0 },
    deliveries: { succeeded: 0, dead: 0, filtered: 0 },
    retries: 0,
    rateLimited: 0,
    attemptSuccessRate: null,
    deliverySuccessRate: null,
    latencyMs: { mean: null, p50: null, p95: null },
  };
}

function webhookRow(w, f, registered) {
  const total = f.attempts.total;
  const d = f.deliveries;
  const settled = d.succeeded + d.dead;
  return h('tr', { 'data-webhook': w.id },
    h('td', {},
      h('div', {}, h('span', { class: 'hook-name' }, w.name || w.id), ' ',
        registered ? badge(w.enabled ? 'enabled' : 'disabled') : badge('removed'),
        w.testMode ? h('span', { class: 'badge test' }, 'test mode') : null,
        w.source ? h('span', { class: 'badge source' }, w.source) : null),
      h('div', { class: 'id' }, w.id),
      w.url ? h('div', { class: 'hook-url' }, w.url) : null,
      w.disabledReason ? h('div', { class: 'sub' }, `disabled: ${w.disabledReason}`) : null,
      circuitNote(w.circuit),
      ...(w.plugins || []).filter((p) => p.reloadError)
        .map((p) => h('div', { class: 'sub reload-error' }, `plugin ${p.path}: ${p.reloadError}`))),
    h('td', { class: 'nowrap deliveries' },
      h('div', {}, `${fmtCount(d.succeeded)} succeeded`),
      h('div', { class: 'sub' }, `${fmtCount(d.dead)} dead · ${fmtCount(d.filtered)} filtered`)),
    rateCell(f.deliverySuccessRate ?? NaN,
      settled ? `${fmtCount(d.succeeded)} of ${fmtCount(settled)} deliveries` : 'none finished', 'delivery-rate'),
    rateCell(f.attemptSuccessRate ?? NaN,
      total ? `${fmtCount(f.attempts.success)} of ${fmtCount(total)} attempts` : 'no attempts', 'success-rate'),
    h('td', { class: 'nowrap avg-response' }, Number.isFinite(f.latencyMs.mean) ? fmtMs(f.latencyMs.mean) : '—',
      Number.isFinite(f.latencyMs.p95) ? h('div', { class: 'sub' }, `p95 ${fmtMs(f.latencyMs.p95)}`) : null),
    h('td', {}, errorChips(f)),
    h('td', { class: 'nowrap retries' }, fmtCount(f.retries),
      h('div', { class: 'sub' }, total ? `${fmtPct(f.retries / total)} of attempts retried` : '—')),
    h('td', { class: 'nowrap rate-limited' }, fmtCount(f.rateLimited)));
}

function stat(label, value, hint, id) {
  return h('div', { class: 'stat', id }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value),
    h('div', { class: 'hint' }, hint));
}

const WINDOW_NAMES = { '1h': 'the last hour', '24h': 'the last 24 hours', '7d': 'the last 7 days' };
const STEP_NAMES = { 60: 'per minute', 900: 'per 15 minutes', 3600: 'per hour' };

function pickedWindow() {
  const w = $('window').value;
  return WINDOW_NAMES[w] ? w : '1h';
}

async function showOverview() {
  const win = pickedWindow();
  const [hooks, stats, queue] = await Promise.allSettled([
    loadWebhooks(), api('GET', `/api/stats${query({ window: win })}`), loadQueue()]);
  for (const [result, context] of [[hooks, 'Loading webhooks'], [stats, 'Loading statistics'], [queue, 'Reading /metrics']]) {
    if (result.status === 'rejected') report(context, result.reason);
    else clearAlert(context);
  }
  if (hooks.status === 'rejected' && stats.status === 'rejected') return false;
  const st = stats.status === 'fulfilled' && stats.value ? stats.value : null;
  const q = queue.status === 'fulfilled' ? queue.value : {};
  const all = st ? st.totals : blankFigures();
  const d = all.deliveries;
  $('metrics-scope').textContent = `Figures of every gateway on this store over ${WINDOW_NAMES[win]} ` +
    '(GET /api/stats); each gateway adds its own every second.';
  fill($('summary'),
    stat('Deliveries', fmtCount(d.succeeded + d.dead + d.filtered),
      `${fmtCount(d.succeeded)} succeeded · ${fmtCount(d.dead)} dead · ${fmtCount(d.filtered)} filtered`, 'stat-deliveries'),
    stat('Delivery success', fmtPct(all.deliverySuccessRate ?? NaN),
      'finally delivered, of succeeded + dead', 'stat-delivery-rate'),
    stat('Attempt success', fmtPct(all.attemptSuccessRate ?? NaN),
      `${fmtCount(all.attempts.success)} of ${fmtCount(all.attempts.total)} attempts`, 'stat-attempt-rate'),
    stat('Response time', fmtMs(all.latencyMs.p50 ?? NaN),
      `p50 · p95 ${fmtMs(all.latencyMs.p95 ?? NaN)}`, 'stat-latency'),
    stat('Retries', fmtCount(all.retries), `${fmtCount(all.rateLimited)} rate-limit hits`, 'stat-retries'),
    stat('Queued', fmtCount((q.pending || 0) + (q.failed || 0)), `${fmtCount(q.in_flight || 0)} in flight`),
    stat('Dead letters', fmtCount(q.dead || 0), 'in the store'));
  if (st) {
    $('deliveries-step').textContent = STEP_NAMES[st.stepSeconds] || `per ${st.stepSeconds} s`;
    fill($('chart-deliveries'), deliveriesChart(st.series, st.stepSeconds));
    fill($('chart-latency'), latencyChart(st.series, st.stepSeconds));
  }
  const per = new Map((st && Array.isArray(st.webhooks) ? st.webhooks : []).map((w) => [w.webhookId, w]));
  const rows = webhooks.map((w) => webhookRow(w, per.get(w.id) || blankFigures(), true));
  for (const [id, f] of per) {
    if (!webhooks.some((w) => w.id === id)) rows.push(webhookRow({ id, name: f.name || id }, f, false));
  }
  if (st && st.webhooksTruncated) {
    rows.push(h('tr', {}, h('td', { class: 'empty', colspan: 8 },
      'More webhooks had figures than one answer lists; pick one in the delivery history to see it.')));
  }
  fill($('webhooks-body'), rows.length ? rows : emptyRow(8, 'No webhooks yet. Register one with POST /api/webhooks.'));
  return true;
}

// ---------- delivery history ----------

const history = { filters: {}, cursor: null, nextCursor: null, page: 1 };

function deliveryRow(d, cols) {
  const open = () => { location.hash = `#delivery/${encodeURIComponent(d.id)}`; };
  const cells = {
    id: h('td', {}, h('a', { class: 'id', href: `#delivery/${encodeURIComponent(d.id)}` }, d.id)),
    webhook: h('td', {}, hookRef(d.webhookId)),
    type: h('td', {}, d.eventType, d.test ? h('span', { class: 'badge test' }, 'test') : null),
    status: h('td', {}, badge(d.status)),
    attempts: h('td', {}, fmtCount(d.attemptCount)),
    created: timeCell(d.createdAt),
    updated: timeCell(d.updatedAt),
  };
  return h('tr', { 'data-id': d.id, 'data-status': d.status, onclick: open }, cols.map((c) => cells[c]));
}

function readFilters() {
  return {
    webhookId: $('f-webhook').value,
    status: $('f-status').value,
    eventType: $('f-event').value.trim(),
    limit: $('f-limit').value,
  };
}

function writeFilters(f) {
  if (f.webhookId && ![...$('f-webhook').options].some((o) => o.value === f.webhookId)) {
    $('f-webhook').append(h('option', { value: f.webhookId }, f.webhookId));
  }
  $('f-webhook').value = f.webhookId || '';
  $('f-status').value = f.status || '';
  $('f-event').value = f.eventType || '';
  if (f.limit && ![...$('f-limit').options].some((o) => o.value === f.limit)) {
    $('f-limit').append(h('option', {}, f.limit));
  }
  $('f-limit').value = f.limit || '50';
}

async function showDeliveries() {
  const f = history.filters;
  const page = await api('GET', `/api/deliveries${query({ ...f, limit: f.limit || 50, cursor: history.cursor })}`);
  clearAlert('Loading deliveries');
  const data = Array.isArray(page && page.data) ? page.data : [];
  history.nextCursor = page && page.nextCursor ? page.nextCursor : null;
  const cols = ['id', 'webhook', 'type', 'status', 'attempts', 'created', 'updated'];
  fill($('deliveries-body'), data.length ? data.map((d) => deliveryRow(d, cols)) : emptyRow(7, 'No deliveries match.'));
  $('page-info').textContent = `Page ${history.page} · ${data.length} deliver${data.length === 1 ? 'y' : 'ies'}` +
    (history.nextCursor ? ' · more on the next page' : '');
  $('next-page').disabled = !history.nextCursor;
  $('first-page').disabled = history.page === 1;
  return true;
}

// ---------- one delivery ----------

let fastPollUntil = 0;
let current = null; // the delivery on screen

function facts(d) {
  const item = (k, ...v) => h('div', {}, h('dt', {}, k), h('dd', {}, v));
  return [
    item('Status', badge(d.status), d.test ? h('span', { class: 'badge test' }, 'test') : null),
    item('Webhook', hookRef(d.webhookId, `#deliveries${query({ webhookId: d.webhookId })}`)),
    item('Event type', d.eventType),
    item('Event', h('span', { class: 'id' }, d.eventId)),
    item('Attempts', fmtCount(d.attemptCount)),
    item('Created', h('span', { title: d.createdAt }, fmtTime(d.createdAt))),
    item('Updated', h('span', { title: d.updatedAt }, fmtTime(d.updatedAt))),
    d.nextAttemptAt ? item('Next attempt', h('span', { title: d.nextAttemptAt }, fmtTime(d.nextAttemptAt))) : null,
  ];
}

function headerRows(headers) {
  const entries = Object.entries(headers && typeof headers === 'object' ? headers : {});
  if (!entries.length) return h('tr', {}, h('td', { class: 'placeholder' }, 'not reported by this gateway'));
  return entries.map(([k, v]) => {
    const s = String(v);
    const placeholder = s.startsWith('<') && s.endsWith('>');
    return h('tr', {}, h('th', {}, k), h('td', { class: placeholder ? 'placeholder' : '' }, s));
  });
}

function attemptRow(a) {
  const code = a.statusCode;
  const ok = code >= 200 && code < 300;
  return h('tr', { 'data-attempt': a.attempt },
    h('td', {}, a.attempt),
    timeCell(a.startedAt),
    h('td', { class: 'nowrap' }, fmtMs(a.durationMs)),
    h('td', { class: `status-code ${code === undefined ? 'muted' : ok ? 'code-ok' : 'code-bad'}` }, code ?? '—'),
    h('td', { class: 'attempt-error' }, a.error
      || (a.filtered ? h('span', { class: 'muted' }, `filtered by a plugin: ${a.filtered}`) : h('span', { class: 'muted' }, '—'))),
    h('td', {}, a.responseBody ? h('pre', { class: 'body' }, a.responseBody) : h('span', { class: 'muted' }, '—')));
}

async function showDelivery(id) {
  const d = await api('GET', `/api/deliveries/${encodeURIComponent(id)}`);
  clearAlert('Loading the delivery');
  current = d;
  $('delivery-title').textContent = d.id;
  fill($('delivery-facts'), facts(d));
  const payload = d.payload === undefined ? '(no payload stored)'
    : typeof d.payload === 'string' ? d.payload : JSON.stringify(d.payload, null, 2);
  $('delivery-payload').textContent = payload;
  fill($('delivery-headers'), headerRows(d.headers));
  $('headers-note').textContent = d.headersNote || '';
  const attempts = Array.isArray(d.attempts) ? d.attempts : [];
  fill($('attempts-body'), attempts.length ? attempts.map(attemptRow) : emptyRow(6, 'No attempts yet.'));
  const retry = $('retry-delivery');
  retry.disabled = !RETRYABLE.has(d.status);
  retry.title = retry.disabled ? `This delivery is ${d.status}: it is already queued.` : 'Queue it again (same delivery id)';
  if (RETRYABLE.has(d.status) && fastPollUntil) {
    fastPollUntil = 0;
    const outcome = {
      succeeded: `Retried: the delivery succeeded on attempt ${d.attemptCount}.`,
      dead: `Retried: attempt ${d.attemptCount} failed too; the delivery is dead again.`,
      filtered: 'Retried: a plugin dropped it (filtered).',
    };
    setResult('retry-result', outcome[d.status], d.status !== 'succeeded');
  }
  return true;
}

function setResult(id, text, bad) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle('bad', Boolean(bad));
}

async function retryDelivery() {
  if (!current) return;
  const id = current.id;
  const button = $('retry-delivery');
  button.disabled = true;
  setResult('retry-result', 'Queuing…');
  try {
    await api('POST', `/api/deliveries/${encodeURIComponent(id)}/retry`);
    clearAlert('Retrying the delivery');
    setResult('retry-result', 'Queued again with the same delivery id; waiting for the attempt…');
    fastPollUntil = Date.now() + FAST_POLL_FOR_MS;
    await refresh();
  } catch (e) {
    setResult('retry-result', '');
    report('Retrying the delivery', e);
    button.disabled = false;
  }
}

// ---------- dead letters ----------

const dead = { cursor: null, nextCursor: null, page: 1 };

async function showDeadLetters() {
  const webhookId = $('dl-webhook').value;
  const page = await api('GET', `/api/dead-letters${query({ webhookId, limit: 50, cursor: dead.cursor })}`);
  clearAlert('Loading dead letters');
  const data = Array.isArray(page && page.data) ? page.data : [];
  dead.nextCursor = page && page.nextCursor ? page.nextCursor : null;
  fill($('dead-body'), data.length ? data.map((d) => deliveryRow(d, ['id', 'webhook', 'type', 'attempts', 'updated']))
    : emptyRow(5, 'No dead letters. Everything was delivered or is still being tried.'));
  $('dead-info').textContent = `Page ${dead.page} · ${data.length} dead letter${data.length === 1 ? '' : 's'}` +
    (dead.nextCursor ? ' · more on the next page' : '');
  $('dead-next').disabled = !dead.nextCursor;
  $('dead-first').disabled = dead.page === 1;
  return true;
}

async function replayDead(ev) {
  ev.preventDefault();
  const webhookId = $('dl-webhook').value;
  const button = $('replay-dead');
  button.disabled = true;
  setResult('replay-result', 'Replaying…');
  try {
    const answer = await api('POST', '/api/dead-letters/replay', webhookId ? { webhookId } : {});
    clearAlert('Replaying dead letters');
    const n = answer && Number.isFinite(answer.replayed) ? answer.replayed : 0;
    setResult('replay-result', `Replayed ${n} dead letter${n === 1 ? '' : 's'}` +
      `${webhookId ? ` of ${webhookId}` : ''}: queued again with their delivery ids.`);
    dead.cursor = null;
    dead.page = 1;
    await refresh();
  } catch (e) {
    setResult('replay-result', '');
    report('Replaying dead letters', e);
  } finally {
    button.disabled = false;
  }
}

// ---------- routing and refresh ----------

let view = { name: 'overview' };
let loadSeq = 0;
let lastRefresh = 0;

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const [path, qs] = raw.split('?', 2);
  if (path.startsWith('delivery/')) return { name: 'delivery', id: decodeURIComponent(path.slice(9)) };
  if (path === 'deliveries') {
    const q = new URLSearchParams(qs || '');
    return {
      name: 'deliveries',
      filters: {
        webhookId: q.get('webhookId') || '', status: q.get('status') || '',
        eventType: q.get('eventType') || '', limit: q.get('limit') || '',
      },
    };
  }
  if (path === 'dead-letters') return { name: 'dead-letters' };
  return { name: 'overview' };
}

function showView(name) {
  for (const v of ['overview', 'deliveries', 'delivery', 'dead-letters']) $(`view-${v}`).hidden = v !== name;
  const tab = name === 'delivery' ? 'deliveries' : name;
  for (const a of document.querySelectorAll('#tabs a')) a.classList.toggle('active', a.dataset.tab === tab);
}

const LOADERS = {
  overview: ['Loading webhooks', () => showOverview()],
  deliveries: ['Loading deliveries', () => showDeliveries()],
  delivery: ['Loading the delivery', () => showDelivery(view.id)],
  'dead-letters': ['Loading dead letters', () => showDeadLetters()],
};

/** Reloads the current view; a newer load wins over a slower older one. */
async function refresh() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  lastRefresh = Date.now();
  const seq = ++loadSeq;
  const [context, load] = LOADERS[view.name];
  try {
    const ok = await load();
    if (seq === loadSeq && ok) $('updated').textContent = `Updated ${fmtTime(new Date().toISOString()).slice(11)}`;
  } catch (e) {
    if (seq === loadSeq) report(context, e);
  }
}

function route() {
  const next = parseHash();
  if (next.name === 'deliveries') {
    const same = view.name === 'deliveries' && JSON.stringify(next.filters) === JSON.stringify(history.filters);
    if (!same) Object.assign(history, { filters: next.filters, cursor: null, nextCursor: null, page: 1 });
    writeFilters(next.filters);
  }
  if (next.name !== 'delivery' || next.id !== view.id) {
    setResult('retry-result', '');
    fastPollUntil = 0;
  }
  view = next;
  showView(view.name);
  if (!webhooks.length && view.name !== 'overview') {
    loadWebhooks().catch((e) => report('Loading webhooks', e));
  }
  refresh();
}

/** Runs every second: polls fast after a retry, else every REFRESH_MS if auto-refresh is on. */
function tick() {
  const now = Date.now();
  if (!sessionStorage.getItem(TOKEN_KEY) || now < pausedUntil || document.hidden) return;
  const fast = view.name === 'delivery' && now < fastPollUntil;
  if (fast || ($('auto-refresh').checked && now - lastRefresh >= REFRESH_MS)) refresh();
}

// ---------- session ----------

function signIn(firstView) {
  $('login').hidden = true;
  $('tabs').hidden = false;
  $('session').hidden = false;
  if (firstView) route();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearAlerts();
  for (const v of document.querySelectorAll('.view')) v.hidden = true;
  $('tabs').hidden = true;
  $('session').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').value = '';
  $('token').focus();
}

async function submitLogin(ev) {
  ev.preventDefault();
  const token = $('token').value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login-submit').disabled = true;
  $('login-error').textContent = '';
  try {
    await loadWebhooks();
    signIn(true);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut(`The gateway refused this token (401 ${e.code}): ${e.message}`);
    } else {
      signIn(true);
      report('Checking the token', e);
    }
  } finally {
    $('login-submit').disabled = false;
  }
}

function init() {
  $('login-form').addEventListener('submit', submitLogin);
  $('sign-out').addEventListener('click', () => signOut(''));
  $('refresh').addEventListener('click', () => { pausedUntil = 0; refresh(); });
  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = readFilters();
    const hash = `#deliveries${query(f)}`;
    if (location.hash === hash) {
      Object.assign(history, { cursor: null, nextCursor: null, page: 1 });
      refresh();
    } else {
      location.hash = hash;
    }
  });
  $('clear-filters').addEventListener('click', () => { location.hash = '#deliveries'; });
  $('next-page').addEventListener('click', () => {
    if (!history.nextCursor) return;
    Object.assign(history, { cursor: history.nextCursor, page: history.page + 1 });
    refresh();
  });
  $('first-page').addEventListener('click', () => {
    Object.assign(history, { cursor: null, page: 1 });
    refresh();
  });
  const savedWindow = localStorage.getItem(WINDOW_KEY);
  if (savedWindow && WINDOW_NAMES[savedWindow]) $('window').value = savedWindow;
  $('window').addEventListener('change', () => {
    localStorage.setItem(WINDOW_KEY, pickedWindow());
    refresh();
  });
  $('retry-delivery').addEventListener('click', retryDelivery);
  $('replay-form').addEventListener('submit', replayDead);
  $('dl-webhook').addEventListener('change', () => {
    Object.assign(dead, { cursor: null, page: 1 });
    setResult('replay-result', '');
    refresh();
  });
  $('dead-next').addEventListener('click', () => {
    if (!dead.nextCursor) return;
    Object.assign(dead, { cursor: dead.nextCursor, page: dead.page + 1 });
    refresh();
  });
  $('dead-first').addEventListener('click', () => {
    Object.assign(dead, { cursor: null, page: 1 });
    refresh();
  });
  window.addEventListener('hashchange', () => { if (sessionStorage.getItem(TOKEN_KEY)) route(); });
  setInterval(tick, FAST_POLL_MS);
  if (sessionStorage.getItem(TOKEN_KEY)) {
    signIn(false);
    route();
  } else {
    signOut('');
  }
}

init();
