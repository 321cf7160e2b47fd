// Main thread, cold path. The admin API: a Fastify server on api.address (HTTP,
// or HTTPS with api.tls; a reload re-reads the certificate) with
// JSON routes under /api/v1, an IP allowlist, a bearer token for writes, and
// an OpenAPI document generated from the route schemas; and the web dashboard
// at / (src/api/dashboard-routes.ts), a page that is a client of those routes. It shares the main
// thread with the health scheduler, so handlers stay O(servers) and every
// schema, validator and serialiser is compiled before the first request.
//
//   connection ─▶ api.max_connections open? / 8 from outside allowed_networks open? ─yes─▶ destroyed, nothing read
//   request ─▶ router ─▶ onRequest: open path? ─no─▶ allowlist (403) ─▶ Host not ours (403) ─▶ writes: another origin's page (403) ─▶ token (401)
//                                                    ─▶ overwatch started? (503)
//           ─▶ no route (404) / wrong method (405)
//           ─▶ body parse (400/413/415) ─▶ schema validation (400) ─▶ handler (404, 500)
//   every failure ─▶ one error handler ─▶ {"error": "...", "code": status}

import { fastify, LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type HookHandlerDoneFunction } from 'fastify';
import swagger from '@fastify/swagger';
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { readTlsPair, type TlsPair } from '../config/api-tls.ts';
import type { ApiConfig } from '../config/types.ts';
import { OpenGslbError } from '../lib/errors.ts';
import { formatAddress } from '../lib/ip.ts';
import type { Logger } from '../log/logger.ts';
import { allowlistFor, checkBearer, findClientAddress, findHostProblem } from './access.ts';
import { STARTING_MESSAGE, type ApiDeps, type RouteContext } from './context.ts';
import { registerAgentRoutes } from './agent-routes.ts';
import { registerClusterRoutes } from './cluster-routes.ts';
import { registerBackendsRoute } from './backends-route.ts';
import { API_HEADERS, DASHBOARD_PATHS, registerDashboardRoutes } from './dashboard-routes.ts';
import { registerDnssecRoutes } from './dnssec-routes.ts';
import { registerExplainRoute } from './explain-route.ts';
import { registerGeoRoutes } from './geo-routes.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { registerOverrideRoutes } from './override-routes.ts';
import { registerReloadRoutes, RELOAD_SCHEMAS } from './reload-routes.ts';
import { SHARED_SCHEMAS } from './schemas.ts';
import { registerStatsRoutes } from './stats-routes.ts';
import { QueryRateHistory } from '../metrics/query-rates.ts';
import { OPEN_PATHS, registerStatusRoutes, STARTUP_PATHS } from './status-routes.ts';
import { validationError, type AjvError } from './validation.ts';

export type { ApiDeps, ApiOverwatch } from './context.ts';

/** The running API. */
export interface ApiServer {
  /** The address bound (IP literal, no brackets). */
  readonly host: string;
  /** The port bound (the OS's choice when asked for 0). */
  readonly port: number;
  /** True when it serves HTTPS (api.tls). */
  readonly tls: boolean;
  /**
   * After a reload: reads api.tls's files again and serves them to new
   * connections (connections already open keep theirs). Returns null when
   * done or nothing applies, else why the previous certificate stays: the
   * files cannot be used, or TLS was turned on or off, which needs a restart.
   */
  reloadTls(tls: ApiConfig['tls']): string | null;
  /** Connections refused when accepted, since the start, by why (opengslb_api_connections_refused_total). */
  readonly refusedConnections: Readonly<RefusedConnections>;
  /** Stops accepting connections and waits for requests in flight. */
  close(): Promise<void>;
}

/** Per-route config flags (Fastify's route `config`). */
interface RouteFlags {
  readonly methodNotAllowed?: boolean;
  /** A write route without a body schema: a body sent to it is a 400, not ignored. */
  readonly noBody?: boolean;
}

/** Largest request body accepted; an override is about 200 bytes. */
const BODY_LIMIT_BYTES = 16 * 1024;
/**
 * Longest path segment the router matches, in bytes as sent (%-escapes
 * included): the longest parameter a schema takes (a domain name, 256
 * characters) with every character escaped. Fastify's default (100) refused
 * valid domain names of 101-253 characters before their schema was checked.
 */
