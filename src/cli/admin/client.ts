// Cold path. The admin-API transport of `opengslb-cli`: one HTTP request per
// call with Node's fetch, a per-request timeout, the bearer token, and every
// way a request can fail turned into one line an operator can act on.

import { formatDuration } from '../../config/duration.ts';
import { fetchFailureText } from '../../lib/fetch-failure.ts';
import { UsageError } from './usage-error.ts';

/**
 * A failure the CLI reports and exits on: the message is printed as
 * `opengslb-cli: <message>`, the hint (if any) on the next line. These never
 * leave the process, so they are not coded errors of src/lib/errors.ts.
 */
export class CliFailure extends Error {
  readonly exitCode: number;
  readonly hint: string | null;
  /** Nothing answered (refused, timed out, unknown host): with several APIs, a read goes on to the next one. */
  readonly unreachable: boolean;
  constructor(message: string, exitCode: number, hint: string | null = null, unreachable = false) {
    super(message);
    this.name = 'CliFailure';
    this.exitCode = exitCode;
    this.hint = hint;
    this.unreachable = unreachable;
  }
}

/** Where the client talks to and how. */
export interface ClientOptions {
  /** Base URL without a trailing slash, e.g. "http://127.0.0.1:8080". */
  readonly api: string;
  readonly token: string | null;
  readonly timeoutMs: number;
}

/** A response the caller accepted: its status and its parsed JSON body (null for an empty body). */
export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
}

/** Query parameters; undefined values are left out. */
export type Query = Readonly<Record<string, string | undefined>>;

/** A JSON type, as a Shape names it. */
export type JsonType = 'array' | 'object' | 'string' | 'number' | 'boolean';

/**
 * Top-level fields a success answer must carry, with their JSON types. Every
 * command names the fields it prints: a 200 from some other HTTP server (a
 * proxy's page, another JSON API) then fails with a message saying that the
 * URL is not the admin API, instead of printing nonsense or crashing.
 */
export type Shape = Readonly<Record<string, JsonType>>;

/** The longest piece of a non-JSON error body quoted in a message. */
const MAX_QUOTED_BODY = 200;

/** Builds the URL of `path` (which starts with "/api/") under the base URL, with the query parameters that are set. */
export function apiUrl(api: string, path: string, query: Query = {}): string {
  const url = new URL(api.replace(/\/+$/, '') + path);
  for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, value);
  return url.href;
}

/**
 * Encodes one path segment (`what` names it in the error): IPv6 addresses
 * carry ":" and zone ids "%", names may carry anything, "/", "?" and "#"
 * included. Throws UsageError for "." and "..": no encoding keeps them
 * (the WHATWG URL parser reads "%2e%2e" as ".." too), so the request would
 * go to another route.
 */
export function segment(text: string, what: string): string {
  if (text === '.' || text === '..') throw new UsageError(`${what} "${text}" cannot be sent: "." and ".." are URL path steps, expected any other ${what}`);
  return encodeURIComponent(text);
}

export class ApiClient {
  readonly #opts: ClientOptions;

  constructor(opts: ClientOptions) {
    this.#opts = opts;
  }

  get api(): string {
    return this.#opts.api;
  }

  /** GET `path`, whose answer has `shape`; `ok` lists the statuses that are answers rather than errors (503 is an answer for /ready). */
  get(path: string, shape: Shape, query: Query = {}, ok: readonly number[] = [200]): Promise<ApiResponse> {
    return this.request('GET', path, query, undefined, ok, shape);
  }

  put(path: string, body: unknown, shape: Shape): Promise<ApiResponse> {
    return this.request('PUT', path, {}, body, [200, 201], shape);
  }

  post(path: string, body: unknown, shape: Shape, ok: readonly number[] = [200]): Promise<ApiResponse> {
    return this.request('POST', path, {}, body, ok, shape);
  }

  delete(path: string): Promise<ApiResponse> {
    return this.request('DELETE', path, {}, undefined, [200, 204], {});
  }

