// Bench only. Plays N agents from one process against one or more
// overwatches, with what a real agent sends: each agent has its own key pair
// and self-signed certificate (createAgentIdentity), proves its service token,
// seals and signs every message with the project's own code (MessageSealer,
// buildRegistration, encodeFrame, openMessage: src/gossip/*), registers over
// TCP and waits for the ack, heartbeats over UDP every interval (a delta, empty
// unless a backend changed) and sends a full heartbeat over TCP every
// full_interval, and sends a health update at once when a backend's health is
// flipped (flip()). Nothing of the wire format is written here.
//
// What it does not do (a real agent would): check real backends, measure host
// load (it reports none), rotate certificates, back off from an overwatch that
// is away (a failed connection is retried at the next message).
//
//   AgentsSim ── per agent: identity, MessageSealer, backends' health
//       │ UDP  one socket for every agent   → each overwatch (heartbeats, health updates)
//       └ TCP  a few connections per overwatch, shared (registrations, full heartbeats), acks read back
//
// Usage alone: npx node bench/agents-sim.ts --overwatch 127.0.0.1:7946 [--overwatch …] --key BASE64 --token TOKEN
//                [--agents 100] [--backends 3] [--interval 10s] [--full-interval 30s] [--regions eu,us]
//                [--services 50] [--domain example.test]
//              then on stdin: "flip AGENT BACKEND healthy|unhealthy", "stats", "quit".
// bench/agents-scale.ts drives it as a library to measure an overwatch.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/config/duration.ts';
import { Keyring } from '../src/gossip/envelope.ts';
import { encodeFrame, FrameReader } from '../src/gossip/framing.ts';
import { createAgentIdentity } from '../src/gossip/identity.ts';
import type { BackendCheck, BackendHealth, BackendReport, OutgoingMessage } from '../src/gossip/messages.ts';
import { buildRegistration, DEFAULT_UDP_MAX_BYTES, MessageSealer } from '../src/gossip/sender.ts';
import { openMessage } from '../src/gossip/wire.ts';

export interface SimBackend {
  readonly service: string;
  readonly address: string;
  readonly port: number;
}

export interface SimOptions {
  /** Overwatch channel addresses. */
  readonly overwatches: readonly { readonly host: string; readonly port: number }[];
  /** The gossip key, raw 32 bytes. */
  readonly key: Uint8Array;
  /** The service token of every service. */
  readonly token: string;
  readonly agents: number;
  /** Region of agent i. */
  readonly regionOf: (i: number) => string;
  /** Backends of agent i. */
  readonly backendsOf: (i: number) => readonly SimBackend[];
  readonly intervalMs: number;
  readonly fullIntervalMs: number;
  /** TCP connections per overwatch, shared by every agent (default 4). */
  readonly connections?: number;
  /** Identities made at once (default 16). */
  readonly identityBatch?: number;
}

/** What the simulator sent and heard, for the report. */
export interface SimCounters {
  udpSent: number;
  tcpSent: number;
  acksOk: number;
  acksRegister: number;
  acksRefused: number;
  tcpErrors: number;
  registered: number;
  refusedReasons: Record<string, number>;
}

/** A registration not acked for this long is sent again. */
const REGISTER_RETRY_MS = 20_000;

const CHECK: BackendCheck = {
  type: 'http', path: '/healthz', host: null, expectedStatus: [[200, 299]], headers: {}, bodyMatch: null, tlsVerify: true, failureThreshold: 3, successThreshold: 2,
};

interface SimAgent {
  readonly index: number;
  readonly sealer: MessageSealer;
  readonly region: string;
  readonly backends: readonly SimBackend[];
  readonly health: BackendHealth[];
  /** Health as last sent in a heartbeat: a heartbeat carries the backends whose health changed since (the agent's redundancy for a lost health update). */
  readonly sentHealth: BackendHealth[];
  /** Overwatches (by index) that acked its registration. */
  readonly registeredAt: Set<number>;
  /** When its registration was last sent to each overwatch (by index), epoch ms; 0: never. */
  readonly registerSentMs: number[];
}

/** One TCP connection to one overwatch; acks come back in the order the messages went. */
class TcpLink {
  socket: Socket | null = null;
  readonly waiting: { readonly agent: SimAgent; readonly type: OutgoingMessage['type'] }[] = [];
  reader = new FrameReader(1 << 20);
  readonly owIndex: number;
  readonly #sim: AgentsSim;
  readonly #host: string;
  readonly #port: number;

  constructor(sim: AgentsSim, owIndex: number, host: string, port: number) {
    this.#sim = sim;
    this.owIndex = owIndex;
    this.#host = host;
    this.#port = port;
  }

  send(agent: SimAgent, type: OutgoingMessage['type'], bytes: Buffer): void {
    if (this.socket === null || this.socket.destroyed) this.#open();
    this.waiting.push({ agent, type });
    this.socket!.write(encodeFrame(bytes));
  }

