// Add Model: the Auto Router tab (LiteLLM's fields: Auto Router Name,
// Default Model, Embedding Model, then routes with Utterances,
// Description and Score Threshold) for adding and editing stored auto
// routers, and a Model tab for plain deployments.

import { api } from './http.js';
import { h, $, $$, fmtInt, plural, fieldError, clearErrors, clearOnEdit, notify, confirmDialog } from './dom.js';
import { models, loadModels, chatGroups, embedders, deploymentByID, routerConfig } from './models.js';
import { watch, describe } from './progress.js';
import { info, loadInfo } from './info.js';

let uid = 0;
// editing is the deployment being edited, null when adding.
let editing = null;
let saving = false;
// mode is what the form holds: 'new' (a router being added, kept as a
// draft while the operator looks elsewhere), 'edit', or null (nothing yet).
let mode = null;

const routesBox = () => $('#ar-routes');
const routeSets = () => $$('fieldset.route', routesBox());

// ---------- the routes ----------

function fillTargets(select, current) {
  const names = chatGroups().map((g) => g.name);
  if (current && !names.includes(current)) names.unshift(current);
  select.replaceChildren(h('option', { value: '' }, 'Choose a model…'), ...names.map((n) => h('option', { value: n }, n)));
  select.value = current || '';
}

function defaultThreshold() {
  const th = (info.default_thresholds || {})[$('#ar-embedding').value];
  return typeof th === 'number' ? th : null;
}

function updatePlaceholders() {
  const th = defaultThreshold();
  for (const fs of routeSets()) {
    const input = $('[data-name="threshold"]', fs);
    input.placeholder = th === null ? 'default' : `${th} (default)`;
  }
}

function countUtterances() {
  let total = 0;
  for (const fs of routeSets()) {
    const n = utterancesOf(fs).length;
    total += n;
    $('.utt-count', fs).textContent = n ? plural(n, 'utterance') + '.' : '';
  }
  $('#ar-utterance-count').textContent = `${plural(routeSets().length, 'route')}, ${plural(total, 'utterance')}`;
  return total;
}

function utterancesOf(fs) {
  return $('[data-name="utterances"]', fs).value.split('\n').map((s) => s.trim()).filter(Boolean);
}

function renumber() {
  const sets = routeSets();
  sets.forEach((fs, i) => {
    $('.route-n', fs).textContent = String(i + 1);
    $('[data-action="up"]', fs).disabled = i === 0;
    $('[data-action="down"]', fs).disabled = i === sets.length - 1;
    $('[data-action="remove"]', fs).setAttribute('aria-label', `Remove route ${i + 1}`);
  });
  countUtterances();
}

// addRoute appends a route fieldset; r is a route of auto_router_config.
function addRoute(r = {}, focus = false) {
  const fs = document.getElementById('route-template').content.firstElementChild.cloneNode(true);
  const id = 'route-' + (++uid);
  fs.dataset.id = id;
  // Each control gets an id, its label's for, and aria-describedby on
  // its hint and error.
  for (const field of $$('.field', fs)) {
    const control = $('[data-name]', field);
    const name = control.dataset.name;
    control.id = `${id}-${name}`;
    control.name = name;
    $('label', field).htmlFor = control.id;
    const hint = $('[data-hint]', field);
    const err = $('[data-error]', field);
    const described = [];
    if (hint) { hint.id = `${control.id}-hint`; described.push(hint.id); }
    if (err) { err.id = `${control.id}-error`; described.push(err.id); }
    if (described.length) control.setAttribute('aria-describedby', described.join(' '));
  }
  fillTargets($('[data-name="target"]', fs), r.name || '');
  $('[data-name="utterances"]', fs).value = (r.utterances || []).join('\n');
  $('[data-name="description"]', fs).value = r.description || '';
  const t = r.score_threshold;
  $('[data-name="threshold"]', fs).value = (t === null || t === undefined) ? '' : String(t);
  // What the form does not edit (metadata, function_schemas, ...) is kept.
  fs._orig = r;
  fs.addEventListener('click', (ev) => {
    const b = ev.target.closest('[data-action]');
    if (!b) return;
    if (b.dataset.action === 'remove') {
      const next = fs.nextElementSibling || fs.previousElementSibling;
      fs.remove();
      renumber();
      (next ? $('[data-name="target"]', next) : $('#ar-add-route')).focus();
    } else if (b.dataset.action === 'up' && fs.previousElementSibling) {
      fs.parentNode.insertBefore(fs, fs.previousElementSibling);
      renumber();
      b.disabled ? $('[data-action="down"]', fs).focus() : b.focus();
    } else if (b.dataset.action === 'down' && fs.nextElementSibling) {
      fs.parentNode.insertBefore(fs.nextElementSibling, fs);
      renumber();
      b.disabled ? $('[data-action="up"]', fs).focus() : b.focus();
    }
  });
  $('[data-name="utterances"]', fs).addEventListener('input', countUtterances);
  routesBox().append(fs);
  renumber();
  updatePlaceholders();
  if (focus) $('[data-name="target"]', fs).focus();
  return fs;
}

