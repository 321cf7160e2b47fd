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

/** Starts an HTTP backend answering every path with `status` after `delayMs`; stopped in t.after(). */
export async function httpBackend(t: TestContext, status = 200): Promise<Backend> {
  const address = loopbackAddress();
  const make = (): http.Server =>
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
  let server = make();
  const backend: Backend = {
    address,
    port: 0,
    status,
    delayMs: 0,
    requests: 0,
    lastHost: null,
    async stop() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
    async start() {
      server = make();
      await listenOn(server, address, backend.port);
    },
  };
  (backend as { port: number }).port = await listenOn(server, address, 0);
  t.after(() => (server.listening ? backend.stop() : undefined));
  return backend;
}

/** Starts a TCP listener that accepts and closes connections; stopped in t.after(). */
export async function tcpBackend(t: TestContext): Promise<Backend> {
  const address = loopbackAddress();
  const sockets = new Set<net.Socket>();
  const make = (): net.Server =>
    net.createServer((socket) => {
      backend.requests++;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      socket.end();
    });
  let server = make();
  const backend: Backend = {
    address,
    port: 0,
    status: 0,
    delayMs: 0,
    requests: 0,
    lastHost: null,
    async stop() {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
    async start() {
      server = make();
      await listenOn(server, address, backend.port);
    },
  };
  (backend as { port: number }).port = await listenOn(server, address, 0);
  t.after(() => (server.listening ? backend.stop() : undefined));
  return backend;
}
