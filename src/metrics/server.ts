// Main thread, cold path. The metrics listener at metrics.address: a bare
// node:http server (two routes, no need for a framework) without access
// control, as in the Go original:
//
//   GET /metrics → 200, Prometheus text format 0.0.4 from the registry (collect() runs now)
//   GET /health  → 200 "OK"
//   other paths  → 404; other methods on those two paths → 405 with Allow

import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { formatAddress } from '../lib/ip.ts';
import type { Logger } from '../log/logger.ts';

/** A running metrics listener. */
export interface MetricsListener {
  /** The bound address: host as given, port as bound (port 0 asks the OS for one). */
  readonly host: string;
  readonly port: number;
  /** Stops listening and closes open connections; resolves when closed. */
  close(): Promise<void>;
}

/**
 * Starts the metrics listener on `host:port` and resolves once it listens.
 * Rejects with the bind error (its `code`, e.g. EADDRINUSE or EACCES, kept)
 * with a message naming the address; nothing is left running then.
 */
export async function startMetricsServer(registry: Registry, host: string, port: number, logger: Logger): Promise<MetricsListener> {
  const log = logger.child({ component: 'metrics' });
  const server = http.createServer((req, res) => {
    // The path of an origin-form target ("/metrics?x") or of an absolute-form one ("http://host/metrics"), which a
    // server must accept too (RFC 9112 §3.2.2) and a forward proxy sends; "*" and what does not parse are no path here.
    let path = '';
    try {
      path = new URL(req.url ?? '', 'http://metrics.invalid').pathname;
    } catch {
      path = '';
    }
    if (path !== '/metrics' && path !== '/health') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    if (path === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('OK');
      return;
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: Error) => {
        // A collect() that throws is a bug in this module; the scrape fails visibly and the process keeps serving DNS.
        log.error({ err: err.message }, 'metrics collection failed');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics collection failed\n');
      },
    );
  });
  // A scraper that stops mid-request must not hold a socket for ever.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 65_000;

  server.listen({ host, port });
  try {
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    server.close();
    const wrapped = new Error(`cannot listen for metrics on ${formatAddress(host, port)}: ${e.code ?? 'error'} (${e.message})`) as NodeJS.ErrnoException;
    if (e.code !== undefined) wrapped.code = e.code;
    throw wrapped;
  }
  const bound = (server.address() as AddressInfo).port;
  log.info({ address: formatAddress(host, bound) }, 'metrics listening');
  return {
    host,
    port: bound,
    async close() {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}
