// Threshold help: labelled prompts (the 'autorouter eval' JSONL) run
// through POST /ui/api/eval; the page shows in-scope accuracy and
// out-of-scope recall before and after fitting, and saves the fitted
// thresholds into a stored router.

import { api } from './http.js';
import { h, $, fmtPct, fmtInt, fmtMS, plural, fieldError, clearErrors, clearOnEdit, notify } from './dom.js';
import { routers, loadModels, routerConfig } from './models.js';
import { info } from './info.js';

// last is the evaluation on show: {router, res}.
let last = null;

const lines = (text) => text.split('\n').filter((l) => l.trim()).length;
const round2 = (x) => Math.round(x * 100) / 100;

function countRows() {
  const n = lines($('#th-data').value);
  $('#th-count').textContent = n ? plural(n, 'labelled prompt') + '.' : '';
  return n;
}

// storedRouter is the router's one stored deployment, or null (config
// routers cannot be written through the API).
function storedRouter(name) {
  const g = routers().find((r) => r.name === name);
  if (!g || g.deployments.length !== 1 || !(g.deployments[0].model_info || {}).db_model) return null;
  return g.deployments[0];
}

export async function openThresholds(router) {
  try { await loadModels(); } catch (e) { if (e.status === 401) return; }
  const sel = $('#th-router');
  const prev = router || sel.value;
  const names = routers().map((g) => g.name);
  sel.replaceChildren(...(names.length ? names.map((n) => h('option', { value: n }, n)) : [h('option', { value: '' }, 'No auto routers yet')]));
  if (names.includes(prev)) sel.value = prev;
}

function change(before, after, fmt = fmtPct) {
  if (after === undefined || after === null) return fmt(before);
  return `${fmt(before)} → ${fmt(after)}`;
}

function delta(before, after) {
  if (after === undefined || after === null) return null;
  const d = (after - before) * 100;
  if (Math.abs(d) < 0.05) return h('span', {}, ' (no change)');
  return h('span', { class: d > 0 ? 'up' : 'down' }, ` (${d > 0 ? '+' : ''}${d.toFixed(1)} points)`);
}

