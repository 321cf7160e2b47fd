// Test helper. A tiny DNS client over real UDP and TCP sockets on loopback,
// plus query builders. Replies are decoded with dns-packet, the independent
// reference decoder, so every test cross-checks the fast path.

import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

/** dns-packet's decoded message, with the fields its type definitions leave out. */
export type Decoded = ReturnType<typeof dnsPacket.decode> & { rcode?: string };

let nextId = 1;
/** Returns a fresh query ID. */
export function newId(): number {
  nextId = (nextId * 48271) % 0x7fffffff;
  return nextId & 0xffff;
}

export interface QueryOptions {
  id?: number;
  /** EDNS: undefined = no OPT record. */
  edns?: { udpSize?: number; version?: number; do?: boolean; ecs?: { family: 1 | 2; sourcePrefix: number; address: string }; cookie?: Uint8Array };
  flags?: number;
  qclass?: string;
}

/** Encodes a query with dns-packet; the name is sent exactly as given (case preserved). */
export function buildQuery(name: string, type: string, opts: QueryOptions = {}): Buffer {
  const additionals: dnsPacket.Answer[] = [];
  if (opts.edns) {
    const options: { code: number; [k: string]: unknown }[] = [];
    if (opts.edns.ecs) {
      options.push({ code: 8, family: opts.edns.ecs.family, sourcePrefixLength: opts.edns.ecs.sourcePrefix, scopePrefixLength: 0, ip: opts.edns.ecs.address });
    }
    // COOKIE (RFC 7873) as raw option data, any length (the malformed cases too).
    if (opts.edns.cookie) options.push({ code: 10, data: Buffer.from(opts.edns.cookie) });
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: opts.edns.udpSize ?? 1232,
      extendedRcode: 0,
      ednsVersion: opts.edns.version ?? 0,
      flags: opts.edns.do ? dnsPacket.DNSSEC_OK : 0,
      options,
    } as unknown as dnsPacket.Answer);
  }
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? newId(),
    flags: opts.flags ?? dnsPacket.RECURSION_DESIRED,
    questions: [{ type: type as dnsPacket.RecordType, name, class: (opts.qclass ?? 'IN') as dnsPacket.RecordClass }],
    additionals,
  });
}

/** Sends raw bytes over UDP (from `localAddress` when given) and resolves with the raw reply, or null after `timeoutMs`. */
export function udpExchange(port: number, packet: Uint8Array, timeoutMs = 2000, host = '127.0.0.1', localAddress?: string): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    if (localAddress !== undefined) socket.bind({ address: localAddress, port: 0 });
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, timeoutMs);
    socket.once('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.close();
      reject(err);
    });
    socket.send(packet, port, host);
  });
}

/** Opens a TCP connection; returns helpers to send framed messages and read framed replies in order. */
export async function tcpConnect(port: number, host = '127.0.0.1'): Promise<{
  socket: net.Socket;
  send(packet: Uint8Array): void;
  next(timeoutMs?: number): Promise<Buffer | null>;
  closed: Promise<void>;
  close(): void;
}> {
  const socket = net.connect({ port, host });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buf = Buffer.alloc(0);
  const frames: Buffer[] = [];
  const waiters: ((b: Buffer | null) => void)[] = [];
  let ended = false;
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const len = buf.readUInt16BE(0);
      const frame = buf.subarray(2, 2 + len);
      buf = buf.subarray(2 + len);
      const w = waiters.shift();
      if (w) w(frame);
      else frames.push(frame);
    }
  });
  const closed = new Promise<void>((resolve) => {
    socket.on('close', () => {
      ended = true;
      for (const w of waiters.splice(0)) w(null);
      resolve();
    });
  });
  socket.on('error', () => {});
  return {
    socket,
    send(packet) {
      const frame = Buffer.alloc(packet.length + 2);
      frame.writeUInt16BE(packet.length, 0);
      frame.set(packet, 2);
      socket.write(frame);
    },
    next(timeoutMs = 2000) {
      const ready = frames.shift();
      if (ready) return Promise.resolve(ready);
      if (ended) return Promise.resolve(null);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(done);
          if (i >= 0) waiters.splice(i, 1);
          resolve(null);
        }, timeoutMs);
        const done = (b: Buffer | null): void => {
          clearTimeout(timer);
          resolve(b);
        };
        waiters.push(done);
      });
    },
    closed,
    close() {
      socket.destroy();
    },
  };
}

/** Sends one query over a fresh TCP connection and returns the reply. */
export async function tcpExchange(port: number, packet: Uint8Array, host = '127.0.0.1'): Promise<Buffer | null> {
  const conn = await tcpConnect(port, host);
  conn.send(packet);
  const reply = await conn.next();
  conn.close();
  return reply;
}

