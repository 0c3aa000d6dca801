// Utterance-embedding progress from GET /ui/api/progress: a strip under
// the header while any router is being built, and updates for whoever
// waits on one router (the auto router form while it saves).

import { api } from './http.js';
import { h, $, fmtInt, fmtDuration } from './dom.js';

const FAST = 400;   // ms between polls while something is being built
const SLOW = 10000; // ms between polls otherwise
const FAILED_SHOWN = 15000; // ms a failed build stays in the strip

let timer = null;
let running = false;
let inflight = false;
let waiters = 0;
const listeners = new Set();

// describe says how far a build is, for people.
export function describe(e) {
  if (e.error) return `failed after ${fmtInt(e.done)} of ${fmtInt(e.total)} utterances: ${e.error}`;
  if (e.finished) return `${fmtInt(e.total)} of ${fmtInt(e.total)} utterances embedded`;
  const parts = [`${fmtInt(e.done)} of ${fmtInt(e.total)} utterances embedded`];
  if (e.per_second > 0) parts.push(`${fmtInt(e.per_second)}/s`);
  if (e.eta_seconds > 0) parts.push(`about ${fmtDuration(e.eta_seconds)} left`);
  return parts.join(' · ');
}

// building is a build still under way.
const building = (e) => !e.finished && !e.error;

function render(entries) {
  const box = $('#activity');
  const now = Date.now();
  const shown = entries.filter((e) => building(e) || (e.error && now - Date.parse(e.updated) < FAILED_SHOWN));
  if (!shown.length) { box.hidden = true; box.replaceChildren(); return; }
  box.replaceChildren(...shown.map((e) => e.error
    ? h('div', { class: 'failed' }, h('strong', {}, 'Building ' + e.router + ' failed'), h('span', {}, describe(e)))
    : h('div', {},
      h('strong', {}, 'Building ' + e.router),
      h('progress', { max: e.total, value: e.done, 'aria-label': 'Embedding progress of ' + e.router }),
      h('span', {}, describe(e)))));
  box.hidden = false;
}

async function poll() {
  clearTimeout(timer);
  timer = null;
  if (inflight) return; // the poll in flight schedules the next one
  inflight = true;
  let entries = [];
  try {
    const out = await api('GET', '/ui/api/progress');
    entries = (out && out.data) || [];
  } catch (e) {
    if (e.status === 401) { inflight = false; running = false; render([]); return; }
  } finally {
    inflight = false;
  }
  render(entries);
  for (const fn of listeners) fn(entries);
  if (!running) return;
  const busy = waiters > 0 || entries.some(building);
  timer = setTimeout(poll, busy ? FAST : SLOW);
}

// startProgress begins polling (after log-in).
export function startProgress() {
  if (running) return;
  running = true;
  poll();
}

// stopProgress ends polling (at log-out).
export function stopProgress() {
  running = false;
  clearTimeout(timer);
  timer = null;
  render([]);
}

// watch calls fn with every poll's entries, polling fast, until the
// returned function is called.
export function watch(fn) {
  listeners.add(fn);
  waiters++;
  if (running) poll();
  return () => { listeners.delete(fn); waiters--; };
}
