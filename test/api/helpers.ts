// Test helper for the admin API: starts the real API on loopback port 0 in
// front of a real overwatch (or none, for "still starting"), with an api
// config the test may swap between requests as a reload would.

import type { TestContext } from 'node:test';
import { Writable } from 'node:stream';
import type { ApiConfig } from '../../src/config/types.ts';
import { createLogger } from '../../src/log/logger.ts';
import { startApi, type ApiDeps, type ApiOverwatch, type ApiServer } from '../../src/api/server.ts';

export interface StartedApi {
  readonly api: ApiServer;
  /** "http://127.0.0.1:PORT" (or "http://[::1]:PORT"). */
  readonly base: string;
  /** The api config every request reads; assign to simulate a reload. */
  config: ApiConfig;
  /** The overwatch the API serves; null = still starting. */
  overwatch: ApiOverwatch | null;
  /** Log lines (JSON) the API wrote. */
  readonly logs: string[];
}

export const DEFAULT_API: ApiConfig = Object.freeze({
  enabled: true,
  host: '127.0.0.1',
  port: 0,
  allowedNetworks: Object.freeze(['127.0.0.1/32', '::1/128']),
  allowedHosts: Object.freeze([]),
  trustProxyHeaders: false,
  maxConnections: 256,
  token: null,
  tls: null,
});

/** Starts the API on `host` port 0 serving `overwatch`; closes it after the test. */
export async function startTestApi(t: TestContext, overwatch: ApiOverwatch | null, api: Partial<ApiConfig> = {}, host = '127.0.0.1'): Promise<StartedApi> {
  const started = await openTestApi(overwatch, api, host);
  t.after(() => started.api.close());
  return started;
}

/** Starts the API on `host` port 0 serving `overwatch`; the caller closes it (suites sharing one API). */
export async function openTestApi(overwatch: ApiOverwatch | null, api: Partial<ApiConfig> = {}, host = '127.0.0.1', deps: Pick<ApiDeps, 'queryRateIntervalMs'> = {}): Promise<StartedApi> {
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const state = { config: { ...DEFAULT_API, ...api, host }, overwatch } as { config: ApiConfig; overwatch: ApiOverwatch | null };
  const server = await startApi(
    { apiConfig: () => state.config, overwatch: () => state.overwatch, logger: createLogger({ level: 'info', format: 'json' }, sink), version: '0.0.0-test', ...deps },
    host,
    0,
  );
  const base = host.includes(':') ? `http://[${host}]:${server.port}` : `http://${host}:${server.port}`;
  return Object.assign(state, { api: server, base, logs }) as StartedApi;
}

export interface JsonResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: any;
}

/** Sends a request and parses the JSON body (null for an empty one). */
export async function call(base: string, method: string, path: string, opts: { body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}): Promise<JsonResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  let body: string | undefined;
  if (opts.rawBody !== undefined) body = opts.rawBody;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? null : JSON.parse(text) };
}

/** The YAML of a small overwatch: two regions, two domains, DNS on 127.0.0.1:0, health checks off (servers healthy). */
export const YAML = `
dns:
  listen_address: "127.0.0.1:0"
  workers: 1
  zones: [example.test]
regions:
  - name: eu
    servers: [{ address: 192.0.2.1, port: 80 }, { address: 192.0.2.2, port: 80 }]
  - name: us
    servers: [{ address: "2001:db8::3", port: 443 }, { address: 192.0.2.3, port: 80 }]
domains:
  - { name: app.example.test, regions: [eu, us], ttl: 30 }
  - { name: eu.example.test, regions: [eu] }
logging: { level: error }
`;