const MAX_PARAM_BYTES = 3 * 256;
/** As the Go original: read/write timeout 10 s, idle keep-alive 60 s. */
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 60_000;
/** On close, how long requests in flight may still take before their connections are cut: well inside the process's 4.5 s stop. */
const CLOSE_GRACE_MS = 2_000;
/** Methods a 405 is answered for; anything else falls through to 404. */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;
/** RFC 9110 §9.2.1: the unsafe methods; with api.token set, they need the token. */
const WRITE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);
/** The query string of a write route that takes no parameters. */
const NO_QUERY = Object.freeze({ type: 'object', additionalProperties: false, properties: {} });
/** api.allowed_networks: [] means loopback only, as in the Go original. */
const LOOPBACK_ONLY: readonly string[] = Object.freeze(['127.0.0.0/8', '::1/128']);
/**
 * Connections from outside api.allowed_networks held at once (within
 * api.max_connections): they can reach only live, ready and version (probes),
 * so a few suffice, and past them such a connection is closed when accepted:
 * clients that may use nothing else cannot take the slots of those that may.
 */
export const OUTSIDE_CONNECTIONS = 8;

/** Connections the API refused when it accepted them, by why: api.max_connections were open, or OUTSIDE_CONNECTIONS from outside api.allowed_networks. */
export interface RefusedConnections {
  max_connections: number;
  outside: number;
}

const noRefusals = (): RefusedConnections => ({ max_connections: 0, outside: 0 });

/** Refused connections are logged at most this often (each kind), with the count since the last line. */
const REFUSAL_LOG_INTERVAL_MS = 60_000;
/** GET /api/v1/stats/queries: one sample of the reply rate every 5 s, the last 10 minutes kept. */
const QUERY_RATE_INTERVAL_MS = 5_000;
const QUERY_RATE_SAMPLES = 120;

/**
 * Starts the admin API on host:port (port 0 asks the OS) and resolves once it
 * listens. Rejects with the listen error (EADDRINUSE, EACCES…) when it cannot
 * bind; nothing is left open then.
 */
export async function startApi(deps: ApiDeps, host: string, port: number): Promise<ApiServer> {
  const log = deps.logger.child({ component: 'api' });
  const tlsPaths = deps.apiConfig().tls;
  let pair: TlsPair | null = null;
  if (tlsPaths !== null) {
    const read = readTlsPair(tlsPaths.certPath, tlsPaths.keyPath);
    if ('which' in read) throw new Error(`api.tls.${read.which}: ${read.message}`);
    pair = read;
  }
  const refused = noRefusals();
  const app = createApp(deps, log, pair, refused);
  try {
    await app.listen({ host, port });
  } catch (err) {
    await app.close();
    throw err;
  }
  const bound = app.server.address();
  const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port;
  log.info({ address: formatAddress(host, boundPort), scheme: pair === null ? 'http' : 'https' }, 'API listening');
  const reloadTls = (next: ApiConfig['tls']): string | null => {
    if ((next === null) !== (pair === null)) return `api.tls was turned ${next === null ? 'off' : 'on'}; the API keeps serving ${pair === null ? 'HTTP' : 'HTTPS'} until a restart`;
    if (next === null) return null;
    const read = readTlsPair(next.certPath, next.keyPath);
    if ('which' in read) return `api.tls.${read.which}: ${read.message}; the API keeps the previous certificate`;
    // Node's https.Server: new handshakes use the new context, open connections keep theirs.
    (app.server as unknown as HttpsServer).setSecureContext({ cert: read.cert, key: read.key });
    pair = read;
    return null;
  };
  return { host, port: boundPort, tls: pair !== null, reloadTls, refusedConnections: refused, close: () => closeApp(app) };
}

/**
 * Closes the API: no new connections, requests in flight get CLOSE_GRACE_MS
 * to finish, then every connection still open is destroyed. Node stops its
 * request-timeout checks once the server closes, and Fastify ends only idle
 * keep-alive connections, so without the bound one client that opened a
 * connection and sent nothing (or half its headers) held the stop forever.
 */