// ---------- filling the form ----------

function fillPickers(current = {}) {
  const chats = chatGroups().map((g) => g.name);
  $('#chat-models').replaceChildren(...chats.map((n) => h('option', { value: n })));
  const emb = embedders().map((g) => g.name);
  const cur = current.embedding;
  if (cur && !emb.includes(cur)) emb.unshift(cur);
  const sel = $('#ar-embedding');
  sel.replaceChildren(h('option', { value: '' }, emb.length ? 'Choose an embedding model…' : 'No embedding model: add a local/ or openai embedding model first'),
    ...emb.map((n) => h('option', { value: n }, n)));
  sel.value = cur || (emb.length === 1 ? emb[0] : '');
}

function resetForm() {
  clearErrors($('#ar-form'));
  $('#ar-status').textContent = '';
  $('#ar-progress').hidden = true;
  routesBox().replaceChildren();
}

// openNew shows an empty Auto Router form.
export async function openNew(tab) {
  $('#form-title').textContent = 'Add Model';
  $('#add-tabs').hidden = false;
  selectTab(tab === 'model' ? 'model' : 'router', false);
  if (saving) return; // keep the form that is being saved as it is
  editing = null;
  // The default thresholds follow the embedding models, which may have
  // changed since log-in.
  await Promise.all([models.loaded ? null : loadModels(), loadInfo().catch(() => {})]);
  if (saving) return;
  if (mode === 'new') {
    // A draft: keep what was typed, refresh what can be picked.
    fillPickers({ embedding: $('#ar-embedding').value });
    for (const fs of routeSets()) { const sel = $('[data-name="target"]', fs); fillTargets(sel, sel.value); }
    updatePlaceholders();
    return;
  }
  freshForm();
}

// freshForm empties the form for a new router.
function freshForm() {
  mode = 'new';
  editing = null;
  resetForm();
  $('#ar-name').value = '';
  $('#ar-default').value = '';
  fillPickers();
  addRoute();
  $('#ar-submit').textContent = 'Add auto router';
  $('#ar-submit').disabled = false;
  $('#ar-delete').hidden = true;
  $('#ar-validate').hidden = false;
  updatePlaceholders();
}

// openEdit fills the form with a stored auto router.
export async function openEdit(id) {
  $('#add-tabs').hidden = true;
  selectTab('router', false);
  if (saving) return;
  $('#form-title').textContent = 'Edit auto router';
  await Promise.all([loadModels(), loadInfo().catch(() => {})]);
  if (saving) return;
  const d = deploymentByID(id);
  mode = 'edit';
  resetForm();
  if (!d) {
    editing = null;
    $('#form-title').textContent = 'Edit auto router';
    showFormError(`There is no model with id ${id}; it may have been deleted.`);
    return;
  }
  editing = d;
  const p = d.litellm_params || {};
  $('#form-title').textContent = 'Edit auto router ' + d.model_name;
  $('#ar-name').value = d.model_name;
  $('#ar-default').value = p.auto_router_default_model || '';
  fillPickers({ embedding: p.auto_router_embedding_model });
  const cfg = routerConfig(d) || { routes: [] };
  for (const r of cfg.routes || []) addRoute(r);
  if (!(cfg.routes || []).length) addRoute();
  $('#ar-submit').textContent = 'Save changes';
  $('#ar-delete').hidden = false;
  // A dry run of an edit would clash with the router itself.
  $('#ar-validate').hidden = true;
  updatePlaceholders();
  if (!(d.model_info || {}).db_model) {
    showFormError('This auto router is defined in the config file: it is read-only here. Edit config.yaml (or its router.json) instead.');
    $('#ar-submit').disabled = true;
  } else {
    $('#ar-submit').disabled = false;
  }
}

