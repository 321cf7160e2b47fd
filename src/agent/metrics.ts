// Main thread (agent mode), cold path. The agent's own /metrics (metrics.enabled):
// its backends by state, messages sent by type, overwatches reachable, checks,
// and the predictive readings. Everything is read from Agent.status() when
// scraped; nothing is counted per check here.

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { formatAddress } from '../lib/ip.ts';
import { AGENT_BACKEND_STATES, AGENT_SENT_TYPES, type AgentStatus } from './agent.ts';

/** What the agent metrics read (Agent satisfies it). */
export interface AgentSource {
  status(): AgentStatus;
}

/** Creates the agent's registry; every metric reads `agent` when scraped. */
export function createAgentMetrics(agent: AgentSource, options: { readonly version: string; readonly processMetrics?: boolean }): Registry {
  const registry = new Registry();
  const registers = [registry];
  let cached: AgentStatus | null = null;
  // One scrape reads the status once: every collect() of one scrape runs in the same tick.
  const status = (): AgentStatus => {
    if (cached === null) {
      cached = agent.status();
      queueMicrotask(() => {
        cached = null;
      });
    }
    return cached;
  };

  new Gauge({
    name: 'opengslb_agent_backends',
    help: 'This agent\'s backends by state: healthy, unhealthy, unknown (no verdict yet) or draining (a predictive signal).',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = Object.fromEntries(AGENT_BACKEND_STATES.map((s) => [s, 0])) as Record<(typeof AGENT_BACKEND_STATES)[number], number>;
      for (const b of status().backends) counts[b.drain !== null ? 'draining' : b.health]++;
      for (const s of AGENT_BACKEND_STATES) this.set({ state: s }, counts[s]);
    },
  });
  new Gauge({
    name: 'opengslb_agent_backend_healthy',
    help: 'Whether the agent\'s checks find a backend healthy and it is not draining (1) or not (0).',
    labelNames: ['service', 'backend'],
    registers,
    collect() {
      this.reset();
      for (const b of status().backends) this.set({ service: b.service, backend: formatAddress(b.address, b.port) }, b.health === 'healthy' && b.drain === null ? 1 : 0);
    },
  });
  new Counter({
    name: 'opengslb_agent_checks_total',
    help: 'Health checks of this agent\'s backends by result (success, failure).',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      let ok = 0;
      let fail = 0;
      for (const b of status().backends) {
        ok += b.checksOk;
        fail += b.checksFailed;
      }
      this.inc({ result: 'success' }, ok);
      this.inc({ result: 'failure' }, fail);
    },
  });
  new Counter({
    name: 'opengslb_agent_messages_sent_total',
    help: 'Messages the agent sent to its overwatches, by type (each goes to every overwatch).',
    labelNames: ['type'],
    registers,
    collect() {
      this.reset();
      const sent = status().sent;
      for (const t of AGENT_SENT_TYPES) this.inc({ type: t }, sent[t]);
    },
  });
  new Counter({
    name: 'opengslb_agent_transmissions_total',
    help: 'Sealed messages put on the wire, by transport (udp: one datagram per overwatch; tcp: one acked frame per overwatch; bus: one NATS publish for every overwatch).',
    labelNames: ['transport'],
    registers,
    collect() {
      this.reset();
      const c = status().sender;
      this.inc({ transport: 'udp' }, c.udpSent);
      this.inc({ transport: 'tcp' }, c.tcpSent);
      this.inc({ transport: 'bus' }, c.busSent);
    },
  });
  new Counter({
    name: 'opengslb_agent_acks_total',
    help: 'Sealed acks the agent received and opened (any status: ok, register, refused): one per acked TCP frame, or with agent.bus one from every overwatch that took a message.',
    registers,
    collect() {
      this.reset();
      this.inc(status().sender.acked);
    },
  });
  new Counter({
    name: 'opengslb_agent_send_problems_total',
    help: 'Sending trouble by kind: failure (a TCP attempt that failed and is retried), refused (an overwatch refused a message), queue_drop (a waiting message dropped while an overwatch was away).',
    labelNames: ['kind'],
    registers,
    collect() {
      this.reset();
      const c = status().sender;
      this.inc({ kind: 'failure' }, c.failures);
      this.inc({ kind: 'refused' }, c.refused);
      this.inc({ kind: 'queue_drop' }, c.queueDrops);
    },
  });
  new Gauge({
    name: 'opengslb_agent_overwatches_up',
    help: 'Overwatches that acked the agent\'s last reliable message (a registration, full heartbeat or deregistration).',
    registers,
    collect() {
      this.set(status().nodes.filter((n) => n.state === 'up').length);
    },
  });
  new Gauge({
    name: 'opengslb_agent_overwatch_up',
    help: 'Per overwatch: 1 when it acked the last reliable message, 0 when down or not tried yet.',
    labelNames: ['overwatch'],
    registers,
    collect() {
      this.reset();
      for (const n of status().nodes) this.set({ overwatch: formatAddress(n.node.host, n.node.port) }, n.state === 'up' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'opengslb_agent_region_served',
    help: 'Per overwatch: 0 when its last ack said it serves no region of this agent\'s name (a reload removed it: the agent\'s backends are not answered there), else 1.',
    labelNames: ['overwatch'],
    registers,
    collect() {
      this.reset();
      for (const n of status().nodes) this.set({ overwatch: formatAddress(n.node.host, n.node.port) }, n.notice === 'unknown_region' ? 0 : 1);
    },
  });
  new Gauge({
    name: 'opengslb_agent_host_cpu_percent',
    help: 'Host CPU busy share at the last predictive reading (absent where /proc/stat cannot be read).',
    registers,
    collect() {
      this.reset();
      const v = status().predictive.cpuPercent;
      if (v !== null) this.set(v);
    },
  });
  new Gauge({
    name: 'opengslb_agent_host_memory_percent',
    help: 'Host memory in use at the last predictive reading (absent where /proc/meminfo cannot be read).',
    registers,
    collect() {
      this.reset();
      const v = status().predictive.memoryPercent;
      if (v !== null) this.set(v);
    },
  });
  new Gauge({
    name: 'opengslb_agent_backend_error_rate',
    help: 'A backend\'s failed checks per minute over agent.predictive.error_rate.window, at the last predictive reading.',
    labelNames: ['service', 'backend'],
    registers,
    collect() {
      this.reset();
      const s = status();
      s.backends.forEach((b, i) => this.set({ service: b.service, backend: formatAddress(b.address, b.port) }, s.predictive.errorRatePerMin[i] ?? 0));
    },
  });
  const info = new Gauge({ name: 'opengslb_app_info', help: 'Always 1; the version label says what runs.', labelNames: ['version'], registers });
  info.set({ version: options.version }, 1);
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return registry;
}
