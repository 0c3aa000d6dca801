// The routing playground: every keystroke (debounced) asks POST /route,
// the same decoding and routing as a real request, and shows the
// decision with every candidate route's score against its threshold and
// the router's utterances nearest to the prompt.

import { api } from './http.js';
import { h, $, fmtScore, fmtMS, debounce, fieldError, clearErrors } from './dom.js';
import { routers, loadModels } from './models.js';

let seq = 0;
let inflight = null;

const mode = () => $('input[name="pg-mode"]:checked').value;

// messages is the chat request's messages: the prompt as one user turn,
// or the pasted conversation (an array of messages, or {"messages": [...]}).
function messages() {
  const text = $('#pg-text').value;
  if (mode() === 'prompt') return [{ role: 'user', content: text }];
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error('Not valid JSON yet: ' + e.message); }
  if (v && !Array.isArray(v) && Array.isArray(v.messages)) v = v.messages;
  if (!Array.isArray(v)) throw new Error('Want a JSON array of messages: [{"role": "user", "content": "…"}]');
  v.forEach((m, i) => {
    if (!m || typeof m !== 'object' || typeof m.role !== 'string') throw new Error(`Message ${i + 1} needs a "role".`);
  });
  return v;
}

const reasons = {
  no_user_message: 'The conversation has no user message, so the default model answers.',
  empty_text: 'There is no text to embed, so the default model answers.',
  embed_error: 'Embedding the prompt failed, so the default model answers (routing never fails a request).',
};

function explain(d) {
  const top = (d.scores || [])[0];
  if (!d.fallback) {
    const won = (d.scores || []).find((s) => s.route === d.route);
    let text = `"${d.route}" scored ${fmtScore(d.score)}, reaching its threshold of ${won ? won.threshold.toFixed(2) : '?'}, so ${d.model} answers.`;
    if (top && top.route !== d.route) text += ` "${top.route}" scored higher (${fmtScore(top.score)}) but missed its threshold of ${top.threshold.toFixed(2)}.`;
    return text;
  }
  if (d.reason === 'below_threshold') {
    const best = top ? ` The best was "${top.route}" at ${fmtScore(top.score)}, under its threshold of ${top.threshold.toFixed(2)}.` : '';
    return `No route reached its threshold, so the default model ${d.model} answers.${best}`;
  }
  let text = reasons[d.reason] || `It fell back to the default model ${d.model} (${d.reason || 'no reason given'}).`;
  if (d.error) text += ' Error: ' + d.error;
  return text;
}

const clamp = (x) => Math.max(0, Math.min(1, x));

function scoreRow(s, chosen) {
  const fill = h('span', { class: 'fill' });
  const mark = h('span', { class: 'mark', title: 'threshold ' + s.threshold.toFixed(2) });
  fill.style.width = (clamp(s.score) * 100).toFixed(1) + '%';
  mark.style.left = (clamp(s.threshold) * 100).toFixed(1) + '%';
  const bar = h('div', {
    class: 'bar' + (s.passed ? ' passed' : ''), role: 'img',
    'aria-label': `score ${fmtScore(s.score)} against threshold ${s.threshold.toFixed(2)}: ${s.passed ? 'passed' : 'missed'}`,
  }, fill, mark);
  return h('tr', { class: chosen ? 'chosen' : null, dataset: { route: s.route } },
    h('td', {}, s.route, chosen ? h('span', { class: 'chosen-tag' }, '✓ chosen') : null),
    h('td', {}, bar),
    h('td', { class: 'num' }, fmtScore(s.score)),
    h('td', { class: 'num' }, s.threshold.toFixed(2) + (s.passed ? ' ✓' : '')));
}

function render(d) {
  $('#pg-empty').hidden = true;
  $('#pg-decision').hidden = false;
  const route = $('#pg-route');
  route.textContent = d.route === null ? 'none: fell back' : d.route;
  route.className = d.fallback ? 'fallback' : '';
  $('#pg-model').textContent = d.model;
  $('#pg-score').textContent = d.fallback ? '–' : fmtScore(d.score);
  $('#pg-timing').replaceChildren(fmtMS(d.embed_ms + d.score_ms), h('small', {}, `${fmtMS(d.embed_ms)} embed + ${fmtMS(d.score_ms)} score`));
  const why = $('#pg-why');
  why.textContent = explain(d);
  why.className = 'why' + (d.fallback ? ' fallback' : '');
  const rows = (d.scores || []).map((s) => scoreRow(s, !d.fallback && s.route === d.route));
  if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: 4, class: 'empty' }, 'No candidate routes.')));
  $('#pg-scores tbody').replaceChildren(...rows);
  const near = (d.nearest || []).map((n) => h('tr', { class: !d.fallback && n.route === d.route ? 'chosen' : null },
    h('td', {}, n.utterance), h('td', {}, n.route), h('td', { class: 'num' }, fmtScore(n.score))));
  if (!near.length) near.push(h('tr', {}, h('td', { colspan: 3, class: 'empty' }, 'No text was embedded.')));
  $('#pg-nearest tbody').replaceChildren(...near);
  $('#pg-embedded').textContent = d.text || '';
}