// ---------- checking and sending ----------

function showFormError(msg) {
  const box = $('#ar-form-error');
  box.textContent = msg;
  box.hidden = false;
}

// readForm returns the router the form describes, and the client-side
// problems with it as [control, message] pairs.
function readForm() {
  const problems = [];
  const name = $('#ar-name').value.trim();
  const def = $('#ar-default').value.trim();
  const emb = $('#ar-embedding').value;
  if (!name) problems.push([$('#ar-name'), 'Give the auto router a name: clients send it as "model".']);
  else if (/\s/.test(name)) problems.push([$('#ar-name'), 'The name cannot contain spaces.']);
  if (!def) problems.push([$('#ar-default'), 'Pick the model that answers when no route matches.']);
  if (!emb) problems.push([$('#ar-embedding'), 'Pick the embedding model the router compares prompts with.']);
  const sets = routeSets();
  if (!sets.length) problems.push([$('#ar-add-route'), 'Add at least one route.']);
  const seen = new Map();
  const routes = sets.map((fs, i) => {
    const target = $('[data-name="target"]', fs);
    const thr = $('[data-name="threshold"]', fs);
    const utt = $('[data-name="utterances"]', fs);
    const desc = $('[data-name="description"]', fs).value.trim();
    const utterances = utterancesOf(fs);
    if (!target.value) problems.push([target, `Pick the model route ${i + 1} sends requests to.`]);
    else if (seen.has(target.value)) problems.push([target, `Route ${seen.get(target.value) + 1} already goes to ${target.value}; merge their utterances into one route.`]);
    else if (target.value === name) problems.push([target, 'A route cannot point back at the router itself.']);
    if (target.value) seen.set(target.value, i);
    if (!utterances.length) problems.push([utt, `Route ${i + 1} needs at least one utterance: an example prompt, one per line.`]);
    let threshold = null;
    const raw = thr.value.trim();
    if (thr.validity && thr.validity.badInput) problems.push([thr, 'The score threshold must be a number from 0.0 to 1.0.']);
    else if (raw !== '') {
      threshold = Number(raw);
      if (!Number.isFinite(threshold) || threshold < 0 || threshold > 1) problems.push([thr, `Score threshold ${raw} is outside 0.0–1.0.`]);
    }
    const r = { ...(fs._orig || {}), name: target.value, utterances, score_threshold: threshold };
    if (desc) r.description = desc; else delete r.description;
    return r;
  });
  return { name, def, emb, routes, problems };
}

// The body LiteLLM's UI sends: auto_router_config as a JSON string.
function newBody(f) {
  return {
    model_name: f.name,
    litellm_params: {
      model: 'auto_router/' + f.name,
      auto_router_config: JSON.stringify({ routes: f.routes }),
      auto_router_default_model: f.def,
      auto_router_embedding_model: f.emb,
    },
    model_info: {},
  };
}

function patchBody(f) {
  const cfg = { ...(routerConfig(editing) || {}), routes: f.routes };
  const body = {
    litellm_params: {
      auto_router_config: JSON.stringify(cfg),
      auto_router_default_model: f.def,
      auto_router_embedding_model: f.emb,
    },
  };
  if (f.name !== editing.model_name) {
    body.model_name = f.name;
    body.litellm_params.model = 'auto_router/' + f.name;
  }
  return body;
}

// routeNamed finds the route fieldset a server message names: `route "x"`.
function routeNamed(msg) {
  const m = /route "([^"]+)"/.exec(msg);
  if (m) {
    const fs = routeSets().find((f) => $('[data-name="target"]', f).value === m[1]);
    if (fs) return fs;
  }
  const i = /routes\[(\d+)\]/.exec(msg);
  if (i) return routeSets()[Number(i[1])] || null;
  return null;
}