function stat(label, value, detail, extra) {
  return h('div', { class: 'stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), h('div', { class: 'detail' }, detail, extra || null));
}

function render(router, res) {
  last = { router, res };
  const b = res.before;
  const a = res.after;
  $('#th-summary').replaceChildren(
    stat('In-scope accuracy', change(b.in_scope_accuracy, a && a.in_scope_accuracy), `${fmtInt(b.in_scope)} prompts that should take a route`, delta(b.in_scope_accuracy, a && a.in_scope_accuracy)),
    stat('Out-of-scope recall', b.out_of_scope ? change(b.out_of_scope_recall, a && a.out_of_scope_recall) : '–',
      b.out_of_scope ? `${fmtInt(b.out_of_scope)} prompts for the default model` : 'no prompts labelled null', b.out_of_scope ? delta(b.out_of_scope_recall, a && a.out_of_scope_recall) : null),
    stat('Evaluated', fmtInt(res.rows), `prompts in ${fmtMS(res.took_ms)}`),
    ...(res.cross_validated ? [stat('Expected on new prompts',
      `${fmtPct(res.cross_validated.in_scope_accuracy)} / ${res.cross_validated.out_of_scope ? fmtPct(res.cross_validated.out_of_scope_recall) : '–'}`,
      `in-scope accuracy / out-of-scope recall, ${res.fit ? res.fit.folds : ''}-fold cross-validated`)] : []));
  const fitNote = $('#th-fit-note');
  if (res.fit) {
    const parts = [`Objective: ${res.fit.objective}.`];
    if (!res.fit.target_met) parts.push('No thresholds reached the target on these prompts; these came closest.');
    for (const n of res.fit.notes || []) parts.push(n);
    fitNote.textContent = parts.join(' ');
    fitNote.classList.toggle('warn', !res.fit.target_met);
    fitNote.hidden = false;
  } else {
    fitNote.hidden = true;
  }
  const perBefore = Object.fromEntries(b.per_route.map((q) => [q.route, q]));
  const perAfter = a ? Object.fromEntries(a.per_route.map((q) => [q.route, q])) : {};
  const rows = res.routes.map((name) => {
    const qb = perBefore[name];
    const qa = perAfter[name];
    const now = res.current_thresholds[name];
    const fit = res.thresholds ? res.thresholds[name] : undefined;
    return h('tr', { dataset: { route: name } },
      h('td', {}, name),
      h('td', { class: 'num' }, now === undefined ? '–' : now.toFixed(2)),
      h('td', { class: 'num' }, fit === undefined ? '–' : round2(fit).toFixed(2)),
      h('td', { class: 'num' }, qb ? change(qb.precision, qa && qa.precision) : '–'),
      h('td', { class: 'num' }, qb ? change(qb.recall, qa && qa.recall) : '–'),
      h('td', { class: 'num' }, qb ? fmtInt(qb.support) : '0'));
  });
  $('#th-routes tbody').replaceChildren(...rows);
  const conf = (a || b).confused.slice(0, 10).map((c) =>
    h('li', {}, `${fmtInt(c.count)} × ${c.gold === null ? 'out of scope' : c.gold} → ${c.predicted === null ? 'the default model' : c.predicted}`));
  $('#th-confused').replaceChildren(...(conf.length ? conf : [h('li', {}, 'None: every prompt went where it was labelled.')]));
  const save = $('#th-save');
  const status = $('#th-save-status');
  status.textContent = '';
  if (!res.thresholds) {
    save.hidden = true;
  } else if (storedRouter(router)) {
    save.hidden = false;
    save.textContent = `Save fitted thresholds into ${router}`;
  } else {
    save.hidden = true;
    const snippet = JSON.stringify(Object.fromEntries(Object.entries(res.thresholds).map(([k, v]) => [k, round2(v)])));
    status.textContent = `${router} is defined in the config file, so it is read-only here: set these score_threshold values in its router.json (${snippet}), or run autorouter eval --fit --write.`;
  }
  $('#th-result').hidden = false;
}

async function run(ev) {
  ev.preventDefault();
  const form = $('#th-form');
  clearErrors(form);
  const router = $('#th-router').value;
  const data = $('#th-data');
  const n = countRows();
  const max = info.max_eval_rows || 20000;
  if (!router) { fieldError($('#th-router'), 'Pick the auto router to evaluate.'); return; }
  if (!n) { fieldError(data, 'Paste labelled prompts, one {"text": …, "route": …} per line, or pick a file.'); data.focus(); return; }
  if (n > max) { fieldError(data, `${fmtInt(n)} prompts: one evaluation here takes at most ${fmtInt(max)}; use a sample, or autorouter eval for the whole set.`); data.focus(); return; }
  const oos = Number($('#th-oos').value || 0);
  if (!Number.isFinite(oos) || oos < 0) { fieldError($('#th-oos'), 'The weight is 0 or a positive number.'); $('#th-oos').focus(); return; }
  const minRaw = $('#th-min-oos').value.trim();
  const minOOS = minRaw === '' ? 0 : Number(minRaw);
  if (!Number.isFinite(minOOS) || minOOS < 0 || minOOS > 1) { fieldError($('#th-min-oos'), 'A share between 0 and 1, such as 0.75, or blank.'); $('#th-min-oos').focus(); return; }
  if (minOOS > 0 && oos > 0) { fieldError($('#th-oos'), 'Set a minimum recall or a weight, not both.'); $('#th-oos').focus(); return; }
  const body = { model: router, jsonl: data.value };
  if ($('#th-fit').checked) body.fit = { global: $('#th-global').checked, oos_weight: oos, min_oos_recall: minOOS };
  const btn = $('#th-run');
  const status = $('#th-status');
  btn.disabled = true;
  status.textContent = `Routing ${fmtInt(n)} prompts through ${router}…`;
  try {
    const res = await api('POST', '/ui/api/eval', body);
    status.textContent = '';
    render(router, res);
  } catch (e) {
    if (e.status === 401) return;
    status.textContent = '';
    const control = { jsonl: data, rows: data, model: $('#th-router'), 'fit.oos_weight': $('#th-oos'), 'fit.min_oos_recall': $('#th-min-oos') }[e.param];
    if (control) { fieldError(control, e.message); control.focus(); }
    else { const b = $('#th-form-error'); b.textContent = `The evaluation failed (${e.status || 'no answer'}): ${e.message}`; b.hidden = false; }
  } finally {
    btn.disabled = false;
  }
}

// save writes the fitted thresholds into the stored router's routes.
async function save() {
  if (!last || !last.res.thresholds) return;
  const { router, res } = last;
  const status = $('#th-save-status');
  const btn = $('#th-save');
  try { await loadModels(); } catch { /* use the list we have */ }
  const d = storedRouter(router);
  if (!d) { status.textContent = `${router} is not a stored router any more.`; return; }
  const cfg = routerConfig(d) || { routes: [] };
  cfg.routes = (cfg.routes || []).map((r) => (res.thresholds[r.name] === undefined ? r : { ...r, score_threshold: round2(res.thresholds[r.name]) }));
  btn.disabled = true;
  status.textContent = 'Saving…';
  try {
    await api('PATCH', '/model/' + encodeURIComponent(d.model_info.id) + '/update', { litellm_params: { auto_router_config: JSON.stringify(cfg) } });
    for (const r of cfg.routes) res.current_thresholds[r.name] = r.score_threshold;
    status.textContent = `Saved: ${router} now routes with the fitted thresholds.`;
    notify(`Saved the fitted thresholds into ${router}.`);
    await loadModels().catch(() => {});
    render(router, res);
    $('#th-save-status').textContent = `Saved: ${router} now routes with the fitted thresholds.`;
  } catch (e) {
    status.textContent = `Not saved (${e.status || 'no answer'}): ${e.message}`;
  } finally {
    btn.disabled = false;
  }
}

export function initThresholds() {
  clearOnEdit($('#th-form'));
  $('#th-form').addEventListener('submit', run);
  $('#th-data').addEventListener('input', countRows);
  $('#th-save').addEventListener('click', save);
  $('#th-file').addEventListener('change', async (ev) => {
    const f = ev.target.files && ev.target.files[0];
    if (!f) return;
    $('#th-data').value = await f.text();
    countRows();
  });
  $('#th-fit').addEventListener('change', () => {
    const on = $('#th-fit').checked;
    $('#th-global').disabled = !on;
    $('#th-oos').disabled = !on;
    $('#th-min-oos').disabled = !on;
  });
}