function showEmpty(msg, bad = false) {
  $('#pg-decision').hidden = true;
  const p = $('#pg-empty');
  p.textContent = msg;
  p.className = bad ? 'banner bad' : 'muted';
  p.hidden = false;
}

async function decide() {
  const text = $('#pg-text');
  clearErrors($('#pg-form'));
  const router = $('#pg-router').value;
  if (!router) { showEmpty('There is no auto router yet: add one under Add Model.'); return; }
  if (!text.value.trim()) { showEmpty('The decision shows here.'); return; }
  let msgs;
  try { msgs = messages(); } catch (e) { fieldError(text, e.message); return; }
  const my = ++seq;
  if (inflight) inflight.abort();
  inflight = new AbortController();
  $('#pg-result').setAttribute('aria-busy', 'true');
  try {
    const d = await api('POST', '/route?nearest=5', { model: router, messages: msgs }, { signal: inflight.signal });
    if (my === seq) render(d);
  } catch (e) {
    if (e.name === 'AbortError' || my !== seq || e.status === 401) return;
    showEmpty(`No decision (${e.status || 'no answer'}): ${e.message}`, true);
  } finally {
    if (my === seq) $('#pg-result').setAttribute('aria-busy', 'false');
  }
}

const decideSoon = debounce(decide, 200);

// send makes the real call: /v1/chat/completions, and shows the reply
// with the routing headers.
async function send(ev) {
  ev.preventDefault();
  clearErrors($('#pg-form'));
  const router = $('#pg-router').value;
  const text = $('#pg-text');
  if (!router) return;
  if (!text.value.trim()) { fieldError(text, 'Type a prompt first.'); text.focus(); return; }
  let msgs;
  try { msgs = messages(); } catch (e) { fieldError(text, e.message); text.focus(); return; }
  const btn = $('#pg-send');
  btn.disabled = true;
  $('#pg-reply').hidden = false;
  $('#pg-reply-meta').textContent = 'Waiting for the model…';
  $('#pg-reply-text').textContent = '';
  try {
    const resp = await api('POST', '/v1/chat/completions', { model: router, messages: msgs }, { raw: true });
    const body = await resp.json();
    const hd = (k) => resp.headers.get(k) || '–';
    $('#pg-reply-meta').textContent = `Answered by ${hd('x-autorouter-model')} · route ${hd('x-autorouter-route')} · score ${hd('x-autorouter-score')}`;
    const choice = (body.choices || [])[0] || {};
    $('#pg-reply-text').textContent = (choice.message && choice.message.content) || JSON.stringify(body, null, 2);
  } catch (e) {
    $('#pg-reply-meta').textContent = `The call failed (${e.status || 'no answer'}): ${e.message}`;
  } finally {
    btn.disabled = false;
  }
}

function switchMode() {
  const text = $('#pg-text');
  const label = $('#pg-text-label');
  if (mode() === 'messages') {
    label.textContent = 'Conversation (JSON messages)';
    if (text.value.trim() && !text.value.trim().startsWith('[') && !text.value.trim().startsWith('{')) {
      text.value = JSON.stringify([{ role: 'user', content: text.value }], null, 2);
    }
    text.placeholder = '[{"role": "user", "content": "write a python function"}, {"role": "assistant", "content": "…"}, {"role": "user", "content": "now in Rust"}]';
  } else {
    label.textContent = 'Prompt';
    try {
      let msgs = JSON.parse(text.value);
      if (msgs && Array.isArray(msgs.messages)) msgs = msgs.messages;
      const last = Array.isArray(msgs) ? [...msgs].reverse().find((m) => m && m.role === 'user') : null;
      if (last && typeof last.content === 'string') text.value = last.content;
    } catch { /* not JSON: keep the text as it is */ }
    text.placeholder = 'how to code a program in python';
  }
  decide();
}

// openPlayground fills the router picker; router preselects one.
export async function openPlayground(router) {
  try { await loadModels(); } catch (e) { if (e.status === 401) return; }
  const sel = $('#pg-router');
  const prev = router || sel.value;
  const names = routers().map((g) => g.name);
  sel.replaceChildren(...(names.length ? names.map((n) => h('option', { value: n }, n)) : [h('option', { value: '' }, 'No auto routers yet')]));
  if (names.includes(prev)) sel.value = prev;
  if (!$('#pg-text').placeholder) $('#pg-text').placeholder = 'how to code a program in python';
  decide();
}

export function initPlayground() {
  // A reply belongs to the text it was sent with.
  const stale = () => { $('#pg-reply').hidden = true; };
  $('#pg-text').addEventListener('input', () => { stale(); decideSoon(); });
  $('#pg-router').addEventListener('change', stale);
  $('#pg-router').addEventListener('change', decide);
  for (const r of document.querySelectorAll('input[name="pg-mode"]')) r.addEventListener('change', switchMode);
  $('#pg-form').addEventListener('submit', send);
}