async function closeApp(app: FastifyInstance): Promise<void> {
  const timer = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
  }
}

/** Builds the Fastify instance with every route, not yet listening (startApi listens). */
export function createApp(deps: ApiDeps, log: Logger, tls: TlsPair | null = null, refused: RefusedConnections = noRefusals()): FastifyInstance {
  // With api.tls the same routes sit on an https.Server (the instance's type only names the server class).
  const app = fastify({
    ...(tls === null ? {} : { https: { cert: tls.cert, key: tls.key } }),
    // Fastify logs only its own warnings (and a per-interface "listening" line at
    // info, which startApi replaces with one line of ours): hence warn at least.
    loggerInstance: log.child({}, { level: log.isLevelEnabled('warn') ? 'warn' : log.level }) as FastifyBaseLogger,
    // Nothing per request: the API logs what changes state (overrides) and what fails.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { maxParamLength: MAX_PARAM_BYTES },
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    return503OnClosing: true,
    ajv: {
      customOptions: {
        // Strict JSON: no "true" for true, and an unknown field is an error, not silently dropped.
        coerceTypes: false,
        removeAdditional: false,
        // verbose adds the received value and the schema to each error, for readable 400s.
        verbose: true,
      },
    },
    schemaErrorFormatter: (errors, part) => validationError(errors as unknown as AjvError[], part),
    // A path with a broken %-escape never reaches the router (nor the allowlist: it has no route to guard).
    frameworkErrors: (err, _request, reply) => {
      const message =
        err.code === 'FST_ERR_BAD_URL' ? 'path: malformed %-escape, expected a URL-encoded path'
        : err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? `path: a parameter longer than ${MAX_PARAM_BYTES} bytes, expected one of at most 256 characters`
        : err.message;
      // Answered before the router, so no hook runs: the headers the hooks would add are added here.
      sendError(addApiHeaders(reply), 400, message);
    },
    // What Node's HTTP parser refuses before any route (an unknown method, bad
    // framing, headers over 16 KiB, the request timeout) gets the same {error, code} body as every other error.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket: Socket) => writeClientError(err, socket),
  }) as unknown as FastifyInstance;
  // Fastify parses text/plain as a string by default; this API takes JSON only (415 otherwise, as docs/api.md says).
  app.removeContentTypeParser('text/plain');
  // Fastify's JSON parser keeps the last of two equal keys, so {"healthy": false, …, "healthy": true} set a server
  // healthy without a word; and it called a __proto__ key "not valid JSON". This one refuses both, saying which key.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    // The body is read as UTF-8 (RFC 8259 §8.1: JSON exchanged between systems is UTF-8): one declared in another
    // charset used to be decoded as UTF-8 all the same, so "M\xfcller" in latin1 was stored as "M\ufffdller".
    const charset = charsetOf(request.headers['content-type']);
    if (charset !== null && !UTF8_LABELS.has(charset.toLowerCase())) {
      const err = new Error(`request body: Content-Type charset ${JSON.stringify(charset)} is not accepted, expected JSON in UTF-8: application/json, with no charset or charset=utf-8`);
      return done(Object.assign(err, { statusCode: 415 }), undefined);
    }
    const text = body as string;
    if (text === '') return done(new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', 'request body: empty, expected a JSON object'), undefined);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return done(new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', 'request body: not valid JSON, expected a JSON object'), undefined);
    }
    const problem = keyProblem(text);
    if (problem !== null) return done(new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', `request body: ${problem}`), undefined);
    done(null, value);
  });
  const ctx: RouteContext = { deps, log };
  gateConnections(app.server, deps, log, refused);

  // The dashboard's chart: the API samples the workers' reply counters while it runs.
  const rateIntervalMs = deps.queryRateIntervalMs ?? QUERY_RATE_INTERVAL_MS;
  const rates = new QueryRateHistory(QUERY_RATE_SAMPLES);
  const rateTimer = setInterval(() => {
    const ow = deps.overwatch();
    if (ow !== null) rates.sample(ow.counters, Date.now());
  }, rateIntervalMs);
  rateTimer.unref();
  app.addHook('onClose', (_instance, done) => {
    clearInterval(rateTimer);
    done();
  });

  for (const schema of [...SHARED_SCHEMAS, ...RELOAD_SCHEMAS]) app.addSchema(schema);

  // Methods per path, to answer 405 (rather than Fastify's 404) for a known path.
  const methodsOf = new Map<string, Set<string>>();
  const allowOf = new Map<string, string>();
  let collecting = true;
  app.addHook('onRoute', (route) => {
    if (!collecting) return;
    // A write route that names no query parameters takes none: "PUT …/region/eu?expires_in=2h" must be a 400,
    // not an override that silently never ends. (Reads still ignore extra parameters, as cache-busters add them.)
    if ([route.method].flat().some((m) => WRITE_METHODS.has(m)) && route.schema?.querystring === undefined) {
      route.schema = { ...route.schema, querystring: NO_QUERY };
    }
    // Likewise a body: POST /api/v1/reload with {"dry_run": true} ran a real reload, the body unread.
    if ([route.method].flat().some((m) => WRITE_METHODS.has(m)) && route.schema?.body === undefined) {
      route.config = { ...(route.config as object), noBody: true } as RouteFlags as typeof route.config;
    }
    const set = methodsOf.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) set.add(m);
    methodsOf.set(route.url, set);
  });

  let document: unknown = null;
  app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'OpenGSLB admin API',
        version: deps.version,
        description: 'Health, domains, overrides, explain, geolocation and agents. See docs/api.md.',
      },
      tags: [
        { name: 'status', description: 'Liveness, readiness, version (no allowlist).' },
        { name: 'health', description: 'Health-check state of servers and regions.' },
        { name: 'domains', description: 'Domains as DNS serves them.' },
        { name: 'overrides', description: 'Operator overrides, which outrank health checks.' },
        { name: 'config', description: 'Reload the config files; the config now serving.' },
        { name: 'dnssec', description: 'DNSSEC keys, DS records, rollover and key sync.' },
        { name: 'geolocation', description: 'Which region a client maps to, and custom mappings added at run time.' },
        { name: 'agents', description: 'Agents: their pins, state and backends; revocation and deletion.' },
        { name: 'cluster', description: 'Several overwatches: this one, the agents it hears, and whether its peers (overwatch.peers) see the same.' },
        { name: 'stats', description: 'Recent query rates, for the dashboard.' },
      ],
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'api.token; needed for writes only when set.' } },
      },
    },
    refResolver: {
      // Shared schemas keep their $id as their component name ("Server", "Override").
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });

  app.after(() => {
    registerStatusRoutes(app, ctx, () => (document ??= app.swagger()));
    registerHealthRoutes(app, ctx);
    registerOverrideRoutes(app, ctx);
    registerExplainRoute(app, ctx);
    registerBackendsRoute(app, ctx);
    registerReloadRoutes(app, ctx);
    registerDnssecRoutes(app, ctx);
    registerAgentRoutes(app, ctx);
    registerClusterRoutes(app, ctx);
    registerGeoRoutes(app, ctx);
    registerStatsRoutes(app, ctx, rates, rateIntervalMs, QUERY_RATE_SAMPLES);
    registerDashboardRoutes(app);
    collecting = false;
    for (const [url, methods] of methodsOf) {
      if (methods.has('GET')) methods.add('HEAD');
      const others = METHODS.filter((m) => !methods.has(m));
      if (others.length === 0) continue;
      allowOf.set(url, METHODS.filter((m) => methods.has(m)).join(', '));
      const shown = url.replace(/:(\w+)/g, '{$1}'); // as the OpenAPI document writes path parameters
      app.route({
        method: others,
        url,
        exposeHeadRoute: false,
        schema: { hide: true },
        config: { methodNotAllowed: true },
        handler: (request) => {
          throw new OpenGslbError('OPENGSLB_ERR_API_METHOD', `${request.method} is not allowed on ${shown}; expected ${allowOf.get(url)}`);
        },
      });
    }
  });

  app.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    // A Content-Type with no body (curl -X DELETE -H 'Content-Type: application/json'): Fastify would parse the
    // nothing as JSON and answer "empty, expected a JSON object" even to a DELETE, which takes no body. Without
    // the header there is no body, and a route that needs one says what it expects.
    const { 'content-length': length, 'transfer-encoding': chunked } = request.headers;
    if (chunked === undefined && (length === undefined || length === '0')) delete request.headers['content-type'];
    const url = request.routeOptions.url;
    if (url !== undefined && OPEN_PATHS.has(url)) {
      // A prober outside the allowlist gets its answer and the connection closes: it holds one of the few outside slots briefly.
      if (outsider(request.socket.remoteAddress, deps.apiConfig())) reply.header('connection', 'close');
      return done();
    }
    const api = deps.apiConfig();
    const client = findClientAddress(request.socket.remoteAddress, request.headers, api.trustProxyHeaders);
    if ('error' in client) return done(new OpenGslbError('OPENGSLB_ERR_API_FORBIDDEN', `${client.error}, so the allowlist cannot be checked`));
    const networks = api.allowedNetworks.length === 0 ? LOOPBACK_ONLY : api.allowedNetworks;
    if (!allowlistFor(networks).allows(client.bytes)) {
      return done(new OpenGslbError('OPENGSLB_ERR_API_FORBIDDEN', `client ${client.address} is not in api.allowed_networks`));
    }
    // Reads too: a page rebound to this address is same-origin, so the browser would hand it every answer.
    const hostProblem = findHostProblem(request.headers, api.allowedHosts, api.trustProxyHeaders);
    if (hostProblem !== null) return done(new OpenGslbError('OPENGSLB_ERR_API_FORBIDDEN', hostProblem));
    // Neither a 404 (no route) nor a 405 (generated route) writes anything, so neither needs the token or a running overwatch.
    const real = url !== undefined && (request.routeOptions.config as RouteFlags).methodNotAllowed !== true;
    if (real && WRITE_METHODS.has(request.method)) {
      const foreign = foreignOrigin(request.headers);
      if (foreign !== null) {
        return done(new OpenGslbError('OPENGSLB_ERR_API_FORBIDDEN', `a write from a page of another origin (${foreign}) is refused: a browser sent it on that page's behalf; expected a client such as opengslb-cli or curl, or the dashboard this API serves`));
      }
    }
    if (api.token !== null && real && WRITE_METHODS.has(request.method)) {
      const verdict = checkBearer(request.headers.authorization, api.token);
      if (verdict === 'missing') return done(new OpenGslbError('OPENGSLB_ERR_API_UNAUTHORIZED', 'this write needs the API token: send "Authorization: Bearer <api.token>"'));
      if (verdict === 'wrong') return done(new OpenGslbError('OPENGSLB_ERR_API_UNAUTHORIZED', 'the bearer token does not match api.token'));
    }
    if (real && !STARTUP_PATHS.has(url) && !DASHBOARD_PATHS.has(url) && deps.overwatch() === null) return done(new OpenGslbError('OPENGSLB_ERR_API_STARTING', STARTING_MESSAGE));
    done();
  });

  // Every answer, errors and 404s included, gets the API's security headers unless its route set its own (the dashboard's files).
  app.addHook('onSend', (_request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void) => {
    addApiHeaders(reply);
    done(null, payload);
  });

  app.addHook('preValidation', (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if ((request.routeOptions.config as RouteFlags).noBody !== true || request.body === undefined) return done();
    const shown = (request.routeOptions.url ?? '').replace(/:(\w+)/g, '{$1}');
    done(new OpenGslbError('OPENGSLB_ERR_API_BAD_REQUEST', `request body: ${request.method} ${shown} takes none, expected no body`));
  });

  app.setNotFoundHandler((request) => {
    const path = request.url.length > 200 ? `${request.url.slice(0, 200)}…` : request.url;
    throw new OpenGslbError('OPENGSLB_ERR_API_NO_ROUTE', `no route ${request.method} ${path}; GET /api/v1/openapi.json lists the routes`);
  });

  app.setErrorHandler((err: FastifyError | OpenGslbError | Error, request, reply) => {
    if (err instanceof OpenGslbError) {
      if (err.httpStatus === 401) reply.header('www-authenticate', 'Bearer realm="opengslb"');
      if (err.httpStatus === 405) reply.header('allow', allowOf.get(request.routeOptions.url ?? '') ?? '');
      // 500s only, as docs/api.md says: a 503 while starting is expected (the dashboard and probes poll through it), not an error to page on.
      if (err.httpStatus === 500) log.error({ code: err.code, method: request.method, url: request.url, err: err.message }, 'request failed');
      return sendError(reply, err.httpStatus, err.message);
    }
    const status = (err as FastifyError).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) return sendError(reply, status, clientErrorMessage(err as FastifyError));
    log.error({ method: request.method, url: request.url, err }, 'request failed');
    return sendError(reply, 500, 'internal error; the server log has the details');
  });

  return app;
}

