// GET /ui/api/info: what the page needs that the public API does not say
// (the thresholds a blank score_threshold takes, the evaluation limit).

import { api } from './http.js';

export const info = { default_thresholds: {}, max_eval_rows: 20000, routers: [] };

// loadInfo refreshes info; it throws ApiError (401 for a wrong key, 503
// while the server is loading).
export async function loadInfo(key) {
  const out = await api('GET', '/ui/api/info', undefined, { key });
  Object.assign(info, out || {});
  return info;
}