  #open(): void {
    const socket = connect({ host: this.#host, port: this.#port });
    socket.setNoDelay(true);
    this.reader = new FrameReader(1 << 20);
    this.waiting.length = 0;
    socket.on('data', (chunk: Buffer) => {
      const frames = this.reader.push(chunk);
      if (frames === 'too_large') return socket.destroy();
      for (const frame of frames) this.#sim.onAck(this, frame);
    });
    socket.on('error', () => {
      this.#sim.counters.tcpErrors++;
    });
    socket.on('close', () => {
      if (this.socket === socket) this.socket = null;
    });
    this.socket = socket;
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }
}

/** N agents in one process (see the file's head). */
export class AgentsSim {
  readonly counters: SimCounters = { udpSent: 0, tcpSent: 0, acksOk: 0, acksRegister: 0, acksRefused: 0, tcpErrors: 0, registered: 0, refusedReasons: {} };
  readonly #opts: SimOptions;
  readonly #keyring: Keyring;
  readonly #agents: SimAgent[] = [];
  readonly #links: TcpLink[][];
  #udp: UdpSocket | null = null;
  #nextLink = 0;
  readonly #timers: NodeJS.Timeout[] = [];
  #stopped = false;
  #onRegistered: (() => void) | null = null;

  constructor(opts: SimOptions) {
    this.#opts = opts;
    this.#keyring = new Keyring(opts.key);
    const n = opts.connections ?? 4;
    this.#links = opts.overwatches.map((o, ow) => Array.from({ length: n }, () => new TcpLink(this, ow, o.host, o.port)));
  }

  get agentIds(): string[] {
    return this.#agents.map((a) => a.sealer.identity.agentId);
  }

