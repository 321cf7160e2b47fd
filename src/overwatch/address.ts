// Main thread, cold path. Checks that the DNS address is free before the
// workers bind it with reusePort, and picks a concrete port when the config
// asks for port 0 (tests).
//
// Why probe without reusePort: SO_REUSEPORT lets any socket of the same user
// that also sets it join the group, so a second overwatch started on the same
// address would silently share the port with the first. A probe bound
// *without* the option fails with EADDRINUSE in that case (and in every other
// one where the address is taken), which turns it into a clear start-up error.

import dgram from 'node:dgram';
import { once } from 'node:events';
import net from 'node:net';
import { OpenGslbError } from '../lib/errors.ts';
import { formatAddress } from '../lib/ip.ts';

async function probeTcp(host: string, port: number): Promise<number> {
  const server = net.createServer();
  server.listen({ host, port, exclusive: true });
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
  const bound = (server.address() as net.AddressInfo).port;
  server.close();
  await once(server, 'close');
  return bound;
}

async function probeUdp(host: string, port: number): Promise<void> {
  const socket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: host, port }, () => resolve());
    });
  } finally {
    try {
      socket.close();
    } catch {
      // never bound: nothing to close
    }
  }
}

function bindError(host: string, port: number, transport: string, err: NodeJS.ErrnoException): OpenGslbError {
  const hint =
    err.code === 'EADDRINUSE'
      ? 'another process is listening there; stop it or change dns.listen_address'
      : err.code === 'EACCES'
        ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher port or grant the capability'
        : err.code === 'EADDRNOTAVAIL'
          ? 'that address is not configured on any interface of this host'
          : 'check dns.listen_address';
  return new OpenGslbError('OPENGSLB_ERR_DNS_BIND', `cannot bind DNS ${transport} on ${formatAddress(host, port)}: ${err.code ?? err.message} (${hint})`, { cause: err });
}

/**
 * Returns the port the workers should bind: `port` itself when it is free for
 * both UDP and TCP, or, for port 0, a port free for both. Throws
 * OpenGslbError(OPENGSLB_ERR_DNS_BIND) naming the address, transport and cause.
 */
export async function reserveDnsPort(host: string, port: number): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    let chosen: number;
    try {
      chosen = await probeTcp(host, port);
    } catch (err) {
      throw bindError(host, port, 'TCP', err as NodeJS.ErrnoException);
    }
    try {
      await probeUdp(host, chosen);
      return chosen;
    } catch (err) {
      // A random TCP port may be taken for UDP; try another one.
      if (port === 0 && (err as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
      throw bindError(host, chosen, 'UDP', err as NodeJS.ErrnoException);
    }
  }
  throw new OpenGslbError('OPENGSLB_ERR_DNS_BIND', `cannot find a port free for both UDP and TCP on ${host}`);
}
