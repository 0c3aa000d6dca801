// The page's one way to the server: fetch with the master key, errors
// read from OpenAI's envelope into ApiError.

const KEY = 'autorouter.masterKey';

// The master key lives in this tab's sessionStorage only: never in a URL,
// a cookie or localStorage.
export const auth = {
  get key() { return sessionStorage.getItem(KEY) || ''; },
  set(k) { sessionStorage.setItem(KEY, k); },
  clear() { sessionStorage.removeItem(KEY); },
};

export const REFUSED = 'that key was refused by the server (401)';

// ApiError is a failed call: status 0 means the server did not answer.
// param names the request field the server blames, when it says.
export class ApiError extends Error {
  constructor(status, message, param = '', code = '') {
    super(message);
    this.status = status;
    this.param = param;
    this.code = code;
  }
}

// api calls the server and returns the parsed JSON answer (or, with
// raw, the Response). A 401 also fires "autorouter:unauthorized" on
// window, so the app can send the operator back to the log-in form.
export async function api(method, path, body, { signal, raw = false, key } = {}) {
  const headers = { Authorization: 'Bearer ' + (key ?? auth.key) };
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, signal, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'the server did not answer; is autorouter running? (' + e.message + ')');
  }
  if (resp.ok && raw) return resp;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    if (resp.status === 401) {
      window.dispatchEvent(new CustomEvent('autorouter:unauthorized'));
      throw new ApiError(401, REFUSED, '', e.code || '');
    }
    let msg = e.message || (text && text.length < 300 ? text : '') || ('HTTP ' + resp.status);
    throw new ApiError(resp.status, msg, e.param || '', e.code || '');
  }
  if (raw) return resp;
  return data;
}
