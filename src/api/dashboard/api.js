// The dashboard's client of the admin API (browser side, plain ES module).
// Reads need nothing; writes carry the token kept in this tab's
// sessionStorage, when the operator gave one. Every failure becomes an
// ApiError holding the API's own message ({"error", "code"}).

const TOKEN_KEY = 'opengslb.api-token';

/** An answer other than 2xx: the HTTP status and the API's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The token kept for this tab, or null. */
export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** Keeps (or with null, forgets) the token for this tab. */
export function storeToken(token) {
  if (token === null || token === '') sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** How long a call may take before it counts as unanswered (ms). */
export const REQUEST_TIMEOUT_MS = 5000;

/**
 * Calls the API: GET when no body is given. Resolves to the parsed JSON
 * (null for 204); rejects with ApiError (status 0 when the server is not
 * reachable or has not answered within REQUEST_TIMEOUT_MS).
 */
export async function request(method, path, body) {
  const headers = { accept: 'application/json' };
  const token = storedToken();
  if (method !== 'GET' && token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  let text;
  try {
    // A server that accepts but never answers (stopped, overloaded) would
    // otherwise hold the page's poll for ever, and the page would never say
    // that its data is stale.
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    text = res.status === 204 ? '' : await res.text();
  } catch (err) {
    const why = err.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : err.message;
    throw new ApiError(0, `the API did not answer: ${why}`);
  }
  if (res.status === 204) return null;
  let json = null;
  try {
    json = text === '' ? null : JSON.parse(text);
  } catch {
    throw new ApiError(res.status, `HTTP ${res.status}: the answer is not JSON`);
  }
  if (!res.ok) throw new ApiError(res.status, json !== null && typeof json.error === 'string' ? json.error : `HTTP ${res.status}`);
  return json;
}

/** The path of an override's target: /api/v1/overrides/{service}/{address}, /server/{address} or /region/{region}. */
export function overridePath(o) {
  const e = encodeURIComponent;
  if (o.scope === 'domain') return `/api/v1/overrides/${e(o.service)}/${e(o.address)}`;
  if (o.scope === 'server') return `/api/v1/overrides/server/${e(o.address)}`;
  return `/api/v1/overrides/region/${e(o.region)}`;
}
