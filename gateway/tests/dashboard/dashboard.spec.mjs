// Drives the hookgate dashboard in headless Chromium (Debian's /usr/bin/chromium
// through playwright-core). Run by gateway/tests/dashboard.rs, which starts
// Redis, a receiver and the gateway and makes the traffic this script expects:
//
//   node dashboard.spec.mjs <base url> <api token> <screenshot dir> <second gateway's base url>
//
// Two gateways share one store. Webhook `ok-hook` ("Orders service") had one
// delivery that succeeded on its second attempt (503 then 200); `dead-hook`
// ("Billing", max_retries = 0, static header X-Team) has two dead deliveries
// whose only attempt got a 500, one posted through each gateway. The
// receiver now answers 200.
// Exits 0 when every step passed; otherwise prints the failed step and exits 1.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, token, outDir, base2] = process.argv.slice(2);
if (!base || !token || !outDir || !base2) {
  console.error('usage: node dashboard.spec.mjs <base url> <api token> <screenshot dir> <second base url>');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 15000;

let step = 'launching Chromium';
const problems = [];

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function apiStats(origin, window) {
  const resp = await fetch(`${origin}/api/stats?window=${window}`, { headers: { Authorization: `Bearer ${token}` } });
  check(resp.status === 200, `GET /api/stats on ${origin} answered ${resp.status}`);
  return resp.json();
}

const pct = (r) => `${Number.isInteger(r * 100) ? r * 100 : (r * 100).toFixed(1)}%`;

/** The overview's figures on `page`, checked against the API's answer `st`. */
// The stats series is a sliding window: a minute (or bucket) can roll
// over between the page's fetch and the test's. Fetch the API's view until
// the chart starts at the same point (refreshing the page if it is the one
// behind), at most three times; checkOverview then compares them.
async function alignedStats(page, fetchStats) {
  for (let i = 0; ; i++) {
    const st = await fetchStats();
    const same = await page.waitForFunction(
      (at) => document.querySelector('#chart-deliveries g.point')?.dataset.at === at,
      st.series[0].at, { timeout: 5000 },
    ).then(() => true, () => false);
    if (same || i === 2) return st;
    await page.click('#refresh');
  }
}

async function checkOverview(page, st) {
  const t = st.totals;
  const d = t.deliveries;
  const card = (id) => page.locator(`#${id} .value`).innerText();
  check((await card('stat-deliveries')) === String(d.succeeded + d.dead + d.filtered),
    `deliveries card ${await card('stat-deliveries')} vs API ${JSON.stringify(d)}`);
  check((await card('stat-delivery-rate')) === pct(t.deliverySuccessRate),
    `delivery success card ${await card('stat-delivery-rate')} vs API ${t.deliverySuccessRate}`);
  check((await card('stat-attempt-rate')) === pct(t.attemptSuccessRate),
    `attempt success card ${await card('stat-attempt-rate')} vs API ${t.attemptSuccessRate}`);
  check((await card('stat-retries')) === String(t.retries), 'retries card');
  const bars = await page.locator('#chart-deliveries g.point').evaluateAll((gs) => gs.map((g) => ({
    at: g.dataset.at, succeeded: Number(g.dataset.succeeded), dead: Number(g.dataset.dead), filtered: Number(g.dataset.filtered),
  })));
  check(bars.length === st.series.length, `${bars.length} chart points, API series has ${st.series.length}`);
  bars.forEach((b, i) => {
    const p = st.series[i];
    check(b.at === p.at && b.succeeded === p.deliveries.succeeded && b.dead === p.deliveries.dead
      && b.filtered === p.deliveries.filtered, `chart point ${i} ${JSON.stringify(b)} vs API ${JSON.stringify(p)}`);
  });
  const sum = (k) => bars.reduce((n, b) => n + b[k], 0);
  check(sum('succeeded') === d.succeeded && sum('dead') === d.dead, 'chart totals differ from the API totals');
  check((await page.locator('#chart-deliveries rect.dead').count()) > 0, 'no dead bar drawn');
  const latencyPoints = await page.locator('#chart-latency g.point').count();
  check(latencyPoints === st.series.filter((p) => p.latencyMs.p50 !== null).length, 'latency points differ from the API');
  check((await page.locator('#chart-latency path.line.p95').count()) === 1, 'no p95 line');
  for (const w of st.webhooks) {
    const row = page.locator(`tr[data-webhook="${w.webhookId}"]`);
    const settled = w.deliveries.succeeded + w.deliveries.dead;
    await row.locator('.delivery-rate', { hasText: `${w.deliveries.succeeded} of ${settled} deliveries` }).waitFor();
    await row.locator('.success-rate', { hasText: `${w.attempts.success} of ${w.attempts.total} attempts` }).waitFor();
    await row.locator('.hook-name', { hasText: w.name }).waitFor();
  }
}

async function shot(page, name) {
  const file = path.join(outDir, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${file}`);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hookgate-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1360, height: 900 },
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
context.setDefaultTimeout(STEP_TIMEOUT);

try {
  const page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // Failed fetches (the deliberate bad token, the mocked 429) log as errors too.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin !== new URL(base).origin && u.protocol !== 'data:') problems.push(`external request: ${r.url()}`);
  });

  step = 'opening /dashboard';
  const resp = await page.goto(`${base}/dashboard`);
  check(resp.status() === 200, `GET /dashboard answered ${resp.status()}`);
  const headers = resp.headers();
  check(headers['content-type'].startsWith('text/html'), `content-type ${headers['content-type']}`);
  check((headers['content-security-policy'] || '').includes("default-src 'none'"), 'no strict CSP on /dashboard');
  check(headers['cache-control'] === 'no-cache', `cache-control ${headers['cache-control']}`);
  await page.locator('#login').waitFor({ state: 'visible' });

  step = 'a wrong token is refused and the token is asked for again';
  await page.fill('#token', 'not-the-token');
  await page.click('#login-submit');
  await page.locator('#login-error', { hasText: '401' }).waitFor();
  await shot(page, 'login-refused.png');
  check(await page.locator('#login').isVisible(), 'login form hidden after a 401');

  step = 'signing in';
  await page.fill('#token', token);
  await page.click('#login-submit');
  await page.locator('#view-overview').waitFor({ state: 'visible' });
  check(await page.evaluate(() => sessionStorage.getItem('hookgate.token')) === token, 'token not in sessionStorage');

  step = 'the webhooks table shows the fleet\'s figures from the store';
  await page.locator('#metrics-scope', { hasText: 'every gateway on this store' }).waitFor();
  const ok = page.locator('tr[data-webhook="ok-hook"]');
  const dead = page.locator('tr[data-webhook="dead-hook"]');
  await ok.locator('.success-rate', { hasText: '50%' }).waitFor();
  await ok.locator('.success-rate', { hasText: '1 of 2 attempts' }).waitFor();
  await ok.locator('.chip', { hasText: 'http_5xx 50%' }).waitFor();
  await ok.locator('td', { hasText: '50% of attempts retried' }).waitFor();
  await dead.locator('.success-rate', { hasText: '0%' }).waitFor();
  await dead.locator('.chip', { hasText: 'http_5xx 100%' }).waitFor();
  await dead.locator('td', { hasText: '2 dead' }).waitFor();
  await ok.locator('.delivery-rate', { hasText: '100%' }).waitFor();
  await dead.locator('.delivery-rate', { hasText: '0 of 2 deliveries' }).waitFor();
  check(/\d+(\.\d+)? m?s/.test(await ok.locator('.avg-response').innerText()), 'no average response time');

  step = 'the cards, charts and table match GET /api/stats of both gateways';
  const [st1, st2] = await Promise.all([apiStats(base, '1h'), apiStats(base2, '1h')]);
  check(JSON.stringify(st1.totals) === JSON.stringify(st2.totals), 'the two gateways answer different figures');
  check(st1.totals.attempts.total === 4 && st1.totals.deliveries.dead === 2 && st1.totals.deliveries.succeeded === 1,
    `unexpected fleet figures ${JSON.stringify(st1.totals)}`);
  await page.click('#refresh');
  await page.locator('#stat-delivery-rate .value', { hasText: '33.3%' }).waitFor();
  await page.locator('#stat-attempt-rate .value', { hasText: '25%' }).waitFor();
  await checkOverview(page, await alignedStats(page, () => apiStats(base, '1h')));
  await shot(page, 'overview.png');

  step = 'a longer window: coarser points, the same figures';
  await page.selectOption('#window', '24h');
  await page.locator('#deliveries-step', { hasText: 'per 15 minutes' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#chart-deliveries g.point').length === 96);
  await checkOverview(page, await alignedStats(page, () => apiStats(base, '24h')));
  await page.selectOption('#window', '7d');
  await page.locator('#deliveries-step', { hasText: 'per hour' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('#chart-deliveries g.point').length === 168);
  await checkOverview(page, await alignedStats(page, () => apiStats(base, '7d')));
  await page.selectOption('#window', '1h');
  await page.waitForFunction(() => document.querySelectorAll('#chart-deliveries g.point').length === 60);

  step = 'the other gateway\'s dashboard shows the same figures';
  const page2 = await context.newPage();
  page2.on('pageerror', (e) => problems.push(`page error (second gateway): ${e.message}`));
  await page2.goto(`${base2}/dashboard`);
  await page2.fill('#token', token);
  await page2.click('#login-submit');
  await page2.locator('#view-overview').waitFor({ state: 'visible' });
  await page2.locator('#stat-delivery-rate .value', { hasText: '33.3%' }).waitFor();
  await checkOverview(page2, await alignedStats(page2, () => apiStats(base2, '1h')));
  await shot(page2, 'overview-second-gateway.png');
  await page2.close();

  step = 'the delivery history lists every delivery, newest first';
  await page.click('#tabs a[data-tab="deliveries"]');
  await page.locator('#view-deliveries').waitFor({ state: 'visible' });
  const rows = page.locator('#deliveries-body tr[data-id]');
  await rows.nth(2).waitFor();
  check((await rows.count()) === 3, `expected 3 deliveries, saw ${await rows.count()}`);
  const created = await rows.evaluateAll((trs) => trs.map((tr) => tr.children[5].getAttribute('title')));
  check(created.every((t, i) => i === 0 || created[i - 1] >= t), `not newest first: ${created}`);
  await page.locator('#deliveries-body .hook-ref[data-webhook="dead-hook"] .hook-name', { hasText: 'Billing' }).first().waitFor();
  await page.locator('#deliveries-body .hook-ref[data-webhook="ok-hook"] .hook-name', { hasText: 'Orders service' }).waitFor();

  step = 'filtering by status=dead';
  await page.selectOption('#f-status', 'dead');
  await page.click('#apply-filters');
  await page.waitForFunction(() => {
    const trs = [...document.querySelectorAll('#deliveries-body tr[data-id]')];
    return trs.length === 2 && trs.every((tr) => tr.dataset.status === 'dead');
  });
  check(page.url().includes('status=dead'), `filter not in the URL: ${page.url()}`);
  await shot(page, 'deliveries-dead.png');

  step = 'paging with "next page"';
  await page.selectOption('#f-limit', '20');
  await page.click('#apply-filters');
  check(await page.locator('#next-page').isDisabled(), 'next page enabled with everything on one page');

  step = 'opening a dead delivery: payload, headers, the attempt with 500';
  const deadId = await rows.first().getAttribute('data-id');
  await rows.first().click();
  await page.locator('#view-delivery').waitFor({ state: 'visible' });
  await page.locator('#delivery-title', { hasText: deadId }).waitFor();
  await page.locator('#delivery-facts .badge.dead').waitFor();
  await page.locator('#delivery-facts .hook-ref .hook-name', { hasText: 'Billing' }).waitFor();
  await page.locator('#delivery-payload', { hasText: '"invoice": 7' }).waitFor();
  const payloadText = await page.locator('#delivery-payload').innerText();
  check(payloadText.includes('<img src=x onerror='), 'untrusted payload markup not shown as text');
  check((await page.locator('#delivery-payload img').count()) === 0, 'payload markup became an element');
  check(await page.evaluate(() => window.xssFired === undefined), 'payload script ran');
  const headerValue = async (name) => {
    const row = page.locator('#delivery-headers tr', { has: page.locator('th', { hasText: new RegExp(`^${name}$`) }) });
    return row.locator('td').innerText();
  };
  check((await headerValue('X-Delivery-ID')) === deadId, 'X-Delivery-ID header');
  check((await headerValue('X-Webhook-ID')) === 'dead-hook', 'X-Webhook-ID header');
  check((await headerValue('X-Event-Type')) === 'invoice.created', 'X-Event-Type header');
  check((await headerValue('X-Team')) === 'billing', 'static header X-Team');
  check((await headerValue('X-Hub-Signature')) === '<signed per attempt>', 'signature placeholder');
  check((await headerValue('User-Agent')).startsWith('hookgate/'), 'User-Agent header');
  const attempt = page.locator('#attempts-body tr[data-attempt="1"]');
  await attempt.locator('.status-code', { hasText: '500' }).waitFor();
  await attempt.locator('pre.body', { hasText: 'boom <b>' }).waitFor();
  check((await page.locator('#attempts-body b').count()) === 0, 'response body markup became an element');
  await shot(page, 'delivery-dead.png');

  step = 'retrying the dead delivery until it succeeds';
  await page.click('#retry-delivery');
  await page.locator('#delivery-facts .badge.succeeded').waitFor({ timeout: 30000 });
  await page.locator('#retry-result', { hasText: 'succeeded on attempt 2' }).waitFor();
  await page.locator('#attempts-body tr[data-attempt="2"] .status-code', { hasText: '200' }).waitFor();
  check(await page.locator('#retry-delivery').isEnabled(), 'retry disabled on a succeeded delivery');
  await shot(page, 'delivery-retried.png');

  step = 'replaying the remaining dead letter';
  await page.click('#tabs a[data-tab="dead-letters"]');
  await page.locator('#view-dead-letters').waitFor({ state: 'visible' });
  await page.waitForFunction(() => document.querySelectorAll('#dead-body tr[data-id]').length === 1);
  check((await page.locator('#dead-body tr[data-id]').getAttribute('data-id')) !== deadId, 'retried delivery still dead');
  await shot(page, 'dead-letters.png');
  await page.click('#replay-dead');
  await page.locator('#replay-result', { hasText: 'Replayed 1 dead letter' }).waitFor();
  await page.locator('#dead-body td.empty').waitFor({ timeout: 30000 });

  step = 'a 429 from the API is shown with its Retry-After';
  await page.route(/\/api\/webhooks(\?|$)/, (route) => route.fulfill({
    status: 429,
    headers: { 'content-type': 'application/json', 'retry-after': '7' },
    body: JSON.stringify({ error: { code: 'rate_limited', message: 'too many requests for this token' } }),
  }), { times: 1 });
  await page.click('#tabs a[data-tab="overview"]');
  await page.locator('.alert', { hasText: 'Retry after 7 s' }).waitFor();
  await page.locator('.alert', { hasText: 'too many requests for this token' }).waitFor();
  await page.locator('.alert button').click();

  step = 'the overview after the retry and the replay';
  await page.click('#refresh');
  await page.locator('tr[data-webhook="dead-hook"] .success-rate', { hasText: '2 of 4 attempts' }).waitFor();
  await shot(page, 'overview-after.png');

  step = 'a narrow screen';
  await page.setViewportSize({ width: 420, height: 900 });
  await page.goto(`${base}/dashboard#delivery/${encodeURIComponent(deadId)}`);
  await page.locator('#delivery-facts .badge.succeeded').waitFor();
  await shot(page, 'delivery-narrow.png');

  step = 'no script errors, CSP violations or external requests';
  check(problems.length === 0, problems.join('\n'));
  console.log('dashboard: all steps passed');
} catch (e) {
  console.error(`dashboard test failed at step "${step}": ${e.message}`);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