/**
 * Is the socket peer outside api.allowed_networks, as far as a connection can
 * tell? Never with trust_proxy_headers: the peer is then a proxy, and only
 * each request's headers name the client.
 */
function outsider(peer: string | undefined, api: ApiConfig): boolean {
  if (api.trustProxyHeaders) return false;
  const client = findClientAddress(peer, NO_HEADERS, false);
  if ('error' in client) return true;
  return !allowlistFor(api.allowedNetworks.length === 0 ? LOOPBACK_ONLY : api.allowedNetworks).allows(client.bytes);
}

const NO_HEADERS = Object.freeze({});

/**
 * The origin of the web page a browser sent this request for, when that is
 * not this API's own origin; else null (the API's dashboard, or no browser at
 * all: the CLI and curl send neither header). A form POST is a request no
 * browser preflights, so without this a page of any site the operator opens
 * could reload the config through a tokenless API (cross-site request
 * forgery). Browsers send Sec-Fetch-Site, computed against the page's own URL
 * (right behind a proxy that rewrites Host); older ones only Origin, then
 * compared with Host.
 */
function foreignOrigin(headers: FastifyRequest['headers']): string | null {
  const site = headers['sec-fetch-site'];
  const origin = typeof headers.origin === 'string' ? headers.origin : null;
  if (typeof site === 'string') return site === 'same-origin' || site === 'none' ? null : (origin ?? `Sec-Fetch-Site: ${site}`);
  if (origin === null) return null;
  let host: string | null = null;
  try {
    host = new URL(origin).host;
  } catch {
    // "null" (a sandboxed page, a file://) or garbage: no origin this API has.
  }
  return host !== null && host === headers.host?.toLowerCase() ? null : origin;
}

