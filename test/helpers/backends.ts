// Test helper. Real health-check targets on loopback: HTTP servers whose
// status and delay a test changes, and TCP listeners, each on its own
// 127.0.x.y address so DNS answers tell them apart, and each able to stop
// (connections refused) and start again on the same address and port.

import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { TestContext } from 'node:test';

export interface Backend {
  readonly address: string;
  readonly port: number;
  /** Status the next health requests get. */
  status: number;
  /** Delay before answering, in ms. */
  delayMs: number;
  /** Requests received so far. */
  requests: number;
  /** Host header of the last HTTP request, or null. */
  lastHost: string | null;
  stop(): Promise<void>;
  start(): Promise<void>;
}

let nextHost = 1;
/** Returns a fresh loopback address (127.0.77.1, 127.0.77.2, …) for one backend. */
export function loopbackAddress(): string {
  const n = nextHost++;
  return `127.0.${77 + (n >> 8)}.${n & 255}`;
}

async function listenOn(server: net.Server, address: string, port: number): Promise<number> {
  server.listen({ host: address, port, exclusive: true });
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
  return (server.address() as net.AddressInfo).port;
}

/**
 * A Backend (first answering `status`) on a fresh loopback address, served
 * by what `make` builds, again on each start; `drop` ends its open
 * connections on stop. The port picked at the first start is kept. Stopped
 * in t.after().
 */
async function serve<S extends net.Server>(t: TestContext, status: number, make: (backend: Backend) => S, drop: (server: S) => void): Promise<Backend> {
  const address = loopbackAddress();
  const backend: Backend = {
    address,
    port: 0,
    status,
    delayMs: 0,
    requests: 0,
    lastHost: null,
    async stop() {
      drop(server);
      server.close();
      await once(server, 'close');
    },
    async start() {
      server = make(backend);
      await listenOn(server, address, backend.port);
    },
  };
  let server = make(backend);
  (backend as { port: number }).port = await listenOn(server, address, 0);
  t.after(() => (server.listening ? backend.stop() : undefined));
  return backend;
}

/** Starts an HTTP backend answering every path with `status` after `delayMs`; stopped in t.after(). */
export async function httpBackend(t: TestContext, status = 200): Promise<Backend> {
  const make = (backend: Backend): http.Server =>
    http.createServer((req, res) => {
      backend.requests++;
      backend.lastHost = req.headers.host ?? null;
      const send = (): void => {
        res.writeHead(backend.status, { 'content-type': 'text/plain', connection: 'close' });
        res.end(backend.status < 400 ? 'ok' : 'failing');
      };
      if (backend.delayMs > 0) setTimeout(send, backend.delayMs);
      else send();
    });
  return serve(t, status, make, (server) => server.closeAllConnections());
}

/** Starts a TCP listener that accepts and closes connections; stopped in t.after(). */
export async function tcpBackend(t: TestContext): Promise<Backend> {
  const sockets = new Set<net.Socket>();
  const make = (backend: Backend): net.Server =>
    net.createServer((socket) => {
      backend.requests++;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      socket.end();
    });
  return serve(t, 0, make, () => {
    for (const s of sockets) s.destroy();
  });
}

/**
 * Starts an HTTP server on 127.0.0.1 whose every answer is a 200 that
 * streams spaces without end (a misconfigured peer URL); closed in t.after().
 * `streamed()` is the bytes written so far; `cut` resolves when a client
 * has dropped the stream.
 */
export async function endlessHttpServer(t: TestContext): Promise<{ readonly url: string; streamed(): number; readonly cut: Promise<void> }> {
  let streamed = 0;
  const cut = Promise.withResolvers<void>();
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const more = (): void => {
      while (!res.destroyed && res.write(chunk)) streamed += chunk.length;
    };
    res.on('drain', more);
    res.on('close', () => cut.resolve());
    more();
  });
  const port = await listenOn(server, '127.0.0.1', 0);
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${port}`, streamed: () => streamed, cut: cut.promise };
}
