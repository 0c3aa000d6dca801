// autorouter admin page: log-in, hash routes between the views, and the
// wiring of the view modules. Every view talks to the server through
// http.js with the master key kept in sessionStorage.

import { auth, REFUSED } from './http.js';
import { $, $$, viewChanged } from './dom.js';
import { loadInfo } from './info.js';
import { initModels, refreshModels } from './models.js';
import { initForm, openNew, openEdit } from './form.js';
import { initPlayground, openPlayground } from './playground.js';
import { initThresholds, openThresholds } from './thresholds.js';
import { initMetrics, openMetrics, closeMetrics } from './metrics.js';
import { startProgress, stopProgress } from './progress.js';

const views = ['login', 'loading', 'models', 'form', 'playground', 'thresholds', 'metrics'];
let current = null;
let loggedIn = false;
let retry = null;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const parts = path.split('/').map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  return { parts, params };
}

function showView(name) {
  for (const v of views) $('#view-' + v).hidden = v !== name;
  for (const a of $$('#nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name !== 'metrics') closeMetrics();
  viewChanged();
  // Moving focus to the new view's heading tells screen readers where
  // they are; keyboard users continue from there.
  if (current !== name) {
    const h1 = $('#view-' + name + ' h1');
    if (h1 && loggedIn) h1.focus({ preventScroll: true });
  }
  current = name;
  document.title = ($('#view-' + name + ' h1') || {}).textContent + ' · autorouter admin';
}

async function route() {
  if (!loggedIn) return;
  const { parts, params } = parseHash();
  switch (parts[0]) {
    case '':
    case 'login':
    case 'models':
      if (parts[0] !== 'models') { location.replace('#/models'); return; }
      showView('models');
      await refreshModels(params.get('highlight'));
      break;
    case 'new':
      showView('form');
      await openNew(parts[1]);
      break;
    case 'edit':
      showView('form');
      await openEdit(parts[1] || '');
      break;
    case 'playground':
      showView('playground');
      await openPlayground(params.get('router'));
      break;
    case 'thresholds':
      showView('thresholds');
      await openThresholds(params.get('router'));
      break;
    case 'metrics':
      showView('metrics');
      await openMetrics();
      break;
    default:
      location.replace('#/models');
  }
}

function showLogin(msg) {
  loggedIn = false;
  $('#nav').hidden = true;
  $('#logout').hidden = true;
  showView('login');
  const err = $('#login-error');
  const input = $('#login-key');
  if (msg) {
    err.textContent = msg;
    err.hidden = false;
    input.setAttribute('aria-invalid', 'true');
  } else {
    err.hidden = true;
    input.removeAttribute('aria-invalid');
  }
  input.focus();
}

function loggedInNow() {
  loggedIn = true;
  $('#nav').hidden = false;
  $('#logout').hidden = false;
  $('#login-key').value = '';
  startProgress();
  route();
}

// tryLogin checks key against the server (GET /ui/api/info takes only
// the master key), keeping it for this tab when it is accepted.
async function tryLogin(key) {
  clearTimeout(retry);
  const btn = $('#login-form button[type="submit"]');
  btn.disabled = true;
  try {
    await loadInfo(key);
    auth.set(key);
    loggedInNow();
  } catch (e) {
    if (e.status === 503) {
      // Loading: try again every second, on the loading view.
      showView('loading');
      $('#loading-text').textContent = e.message + ' This page retries every second.';
      retry = setTimeout(() => tryLogin(key), 1000);
      return;
    }
    auth.clear();
    if (e.status === 401) showLogin('Log in failed: ' + REFUSED + '.');
    else if (e.status === 403) showLogin('The admin API is off on this server: ' + e.message);
    else showLogin('Log in failed: ' + e.message);
  } finally {
    btn.disabled = false;
  }
}

function logout(msg) {
  clearTimeout(retry);
  auth.clear();
  stopProgress();
  showLogin(msg);
}

function init() {
  initModels();
  initForm();
  initPlayground();
  initThresholds();
  initMetrics();
  $('#login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const key = $('#login-key').value.trim();
    if (!key) { showLogin('Enter the master key.'); return; }
    tryLogin(key);
  });
  $('#logout').addEventListener('click', () => logout());
  window.addEventListener('hashchange', route);
  // A key that stops working (the server's master key changed) sends the
  // operator back to the log-in form, saying why.
  window.addEventListener('autorouter:unauthorized', () => {
    if (loggedIn) logout('Log in again: ' + REFUSED + '.');
  });
  if (auth.key) tryLogin(auth.key);
  else showLogin();
}

init();