  /**
   * Sends one request. Throws CliFailure (exit 1) when it cannot be sent,
   * times out, gets a status outside `ok`, or gets an answer that is not the
   * admin API's (not JSON, or a JSON body without the fields of `shape`).
   */
  async request(method: string, path: string, query: Query, body: unknown, ok: readonly number[], shape: Shape): Promise<ApiResponse> {
    const url = apiUrl(this.#opts.api, path, query);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#opts.token !== null) headers.authorization = `Bearer ${this.#opts.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers,
        signal: AbortSignal.timeout(this.#opts.timeoutMs),
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      // The timeout covers the body too: a server that sends headers and then stalls is as stuck as one that never answers.
      text = await res.text();
    } catch (err) {
      throw transportFailure(err, method, url, this.#opts.timeoutMs);
    }
    const parsed = parseBody(text);
    if (!ok.includes(res.status)) {
      if (isApiError(parsed) || res.status === 401 || res.status === 403) throw httpFailure(res.status, parsed, text, url);
      throw notTheApi(`${method} ${url} answered HTTP ${res.status} with ${describeBody(res, parsed)}`, this.#opts.api);
    }
    if (parsed === NOT_JSON) {
      throw new CliFailure(`${method} ${url} answered HTTP ${res.status} with a body that is not JSON: ${quote(text)}`, 1, apiHint(this.#opts.api));
    }
    // Only a 2xx carries the route's answer (a 503 of /ready is a Readiness too, a 404 an error body).
    const missing = parsed === null || res.status >= 300 ? null : missingField(parsed, shape);
    if (missing !== null) throw notTheApi(`${method} ${url} answered HTTP ${res.status} with JSON that is not the admin API's answer (${missing})`, this.#opts.api);
    return { status: res.status, body: parsed };
  }
}

/** Is this the admin API's error body, {error, code}? */
function isApiError(parsed: unknown): boolean {
  return parsed !== null && typeof parsed === 'object' && typeof (parsed as { error?: unknown }).error === 'string' && typeof (parsed as { code?: unknown }).code === 'number';
}

/** Says what a response that is not the admin API's carried: "a text/html body: "<html>…"", "an empty body". */
function describeBody(res: Response, parsed: unknown): string {
  const type = (res.headers.get('content-type') ?? '').split(';')[0].trim();
  if (parsed === null) return 'an empty body';
  if (parsed === NOT_JSON) return `a ${type || 'non-JSON'} body${type === '' ? '' : ' (not JSON)'}`;
  return 'JSON that is not the admin API\'s error answer ({"error", "code"})';
}

/** Names the first field of `shape` that `body` lacks or has with another type, or null when it has them all. */
function missingField(body: unknown, shape: Shape): string | null {
  if (typeof body !== 'object' || Array.isArray(body)) return `expected a JSON object, got ${Array.isArray(body) ? 'an array' : typeof body}`;
  for (const [field, type] of Object.entries(shape)) {
    const value = (body as Record<string, unknown>)[field];
    const got = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
    if (value === undefined) return `no "${field}" field`;
    if (got !== type) return `"${field}" is ${got === 'array' || got === 'object' ? 'an' : 'a'} ${got}, expected ${type === 'array' || type === 'object' ? 'an' : 'a'} ${type}`;
  }
  return null;
}

function notTheApi(message: string, api: string): CliFailure {
  return new CliFailure(message, 1, apiHint(api));
}

const NOT_JSON = Symbol('not JSON');

function parseBody(text: string): unknown {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return NOT_JSON;
  }
}

function quote(text: string): string {
  const oneLine = text.trim().replace(/\s+/g, ' ');
  return JSON.stringify(oneLine.length > MAX_QUOTED_BODY ? oneLine.slice(0, MAX_QUOTED_BODY) + '…' : oneLine);
}

function apiHint(api: string): string {
  return `is ${api} the overwatch's admin API (api.address)? Pass --api URL or set $OPENGSLB_API`;
}

/**
 * Turns an error status into `<the API's error message> (HTTP <status>)`; the body is {error, code}, or a proxy's plain
 * text for 401 and 403. A 403 gets the hint its cause needs: the Host check names api.allowed_hosts (the name of `url`
 * must be listed), the origin check a browser's page, anything else the allowlist.
 */
function httpFailure(status: number, parsed: unknown, text: string, url: string): CliFailure {
  let message: string;
  if (parsed !== null && typeof parsed === 'object' && typeof (parsed as { error?: unknown }).error === 'string') {
    message = (parsed as { error: string }).error;
  } else if (text.trim() !== '') {
    message = text.trim().split('\n')[0].slice(0, MAX_QUOTED_BODY);
  } else {
    message = 'no error message';
  }
  let hint: string | null = null;
  if (status === 401) hint = 'this request needs the API token (api.token): pass --token TOKEN or set $OPENGSLB_API_TOKEN';
  else if (status === 403) hint = forbiddenHint(message, url);
  return new CliFailure(`${message} (HTTP ${status})`, 1, hint);
}

/** The hint for a 403, by the check that refused (the API's messages: src/api/server.ts, access.ts). */
function forbiddenHint(message: string, url: string): string | null {
  if (/^Forwarded "/.test(message)) return null;
  if (/^(Host|X-Forwarded-Host|Forwarded host) ".*api\.allowed_hosts/s.test(message)) {
    const name = new URL(url).hostname;
    if (/^Host "/.test(message)) {
      return `the overwatch answers only names in its api.allowed_hosts (against DNS rebinding): add ${JSON.stringify(name.replace(/\.$/, ''))} there and reload it, or give --api by IP address`;
    }
    return 'a proxy between here and the API passes on a host name the API does not list: add the name clients use to its api.allowed_hosts and reload it';
  }
  if (message.startsWith('a write from a page of another origin')) return null;
  // findClientAddress (src/api/access.ts) could not read the client's address: the list was never consulted.
  if (message.endsWith(', so the allowlist cannot be checked')) {
    if (message.startsWith('the connection has no peer address')) return null;
    return 'the API trusts proxy headers (api.trust_proxy_headers) and the X-Forwarded-For or X-Real-IP it got is not one client IP address: make the proxy in front of the API set them to the client\'s address, or reach the API without that proxy';
  }
  return "this host's address is not in the API's api.allowed_networks";
}

/** Names what went wrong below HTTP: refused, timed out, unknown host, reset, or whatever fetch's cause says. */
function transportFailure(err: unknown, method: string, url: string, timeoutMs: number): CliFailure {
  const e = err as { name?: string };
  const api = new URL(url).origin;
  const hint = apiHint(api);
  if (e.name === 'TimeoutError' || e.name === 'AbortError') {
    return new CliFailure(`${method} ${url}: no answer within ${formatDuration(timeoutMs)}`, 1, `${hint}; a slow API needs a longer --timeout`, true);
  }
  const what = fetchFailureText(err, url, 'pass --ca-file with the CA that issued api.tls.cert_file');
  return new CliFailure(`cannot reach the admin API at ${url}: ${what}`, 1, hint, true);
}