/**
 * Bounds the connections the API holds, when they are accepted (before any
 * byte is read): at most api.max_connections in all, and of them at most
 * OUTSIDE_CONNECTIONS from outside api.allowed_networks; a connection past
 * either is destroyed at once. Both are read from the current config, so a
 * reload applies them to the next connection. The allowlist is still checked
 * per request (with trust_proxy_headers only there).
 */
function gateConnections(server: FastifyInstance['server'], deps: ApiDeps, log: Logger, totals: RefusedConnections): void {
  let open = 0;
  let outside = 0;
  // Refused since the last log line of each kind; `totals` keeps counting.
  const unlogged = noRefusals();
  const loggedAt = noRefusals();
  const refuse = (socket: Socket, why: keyof RefusedConnections, fields: Record<string, unknown>): void => {
    socket.destroy();
    totals[why]++;
    unlogged[why]++;
    const now = Date.now();
    if (now - loggedAt[why] < REFUSAL_LOG_INTERVAL_MS) return;
    loggedAt[why] = now;
    log.warn(
      { ...fields, refused: unlogged[why] },
      why === 'max_connections'
        ? 'API connection refused: api.max_connections are open (count since the last such line; logged once a minute)'
        : `API connection refused: ${OUTSIDE_CONNECTIONS} connections from outside api.allowed_networks are open (count since the last such line; logged once a minute)`,
    );
    unlogged[why] = 0;
  };
  server.on('connection', (socket: Socket) => {
    const api = deps.apiConfig();
    if (open >= api.maxConnections) return refuse(socket, 'max_connections', { open, limit: api.maxConnections, remote: socket.remoteAddress });
    const isOutside = outsider(socket.remoteAddress, api);
    if (isOutside && outside >= OUTSIDE_CONNECTIONS) return refuse(socket, 'outside', { open: outside, remote: socket.remoteAddress });
    open++;
    if (isOutside) outside++;
    socket.once('close', () => {
      open--;
      if (isOutside) outside--;
    });
  });
}

