// Test helper for agent-mode tests: the agent's YAML, the overwatch's
// agent-channel port as its log announces it (real processes), and an
// overwatch with the agent channel in this process.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { parseConfigText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/types.ts';
import type { Logger } from '../../src/log/logger.ts';
import { Overwatch } from '../../src/overwatch/overwatch.ts';
import { MemoryStore } from '../../src/state/store.ts';
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

/**
 * The config of an overwatch answering app.example.test from region eu, which
 * only agents fill (agent token `token`, gossip key `key`), its agent channel
 * on `port` (0: any).
 */
export function agentOverwatchConfig(dir: string, token: string, key: string, port = 0): Config {
  return parseConfigText([
    'dns: { listen_address: "127.0.0.1:0", workers: 1, zones: [example.test] }',
    'regions: [{ name: eu, servers: [] }]',
    'domains: [{ name: app.example.test, regions: [eu] }]',
    'overwatch:',
    `  agent_tokens: { app.example.test: ${token} }`,
    `  gossip: { encryption_key: "${key}", bind_address: "127.0.0.1:${port}" }`,
  ].join('\n'), join(dir, 'overwatch.yaml'));
}

/**
 * An overwatch in this process with the agent channel on loopback: one zone
 * example.test, app.example.test answered from region eu, which only agents
 * fill (agent token `token`). Stopped when the test ends.
 */
export async function startAgentOverwatch(t: TestContext, dir: string, token: string, logger: Logger): Promise<{ readonly overwatch: Overwatch; readonly key: string }> {
  const key = randomBytes(32).toString('base64');
  const overwatch = await Overwatch.start(agentOverwatchConfig(dir, token, key), logger, { store: new MemoryStore() });
  t.after(() => overwatch.stop(200));
  return { overwatch, key };
}

/**
 * The config of an agent in this process reporting `backend` (checked over
 * TCP every second; `check` adds keys to its health_check, such as
 * "failure_threshold: 1") for app.example.test to a startAgentOverwatch()
 * overwatch; `extra` lines go into its agent section.
 */
export function agentConfigFor(dir: string, token: string, started: { readonly overwatch: Overwatch; readonly key: string }, backend: Backend, extra: readonly string[], check: readonly string[] = []): Config {
  return parseConfigText([
    'mode: agent',
    'agent:',
    `  identity: { service_token: ${token}, region: eu, cert_path: ./agent.crt, key_path: ./agent.key }`,
    `  backends: [{ service: app.example.test, address: ${backend.address}, port: ${backend.port}, health_check: { ${['type: tcp', 'interval: 1s', 'timeout: 500ms', ...check].join(', ')} } }]`,
    `  gossip: { encryption_key: "${started.key}", overwatch_nodes: ["127.0.0.1:${started.overwatch.agents?.receiver?.port}"] }`,
    ...extra,
  ].join('\n'), join(dir, 'agent.yaml'));
}