// showServerError puts the server's message next to the field its param
// names, or at the top of the form.
function showServerError(e) {
  const p = e.param || '';
  const routeField = (name, pick) => {
    const fs = routeNamed(e.message) || (pick ? routeSets().find(pick) : null);
    return fs ? $(`[data-name="${name}"]`, fs) : null;
  };
  let control = null;
  switch (p) {
    case 'model_name': case 'litellm_params.model': control = $('#ar-name'); break;
    case 'litellm_params.auto_router_default_model': control = $('#ar-default'); break;
    case 'litellm_params.auto_router_embedding_model': control = $('#ar-embedding'); break;
    case 'litellm_params.auto_router_config.routes.score_threshold':
      control = routeField('threshold', (fs) => { const v = Number($('[data-name="threshold"]', fs).value); return v < 0 || v > 1; }); break;
    case 'litellm_params.auto_router_config.routes.utterances': control = routeField('utterances'); break;
    case 'litellm_params.auto_router_config.routes.name': control = routeField('target'); break;
  }
  if (!control && p.startsWith('litellm_params.auto_router_config')) {
    const err = $('#ar-routes-error');
    err.textContent = e.message;
    err.hidden = false;
    err.scrollIntoView({ block: 'center' });
    return;
  }
  if (control) {
    fieldError(control, e.message);
    control.focus();
    return;
  }
  showFormError(e.status ? `The server refused it (${e.status}): ${e.message}` : e.message);
  $('#ar-form-error').scrollIntoView({ block: 'center' });
}

function showProgress(entries, name) {
  const e = entries.find((x) => x.router === name);
  const box = $('#ar-progress');
  if (!e) return;
  if (e.error) {
    // The save's own answer carries the error, next to its field.
    box.hidden = true;
    return;
  }
  box.replaceChildren(
    h('strong', {}, e.finished ? 'Utterances embedded; applying…' : 'Embedding utterances'),
    h('progress', { max: e.total, value: e.done, 'aria-label': 'Embedding progress' }),
    h('span', {}, describe(e)));
  box.hidden = false;
}

async function submit(ev, dryRun = false) {
  ev.preventDefault();
  if (saving) return;
  const form = $('#ar-form');
  clearErrors(form);
  const f = readForm();
  if (f.problems.length) {
    for (const [control, msg] of f.problems) {
      if (control.id === 'ar-add-route') { const err = $('#ar-routes-error'); err.textContent = msg; err.hidden = false; }
      else fieldError(control, msg);
    }
    f.problems[0][0].focus();
    $('#ar-status').textContent = `${plural(f.problems.length, 'problem')} to fix before sending.`;
    return;
  }
  const total = countUtterances();
  const status = $('#ar-status');
  const buttons = [$('#ar-submit'), $('#ar-validate'), $('#ar-delete')];
  saving = true;
  buttons.forEach((b) => { b.disabled = true; });
  $('#ar-form').setAttribute('aria-busy', 'true');
  status.textContent = dryRun ? 'Checking on the server…' : `Saving: embedding ${plural(total, 'utterance')}…`;
  const unwatch = dryRun ? () => {} : watch((entries) => showProgress(entries, f.name));
  const wasEditing = editing;
  try {
    if (dryRun) {
      await api('POST', '/model/validate', newBody(f));
      status.textContent = 'The server accepts this router (nothing was stored).';
    } else if (editing) {
      await api('PATCH', '/model/' + encodeURIComponent(editing.model_info.id) + '/update', patchBody(f));
      notify(`Saved auto router ${f.name}.`);
      status.textContent = '';
      mode = null;
      leaveForm(f.name);
    } else {
      await api('POST', '/model/new', newBody(f));
      notify(`Added auto router ${f.name}. Try it in the playground.`);
      status.textContent = '';
      freshForm();
      leaveForm(f.name);
    }
  } catch (e) {
    if (e.status === 401) return;
    status.textContent = dryRun ? 'The server does not accept this router.' : 'Not saved.';
    if (editing === wasEditing) showServerError(e);
  } finally {
    unwatch();
    saving = false;
    buttons.forEach((b) => { b.disabled = false; });
    $('#ar-form').removeAttribute('aria-busy');
    $('#ar-progress').hidden = true;
  }
}

