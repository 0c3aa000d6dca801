// Small DOM helpers. Text goes in with textContent, never innerHTML, so
// names and messages from the server cannot inject markup.

// h builds an element: h('td', {class: 'num'}, 'text', child, ...).
// Attributes: class, text, on<event> (a listener), dataset, and any other
// attribute (true sets it empty, false/null/undefined leaves it out).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// show and hide toggle the hidden attribute.
export function show(el, on = true) { el.hidden = !on; }

const nf = new Intl.NumberFormat('en');

// plural writes "1 route", "2 routes".
export const plural = (n, one, many = one + 's') => `${fmtInt(n)} ${n === 1 ? one : many}`;
export const fmtInt = (n) => nf.format(Math.round(n));
export const fmtPct = (x) => (x === null || x === undefined || Number.isNaN(x)) ? '–' : (x * 100).toFixed(1) + '%';
export const fmtScore = (x) => (typeof x === 'number' ? x.toFixed(3) : '–');

// fmtMS formats milliseconds for people: 0.42 ms, 12 ms, 1.3 s.
export function fmtMS(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 100) return ms.toFixed(1) + ' ms';
  if (ms < 1000) return Math.round(ms) + ' ms';
  return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
}

// fmtDuration formats seconds left: "12 s", "3 min 20 s", "1 h 5 min".
export function fmtDuration(s) {
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

// debounce delays fn until calls stop for ms.
export function debounce(fn, ms) {
  let t;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

// notify shows a short success message in the notice strip.
// It stays for the view the action lands on, and goes at the next one.
let noticeTimer;
let noticeViews = 0;
export function notify(msg) {
  const box = $('#notice');
  box.replaceChildren(h('div', {}, msg));
  box.hidden = false;
  noticeViews = 0;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, 8000);
}

// viewChanged is told of every change of view.
export function viewChanged() {
  if (++noticeViews > 1) $('#notice').hidden = true;
}

// Field errors: a .field holds the control, its hint and a .field-error.
export function fieldError(control, msg) {
  const field = control.closest('.field') || control.parentElement;
  const err = field.querySelector('.field-error');
  control.setAttribute('aria-invalid', 'true');
  if (err) { err.textContent = msg; err.hidden = false; }
}

// clearOnEdit clears a field's error as soon as the operator edits it:
// the message was about the old value.
export function clearOnEdit(form) {
  const clear = (ev) => {
    const c = ev.target;
    if (!(c instanceof Element) || c.getAttribute('aria-invalid') !== 'true') return;
    c.removeAttribute('aria-invalid');
    const field = c.closest('.field');
    const err = field && field.querySelector('.field-error');
    if (err) { err.textContent = ''; err.hidden = true; }
  };
  form.addEventListener('input', clear);
  form.addEventListener('change', clear);
}

export function clearErrors(root) {
  for (const el of $$('[aria-invalid="true"]', root)) el.removeAttribute('aria-invalid');
  for (const el of $$('.field-error, .banner.bad', root)) { el.textContent = ''; el.hidden = true; }
}

// confirmDialog asks in the page's <dialog>; it resolves true on yes.
export function confirmDialog(title, text, yes = 'Delete') {
  const dlg = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-yes').textContent = yes;
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'yes'), { once: true });
    dlg.showModal();
    $('#confirm-no').focus();
  });
}
