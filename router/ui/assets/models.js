// The model list: /model/info grouped by model_name, auto routers first.

import { api } from './http.js';
import { h, $, plural, notify, confirmDialog } from './dom.js';

// providerOf is the prefix of litellm_params.model ("openai" when bare),
// as the server reads it.
export function providerOf(model) {
  const i = (model || '').indexOf('/');
  return i > 0 ? model.slice(0, i) : 'openai';
}

function upstreamOf(model) {
  const i = (model || '').indexOf('/');
  return i > 0 ? model.slice(i + 1) : (model || '');
}

// isRouter tells an auto router deployment.
export function isRouter(d) {
  const p = d.litellm_params || {};
  return providerOf(p.model) === 'auto_router' || p.auto_router_config !== undefined || p.auto_router_config_path !== undefined;
}

// isEmbedder tells the models an auto router can embed with: in-process
// local/ models, and OpenAI embedding models.
export function isEmbedder(d) {
  const m = (d.litellm_params || {}).model || '';
  const prov = providerOf(m);
  return prov === 'local' || (prov === 'openai' && /embed/i.test(upstreamOf(m)));
}

// routerConfig parses an auto router's auto_router_config (a JSON string,
// as LiteLLM stores it, or an object); null when it has none.
export function routerConfig(d) {
  const c = (d.litellm_params || {}).auto_router_config;
  if (c === undefined || c === null) return null;
  if (typeof c === 'object') return c;
  try { return JSON.parse(c); } catch { return null; }
}

// groupModels groups deployments by model_name: routers first, then by
// name.
export function groupModels(data, serving) {
  const byName = new Map();
  for (const d of data) {
    let g = byName.get(d.model_name);
    if (!g) { g = { name: d.model_name, deployments: [] }; byName.set(d.model_name, g); }
    g.deployments.push(d);
  }
  const groups = [];
  for (const g of byName.values()) {
    const first = g.deployments[0];
    const p = first.litellm_params || {};
    g.model = p.model || '';
    g.provider = providerOf(g.model);
    g.kind = isRouter(first) ? 'router' : isEmbedder(first) ? 'embedding' : g.provider === 'local' ? 'embedding' : 'chat';
    g.sources = [...new Set(g.deployments.map((d) => (d.model_info || {}).source || 'config'))];
    g.stored = g.deployments.filter((d) => (d.model_info || {}).db_model);
    g.cooling = g.deployments.filter((d) => (d.model_info || {}).cooling_down).length;
    g.errors = g.deployments.map((d) => (d.model_info || {}).error).filter(Boolean);
    g.serving = serving ? serving.has(g.name) : true;
    if (g.kind === 'router') g.config = routerConfig(first);
    groups.push(g);
  }
  groups.sort((a, b) => (a.kind === 'router') === (b.kind === 'router') ? a.name.localeCompare(b.name) : a.kind === 'router' ? -1 : 1);
  return groups;
}

// The latest list, shared by the views that pick models.
export const models = { data: [], groups: [], loaded: false };

// loadModels fetches /model/info and /v1/models (what is serving now).
export async function loadModels() {
  const [info, list] = await Promise.all([api('GET', '/model/info'), api('GET', '/v1/models')]);
  const serving = new Set(((list && list.data) || []).map((m) => m.id));
  models.data = (info && info.data) || [];
  models.groups = groupModels(models.data, serving);
  models.loaded = true;
  return models;
}

export function routers() { return models.groups.filter((g) => g.kind === 'router'); }
export function chatGroups() { return models.groups.filter((g) => g.kind === 'chat'); }
export function embedders() { return models.groups.filter((g) => g.kind === 'embedding'); }
export function deploymentByID(id) { return models.data.find((d) => (d.model_info || {}).id === id); }

const sourceLabel = { config: 'config file', db: 'database' };
const kindLabel = { router: 'Auto router', embedding: 'Embedding', chat: 'Chat' };

function healthCell(g) {
  const td = h('td', { 'data-label': 'Health' });
  if (g.errors.length) {
    td.append(h('span', { class: 'badge bad' }, 'not serving'));
    for (const e of g.errors) td.append(h('p', { class: 'health-error' }, e));
  } else if (!g.serving) {
    td.append(h('span', { class: 'badge bad' }, 'not serving'));
  } else if (g.cooling) {
    td.append(h('span', { class: 'badge warn' }, `cooling down (${g.cooling} of ${g.deployments.length})`));
  } else {
    td.append(h('span', { class: 'badge ok' }, 'healthy'));
  }
  return td;
}

