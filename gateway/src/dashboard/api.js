// The gateway API as the dashboard calls it: bearer token from
// sessionStorage, JSON in and out, every non-2xx answer turned into an
// ApiError carrying the API's {"error": {"code", "message"}} and Retry-After.

export const TOKEN_KEY = 'hookgate.token';

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** Calls `method path` with the token and an optional JSON body; answers the JSON or throws ApiError. */
export async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new ApiError(401, 'no_token', 'no API token entered');
  const headers = { Authorization: `Bearer ${token}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', `the gateway did not answer (${e.message})`);
  }
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!resp.ok) {
    const e = json && typeof json.error === 'object' && json.error ? json.error : {};
    throw new ApiError(resp.status, String(e.code || `http_${resp.status}`),
      String(e.message || text.slice(0, 300) || resp.statusText), resp.headers.get('Retry-After'));
  }
  return json;
}

/** `?k=v&...` of the non-empty params ('' when none). */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}