/**
 * Finds a key given twice in one object, or a __proto__ key (which an
 * Object.assign of the body would turn into a prototype), in JSON text that
 * JSON.parse has accepted; null when there is none. Bodies are at most 16 KiB,
 * so one pass with a stack of the keys seen per open object is cheap.
 */
function keyProblem(text: string): string | null {
  const open: (Set<string> | null)[] = []; // per open object its keys, null per open array
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const keys = open.at(-1);
      if (expectKey && keys instanceof Set) {
        // Decoded, so "h\u0065althy" and "healthy" are one key, as JSON.parse sees them.
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (key === '__proto__') return 'the field "__proto__" is refused (it would set an object\'s prototype), expected only the route\'s fields';
        if (keys.has(key)) return `the field ${JSON.stringify(key)} is given twice, expected each field once`;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      open.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      open.push(null);
      expectKey = false;
    } else if (c === '}' || c === ']') {
      open.pop();
      expectKey = false;
    } else if (c === ',') {
      expectKey = open.at(-1) instanceof Set;
    }
  }
  return null;
}

/** The charset labels of UTF-8 a JSON body may declare (WHATWG Encoding: "utf-8" and its alias "utf8"), lower case. */
const UTF8_LABELS: ReadonlySet<string> = new Set(['utf-8', 'utf8']);