  /** Makes every agent's identity (key pair and certificate) and registration; `progress` is told every batch. */
  async prepare(progress?: (done: number) => void): Promise<void> {
    const batch = this.#opts.identityBatch ?? 16;
    for (let start = 0; start < this.#opts.agents; start += batch) {
      const made = await Promise.all(Array.from({ length: Math.min(batch, this.#opts.agents - start) }, (_, k) => createAgentIdentity({ region: this.#opts.regionOf(start + k) })));
      for (const [k, identity] of made.entries()) {
        const index = start + k;
        const backends = this.#opts.backendsOf(index);
        const health: BackendHealth[] = backends.map(() => 'healthy');
        const agent: SimAgent = {
          index,
          sealer: new MessageSealer(this.#keyring, identity),
          backends,
          health,
          sentHealth: [...health],
          registeredAt: new Set(),
          registerSentMs: this.#opts.overwatches.map(() => 0),
          region: this.#opts.regionOf(index),
        };
        this.#agents.push(agent);
      }
      progress?.(this.#agents.length);
    }
  }

  /**
   * Registers every agent with every overwatch, `perSecond` agents a second
   * (a fleet does not start in one instant), and resolves once every
   * registration is acked ok. Heartbeats run from the start, each agent at its
   * own offset within the interval, from its first acked registration on (as
   * an agent does; heartbeats that waited for the whole fleet to register left
   * the first agents silent for longer than overwatch.stale.threshold when
   * registering took 44 s against three overwatches, and they went stale).
   */
  async start(perSecond = 500): Promise<void> {
    this.#udp = createSocket('udp4');
    this.#udp.on('error', () => undefined);
    this.#startHeartbeats();
    const all = this.#agents.length * this.#opts.overwatches.length;
    const done = new Promise<void>((resolve) => {
      this.#onRegistered = () => {
        if (this.counters.registered >= all) resolve();
      };
    });
    const stepMs = 1000 / perSecond;
    const t0 = Date.now();
    for (const agent of this.#agents) {
      const due = t0 + agent.index * stepMs;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      this.#register(agent);
    }
    // An agent whose registration got no ack for REGISTER_RETRY_MS (lost with a connection) tries again.
    const retry = setInterval(() => {
      for (const agent of this.#agents) if (agent.registeredAt.size < this.#opts.overwatches.length) this.#register(agent, Date.now() - REGISTER_RETRY_MS);
    }, 5000);
    this.#timers.push(retry);
    await done;
    clearInterval(retry);
  }

  /** Sends the registration to every overwatch that has not acked it and was not sent it after `sentBeforeMs`. */
  #register(agent: SimAgent, sentBeforeMs = Infinity): void {
    for (let ow = 0; ow < this.#opts.overwatches.length; ow++) {
      if (agent.registeredAt.has(ow) || agent.registerSentMs[ow]! > sentBeforeMs) continue;
      agent.registerSentMs[ow] = Date.now();
      this.#tcp(agent, ow, this.#registration(agent));
    }
  }

  #startHeartbeats(): void {
    const { intervalMs, fullIntervalMs } = this.#opts;
    const fullEvery = Math.max(1, Math.round(fullIntervalMs / intervalMs));
    let tick = 0;
    // One timer per slice of the interval: agent i beats in slice i mod slices, so the load is even.
    const slices = Math.max(1, Math.min(100, Math.round(intervalMs / 10)));
    const sliceMs = intervalMs / slices;
    const timer = setInterval(() => {
      const slice = tick % slices;
      const round = Math.floor(tick / slices);
      tick++;
      for (let i = slice; i < this.#agents.length; i += slices) {
        const agent = this.#agents[i]!;
        // Not registered anywhere yet: its registration is on its way.
        if (agent.registeredAt.size === 0) continue;
        if ((round + i) % fullEvery === 0) {
          agent.sentHealth.splice(0, agent.sentHealth.length, ...agent.health);
          const full: OutgoingMessage = { type: 'heartbeat', full: true, backends: this.#reports(agent, true), load: null };
          // To the overwatches that took its registration (the others get the registration, which carries the same).
          for (const ow of agent.registeredAt) this.#tcp(agent, ow, full);
        } else {
          // As the agent does: the backends whose health changed since the last heartbeat (usually none).
          const changed: BackendReport[] = [];
          agent.backends.forEach((_, k) => {
            if (agent.sentHealth[k] !== agent.health[k]) changed.push(...this.#reports(agent, false, k));
            agent.sentHealth[k] = agent.health[k]!;
          });
          this.#udpSend(agent, { type: 'heartbeat', full: false, backends: changed, load: null });
        }
      }
    }, sliceMs);
    this.#timers.push(timer);
  }

  /** The agent's registration, with its backends' health as it is now (a registration carries the whole state). */
  #registration(agent: SimAgent): OutgoingMessage {
    const services = [...new Set(agent.backends.map((b) => b.service))];
    return buildRegistration(agent.sealer.identity, {
      region: agent.region,
      version: 'agents-sim',
      serviceTokens: Object.fromEntries(services.map((s) => [s, this.#opts.token])),
      heartbeatIntervalMs: this.#opts.intervalMs,
      backends: agent.backends.map((b, k) => ({ ...b, weight: 100, health: agent.health[k]!, drain: null, check: CHECK })),
    });
  }

  #reports(agent: SimAgent, full: boolean, only: number | null = null): BackendReport[] {
    const out: BackendReport[] = [];
    agent.backends.forEach((b, k) => {
      if (only !== null && k !== only) return;
      out.push({ ...b, weight: 100, health: agent.health[k]!, drain: null, check: full ? CHECK : null });
    });
    return out;
  }

  /** Flips one backend's health at its agent and sends the health update at once, as a real agent does on a transition. */
  flip(agentIndex: number, backendIndex: number, health: BackendHealth): void {
    const agent = this.#agents[agentIndex];
    if (agent === undefined || agent.backends[backendIndex] === undefined) throw new Error(`no backend ${backendIndex} of agent ${agentIndex}`);
    agent.health[backendIndex] = health;
    this.#udpSend(agent, { type: 'health_update', backends: this.#reports(agent, false, backendIndex) });
  }

  /** Address of one backend, as DNS answers it. */
  addressOf(agentIndex: number, backendIndex: number): string {
    return this.#agents[agentIndex]!.backends[backendIndex]!.address;
  }

  #udpSend(agent: SimAgent, message: OutgoingMessage): void {
    const { bytes } = agent.sealer.seal(message);
    if (bytes.length > DEFAULT_UDP_MAX_BYTES) {
      for (let ow = 0; ow < this.#opts.overwatches.length; ow++) this.#sendTcpBytes(agent, ow, message.type, bytes);
      return;
    }
    // Sealed once, the same bytes to every overwatch, as the agent's sender does.
    for (const o of this.#opts.overwatches) {
      this.#udp?.send(bytes, o.port, o.host);
      this.counters.udpSent++;
    }
  }

  #tcp(agent: SimAgent, ow: number, message: OutgoingMessage): void {
    this.#sendTcpBytes(agent, ow, message.type, agent.sealer.seal(message).bytes);
  }

  #sendTcpBytes(agent: SimAgent, ow: number, type: OutgoingMessage['type'], bytes: Buffer): void {
    if (this.#stopped) return;
    const links = this.#links[ow]!;
    const link = links[this.#nextLink++ % links.length]!;
    link.send(agent, type, bytes);
    this.counters.tcpSent++;
  }

  /** An ack frame from overwatch `link.owIndex`: the answer to the oldest message waiting on that connection. */
  onAck(link: TcpLink, frame: Buffer): void {
    const waiting = link.waiting.shift();
    const opened = openMessage(this.#keyring, frame);
    if (waiting === undefined || !opened.ok || opened.opened.message.type !== 'ack') return;
    const ack = opened.opened.message;
    if (ack.status === 'ok') {
      this.counters.acksOk++;
      if (waiting.type === 'register' && !waiting.agent.registeredAt.has(link.owIndex)) {
        waiting.agent.registeredAt.add(link.owIndex);
        this.counters.registered++;
        this.#onRegistered?.();
      }
    } else if (ack.status === 'register') {
      this.counters.acksRegister++;
      waiting.agent.registeredAt.delete(link.owIndex);
      this.#tcp(waiting.agent, link.owIndex, this.#registration(waiting.agent));
    } else {
      this.counters.acksRefused++;
      const reason = ack.reason ?? 'unknown';
      this.counters.refusedReasons[reason] = (this.counters.refusedReasons[reason] ?? 0) + 1;
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    for (const links of this.#links) for (const l of links) l.close();
    this.#udp?.close();
    this.#udp = null;
  }
}

/**
 * The fleet layout the bench uses: agent i in region regions[i mod R], with
 * `backends` backends; backend k of agent i serves svc-<(i·backends+k) mod services>.<domain>
 * at 10.<i>>8>.<i&255>.<k+1>:8080, except that agents 0..probes-1 serve their
 * backend 0 as probe.<domain> (the name whose answers the flips change).
 */
export function fleetLayout(opts: { readonly regions: readonly string[]; readonly backends: number; readonly services: number; readonly domain: string; readonly probes: number }): {
  readonly regionOf: (i: number) => string;
  readonly backendsOf: (i: number) => SimBackend[];
  readonly serviceNames: string[];
  readonly probeName: string;
} {
  const probeName = `probe.${opts.domain}`;
  return {
    regionOf: (i) => opts.regions[i % opts.regions.length]!,
    backendsOf: (i) => Array.from({ length: opts.backends }, (_, k) => ({
      service: i < opts.probes && k === 0 ? probeName : `svc-${(i * opts.backends + k) % opts.services}.${opts.domain}`,
      address: `10.${(i >> 8) & 255}.${i & 255}.${k + 1}`,
      port: 8080,
    })),
    serviceNames: [probeName, ...Array.from({ length: opts.services }, (_, s) => `svc-${s}.${opts.domain}`)],
    probeName,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      overwatch: { type: 'string', multiple: true },
      key: { type: 'string' },
      token: { type: 'string' },
      agents: { type: 'string', default: '100' },
      backends: { type: 'string', default: '3' },
      interval: { type: 'string', default: '10s' },
      'full-interval': { type: 'string', default: '30s' },
      regions: { type: 'string', default: 'eu,us' },
      services: { type: 'string', default: '50' },
      probes: { type: 'string', default: '10' },
      domain: { type: 'string', default: 'example.test' },
    },
  });
  const ms = (text: string, flag: string): number => {
    const d = parseDuration(text);
    if ('error' in d) throw new Error(`--${flag}: ${d.error}`);
    return d.ms;
  };
  if (values.overwatch === undefined || values.key === undefined || values.token === undefined) {
    throw new Error('usage: npx node bench/agents-sim.ts --overwatch HOST:PORT [--overwatch …] --key BASE64 --token TOKEN [--agents N] …');
  }
  const layout = fleetLayout({ regions: values.regions.split(','), backends: Number(values.backends), services: Number(values.services), domain: values.domain, probes: Number(values.probes) });
  const sim = new AgentsSim({
    overwatches: values.overwatch.map((o) => {
      const i = o.lastIndexOf(':');
      return { host: o.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(o.slice(i + 1)) };
    }),
    key: Buffer.from(values.key, 'base64'),
    token: values.token,
    agents: Number(values.agents),
    regionOf: layout.regionOf,
    backendsOf: layout.backendsOf,
    intervalMs: ms(values.interval, 'interval'),
    fullIntervalMs: ms(values['full-interval'], 'full-interval'),
  });
  const t0 = Date.now();
  await sim.prepare();
  console.log(`identities: ${values.agents} in ${Date.now() - t0} ms`);
  const t1 = Date.now();
  await sim.start();
  console.log(`registered with every overwatch in ${Date.now() - t1} ms; heartbeating. stdin: flip AGENT BACKEND healthy|unhealthy, stats, quit`);
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, a, b, h] = line.trim().split(/\s+/);
    if (cmd === 'quit') break;
    if (cmd === 'stats') console.log(JSON.stringify(sim.counters));
    if (cmd === 'flip') {
      sim.flip(Number(a), Number(b), h === 'unhealthy' ? 'unhealthy' : 'healthy');
      console.log(`flipped ${sim.addressOf(Number(a), Number(b))} to ${h}`);
    }
  }
  sim.stop();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    console.error(`agents-sim: ${(err as Error).message}`);
    process.exit(1);
  });
}
