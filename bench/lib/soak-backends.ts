// Bench only. The soak's HTTP backends, in a process of their own so that the
// load the soak generates in its own event loop never delays a health check's
// answer (a late answer is a failed check, and the soak would blame the
// server). Driven over IPC: {op: 'open', address, port} listens (port 0 the
// first time), {op: 'close', address} closes it and its connections; each
// request is answered with {address, port} or {address, error}.

import http from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

interface Request {
  readonly op: 'open' | 'close';
  readonly address: string;
  readonly port?: number;
}

const servers = new Map<string, http.Server>();

process.on('message', (msg: Request) => {
  void handle(msg).then(
    (port) => process.send?.({ address: msg.address, port }),
    (err: Error) => process.send?.({ address: msg.address, error: err.message }),
  );
});
process.on('disconnect', () => process.exit(0));

async function handle(msg: Request): Promise<number> {
  if (msg.op === 'open') {
    const server = http.createServer((_req, res) => res.end('ok'));
    server.keepAliveTimeout = 500;
    server.listen({ host: msg.address, port: msg.port ?? 0 });
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e as Error))]);
    servers.set(msg.address, server);
    return (server.address() as AddressInfo).port;
  }
  const server = servers.get(msg.address);
  if (server === undefined) return 0;
  servers.delete(msg.address);
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return 0;
}