// leaveForm shows the model list after a save, unless the operator has
// moved on to another view meanwhile.
function leaveForm(name) {
  if (!$('#view-form').hidden) location.hash = '#/models?highlight=' + encodeURIComponent(name);
}

async function deleteEditing() {
  if (!editing) return;
  const d = editing;
  const ok = await confirmDialog(`Delete auto router ${d.model_name}?`, `Requests for ${d.model_name} will get 404 once it is gone. This cannot be undone.`);
  if (!ok) return;
  try {
    await api('POST', '/model/delete', { id: d.model_info.id });
    mode = null;
    notify(`Deleted auto router ${d.model_name}.`);
    location.hash = '#/models';
  } catch (e) {
    showFormError('Delete failed: ' + e.message);
  }
}

// ---------- the Model tab ----------

async function submitModel(ev) {
  ev.preventDefault();
  const form = $('#md-form');
  clearErrors(form);
  const name = $('#md-name').value.trim();
  const model = $('#md-model').value.trim();
  const base = $('#md-base').value.trim();
  const key = $('#md-key').value;
  const problems = [];
  if (!name) problems.push([$('#md-name'), 'Give the model a name: clients send it as "model".']);
  if (!model) problems.push([$('#md-model'), 'Say which model this is, as provider/name.']);
  if (base && !/^https?:\/\//.test(base)) problems.push([$('#md-base'), 'The API base is a URL: http://… or https://…']);
  if (problems.length) {
    problems.forEach(([c, m]) => fieldError(c, m));
    problems[0][0].focus();
    return;
  }
  const params = { model };
  if (base) params.api_base = base;
  if (key) params.api_key = key;
  $('#md-submit').disabled = true;
  $('#md-status').textContent = 'Saving…';
  try {
    await api('POST', '/model/new', { model_name: name, litellm_params: params, model_info: {} });
    notify(`Added model ${name}.`);
    $('#md-status').textContent = '';
    form.reset();
    location.hash = '#/models?highlight=' + encodeURIComponent(name);
  } catch (e) {
    if (e.status === 401) return;
    $('#md-status').textContent = 'Not saved.';
    const control = { model_name: '#md-name', 'litellm_params.model': '#md-model', 'litellm_params.api_base': '#md-base' }[e.param];
    if (control) { fieldError($(control), e.message); $(control).focus(); }
    else { const b = $('#md-form-error'); b.textContent = `The server refused it (${e.status}): ${e.message}`; b.hidden = false; }
  } finally {
    $('#md-submit').disabled = false;
  }
}

// ---------- tabs ----------

function selectTab(which, focus = true) {
  const tabs = { router: $('#tab-router'), model: $('#tab-model') };
  for (const [k, t] of Object.entries(tabs)) {
    const on = k === which;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $('#' + t.getAttribute('aria-controls')).hidden = !on;
  }
  if (focus) tabs[which].focus();
}

export function initForm() {
  clearOnEdit($('#ar-form'));
  clearOnEdit($('#md-form'));
  // "Not saved." was about the form as it was.
  $('#ar-form').addEventListener('input', () => { if (!saving) $('#ar-status').textContent = ''; });
  $('#md-form').addEventListener('input', () => { $('#md-status').textContent = ''; });
  $('#ar-form').addEventListener('submit', (ev) => submit(ev));
  $('#ar-validate').addEventListener('click', (ev) => submit(ev, true));
  $('#ar-add-route').addEventListener('click', () => { addRoute({}, true); $('#ar-routes-error').hidden = true; });
  $('#ar-embedding').addEventListener('change', updatePlaceholders);
  $('#ar-delete').addEventListener('click', deleteEditing);
  $('#md-form').addEventListener('submit', submitModel);
  $('#tab-router').addEventListener('click', () => selectTab('router'));
  $('#tab-model').addEventListener('click', () => selectTab('model'));
  $('#add-tabs').addEventListener('keydown', (ev) => {
    if (!['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(ev.key)) return;
    ev.preventDefault();
    const routerOn = $('#tab-router').getAttribute('aria-selected') === 'true';
    if (ev.key === 'Home') selectTab('router');
    else if (ev.key === 'End') selectTab('model');
    else selectTab(routerOn ? 'model' : 'router');
  });
}