/**
 * Returns the charset parameter of a Content-Type (RFC 9110 §8.3.1:
 * `type/subtype *( OWS ";" OWS name=value )`, the name in any case, the value
 * a token or a quoted string), unquoted, or null when there is none.
 */
function charsetOf(contentType: string | undefined): string | null {
  if (contentType === undefined) return null;
  const params = contentType.split(';');
  for (let i = 1; i < params.length; i++) {
    const param = params[i].trim();
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    const value = param.slice(eq + 1).trim();
    return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return null;
}

function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error: message, code: status });
}

/**
 * Answers a request Node's HTTP parser refused (the 'clientError' event: no
 * request object, no route) with the house {error, code} body, then closes
 * the connection, as Fastify's default handler does with its own body.
 */
function writeClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has nobody to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let status = 400;
  let message = `request: not valid HTTP/1.1 (${err.code ?? 'parse error'}), expected a request line, headers and a body framed by Content-Length or chunked encoding`;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    message = `request: not received in full within ${REQUEST_TIMEOUT_MS / 1000} s`;
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    message = `request: the request line and headers exceed ${maxHeaderSize} bytes`;
  } else if (err.code === 'HPE_INVALID_METHOD') {
    message = `request: unknown HTTP method, expected one of ${METHODS.join(', ')}`;
  }
  if (socket.writable) {
    const body = JSON.stringify({ error: message, code: status });
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n${RAW_API_HEADERS}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Adds each of API_HEADERS the reply has not set itself (the dashboard's files set their own policy and caching). */
function addApiHeaders(reply: FastifyReply): FastifyReply {
  for (const [name, value] of Object.entries(API_HEADERS)) if (!reply.hasHeader(name)) reply.header(name, value);
  return reply;
}

/** API_HEADERS as header lines, for the answers written to the socket before any route. */
const RAW_API_HEADERS = Object.entries(API_HEADERS).map(([name, value]) => `${name}: ${value}\r\n`).join('');

/** Rewrites Fastify's own client errors (body parsing) to say what was expected. */
function clientErrorMessage(err: FastifyError): string {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'request body: this Content-Type is not accepted, expected application/json';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'request body: empty, expected a JSON object';
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `request body: larger than ${BODY_LIMIT_BYTES} bytes`;
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'request body: not valid JSON, expected a JSON object';
    default:
      return err.message;
  }
}