function routerSummary(g) {
  const c = g.config;
  const p = g.deployments[0].litellm_params || {};
  const parts = [];
  if (c && Array.isArray(c.routes)) {
    const n = c.routes.reduce((s, r) => s + ((r.utterances || []).length), 0);
    parts.push(plural(c.routes.length, 'route'), plural(n, 'utterance'));
  }
  if (p.auto_router_default_model) parts.push('default ' + p.auto_router_default_model);
  if (p.auto_router_embedding_model) parts.push('embeds with ' + p.auto_router_embedding_model);
  return parts.join(' · ');
}

// renderModels fills the models table, filtered by the search box.
export function renderModels(highlight) {
  const q = $('#models-search').value.trim().toLowerCase();
  const tbody = $('#models-table tbody');
  const rows = [];
  const shown = models.groups.filter((g) => !q || g.name.toLowerCase().includes(q) || g.provider.includes(q) || g.model.toLowerCase().includes(q));
  for (const g of shown) {
    const actions = h('div', { class: 'row-actions' });
    const stored = g.stored.length === g.deployments.length && g.deployments.length > 0;
    if (g.kind === 'router' && g.serving && !g.errors.length) {
      actions.append(h('a', { class: 'button small', href: '#/playground?router=' + encodeURIComponent(g.name), 'aria-label': 'Try ' + g.name + ' in the playground' }, 'Try'));
    }
    if (stored && g.kind === 'router' && g.deployments.length === 1) {
      actions.append(h('a', { class: 'button small', href: '#/edit/' + encodeURIComponent(g.deployments[0].model_info.id), 'aria-label': 'Edit ' + g.name }, 'Edit'));
    }
    if (stored) {
      actions.append(h('button', { type: 'button', class: 'small danger-text', 'aria-label': 'Delete ' + g.name, onclick: () => deleteGroup(g) }, 'Delete'));
    }
    const name = h('td', { 'data-label': 'Model group' }, h('div', { class: 'name' }, g.name));
    if (g.kind === 'router') name.append(h('div', { class: 'sub' }, routerSummary(g)));
    else if (g.model) name.append(h('div', { class: 'sub' }, g.model));
    rows.push(h('tr', { dataset: { model: g.name }, class: g.name === highlight ? 'highlight' : null },
      name,
      h('td', { 'data-label': 'Kind' }, h('span', { class: 'badge' + (g.kind === 'router' ? ' router' : '') }, kindLabel[g.kind])),
      h('td', { 'data-label': 'Provider' }, g.provider),
      h('td', { class: 'num', 'data-label': 'Deployments' }, String(g.deployments.length)),
      h('td', { class: 'source', 'data-label': 'Source' }, g.sources.map((s) => sourceLabel[s] || s).join(' + '),
        stored ? null : h('div', { class: 'sub' }, 'read-only')),
      healthCell(g),
      h('td', {}, actions)));
  }
  if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, q ? 'No model matches the filter.' : 'No models yet.')));
  tbody.replaceChildren(...rows);
  const nr = routers().length;
  $('#models-summary').textContent = `${plural(models.groups.length, 'model group')}, ${plural(nr, 'auto router')}`;
}

// deleteGroup deletes every stored deployment of g, after a confirm step.
export async function deleteGroup(g) {
  const what = g.kind === 'router' ? 'auto router' : 'model';
  const n = g.stored.length;
  const ok = await confirmDialog(`Delete ${what} ${g.name}?`,
    `Requests for ${g.name} will get 404 once it is gone${n > 1 ? ` (${n} deployments)` : ''}. This cannot be undone.`);
  if (!ok) return false;
  let failed = null;
  try {
    for (const d of g.stored) await api('POST', '/model/delete', { id: d.model_info.id });
    notify(`Deleted ${what} ${g.name}.`);
  } catch (e) {
    failed = e;
  }
  await refreshModels();
  if (failed) {
    const box = $('#models-error');
    box.textContent = `Deleting ${g.name} failed: ${failed.message}`;
    box.hidden = false;
  }
  return !failed;
}

// refreshModels reloads and re-renders the list, showing failures.
export async function refreshModels(highlight) {
  const box = $('#models-error');
  const table = $('#models-table');
  // Busy until the rows are redrawn: what is on screen is about to change.
  table.setAttribute('aria-busy', 'true');
  try {
    await loadModels();
    box.hidden = true;
  } catch (e) {
    if (e.status === 401) return;
    box.textContent = 'Could not load the models: ' + e.message;
    box.hidden = false;
  } finally {
    table.setAttribute('aria-busy', 'false');
  }
  renderModels(highlight);
}

export function initModels() {
  $('#models-search').addEventListener('input', () => renderModels());
  $('#models-refresh').addEventListener('click', () => refreshModels());
}