/** Queries over UDP and decodes the reply with dns-packet; throws when no reply comes. */
export async function ask(port: number, name: string, type: string, opts: QueryOptions = {}, transport: 'udp' | 'tcp' = 'udp'): Promise<Decoded & { raw: Buffer }> {
  const packet = buildQuery(name, type, opts);
  const raw = transport === 'udp' ? await udpExchange(port, packet) : await tcpExchange(port, packet);
  if (raw === null) throw new Error(`no ${transport} reply for ${name} ${type}`);
  return Object.assign(dnsPacket.decode(raw), { raw });
}

/** Reads the rcode from raw header bytes (low 4 bits; BADVERS needs the OPT). */
export function rcodeOf(raw: Uint8Array): number {
  return raw[3] & 0x0f;
}

/**
 * Sends every packet of `packets` over one UDP socket, at most `window` in
 * flight, and resolves with the replies in the same order (matched by
 * message id, so the ids must be distinct). A packet unanswered within
 * `timeoutMs` is sent again, up to `tries` times in all; then the call fails
 * naming it.
 */
export function udpExchangeMany(port: number, packets: readonly Uint8Array[], opts: { window?: number; timeoutMs?: number; tries?: number } = {}): Promise<Buffer[]> {
  const window = opts.window ?? 64;
  const timeoutMs = opts.timeoutMs ?? 1000;
  const tries = opts.tries ?? 3;
  const byId = new Map<number, number>();
  for (let i = 0; i < packets.length; i++) {
    const id = (packets[i][0] << 8) | packets[i][1];
    if (byId.has(id)) throw new Error(`udpExchangeMany: packets ${byId.get(id)} and ${i} share message id ${id}`);
    byId.set(id, i);
  }
  if (packets.length === 0) return Promise.resolve([]);
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const replies: (Buffer | undefined)[] = new Array(packets.length);
    const sentAt = new Map<number, { at: number; tries: number }>();
    let next = 0;
    let done = 0;
    const finish = (err: Error | null): void => {
      clearInterval(timer);
      socket.close();
      if (err !== null) reject(err);
      else resolve(replies as Buffer[]);
    };
    const send = (i: number, attempt: number): void => {
      sentAt.set(i, { at: Date.now(), tries: attempt });
      socket.send(packets[i], port, '127.0.0.1');
    };
    const fill = (): void => {
      while (next < packets.length && sentAt.size < window) send(next++, 1);
    };
    socket.on('message', (msg: Buffer) => {
      if (msg.length < 2) return;
      const i = byId.get(msg.readUInt16BE(0));
      if (i === undefined || replies[i] !== undefined) return;
      replies[i] = msg;
      sentAt.delete(i);
      if (++done === packets.length) finish(null);
      else fill();
    });
    socket.on('error', (err) => finish(err));
    const timer = setInterval(() => {
      const now = Date.now();
      for (const [i, s] of sentAt) {
        if (now - s.at < timeoutMs) continue;
        if (s.tries >= tries) return finish(new Error(`udpExchangeMany: no reply to packet ${i} after ${tries} tries of ${timeoutMs} ms`));
        send(i, s.tries + 1);
      }
    }, Math.max(10, timeoutMs / 4));
    socket.bind(0, '127.0.0.1', fill);
  });
}

/** The public keys (base64) of the DNSKEY RRset a server answers for `zone`, sorted. */
export async function dnskeysOf(port: number, zone: string): Promise<string[]> {
  const r = await ask(port, zone, 'DNSKEY');
  return (r.answers ?? []).map((a) => (a as unknown as { data: { key: Buffer } }).data.key.toString('base64')).sort();
}

/** The A addresses `port` answers for `name`, sorted and comma-joined, or its rcode when not NOERROR. */
export async function answerLine(port: number, name: string): Promise<string> {
  const reply = await ask(port, name, 'A');
  if (reply.rcode !== 'NOERROR') return reply.rcode!;
  return ((reply.answers ?? []) as { data: string }[]).map((a) => a.data).sort().join(',');
}

/** Asks every 50 ms until `port` answers `expected` for `name` (answerLine); fails after `timeoutMs` with the last answer. */
export async function untilAnswered(port: number, name: string, expected: string, timeoutMs: number): Promise<void> {
  const start = Date.now();
  let got = '';
  while (Date.now() - start < timeoutMs) {
    got = await answerLine(port, name);
    if (got === expected) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(got, expected, `${name} not answered within ${timeoutMs} ms`);
}
