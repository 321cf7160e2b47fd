// Test helper for agent-mode tests with real processes: the agent's YAML and
// the overwatch's agent-channel port as its log announces it.

import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import type { Backend } from './backends.ts';
import type { RunningServer } from './child.ts';

export interface AgentFile {
  /** Where to write it (the agent's cert and key go next to it). */
  readonly file: string;
  readonly token: string;
  readonly region: string;
  /** The channel's encryption key (base64). */
  readonly key: string;
  /** The agent-channel ports of the overwatches it reports to (none when it reports through the bus). */
  readonly overwatchPorts: readonly number[];
  /** agent.bus: the port of the nats-server on loopback it publishes to. */
  readonly natsPort?: number;
  /** (service, backend) pairs, each checked over HTTP at /health every second. */
  readonly backends: readonly (readonly [string, Backend])[];
  /** heartbeat.interval and heartbeat.full_interval, as durations. */
  readonly heartbeat: { readonly interval: string; readonly full: string };
}

/** Writes an agent config (mode 0600) and returns its path. */
export async function writeAgentFile(a: AgentFile): Promise<string> {
  await writeFile(
    a.file,
    [
      'mode: agent',
      'agent:',
      `  identity: { service_token: ${a.token}, region: ${a.region}, cert_path: ./agent.crt, key_path: ./agent.key }`,
      '  backends:',
      ...a.backends.map(
        ([service, b]) =>
          `    - { service: ${service}, address: ${b.address}, port: ${b.port}, health_check: { type: http, path: /health, interval: 1s, timeout: 500ms, failure_threshold: 2, success_threshold: 1 } }`,
      ),
      a.overwatchPorts.length === 0
        ? `  gossip: { encryption_key: "${a.key}" }`
        : `  gossip: { encryption_key: "${a.key}", overwatch_nodes: [${a.overwatchPorts.map((p) => `"127.0.0.1:${p}"`).join(', ')}] }`,
      ...(a.natsPort === undefined ? [] : [`  bus: { type: nats, servers: ["nats://127.0.0.1:${a.natsPort}"] }`]),
      `  heartbeat: { interval: ${a.heartbeat.interval}, full_interval: ${a.heartbeat.full} }`,
      'logging: { level: info, format: json }',
    ].join('\n') + '\n',
    { mode: 0o600 },
  );
  return a.file;
}

/** The port of an overwatch's agent channel, read from its "agent channel listening" log line. */
export async function gossipPortOf(server: RunningServer): Promise<number> {
  const line = await server.out.waitFor(/agent channel listening/);
  const m = /"address":"127\.0\.0\.1:(\d+)"/.exec(line);
  assert.ok(m, line);
  return Number(m[1]);
}
