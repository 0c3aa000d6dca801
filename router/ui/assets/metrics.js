// Metrics at a glance, computed here from /metrics (Prometheus text):
// requests, fallbacks, and the decision latency quantiles from the
// autorouter_route_embed_seconds histogram.

import { api } from './http.js';
import { h, $, fmtInt, fmtMS, fmtPct, plural } from './dom.js';

// parseProm reads the Prometheus text format into samples
// {name, labels, value}; comments and malformed lines are skipped.
export function parseProm(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const v = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    out.push({ name: m[1], labels, value: v });
  }
  return out;
}

// quantile is Prometheus's histogram_quantile over cumulative buckets
// [{le, count}]: linear inside the bucket the rank falls in; null with no
// observations.
export function quantile(q, buckets) {
  const bs = [...buckets].sort((a, b) => a.le - b.le);
  if (!bs.length) return null;
  const total = bs[bs.length - 1].count;
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const b of bs) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe;
      if (b.count === prevCount) return b.le;
      return prevLe + (b.le - prevLe) * ((rank - prevCount) / (b.count - prevCount));
    }
    prevLe = b.le;
    prevCount = b.count;
  }
  return prevLe;
}

function histogram(samples, name) {
  const buckets = samples.filter((s) => s.name === name + '_bucket').map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), count: s.value }));
  const count = samples.find((s) => s.name === name + '_count');
  const sum = samples.find((s) => s.name === name + '_sum');
  return { buckets, count: count ? count.value : 0, sum: sum ? sum.value : 0 };
}

// summarize computes what the view shows.
export function summarize(samples) {
  const reqs = samples.filter((s) => s.name === 'autorouter_requests_total');
  const falls = samples.filter((s) => s.name === 'autorouter_fallbacks_total');
  const sum = (xs) => xs.reduce((t, s) => t + s.value, 0);
  const embed = histogram(samples, 'autorouter_route_embed_seconds');
  const score = histogram(samples, 'autorouter_route_score_seconds');
  const q = (hist, p) => { const v = quantile(p, hist.buckets); return v === null ? null : v * 1000; };
  const byRoute = new Map();
  for (const s of reqs) {
    const k = [s.labels.endpoint, s.labels.model, s.labels.route].join('\u0000');
    const row = byRoute.get(k) || { endpoint: s.labels.endpoint, model: s.labels.model, route: s.labels.route, count: 0, errors: 0 };
    row.count += s.value;
    if (Number(s.labels.status) >= 400) row.errors += s.value;
    byRoute.set(k, row);
  }
  return {
    requests: sum(reqs),
    errors: sum(reqs.filter((s) => Number(s.labels.status) >= 400)),
    fallbacks: sum(falls),
    decisions: embed.count,
    embed: { p50: q(embed, 0.5), p90: q(embed, 0.9), p99: q(embed, 0.99), mean: embed.count ? embed.sum / embed.count * 1000 : null },
    score: { p50: q(score, 0.5), p99: q(score, 0.99) },
    routes: [...byRoute.values()].filter((r) => r.count > 0).sort((a, b) => b.count - a.count),
    fallbackReasons: falls.filter((s) => s.value > 0).map((s) => ({ router: s.labels.router, reason: s.labels.reason, count: s.value })).sort((a, b) => b.count - a.count),
    inFlight: sum(samples.filter((s) => s.name === 'autorouter_in_flight_requests')),
  };
}

let timer = null;

function stat(label, value, detail) {
  return h('div', { class: 'stat', dataset: { stat: label } }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), h('div', { class: 'detail' }, detail || ''));
}

function render(m) {
  $('#mx-stats').replaceChildren(
    stat('Requests', fmtInt(m.requests), `${plural(m.errors, 'error')} · ${fmtInt(m.inFlight)} in flight`),
    stat('Routing decisions', fmtInt(m.decisions), 'prompts embedded and scored'),
    stat('Fallbacks', fmtInt(m.fallbacks), m.decisions ? `${fmtPct(m.fallbacks / m.decisions)} of decisions went to the default model` : 'to the default model'),
    stat('Decision p50', fmtMS(m.embed.p50), 'embedding the prompt'),
    stat('Decision p90', fmtMS(m.embed.p90), 'embedding the prompt'),
    stat('Decision p99', fmtMS(m.embed.p99), `scoring adds ${fmtMS(m.score.p50)} (p50)`));
  const rows = m.routes.map((r) => h('tr', {}, h('td', {}, r.endpoint), h('td', {}, r.model), h('td', {}, r.route || '–'), h('td', { class: 'num' }, fmtInt(r.count)), h('td', { class: 'num' }, fmtInt(r.errors))));
  $('#mx-routes tbody').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No requests yet.'))]));
  const fb = m.fallbackReasons.map((r) => h('tr', {}, h('td', {}, r.router), h('td', {}, r.reason), h('td', { class: 'num' }, fmtInt(r.count))));
  $('#mx-fallbacks tbody').replaceChildren(...(fb.length ? fb : [h('tr', {}, h('td', { colspan: 3, class: 'empty' }, 'No fallbacks yet.'))]));
}

async function refresh() {
  const box = $('#mx-error');
  try {
    const resp = await api('GET', '/metrics', undefined, { raw: true });
    render(summarize(parseProm(await resp.text())));
    box.hidden = true;
  } catch (e) {
    if (e.status === 401) return;
    box.textContent = 'Could not read /metrics: ' + e.message;
    box.hidden = false;
  }
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  if ($('#mx-auto').checked && !$('#view-metrics').hidden) timer = setTimeout(async () => { await refresh(); schedule(); }, 5000);
}

export async function openMetrics() {
  await refresh();
  schedule();
}

export function closeMetrics() {
  clearTimeout(timer);
  timer = null;
}

export function initMetrics() {
  $('#mx-refresh').addEventListener('click', refresh);
  $('#mx-auto').addEventListener('change', schedule);
}
